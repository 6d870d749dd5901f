//! What the Criterion benches (`benches/`) and the scaling binary (`src/bin/scaling.rs`)
//! share: the blocks of transfers the executors run, and the pipeline driven as the node
//! drives it (one or several submitting threads, one block loop).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aurigraph_ledger::pipeline::Pipeline;
use aurigraph_ledger::state::{Genesis, ShardedState};
use aurigraph_ledger::tx::{Address, Operation, SignedTransaction, Transaction, keypair_from_seed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Chain id of the benches' genesis.
pub const CHAIN: u32 = 1;
/// Accounts the transfers pay (besides the hot ones).
pub const RECIPIENTS: usize = 100_000;
/// Transactions submitted at once, and the most a submitter lets wait in the mempool.
pub const CHUNK: usize = 4_096;

/// A genesis of `n` funded senders and [`RECIPIENTS`] recipients (seed 42), and one block of
/// `n` transfers (one per sender, nonce 0) per `(hot_percent, hot_count)` in `contention`:
/// `hot_percent` % of the transfers pay one of the first `hot_count` (at most 4) recipients.
/// The blocks are drawn in order from one generator, so a list gives the same blocks
/// wherever it is asked for.
pub fn transfer_blocks(
    n: usize,
    contention: &[(u32, usize)],
) -> (ShardedState, Vec<Vec<Arc<SignedTransaction>>>) {
    let mut rng = SmallRng::seed_from_u64(42);
    let senders: Vec<_> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            keypair_from_seed(seed)
        })
        .collect();
    let recipients: Vec<Address> = (0..RECIPIENTS)
        .map(|_| {
            let mut a = [0u8; 32];
            rng.fill(&mut a[..]);
            Address(a)
        })
        .collect();
    let mut allocations: Vec<(Address, u64)> =
        senders.iter().map(|(_, a)| (*a, 1_000_000)).collect();
    allocations.extend(recipients.iter().map(|a| (*a, 1_000)));
    let state = ShardedState::from_genesis(
        &Genesis {
            chain_id: CHAIN,
            allocations,
        },
        256,
    )
    .expect("genesis");
    let hot = &recipients[..4];
    let blocks = contention
        .iter()
        .map(|&(hot_percent, hot_count)| {
            senders
                .iter()
                .map(|(sk, sender)| {
                    let to = if rng.random_range(0..100) < hot_percent {
                        hot[rng.random_range(0..hot_count.clamp(1, 4))]
                    } else {
                        recipients[rng.random_range(0..RECIPIENTS)]
                    };
                    Arc::new(
                        Transaction {
                            chain_id: CHAIN,
                            sender: *sender,
                            nonce: 0,
                            fee: 1,
                            op: Operation::Transfer {
                                to,
                                amount: rng.random_range(1..1_000),
                            },
                        }
                        .sign(sk),
                    )
                })
                .collect()
        })
        .collect();
    (state, blocks)
}

/// Submits `bytes` to `p` in chunks of [`CHUNK`] from this thread while another produces
/// blocks, as a node's request handlers and block loop do; returns the transactions
/// committed. The submitter respects back-pressure: at most about one chunk waits in the
/// mempool while the next is admitted (racing further ahead only trades commits for
/// `E_SENDER_LIMIT` refusals).
pub fn submit_while_producing(p: &Pipeline, bytes: &[&[u8]]) -> usize {
    submit_while_producing_with(p, bytes, 1)
}

/// [`submit_while_producing`] with `submitters` threads submitting at once (a node's
/// request handlers): they take the chunks in order from a shared counter, each waiting
/// while more than `submitters` chunks are in the mempool, so their admission work
/// overlaps (one thread's stateful checks and mempool insertions run while another's
/// signatures are checked).
pub fn submit_while_producing_with(p: &Pipeline, bytes: &[&[u8]], submitters: usize) -> usize {
    let submitters = submitters.max(1);
    let done = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let chunks: Vec<&[&[u8]]> = bytes.chunks(CHUNK).collect();
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut committed = 0usize;
            loop {
                // Read before producing: once the submitters are done and a block comes
                // back empty, nothing is left.
                let finished = done.load(Ordering::Acquire);
                match p.produce_block().expect("block") {
                    Some(block) => committed += block.txs.len(),
                    None if finished => return committed,
                    None => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        });
        let workers: Vec<_> = (0..submitters)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        while p.mempool().len() > CHUNK * submitters {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        black_box(p.submit(chunk));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("submitter");
        }
        done.store(true, Ordering::Release);
        producer.join().expect("producer")
    })
}
