//! The watched plugins folder ([`PluginRegistry`]): new, changed, touched, broken, duplicate
//! and removed plugins; one version per slot a plugin implements; the watcher thread; a
//! registered plugin rolled out as a canary through a host and restored after a restart from
//! a `MemoryStore` and a `FileStore`, through [`Registries`] (both backends).
//!
//! The example plugins come from `plugins/dist` (built by `./scripts/build-plugins`); small WAT
//! plugins with a chosen name and version stand in where a test needs several versions.

mod wasm_support;
use wasm_support::BUMP_ALLOCATOR;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aurigraph_engine::backend::Registries;
use aurigraph_engine::backend::wasm::{PluginRegistry, WasmRuntime};
use aurigraph_engine::onnx::{LoadOptions, ModelRegistry};
use aurigraph_engine::rollout::{
    FileStore, MemoryStore, Mode, PolicyRef, PolicyResolver, RolloutStore,
};
use aurigraph_engine::{BackendKind, FeatureMatrix, SlotHost, SlotKind};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn dist(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example plugins first with ./scripts/build-plugins",
        path.display()
    );
    path
}

fn runtime() -> WasmRuntime {
    WasmRuntime::shared().expect("runtime")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A WAT plugin named `name@version` implementing `slots` (each answers zeros, one per row:
/// valid for `ordering` and `anomaly`).
fn wat_plugin(name: &str, version: &str, slots: &[SlotKind]) -> Vec<u8> {
    assert!(name.len() <= 16 && version.len() <= 16 && slots.len() <= 4);
    let index = |s: SlotKind| SlotKind::ALL.iter().position(|x| *x == s).unwrap() as u32;
    let export = |s: SlotKind| match s {
        SlotKind::Ordering => "ordering",
        SlotKind::Anomaly => "anomaly",
        other => panic!("the WAT test plugin answers per-row slots only, not {other}"),
    };
    let decls: Vec<u8> = slots
        .iter()
        .flat_map(|s| [index(*s).to_le_bytes(), 1u32.to_le_bytes()].concat())
        .collect();
    let info: Vec<u8> = [
        64u32,
        name.len() as u32,
        80,
        version.len() as u32,
        96,
        slots.len() as u32,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect();
    let exports: String = slots
        .iter()
        .map(|s| format!(r#"(export "{}" (func $zeros))"#, export(*s)))
        .collect();
    let text = format!(
        r#"(module
{BUMP_ALLOCATOR}
  (data (i32.const 64) "{name}")
  (data (i32.const 80) "{version}")
  (data (i32.const 96) "{decls}")
  (data (i32.const 128) "{info}")
  (func (export "metadata") (result i32) (i32.const 128))
  (func $zeros (param $ptr i32) (param $len i32) (param $rows i32) (result i32)
    (i32.store (i32.const 160) (i32.const 0))
    (i32.store (i32.const 164) (call $alloc (i32.shl (local.get $rows) (i32.const 2))))
    (i32.store (i32.const 168) (local.get $rows))
    (i32.const 160))
  {exports})"#,
        decls = hex(&decls),
        info = hex(&info),
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("test WAT does not parse: {e}\n{text}"))
}

/// Writes `bytes` to `path` atomically (temporary name, then rename), as an operator should.
fn put(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn keys(rep: &[aurigraph_engine::onnx::ModelKey]) -> Vec<String> {
    let mut k: Vec<String> = rep.iter().map(ToString::to_string).collect();
    k.sort();
    k
}

#[test]
fn new_changed_touched_broken_duplicate_and_removed_plugins() {
    let root = tempfile::tempdir().unwrap();
    let reg = PluginRegistry::new(root.path(), runtime());
    let rep = reg.poll();
    assert!(rep.loaded.is_empty() && rep.failed.is_empty() && rep.removed.is_empty());

    // New: a plugin file, a plugin folder, and files that are not plugins (ignored).
    std::fs::copy(dist("fee-per-byte"), root.path().join("fee-per-byte.wasm")).unwrap();
    let folder = root.path().join("sender-rate");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(dist("sender-rate"), folder.join("plugin.wasm")).unwrap();
    std::fs::write(root.path().join("README.md"), b"not a plugin").unwrap();
    std::fs::create_dir(root.path().join("empty-folder")).unwrap();
    let rep = reg.poll();
    assert_eq!(
        keys(&rep.loaded),
        ["anomaly/sender-rate@1.0.0", "ordering/fee-per-byte@1.0.0"],
        "{rep:?}"
    );
    assert!(rep.failed.is_empty(), "{rep:?}");
    assert!(
        reg.get(SlotKind::Ordering, "fee-per-byte", "1.0.0")
            .is_some()
    );
    assert!(reg.get(SlotKind::Anomaly, "sender-rate", "1.0.0").is_some());
    assert!(
        reg.get(SlotKind::Anomaly, "fee-per-byte", "1.0.0")
            .is_none()
    );
    let listed = reg.list();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].key.to_string(), "ordering/fee-per-byte@1.0.0");
    assert_eq!(listed[0].blake3.len(), 64);
    assert!(listed[1].path.ends_with("sender-rate"));

    // Nothing changed: nothing reloaded.
    let rep = reg.poll();
    assert!(rep.loaded.is_empty() && rep.removed.is_empty());
    assert_eq!(rep.unchanged, 2);

    // Touched (new modification time, same bytes): recognised by its hash, not reloaded.
    let f = std::fs::File::options()
        .write(true)
        .open(root.path().join("fee-per-byte.wasm"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(f);
    let rep = reg.poll();
    assert!(rep.loaded.is_empty(), "{rep:?}");
    assert_eq!(rep.unchanged, 2);

    // Broken: a new file that is not wasm is reported with its code; nothing else moves.
    let v2 = root.path().join("v2.wasm");
    put(&v2, b"\0asm not really");
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1, "{rep:?}");
    assert_eq!(rep.failed[0].code, "E_WASM_COMPILE");
    assert!(rep.failed[0].folder.ends_with("v2.wasm"));
    assert_eq!(reg.errors().len(), 1);
    assert_eq!(reg.list().len(), 2);
    // Still broken at the next poll: not reported again, still listed in errors().
    let rep = reg.poll();
    assert!(rep.failed.is_empty());
    assert_eq!(reg.errors().len(), 1);

    // Fixed: it registers (as another version) and the error clears.
    put(&v2, &wat_plugin("wat", "2.0.0", &[SlotKind::Ordering]));
    let rep = reg.poll();
    assert_eq!(keys(&rep.loaded), ["ordering/wat@2.0.0"], "{rep:?}");
    assert!(reg.errors().is_empty(), "{:?}", reg.errors());

    // Changed: the same file now holds version 3, which implements two slots: version 2
    // goes, version 3 registers once per slot.
    put(
        &v2,
        &wat_plugin("wat", "3.0.0", &[SlotKind::Ordering, SlotKind::Anomaly]),
    );
    let rep = reg.poll();
    assert_eq!(
        keys(&rep.loaded),
        ["anomaly/wat@3.0.0", "ordering/wat@3.0.0"],
        "{rep:?}"
    );
    assert_eq!(keys(&rep.removed), ["ordering/wat@2.0.0"]);
    assert!(reg.get(SlotKind::Ordering, "wat", "2.0.0").is_none());
    let summary = reg
        .list()
        .into_iter()
        .find(|s| s.key.to_string() == "anomaly/wat@3.0.0")
        .unwrap();
    assert_eq!(summary.slots, [SlotKind::Ordering, SlotKind::Anomaly]);

    // A changed plugin that fails to load keeps its registered versions.
    put(&v2, b"truncated");
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1);
    assert!(rep.removed.is_empty());
    assert!(reg.get(SlotKind::Anomaly, "wat", "3.0.0").is_some());
    put(
        &v2,
        &wat_plugin("wat", "3.0.0", &[SlotKind::Ordering, SlotKind::Anomaly]),
    );
    let rep = reg.poll();
    assert_eq!(rep.loaded.len(), 2, "{rep:?}");
    assert!(reg.errors().is_empty());

    // Duplicate: another file claiming a version already registered (one of its slots is
    // enough) is refused whole, with its code; the first stays.
    let dup = root.path().join("zz-duplicate.wasm");
    put(&dup, &wat_plugin("wat", "3.0.0", &[SlotKind::Anomaly]));
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1, "{rep:?}");
    assert_eq!(rep.failed[0].code, "E_WASM_DUPLICATE");
    assert!(
        rep.failed[0].reason.contains("anomaly/wat@3.0.0"),
        "{rep:?}"
    );
    assert!(rep.loaded.is_empty());
    assert_eq!(reg.errors().len(), 1);

    // Removed: the original goes, its versions unregister, and the refused duplicate gets
    // its turn at the next poll.
    std::fs::remove_file(&v2).unwrap();
    let rep = reg.poll();
    assert_eq!(
        keys(&rep.removed),
        ["anomaly/wat@3.0.0", "ordering/wat@3.0.0"],
        "{rep:?}"
    );
    let rep = reg.poll();
    assert_eq!(keys(&rep.loaded), ["anomaly/wat@3.0.0"], "{rep:?}");
    assert!(reg.errors().is_empty(), "{:?}", reg.errors());
    assert!(
        reg.list()
            .iter()
            .any(|s| s.path.ends_with("zz-duplicate.wasm"))
    );

    // Removing a plugin folder unregisters it too.
    std::fs::remove_dir_all(&folder).unwrap();
    let rep = reg.poll();
    assert_eq!(keys(&rep.removed), ["anomaly/sender-rate@1.0.0"]);

    // Unload: gone until its module changes.
    assert!(reg.unload(SlotKind::Ordering, "fee-per-byte", "1.0.0"));
    assert!(!reg.unload(SlotKind::Ordering, "fee-per-byte", "1.0.0"));
    let rep = reg.poll();
    assert!(rep.loaded.is_empty());
    let missing = reg.policy(SlotKind::Ordering, "fee-per-byte", "1.0.0");
    assert_eq!(
        missing.err().map(|e| e.code()),
        Some("E_WASM_NOT_REGISTERED")
    );
}

#[test]
fn an_unreadable_plugins_folder_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let reg = PluginRegistry::new(root.path().join("missing"), runtime());
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1);
    assert_eq!(rep.failed[0].code, "E_WASM_IO");
    assert_eq!(reg.errors().len(), 1);
    std::fs::create_dir(root.path().join("missing")).unwrap();
    let rep = reg.poll();
    assert!(rep.failed.is_empty());
    assert!(reg.errors().is_empty());
}

