//! The whole single-node path on a seeded workload: admission, mempool, batcher,
//! executor, commit. A replica replaying the committed blocks with the sequential executor
//! must reach the same state root at every height.

use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::host::HostConfig;
use aurigraph_decision::metrics::EngineMetrics;
use aurigraph_ledger::executor::{BlockExecutor, SequentialExecutor};
use aurigraph_ledger::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_ledger::state::ShardedState;
use aurigraph_ledger::workload::{Label, Workload};

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

// --- Small hand-built scenarios -------------------------------------------------------

use aurigraph_ledger::batcher::BatcherConfig;
use aurigraph_ledger::executor::{ExecutorConfig, ExecutorError, ExecutorKind, TxStatus};
use aurigraph_ledger::mempool::{MempoolConfig, Removal};
use aurigraph_ledger::pipeline::{ProducedBlock, conflict_rate};
use aurigraph_ledger::state::{Genesis, StateView};
use aurigraph_ledger::tx::{Address, Operation, Transaction, TxHash, keypair_from_seed};
use ed25519_consensus::SigningKey;

const CHAIN: u32 = 7;

struct Key {
    key: SigningKey,
    address: Address,
}

fn account(seed: u8) -> Key {
    let (key, address) = keypair_from_seed([seed; 32]);
    Key { key, address }
}

fn transfer(from: &Key, to: Address, nonce: u64, fee: u64, amount: u64) -> Vec<u8> {
    Transaction {
        chain_id: CHAIN,
        sender: from.address,
        nonce,
        fee,
        op: Operation::Transfer { to, amount },
    }
    .sign(&from.key)
    .encoded()
    .to_vec()
}

fn hash_of(bytes: &[u8]) -> TxHash {
    aurigraph_ledger::tx::SignedTransaction::decode(bytes)
        .unwrap()
        .hash()
}

fn small_pipeline(config: PipelineConfig, allocations: &[(Address, u64)]) -> Pipeline {
    let hosts = HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    };
    let slots = PipelineSlots::new(&hosts, &EngineMetrics::default()).unwrap();
    let genesis = Genesis {
        chain_id: CHAIN,
        allocations: allocations.to_vec(),
    };
    Pipeline::new(config, slots, &genesis).unwrap()
}

fn fixed_batches(size: usize) -> PipelineConfig {
    PipelineConfig {
        batcher: BatcherConfig {
            min_batch_size: size,
            max_batch_size: size,
            ..BatcherConfig::default()
        },
        ..PipelineConfig::default()
    }
}

fn statuses(b: &ProducedBlock) -> Vec<TxStatus> {
    b.outcome
        .execution
        .receipts
        .iter()
        .map(|r| r.status)
        .collect()
}

fn accept_all(p: &Pipeline, txs: &[&Vec<u8>]) {
    for (i, r) in p.submit(txs).into_iter().enumerate() {
        assert!(r.is_ok(), "transaction {i} refused: {r:?}");
    }
}

