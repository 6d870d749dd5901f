//! The mempool: readiness, error codes, replace-by-fee, eviction, selection order, expiry
//! behind a nonce gap, determinism (property tests) and bounds under concurrent submission.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::thread;
use std::time::{Duration, Instant};

use aurigraph_decision::slot::anomaly::AnomalyClass;
use aurigraph_ledger::mempool::{Eviction, Mempool, MempoolConfig, MempoolError, ReadyTx, Removal};
use aurigraph_ledger::tx::{
    Address, AdmittedTx, Operation, SignedTransaction, Transaction, TxHash, keypair_from_seed,
};
use ed25519_consensus::SigningKey;
use proptest::prelude::*;

const N: AnomalyClass = AnomalyClass::Normal;
const S: AnomalyClass = AnomalyClass::Suspicious;
const A: AnomalyClass = AnomalyClass::Anomalous;

/// Signing keys, generated once.
static KEYS: LazyLock<Vec<(SigningKey, Address)>> = LazyLock::new(|| {
    (0..160u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            seed[31] = 0x4D;
            keypair_from_seed(seed)
        })
        .collect()
});

static SEQ: AtomicU64 = AtomicU64::new(1);

fn sender(i: usize) -> Address {
    KEYS[i].1
}

/// A signed transfer from key `k` with `outputs` recipients (158 bytes for one recipient,
/// 119 + 40 * outputs for several).
fn signed(k: usize, nonce: u64, fee: u64, outputs: usize) -> SignedTransaction {
    let (sk, from) = &KEYS[k];
    let op = if outputs <= 1 {
        Operation::Transfer {
            to: Address([0xEE; 32]),
            amount: 1,
        }
    } else {
        Operation::MultiTransfer {
            outputs: (0..outputs).map(|i| (Address([i as u8; 32]), 1)).collect(),
        }
    };
    Transaction {
        chain_id: 1,
        sender: *from,
        nonce,
        fee,
        op,
    }
    .sign(sk)
}

fn admit(tx: SignedTransaction, class: AnomalyClass) -> AdmittedTx {
    AdmittedTx {
        tx: Arc::new(tx),
        anomaly_score: match class {
            AnomalyClass::Normal => 0.1,
            AnomalyClass::Suspicious => 0.6,
            AnomalyClass::Anomalous => 0.9,
        },
        class,
        seq: SEQ.fetch_add(1, Ordering::Relaxed),
        admitted_at: Instant::now(),
    }
}

fn tx(k: usize, nonce: u64, fee: u64, class: AnomalyClass) -> AdmittedTx {
    admit(signed(k, nonce, fee, 1), class)
}

fn pool(max_txs: usize, max_bytes: usize, max_per_sender: usize) -> Mempool {
    Mempool::new(MempoolConfig {
        max_txs,
        max_bytes,
        max_per_sender,
        ..MempoolConfig::default()
    })
    .unwrap()
}

fn code(r: Result<impl std::fmt::Debug, MempoolError>) -> &'static str {
    r.unwrap_err().code()
}

fn order(sel: &[ReadyTx]) -> Vec<(Address, u64)> {
    sel.iter()
        .map(|r| (r.tx.tx.tx().sender, r.tx.tx.tx().nonce))
        .collect()
}

