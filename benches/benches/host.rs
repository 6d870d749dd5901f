//! The policy host's own overhead around a static policy.
//!
//! Each group times the static policy called directly and the same decision taken through
//! a [`SlotHost`] (shape check, routing load, breaker, tag, metrics). The difference is the
//! host's overhead. Targets (issue 2): under 200 ns per single decision, under 2% of a
//! 10,000-row ordering decision. A third case times the watchdog path that every untrusted
//! backend takes (hand-over to a worker thread and back).
//!
//! Run: `cargo bench -p aurigraph-benches --bench host`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::rollout::Mode;
use aurigraph_decision::{HostConfig, SlotHost, SlotKind};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_decision");
    for slot in [
        SlotKind::BatchSize,
        SlotKind::LeaderHealth,
        SlotKind::Demand,
    ] {
        let mut rng = SmallRng::seed_from_u64(1);
        let input = slot.sample_input(1, &mut rng);
        let policy = slot.static_policy();
        let host = SlotHost::new(slot, HostConfig::default()).expect("host");
        let far = Instant::now() + Duration::from_secs(3600);
        g.bench_function(format!("{slot}/direct"), |b| {
            b.iter(|| black_box(policy.evaluate(black_box(&input), far)))
        });
        let mut key = 0u64;
        g.bench_function(format!("{slot}/host"), |b| {
            b.iter(|| {
                key = key.wrapping_add(1);
                black_box(host.decide(key, black_box(&input)))
            })
        });
    }
    // The watchdog path: a well-behaved non-static candidate at canary 100%.
    let slot = SlotKind::BatchSize;
    let mut rng = SmallRng::seed_from_u64(1);
    let input = slot.sample_input(1, &mut rng);
    let host = SlotHost::new(slot, HostConfig::default()).expect("host");
    host.load_candidate(Arc::new(FaultyPolicy::new(
        slot.static_policy(),
        Fault::None,
    )))
    .expect("load");
    host.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .expect("canary");
    let mut key = 0u64;
    g.bench_function("batch_size/host_watchdog_candidate", |b| {
        b.iter(|| {
            key = key.wrapping_add(1);
            black_box(host.decide(key, black_box(&input)))
        })
    });
    g.finish();
}

fn ordering_10k(c: &mut Criterion) {
    let mut g = c.benchmark_group("ordering_10k_rows");
    g.sample_size(60);
    let slot = SlotKind::Ordering;
    let mut rng = SmallRng::seed_from_u64(2);
    let input = slot.sample_input(10_000, &mut rng);
    let policy = slot.static_policy();
    let host = SlotHost::new(slot, HostConfig::default()).expect("host");
    let far = Instant::now() + Duration::from_secs(3600);
    g.bench_function("direct", |b| {
        b.iter(|| black_box(policy.evaluate(black_box(&input), far)))
    });
    let mut key = 0u64;
    g.bench_function("host", |b| {
        b.iter(|| {
            key = key.wrapping_add(1);
            black_box(host.decide(key, black_box(&input)))
        })
    });
    g.finish();
}

criterion_group!(benches, single, ordering_10k);
criterion_main!(benches);
