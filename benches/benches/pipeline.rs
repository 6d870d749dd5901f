//! Admission through execution: 100,000 signed transfers through the single-node
//! pipeline (decode, batched signature verification, nonce and balance checks, the
//! `anomaly` slot, mempool, `batch_size` and `ordering` slots, the parallel executor,
//! commit with the state root). Target (issue 5): at least 50,000 tx/s on 2 cores.
//!
//! Two shapes: `admission_to_commit_100k_transfers` submits a chunk, then produces blocks
//! until none is ready, on one thread; `..._concurrent` submits on one thread while another
//! produces blocks, as the node runs (request handlers and the block loop).
//!
//! Run: `cargo bench -p aurigraph-benches --bench pipeline`

use std::hint::black_box;
use std::time::Duration;

use aurigraph_benches::submit_while_producing;
use aurigraph_decision::host::HostConfig;
use aurigraph_decision::metrics::EngineMetrics;
use aurigraph_ledger::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_ledger::workload::Workload;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TXS: usize = 100_000;
const CHUNK: usize = 4_096;

fn pipeline(c: &mut Criterion) {
    let workload = Workload::preset("uniform", 5).expect("preset");
    let events = workload.generate(TXS);
    let bytes: Vec<&[u8]> = events.iter().map(|e| e.bytes.as_slice()).collect();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(TXS as u64));
    g.bench_function("admission_to_commit_100k_transfers", |b| {
        b.iter(|| {
            let slots = PipelineSlots::new(&HostConfig::default(), &EngineMetrics::default())
                .expect("slots");
            let p = Pipeline::new(PipelineConfig::default(), slots, workload.genesis())
                .expect("pipeline");
            let mut committed = 0usize;
            for chunk in bytes.chunks(CHUNK) {
                let r = p.submit(chunk);
                black_box(&r);
                while let Some(block) = p.produce_block().expect("block") {
                    committed += block.txs.len();
                }
            }
            while let Some(block) = p.produce_block().expect("block") {
                committed += block.txs.len();
            }
            assert!(committed > TXS * 9 / 10, "only {committed} committed");
            committed
        })
    });
    // As the node runs it: one thread submits while another produces blocks (the node's
    // request handlers and its block loop), so block production overlaps admission.
    g.bench_function("admission_to_commit_100k_transfers_concurrent", |b| {
        b.iter(|| {
            let slots = PipelineSlots::new(&HostConfig::default(), &EngineMetrics::default())
                .expect("slots");
            let p = Pipeline::new(PipelineConfig::default(), slots, workload.genesis())
                .expect("pipeline");
            let committed = submit_while_producing(&p, &bytes);
            assert!(committed > TXS * 9 / 10, "only {committed} committed");
            committed
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
