//! The watched models folder: new, changed, broken, removed and unloaded folders; the
//! rollout of a registered version through a host; restore after a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::onnx_support::*;
use aurigraph_decision::rollout::{MemoryStore, Mode, PolicyRef, PolicyResolver};
use aurigraph_decision::{BackendKind, SlotHost, SlotKind};
use aurigraph_onnx::{LoadOptions, ModelRegistry};

fn options() -> LoadOptions {
    test_options()
}

fn set_version(dir: &std::path::Path, version: &str) {
    let p = dir.join("model.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replace("version = \"1.0.0\"", &format!("version = \"{version}\""));
    std::fs::write(p, text).unwrap();
}

#[test]
fn new_changed_broken_and_removed_folders() {
    let root = tempfile::tempdir().unwrap();
    let reg = ModelRegistry::new(root.path(), options());
    let rep = reg.poll();
    assert!(rep.loaded.is_empty() && rep.failed.is_empty());

    let mlp = copy_fixture("torch_mlp", root.path(), "mlp");
    copy_fixture("sklearn_logreg", root.path(), "logreg");
    let rep = reg.poll();
    assert_eq!(rep.loaded.len(), 2, "{rep:?}");
    assert!(reg.get(SlotKind::Ordering, "torch-mlp", "1.0.0").is_some());
    assert!(
        reg.get(SlotKind::Anomaly, "sklearn-logreg", "1.0.0")
            .is_some()
    );
    assert_eq!(reg.list().len(), 2);

    // Nothing changed: nothing reloaded.
    let rep = reg.poll();
    assert!(rep.loaded.is_empty());
    assert_eq!(rep.unchanged, 2);

    // A broken copy of the model in a new folder: reported with its code; the registered
    // versions are untouched.
    let broken = copy_fixture("torch_mlp", root.path(), "mlp-broken");
    set_version(&broken, "2.0.0");
    std::fs::write(broken.join("model.onnx"), b"not onnx at all").unwrap();
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1, "{rep:?}");
    assert_eq!(rep.failed[0].code, "E_ONNX_PARSE");
    assert_eq!(reg.errors().len(), 1);
    assert_eq!(reg.list().len(), 2);

    // Fixed: it loads as version 2 next to version 1, and the error clears.
    std::fs::copy(mlp.join("model.onnx"), broken.join("model.onnx")).unwrap();
    let rep = reg.poll();
    assert_eq!(rep.loaded.len(), 1, "{rep:?}");
    assert!(reg.errors().is_empty());
    assert!(reg.get(SlotKind::Ordering, "torch-mlp", "2.0.0").is_some());

    // A changed folder that fails keeps its previous version registered.
    std::fs::write(broken.join("model.onnx"), b"truncated").unwrap();
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1);
    assert!(reg.get(SlotKind::Ordering, "torch-mlp", "2.0.0").is_some());

    // Two folders declaring the same name and version: the second is refused. A poll
    // reports what changed; the still-broken folder stays listed in `errors()`.
    copy_fixture("torch_mlp", root.path(), "zz-duplicate");
    let rep = reg.poll();
    assert_eq!(rep.failed.len(), 1, "{rep:?}");
    assert_eq!(rep.failed[0].code, "E_MANIFEST");
    assert_eq!(reg.errors().len(), 2);
    std::fs::remove_dir_all(root.path().join("zz-duplicate")).unwrap();

    // Removed folder: unregistered.
    std::fs::remove_dir_all(&broken).unwrap();
    let rep = reg.poll();
    assert_eq!(rep.removed.len(), 1, "{rep:?}");
    assert!(reg.get(SlotKind::Ordering, "torch-mlp", "2.0.0").is_none());
    assert!(reg.errors().is_empty(), "{:?}", reg.errors());

    // Unload: gone until its folder changes.
    assert!(reg.unload(SlotKind::Anomaly, "sklearn-logreg", "1.0.0"));
    assert!(!reg.unload(SlotKind::Anomaly, "sklearn-logreg", "1.0.0"));
    let rep = reg.poll();
    assert!(rep.loaded.is_empty());
    assert!(
        reg.get(SlotKind::Anomaly, "sklearn-logreg", "1.0.0")
            .is_none()
    );
    let missing = reg.policy(SlotKind::Anomaly, "sklearn-logreg", "1.0.0");
    assert_eq!(missing.err().map(|e| e.code()), Some("E_MODEL_NOT_FOUND"));
}

#[test]
fn a_registered_version_goes_live_only_through_a_rollout_and_is_restored() {
    let root = tempfile::tempdir().unwrap();
    copy_fixture("torch_mlp", root.path(), "mlp");
    let reg = Arc::new(ModelRegistry::new(root.path(), options()));
    reg.poll();
    let store = MemoryStore::new();
    let host = SlotHost::builder(SlotKind::Ordering)
        .store(store.clone(), reg.clone())
        .build()
        .unwrap();
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
    let input = SlotKind::Ordering.sample_input(100, &mut rng);
    // Registered, but the static policy still answers.
    assert_eq!(
        host.decide(1, &input).unwrap().tag.answered_by.backend,
        BackendKind::Static
    );
    host.load_candidate(
        reg.policy(SlotKind::Ordering, "torch-mlp", "1.0.0")
            .unwrap(),
    )
    .unwrap();
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    let d = host.decide(1, &input).unwrap();
    assert_eq!(d.tag.answered_by.backend, BackendKind::Onnx, "{:?}", d.tag);

    // Unloading from the registry does not touch the live candidate.
    reg.unload(SlotKind::Ordering, "torch-mlp", "1.0.0");
    assert_eq!(
        host.decide(2, &input).unwrap().tag.answered_by.backend,
        BackendKind::Onnx
    );

    // After a restart the registry resolves the persisted candidate again.
    let reg2 = Arc::new(ModelRegistry::new(root.path(), options()));
    reg2.poll();
    let host2 = SlotHost::builder(SlotKind::Ordering)
        .store(store, reg2.clone())
        .build()
        .unwrap();
    assert_eq!(
        host2.decide(1, &input).unwrap().tag.answered_by.backend,
        BackendKind::Onnx
    );
    let wrong = PolicyRef {
        backend: BackendKind::Wasm,
        name: "torch-mlp".into(),
        version: "1.0.0".into(),
    };
    assert!(reg2.resolve(SlotKind::Ordering, &wrong).is_err());
}

#[test]
fn the_watcher_picks_up_a_new_folder() {
    let root = tempfile::tempdir().unwrap();
    let reg = Arc::new(ModelRegistry::new(root.path(), options()));
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = reg
        .watch(Duration::from_millis(50), move |rep| {
            let _ = tx.send(rep.loaded.clone());
        })
        .unwrap();
    copy_fixture("sklearn_ridge", root.path(), "ridge");
    let loaded = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name, "sklearn-ridge");
    drop(watcher);
}
