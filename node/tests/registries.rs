//! The node's [`Registries`] (the models and plugins registries behind one resolver): a
//! registered plugin rolled out as a canary through a host and restored after a restart from
//! a `MemoryStore` and a `FileStore`; refs resolved by their backend.
//!
//! The example plugins come from `plugins/dist` (built by `./scripts/build-plugins`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aurigraph_decision::rollout::{
    FileStore, MemoryStore, Mode, PolicyRef, PolicyResolver, RolloutStore,
};
use aurigraph_decision::{BackendKind, FeatureMatrix, SlotHost, SlotKind};
use aurigraph_node::registries::Registries;
use aurigraph_onnx::{LoadOptions, ModelRegistry};
use aurigraph_wasm::{PluginRegistry, WasmRuntime};
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

fn ordering_input() -> FeatureMatrix {
    SlotKind::Ordering.sample_input(100, &mut SmallRng::seed_from_u64(1))
}

/// Rolls `conflict-aware` out as a canary from the registry, then restarts (new registries,
/// new host, same store) and checks the candidate comes back through [`Registries`].
fn canary_then_restart(store: Arc<dyn RolloutStore>, reopen: &dyn Fn() -> Arc<dyn RolloutStore>) {
    let _machine = crate::MACHINE.blocking_lock();
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
    assert!(e.to_string().contains("not a WASM plugin"), "{e}");
    assert_eq!(e.code(), "E_RESOLVE_BACKEND");
    let e = plugins
        .resolve(SlotKind::Ordering, &r(BackendKind::Wasm))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("E_WASM_NOT_REGISTERED"), "{e}");
    assert_eq!(e.code(), "E_WASM_NOT_REGISTERED");

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
    assert!(e.to_string().contains("no models registry"), "{e}");
    assert_eq!(e.code(), "E_RESOLVE_NO_REGISTRY");
    let models = Arc::new(ModelRegistry::new(root.path(), LoadOptions::default()));
    let both = Registries::new(models, plugins);
    let e = both
        .resolve(SlotKind::Anomaly, &r(BackendKind::Onnx))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("E_MODEL_NOT_FOUND"), "{e}");
    assert!(
        both.resolve(SlotKind::Anomaly, &r(BackendKind::Static))
            .is_err()
    );
}
