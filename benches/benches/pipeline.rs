//! Admission through execution: 100,000 signed transfers through the single-node
//! pipeline (decode, batched signature verification, nonce and balance checks, the
//! `anomaly` slot, mempool, `batch_size` and `ordering` slots, the parallel executor,
//! commit with the state root). Target (issue 5): at least 50,000 tx/s on 2 cores.
//!
//! Run: `cargo bench -p aurigraph-benches --bench pipeline`

use std::hint::black_box;
use std::time::Duration;

use aurigraph_engine::host::HostConfig;
use aurigraph_engine::metrics::EngineMetrics;
use aurigraph_engine::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_engine::workload::Workload;
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
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
