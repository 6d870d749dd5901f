//! The batcher: nonce order under adversarial scores (property tests against a reference
//! merge), ties by hash, class priority, batch size clamping, the in-host fallback, and the
//! feature rows.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::host::WARMUP_INPUTS;
use aurigraph_decision::rollout::Mode;
use aurigraph_decision::slot::anomaly::AnomalyClass;
use aurigraph_decision::slot::ordering::{OrderingFeatures, SCORE_MAX, SCORE_MIN};
use aurigraph_decision::{
    BackendKind, FeatureMatrix, HostConfig, Policy, PolicyError, PolicyInfo, SlotHost, SlotKind,
};
use aurigraph_ledger::batcher::{
    ARRIVAL_SEQ_MAX, BatchLoad, Batcher, BatcherConfig, SlotAnswer, clamp_target, merge_order,
    ordering_features,
};
use aurigraph_ledger::mempool::{Mempool, MempoolConfig, ReadyTx};
use aurigraph_ledger::tx::{
    Address, AdmittedTx, Operation, Transaction, TxHash, keypair_from_seed,
};
use ed25519_consensus::SigningKey;
use proptest::prelude::*;

const N: AnomalyClass = AnomalyClass::Normal;
const S: AnomalyClass = AnomalyClass::Suspicious;
const A: AnomalyClass = AnomalyClass::Anomalous;

static KEYS: LazyLock<Vec<(SigningKey, Address)>> = LazyLock::new(|| {
    (0..12u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            seed[31] = 0xBA;
            keypair_from_seed(seed)
        })
        .collect()
});

static SEQ: AtomicU64 = AtomicU64::new(1);

fn tx_to(k: usize, nonce: u64, fee: u64, class: AnomalyClass, to: Address) -> AdmittedTx {
    let (sk, from) = &KEYS[k];
    let signed = Transaction {
        chain_id: 1,
        sender: *from,
        nonce,
        fee,
        op: Operation::Transfer { to, amount: 1 },
    }
    .sign(sk);
    AdmittedTx {
        tx: Arc::new(signed),
        anomaly_score: 0.0,
        class,
        seq: SEQ.fetch_add(1, Ordering::Relaxed),
        admitted_at: Instant::now(),
    }
}

fn tx(k: usize, nonce: u64, fee: u64, class: AnomalyClass) -> AdmittedTx {
    tx_to(k, nonce, fee, class, Address([0xEE; 32]))
}

fn relaxed() -> HostConfig {
    HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    }
}

fn host(slot: SlotKind) -> Arc<SlotHost> {
    Arc::new(SlotHost::new(slot, relaxed()).unwrap())
}

/// A host whose candidate answers every decision (canary 100%).
fn host_with(slot: SlotKind, policy: Arc<dyn Policy>) -> Arc<SlotHost> {
    let h = SlotHost::new(slot, relaxed()).unwrap();
    h.load_candidate(policy).unwrap();
    h.set_mode(Mode::Canary {
        basis_points: 10_000,
    })
    .unwrap();
    Arc::new(h)
}

fn info(slot: SlotKind, name: &str) -> PolicyInfo {
    PolicyInfo {
        name: name.to_string(),
        version: "1".to_string(),
        backend: BackendKind::Fault,
        slot,
        schema_version: 1,
    }
}

/// An `ordering` policy with adversarial but valid scores: a seeded hash of each row's bits,
/// on `levels` distinct values spread over the whole contract range (few levels = many
/// ties). Deterministic for the same input, as the contract requires.
struct Adversary {
    info: PolicyInfo,
    seed: u64,
    levels: u64,
}

impl Adversary {
    fn new(seed: u64, levels: u64) -> Self {
        Self {
            info: info(SlotKind::Ordering, "adversary"),
            seed,
            levels: levels.max(1),
        }
    }

    fn score(&self, row: &[f32]) -> f32 {
        let mut h = self.seed ^ 0x9E37_79B9_7F4A_7C15;
        for v in row {
            h = (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01B3);
            h ^= h >> 29;
        }
        let level = h % self.levels;
        if self.levels == 1 {
            return 7.0;
        }
        let span = f64::from(SCORE_MAX) - f64::from(SCORE_MIN);
        (f64::from(SCORE_MIN) + span * level as f64 / (self.levels - 1) as f64) as f32
    }
}

