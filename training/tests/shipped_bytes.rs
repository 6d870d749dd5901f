//! The committed models are what the documented command makes today: the real
//! `aurigraph-training` binary runs `all --seed 42 --out DIR` into a temporary folder, and
//! every `model.onnx` and `model.toml` it writes is byte-identical to the one in `models/`.
//!
//! When this fails, the code that makes the models (the trainers, the exporter, the
//! workload generator or the engine's admission and features they run) changed what it
//! produces: remake the shipped models with the command below and commit them, with the
//! metrics diff in the message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The command documented in `training/README.md` (each `model.toml` gives the per-slot
/// `train SLOT` form, which writes the same bytes for its model).
const COMMAND: &str = "cargo run -p aurigraph-training --release -- all --seed 42 --out models";

fn models_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn folders(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_documented_command_remakes_the_committed_models_byte_for_byte() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_aurigraph-training"))
        .args(["all", "--seed", "42", "--out"])
        .arg(out.path())
        .output()
        .expect("the training binary runs");
    assert!(
        run.status.success(),
        "`all --seed 42` failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let made = folders(out.path());
    let shipped = folders(&models_root());
    assert_eq!(
        made, shipped,
        "models/ holds exactly the folders `{COMMAND}` writes"
    );
    // One model per seeded slot, and `leader-health-logistic` once recorded chaos runs are
    // committed under `training/data/leader_health` (`all` skips it otherwise).
    let recorded = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/leader_health")
        .is_dir();
    assert_eq!(
        made.len(),
        4 + usize::from(recorded),
        "one model per learnable slot: {made:?}"
    );

    let mut stale = Vec::new();
    for name in &made {
        for file in ["model.onnx", "model.toml"] {
            let fresh = std::fs::read(out.path().join(name).join(file)).unwrap();
            let committed = std::fs::read(models_root().join(name).join(file)).unwrap();
            if fresh != committed {
                stale.push(format!(
                    "{name}/{file} ({} bytes made, {} committed)",
                    fresh.len(),
                    committed.len()
                ));
            }
        }
        // The written folder holds nothing else.
        let mut files: Vec<String> = std::fs::read_dir(out.path().join(name))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["model.onnx", "model.toml"], "{name}");
    }
    assert!(
        stale.is_empty(),
        "the committed models are not what the code makes now: {}. Remake them with `{COMMAND}` \
         and commit them.",
        stale.join(", ")
    );

    // The documented command is the one the README gives.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(COMMAND),
        "training/README.md documents `{COMMAND}`"
    );
}
