//! Admission through its real path: decoding, batched signatures, nonce, balance and
//! duplicate checks against a state view, and the `anomaly` slot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::clock::ManualClock;
use aurigraph_decision::slot::anomaly::AnomalyClass;
use aurigraph_decision::{HostConfig, SlotHost, SlotKind};
use aurigraph_ledger::admission::{
    Admission, AdmissionConfig, PendingNonces, Refusal, SignatureVerifier,
};
use aurigraph_ledger::mempool::{Mempool, MempoolConfig};
use aurigraph_ledger::state::{Account, StateView};
use aurigraph_ledger::tx::{
    Address, MAX_TX_BYTES, Operation, SignedTransaction, Transaction, keypair_from_seed,
};
use ed25519_consensus::SigningKey;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A map of accounts; absent accounts are empty.
#[derive(Default)]
struct MemState(HashMap<Address, Account>);

impl StateView for MemState {
    fn account(&self, address: &Address) -> Account {
        self.0.get(address).copied().unwrap_or_default()
    }
}

fn host() -> Arc<SlotHost> {
    // A generous deadline: timing is not the subject here.
    let config = HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    };
    Arc::new(SlotHost::new(SlotKind::Anomaly, config).expect("anomaly host"))
}

fn admission(config: AdmissionConfig) -> Admission {
    Admission::new(config, host()).expect("valid config")
}

struct Keys {
    keys: Vec<SigningKey>,
    addrs: Vec<Address>,
}

fn keys(n: usize) -> Keys {
    let (keys, addrs) = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[31] = 0xA5;
            keypair_from_seed(seed)
        })
        .unzip();
    Keys { keys, addrs }
}

fn funded(k: &Keys, balance: u64) -> MemState {
    MemState(
        k.addrs
            .iter()
            .map(|a| (*a, Account { balance, nonce: 0 }))
            .collect(),
    )
}

fn transfer(k: &Keys, from: usize, nonce: u64, fee: u64, amount: u64) -> SignedTransaction {
    let to = k.addrs[(from + 1) % k.addrs.len()];
    Transaction {
        chain_id: 1,
        sender: k.addrs[from],
        nonce,
        fee,
        op: Operation::Transfer { to, amount },
    }
    .sign(&k.keys[from])
}

