//! Same seed, same bytes; and the shipped models in `models/` fit their contracts.

use std::path::Path;

use aurigraph_decision::SlotKind;
use aurigraph_training::onnx::eval::{Tensor, run};
use aurigraph_training::{TrainConfig, TrainableSlot};
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[test]
fn same_seed_writes_identical_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for slot in [TrainableSlot::Anomaly, TrainableSlot::Demand] {
        let fa = slot
            .train(&TrainConfig::small(11))
            .unwrap()
            .write(a.path())
            .unwrap();
        let fb = slot
            .train(&TrainConfig::small(11))
            .unwrap()
            .write(b.path())
            .unwrap();
        assert_eq!(fa.onnx, fb.onnx, "{slot}");
        assert_eq!(fa.toml, fb.toml, "{slot}");
        let name = fa.dir.file_name().unwrap();
        for file in ["model.onnx", "model.toml"] {
            assert_eq!(
                std::fs::read(a.path().join(name).join(file)).unwrap(),
                std::fs::read(b.path().join(name).join(file)).unwrap()
            );
        }
        assert!(!fa.toml.contains("date"), "manifests are date-free");
        let other = slot
            .train(&TrainConfig::small(12))
            .unwrap()
            .encode()
            .unwrap();
        assert_ne!(other.0, fa.onnx, "another seed, another model");
    }
}

#[test]
fn shipped_models_fit_their_contracts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut rng = SmallRng::seed_from_u64(1);
    let mut found = 0;
    for slot in TrainableSlot::ALL {
        let kind: SlotKind = slot.kind();
        let contract = kind.contract();
        let dirs: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                std::fs::read_to_string(p.join("model.toml")).is_ok_and(|t| {
                    t.contains(&format!("slot = \"{kind}\""))
                        && t.contains("[training]")
                        && t.contains("aurigraph-training")
                })
            })
            .collect();
        assert_eq!(dirs.len(), 1, "one trained model for {kind} in models/");
        let toml = std::fs::read_to_string(dirs[0].join("model.toml")).unwrap();
        assert!(toml.contains(&format!("schema = {}", contract.schema_version)));
        assert!(toml.contains("[metrics]"));
        let bytes = std::fs::read(dirs[0].join("model.onnx")).unwrap();
        let input = kind.sample_input(50, &mut rng);
        let out = run(
            &bytes,
            &Tensor {
                shape: vec![input.rows(), input.cols()],
                data: input.as_slice().to_vec(),
            },
        )
        .unwrap();
        contract.validate_output(input.rows(), &out.data).unwrap();
        found += 1;
    }
    assert_eq!(found, 4);
}
