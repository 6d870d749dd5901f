//! The dependency rules of `ARCHITECTURE.md`, read from the workspace's manifests and its
//! lock file: which workspace crate may depend on which, the ledger free of tract and
//! wasmtime, the node library free of the command line's crates, and nothing on the
//! Criterion benches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn toml_of(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

/// Every workspace member: package name -> names in its `[dependencies]`.
fn members() -> BTreeMap<String, BTreeSet<String>> {
    let workspace = toml_of(&root().join("Cargo.toml"));
    let list = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace members");
    let mut out = BTreeMap::new();
    for m in list {
        let dir = root().join(m.as_str().expect("a member path"));
        let manifest = toml_of(&dir.join("Cargo.toml"));
        let name = manifest["package"]["name"]
            .as_str()
            .expect("package name")
            .to_string();
        let deps = manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        out.insert(name, deps);
    }
    out
}

fn workspace_deps(all: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    all[name]
        .iter()
        .filter(|d| all.contains_key(*d))
        .cloned()
        .collect()
}

#[test]
fn engine_crates_depend_only_inward() {
    let all = members();
    let allowed: [(&str, &[&str]); 4] = [
        ("aurigraph-decision", &[]),
        ("aurigraph-onnx", &["aurigraph-decision"]),
        ("aurigraph-wasm", &["aurigraph-decision"]),
        ("aurigraph-ledger", &["aurigraph-decision"]),
    ];
    for (krate, may) in allowed {
        let deps = workspace_deps(&all, krate);
        let may: BTreeSet<String> = may.iter().map(|s| s.to_string()).collect();
        assert!(
            deps.is_subset(&may),
            "{krate} depends on {:?}; it may depend on {may:?} only",
            deps.difference(&may).collect::<Vec<_>>()
        );
    }
    for (krate, may) in [
        (
            "aurigraph-storage",
            &["aurigraph-decision", "aurigraph-ledger"][..],
        ),
        (
            "aurigraph-consensus",
            &["aurigraph-ledger", "aurigraph-storage"][..],
        ),
    ] {
        let deps = workspace_deps(&all, krate);
        let may: BTreeSet<String> = may.iter().map(|s| s.to_string()).collect();
        assert!(deps.is_subset(&may), "{krate} depends on {deps:?}");
    }
}

/// The packages `name` depends on, transitively, from `Cargo.lock` (every version of a
/// package name counts).
fn lock_closure(name: &str) -> BTreeSet<String> {
    let lock = toml_of(&root().join("Cargo.lock"));
    let mut deps_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().expect("packages") {
        let n = p["name"].as_str().expect("name").to_string();
        let deps = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter()
                    // "name" or "name version" when several versions are locked.
                    .map(|s| {
                        s.as_str()
                            .expect("dep")
                            .split(' ')
                            .next()
                            .unwrap()
                            .to_string()
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        deps_of.entry(n).or_default().extend(deps);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        for d in deps_of.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_ledger_builds_without_tract_or_wasmtime() {
    let closure = lock_closure("aurigraph-ledger");
    assert!(
        closure.contains("aurigraph-decision") && closure.contains("ed25519-consensus"),
        "the closure was read: {closure:?}"
    );
    for heavy in ["tract-onnx", "tract-core", "wasmtime", "cranelift-codegen"] {
        assert!(
            !closure.contains(heavy),
            "aurigraph-ledger pulls in {heavy}: replaying a block must not need a model backend"
        );
    }
    // The decision core and the block log neither.
    for krate in ["aurigraph-decision", "aurigraph-consensus"] {
        let closure = lock_closure(krate);
        assert!(
            !closure.contains("tract-onnx") && !closure.contains("wasmtime"),
            "{krate}"
        );
    }
    // Training trains ONNX models; it never needs the WASM runtime.
    assert!(!lock_closure("aurigraph-training").contains("wasmtime"));
}

#[test]
fn the_node_library_has_no_cli_dependencies() {
    let all = members();
    let node = &all["aurigraph-node"];
    for cli_only in [
        "clap",
        "indicatif",
        "plotters",
        "parquet",
        "reqwest",
        "comfy-table",
    ] {
        assert!(
            !node.contains(cli_only),
            "aurigraph-node depends on {cli_only}, which only the command line needs"
        );
    }
    assert!(
        all["aurigraph-cli"].contains("clap"),
        "the manifests were read"
    );
    // The closed loop trains in a child process (`aurigraph train`): the node library never
    // links the training crate or linfa.
    let closure = lock_closure("aurigraph-node");
    for training in [
        "aurigraph-training",
        "linfa",
        "linfa-linear",
        "linfa-logistic",
    ] {
        assert!(
            !closure.contains(training),
            "aurigraph-node pulls in {training}: retraining runs `aurigraph train` as a child process"
        );
    }
}

#[test]
fn nothing_depends_on_the_criterion_benches() {
    let all = members();
    assert!(all.contains_key("aurigraph-benches"));
    for (krate, deps) in &all {
        assert!(
            !deps.contains("aurigraph-benches"),
            "{krate} depends on aurigraph-benches"
        );
    }
}

/// With `autotests = false`, a file in `tests/` runs only if the crate's one test binary
/// declares it: every `tests/*.rs` (and `tests/*/mod.rs`) of every member is a `mod` of its
/// root (or is the root).
#[test]
fn every_test_file_belongs_to_its_crates_test_binary() {
    let workspace = toml_of(&root().join("Cargo.toml"));
    for m in workspace["workspace"]["members"]
        .as_array()
        .expect("members")
    {
        let dir = root().join(m.as_str().expect("a member path"));
        let manifest = toml_of(&dir.join("Cargo.toml"));
        let Some(tests) = manifest.get("test").and_then(|t| t.as_array()) else {
            continue;
        };
        let roots: Vec<PathBuf> = tests
            .iter()
            .filter_map(|t| t.get("path").and_then(|p| p.as_str()))
            .map(|p| dir.join(p))
            .collect();
        let declared: String = roots
            .iter()
            .map(|r| std::fs::read_to_string(r).expect("a test root"))
            .collect();
        for entry in std::fs::read_dir(dir.join("tests")).expect("a tests folder") {
            let path = entry.expect("an entry").path();
            let name = if path.extension().is_some_and(|e| e == "rs") {
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
            } else if path.join("mod.rs").is_file() {
                path.file_name()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
            } else {
                None
            };
            let Some(name) = name else { continue };
            if roots.contains(&path) {
                continue;
            }
            assert!(
                declared.contains(&format!("mod {name};")),
                "{} is in no test binary of {}: add `mod {name};` to its tests root",
                path.display(),
                m.as_str().unwrap_or_default()
            );
        }
    }
}
