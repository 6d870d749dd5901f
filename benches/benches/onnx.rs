//! The ONNX backend: inference latency per model for 1 row and 10,000 rows, the effect of
//! plans specialised by batch-size bucket, load time, and 1,000 load-and-swap cycles
//! through a `SlotHost` with resident-memory growth.
//!
//! Models: the committed compatibility fixtures (`engine/onnx/tests/fixtures/onnx/`) and every
//! shipped model folder in `models/` (made by `training/`). A folder that does not load
//! stops the bench with its code (a shipped model the node refuses is a bug, not a row to
//! skip), and so does a `models/` without the four shipped models. Each evaluation runs on
//! the calling thread (tract is single-threaded here), so the figures are one core's.
//! Target (issue 3): `ordering`, 10,000 rows in at most 2 ms.
//!
//! After the criterion groups, the load-and-swap cycle prints `VmRSS` before and after and
//! fails (exit 1) when resident memory grew by more than 5%, or when more than 1% of its
//! decisions missed the deadline (any other fallback stops it at once).
//!
//! Run: `cargo bench -p aurigraph-benches --bench onnx -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurigraph_decision::{BackendKind, FallbackReason, HostConfig, Policy, SlotHost, SlotKind};
use aurigraph_onnx::{LoadOptions, Manifest, OnnxPolicy};
use criterion::{BenchmarkId, Criterion};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped models: one per learnable slot (`leader_health` runs static).
const SHIPPED_MODELS: usize = 4;

/// Fixture and shipped model folders. Panics when a folder cannot be read or when
/// `models/` does not hold the shipped models.
fn model_folders() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (kind, dir) in [
        ("fixture", root().join("engine/onnx/tests/fixtures/onnx")),
        ("shipped", root().join("models")),
    ] {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        let mut dirs: Vec<PathBuf> = entries
            .map(|e| e.expect("readable folder entry").path())
            .filter(|p| p.is_dir())
            .collect();
        if kind == "shipped" {
            assert_eq!(
                dirs.len(),
                SHIPPED_MODELS,
                "models/ should hold the {SHIPPED_MODELS} shipped models: {dirs:?}"
            );
        }
        dirs.sort();
        for d in dirs {
            let name = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.push((format!("{kind}/{name}"), d));
        }
    }
    out
}

/// 1 and 10,000 rows for batched slots, 1 row for the others.
fn rows_of(slot: SlotKind) -> Vec<usize> {
    match slot.contract().rows {
        aurigraph_decision::slot::Rows::Batch => vec![1, 10_000],
        aurigraph_decision::slot::Rows::Single => vec![1],
    }
}

