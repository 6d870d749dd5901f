//! Differential tests: every parallel executor, with 1, 2 and 8 threads (Block-STM also
//! with 16), against the sequential oracle on random blocks with hot accounts and failing
//! transactions; Block-STM alone at 1, 2, 8 and 16 threads on larger blocks with random
//! conflict patterns, each block run twice per executor (other interleavings), also with
//! its abort-rate guard off, on a hair trigger and forced to stop speculation at various
//! points (the sequential tail on top of the validated prefix); plus the execution rules on
//! hand-made blocks.

use std::sync::{Arc, LazyLock};

use aurigraph_ledger::executor::{
    AbortGuard, BlockExecutor, BlockStmExecutor, ExecutorConfig, ExecutorKind, FEE_SINK,
    ScheduledExecutor, SequentialExecutor, TxStatus, commit,
};
use aurigraph_ledger::state::{Account, Genesis, ShardedState, StateView};
use aurigraph_ledger::tx::{Address, Operation, SignedTransaction, Transaction, keypair_from_seed};
use ed25519_consensus::SigningKey;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CHAIN: u32 = 7;
const ACCOUNTS: usize = 24;

static KEYS: LazyLock<Vec<(SigningKey, Address)>> = LazyLock::new(|| {
    (0..ACCOUNTS)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            keypair_from_seed(seed)
        })
        .collect()
});

static EXECUTORS: LazyLock<Vec<Box<dyn BlockExecutor>>> = LazyLock::new(|| {
    let mut v: Vec<Box<dyn BlockExecutor>> = Vec::new();
    for threads in [1, 2, 8] {
        v.push(Box::new(ScheduledExecutor::new(threads).unwrap()));
        v.push(Box::new(BlockStmExecutor::new(threads).unwrap()));
    }
    v.push(Box::new(BlockStmExecutor::new(16).unwrap()));
    v
});

/// Block-STM at every thread count the issue names.
static STM: LazyLock<Vec<BlockStmExecutor>> = LazyLock::new(|| {
    [1, 2, 8, 16]
        .into_iter()
        .map(|t| BlockStmExecutor::new(t).unwrap())
        .collect()
});

/// Block-STM at 2, 8 and 16 threads with other abort-rate guards: off (the paper's
/// algorithm, run to the end), on a hair trigger (any conflict stops speculation), the
/// default thresholds, and forced to stop after 0, 1, 13, 60 and 150 executions of a worker;
/// none pre-checks for a chain, so fully conflicting blocks reach the guard.
static STM_GUARDS: LazyLock<Vec<BlockStmExecutor>> = LazyLock::new(|| {
    let forced = |n| AbortGuard {
        force_after: Some(n),
        ..AbortGuard::off()
    };
    let guards = [
        AbortGuard::off(),
        AbortGuard {
            window: 1,
            max_conflicts: 0,
            chain_precheck: false,
            force_after: None,
        },
        AbortGuard {
            chain_precheck: false,
            ..AbortGuard::default()
        },
        forced(0),
        forced(1),
        forced(13),
        forced(60),
        forced(150),
    ];
    let mut v = Vec::new();
    for threads in [2, 8, 16] {
        for g in guards {
            v.push(BlockStmExecutor::with_guard(threads, g).unwrap());
        }
    }
    v
});

fn addr(i: usize) -> Address {
    KEYS[i].1
}

/// Genesis: ordinary balances, a few poor accounts, a few near `u64::MAX` (overflow
/// targets), and sometimes a fee sink about to overflow.
fn genesis(rng: &mut SmallRng) -> ShardedState {
    let mut allocations: Vec<(Address, u64)> = (0..ACCOUNTS)
        .map(|i| {
            let balance = match i % 6 {
                0 => u64::MAX - rng.random_range(0..1_000),
                1 => rng.random_range(0..20),
                _ => rng.random_range(1_000..100_000),
            };
            (addr(i), balance)
        })
        .collect();
    if rng.random_bool(0.3) {
        allocations.push((FEE_SINK, u64::MAX - rng.random_range(0..50)));
    }
    let shards = [1, 3, 256][rng.random_range(0..3)];
    ShardedState::from_genesis(
        &Genesis {
            chain_id: CHAIN,
            allocations,
        },
        shards,
    )
    .unwrap()
}