#[test]
fn a_skipped_transaction_leaves_the_mempool_and_its_sender_can_submit_it_again() {
    let (a, b, c) = (account(1), account(2), account(3));
    // Blocks of exactly 3, so a's fourth transaction stays queued after the first block.
    let p = small_pipeline(fixed_batches(3), &[(a.address, 1_000), (b.address, 10_000)]);
    // Admission checks each transaction's fee and amount against the committed balance
    // alone, so all four are admitted although a0 spends nearly everything.
    let a0 = transfer(&a, c.address, 0, 5, 995);
    let a1 = transfer(&a, c.address, 1, 5, 1);
    let a2 = transfer(&a, c.address, 2, 5, 1);
    let a3 = transfer(&a, c.address, 3, 5, 1);
    accept_all(&p, &[&a0, &a1, &a2, &a3]);

    let first = p.produce_block().unwrap().expect("a block");
    assert_eq!(
        statuses(&first),
        [
            TxStatus::Success,
            TxStatus::CannotPayFee,
            TxStatus::BadNonce
        ]
    );
    assert_eq!(p.state().account(&a.address).nonce, 1);
    let reasons: Vec<(TxHash, Removal)> =
        first.removed.iter().map(|r| (r.hash, r.reason)).collect();
    assert_eq!(
        reasons,
        [
            (hash_of(&a0), Removal::Committed),
            (hash_of(&a1), Removal::Skipped),
            (hash_of(&a2), Removal::Skipped),
        ]
    );
    // a3 waits behind the gap the skips left; the mempool's next nonce is the account's.
    assert_eq!(p.mempool().len(), 1);
    assert_eq!(p.mempool().ready_len(), 0);
    assert_eq!(p.mempool().pending_nonce(&a.address, 1), 1);
    assert_eq!(p.mempool().stats().skipped_dropped, 2);
    assert!(
        p.produce_block().unwrap().is_none(),
        "nothing is executable"
    );
    p.mempool().check_invariants().unwrap();

    // Without funds the resubmission is refused on balance (not as a duplicate or a stale
    // nonce); once b pays a, the very same bytes are accepted and a1..a3 commit.
    let refused = p.submit(&[&a1]).remove(0).unwrap_err();
    assert_eq!(refused.code, "E_INSUFFICIENT_BALANCE");
    let b0 = transfer(&b, a.address, 0, 5, 500);
    accept_all(&p, &[&b0]);
    let second = p.produce_block().unwrap().expect("b's block");
    assert_eq!(statuses(&second), [TxStatus::Success]);
    assert_eq!(p.state().account(&a.address).balance, 500);

    accept_all(&p, &[&a1, &a2]);
    assert_eq!(p.mempool().ready_len(), 3);
    let third = p.produce_block().unwrap().expect("a's block");
    assert_eq!(statuses(&third), [TxStatus::Success; 3]);
    let hashes: Vec<TxHash> = third.txs.iter().map(|t| t.tx.hash()).collect();
    assert_eq!(hashes, [hash_of(&a1), hash_of(&a2), hash_of(&a3)]);
    assert_eq!(p.state().account(&a.address).nonce, 4);
    assert_eq!(p.state().account(&a.address).balance, 500 - 18);
    assert!(p.mempool().is_empty());
    // A committed transaction is still refused as a duplicate.
    assert_eq!(p.submit(&[&a1]).remove(0).unwrap_err().code, "E_DUPLICATE");
}

#[test]
fn evicted_and_replaced_transactions_can_be_submitted_again() {
    let (x, y, z, sink) = (account(11), account(12), account(13), account(14));
    let config = PipelineConfig {
        mempool: MempoolConfig {
            max_txs: 2,
            ..MempoolConfig::default()
        },
        ..PipelineConfig::default()
    };
    let p = small_pipeline(
        config,
        &[(x.address, 1_000), (y.address, 1_000), (z.address, 1_000)],
    );
    let x0 = transfer(&x, sink.address, 0, 5, 10);
    let y0 = transfer(&y, sink.address, 0, 1, 10);
    let z0 = transfer(&z, sink.address, 0, 10, 10);
    accept_all(&p, &[&x0, &y0]);
    // z0 outranks y0 (higher fee) and evicts it.
    accept_all(&p, &[&z0]);
    assert!(!p.mempool().contains(&hash_of(&y0)));
    // The evicted bytes are judged afresh: refused for room, not as a duplicate.
    let refused = p.submit(&[&y0]).remove(0).unwrap_err();
    assert_eq!(refused.code, "E_MEMPOOL_FULL", "{refused:?}");

    let first = p.produce_block().unwrap().expect("a block");
    assert_eq!(first.txs.len(), 2);
    assert!(p.mempool().is_empty());

    // Replace-by-fee: the replaced transaction is released too.
    accept_all(&p, &[&y0]);
    let y0_bumped = transfer(&y, sink.address, 0, 2, 10);
    accept_all(&p, &[&y0_bumped]);
    let refused = p.submit(&[&y0]).remove(0).unwrap_err();
    assert_eq!(refused.code, "E_NONCE_CONFLICT", "{refused:?}");
    let second = p.produce_block().unwrap().expect("y's block");
    assert_eq!(second.txs.len(), 1);
    assert_eq!(second.txs[0].tx.hash(), hash_of(&y0_bumped));
    assert_eq!(statuses(&second), [TxStatus::Success]);
    assert_eq!(p.state().account(&y.address).nonce, 1);
}

