//! The whole single-node path on a seeded workload: admission, mempool, batcher,
//! executor, commit. A replica replaying the committed blocks with the sequential executor
//! must reach the same state root at every height.

use std::sync::Arc;
use std::time::Duration;

use aurigraph_engine::executor::{BlockExecutor, SequentialExecutor};
use aurigraph_engine::host::HostConfig;
use aurigraph_engine::metrics::EngineMetrics;
use aurigraph_engine::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_engine::state::ShardedState;
use aurigraph_engine::workload::{Label, Workload};

fn pipeline(workload: &Workload) -> Pipeline {
    let hosts = HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    };
    let slots = PipelineSlots::new(&hosts, &EngineMetrics::default()).unwrap();
    Pipeline::new(PipelineConfig::default(), slots, workload.genesis()).unwrap()
}

#[test]
fn a_seeded_workload_commits_and_a_replica_reaches_the_same_roots() {
    let workload = Workload::preset("spam-attack", 11).unwrap();
    let events = workload.generate(3_000);
    let p = pipeline(&workload);
    let mut blocks = vec![];
    let mut accepted = 0usize;
    for chunk in events.chunks(500) {
        let bytes: Vec<&[u8]> = chunk.iter().map(|e| e.bytes.as_slice()).collect();
        let results = p.submit(&bytes);
        assert_eq!(results.len(), chunk.len());
        for (e, r) in chunk.iter().zip(&results) {
            match (e.label, r) {
                (Label::BadSignature, Err(refused)) => assert_eq!(refused.code, "E_BAD_SIGNATURE"),
                (Label::Malformed, Err(refused)) => {
                    assert!(refused.code.starts_with("E_TX_"), "{refused:?}")
                }
                (Label::BadSignature | Label::Malformed, Ok(_)) => {
                    panic!("{:?} was accepted", e.label)
                }
                (_, Ok(_)) => accepted += 1,
                (_, Err(_)) => {}
            }
        }
        while let Some(b) = p.produce_block().unwrap() {
            blocks.push(b);
        }
    }
    while let Some(b) = p.produce_block().unwrap() {
        blocks.push(b);
    }
    let committed: usize = blocks.iter().map(|b| b.txs.len()).sum();
    assert!(accepted > 2_000, "accepted only {accepted}");
    assert!(p.mempool().is_empty() || committed > 0);
    assert_eq!(p.height(), blocks.len() as u64);

    // The replica: genesis, then every committed block replayed sequentially.
    let mut replica = ShardedState::from_genesis(workload.genesis(), 16).unwrap();
    let oracle = SequentialExecutor;
    for b in &blocks {
        let txs: Vec<_> = b.txs.iter().map(|t| Arc::clone(&t.tx)).collect();
        let out = oracle.execute_and_commit(&mut replica, &txs).unwrap();
        assert_eq!(out.state_root, b.outcome.state_root, "height {}", b.height);
        assert_eq!(out.execution.receipts, b.outcome.execution.receipts);
    }
    assert_eq!(p.state().root(), p.state().recompute_root());
}