/// A random block. `hot_share` percent of transactions touch one of `hot` hot accounts.
fn block(
    rng: &mut SmallRng,
    state: &ShardedState,
    len: usize,
    hot_share: u32,
    hot: usize,
) -> Vec<Arc<SignedTransaction>> {
    let mut nonces: Vec<u64> = (0..ACCOUNTS)
        .map(|i| state.account(&addr(i)).nonce)
        .collect();
    let pick = |rng: &mut SmallRng, hot_ok: bool| {
        if hot_ok && rng.random_range(0..100) < hot_share {
            rng.random_range(0..hot)
        } else {
            rng.random_range(0..ACCOUNTS)
        }
    };
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let hot_sender = rng.random_bool(0.3);
        let s = pick(rng, hot_sender);
        let recipient = |rng: &mut SmallRng| loop {
            if rng.random_range(0..50) == 0 {
                return FEE_SINK;
            }
            let r = pick(rng, !hot_sender);
            if r != s {
                return addr(r);
            }
        };
        let amount = |rng: &mut SmallRng| match rng.random_range(0..20) {
            0 => u64::MAX / 2 + rng.random_range(0..1_000), // overflow or insufficient
            1 => rng.random_range(50_000..200_000),         // often insufficient
            _ => rng.random_range(1..2_000),
        };
        let op = if rng.random_bool(0.2) {
            let n = rng.random_range(1..=4);
            let mut outputs: Vec<(Address, u64)> = Vec::with_capacity(n);
            for _ in 0..n {
                // Repeated recipients on purpose, sometimes.
                let to = if !outputs.is_empty() && rng.random_bool(0.2) {
                    outputs[0].0
                } else {
                    recipient(rng)
                };
                outputs.push((to, amount(rng) / 4 + 1));
            }
            Operation::MultiTransfer { outputs }
        } else {
            Operation::Transfer {
                to: recipient(rng),
                amount: amount(rng),
            }
        };
        let nonce = match rng.random_range(0..20) {
            0 => nonces[s] + 1,               // future: skipped
            1 => nonces[s].saturating_sub(1), // stale: skipped (unless 0)
            _ => {
                nonces[s] += 1;
                nonces[s] - 1
            }
        };
        let fee = match rng.random_range(0..30) {
            0 => 1_000_000, // cannot pay
            1 => 0,
            _ => rng.random_range(1..10),
        };
        let chain_id = if rng.random_range(0..40) == 0 {
            CHAIN + 1
        } else {
            CHAIN
        };
        let tx = Transaction {
            chain_id,
            sender: addr(s),
            nonce,
            fee,
            op,
        };
        if rng.random_range(0..100) == 0 {
            // The fee sink as a sender: nobody can sign for it; the executor skips it.
            let mut t = tx;
            t.sender = FEE_SINK;
            out.push(Arc::new(SignedTransaction::from_parts(t, [0; 64])));
        } else {
            out.push(Arc::new(tx.sign(&KEYS[s].0)));
        }
    }
    out
}