fn code(r: &Result<aurigraph_ledger::tx::AdmittedTx, Refusal>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

#[test]
fn every_refusal_code_through_the_real_path() {
    let k = keys(4);
    let mut state = funded(&k, 1_000);
    state.0.insert(
        k.addrs[3],
        Account {
            balance: 100,
            nonce: 5,
        },
    );
    let adm = admission(AdmissionConfig {
        min_fee: 2,
        nonce_window: 8,
        ..AdmissionConfig::default()
    });
    let good = transfer(&k, 0, 0, 2, 10);
    let mut bad_sig = good.encoded().to_vec();
    let last = bad_sig.len() - 1;
    bad_sig[last - 40] ^= 0x10;
    let mut wrong_chain = good.tx().clone();
    wrong_chain.chain_id = 2;
    let wrong_chain = wrong_chain.sign(&k.keys[0]);
    let mut bad_version = good.encoded().to_vec();
    bad_version[0] = 9;
    let mut trailing = good.encoded().to_vec();
    trailing.push(0);

    let inputs: Vec<Vec<u8>> = vec![
        good.encoded().to_vec(),                                   // 0 admitted
        good.encoded()[..60].to_vec(),                             // 1 truncated
        vec![1u8; MAX_TX_BYTES + 1],                               // 2 too large
        bad_version,                                               // 3 version
        trailing,                                                  // 4 trailing bytes
        wrong_chain.encoded().to_vec(),                            // 5 wrong chain
        transfer(&k, 1, 0, 1, 10).encoded().to_vec(),              // 6 fee too low
        bad_sig,                                                   // 7 bad signature
        good.encoded().to_vec(),                                   // 8 duplicate in the batch
        transfer(&k, 3, 4, 2, 10).encoded().to_vec(),              // 9 stale nonce (next is 5)
        transfer(&k, 3, 13, 2, 10).encoded().to_vec(),             // 10 too far (5 + 8)
        transfer(&k, 3, 12, 2, 10).encoded().to_vec(),             // 11 last nonce in the window
        transfer(&k, 0, 0, 3, 10).encoded().to_vec(), // 12 same nonce, other hash: for the mempool
        transfer(&k, 3, 5, 2, 99).encoded().to_vec(), // 13 101 > 100
        transfer(&k, 3, 6, 2, 98).encoded().to_vec(), // 14 100 <= 100
        transfer(&k, 3, 7, u64::MAX - 5, 10).encoded().to_vec(), // 15 fee + amount overflows
        transfer(&k, 2, u64::MAX, 2, u64::MAX).encoded().to_vec(), // 16 too far
    ];
    let out = adm.admit(&state, &inputs);
    let codes: Vec<&str> = out.results.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "OK",
            "E_TX_TRUNCATED",
            "E_TX_TOO_LARGE",
            "E_TX_VERSION",
            "E_TX_TRAILING_BYTES",
            "E_WRONG_CHAIN",
            "E_FEE_TOO_LOW",
            "E_BAD_SIGNATURE",
            "E_DUPLICATE",
            "E_STALE_NONCE",
            "E_NONCE_TOO_FAR",
            "OK",
            "OK",
            "E_INSUFFICIENT_BALANCE",
            "OK",
            "E_INSUFFICIENT_BALANCE",
            "E_NONCE_TOO_FAR",
        ]
    );
    // Reasons carry the numbers.
    assert_eq!(
        out.results[9].as_ref().unwrap_err(),
        &Refusal::StaleNonce { nonce: 4, next: 5 }
    );
    assert_eq!(
        out.results[10].as_ref().unwrap_err(),
        &Refusal::NonceTooFar { nonce: 13, max: 12 }
    );
    assert_eq!(
        out.results[13].as_ref().unwrap_err(),
        &Refusal::InsufficientBalance {
            needed: 101,
            available: 100
        }
    );
    assert_eq!(
        out.results[15].as_ref().unwrap_err(),
        &Refusal::InsufficientBalance {
            needed: u64::MAX,
            available: 100
        }
    );
    assert!(out.anomaly.is_some());
    let c = adm.counters();
    assert_eq!((c.admitted, c.refused, c.batches), (4, 13, 1));

    // A later batch: the same hash is a duplicate, a field error has its decoder code, and a
    // smaller configured size limit refuses with the shared size code.
    let out2 = adm.admit(&state, &[good.encoded()]);
    assert_eq!(code(&out2.results[0]), "E_DUPLICATE");
    let mut zero_amount = good.tx().clone();
    zero_amount.op = Operation::Transfer {
        to: k.addrs[1],
        amount: 0,
    };
    let zero_amount = SignedTransaction::from_parts(zero_amount, *good.signature());
    assert_eq!(
        code(&adm.admit_one(&state, zero_amount.encoded())),
        "E_TX_FIELD"
    );
    let small = admission(AdmissionConfig {
        max_tx_bytes: 100,
        ..AdmissionConfig::default()
    });
    let r = small.admit_one(&state, good.encoded());
    assert_eq!(code(&r), "E_TX_TOO_LARGE");
    assert_eq!(
        r.unwrap_err(),
        Refusal::TooLarge {
            size: good.size(),
            limit: 100
        }
    );
}

