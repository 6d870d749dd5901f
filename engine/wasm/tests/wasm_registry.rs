//! The watched plugins folder ([`PluginRegistry`]): new, changed, touched, broken, duplicate
//! and removed plugins; one version per slot a plugin implements; the watcher thread. The
//! node's tests (`node/tests/registries.rs`) roll a registered plugin out as a canary and
//! restore it after a restart through the node's resolver of both registries.
//!
//! The example plugins come from `plugins/dist` (built by `./scripts/build-plugins`); small WAT
//! plugins with a chosen name and version stand in where a test needs several versions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::wasm_support::BUMP_ALLOCATOR;
use aurigraph_decision::SlotKind;
use aurigraph_wasm::{PluginRegistry, WasmRuntime};

fn dist(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/dist")
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

fn keys(rep: &[aurigraph_decision::registry::ModelKey]) -> Vec<String> {
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