fn check_case(seed: u64, len: usize, hot_share: u32, hot: usize, blocks: usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut oracle_state = genesis(&mut rng);
    let mut states: Vec<ShardedState> = EXECUTORS.iter().map(|_| oracle_state.clone()).collect();
    for _ in 0..blocks {
        let b = block(&mut rng, &oracle_state, len, hot_share, hot);
        let expected = SequentialExecutor::new()
            .execute_and_commit(&mut oracle_state, &b)
            .unwrap();
        for (exec, state) in EXECUTORS.iter().zip(states.iter_mut()) {
            let got = exec.execute_and_commit(state, &b).unwrap();
            assert!(
                got.execution.same_result(&expected.execution),
                "{} x{} differs from sequential (seed {seed}, len {len}, hot {hot_share}% of {hot})\n\
                 expected {:?}\n got {:?}",
                exec.kind(),
                exec.threads(),
                expected.execution,
                got.execution
            );
            assert_eq!(got.state_root, expected.state_root);
        }
    }
    assert_eq!(oracle_state.root(), oracle_state.recompute_root());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parallel_executors_match_sequential(
        seed in any::<u64>(),
        len in 0usize..160,
        hot_share in prop::sample::select(vec![0u32, 10, 50, 90, 100]),
        hot in 1usize..=3,
        blocks in 1usize..=2,
    ) {
        check_case(seed, len, hot_share, hot, blocks);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random conflict patterns, from none (`hot_share` 0: 24 accounts still collide now and
    /// then) to every transaction on one hot account, with nonce chains, skips, failures,
    /// multi-transfers and the fee sink; blocks of up to 600 transactions so that many
    /// incarnations run concurrently, abort, and suspend on estimates.
    #[test]
    fn block_stm_matches_sequential_at_1_2_8_16_threads(
        seed in any::<u64>(),
        len in 1usize..600,
        hot_share in 0u32..=100,
        hot in 1usize..=4,
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let state = genesis(&mut rng);
        let b = block(&mut rng, &state, len, hot_share, hot);
        let expected = SequentialExecutor::new().execute(&state, CHAIN, &b).unwrap();
        for exec in STM.iter().chain(STM_GUARDS.iter()) {
            for _ in 0..2 {
                let got = exec.execute(&state, CHAIN, &b).unwrap();
                prop_assert!(
                    got.same_result(&expected),
                    "block-stm x{} {:?} differs (seed {seed}, len {len}, hot {hot_share}% of {hot}, tail {})",
                    exec.threads(),
                    exec.guard(),
                    got.stats.sequential_tail
                );
                // A block that the pre-check finds to be one chain runs on the caller alone.
                let chain = exec.guard().chain_precheck
                    && got.stats.sequential_tail == b.len() as u64
                    && !got.stats.parallel;
                prop_assert_eq!(got.stats.parallel || chain, exec.threads() > 1);
                prop_assert_eq!(got.stats.executed + got.stats.skipped, b.len());
                prop_assert!(got.stats.sequential_tail <= b.len() as u64);
                if exec.guard() == AbortGuard::off() || exec.threads() == 1 {
                    prop_assert_eq!(got.stats.sequential_tail, 0);
                }
            }
        }
    }
}

/// `n` transfers from the 23 other accounts in turn (nonce chains) to account 0: every
/// transaction conflicts with the one before.
fn one_hot_block(n: usize) -> (ShardedState, Vec<Arc<SignedTransaction>>) {
    let state = simple_state(&(0..ACCOUNTS).map(|i| (i, 1_000_000)).collect::<Vec<_>>());
    let mut nonces = [0u64; ACCOUNTS];
    let b = (0..n)
        .map(|k| {
            let s = 1 + k % (ACCOUNTS - 1);
            nonces[s] += 1;
            transfer(
                s,
                nonces[s] - 1,
                1 + k as u64 % 7,
                addr(0),
                1 + k as u64 % 100,
            )
        })
        .collect();
    (state, b)
}

#[test]
fn fully_conflicting_blocks_fall_back_and_match() {
    for n in [1, 31, 32, 200, 1_000] {
        let (state, b) = one_hot_block(n);
        let expected = SequentialExecutor::new()
            .execute(&state, CHAIN, &b)
            .unwrap();
        for exec in STM.iter().chain(STM_GUARDS.iter()) {
            for _ in 0..2 {
                let got = exec.execute(&state, CHAIN, &b).unwrap();
                assert!(
                    got.same_result(&expected),
                    "block-stm x{} {:?}, {n} transactions, tail {}",
                    exec.threads(),
                    exec.guard(),
                    got.stats.sequential_tail
                );
                // The default guard's pre-check sees one chain from 32 transactions on.
                if exec.threads() > 1 && exec.guard() == AbortGuard::default() && n >= 32 {
                    assert_eq!(got.stats.sequential_tail, n as u64);
                }
            }
        }
    }
}

#[test]
fn a_forced_stop_runs_a_sequential_tail_and_counts_it() {
    let (state, b) = one_hot_block(2_000);
    let expected = SequentialExecutor::new()
        .execute(&state, CHAIN, &b)
        .unwrap();
    for (threads, force) in [
        (2, 0),
        (2, 5),
        (2, 300),
        (2, 900),
        (8, 0),
        (8, 40),
        (8, 150),
        (16, 1),
        (16, 60),
    ] {
        let exec = BlockStmExecutor::with_guard(
            threads,
            AbortGuard {
                force_after: Some(force),
                ..AbortGuard::off()
            },
        )
        .unwrap();
        // A worker stops after `force` executions; another could, in theory, finish the
        // block first if the stopping one were descheduled for all of it: retry a few times.
        let mut tails = Vec::new();
        for _ in 0..5 {
            let got = exec.execute(&state, CHAIN, &b).unwrap();
            assert!(
                got.same_result(&expected),
                "x{threads} forced after {force}"
            );
            tails.push(got.stats.sequential_tail);
            if got.stats.sequential_tail > 0 {
                break;
            }
        }
        assert!(
            tails.iter().any(|&t| t > 0),
            "x{threads} forced after {force}: no sequential tail in {tails:?}"
        );
    }
}

#[test]
fn low_contention_speculates_to_the_end() {
    // Distinct senders and recipients: no conflict, so neither the pre-check nor the guard
    // stops speculation.
    let state = simple_state(&(0..ACCOUNTS).map(|i| (i, 1_000)).collect::<Vec<_>>());
    let b: Vec<_> = (0..ACCOUNTS / 2)
        .map(|i| transfer(i, 0, 1, addr(ACCOUNTS / 2 + i), 10))
        .collect();
    let expected = SequentialExecutor::new()
        .execute(&state, CHAIN, &b)
        .unwrap();
    for exec in STM.iter() {
        let got = exec.execute(&state, CHAIN, &b).unwrap();
        assert!(got.same_result(&expected));
        assert_eq!(got.stats.sequential_tail, 0);
    }
}

#[test]
fn larger_blocks_take_the_parallel_path_and_match() {
    let mut rng = SmallRng::seed_from_u64(99);
    let state = genesis(&mut rng);
    let b = block(&mut rng, &state, 1_500, 10, 3);
    let expected = SequentialExecutor::new()
        .execute(&state, CHAIN, &b)
        .unwrap();
    for exec in EXECUTORS.iter() {
        let got = exec.execute(&state, CHAIN, &b).unwrap();
        assert!(
            got.same_result(&expected),
            "{} x{}",
            exec.kind(),
            exec.threads()
        );
        assert_eq!(got.stats.parallel, exec.threads() > 1);
        assert_eq!(got.stats.executed + got.stats.skipped, b.len());
    }
}

#[test]
fn a_block_on_one_account_runs_serially_in_the_scheduler() {
    let mut rng = SmallRng::seed_from_u64(5);
    let state = genesis(&mut rng);
    let b = block(&mut rng, &state, 400, 100, 1);
    let exec = ScheduledExecutor::new(2).unwrap();
    let got = exec.execute(&state, CHAIN, &b).unwrap();
    assert!(!got.stats.parallel);
    let expected = SequentialExecutor::new()
        .execute(&state, CHAIN, &b)
        .unwrap();
    assert!(got.same_result(&expected));
}

// ---- the rules, on hand-made blocks ----

fn simple_state(balances: &[(usize, u64)]) -> ShardedState {
    ShardedState::from_genesis(
        &Genesis {
            chain_id: CHAIN,
            allocations: balances.iter().map(|(i, b)| (addr(*i), *b)).collect(),
        },
        16,
    )
    .unwrap()
}

fn transfer(from: usize, nonce: u64, fee: u64, to: Address, amount: u64) -> Arc<SignedTransaction> {
    Arc::new(
        Transaction {
            chain_id: CHAIN,
            sender: addr(from),
            nonce,
            fee,
            op: Operation::Transfer { to, amount },
        }
        .sign(&KEYS[from].0),
    )
}

fn run_all(
    state: &ShardedState,
    b: &[Arc<SignedTransaction>],
) -> aurigraph_ledger::executor::Execution {
    let expected = SequentialExecutor::new().execute(state, CHAIN, b).unwrap();
    for exec in EXECUTORS.iter() {
        assert!(
            exec.execute(state, CHAIN, b)
                .unwrap()
                .same_result(&expected)
        );
    }
    expected
}

#[test]
fn insufficient_funds_keeps_fee_and_nonce() {
    let state = simple_state(&[(0, 100)]);
    let e = run_all(&state, &[transfer(0, 0, 10, addr(1), 95)]);
    assert_eq!(e.receipts[0].status, TxStatus::InsufficientFunds);
    assert_eq!(e.receipts[0].fee_charged, 10);
    assert_eq!(e.write_set, {
        let mut v = vec![
            (
                addr(0),
                Account {
                    balance: 90,
                    nonce: 1,
                },
            ),
            (
                FEE_SINK,
                Account {
                    balance: 10,
                    nonce: 0,
                },
            ),
        ];
        v.sort_by_key(|x| x.0);
        v
    });
    assert_eq!(e.fees, 10);
}

#[test]
fn skips_change_nothing() {
    let state = simple_state(&[(0, 100)]);
    let mut wrong_chain = Transaction {
        chain_id: CHAIN + 1,
        sender: addr(0),
        nonce: 0,
        fee: 1,
        op: Operation::Transfer {
            to: addr(1),
            amount: 1,
        },
    };
    let b = vec![
        transfer(0, 1, 1, addr(1), 1),   // future nonce
        transfer(0, 0, 101, addr(1), 1), // cannot pay the fee
        Arc::new(wrong_chain.clone().sign(&KEYS[0].0)),
    ];
    wrong_chain.sender = FEE_SINK;
    let e = run_all(&state, &b);
    let statuses: Vec<_> = e.receipts.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            TxStatus::BadNonce,
            TxStatus::CannotPayFee,
            TxStatus::WrongChain
        ]
    );
    assert!(
        e.receipts
            .iter()
            .all(|r| r.fee_charged == 0 && r.status.is_skip())
    );
    assert!(e.write_set.is_empty());
}