#[test]
fn pending_nonces_admit_the_next_one_and_follow_release_and_commit() {
    let k = keys(2);
    let mut state = funded(&k, 10_000);
    let pending = Arc::new(PendingNonces::new());
    let adm = admission(AdmissionConfig::default()).with_pending(pending.clone());
    let t0 = transfer(&k, 0, 0, 1, 10);
    let t1 = transfer(&k, 0, 1, 1, 10);
    let t3 = transfer(&k, 0, 3, 1, 10);
    assert_eq!(adm.admit(&state, &[t0.encoded()]).admitted_count(), 1);
    // n + 1 while n is pending, and a gap within the window.
    let b = adm.admit(&state, &[t1.encoded(), t3.encoded()]);
    assert_eq!(b.admitted_count(), 2);
    assert_eq!(pending.nonces(&k.addrs[0]), vec![0, 1, 3]);
    // The gap's feature: nonce 3 against next expected 2; nonce 1 was next.
    assert_eq!(b.features.len(), 2);
    assert_eq!(b.features[0].nonce_gap, 0.0);
    assert_eq!(b.features[1].nonce_gap, 1.0);
    // A pending nonce with another hash goes on (the mempool replaces by fee or refuses).
    let t1b = transfer(&k, 0, 1, 5, 10);
    let r = adm.admit_one(&state, t1b.encoded()).expect("admitted");
    assert_eq!(code(&adm.admit_one(&state, t1b.encoded())), "E_DUPLICATE");
    // The mempool refused it: released, the same bytes are admissible again.
    adm.release(&r.tx);
    assert!(adm.admit_one(&state, t1b.encoded()).is_ok());
    adm.release(&t3);
    assert_eq!(pending.nonces(&k.addrs[0]), vec![0, 1]);
    // Within one batch, consecutive nonces read as executable in turn.
    let b = adm.admit(
        &state,
        &[
            transfer(&k, 1, 0, 1, 1).encoded(),
            transfer(&k, 1, 1, 1, 1).encoded(),
            transfer(&k, 1, 3, 1, 1).encoded(),
        ],
    );
    let gaps: Vec<f32> = b.features.iter().map(|f| f.nonce_gap).collect();
    assert_eq!(gaps, vec![0.0, 0.0, 1.0]);
    // A commit of nonces 0 and 1: they are stale now, and no longer pending.
    state.0.get_mut(&k.addrs[0]).unwrap().nonce = 2;
    adm.committed(&k.addrs[0], 2);
    assert!(pending.nonces(&k.addrs[0]).is_empty());
    assert_eq!(
        code(&adm.admit_one(&state, transfer(&k, 0, 1, 5, 5).encoded())),
        "E_STALE_NONCE"
    );
    let t2 = adm.admit(&state, &[transfer(&k, 0, 2, 1, 5).encoded()]);
    assert_eq!(t2.features[0].nonce_gap, 0.0);
}

#[test]
fn the_mempool_serves_as_the_pending_view() {
    let k = keys(2);
    let state = funded(&k, 10_000);
    let mempool = Arc::new(Mempool::new(MempoolConfig::default()).expect("mempool"));
    let adm = admission(AdmissionConfig::default()).with_pending(mempool.clone());
    let first = adm
        .admit(&state, &[transfer(&k, 0, 0, 1, 1).encoded()])
        .into_admitted();
    for a in first {
        mempool.insert(a, 0).expect("inserted");
    }
    // Nonce 0 is in the mempool: 1 is next (gap 0), 2 is one ahead.
    let b = adm.admit(&state, &[transfer(&k, 0, 2, 1, 1).encoded()]);
    assert_eq!(b.features[0].nonce_gap, 1.0);
    let b = adm.admit(&state, &[transfer(&k, 0, 1, 1, 1).encoded()]);
    assert_eq!(b.features[0].nonce_gap, 0.0);
}

