//! The WASM backend's cost: an `ordering` decision by a plugin against the native static
//! policy, for 1 row (per-call overhead: fresh store, instantiation, copies, call) and for
//! 10,000 rows (target, issue 4: at most 0.5 ms including copying the rows in and the
//! scores out), with the pooling allocator (the default) and with on-demand allocation; the
//! instantiation alone; a linear `anomaly` plugin on 10,000 rows (mostly the copies); and a
//! 10,000-row decision through the `SlotHost`.
//!
//! Needs the example plugins: `./scripts/build-plugins` first.
//! Run: `cargo bench -p aurigraph-benches --bench wasm -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurigraph_decision::rollout::Mode;
use aurigraph_decision::{HostConfig, Policy, SlotHost, SlotKind};
use aurigraph_wasm::{RuntimeConfig, WasmPlugin, WasmRuntime};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn plugin(runtime: &WasmRuntime, name: &str) -> WasmPlugin {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    runtime.load(&path).unwrap_or_else(|e| {
        panic!(
            "{}: [{}] {e} (run ./scripts/build-plugins first)",
            path.display(),
            e.code()
        )
    })
}

/// The smallest valid `ordering` plugin: a bump allocator and an answer of zeros. Timing it
/// isolates the host's per-call cost (store, instantiation, copies, call, bounds checks).
const ZEROS: &str = r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (param $size i32) (result i32) (local $p i32) (local $end i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $size)))
    (global.set $heap (local.get $end))
    (block $ok
      (br_if $ok (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $ok (i32.ne (i32.const -1) (memory.grow (i32.add (i32.const 1) (i32.shr_u
        (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16))))))
      unreachable)
    (local.get $p))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (call $alloc (local.get 3)))
  (data (i32.const 64) "zeros")
  (data (i32.const 80) "1.0.0")
  (data (i32.const 96) "\00\00\00\00\01\00\00\00")
  (data (i32.const 128) "\40\00\00\00\05\00\00\00\50\00\00\00\05\00\00\00\60\00\00\00\01\00\00\00")
  (func (export "metadata") (result i32) (i32.const 128))
  (func (export "ordering") (param $ptr i32) (param $len i32) (param $rows i32) (result i32)
    (i32.store (i32.const 160) (i32.const 0))
    (i32.store (i32.const 164) (call $alloc (i32.shl (local.get $rows) (i32.const 2))))
    (i32.store (i32.const 168) (local.get $rows))
    (i32.const 160)))"#;

fn ordering(c: &mut Criterion) {
    let pooled = WasmRuntime::new(RuntimeConfig::default()).expect("runtime");
    let on_demand = WasmRuntime::new(RuntimeConfig {
        pooled_instances: 0,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let far = Instant::now() + Duration::from_secs(3600);
    let native = SlotKind::Ordering.static_policy();
    let mut g = c.benchmark_group("wasm_ordering");
    for rows in [1usize, 10_000] {
        let input = SlotKind::Ordering.sample_input(rows, &mut SmallRng::seed_from_u64(7));
        g.bench_function(format!("static/{rows}"), |b| {
            b.iter(|| black_box(native.evaluate(black_box(&input), far)))
        });
        for (rt, label) in [(&pooled, "pooled"), (&on_demand, "on_demand")] {
            let zeros = rt
                .load_bytes(&wat::parse_str(ZEROS).expect("wat"), "zeros")
                .expect("load")
                .policy(SlotKind::Ordering)
                .expect("ordering");
            g.bench_function(format!("zeros/{label}/{rows}"), |b| {
                b.iter(|| black_box(zeros.evaluate(black_box(&input), far)))
            });
            for name in ["fee-per-byte", "conflict-aware"] {
                let p = plugin(rt, name)
                    .policy(SlotKind::Ordering)
                    .expect("ordering");
                g.bench_function(format!("{name}/{label}/{rows}"), |b| {
                    b.iter(|| black_box(p.evaluate(black_box(&input), far)))
                });
            }
        }
    }
    // A linear per-row plugin on 10,000 rows: mostly the host's copies and the call itself.
    let input = SlotKind::Anomaly.sample_input(10_000, &mut SmallRng::seed_from_u64(7));
    let native = SlotKind::Anomaly.static_policy();
    g.bench_function("anomaly/static/10000", |b| {
        b.iter(|| black_box(native.evaluate(black_box(&input), far)))
    });
    let p = plugin(&pooled, "sender-rate")
        .policy(SlotKind::Anomaly)
        .expect("anomaly");
    g.bench_function("anomaly/sender-rate/pooled/10000", |b| {
        b.iter(|| black_box(p.evaluate(black_box(&input), far)))
    });

    let input = SlotKind::Ordering.sample_input(10_000, &mut SmallRng::seed_from_u64(7));
    let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).expect("host");
    let p = plugin(&pooled, "fee-per-byte");
    host.load_candidate(Arc::new(p.policy(SlotKind::Ordering).expect("ordering")))
        .expect("load");
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .expect("canary");
    let mut key = 0u64;
    g.bench_function("fee-per-byte/host/10000", |b| {
        b.iter(|| {
            key = key.wrapping_add(1);
            black_box(host.decide(key, black_box(&input)))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("wasm_instantiate");
    for (rt, label) in [(&pooled, "pooled"), (&on_demand, "on_demand")] {
        let p = plugin(rt, "fee-per-byte");
        g.bench_function(label, |b| b.iter(|| black_box(p.instantiate_once())));
    }
    g.finish();
}

criterion_group!(benches, ordering);
criterion_main!(benches);
