//! Block execution: the sequential oracle against the scheduler and Block-STM, with 1 and 2
//! threads, at three contention levels, on blocks of 10,000 transfers between 110,000
//! accounts; plus the commit of a block's write set (incremental state root).
//!
//! - `low`: 1 % of transfers pay one of 4 hot accounts;
//! - `medium`: 30 % do;
//! - `full`: every transfer pays the same account (every pair of transactions conflicts).
//!
//! Targets on 2 cores (issue 5): the default executor with 2 threads at least 1.8x the
//! sequential one at low contention, at least 0.9x at full contention.
//!
//! Run: `cargo bench -p aurigraph-benches --bench executor -- --warm-up-time 1 --measurement-time 3`
//!
//! A/B on a shared machine: `EXECUTOR_QUICK_ROUNDS=40 EXECUTOR_QUICK_ONLY=scheduled cargo
//! bench -p aurigraph-benches --bench executor` skips criterion and runs the sequential
//! executor and the chosen ones round-robin, printing min and median per block and the
//! ratios to the sequential one (background load then falls on all of them alike).

use std::hint::black_box;
use std::sync::Arc;

use aurigraph_benches::{CHAIN, transfer_blocks};
use aurigraph_ledger::executor::{
    BlockExecutor, BlockStmExecutor, ScheduledExecutor, SequentialExecutor,
};
use aurigraph_ledger::state::ShardedState;
use aurigraph_ledger::tx::SignedTransaction;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const BLOCK: usize = 10_000;

struct Setup {
    state: ShardedState,
    blocks: Vec<(&'static str, Vec<Arc<SignedTransaction>>)>,
}

fn setup() -> Setup {
    let (state, blocks) = transfer_blocks(BLOCK, &[(1, 4), (30, 4), (100, 1)]);
    let blocks = ["low", "medium", "full"].into_iter().zip(blocks).collect();
    Setup { state, blocks }
}

fn execute(c: &mut Criterion) {
    let s = setup();
    let executors: Vec<(String, Box<dyn BlockExecutor>)> = vec![
        ("sequential".into(), Box::new(SequentialExecutor::new())),
        (
            "scheduled-x1".into(),
            Box::new(ScheduledExecutor::new(1).expect("pool")),
        ),
        (
            "scheduled-x2".into(),
            Box::new(ScheduledExecutor::new(2).expect("pool")),
        ),
        (
            "block-stm-x1".into(),
            Box::new(BlockStmExecutor::new(1).expect("pool")),
        ),
        (
            "block-stm-x2".into(),
            Box::new(BlockStmExecutor::new(2).expect("pool")),
        ),
    ];
    if let Ok(rounds) = std::env::var("EXECUTOR_QUICK_ROUNDS") {
        // `EXECUTOR_QUICK_ONLY=scheduled`: the sequential one and those whose name has it.
        let only = std::env::var("EXECUTOR_QUICK_ONLY").unwrap_or_default();
        let chosen: Vec<_> = executors
            .into_iter()
            .enumerate()
            .filter(|(i, (name, _))| *i == 0 || name.contains(only.as_str()))
            .map(|(_, e)| e)
            .collect();
        quick(&s, &chosen, rounds.parse().unwrap_or(60));
        return;
    }
    for (contention, block) in &s.blocks {
        let mut g = c.benchmark_group(format!("execute_10k/{contention}"));
        for (name, exec) in &executors {
            let probe = exec.execute(&s.state, CHAIN, block).expect("execute");
            eprintln!(
                "{contention}/{name}: parallel={} conflicts={} re-executions={} writes={}",
                probe.stats.parallel,
                probe.stats.conflicts,
                probe.stats.re_executions,
                probe.write_set.len()
            );
            g.bench_function(name.as_str(), |b| {
                b.iter(|| black_box(exec.execute(&s.state, CHAIN, black_box(block))))
            });
        }
        g.finish();
    }
    // Commit: apply the low-contention block's write set (about 10,000 senders, 10,000
    // recipients and the fee sink) and update the root.
    let (_, block) = &s.blocks[0];
    let execution = SequentialExecutor::new()
        .execute(&s.state, CHAIN, block)
        .expect("execute");
    let mut g = c.benchmark_group("commit_10k");
    g.bench_function("apply_and_root", |b| {
        b.iter_batched(
            || s.state.clone(),
            |mut st| {
                black_box(st.apply(&execution.write_set));
                st // dropped outside the timing
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// `EXECUTOR_QUICK_ROUNDS=n`: instead of criterion, runs every executor `n` times per
/// contention level, round-robin (so background load falls on all of them alike), and
/// prints the minimum and the median per executor and their ratio to the sequential one,
/// and the median of the per-round ratios (each round's sequential time over the
/// executor's).
/// For A/B comparisons on a shared machine, where the ratios of interleaved runs are far
/// steadier than separate criterion runs.
fn quick(s: &Setup, executors: &[(String, Box<dyn BlockExecutor>)], rounds: usize) {
    for (contention, block) in &s.blocks {
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); executors.len()];
        for round in 0..rounds + 3 {
            for (i, (_, exec)) in executors.iter().enumerate() {
                let t = std::time::Instant::now();
                black_box(
                    exec.execute(&s.state, CHAIN, black_box(block))
                        .expect("execute"),
                );
                if round >= 3 {
                    times[i].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let stat = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        };
        // Paired: each round's sequential time over the executor's in the same round (the
        // machine's speed drifts less within a round than across the run).
        let paired: Vec<f64> = times
            .iter()
            .map(|t| {
                let mut r: Vec<f64> = times[0].iter().zip(t).map(|(s, e)| s / e).collect();
                r.sort_by(f64::total_cmp);
                r[r.len() / 2]
            })
            .collect();
        let (seq_min, seq_med) = stat(&mut times[0]);
        for (((name, _), t), pair) in executors.iter().zip(&mut times).zip(paired) {
            let (min, med) = stat(t);
            println!(
                "{contention:>6} {name:<14} min {min:7.3} ms ({:4.2}x)  median {med:7.3} ms ({:4.2}x)  paired median {pair:4.2}x",
                seq_min / min,
                seq_med / med
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = execute
}
criterion_main!(benches);
