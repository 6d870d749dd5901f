//! Signature verification and admission throughput.
//!
//! - `verify_1024`: 1,024 transfer signatures, single (each verified alone) against batched
//!   (`ed25519-consensus` batch verification per chunk, [`SignatureVerifier`]), on a pool of
//!   1 and of 2 threads, with chunks of at most 256 and 1,024 signatures; plus the cost of one
//!   bad signature in the batch (its chunk is halved until the bad one is found).
//! - `admission_4096`: [`Admission::admit`] of 4,096 signed transfers (decode, checks,
//!   batched signatures, nonce/balance/duplicate checks, anomaly features and one `anomaly`
//!   decision), verification on 1 and 2 threads, chunks of 256 and 1,024 (the default), a
//!   fresh admission per iteration.
//!
//! Run: `cargo bench -p aurigraph-benches --bench signatures -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::{HostConfig, SlotHost, SlotKind};
use aurigraph_ledger::admission::{Admission, AdmissionConfig, SignatureVerifier};
use aurigraph_ledger::state::{Account, StateView};
use aurigraph_ledger::tx::{Address, SignedTransaction};
use aurigraph_ledger::workload::{Workload, WorkloadConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

struct GenesisState(HashMap<Address, Account>);

impl StateView for GenesisState {
    fn account(&self, address: &Address) -> Account {
        self.0.get(address).copied().unwrap_or_default()
    }
}

/// `n` signed single transfers from the `uniform` workload, and its genesis state.
fn transfers(n: usize) -> (Vec<SignedTransaction>, GenesisState) {
    let w = Workload::new(WorkloadConfig {
        seed: 42,
        accounts: 4_096,
        multi_transfer_share: 0.0,
        ..WorkloadConfig::default()
    })
    .expect("valid workload");
    let txs = w
        .generate(n)
        .iter()
        .map(|e| SignedTransaction::decode(&e.bytes).expect("a normal transaction"))
        .collect();
    let state = GenesisState(
        w.genesis()
            .allocations
            .iter()
            .map(|&(a, balance)| (a, Account { balance, nonce: 0 }))
            .collect(),
    );
    (txs, state)
}

fn verify(c: &mut Criterion) {
    const N: usize = 1_024;
    let (txs, _) = transfers(N);
    let mut one_bad = txs.clone();
    let victim = one_bad[N / 2].tx().clone();
    let mut sig = *one_bad[N / 2].signature();
    sig[0] ^= 1;
    one_bad[N / 2] = SignedTransaction::from_parts(victim, sig);

    let mut g = c.benchmark_group("verify_1024");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    for threads in [1, 2] {
        let single = SignatureVerifier::new(Some(threads), 256).expect("pool");
        g.bench_function(format!("single/{threads}t"), |b| {
            b.iter(|| black_box(single.verify_each(black_box(&txs))))
        });
        // The old default chunk (256, one bad signature re-checked singly) against the new
        // (1,024, a failed batch halved).
        for chunk in [256, 1_024] {
            let v = SignatureVerifier::new(Some(threads), chunk).expect("pool");
            assert!(v.verify_batch(&txs).iter().all(|ok| *ok));
            assert_eq!(
                v.verify_batch(&one_bad).iter().filter(|ok| !**ok).count(),
                1
            );
            g.bench_function(format!("batch{chunk}/{threads}t"), |b| {
                b.iter(|| black_box(v.verify_batch(black_box(&txs))))
            });
            g.bench_function(format!("batch{chunk}_one_bad/{threads}t"), |b| {
                b.iter(|| black_box(v.verify_batch(black_box(&one_bad))))
            });
        }
    }
    g.finish();
}

fn admission(c: &mut Criterion) {
    const N: usize = 4_096;
    let (txs, state) = transfers(N);
    let inputs: Vec<&[u8]> = txs.iter().map(|t| t.encoded()).collect();
    let host = Arc::new(
        SlotHost::new(
            SlotKind::Anomaly,
            HostConfig {
                deadline: Some(Duration::from_secs(1)),
                ..HostConfig::default()
            },
        )
        .expect("anomaly host"),
    );
    let mut g = c.benchmark_group("admission_4096");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (threads, chunk) in [(1, 1_024), (2, 256), (2, 1_024)] {
        let fresh = || {
            Admission::new(
                AdmissionConfig {
                    verify_threads: Some(threads),
                    verify_chunk: chunk,
                    ..AdmissionConfig::default()
                },
                host.clone(),
            )
            .expect("admission")
        };
        let check = fresh().admit(&state, &inputs);
        assert_eq!(check.admitted_count(), N, "every transfer is admissible");
        g.bench_function(format!("transfers/{threads}t/chunk{chunk}"), |b| {
            b.iter_batched_ref(
                fresh,
                |adm| black_box(adm.admit(&state, black_box(&inputs))),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, verify, admission);
criterion_main!(benches);