#[test]
fn results_keep_input_order_and_seq_strictly_increases() {
    let k = keys(40);
    let state = funded(&k, 10_000);
    let adm = admission(AdmissionConfig::default());
    let mut last = None;
    for round in 0..3u64 {
        let txs: Vec<SignedTransaction> = (0..40).map(|i| transfer(&k, i, round, 1, 1)).collect();
        let mut inputs: Vec<Vec<u8>> = txs.iter().map(|t| t.encoded().to_vec()).collect();
        inputs.insert(7, vec![0xFF; 3]);
        let out = adm.admit(&state, &inputs);
        assert_eq!(out.batch, round);
        assert_eq!(out.results.len(), 41);
        assert!(out.results[7].is_err());
        let admitted: Vec<_> = out.admitted().collect();
        assert_eq!(admitted.len(), 40);
        for (a, t) in admitted.iter().zip(&txs) {
            assert_eq!(a.tx.hash(), t.hash(), "input order");
            assert!(last.is_none_or(|l| a.seq > l), "seq strictly increasing");
            last = Some(a.seq);
            assert!((0.0..=1.0).contains(&a.anomaly_score));
            assert_eq!(a.class, adm.classify(a.anomaly_score));
        }
    }
}

#[test]
fn concurrent_batches_get_distinct_increasing_seqs() {
    let k = keys(64);
    let state = funded(&k, 10_000);
    let adm = admission(AdmissionConfig::default());
    let seqs: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (adm, k, state) = (&adm, &k, &state);
                s.spawn(move || {
                    let mut seqs = Vec::new();
                    for nonce in 0..5 {
                        let txs: Vec<SignedTransaction> = (t * 32..t * 32 + 32)
                            .map(|i| transfer(k, i, nonce, 1, 1))
                            .collect();
                        let out =
                            adm.admit(state, &txs.iter().map(|t| t.encoded()).collect::<Vec<_>>());
                        assert_eq!(out.admitted_count(), 32);
                        seqs.extend(out.admitted().map(|a| a.seq));
                    }
                    seqs
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = seqs.concat();
    for s in &seqs {
        assert!(s.windows(2).all(|p| p[0] < p[1]), "increasing per caller");
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (0..320).collect::<Vec<u64>>(), "distinct, no gaps");
    assert_eq!(adm.counters().batches, 10);
}

#[test]
fn a_batch_mixing_good_and_bad_signatures_finds_exactly_the_bad_ones() {
    let k = keys(300);
    let state = funded(&k, 10_000);
    let mut rng = SmallRng::seed_from_u64(5);
    let bad: HashSet<usize> = (0..300).filter(|_| rng.random_bool(0.05)).collect();
    assert!(!bad.is_empty());
    let txs: Vec<SignedTransaction> = (0..300)
        .map(|i| {
            let t = transfer(&k, i, 0, 1, 1);
            if bad.contains(&i) {
                // Signed by the wrong key: a well-formed signature that does not verify.
                let other = &k.keys[(i + 7) % 300];
                t.tx().clone().sign(other)
            } else {
                t
            }
        })
        .collect();
    // Small chunks on two threads: several chunks fail, several pass.
    let verifier = SignatureVerifier::new(Some(2), 16).unwrap();
    let batch = verifier.verify_batch(&txs);
    assert_eq!(batch, verifier.verify_each(&txs), "batch and single agree");
    let found: HashSet<usize> = (0..300).filter(|&i| !batch[i]).collect();
    assert_eq!(found, bad);

    let adm = admission(AdmissionConfig {
        verify_threads: Some(2),
        verify_chunk: 32,
        ..AdmissionConfig::default()
    });
    let inputs: Vec<&[u8]> = txs.iter().map(|t| t.encoded()).collect();
    let out = adm.admit(&state, &inputs);
    let refused: HashSet<usize> = out
        .results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, r)| {
            assert_eq!(code(r), "E_BAD_SIGNATURE");
            i
        })
        .collect();
    assert_eq!(refused, bad);
    // Edge cases: nothing, one, all bad.
    assert!(verifier.verify_batch::<SignedTransaction>(&[]).is_empty());
    assert_eq!(verifier.verify_batch(&txs[..1]), vec![!bad.contains(&0)]);
    let all_bad: Vec<SignedTransaction> = bad.iter().map(|&i| txs[i].clone()).collect();
    assert!(verifier.verify_batch(&all_bad).iter().all(|ok| !ok));
}

