//! 1,000 load-and-swap cycles of an ONNX model through a `SlotHost`: resident memory may
//! grow by at most 5%. Alone in its test binary, so no other test moves the measure.
//!
//! Each cycle loads the committed PyTorch MLP fixture from its bytes (parse, checks,
//! optimisation of the symbolic plan and of every bucket plan, warm-up, timing), loads it
//! as the candidate (the host's own warm-up), promotes it (the previous baseline is
//! dropped) and takes a decision on it. Resident memory is read from `/proc/self/status`
//! (`VmRSS`) after 100 cycles of settling (allocator arenas, thread stacks, lazy statics)
//! and again after 1,000 more.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aurigraph_decision::{BackendKind, FallbackReason, HostConfig, SlotHost, SlotKind};
use aurigraph_onnx::{LoadOptions, Manifest, OnnxPolicy};

/// A committed fixture model folder (the other tests have `onnx_support::fixture`).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

fn vm_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_thousand_load_and_swap_cycles_do_not_grow_memory() {
    let Some(_) = vm_rss_kb() else {
        eprintln!("no /proc/self/status: skipped");
        return;
    };
    let bytes = std::fs::read(fixture("torch_mlp").join("model.onnx")).unwrap();
    let base = Manifest::read(&fixture("torch_mlp")).unwrap();
    // The timed batch is kept small so the test stays fast; everything else is the real
    // load path, bucket plans included.
    let options = LoadOptions {
        timed_rows: 256,
        ..LoadOptions::default()
    };
    let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).unwrap();
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(11);
    let input = SlotKind::Ordering.sample_input(300, &mut rng);
    // Each cycle's decision must be answered by the model just promoted. A timeout (or all
    // workers busy) is what a loaded machine does to a 20 ms deadline: counted, at most 1%
    // of the cycles may see one; any other fallback fails the test.
    let late = std::cell::Cell::new(0usize);
    let cycle = |i: usize| {
        let mut m = base.clone();
        m.version = format!("{i}");
        let p = OnnxPolicy::from_bytes(m, &bytes, &options).unwrap();
        match host.load_candidate(Arc::new(p)) {
            Ok(()) => {}
            // Warm-up timed against the deadline on a loaded machine: counted like a late
            // decision; the running version stays.
            Err(e @ aurigraph_decision::EngineError::WarmupFailed { .. }) => {
                eprintln!("cycle {i}: {e}");
                late.set(late.get() + 1);
                return;
            }
            Err(e) => panic!("cycle {i}: load refused: {e}"),
        }
        host.promote().unwrap();
        let d = host.decide(i as u64, &input).unwrap();
        match d.tag.fallback {
            None => assert_eq!(d.tag.answered_by.backend, BackendKind::Onnx, "{:?}", d.tag),
            Some(FallbackReason::Timeout | FallbackReason::Busy) => late.set(late.get() + 1),
            Some(other) => panic!("cycle {i}: the promoted model fell back: {other:?}"),
        }
    };
    for i in 0..100 {
        cycle(i);
    }
    let before = vm_rss_kb().unwrap();
    for i in 100..1100 {
        cycle(i);
    }
    let after = vm_rss_kb().unwrap();
    let growth = (after as f64 - before as f64) / before as f64;
    eprintln!(
        "VmRSS after 100 cycles {before} kB, after 1,100 {after} kB: {:+.2}%",
        growth * 100.0
    );
    assert!(
        late.get() <= 11,
        "{} of 1,100 warm-ups or decisions missed their deadline",
        late.get()
    );
    assert!(
        growth <= 0.05,
        "resident memory grew {:.1}% ({before} kB -> {after} kB)",
        growth * 100.0
    );
}