#[test]
fn multi_transfer_is_all_or_nothing_on_overflow() {
    let state = simple_state(&[(0, 1_000), (2, u64::MAX - 5)]);
    let b = vec![Arc::new(
        Transaction {
            chain_id: CHAIN,
            sender: addr(0),
            nonce: 0,
            fee: 1,
            op: Operation::MultiTransfer {
                outputs: vec![(addr(1), 10), (addr(2), 10)],
            },
        }
        .sign(&KEYS[0].0),
    )];
    let e = run_all(&state, &b);
    assert_eq!(e.receipts[0].status, TxStatus::BalanceOverflow);
    assert!(
        e.write_set
            .iter()
            .all(|(a, _)| *a != addr(1) && *a != addr(2))
    );
    assert!(e.write_set.contains(&(
        addr(0),
        Account {
            balance: 999,
            nonce: 1
        }
    )));
}

#[test]
fn fees_reach_the_sink_once_at_the_end_and_overflow_burns() {
    let mut state = simple_state(&[(0, 1_000), (1, 1_000)]);
    state.apply(&[(
        FEE_SINK,
        Account {
            balance: u64::MAX - 3,
            nonce: 0,
        },
    )]);
    let b = vec![
        transfer(0, 0, 2, addr(1), 5),
        transfer(1, 0, 4, FEE_SINK, 1),
    ];
    let e = run_all(&state, &b);
    assert_eq!(e.fees, 6);
    // The transfer of 1 lands first (MAX - 2); 2 of the 6 fees fit, the other 4 burn.
    assert_eq!(e.fees_burned, 4);
    assert!(e.write_set.contains(&(
        FEE_SINK,
        Account {
            balance: u64::MAX,
            nonce: 0
        }
    )));
}