fn ordering_input() -> FeatureMatrix {
    SlotKind::Ordering.sample_input(100, &mut SmallRng::seed_from_u64(1))
}

/// Rolls `conflict-aware` out as a canary from the registry, then restarts (new registries,
/// new host, same store) and checks the candidate comes back through [`Registries`].
fn canary_then_restart(store: Arc<dyn RolloutStore>, reopen: &dyn Fn() -> Arc<dyn RolloutStore>) {
    let plugins_root = tempfile::tempdir().unwrap();
    let models_root = tempfile::tempdir().unwrap();
    std::fs::copy(
        dist("conflict-aware"),
        plugins_root.path().join("conflict-aware.wasm"),
    )
    .unwrap();
    let registries = |poll: bool| {
        let plugins = Arc::new(PluginRegistry::new(plugins_root.path(), runtime()));
        let models = Arc::new(ModelRegistry::new(
            models_root.path(),
            LoadOptions::default(),
        ));
        if poll {
            plugins.poll();
            models.poll();
        }
        Arc::new(Registries::new(models, plugins.clone()))
    };
    let regs = registries(true);
    let plugins = regs.plugins.clone().unwrap();
    let host = SlotHost::builder(SlotKind::Ordering)
        .store(store, regs.clone())
        .build()
        .unwrap();
    let input = ordering_input();
    // Registered, but the static policy still answers until a rollout says otherwise.
    assert_eq!(
        host.decide(1, &input).unwrap().tag.answered_by.backend,
        BackendKind::Static
    );
    host.load_candidate(
        plugins
            .policy(SlotKind::Ordering, "conflict-aware", "1.0.0")
            .unwrap(),
    )
    .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 5_000,
    })
    .unwrap();
    let answered: Vec<(u64, BackendKind)> = (0..200)
        .map(|k| (k, host.decide(k, &input).unwrap().tag.answered_by.backend))
        .collect();
    let on_wasm = answered
        .iter()
        .filter(|(_, b)| *b == BackendKind::Wasm)
        .count();
    assert!(
        (50..150).contains(&on_wasm),
        "{on_wasm} of 200 on the canary"
    );

    // Unloading from the registry does not touch the live candidate.
    plugins.unload(SlotKind::Ordering, "conflict-aware", "1.0.0");
    let k = answered
        .iter()
        .find(|(_, b)| *b == BackendKind::Wasm)
        .unwrap()
        .0;
    assert_eq!(
        host.decide(k, &input).unwrap().tag.answered_by.backend,
        BackendKind::Wasm
    );
    drop(host);

    // Restart: fresh registries (polled) and a fresh host on the same store. The WASM
    // candidate is restored at the same share, with the same sticky routing.
    let host2 = SlotHost::builder(SlotKind::Ordering)
        .store(reopen(), registries(true))
        .build()
        .unwrap();
    assert_eq!(
        host2.status().mode,
        Mode::Canary {
            basis_points: 5_000
        }
    );
    for (key, backend) in &answered {
        let d = host2.decide(*key, &input).unwrap();
        assert_eq!(
            d.tag.answered_by.backend, *backend,
            "key {key}: {:?}",
            d.tag
        );
    }

    // A restart where the plugin is gone from the folder: the candidate cannot be resolved,
    // the host starts on static rather than failing.
    std::fs::remove_file(plugins_root.path().join("conflict-aware.wasm")).unwrap();
    let host3 = SlotHost::builder(SlotKind::Ordering)
        .store(reopen(), registries(true))
        .build()
        .unwrap();
    assert!(host3.status().candidate.is_none());
    assert_eq!(
        host3.decide(1, &input).unwrap().tag.answered_by.backend,
        BackendKind::Static
    );
}

