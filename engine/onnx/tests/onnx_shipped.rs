//! The models that ship in `models/`: every folder there loads through the real registry
//! and the real `OnnxPolicy` for the slot its manifest declares, passes that slot's
//! conformance suite, and answers decisions through a `SlotHost`. A shipped model the node
//! would refuse (a manifest field the engine does not know, a graph off the contract)
//! fails here, not in front of an operator.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::onnx_support::test_options;
use aurigraph_decision::conformance::{Expect, SuiteConfig, check};
use aurigraph_decision::rollout::Mode;
use aurigraph_decision::{BackendKind, HostConfig, Policy, SlotHost, SlotKind};
use aurigraph_onnx::{Manifest, ModelRegistry, OnnxPolicy};

fn models_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Every folder under `models/` (a folder without `model.toml` is a mistake too).
fn shipped_folders() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(models_root())
        .expect("models/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_shipped_folder_registers_for_its_declared_slot() {
    let folders = shipped_folders();
    assert!(!folders.is_empty(), "no model folders in models/");
    for dir in &folders {
        assert!(
            dir.join("model.toml").is_file(),
            "{}: a folder in models/ without model.toml",
            dir.display()
        );
    }

    let registry = ModelRegistry::new(models_root(), test_options());
    let report = registry.poll();
    assert!(
        report.failed.is_empty(),
        "shipped models the node refuses: {:?}",
        report.failed
    );
    assert_eq!(report.loaded.len(), folders.len(), "{report:?}");
    assert!(registry.errors().is_empty(), "{:?}", registry.errors());

    let mut slots = BTreeSet::new();
    for dir in &folders {
        let m =
            Manifest::read(dir).unwrap_or_else(|e| panic!("{}: [{}] {e}", dir.display(), e.code()));
        assert_eq!(
            dir.file_name().unwrap().to_str().unwrap(),
            m.name,
            "the folder is named after the model"
        );
        let p = registry
            .get(m.slot, &m.name, &m.version)
            .unwrap_or_else(|| panic!("{}/{}@{} not registered", m.slot, m.name, m.version));
        assert_eq!(p.info().slot, m.slot);
        assert_eq!(p.info().backend, BackendKind::Onnx);
        assert_eq!(p.info().schema_version, m.slot.contract().schema_version);
        // Offered to another slot, it is refused with the slot code.
        let other = if m.slot == SlotKind::Ordering {
            SlotKind::Anomaly
        } else {
            SlotKind::Ordering
        };
        let e = OnnxPolicy::load_folder_for(other, dir, &test_options()).unwrap_err();
        assert_eq!(e.code(), "E_SLOT_MISMATCH", "{}: {e}", m.name);

        // Made by training/: the provenance and the held-out metrics are in the manifest.
        let command = m
            .training
            .get("command")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        assert!(
            command.starts_with("cargo run -p aurigraph-training --release -- "),
            "{}: [training] command = {command:?}",
            m.name
        );
        for key in ["seed", "algorithm", "data", "target"] {
            assert!(m.training.contains_key(key), "{}: [training] {key}", m.name);
        }
        assert_eq!(m.metrics.get("seed"), m.training.get("seed"), "{}", m.name);
        assert!(m.metrics.len() > 2, "{}: {:?}", m.name, m.metrics);
        assert!(slots.insert(m.slot), "two shipped models for {}", m.slot);
    }
    // One model per slot (leader_health's trained on recorded chaos runs).
    assert_eq!(
        slots,
        BTreeSet::from([
            SlotKind::Ordering,
            SlotKind::BatchSize,
            SlotKind::Anomaly,
            SlotKind::Demand,
            SlotKind::LeaderHealth,
        ])
    );
}

#[test]
fn every_shipped_model_passes_its_slot_conformance_suite() {
    for dir in shipped_folders() {
        let policy = OnnxPolicy::load_folder(&dir, &test_options())
            .unwrap_or_else(|e| panic!("{}: [{}] {e}", dir.display(), e.code()));
        let slot = policy.info().slot;
        let policy: Arc<dyn Policy> = Arc::new(policy);
        let rep = check(
            slot,
            &|| policy.clone(),
            &Expect::Answers,
            &SuiteConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(rep.decisions > 0, "{}: {rep:?}", dir.display());
        assert_eq!(
            rep.answered_by_policy + rep.timed_out,
            rep.decisions,
            "{}: {rep:?}",
            dir.display()
        );
        assert_eq!(rep.fallbacks, 0, "{}: {rep:?}", dir.display());
    }
}

#[test]
fn a_registered_shipped_model_answers_through_a_host_on_full_canary() {
    let registry = ModelRegistry::new(models_root(), test_options());
    assert!(registry.poll().failed.is_empty());
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(17);
    for summary in registry.list() {
        let key = &summary.key;
        let host = SlotHost::new(key.slot, HostConfig::default()).unwrap();
        host.load_candidate(registry.policy(key.slot, &key.name, &key.version).unwrap())
            .unwrap();
        host.set_mode(Mode::Canary {
            basis_points: 10_000,
        })
        .unwrap();
        let rows = match key.slot.contract().rows {
            aurigraph_decision::slot::Rows::Batch => 64,
            aurigraph_decision::slot::Rows::Single => 1,
        };
        let input = key.slot.sample_input(rows, &mut rng);
        let d = host.decide(1, &input).unwrap();
        assert_eq!(d.tag.fallback, None, "{key}: {:?}", d.tag);
        assert_eq!(d.tag.answered_by.backend, BackendKind::Onnx, "{key}");
        key.slot
            .contract()
            .validate_output(rows, &d.values)
            .unwrap();
    }
}
