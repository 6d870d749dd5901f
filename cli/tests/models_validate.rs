//! `aurigraph models validate`, run as the real binary: exit 0 for a folder that loads,
//! exit 1 with a one-line reason and a stable code (or JSON) otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/onnx/tests/fixtures/onnx")
        .join(name)
}

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .args(["models", "validate"])
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_good_folder_exits_zero() {
    let dir = fixture("torch_mlp");
    let out = validate(&[dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.starts_with("ok: torch-mlp@1.0.0 loads for `ordering`"),
        "{s}"
    );

    let out = validate(&[dir.join("model.toml").to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["slot"], "ordering");
    assert_eq!(v["report"]["output"], "output");
}

#[test]
fn every_fixture_validates() {
    for name in [
        "sklearn_ridge",
        "sklearn_mlp",
        "sklearn_gbr",
        "sklearn_logreg",
        "sklearn_logreg_zipmap",
        "sklearn_gbr_batch_size",
        "torch_mlp",
        "torch_demand",
    ] {
        // 1,000 timed rows: the test binary is a dev build (see engine/onnx/tests/onnx_support).
        let out = validate(&[
            fixture(name).to_str().unwrap(),
            "--json",
            "--timed-rows",
            "1000",
        ]);
        assert!(out.status.success(), "{name}: {}", text(&out.stdout));
    }
}

#[test]
fn a_leader_health_model_of_schema_1_is_refused_with_its_code() {
    // Built for the 9-column schema the slot had before version 2.
    let out = validate(&[fixture("sklearn_logreg_leader").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("E_SCHEMA_VERSION")
            || text(&out.stderr).contains("E_SCHEMA_VERSION"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_bad_folder_exits_one_with_a_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broken");
    std::fs::create_dir(&dir).unwrap();
    let good = std::fs::read(fixture("torch_mlp").join("model.onnx")).unwrap();
    std::fs::write(dir.join("model.onnx"), &good[..good.len() / 2]).unwrap();
    std::fs::write(
        dir.join("model.toml"),
        "name = \"broken\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1\n",
    )
    .unwrap();

    let out = validate(&[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error [E_ONNX_PARSE] "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");

    let out = validate(&[dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["code"], "E_ONNX_PARSE", "{v}");
    assert!(!v["reason"].as_str().unwrap().is_empty());

    // A schema mismatch, a missing manifest, a missing folder.
    std::fs::write(dir.join("model.onnx"), &good).unwrap();
    std::fs::write(
        dir.join("model.toml"),
        "name = \"old\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 0\n",
    )
    .unwrap();
    let out = validate(&[dir.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "E_SCHEMA_VERSION", "{v}");
    std::fs::remove_file(dir.join("model.toml")).unwrap();
    let out = validate(&[dir.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "E_MANIFEST", "{v}");
    let out = validate(&[tmp.path().join("nope").to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "E_IO", "{v}");
}

#[test]
fn a_model_too_slow_for_a_tight_deadline_is_refused() {
    let out = validate(&[
        fixture("sklearn_gbr").to_str().unwrap(),
        "--deadline-ms",
        "0.001",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "E_ONNX_TOO_SLOW", "{v}");
}

#[test]
fn model_toml_inside_the_folder_validates_the_current_folder() {
    // `cd models/x && aurigraph models validate model.toml`: the parent of a bare file name
    // is "", which is the current folder, not a path that cannot be read.
    let dir = fixture("torch_mlp");
    let out = Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .current_dir(&dir)
        .args(["models", "validate", "model.toml", "--json"])
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["name"], "torch-mlp");

    let out = Command::new(env!("CARGO_BIN_EXE_aurigraph"))
        .current_dir(&dir)
        .args(["models", "validate", "."])
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn every_shipped_model_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let out = validate(&[dir.to_str().unwrap(), "--json", "--timed-rows", "1000"]);
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            text(&out.stdout)
        );
        n += 1;
    }
    assert_eq!(n, 5, "the five shipped models (one per slot)");
}
