//! Does the order of a block change its conflicts? The `shifting-hotspots` preset on the
//! evaluation seeds 1001..=1003, admitted by the engine's admission, cut into blocks of
//! 1,000 consecutive admitted transactions (a full block at `--speed max`), each ordered
//! three ways through the node's own merge (`batcher::merge_order`, nonce order kept):
//!
//! - `static`: the static fee-priority rule's scores;
//! - `model`: the shipped `models/ordering-linear` scores (run by the reference evaluator);
//! - `hot-last`: `-hot_account_share`, the blunt contention-aware order (clean transactions
//!   first, the ones whose accounts are all hot last).
//!
//! Each order runs through the default executor (scheduled, 2 threads: planned conflicts)
//! and Block-STM (2 threads: conflicts and re-executions, 3 runs each, summed), against the
//! state the previous blocks left. Block-STM's counts depend on timing; the scheduler's are
//! a function of the block's set of transactions.
//!
//! `cargo run -p aurigraph-training --release --example ordering_contention`

use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::slot::ordering::{FeePriority, OrderingFeatures};
use aurigraph_ledger::batcher::{merge_order, ordering_features};
use aurigraph_ledger::executor::{BlockExecutor, BlockStmExecutor, ScheduledExecutor, commit};
use aurigraph_ledger::state::ShardedState;
use aurigraph_ledger::tx::SignedTransaction;
use aurigraph_ledger::workload::{Preset, Workload};
use aurigraph_training::data::Traffic;
use aurigraph_training::onnx::eval::{Tensor, run};

const BLOCK: usize = 1_000;
const EVENTS: usize = 20_000;
const STM_RUNS: usize = 3;

#[derive(Default, Clone, Copy)]
struct Tally {
    txs: u64,
    sched_conflicts: u64,
    stm_conflicts: u64,
    stm_re_executions: u64,
    stm_txs: u64,
    skipped: u64,
}

fn main() {
    let model = std::fs::read("models/ordering-linear/model.onnx")
        .expect("run from the repository root: models/ordering-linear/model.onnx");
    let scheduled = ScheduledExecutor::new(2).expect("executor");
    let stm = BlockStmExecutor::new(2).expect("executor");
    let names = ["static", "model", "hot-last"];
    let mut tally = [Tally::default(); 3];
    for seed in [1001u64, 1002, 1003] {
        let config = Preset::ShiftingHotspots.config(seed);
        let workload = Workload::new(config.clone()).expect("preset");
        let mut state = ShardedState::from_genesis(workload.genesis(), 16).expect("genesis");
        let traffic = Traffic::admit(config, EVENTS).expect("admission");
        for window in traffic.rows.chunks(BLOCK) {
            let ready = aurigraph_training::slots::ordering::ready_window(window);
            let close = window[window.len() - 1].at + Duration::from_millis(1);
            let features = ordering_features(&ready, traffic.epoch + close);
            let matrix = OrderingFeatures::matrix(&features);
            let mut fee = Vec::new();
            FeePriority::new()
                .score_into(&matrix, &mut fee)
                .expect("fee scores");
            let input = Tensor {
                shape: vec![matrix.rows(), matrix.cols()],
                data: matrix.as_slice().to_vec(),
            };
            let scores = run(&model, &input).expect("model").data;
            let hot: Vec<f32> = features.iter().map(|f| -f.hot_account_share).collect();
            let mut first = None;
            for (k, s) in [&fee, &scores, &hot].into_iter().enumerate() {
                let order = merge_order(&ready, s);
                let block: Vec<Arc<SignedTransaction>> =
                    order.iter().map(|&i| ready[i].tx.tx.clone()).collect();
                let e = scheduled
                    .execute(&state, state.chain_id(), &block)
                    .expect("scheduled");
                tally[k].txs += block.len() as u64;
                tally[k].sched_conflicts += e.stats.conflicts;
                tally[k].skipped += e.stats.skipped as u64;
                for _ in 0..STM_RUNS {
                    let x = stm.execute(&state, state.chain_id(), &block).expect("stm");
                    tally[k].stm_conflicts += x.stats.conflicts;
                    tally[k].stm_re_executions += x.stats.re_executions;
                    tally[k].stm_txs += block.len() as u64;
                }
                first.get_or_insert(e);
            }
            // Every order commits the same state (nonce order kept, balances ample).
            if let Some(e) = first {
                commit(&mut state, e);
            }
        }
    }
    println!(
        "shifting-hotspots, seeds 1001..=1003, {EVENTS} events each, blocks of {BLOCK}, 2 threads"
    );
    println!(
        "| order | txs | skipped | scheduled conflicts/tx | Block-STM conflicts/tx | Block-STM re-executions/tx |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, t) in names.iter().zip(tally) {
        println!(
            "| {n} | {} | {} | {:.4} | {:.4} | {:.4} |",
            t.txs,
            t.skipped,
            t.sched_conflicts as f64 / t.txs as f64,
            t.stm_conflicts as f64 / t.stm_txs as f64,
            t.stm_re_executions as f64 / t.stm_txs as f64
        );
    }
}
