//! Throughput of the mempool's single lock: insertions from 1 and 8 threads, selection and
//! commit removal of a large batch. Ignored by default (timing, not correctness); run with
//!
//! ```text
//! cargo test --release -p aurigraph-engine --test mempool_throughput -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use aurigraph_engine::mempool::{Mempool, MempoolConfig};
use aurigraph_engine::slot::anomaly::AnomalyClass;
use aurigraph_engine::tx::{
    Address, AdmittedTx, Operation, Transaction, TxHash, keypair_from_seed,
};

const THREADS: usize = 8;
const PER_THREAD: usize = 8_000;
const SENDERS_PER_THREAD: usize = 500;

/// Pre-signed work: per thread, `PER_THREAD` transactions of its own senders, nonces in
/// order, with varied fees and classes.
fn work() -> Vec<Vec<AdmittedTx>> {
    let mut seq = 0u64;
    (0..THREADS)
        .map(|t| {
            let keys: Vec<_> = (0..SENDERS_PER_THREAD)
                .map(|s| {
                    let mut seed = [0u8; 32];
                    seed[..8].copy_from_slice(&((t * SENDERS_PER_THREAD + s) as u64).to_le_bytes());
                    seed[31] = 0x77;
                    keypair_from_seed(seed)
                })
                .collect();
            (0..PER_THREAD)
                .map(|i| {
                    let (sk, from) = &keys[i % SENDERS_PER_THREAD];
                    let nonce = (i / SENDERS_PER_THREAD) as u64;
                    seq += 1;
                    let signed = Transaction {
                        chain_id: 1,
                        sender: *from,
                        nonce,
                        fee: (i as u64 * 7919) % 1_000,
                        op: Operation::Transfer {
                            to: Address([0xEE; 32]),
                            amount: 1,
                        },
                    }
                    .sign(sk);
                    AdmittedTx {
                        tx: Arc::new(signed),
                        anomaly_score: 0.0,
                        class: [
                            AnomalyClass::Normal,
                            AnomalyClass::Normal,
                            AnomalyClass::Suspicious,
                        ][i % 3],
                        seq,
                        admitted_at: Instant::now(),
                    }
                })
                .collect()
        })
        .collect()
}

fn run(work: &[Vec<AdmittedTx>], threads: usize, config: MempoolConfig) -> (f64, Mempool) {
    let mp = Arc::new(Mempool::new(config).unwrap());
    let per: Vec<Vec<AdmittedTx>> = if threads == 1 {
        vec![work.concat()]
    } else {
        work.to_vec()
    };
    let start = Instant::now();
    let handles: Vec<_> = per
        .into_iter()
        .map(|txs| {
            let mp = mp.clone();
            thread::spawn(move || {
                for t in txs {
                    let _ = mp.insert(t, 0);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (secs, Arc::into_inner(mp).unwrap())
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn single_lock_throughput() {
    let work = work();
    let total = (THREADS * PER_THREAD) as f64;
    let roomy = MempoolConfig {
        max_txs: 1_000_000,
        max_per_sender: 64,
        ..MempoolConfig::default()
    };
    let full = MempoolConfig {
        max_txs: 10_000,
        ..roomy
    };
    for (name, cfg) in [("room", roomy), ("full (evicting)", full)] {
        for threads in [1, THREADS] {
            let (secs, mp) = run(&work, threads, cfg);
            println!(
                "insert, {name}, {threads} thread(s): {:.0} tx/s ({:.2} us/tx), held {}",
                total / secs,
                secs * 1e6 / total,
                mp.len()
            );
        }
    }
    let (_, mp) = run(&work, THREADS, roomy);
    for limit in [1_000, 5_000] {
        let start = Instant::now();
        let sel = mp.select_ready(limit);
        let select = start.elapsed();
        let hashes: Vec<TxHash> = sel.iter().map(|r| r.tx.tx.hash()).collect();
        let start = Instant::now();
        mp.remove_committed(&hashes);
        let remove = start.elapsed();
        println!(
            "select {} of {} ready: {:?}; remove_committed: {:?}",
            sel.len(),
            mp.ready_len() + sel.len(),
            select,
            remove
        );
    }
}