#[test]
fn a_bursting_sender_scores_higher_than_normal_traffic() {
    let k = keys(201);
    let state = funded(&k, 1_000_000);
    let clock = ManualClock::new();
    let adm = admission(AdmissionConfig::default()).with_clock(clock.clone());
    let mut rng = SmallRng::seed_from_u64(9);
    let mut nonces = vec![0u64; 201];
    let mut next = |from: usize, rng: &mut SmallRng| {
        let t = transfer(&k, from, nonces[from], rng.random_range(1..50), 5);
        nonces[from] += 1;
        t
    };
    // 8 s of normal traffic: 200 senders, 100 tx/s in all, batches of 20.
    let mut normal_scores = Vec::new();
    for _ in 0..40 {
        clock.advance(Duration::from_millis(200));
        let batch: Vec<SignedTransaction> = (0..20)
            .map(|_| next(rng.random_range(0..200), &mut rng))
            .collect();
        let out = adm.admit(
            &state,
            &batch.iter().map(|t| t.encoded()).collect::<Vec<_>>(),
        );
        assert_eq!(out.admitted_count(), 20);
        normal_scores.extend(out.admitted().map(|a| (a.anomaly_score, a.class)));
    }
    // Then sender 200 bursts: 100 transactions in 0.5 s, mixed with normal traffic.
    let mut spam_scores = Vec::new();
    let mut late_normal = Vec::new();
    for _ in 0..5 {
        clock.advance(Duration::from_millis(100));
        let mut batch: Vec<(bool, SignedTransaction)> =
            (0..20).map(|_| (true, next(200, &mut rng))).collect();
        batch.extend((0..5).map(|_| (false, next(rng.random_range(0..200), &mut rng))));
        let out = adm.admit(
            &state,
            &batch.iter().map(|(_, t)| t.encoded()).collect::<Vec<_>>(),
        );
        for ((spam, _), r) in batch.iter().zip(&out.results) {
            let a = r.as_ref().expect("admitted");
            if *spam {
                spam_scores.push(a.anomaly_score);
            } else {
                late_normal.push(a.anomaly_score);
            }
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let normal: Vec<f32> = normal_scores.iter().map(|s| s.0).collect();
    let flagged = normal_scores
        .iter()
        .filter(|s| s.1 != AnomalyClass::Normal)
        .count();
    assert!(
        flagged * 100 <= normal_scores.len() * 3,
        "normal traffic flagged: {flagged} of {}",
        normal_scores.len()
    );
    assert!(mean(&spam_scores) > 0.9, "spam mean {}", mean(&spam_scores));
    assert!(mean(&normal) < 0.1, "normal mean {}", mean(&normal));
    assert!(mean(&late_normal) < 0.1, "{}", mean(&late_normal));
    // All but the first few of the burst are anomalous.
    let anomalous = spam_scores
        .iter()
        .filter(|&&s| adm.classify(s) == AnomalyClass::Anomalous)
        .count();
    assert!(anomalous >= 90, "{anomalous} of 100");
}

#[test]
fn invalid_configs_and_other_slots_are_refused() {
    let bad = [
        AdmissionConfig {
            max_tx_bytes: MAX_TX_BYTES + 1,
            ..AdmissionConfig::default()
        },
        AdmissionConfig {
            nonce_window: 0,
            ..AdmissionConfig::default()
        },
        AdmissionConfig {
            verify_threads: Some(0),
            ..AdmissionConfig::default()
        },
        AdmissionConfig {
            rate_window: Duration::ZERO,
            ..AdmissionConfig::default()
        },
        AdmissionConfig {
            sender_rate_min_std: f64::NAN,
            ..AdmissionConfig::default()
        },
    ];
    for c in bad {
        let e = Admission::new(c.clone(), host()).unwrap_err();
        assert_eq!(e.code(), "E_INVALID_CONFIG", "{c:?}");
    }
    let ordering = Arc::new(SlotHost::new(SlotKind::Ordering, HostConfig::default()).unwrap());
    assert_eq!(
        Admission::new(AdmissionConfig::default(), ordering)
            .unwrap_err()
            .code(),
        "E_INVALID_CONFIG"
    );
    assert!(SignatureVerifier::new(None, 0).is_err());
}

fn valid_sample() -> (Keys, MemState, Vec<Vec<u8>>) {
    let k = keys(3);
    let state = funded(&k, 1_000_000);
    let multi = Transaction {
        chain_id: 1,
        sender: k.addrs[2],
        nonce: 0,
        fee: 3,
        op: Operation::MultiTransfer {
            outputs: vec![(k.addrs[0], 5), (k.addrs[1], 6)],
        },
    }
    .sign(&k.keys[2]);
    let txs = vec![
        transfer(&k, 0, 0, 1, 10).encoded().to_vec(),
        transfer(&k, 1, 3, 7, 100).encoded().to_vec(),
        multi.encoded().to_vec(),
    ];
    (k, state, txs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_are_refused(
        inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1_200), 1..6)
    ) {
        let (_, state, _) = valid_sample();
        let adm = admission(AdmissionConfig::default());
        let out = adm.admit(&state, &inputs);
        prop_assert_eq!(out.results.len(), inputs.len());
        prop_assert!(out.results.iter().all(|r| r.is_err()));
    }

    #[test]
    fn mutated_valid_transactions_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        extra in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        let (_, state, txs) = valid_sample();
        let mut b = txs[which].clone();
        for (i, v) in &edits {
            let i = i.index(b.len());
            b[i] ^= v;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len() + 1));
        }
        b.extend_from_slice(&extra);
        let adm = admission(AdmissionConfig::default());
        let out = adm.admit(&state, &[b.clone(), txs[which].clone()]);
        prop_assert_eq!(out.results.len(), 2);
        match &out.results[0] {
            Ok(a) => {
                // Only an unchanged transaction can pass; the original is then a duplicate.
                prop_assert_eq!(a.tx.encoded(), &txs[which][..]);
                prop_assert_eq!(code(&out.results[1]), "E_DUPLICATE");
            }
            Err(_) => prop_assert!(out.results[1].is_ok() || b == txs[which]),
        }
    }
}