#[test]
fn an_expired_transaction_is_released_and_can_be_submitted_again() {
    let (x, sink) = (account(15), account(16));
    let config = PipelineConfig {
        mempool: MempoolConfig {
            gapped_ttl_ms: 1_000,
            ..MempoolConfig::default()
        },
        ..PipelineConfig::default()
    };
    let p = small_pipeline(config, &[(x.address, 1_000)]);
    // Nonce 1 behind the gap at 0.
    let x1 = transfer(&x, sink.address, 1, 5, 10);
    accept_all(&p, &[&x1]);
    let later = std::time::Instant::now() + Duration::from_secs(3_600);
    let removed = p.expire(later);
    let reasons: Vec<(TxHash, Removal)> = removed.iter().map(|r| (r.hash, r.reason)).collect();
    assert_eq!(reasons, [(hash_of(&x1), Removal::Expired)]);
    assert!(p.mempool().is_empty());
    // Released from admission: the same bytes are accepted again, not refused as a
    // duplicate, and commit once the gap is filled.
    accept_all(&p, &[&x1]);
    let x0 = transfer(&x, sink.address, 0, 5, 10);
    accept_all(&p, &[&x0]);
    assert!(
        p.expire(later).is_empty(),
        "ready transactions never expire"
    );
    let block = p.produce_block().unwrap().expect("a block");
    assert_eq!(statuses(&block), [TxStatus::Success; 2]);
    assert_eq!(p.state().account(&x.address).nonce, 2);
}

#[test]
fn the_conflict_rate_follows_the_scheduled_executors_conflicts() {
    let senders: Vec<Key> = (100..200u8).map(account).collect();
    let hot = account(250);
    let allocations: Vec<_> = senders.iter().map(|s| (s.address, 1_000)).collect();
    let config = PipelineConfig {
        executor: ExecutorConfig {
            kind: ExecutorKind::Scheduled,
            threads: 2,
        },
        ..fixed_batches(100)
    };
    let p = small_pipeline(config, &allocations);

    // Every transfer pays one hot account: all but the first wait on it.
    let hot_block: Vec<Vec<u8>> = senders
        .iter()
        .map(|s| transfer(s, hot.address, 0, 5, 10))
        .collect();
    let refs: Vec<&Vec<u8>> = hot_block.iter().collect();
    accept_all(&p, &refs);
    let b = p.produce_block().unwrap().expect("a block");
    assert_eq!(b.txs.len(), 100);
    let stats = b.outcome.execution.stats;
    assert_eq!(stats.executor, ExecutorKind::Scheduled);
    assert_eq!(stats.conflicts, 99);
    assert!(
        (p.load().conflict_rate - 0.99).abs() < 1e-6,
        "{}",
        p.load().conflict_rate
    );

    // Distinct recipients: no conflict.
    let spread: Vec<Vec<u8>> = senders
        .iter()
        .enumerate()
        .map(|(i, s)| transfer(s, account(i as u8).address, 1, 5, 10))
        .collect();
    let refs: Vec<&Vec<u8>> = spread.iter().collect();
    accept_all(&p, &refs);
    let b = p.produce_block().unwrap().expect("a block");
    assert_eq!(b.txs.len(), 100);
    assert_eq!(b.outcome.execution.stats.conflicts, 0);
    assert_eq!(p.load().conflict_rate, 0.0);

    // The rate is capped at 1 and defined for an empty block.
    let mut s = stats;
    s.conflicts = 500;
    assert_eq!(conflict_rate(&s, 100), 1.0);
    assert_eq!(conflict_rate(&s, 0), 0.0);
}