#[test]
fn nonces_chain_within_a_block_and_commit_updates_the_root() {
    let mut state = simple_state(&[(0, 1_000)]);
    let before = state.root();
    let b: Vec<_> = (0..5).map(|n| transfer(0, n, 1, addr(1), 10)).collect();
    let out = ExecutorConfig::default()
        .build()
        .unwrap()
        .execute_and_commit(&mut state, &b)
        .unwrap();
    assert!(out.execution.receipts.iter().all(|r| r.status.is_success()));
    assert_eq!(
        state.account(&addr(0)),
        Account {
            balance: 945,
            nonce: 5
        }
    );
    assert_eq!(state.account(&addr(1)).balance, 50);
    assert_eq!(state.account(&FEE_SINK).balance, 5);
    assert_ne!(out.state_root, before);
    assert_eq!(out.state_root, state.recompute_root());
    assert_eq!(out.execution.stats.executor, ExecutorKind::Scheduled);
    let again = commit(&mut state.clone(), out.execution.clone());
    assert_eq!(again.state_root, out.state_root);
}

/// Blocks long enough that Block-STM's workers claim full chunks (16 indices per claim at
/// 2, 8 and 16 threads: 8,192 transactions), from distinct senders, with 0 %, 10 % and 50 %
/// of the transfers paying one of three hot accounts (re-executions and suspensions across
/// claims): every guard setting matches the oracle.
#[test]
fn blocks_with_full_claims_match_sequential() {
    const N: usize = 8_192;
    let senders: Vec<(SigningKey, Address)> = (0..N)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(1_000_000 + i as u64).to_le_bytes());
            keypair_from_seed(seed)
        })
        .collect();
    let state = ShardedState::from_genesis(
        &Genesis {
            chain_id: CHAIN,
            allocations: senders.iter().map(|(_, a)| (*a, 10_000)).collect(),
        },
        256,
    )
    .unwrap();
    let mut rng = SmallRng::seed_from_u64(8_192);
    for hot_share in [0u32, 10, 50] {
        let b: Vec<Arc<SignedTransaction>> = senders
            .iter()
            .map(|(key, sender)| {
                let to = if rng.random_range(0..100) < hot_share {
                    addr(rng.random_range(0..3))
                } else {
                    addr(rng.random_range(3..ACCOUNTS))
                };
                Arc::new(
                    Transaction {
                        chain_id: CHAIN,
                        sender: *sender,
                        nonce: 0,
                        fee: 1,
                        op: Operation::Transfer {
                            to,
                            amount: rng.random_range(1..100),
                        },
                    }
                    .sign(key),
                )
            })
            .collect();
        let expected = SequentialExecutor::new()
            .execute(&state, CHAIN, &b)
            .unwrap();
        for threads in [2, 8, 16] {
            for guard in [AbortGuard::default(), AbortGuard::off()] {
                let exec = BlockStmExecutor::with_guard(threads, guard).unwrap();
                let got = exec.execute(&state, CHAIN, &b).unwrap();
                assert!(
                    got.same_result(&expected),
                    "{hot_share} % hot, x{threads}, {guard:?}"
                );
            }
        }
    }
}