impl Policy for Adversary {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> aurigraph_decision::Isolation {
        aurigraph_decision::Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, _: Instant) -> Result<Vec<f32>, PolicyError> {
        Ok(input.iter_rows().map(|r| self.score(r)).collect())
    }
}

/// A `batch_size` policy answering a fixed target.
struct FixedSize {
    info: PolicyInfo,
    value: f32,
}

impl Policy for FixedSize {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> aurigraph_decision::Isolation {
        aurigraph_decision::Isolation::Inline
    }

    fn evaluate(&self, _: &FeatureMatrix, _: Instant) -> Result<Vec<f32>, PolicyError> {
        Ok(vec![self.value])
    }
}

fn fixed_size(value: f32) -> Arc<SlotHost> {
    host_with(
        SlotKind::BatchSize,
        Arc::new(FixedSize {
            info: info(SlotKind::BatchSize, "fixed"),
            value,
        }),
    )
}

fn batcher(batch_size: Arc<SlotHost>, ordering: Arc<SlotHost>, max: usize) -> Batcher {
    let config = BatcherConfig {
        min_batch_size: 1,
        max_batch_size: max,
        target_latency_ms: 250.0,
    };
    Batcher::new(config, batch_size, ordering).unwrap()
}

fn mempool() -> Mempool {
    Mempool::new(MempoolConfig::default()).unwrap()
}

fn load(current: usize) -> BatchLoad {
    BatchLoad {
        current_batch_size: current,
        last_block_latency_ms: 100.0,
        arrival_rate: 1_000.0,
        conflict_rate: 0.0,
    }
}

/// Reference merge, written independently and slowly: at each step, among each sender's
/// lowest unplaced nonce, place the one with the smallest (class, -score, hash).
fn reference(items: &[(Address, u64, AnomalyClass, TxHash, f32)]) -> Vec<usize> {
    let mut placed = vec![false; items.len()];
    let mut out = Vec::new();
    while out.len() < items.len() {
        let mut heads: BTreeMap<Address, usize> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let e = heads.entry(it.0).or_insert(i);
            if it.1 < items[*e].1 {
                *e = i;
            }
        }
        let best = heads
            .values()
            .copied()
            .min_by(|&a, &b| {
                let (x, y) = (&items[a], &items[b]);
                x.2.cmp(&y.2).then(y.4.total_cmp(&x.4)).then(x.3.cmp(&y.3))
            })
            .unwrap();
        placed[best] = true;
        out.push(best);
    }
    out
}

fn sender_nonce(t: &AdmittedTx) -> (Address, u64) {
    (t.tx.tx().sender, t.tx.tx().nonce)
}

fn assert_nonce_order(txs: &[AdmittedTx]) {
    let mut last: BTreeMap<Address, u64> = BTreeMap::new();
    for t in txs {
        let (s, n) = sender_nonce(t);
        if let Some(prev) = last.insert(s, n) {
            assert_eq!(n, prev + 1, "sender {s} out of nonce order");
        }
    }
}