#[test]
fn readiness_follows_consecutive_nonces_and_pending_nonce_counts_them() {
    let mp = Mempool::new(MempoolConfig::default()).unwrap();
    let s = sender(0);
    assert_eq!(mp.pending_nonce(&s, 5), 5);
    assert!(mp.insert(tx(0, 5, 10, N), 5).unwrap().ready);
    assert!(!mp.insert(tx(0, 7, 10, N), 5).unwrap().ready, "gap at 6");
    assert_eq!((mp.len(), mp.ready_len()), (2, 1));
    assert_eq!(mp.pending_nonce(&s, 5), 6);
    assert_eq!(order(&mp.select_ready(10)), vec![(s, 5)]);
    assert!(mp.insert(tx(0, 6, 10, N), 5).unwrap().ready);
    assert_eq!(mp.ready_len(), 3);
    assert_eq!(mp.pending_nonce(&s, 5), 8);
    assert_eq!(
        mp.pending_nonce(&s, 6),
        8,
        "a newer account nonce counts from there"
    );
    assert_eq!(mp.pending_nonce(&s, 9), 9);
    assert_eq!(mp.pending_nonce(&sender(1), 3), 3, "unknown sender");
    let sel = mp.select_ready(10);
    assert_eq!(order(&sel), vec![(s, 5), (s, 6), (s, 7)]);
    assert_eq!(
        sel.iter().map(|r| r.nonce_gap).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(sel.iter().all(|r| r.sender_pending == 3));
    mp.check_invariants().unwrap();
}

#[test]
fn refusals_carry_stable_codes_and_change_nothing() {
    let mp = Mempool::new(MempoolConfig {
        max_per_sender: 3,
        max_nonce_ahead: 4,
        ..MempoolConfig::default()
    })
    .unwrap();
    let t0 = tx(0, 0, 100, N);
    let h0 = t0.tx.hash();
    mp.insert(t0.clone(), 0).unwrap();
    assert_eq!(code(mp.insert(t0, 0)), "E_DUPLICATE");
    // Below the account nonce admission read.
    assert_eq!(code(mp.insert(tx(1, 2, 1, N), 3)), "E_STALE_NONCE");
    // Below the pool's own next nonce, even when the caller's account nonce lags.
    mp.insert(tx(0, 1, 100, N), 0).unwrap();
    mp.remove_committed(&[h0]);
    assert_eq!(code(mp.insert(tx(0, 0, 999, N), 0)), "E_STALE_NONCE");
    // Next nonce 1, max_nonce_ahead 4: nonces 1..=5.
    assert_eq!(code(mp.insert(tx(0, 6, 1, N), 0)), "E_NONCE_TOO_FAR");
    mp.insert(tx(0, 5, 1, N), 0).unwrap();
    mp.insert(tx(0, 3, 1, N), 0).unwrap();
    // Three held: the per-sender cap.
    assert_eq!(code(mp.insert(tx(0, 2, 1, N), 0)), "E_SENDER_LIMIT");
    let before = (mp.len(), mp.bytes(), mp.ready_len());
    let err = mp.insert(tx(0, 1, 105, N), 0).unwrap_err();
    assert_eq!(err.code(), "E_NONCE_CONFLICT");
    assert!(err.to_string().contains("at least 110"), "{err}");
    assert_eq!((mp.len(), mp.bytes(), mp.ready_len()), before);
    mp.check_invariants().unwrap();
    let st = mp.stats();
    for (c, n) in [
        ("E_DUPLICATE", 1),
        ("E_STALE_NONCE", 2),
        ("E_NONCE_TOO_FAR", 1),
        ("E_SENDER_LIMIT", 1),
        ("E_NONCE_CONFLICT", 1),
        ("E_MEMPOOL_FULL", 0),
    ] {
        assert_eq!(st.refused(c), n, "{c}");
    }
    assert_eq!((st.count, st.ready), (3, 1));
    // Every variant's code is in the published list.
    let errs = [
        MempoolError::Full {
            count: 0,
            max_txs: 0,
            bytes: 0,
            max_bytes: 0,
        },
        MempoolError::Duplicate(h0),
    ];
    for e in errs {
        assert!(MempoolError::CODES.contains(&e.code()));
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn configs_out_of_range_are_refused() {
    for cfg in [
        MempoolConfig {
            max_txs: 0,
            ..MempoolConfig::default()
        },
        MempoolConfig {
            max_bytes: 100,
            ..MempoolConfig::default()
        },
        MempoolConfig {
            max_per_sender: 0,
            ..MempoolConfig::default()
        },
        MempoolConfig {
            max_per_sender: 10,
            max_nonce_ahead: 8,
            ..MempoolConfig::default()
        },
        MempoolConfig {
            replace_bump_percent: 5_000,
            ..MempoolConfig::default()
        },
    ] {
        assert_eq!(
            Mempool::new(cfg).unwrap_err().code(),
            "E_INVALID_CONFIG",
            "{cfg:?}"
        );
    }
}

#[test]
fn replace_by_fee_needs_ten_percent_more() {
    let mp = Mempool::new(MempoolConfig::default()).unwrap();
    let old = tx(0, 0, 100, N);
    let old_hash = old.tx.hash();
    mp.insert(old, 0).unwrap();
    let e = mp.insert(tx(0, 0, 109, N), 0).unwrap_err();
    assert_eq!(
        e,
        MempoolError::NonceConflict {
            sender: sender(0),
            nonce: 0,
            pending_fee: 100,
            min_fee: 110
        }
    );
    let new = tx(0, 0, 110, S);
    let new_hash = new.tx.hash();
    let ins = mp.insert(new, 0).unwrap();
    assert_eq!(ins.removed.len(), 1);
    assert_eq!(
        (ins.removed[0].hash, ins.removed[0].reason),
        (old_hash, Removal::Replaced)
    );
    assert!(ins.ready);
    assert!(!mp.contains(&old_hash) && mp.contains(&new_hash));
    let st = mp.stats();
    assert_eq!((st.count, st.replaced), (1, 1));
    assert_eq!((st.class(N).count, st.class(S).count), (0, 1));
    // A zero fee needs at least one unit.
    mp.insert(tx(1, 0, 0, N), 0).unwrap();
    // The same bytes with another class is still the same transaction.
    assert_eq!(code(mp.insert(tx(1, 0, 0, S), 0)), "E_DUPLICATE");
    assert_eq!(
        code(mp.insert(admit(signed(1, 0, 0, 3), N), 0)),
        "E_NONCE_CONFLICT"
    );
    mp.insert(tx(1, 0, 1, N), 0).unwrap();
    let cfg = MempoolConfig::default();
    assert_eq!(cfg.replacement_fee(0), 1);
    assert_eq!(cfg.replacement_fee(5), 6);
    assert_eq!(cfg.replacement_fee(1_000), 1_100);
    assert_eq!(cfg.replacement_fee(1_001), 1_102, "rounded up");
    assert_eq!(cfg.replacement_fee(u64::MAX), u64::MAX);
    mp.check_invariants().unwrap();
}

#[test]
fn a_full_pool_evicts_the_worst_tail_only_when_outranked() {
    let mp = pool(4, 1 << 20, 16);
    // Sender 0: nonces 0..3, anomalous, fee 5. Sender 1: normal, fee 50.
    for n in 0..3 {
        mp.insert(tx(0, n, 5, A), 0).unwrap();
    }
    mp.insert(tx(1, 0, 50, N), 0).unwrap();
    assert_eq!(mp.len(), 4);
    // Equal rank (anomalous, fee 5): refused, nothing evicted.
    assert_eq!(code(mp.insert(tx(2, 0, 5, A), 0)), "E_MEMPOOL_FULL");
    // A suspicious tx with a low fee outranks anomalous ones: evicts sender 0's tail (nonce
    // 2), never nonce 0 or 1 (that would leave a gap).
    let t3 = tx(3, 0, 1, S);
    let h3 = t3.tx.hash();
    let ins = mp.insert(t3, 0).unwrap();
    assert_eq!(ins.removed.len(), 1);
    assert_eq!(ins.removed[0].reason, Removal::Evicted);
    assert_eq!(mp.sender_len(&sender(0)), 2);
    assert_eq!(mp.pending_nonce(&sender(0), 0), 2);
    // A gapped tx never evicts, however good.
    assert_eq!(code(mp.insert(tx(4, 1, 1_000_000, N), 0)), "E_MEMPOOL_FULL");
    // The new tx's own sender is never its victim: sender 0 cannot push out its own tail.
    let ins = mp.insert(tx(0, 2, 1_000, N), 0).unwrap();
    assert_eq!(ins.removed.len(), 1);
    assert_eq!(ins.removed[0].hash, h3, "the worst other sender's tail");
    assert_eq!(mp.sender_len(&sender(0)), 3);
    // Anomalous first, then lowest fee: now the pool holds sender 0: A5, A5, N1000,
    // sender 1: N50 (sender 3's S1 was the worst tail and went).
    let st = mp.stats();
    assert_eq!(
        (st.class(A).count, st.class(S).count, st.class(N).count),
        (2, 0, 2)
    );
    assert_eq!(st.evicted, 2);
    assert_eq!(st.refused("E_MEMPOOL_FULL"), 2);
    mp.check_invariants().unwrap();
}

#[test]
fn transactions_behind_a_gap_hold_at_most_their_share_so_gap_fillers_always_find_room() {
    // 10 slots, half for transactions behind a nonce gap.
    let mp = Mempool::new(MempoolConfig {
        max_txs: 10,
        max_gapped_percent: 50,
        eviction: Eviction::ByClass,
        ..MempoolConfig::default()
    })
    .unwrap();
    // Five senders each send nonce 1 (nonce 0 missing): five gapped transactions.
    for k in 0..5 {
        mp.insert(tx(k, 1, 10, N), 0).unwrap();
    }
    assert_eq!((mp.len(), mp.ready_len()), (5, 0));
    // A sixth gapped one is refused with the back-pressure code and changes nothing.
    let refused = mp.insert(tx(5, 1, 1_000, N), 0);
    assert!(matches!(
        refused,
        Err(MempoolError::GappedFull {
            gapped: 5,
            limit: 5
        })
    ));
    assert_eq!(code(refused), "E_MEMPOOL_FULL");
    assert_eq!(mp.len(), 5);
    // Executable transactions still enter, and filling a gap makes its successor ready.
    for k in 0..5 {
        assert!(mp.insert(tx(k, 0, 10, N), 0).unwrap().ready);
    }
    assert_eq!((mp.len(), mp.ready_len()), (10, 10));
    mp.check_invariants().unwrap();
    // Full now, and with eviction by fee off a higher fee does not evict an equal class.
    assert_eq!(code(mp.insert(tx(6, 0, 1_000, N), 0)), "E_MEMPOOL_FULL");
    // A better class still does.
    let full = Mempool::new(MempoolConfig {
        max_txs: 1,
        eviction: Eviction::ByClass,
        ..MempoolConfig::default()
    })
    .unwrap();
    full.insert(tx(0, 0, 10, A), 0).unwrap();
    assert_eq!(code(full.insert(tx(1, 0, 1_000, A), 0)), "E_MEMPOOL_FULL");
    let ins = full.insert(tx(2, 0, 1, N), 0).unwrap();
    assert_eq!(ins.removed[0].reason, Removal::Evicted);
}

#[test]
fn eviction_walks_uncovered_tails_and_is_all_or_nothing() {
    // Byte-bound pool: transfers of 158 bytes, a 16-output transfer of 759 bytes.
    let small = signed(0, 0, 1, 1).size();
    let big = signed(9, 0, 1, 16).size();
    assert_eq!((small, big), (158, 759));
    let mp = pool(1_000, 1_024, 64);
    // Sender 0: 3 transfers fee 1,1,1 (anomalous); sender 1: 3 transfers fee 2 (normal).
    for n in 0..3 {
        mp.insert(tx(0, n, 1, A), 0).unwrap();
        mp.insert(tx(1, n, 2, N), 0).unwrap();
    }
    assert_eq!(mp.bytes(), 6 * 158);
    // 759 bytes need 5 victims' worth of room (948 + 759 - 1024 = 683 -> 5 x 158). A normal
    // fee-2 tx outranks the 3 anomalous ones but not sender 1's equal ones: refused whole.
    let before = mp.stats();
    assert_eq!(
        code(mp.insert(admit(signed(9, 0, 2, 16), N), 0)),
        "E_MEMPOOL_FULL"
    );
    assert_eq!((mp.len(), mp.bytes()), (before.count, before.bytes));
    // With fee 3 it outranks all: sender 0's whole queue goes tail first, then sender 1's
    // tails (lowest fee first: all fee 2, newest first).
    let ins = mp.insert(admit(signed(9, 0, 3, 16), N), 0).unwrap();
    assert_eq!(ins.removed.len(), 5);
    assert!(ins.removed.iter().all(|r| r.reason == Removal::Evicted));
    assert_eq!(mp.sender_len(&sender(0)), 0);
    assert_eq!(mp.sender_len(&sender(1)), 1);
    assert!(mp.bytes() <= 1_024);
    assert_eq!(order(&mp.select_ready(10)).len(), 2);
    mp.check_invariants().unwrap();
}

#[test]
fn selection_is_class_first_then_fee_and_keeps_nonce_runs() {
    let mp = Mempool::new(MempoolConfig::default()).unwrap();
    mp.insert(tx(0, 0, 1, A), 0).unwrap();
    mp.insert(tx(1, 0, 1, S), 0).unwrap();
    mp.insert(tx(2, 0, 5, N), 0).unwrap();
    mp.insert(tx(3, 0, 9, N), 0).unwrap();
    // Sender 4: a low-fee normal nonce 0 in front of a high-fee nonce 1.
    mp.insert(tx(4, 0, 1, N), 0).unwrap();
    mp.insert(tx(4, 1, 100, N), 0).unwrap();
    let got = order(&mp.select_ready(10));
    let s = sender;
    assert_eq!(
        got,
        vec![
            (s(3), 0),
            (s(2), 0),
            (s(4), 0),
            (s(4), 1),
            (s(1), 0),
            (s(0), 0)
        ]
    );
    // A limit takes the best prefix.
    assert_eq!(order(&mp.select_ready(2)), vec![(s(3), 0), (s(2), 0)]);
    // In-flight transactions are skipped but their successors are taken.
    let inflight: HashSet<TxHash> = mp.select_ready(3).iter().map(|r| r.tx.tx.hash()).collect();
    assert_eq!(
        order(&mp.select_ready_excluding(10, &inflight)),
        vec![(s(4), 1), (s(1), 0), (s(0), 0)]
    );
    let st = mp.stats();
    assert_eq!(
        (st.class(N).count, st.class(S).count, st.class(A).count),
        (4, 1, 1)
    );
    assert_eq!(st.senders, 5);
}

#[test]
fn commits_advance_nonces_and_drop_stale_transactions() {
    let mp = Mempool::new(MempoolConfig::default()).unwrap();
    let t0 = tx(0, 0, 10, N);
    let h0 = t0.tx.hash();
    mp.insert(t0, 0).unwrap();
    mp.insert(tx(0, 1, 10, N), 0).unwrap();
    mp.insert(tx(0, 3, 10, N), 0).unwrap();
    mp.insert(tx(1, 4, 10, N), 4).unwrap();
    let removed = mp.remove_committed(&[h0, TxHash([0; 32])]);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, Removal::Committed);
    assert_eq!(mp.pending_nonce(&sender(0), 0), 2);
    // Another node committed sender 0's nonces 1 and 2 (a different tx at nonce 1).
    let removed = mp.advance_nonces(&[(sender(0), 3), (sender(1), 1), (sender(7), 9)]);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, Removal::Stale);
    assert_eq!(mp.ready_len(), 2, "nonce 3 became executable");
    assert_eq!(mp.pending_nonce(&sender(0), 0), 4);
    let st = mp.stats();
    assert_eq!((st.committed, st.stale_dropped, st.count), (1, 1, 2));
    mp.check_invariants().unwrap();
}

#[test]
fn skipped_transactions_leave_without_moving_the_next_nonce() {
    let mp = Mempool::new(MempoolConfig::default()).unwrap();
    let txs: Vec<AdmittedTx> = (0..4).map(|n| tx(0, n, 10, N)).collect();
    let h: Vec<TxHash> = txs.iter().map(|t| t.tx.hash()).collect();
    for t in txs {
        mp.insert(t, 0).unwrap();
    }
    // A block executed nonce 0 and skipped 1 and 2 (say 1 could not pay its fee).
    let committed = mp.remove_committed(&h[..1]);
    assert_eq!(committed.len(), 1);
    let skipped = mp.remove_skipped(&[h[1], h[2], TxHash([0; 32])]);
    assert_eq!(
        skipped
            .iter()
            .map(|r| (r.hash, r.nonce, r.reason))
            .collect::<Vec<_>>(),
        [(h[1], 1, Removal::Skipped), (h[2], 2, Removal::Skipped)]
    );
    // Nonce 3 waits behind the gap; the next nonce is still 1, so nonce 1 is welcome again.
    assert_eq!((mp.len(), mp.ready_len()), (1, 0));
    assert_eq!(mp.pending_nonce(&sender(0), 1), 1);
    assert!(mp.select_ready(10).is_empty());
    let again = mp.insert(tx(0, 1, 11, N), 1).unwrap();
    assert!(again.ready);
    assert_eq!(mp.ready_len(), 1);
    mp.insert(tx(0, 2, 11, N), 1).unwrap();
    assert_eq!(mp.ready_len(), 3, "nonce 3 is executable again");
    assert_eq!(mp.stats().skipped_dropped, 2);
    mp.check_invariants().unwrap();
}

/// `t` admitted at `at`.
fn admitted_at(mut t: AdmittedTx, at: Instant) -> AdmittedTx {
    t.admitted_at = at;
    t
}

#[test]
fn transactions_behind_a_gap_expire_from_the_highest_nonce_down_and_ready_ones_never() {
    let mp = Mempool::new(MempoolConfig {
        gapped_ttl_ms: 1_000,
        ..MempoolConfig::default()
    })
    .unwrap();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let (s0, s1, s2) = (sender(0), sender(1), sender(2));
    // Sender 0: nonce 0 ready; 2 (old) and 3 (younger) behind the gap at 1.
    mp.insert(admitted_at(tx(0, 0, 10, N), ms(0)), 0).unwrap();
    mp.insert(admitted_at(tx(0, 2, 10, N), ms(0)), 0).unwrap();
    mp.insert(admitted_at(tx(0, 3, 10, N), ms(500)), 0).unwrap();
    // Sender 1: account nonce 4, nonces 5 and 6 behind the gap at 4.
    mp.insert(admitted_at(tx(1, 5, 10, N), ms(0)), 4).unwrap();
    mp.insert(admitted_at(tx(1, 6, 10, N), ms(100)), 4).unwrap();
    // Sender 2: ready only.
    mp.insert(admitted_at(tx(2, 0, 10, N), ms(0)), 0).unwrap();
    assert_eq!((mp.len(), mp.ready_len()), (6, 2));
    let expired = |now| {
        let r = mp.expire(now);
        mp.check_invariants().unwrap();
        assert!(r.iter().all(|r| r.reason == Removal::Expired));
        r.iter().map(|r| (r.sender, r.nonce)).collect::<Vec<_>>()
    };

    // Exactly the TTL old is not older than it.
    assert_eq!(expired(ms(1_000)), []);
    // Sender 1's tail (admitted at 100) is past the TTL, then nonce 5 below it. Sender 0's
    // tail (admitted at 500) is not, and keeps nonce 2 below it although that one is older.
    assert_eq!(expired(ms(1_101)), [(s1, 6), (s1, 5)]);
    assert_eq!(mp.sender_len(&s1), 0);
    assert_eq!(mp.sender_len(&s0), 3);
    assert_eq!(expired(ms(1_501)), [(s0, 3), (s0, 2)]);
    assert_eq!((mp.len(), mp.ready_len()), (2, 2));
    // Ready transactions never expire.
    assert_eq!(expired(ms(3_600_000)), []);
    assert_eq!(order(&mp.select_ready(10)), [(s0, 0), (s2, 0)]);
    let st = mp.stats();
    assert_eq!((st.expired, st.count), (4, 2));
    assert_eq!(Removal::Expired.as_str(), "expired");
    // Sender 1 is forgotten: its next nonce comes from the account again, and the expired
    // nonce may be submitted again.
    assert_eq!(mp.pending_nonce(&s1, 4), 4);
    assert!(!mp.insert(tx(1, 5, 10, N), 4).unwrap().ready);
    assert_eq!(mp.pending_nonce(&s2, 0), 1);
}

#[test]
fn expiry_counts_from_admission_and_a_ttl_of_zero_never_expires() {
    let t0 = Instant::now();
    let late = t0 + Duration::from_secs(3_600);
    let never = Mempool::new(MempoolConfig::default()).unwrap();
    assert_eq!(MempoolConfig::default().gapped_ttl_ms, 0);
    never.insert(admitted_at(tx(0, 3, 10, N), t0), 0).unwrap();
    assert!(never.expire(late).is_empty());
    assert_eq!((never.len(), never.stats().expired), (1, 0));

    // A transaction that was ready falls behind a gap when its predecessor is skipped; its
    // age counts from its admission, so it expires at the next call past the TTL.
    let mp = Mempool::new(MempoolConfig {
        gapped_ttl_ms: 50,
        ..MempoolConfig::default()
    })
    .unwrap();
    let a = admitted_at(tx(0, 0, 10, N), t0);
    let b = admitted_at(tx(0, 1, 10, N), t0);
    let hb = b.tx.hash();
    mp.insert(a.clone(), 0).unwrap();
    mp.insert(b, 0).unwrap();
    assert!(mp.expire(late).is_empty(), "both ready");
    mp.remove_skipped(&[a.tx.hash()]);
    assert_eq!((mp.len(), mp.ready_len()), (1, 0));
    let r = mp.expire(t0 + Duration::from_millis(51));
    assert_eq!(
        r.iter()
            .map(|r| (r.hash, r.nonce, r.reason))
            .collect::<Vec<_>>(),
        [(hb, 1, Removal::Expired)]
    );
    assert!(mp.is_empty());
    // A gap filled before the TTL makes its transactions ready: they no longer expire.
    mp.insert(admitted_at(tx(1, 1, 10, N), t0), 0).unwrap();
    mp.insert(admitted_at(tx(1, 0, 10, N), t0), 0).unwrap();
    assert!(mp.expire(late).is_empty());
    assert_eq!(mp.ready_len(), 2);
    mp.check_invariants().unwrap();
}

#[test]
fn insert_batch_equals_inserts_in_order() {
    let txs: Vec<(AdmittedTx, u64)> = (0..600)
        .map(|i| {
            (
                tx(
                    i % 40,
                    (i / 40) as u64,
                    (i * 7 % 13) as u64,
                    [N, S, A][i % 3],
                ),
                0,
            )
        })
        .collect();
    let a = pool(300, 1 << 20, 8);
    let b = pool(300, 1 << 20, 8);
    let ra: Vec<_> = txs.iter().cloned().map(|(t, n)| a.insert(t, n)).collect();
    let rb = b.insert_batch(txs);
    assert_eq!(ra, rb);
    assert_eq!(a.stats(), b.stats());
    a.check_invariants().unwrap();
}

/// One operation of the determinism property.
#[derive(Clone, Debug)]
enum Op {
    Insert {
        key: usize,
        nonce: u64,
        fee: u64,
        class: AnomalyClass,
        outputs: usize,
        account_nonce: u64,
    },
    CommitReady(usize),
    Advance {
        key: usize,
        next: u64,
    },
    /// `expire` this many milliseconds after the test's start (transaction `seq` is admitted
    /// `seq` ms after it).
    Expire(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let class = prop_oneof![Just(N), Just(S), Just(A)];
    prop_oneof![
        8 => (0..12usize, 0..8u64, 0..6u64, class, prop_oneof![Just(1usize), Just(6)], 0..2u64)
            .prop_map(|(key, nonce, fee, class, outputs, account_nonce)| Op::Insert {
                key, nonce, fee: fee * 10, class, outputs, account_nonce
            }),
        1 => (1..6usize).prop_map(Op::CommitReady),
        1 => (0..12usize, 0..6u64).prop_map(|(key, next)| Op::Advance { key, next }),
        1 => (0..100u64).prop_map(Op::Expire),
    ]
}

/// The greedy property of a full selection: every step takes the best rank among each
/// sender's first not-yet-taken ready transaction, and each sender's run is consecutive.
fn check_selection(mp: &Mempool, sel: &[ReadyTx]) -> Result<(), TestCaseError> {
    type Rank = (AnomalyClass, std::cmp::Reverse<u64>, u64, TxHash);
    let rank = |t: &AdmittedTx| {
        (
            t.class,
            std::cmp::Reverse(t.tx.tx().fee),
            t.seq,
            t.tx.hash(),
        )
    };
    let mut runs: BTreeMap<Address, Vec<(u64, Rank)>> = BTreeMap::new();
    for r in sel {
        let t = r.tx.tx.tx();
        runs.entry(t.sender)
            .or_default()
            .push((t.nonce, rank(&r.tx)));
    }
    for (s, run) in &runs {
        let first = mp.pending_nonce(s, 0) - run.len() as u64;
        for (i, (nonce, _)) in run.iter().enumerate() {
            prop_assert_eq!(*nonce, first + i as u64, "sender run not consecutive");
        }
    }
    prop_assert_eq!(sel.len(), mp.ready_len());
    let mut pos: BTreeMap<Address, usize> = BTreeMap::new();
    for r in sel {
        let best = runs
            .iter()
            .filter_map(|(s, run)| run.get(*pos.get(s).unwrap_or(&0)).map(|x| x.1))
            .min();
        prop_assert_eq!(Some(rank(&r.tx)), best, "selection not greedy by rank");
        *pos.entry(r.tx.tx.tx().sender).or_default() += 1;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Two pools fed the same operations agree on every answer; invariants and bounds hold
    /// after every operation; a full selection is the greedy best-first merge.
    #[test]
    fn deterministic_bounded_and_greedy(ops in proptest::collection::vec(op(), 1..80)) {
        let cfg = MempoolConfig { max_txs: 20, max_bytes: 4_000, max_per_sender: 5, gapped_ttl_ms: 10, ..MempoolConfig::default() };
        let start = Instant::now();
        let pools = [Mempool::new(cfg).unwrap(), Mempool::new(cfg).unwrap()];
        // Build each transaction once so both pools see identical ones.
        let mut seq = 0u64;
        for op in &ops {
            let mut answers = Vec::new();
            let prepared = match op {
                Op::Insert { key, nonce, fee, class, outputs, .. } => {
                    seq += 1;
                    let mut t = admit(signed(*key, *nonce, *fee, *outputs), *class);
                    t.seq = seq;
                    t.admitted_at = start + Duration::from_millis(seq);
                    Some(t)
                }
                _ => None,
            };
            for mp in &pools {
                let answer = match op {
                    Op::Insert { account_nonce, .. } => {
                        format!("{:?}", mp.insert(prepared.clone().unwrap(), *account_nonce))
                    }
                    Op::CommitReady(k) => {
                        let hashes: Vec<TxHash> = mp.select_ready(*k).iter().map(|r| r.tx.tx.hash()).collect();
                        format!("{:?}", mp.remove_committed(&hashes))
                    }
                    Op::Advance { key, next } => format!("{:?}", mp.advance_nonces(&[(sender(*key), *next)])),
                    Op::Expire(ms) => {
                        let ready = mp.ready_len();
                        let removed = mp.expire(start + Duration::from_millis(*ms));
                        prop_assert_eq!(mp.ready_len(), ready, "expiry removed a ready transaction");
                        format!("{removed:?}")
                    }
                };
                answers.push(answer);
                if let Err(e) = mp.check_invariants() {
                    return Err(TestCaseError::fail(e));
                }
                prop_assert!(mp.len() <= 20 && mp.bytes() <= 4_000);
            }
            prop_assert_eq!(&answers[0], &answers[1]);
        }
        let sel: Vec<ReadyTx> = pools[0].select_ready(usize::MAX);
        prop_assert_eq!(order(&sel), order(&pools[1].select_ready(usize::MAX)));
        prop_assert_eq!(pools[0].stats(), pools[1].stats());
        check_selection(&pools[0], &sel)?;
    }
}

#[test]
fn bounds_hold_and_nothing_is_lost_under_eight_threads() {
    const THREADS: usize = 8;
    const SENDERS_PER_THREAD: usize = 16;
    const NONCES: u64 = 8;
    let max_txs = 300;
    let max_bytes = 300 * 158 - 7_000;
    let mp = Arc::new(pool(max_txs, max_bytes, 6));
    // Pre-sign everything: per thread, its senders' nonces interleaved, plus replacements.
    let work: Vec<Vec<AdmittedTx>> = (0..THREADS)
        .map(|t| {
            let mut v = Vec::new();
            for n in 0..NONCES {
                for s in 0..SENDERS_PER_THREAD {
                    let k = t * SENDERS_PER_THREAD + s;
                    let class = [N, N, S, A][(k + n as usize) % 4];
                    let fee = ((k * 31 + n as usize * 17) % 50) as u64;
                    v.push(admit(signed(k, n, fee, 1 + (k % 3) * 2), class));
                    if (k + n as usize).is_multiple_of(5) {
                        v.push(admit(signed(k, n, fee * 2 + 1, 1), class));
                    }
                }
            }
            v
        })
        .collect();
    let submitted: usize = work.iter().map(Vec::len).sum();
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (mp, stop) = (mp.clone(), stop.clone());
        thread::spawn(move || {
            // At least one check, however the threads are scheduled.
            let mut checks = 0u64;
            loop {
                let st = mp.stats();
                assert!(st.count <= max_txs && st.bytes <= max_bytes, "{st:?}");
                checks += 1;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                thread::yield_now();
            }
            checks
        })
    };
    // A committer drains the ready head now and then, like blocks do.
    let committer = {
        let (mp, stop) = (mp.clone(), stop.clone());
        thread::spawn(move || {
            let mut removed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let hashes: Vec<TxHash> =
                    mp.select_ready(40).iter().map(|r| r.tx.tx.hash()).collect();
                removed.extend(mp.remove_committed(&hashes));
                thread::sleep(std::time::Duration::from_millis(2));
            }
            removed
        })
    };
    let workers: Vec<_> = work
        .into_iter()
        .map(|txs| {
            let mp = mp.clone();
            thread::spawn(move || {
                let mut out = Vec::new();
                for (i, t) in txs.into_iter().enumerate() {
                    let h = t.tx.hash();
                    // Half one by one, half in small batches.
                    if i % 2 == 0 {
                        out.push((h, mp.insert(t, 0)));
                    } else {
                        out.extend(std::iter::once(h).zip(mp.insert_batch([(t, 0)])));
                    }
                }
                out
            })
        })
        .collect();
    let results: Vec<(TxHash, _)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    let checks = monitor.join().unwrap();
    let committed = committer.join().unwrap();
    assert!(checks > 0);
    assert_eq!(results.len(), submitted);

    // Account for every submission: refused with a known code, or accepted and then still
    // held, or removed exactly once (evicted, replaced, committed or stale).
    let mut left: HashMap<TxHash, Removal> = HashMap::new();
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for (h, r) in &results {
        match r {
            Ok(ins) => {
                assert!(accepted.insert(*h), "accepted twice");
                for rm in &ins.removed {
                    assert!(left.insert(rm.hash, rm.reason).is_none(), "removed twice");
                }
            }
            Err(e) => {
                assert!(MempoolError::CODES.contains(&e.code()));
                refused += 1;
            }
        }
    }
    for rm in &committed {
        assert!(left.insert(rm.hash, rm.reason).is_none(), "removed twice");
    }
    for h in &accepted {
        assert!(
            mp.contains(h) != left.contains_key(h),
            "accepted tx neither held nor removed exactly once"
        );
    }
    assert!(left.keys().all(|h| accepted.contains(h)));
    let st = mp.stats();
    assert_eq!(st.count, accepted.len() - left.len());
    assert_eq!(st.accepted as usize, accepted.len());
    assert_eq!(st.refused_total() as usize, refused);
    assert!(st.evicted > 0 && st.refused("E_MEMPOOL_FULL") > 0, "{st:?}");
    mp.check_invariants().unwrap();
}