#[test]
fn a_registered_plugin_rolled_out_as_canary_is_restored_after_restart_memory_store() {
    let store = MemoryStore::new();
    let again = store.clone();
    canary_then_restart(store, &move || again.clone());
}

#[test]
fn a_registered_plugin_rolled_out_as_canary_is_restored_after_restart_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    canary_then_restart(FileStore::open(&path).unwrap(), &move || {
        FileStore::open(&path).unwrap()
    });
}

#[test]
fn resolvers_answer_by_backend() {
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(dist("sender-rate"), root.path().join("sender-rate.wasm")).unwrap();
    let plugins = Arc::new(PluginRegistry::new(root.path(), runtime()));
    plugins.poll();
    let r = |backend| PolicyRef {
        backend,
        name: "sender-rate".into(),
        version: "1.0.0".into(),
    };
    let p = plugins
        .resolve(SlotKind::Anomaly, &r(BackendKind::Wasm))
        .unwrap();
    assert_eq!(p.info().label(), "wasm:sender-rate@1.0.0");
    let e = plugins
        .resolve(SlotKind::Anomaly, &r(BackendKind::Onnx))
        .err()
        .expect("refused");
    assert!(e.contains("not a WASM plugin"), "{e}");
    let e = plugins
        .resolve(SlotKind::Ordering, &r(BackendKind::Wasm))
        .err()
        .expect("refused");
    assert!(e.contains("E_WASM_NOT_REGISTERED"), "{e}");

    let only_plugins = Registries {
        models: None,
        plugins: Some(plugins.clone()),
    };
    assert!(
        only_plugins
            .resolve(SlotKind::Anomaly, &r(BackendKind::Wasm))
            .is_ok()
    );
    let e = only_plugins
        .resolve(SlotKind::Anomaly, &r(BackendKind::Onnx))
        .err()
        .expect("refused");
    assert!(e.contains("no models registry"), "{e}");
    let models = Arc::new(ModelRegistry::new(root.path(), LoadOptions::default()));
    let both = Registries::new(models, plugins);
    let e = both
        .resolve(SlotKind::Anomaly, &r(BackendKind::Onnx))
        .err()
        .expect("refused");
    assert!(e.contains("E_MODEL_NOT_FOUND"), "{e}");
    assert!(
        both.resolve(SlotKind::Anomaly, &r(BackendKind::Static))
            .is_err()
    );
}

#[test]
fn the_watcher_picks_up_a_new_plugin() {
    let root = tempfile::tempdir().unwrap();
    let reg = Arc::new(PluginRegistry::new(root.path(), runtime()));
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = reg
        .watch(Duration::from_millis(30), move |rep| {
            let _ = tx.send(rep.loaded.clone());
        })
        .unwrap();
    put(
        &root.path().join("fee-per-byte.wasm"),
        &std::fs::read(dist("fee-per-byte")).unwrap(),
    );
    let loaded = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(keys(&loaded), ["ordering/fee-per-byte@1.0.0"]);
    drop(watcher);
    assert!(
        reg.get(SlotKind::Ordering, "fee-per-byte", "1.0.0")
            .is_some()
    );
}