#[test]
fn executor_errors_have_their_own_code() {
    let e = aurigraph_ledger::LedgerError::Execution {
        height: 9,
        source: ExecutorError::Aborted,
    };
    assert_eq!(e.code(), "E_EXECUTION");
    let text = e.to_string();
    assert!(
        text.contains("block 9") && text.contains("[E_EXEC_ABORTED]"),
        "{text}"
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn a_failed_record_leaves_nothing_behind_and_the_transactions_can_be_submitted_again() {
    let (a, b) = (account(1), account(2));
    let p = small_pipeline(PipelineConfig::default(), &[(a.address, 1_000)]);
    let t = transfer(&a, b.address, 0, 1, 5);
    let failed = p.submit_with(&[&t], |admitted| {
        assert_eq!(admitted.len(), 1, "admission passed it to the record");
        Err("disk full")
    });
    assert_eq!(failed.err(), Some("disk full"));
    assert!(
        p.mempool().is_empty(),
        "nothing enters the mempool before its record"
    );
    // Admission forgot it: the same bytes are accepted, not refused as a duplicate.
    let out = p.submit_with(&[&t], |_| Ok::<(), ()>(())).unwrap();
    assert_eq!(out.results[0].as_ref().ok(), Some(&hash_of(&t)));
    assert!(out.removed.is_empty() && out.refused_after_record.is_empty());
    assert_eq!(p.mempool().len(), 1);
}

#[test]
fn a_recorded_transaction_the_mempool_refuses_is_reported_for_clean_up() {
    let (a, b) = (account(1), account(2));
    let p = small_pipeline(
        PipelineConfig {
            mempool: MempoolConfig {
                max_per_sender: 1,
                max_nonce_ahead: 4,
                ..MempoolConfig::default()
            },
            ..PipelineConfig::default()
        },
        &[(a.address, 1_000)],
    );
    let first = transfer(&a, b.address, 0, 1, 5);
    let second = transfer(&a, b.address, 1, 1, 5);
    let mut recorded = Vec::new();
    let out = p
        .submit_with(&[&first, &second], |admitted| {
            recorded.extend(admitted.iter().map(|t| t.tx.hash()));
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!(recorded, vec![hash_of(&first), hash_of(&second)]);
    assert_eq!(out.results[1].as_ref().unwrap_err().code, "E_SENDER_LIMIT");
    assert_eq!(out.refused_after_record, vec![hash_of(&second)]);
}

#[test]
fn a_block_that_cannot_be_persisted_changes_nothing_and_commits_on_the_next_try() {
    let (a, b) = (account(1), account(2));
    let p = small_pipeline(fixed_batches(2), &[(a.address, 1_000)]);
    let t0 = transfer(&a, b.address, 0, 1, 5);
    let t1 = transfer(&a, b.address, 1, 1, 7);
    accept_all(&p, &[&t0, &t1]);
    let root = p.state().root();
    let proposal = p.propose().expect("a proposal");
    let executed = p.execute(proposal).unwrap();
    assert_eq!(executed.height(), 1);
    let mut seen_root = None;
    let err = p
        .commit_with(executed, |produced| {
            // The persist step sees the block's result...
            seen_root = Some(produced.outcome.state_root);
            Err::<(), _>("write failed")
        })
        .unwrap_err();
    assert_eq!(err, "write failed");
    assert_ne!(seen_root, Some(root));
    // ...and its failure puts everything back: state, root, height, mempool.
    assert_eq!(p.state().root(), root);
    assert_eq!(p.state().root(), p.state().recompute_root());
    assert_eq!(p.state().account(&a.address).nonce, 0);
    assert_eq!(p.height(), 0);
    assert_eq!(p.mempool().len(), 2);
    assert_eq!(p.mempool().ready_len(), 2);
    // The next try commits the same block.
    let proposal = p.propose().expect("proposed again");
    let (produced, ()) = p
        .commit_with(p.execute(proposal).unwrap(), |_| Ok::<(), ()>(()))
        .unwrap();
    assert_eq!(produced.height, 1);
    assert_eq!(Some(produced.outcome.state_root), seen_root);
    assert_eq!(p.state().account(&b.address).balance, 12);
    assert!(p.mempool().is_empty());
}

#[test]
fn blocks_executed_over_the_ones_in_flight_commit_to_the_roots_they_proposed() {
    // A seeded workload with contention; blocks of 50, up to 4 in flight before any commits.
    let workload = Workload::preset("hot-accounts", 5).unwrap();
    let events = workload.generate(1_000);
    let hosts = HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    };
    let slots = PipelineSlots::new(&hosts, &EngineMetrics::default()).unwrap();
    let p = Pipeline::new(fixed_batches(50), slots, workload.genesis()).unwrap();
    let bytes: Vec<&[u8]> = events.iter().map(|e| e.bytes.as_slice()).collect();
    p.submit(&bytes);
    let mut replica = ShardedState::from_genesis(workload.genesis(), 16).unwrap();
    let mut committed = 0;
    loop {
        let mut in_flight = std::collections::VecDeque::new();
        let mut hashes = std::collections::HashSet::new();
        let mut pending = std::collections::HashMap::new();
        while in_flight.len() < 4 {
            let Some(proposal) = p.propose_at(p.height() + 1 + in_flight.len() as u64, &hashes)
            else {
                break;
            };
            hashes.extend(proposal.batch.txs.iter().map(|t| t.tx.hash()));
            let txs: Vec<_> = proposal
                .batch
                .txs
                .iter()
                .map(|t| Arc::clone(&t.tx))
                .collect();
            let executed = p.execute_over(proposal, &pending).unwrap();
            let root = p.root_over(&pending, &executed);
            pending.extend(executed.write_set().iter().copied());
            in_flight.push_back((executed, root, txs));
        }
        if in_flight.is_empty() {
            break;
        }
        // Nothing proposed changed the committed state or the height.
        assert_eq!(p.height(), committed);
        for (executed, root, txs) in in_flight {
            let (produced, ()) = p
                .commit_with(executed, |_| Ok::<(), std::convert::Infallible>(()))
                .unwrap();
            assert_eq!(
                produced.outcome.state_root, root,
                "height {}",
                produced.height
            );
            // Equal to executing the block sequentially in block order on the committed state.
            let oracle = SequentialExecutor
                .execute_and_commit(&mut replica, &txs)
                .unwrap();
            assert_eq!(oracle.state_root, root);
            assert_eq!(
                oracle.execution.receipts,
                produced.outcome.execution.receipts
            );
            committed += 1;
        }
    }
    assert!(committed >= 10, "{committed} blocks");
    assert!(p.mempool().is_empty());
}

/// Four request handlers submit at once (their mempool insertions share the commit section)
/// while another thread produces blocks: every accepted transaction commits exactly once,
/// each sender's nonces end where its transactions took them, the mempool ends empty and
/// consistent, and a replica replaying the blocks reaches the same root.
#[test]
fn submitters_on_several_threads_and_a_block_loop_commit_everything_exactly_once() {
    const THREADS: u8 = 4;
    const SENDERS_PER_THREAD: u8 = 6;
    const NONCES: u64 = 12;
    let senders: Vec<Key> = (0..THREADS * SENDERS_PER_THREAD)
        .map(|i| account(100 + i))
        .collect();
    let sink = account(1).address;
    let allocations: Vec<(Address, u64)> = senders.iter().map(|k| (k.address, 1_000_000)).collect();
    let p = small_pipeline(PipelineConfig::default(), &allocations);
    let genesis = ShardedState::from_genesis(
        &Genesis {
            chain_id: CHAIN,
            allocations: allocations.clone(),
        },
        aurigraph_ledger::state::DEFAULT_SHARDS,
    )
    .unwrap();
    let submitting = std::sync::atomic::AtomicUsize::new(THREADS as usize);
    let (accepted, blocks) = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut blocks = Vec::new();
            loop {
                let idle = submitting.load(std::sync::atomic::Ordering::Acquire) == 0;
                match p.produce_block().unwrap() {
                    Some(b) => blocks.push(b),
                    None if idle => return blocks,
                    None => std::thread::sleep(Duration::from_micros(100)),
                }
            }
        });
        let handlers: Vec<_> = senders
            .chunks(SENDERS_PER_THREAD as usize)
            .map(|mine| {
                let p = &p;
                let submitting = &submitting;
                s.spawn(move || {
                    let mut accepted = 0usize;
                    // One request per nonce, each carrying that nonce of every sender.
                    for nonce in 0..NONCES {
                        let txs: Vec<Vec<u8>> = mine
                            .iter()
                            .map(|k| transfer(k, sink, nonce, 1, 10))
                            .collect();
                        for r in p.submit(&txs) {
                            assert!(r.is_ok(), "refused: {r:?}");
                            accepted += 1;
                        }
                    }
                    submitting.fetch_sub(1, std::sync::atomic::Ordering::Release);
                    accepted
                })
            })
            .collect();
        let accepted: usize = handlers.into_iter().map(|h| h.join().unwrap()).sum();
        (accepted, producer.join().unwrap())
    });
    // What the block loop had not yet taken when the submitters finished.
    let mut blocks = blocks;
    while let Some(b) = p.produce_block().unwrap() {
        blocks.push(b);
    }
    let committed: Vec<TxHash> = blocks
        .iter()
        .flat_map(|b| b.txs.iter().map(|t| t.tx.hash()))
        .collect();
    let unique: std::collections::HashSet<_> = committed.iter().collect();
    assert_eq!(accepted, senders.len() * NONCES as usize);
    assert_eq!(
        committed.len(),
        accepted,
        "each accepted transaction commits once"
    );
    assert_eq!(unique.len(), accepted);
    assert!(
        blocks
            .iter()
            .all(|b| statuses(b).iter().all(|s| *s == TxStatus::Success))
    );
    assert!(p.mempool().is_empty());
    p.mempool().check_invariants().unwrap();
    for k in &senders {
        assert_eq!(p.state().account(&k.address).nonce, NONCES);
    }
    let mut replica = genesis;
    for b in &blocks {
        let block: Vec<_> = b.txs.iter().map(|t| t.tx.clone()).collect();
        let execution = SequentialExecutor::new()
            .execute(&replica, CHAIN, &block)
            .unwrap();
        replica.apply(&execution.write_set);
        assert_eq!(replica.root(), b.outcome.state_root);
    }
    assert_eq!(replica.root(), p.state().root());
}