fn inference(c: &mut Criterion) {
    let mut g = c.benchmark_group("onnx_infer");
    let far = Instant::now() + Duration::from_secs(3600);
    for (label, dir) in model_folders() {
        let p = OnnxPolicy::load_folder(&dir, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{label} does not load: [{}] {e}", e.code()));
        let slot = p.info().slot;
        for rows in rows_of(slot) {
            let mut rng = SmallRng::seed_from_u64(7);
            let input = slot.sample_input(rows, &mut rng);
            g.bench_with_input(BenchmarkId::new(label.clone(), rows), &input, |b, input| {
                b.iter(|| black_box(p.evaluate(black_box(input), far)))
            });
        }
    }
    g.finish();
}

/// The symbolic-batch plan alone against the bucketed plans, on the ordering MLP.
fn buckets(c: &mut Criterion) {
    let mut g = c.benchmark_group("onnx_buckets");
    let far = Instant::now() + Duration::from_secs(3600);
    let dir = root().join("engine/onnx/tests/fixtures/onnx/torch_mlp");
    let symbolic = OnnxPolicy::load_folder(
        &dir,
        &LoadOptions {
            buckets: vec![],
            ..LoadOptions::default()
        },
    )
    .expect("torch_mlp loads");
    let bucketed = OnnxPolicy::load_folder(&dir, &LoadOptions::default()).expect("loads");
    for rows in [100usize, 1_000, 10_000] {
        let mut rng = SmallRng::seed_from_u64(9);
        let input = SlotKind::Ordering.sample_input(rows, &mut rng);
        g.bench_with_input(BenchmarkId::new("symbolic", rows), &input, |b, input| {
            b.iter(|| black_box(symbolic.evaluate(black_box(input), far)))
        });
        g.bench_with_input(BenchmarkId::new("bucketed", rows), &input, |b, input| {
            b.iter(|| black_box(bucketed.evaluate(black_box(input), far)))
        });
    }
    g.finish();
}

fn load(c: &mut Criterion) {
    let mut g = c.benchmark_group("onnx_load");
    g.sample_size(10);
    let dir = root().join("engine/onnx/tests/fixtures/onnx/torch_mlp");
    let manifest = Manifest::read(&dir).expect("manifest");
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model");
    for (label, options) in [
        ("full", LoadOptions::default()),
        (
            "symbolic_only",
            LoadOptions {
                buckets: vec![],
                ..LoadOptions::default()
            },
        ),
    ] {
        g.bench_function(format!("torch_mlp/{label}"), |b| {
            b.iter(|| OnnxPolicy::from_bytes(manifest.clone(), &bytes, &options).expect("loads"))
        });
    }
    g.finish();
}

fn vm_rss_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// 1,000 load-and-swap cycles (full load path: all plans, warm-up and the 10,000-row
/// timing), after 100 cycles of settling. Returns whether growth stayed within 5%.
fn load_and_swap() -> bool {
    let dir = root().join("engine/onnx/tests/fixtures/onnx/torch_mlp");
    let base = Manifest::read(&dir).expect("manifest");
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model");
    let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).expect("host");
    let mut rng = SmallRng::seed_from_u64(11);
    let input = SlotKind::Ordering.sample_input(1_000, &mut rng);
    let options = LoadOptions::default();
    // Each cycle's decision must be answered by the model just promoted. A timeout (or all
    // workers busy) is what a loaded machine does to a 20 ms deadline: counted, and at
    // most 1% of the cycles may see one; any other fallback stops the bench.
    let late = std::cell::Cell::new(0usize);
    let cycle = |i: usize| {
        let mut m = base.clone();
        m.version = i.to_string();
        let p = OnnxPolicy::from_bytes(m, &bytes, &options).expect("loads");
        host.load_candidate(Arc::new(p)).expect("candidate");
        host.promote().expect("promote");
        let d = host.decide(i as u64, &input).expect("decision");
        match d.tag.fallback {
            None => assert_eq!(d.tag.answered_by.backend, BackendKind::Onnx),
            Some(FallbackReason::Timeout | FallbackReason::Busy) => late.set(late.get() + 1),
            Some(other) => panic!("cycle {i}: the promoted model fell back: {other:?}"),
        }
    };
    for i in 0..100 {
        cycle(i);
    }
    let (Some(before), t) = (vm_rss_kb(), Instant::now()) else {
        println!("onnx_load_and_swap: no /proc/self/status, skipped");
        return true;
    };
    for i in 100..1_100 {
        cycle(i);
    }
    let after = vm_rss_kb().unwrap_or(before);
    let growth = (after as f64 - before as f64) / before as f64 * 100.0;
    println!(
        "onnx_load_and_swap: 1000 cycles in {:.1} s ({:.1} ms each); VmRSS {before} kB -> \
         {after} kB ({growth:+.2}%, limit +5%); {} of 1100 decisions late (limit 11)",
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1e3 / 1000.0,
        late.get()
    );
    growth <= 5.0 && late.get() <= 11
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    inference(&mut c);
    buckets(&mut c);
    load(&mut c);
    c.final_summary();
    if !load_and_swap() {
        std::process::exit(1);
    }
}