/// A pool content: per sender, a run of transactions (class, fee) from nonce 0.
fn runs() -> impl Strategy<Value = Vec<Vec<(AnomalyClass, u64)>>> {
    let class = prop_oneof![3 => Just(N), 1 => Just(S), 1 => Just(A)];
    proptest::collection::vec(proptest::collection::vec((class, 0..4u64), 1..6), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Whatever the scores, each sender's nonce order holds, the batch is exactly the
    /// reference merge of the adversary's scores (class first, higher score first, ties by
    /// hash), and the candidate answered.
    #[test]
    fn nonce_order_holds_whatever_the_scores(
        pool_runs in runs(),
        seed in any::<u64>(),
        levels in 1..6u64,
    ) {
        let mp = mempool();
        for (k, run) in pool_runs.iter().enumerate() {
            for (n, &(class, fee)) in run.iter().enumerate() {
                mp.insert(tx(k, n as u64, fee * 10, class), 0).unwrap();
            }
        }
        let adversary = Arc::new(Adversary::new(seed, levels));
        let b = batcher(host(SlotKind::BatchSize), host_with(SlotKind::Ordering, adversary.clone()), 64);
        let now = Instant::now();
        let batch = b.build_at(&mp, &load(64), seed, now, None);
        prop_assert_eq!(batch.target_size, 64);
        prop_assert_eq!(batch.txs.len(), mp.len(), "everything ready fits");
        let tag = batch.ordering.tag().expect("decided");
        prop_assert_eq!(tag.answered_by.name.as_ref(), "adversary");
        prop_assert!(tag.fallback.is_none());
        assert_nonce_order(&batch.txs);

        // The oracle: the adversary's scores on the same feature rows, merged by reference.
        let cands = mp.select_ready(64);
        let rows = ordering_features(&cands, now);
        let items: Vec<_> = cands.iter().zip(&rows).map(|(c, r)| {
            let t = c.tx.tx.tx();
            (t.sender, t.nonce, c.tx.class, c.tx.tx.hash(), adversary.score(&r.to_row()))
        }).collect();
        let want: Vec<TxHash> = reference(&items).into_iter().map(|i| items[i].3).collect();
        prop_assert_eq!(batch.hashes(), want);

        // The pure merge agrees, and does not depend on the candidates' input order.
        let scores: Vec<f32> = items.iter().map(|i| i.4).collect();
        let mut rev = cands.clone();
        rev.reverse();
        let rev_scores: Vec<f32> = scores.iter().rev().copied().collect();
        let a: Vec<TxHash> = merge_order(&cands, &scores).into_iter().map(|i| cands[i].tx.tx.hash()).collect();
        let b2: Vec<TxHash> = merge_order(&rev, &rev_scores).into_iter().map(|i| rev[i].tx.tx.hash()).collect();
        prop_assert_eq!(&a, &batch.hashes());
        prop_assert_eq!(a, b2);
    }

    /// Any target a policy may answer is rounded and clamped to the configured range.
    #[test]
    fn batch_size_is_clamped(value in 0.0f32..=1e7, min in 1usize..50, extra in 0usize..200) {
        let max = min + extra;
        let config = BatcherConfig { min_batch_size: min, max_batch_size: max, target_latency_ms: 0.0 };
        let b = Batcher::new(config, fixed_size(value), host(SlotKind::Ordering)).unwrap();
        let (size, answer) = b.target_size(10, &load(0), 1);
        prop_assert!((min..=max).contains(&size));
        prop_assert_eq!(size, (value.round() as usize).clamp(min, max));
        prop_assert_eq!(answer.tag().unwrap().answered_by.name.as_ref(), "fixed");
    }
}

#[test]
fn equal_scores_are_ordered_by_hash_within_a_class() {
    let mp = mempool();
    for k in 0..10 {
        mp.insert(tx(k, 0, (k as u64) * 3, [N, S][k % 2]), 0)
            .unwrap();
    }
    let b = batcher(
        host(SlotKind::BatchSize),
        host_with(SlotKind::Ordering, Arc::new(Adversary::new(1, 1))),
        64,
    );
    let batch = b.build(&mp, &load(64), 3);
    let mut want: Vec<(AnomalyClass, TxHash)> =
        batch.txs.iter().map(|t| (t.class, t.tx.hash())).collect();
    want.sort();
    let got: Vec<(AnomalyClass, TxHash)> =
        batch.txs.iter().map(|t| (t.class, t.tx.hash())).collect();
    assert_eq!(got, want);
    // Rebuilding gives the same batch.
    assert_eq!(b.build(&mp, &load(64), 3).hashes(), batch.hashes());
}

#[test]
fn class_priority_chooses_the_window_and_the_order() {
    let mp = mempool();
    // Anomalous and suspicious ones pay far more: class still comes first.
    for k in 0..4 {
        mp.insert(tx(k, 0, 1_000, A), 0).unwrap();
        mp.insert(tx(k + 4, 0, 500, S), 0).unwrap();
        mp.insert(tx(k + 8, 0, 1, N), 0).unwrap();
    }
    let b = batcher(fixed_size(6.0), host(SlotKind::Ordering), 64);
    let batch = b.build(&mp, &load(0), 1);
    assert_eq!(batch.target_size, 6);
    assert_eq!(batch.queue_depth, 12);
    let classes: Vec<AnomalyClass> = batch.txs.iter().map(|t| t.class).collect();
    assert_eq!(classes, [N, N, N, N, S, S]);
    // The static ordering answered, on the baseline.
    let tag = batch.ordering.tag().unwrap();
    assert_eq!(tag.answered_by.name.as_ref(), "fee-priority");
    // A sender's normal transaction behind its own anomalous one cannot overtake it.
    let mp = mempool();
    mp.insert(tx(0, 0, 1, A), 0).unwrap();
    mp.insert(tx(0, 1, 9, N), 0).unwrap();
    mp.insert(tx(1, 0, 1, S), 0).unwrap();
    let batch = b.build(&mp, &load(0), 1);
    let got: Vec<(Address, u64)> = batch.txs.iter().map(sender_nonce).collect();
    assert_eq!(
        got,
        [(KEYS[1].1, 0), (KEYS[0].1, 0), (KEYS[0].1, 1)],
        "the suspicious tx first, then the anomalous run"
    );
}

#[test]
fn the_static_order_is_fee_priority_with_nonces_kept() {
    let mp = mempool();
    mp.insert(tx(0, 0, 10, N), 0).unwrap();
    mp.insert(tx(0, 1, 90, N), 0).unwrap();
    mp.insert(tx(1, 0, 50, N), 0).unwrap();
    mp.insert(tx(2, 0, 70, N), 0).unwrap();
    let b = batcher(host(SlotKind::BatchSize), host(SlotKind::Ordering), 64);
    let batch = b.build(&mp, &load(64), 9);
    let got: Vec<u64> = batch.txs.iter().map(|t| t.tx.tx().fee).collect();
    assert_eq!(got, [70, 50, 10, 90]);
    assert_nonce_order(&batch.txs);
}

#[test]
fn a_failing_ordering_model_falls_back_and_drops_nothing() {
    let mp = mempool();
    for k in 0..6 {
        for n in 0..3 {
            mp.insert(tx(k, n, (k as u64 * 7 + n) % 5, N), 0).unwrap();
        }
    }
    let broken = Arc::new(
        FaultyPolicy::new(SlotKind::Ordering.static_policy(), Fault::Error)
            .with_rate(1.0)
            .after_calls(WARMUP_INPUTS as u64),
    );
    let b = batcher(
        host(SlotKind::BatchSize),
        host_with(SlotKind::Ordering, broken),
        64,
    );
    let batch = b.build(&mp, &load(64), 4);
    assert_eq!(batch.txs.len(), 18);
    assert_nonce_order(&batch.txs);
    let tag = batch.ordering.tag().unwrap();
    assert_eq!(tag.answered_by.backend, BackendKind::Static);
    assert!(tag.fallback.is_some());
    // Same as the static baseline's order.
    let plain = batcher(host(SlotKind::BatchSize), host(SlotKind::Ordering), 64);
    assert_eq!(plain.build(&mp, &load(64), 4).hashes(), batch.hashes());
}

#[test]
fn an_empty_pool_gives_an_empty_batch_without_asking_ordering() {
    let b = batcher(host(SlotKind::BatchSize), host(SlotKind::Ordering), 64);
    let batch = b.build(&mempool(), &load(0), 1);
    assert!(batch.txs.is_empty());
    assert_eq!(batch.target_size, 1, "min with an empty queue");
    assert!(matches!(batch.ordering, SlotAnswer::NotAsked));
    assert!(batch.batch_size.tag().is_some());
}

#[test]
fn in_flight_transactions_are_skipped_and_their_successors_taken() {
    let mp = mempool();
    for n in 0..4 {
        mp.insert(tx(0, n, 5, N), 0).unwrap();
    }
    let b = batcher(fixed_size(2.0), host(SlotKind::Ordering), 64);
    let first = b.build(&mp, &load(0), 1);
    let in_flight: HashSet<TxHash> = first.hashes().into_iter().collect();
    let second = b.build_at(&mp, &load(0), 2, Instant::now(), Some(&in_flight));
    let nonces: Vec<u64> = second.txs.iter().map(|t| t.tx.tx().nonce).collect();
    assert_eq!(nonces, [2, 3]);
    assert_eq!(second.queue_depth, 2);
    mp.remove_committed(&first.hashes());
    assert_eq!(b.build(&mp, &load(0), 3).hashes(), second.hashes());
}

#[test]
fn clamp_target_rounds_and_clamps() {
    assert_eq!(clamp_target(f32::NAN, 3, 9), 3);
    assert_eq!(clamp_target(f32::INFINITY, 3, 9), 3);
    assert_eq!(clamp_target(-5.0, 3, 9), 3);
    assert_eq!(clamp_target(5.49, 3, 9), 5);
    assert_eq!(clamp_target(5.5, 3, 9), 6);
    assert_eq!(clamp_target(1e7, 3, 9), 9);
    assert_eq!(clamp_target(4.0, 4, 4), 4);
}

#[test]
fn bad_configs_and_wrong_hosts_are_refused() {
    let ok = || (host(SlotKind::BatchSize), host(SlotKind::Ordering));
    for config in [
        BatcherConfig {
            min_batch_size: 0,
            ..BatcherConfig::default()
        },
        BatcherConfig {
            min_batch_size: 10,
            max_batch_size: 9,
            ..BatcherConfig::default()
        },
        BatcherConfig {
            target_latency_ms: f32::NAN,
            ..BatcherConfig::default()
        },
    ] {
        let (s, o) = ok();
        assert_eq!(
            Batcher::new(config, s, o).unwrap_err().code(),
            "E_INVALID_CONFIG"
        );
    }
    let (s, o) = ok();
    assert_eq!(
        Batcher::new(BatcherConfig::default(), o, s)
            .unwrap_err()
            .code(),
        "E_INVALID_CONFIG"
    );
}

#[test]
fn feature_rows_are_relative_and_measure_shared_accounts() {
    let mp = mempool();
    let shared = Address([0x55; 32]);
    let t0 = tx_to(0, 0, 300, N, shared);
    let seq0 = t0.seq;
    mp.insert(t0, 0).unwrap();
    mp.insert(tx_to(1, 0, 158, N, shared), 0).unwrap();
    mp.insert(tx_to(2, 0, 10, N, Address([0x66; 32])), 0)
        .unwrap();
    mp.insert(tx_to(2, 1, 10, N, Address([0x67; 32])), 0)
        .unwrap();
    let cands: Vec<ReadyTx> = mp.select_ready(10);
    let now = Instant::now() + Duration::from_millis(50);
    let rows = ordering_features(&cands, now);
    let by_fee = |fee: u64| -> OrderingFeatures {
        let i = cands
            .iter()
            .position(|c| c.tx.tx.tx().fee == fee && c.tx.tx.tx().nonce == 0)
            .unwrap();
        rows[i]
    };
    let r0 = by_fee(300);
    assert_eq!(r0.arrival_seq, 0.0, "the oldest candidate");
    assert_eq!(
        (r0.size_bytes, r0.fee, r0.fee_per_byte),
        (158.0, 300.0, 300.0 / 158.0)
    );
    assert_eq!((r0.accounts_touched, r0.hot_account_share), (2.0, 0.5));
    assert_eq!((r0.sender_pending, r0.nonce_gap), (1.0, 0.0));
    assert!(r0.age_ms >= 50.0);
    let r1 = by_fee(158);
    assert_eq!(r1.fee_per_byte, 1.0);
    assert_eq!(r1.hot_account_share, 0.5);
    // Sender 2's two transactions share the sender account.
    let r2 = by_fee(10);
    assert_eq!((r2.sender_pending, r2.hot_account_share), (2.0, 0.5));
    let gaps: Vec<f32> = rows.iter().map(|r| r.nonce_gap).collect();
    assert!(gaps.contains(&1.0));
    for (c, r) in cands.iter().zip(&rows) {
        assert_eq!(r.arrival_seq, (c.tx.seq - seq0) as f32);
    }
    // Sequence numbers far apart saturate at 2^24 rather than losing exactness.
    let mut far = cands.clone();
    far[0].tx.seq = 5;
    far[1].tx.seq = 5 + (1 << 30);
    let rows = ordering_features(&far[..2], now);
    assert_eq!(rows[1].arrival_seq, ARRIVAL_SEQ_MAX as f32);
}