/// Large chunks: a failed batch is halved to find the bad signatures (a passing half is
/// accepted whole). Whatever the bad ones' positions (first, last, middle, adjacent, far
/// apart, many), the answer is exactly the single verifications'.
#[test]
fn halving_a_failed_batch_finds_exactly_the_bad_signatures() {
    const N: usize = 600;
    let k = keys(N);
    let good: Vec<SignedTransaction> = (0..N).map(|i| transfer(&k, i, 0, 1, 1)).collect();
    let forged = |i: usize| good[i].tx().clone().sign(&k.keys[(i + 1) % N]);
    let mut rng = SmallRng::seed_from_u64(21);
    let many: Vec<usize> = (0..N).filter(|_| rng.random_bool(0.05)).collect();
    let cases: Vec<Vec<usize>> = vec![
        vec![],
        vec![0],
        vec![N - 1],
        vec![N / 2],
        vec![10, 11],
        vec![5, 400],
        (40..72).collect(),
        many,
    ];
    for threads in [1, 2] {
        let verifier = SignatureVerifier::new(Some(threads), 1_024).unwrap();
        for bad in &cases {
            let mut txs = good.clone();
            for &i in bad {
                txs[i] = forged(i);
            }
            let got = verifier.verify_batch(&txs);
            let want: Vec<bool> = (0..N).map(|i| !bad.contains(&i)).collect();
            assert_eq!(got, want, "{threads} threads, bad at {bad:?}");
            assert_eq!(got, verifier.verify_each(&txs));
        }
    }
}
