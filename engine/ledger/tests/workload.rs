//! The workload generator: determinism, popularity, arrival patterns, presets and anomaly
//! labels, and end to end through admission.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurigraph_decision::clock::ManualClock;
use aurigraph_decision::slot::anomaly::AnomalyClass;
use aurigraph_decision::{HostConfig, SlotHost, SlotKind};
use aurigraph_ledger::admission::{Admission, AdmissionConfig, PendingNonces};
use aurigraph_ledger::state::{Account, Genesis, StateView};
use aurigraph_ledger::tx::{Address, MAX_OUTPUTS, Operation, SignedTransaction};
use aurigraph_ledger::workload::{
    Anomalies, Arrival, Event, Label, Preset, Workload, WorkloadConfig,
};

/// Committed state from a genesis; transactions are applied in admission order.
struct MemState(HashMap<Address, Account>);

impl MemState {
    fn from_genesis(g: &Genesis) -> Self {
        Self(
            g.allocations
                .iter()
                .map(|&(a, balance)| (a, Account { balance, nonce: 0 }))
                .collect(),
        )
    }

    /// Executes `tx`, which must carry the sender's next nonce and be affordable.
    fn apply(&mut self, tx: &SignedTransaction) {
        let t = tx.tx();
        let from = self.0.entry(t.sender).or_default();
        assert_eq!(from.nonce, t.nonce, "generated nonces are consecutive");
        let cost = t.fee + t.amount_out();
        assert!(from.balance >= cost);
        from.balance -= cost;
        from.nonce += 1;
        let outputs = match &t.op {
            Operation::Transfer { to, amount } => vec![(*to, *amount)],
            Operation::MultiTransfer { outputs } => outputs.clone(),
        };
        for (to, amount) in outputs {
            self.0.entry(to).or_default().balance += amount;
        }
    }
}

impl StateView for MemState {
    fn account(&self, address: &Address) -> Account {
        self.0.get(address).copied().unwrap_or_default()
    }
}

fn small(preset: Preset, seed: u64) -> WorkloadConfig {
    WorkloadConfig {
        accounts: 300,
        ..preset.config(seed)
    }
}

fn counts(events: &[Event]) -> HashMap<Label, usize> {
    let mut m = HashMap::new();
    for e in events {
        *m.entry(e.label).or_insert(0) += 1;
    }
    m
}

#[test]
fn the_same_seed_gives_byte_identical_events() {
    let a = Workload::new(small(Preset::SpamAttack, 11)).unwrap();
    let b = Workload::new(small(Preset::SpamAttack, 11)).unwrap();
    let ea = a.generate(1_500);
    assert_eq!(ea, b.generate(1_500));
    // The stream (parallel rounds of 1,024) yields the same events.
    let streamed: Vec<Event> = b.stream().take(1_500).collect();
    assert_eq!(ea, streamed);
    assert_eq!(a.genesis(), b.genesis());
    assert_eq!(a.addresses(), b.addresses());
    assert!(ea.iter().enumerate().all(|(i, e)| e.index == i as u64));
    // Another seed: other keys, other events.
    let c = Workload::new(small(Preset::SpamAttack, 12)).unwrap();
    assert_ne!(c.addresses()[0], a.addresses()[0]);
    assert_ne!(c.generate(10), a.generate(10));
}

/// Share of transfer outputs that go to the `k` most popular accounts.
fn top_share(w: &Workload, events: &[Event], k: usize) -> f64 {
    let top: Vec<Address> = w.regular_accounts()[..k].to_vec();
    let (mut hits, mut all) = (0usize, 0usize);
    for e in events.iter().filter(|e| e.label == Label::Normal) {
        let tx = SignedTransaction::decode(&e.bytes).unwrap();
        let outs = match &tx.tx().op {
            Operation::Transfer { to, .. } => vec![*to],
            Operation::MultiTransfer { outputs } => outputs.iter().map(|o| o.0).collect(),
        };
        all += outs.len();
        hits += outs.iter().filter(|a| top.contains(a)).count();
    }
    hits as f64 / all as f64
}

#[test]
fn the_zipf_exponent_raises_the_share_of_the_top_accounts() {
    let shares: Vec<f64> = [0.0, 0.8, 1.2]
        .iter()
        .map(|&s| {
            let w = Workload::new(WorkloadConfig {
                zipf_exponent: s,
                ..WorkloadConfig::default()
            })
            .unwrap();
            top_share(&w, &w.generate(4_000), 10)
        })
        .collect();
    assert!(shares[0] < 0.03, "uniform: {shares:?}");
    assert!(shares[1] > 0.15 && shares[1] < shares[2], "{shares:?}");
    assert!(shares[2] > 0.4, "hot-accounts: {shares:?}");
    // Senders stay uniform unless asked.
    let w = Workload::new(Preset::HotAccounts.config(1)).unwrap();
    let events = w.generate(4_000);
    let top: Vec<Address> = w.regular_accounts()[..10].to_vec();
    let from_top = events
        .iter()
        .filter(|e| {
            let tx = SignedTransaction::decode(&e.bytes).unwrap();
            top.contains(&tx.tx().sender)
        })
        .count();
    assert!(from_top < 160, "{from_top}");
}

#[test]
fn arrival_patterns_shape_the_times() {
    let times = |arrival: Arrival, n: usize| -> Vec<f64> {
        let w = Workload::new(WorkloadConfig {
            accounts: 50,
            arrival,
            ..WorkloadConfig::default()
        })
        .unwrap();
        w.generate(n).iter().map(|e| e.at.as_secs_f64()).collect()
    };
    let steady = times(Arrival::Steady { rate: 2_000.0 }, 4_000);
    assert!(steady.windows(2).all(|p| p[0] <= p[1]));
    let span = steady.last().unwrap();
    assert!((span - 2.0).abs() < 0.15, "4,000 at 2,000/s took {span} s");

    // Bursts: 10x during the first 0.5 s of every 2 s.
    let bursty = times(
        Arrival::Bursts {
            base: 200.0,
            burst_rate: 2_000.0,
            burst_len: Duration::from_millis(500),
            every: Duration::from_secs(2),
        },
        4_000,
    );
    let in_burst = bursty.iter().filter(|t| t.rem_euclid(2.0) < 0.5).count();
    // Expected: 1,000 in bursts vs 300 outside per cycle, i.e. about 77% in bursts.
    let share = in_burst as f64 / bursty.len() as f64;
    assert!((share - 0.77).abs() < 0.05, "{share}");

    // Diurnal: the high half of the cycle carries most arrivals.
    let diurnal = times(
        Arrival::Diurnal {
            mean: 1_000.0,
            amplitude: 0.8,
            period: Duration::from_secs(2),
        },
        6_000,
    );
    let high = diurnal.iter().filter(|t| t.rem_euclid(2.0) < 1.0).count();
    let share = high as f64 / diurnal.len() as f64;
    // 0.5 + amplitude / pi = 0.75.
    assert!((share - 0.75).abs() < 0.05, "{share}");
}

#[test]
fn presets_produce_the_anomalies_they_claim() {
    for p in Preset::ALL {
        assert_eq!(p.name().parse::<Preset>().unwrap(), p);
        assert_eq!(
            WorkloadConfig::preset(p.name(), 3).unwrap(),
            p.config(3),
            "{p}"
        );
        let w = Workload::new(small(p, 3)).unwrap();
        let events = w.generate(3_000);
        let c = counts(&events);
        if p == Preset::SpamAttack {
            let share = |l| *c.get(&l).unwrap_or(&0) as f64 / events.len() as f64;
            assert!((share(Label::Spam) - 0.2).abs() < 0.06, "{c:?}");
            for l in [
                Label::Oversized,
                Label::Replay,
                Label::BadSignature,
                Label::Malformed,
            ] {
                assert!(share(l) > 0.003 && share(l) < 0.04, "{l:?}: {c:?}");
            }
        } else if p == Preset::AdversarialSpam {
            // Covered by `workload_presets.rs`.
            assert!(c.contains_key(&Label::Normal), "{c:?}");
        } else {
            assert_eq!(c.len(), 1, "{p}: only normal traffic: {c:?}");
        }
    }
    assert!("nope".parse::<Preset>().is_err());
    assert!(Workload::preset("spam-attack", 1).is_ok());

    // Each label is what it says.
    let w = Workload::new(small(Preset::SpamAttack, 4)).unwrap();
    let events = w.generate(3_000);
    let spam: Vec<Address> = w.spam_accounts().to_vec();
    let mut seen = HashMap::new();
    for e in &events {
        let decoded = SignedTransaction::decode(&e.bytes);
        match e.label {
            Label::Normal => {
                let t = decoded.unwrap();
                assert!(t.verify().is_ok() && !spam.contains(&t.tx().sender));
            }
            Label::Spam => {
                let t = decoded.unwrap();
                assert!(t.verify().is_ok() && spam.contains(&t.tx().sender));
                assert_eq!(t.tx().fee, w.config().min_fee);
            }
            Label::Oversized => {
                let t = decoded.unwrap();
                assert!(t.verify().is_ok());
                assert!(
                    matches!(&t.tx().op, Operation::MultiTransfer { outputs } if outputs.len() == MAX_OUTPUTS)
                );
            }
            Label::Replay => {
                let earlier = events[..e.index as usize]
                    .iter()
                    .any(|x| x.bytes == e.bytes && x.label.admissible());
                assert!(earlier, "a replay repeats an earlier admissible event");
            }
            Label::BadSignature => assert!(decoded.unwrap().verify().is_err()),
            Label::Malformed => assert!(decoded.is_err()),
        }
        *seen.entry(e.label).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), Label::ALL.len(), "{seen:?}");
}

#[test]
fn invalid_configs_are_refused() {
    let bad = [
        WorkloadConfig {
            accounts: 1,
            ..WorkloadConfig::default()
        },
        WorkloadConfig {
            zipf_exponent: -1.0,
            ..WorkloadConfig::default()
        },
        WorkloadConfig {
            arrival: Arrival::Steady { rate: 0.0 },
            ..WorkloadConfig::default()
        },
        WorkloadConfig {
            anomalies: Anomalies {
                spam_share: 1.0,
                ..Anomalies::default()
            },
            ..WorkloadConfig::default()
        },
        WorkloadConfig {
            anomalies: Anomalies {
                replay_share: 0.6,
                malformed_share: 0.6,
                ..Anomalies::default()
            },
            ..WorkloadConfig::default()
        },
    ];
    for c in bad {
        assert_eq!(
            Workload::new(c.clone()).unwrap_err().code(),
            "E_INVALID_CONFIG",
            "{c:?}"
        );
    }
}

/// Admits `events` in batches of 256 on a manual clock following the event times, and
/// commits every admitted transaction after its batch. Returns (label, result code, score,
/// class) per event.
fn run_through_admission(
    w: &Workload,
    events: &[Event],
) -> Vec<(Label, &'static str, f32, Option<AnomalyClass>)> {
    let host = Arc::new(
        SlotHost::new(
            SlotKind::Anomaly,
            HostConfig {
                deadline: Some(Duration::from_secs(1)),
                ..HostConfig::default()
            },
        )
        .unwrap(),
    );
    let clock = ManualClock::new();
    let pending = Arc::new(PendingNonces::new());
    let adm = Admission::new(
        AdmissionConfig {
            chain_id: w.config().chain_id,
            min_fee: w.config().min_fee,
            ..AdmissionConfig::default()
        },
        host,
    )
    .unwrap()
    .with_clock(clock.clone())
    .with_pending(pending.clone());
    let mut state = MemState::from_genesis(w.genesis());
    let mut out = Vec::new();
    for batch in events.chunks(256) {
        let now = batch.last().unwrap().at;
        clock.advance(now.saturating_sub(aurigraph_decision::clock::Clock::monotonic(&*clock)));
        let inputs: Vec<&[u8]> = batch.iter().map(|e| &e.bytes[..]).collect();
        let outcome = adm.admit(&state, &inputs);
        for (e, r) in batch.iter().zip(&outcome.results) {
            match r {
                Ok(a) => out.push((e.label, "OK", a.anomaly_score, Some(a.class))),
                Err(x) => out.push((e.label, x.code(), 0.0, None)),
            }
        }
        let mut admitted = outcome.into_admitted();
        admitted.sort_by_key(|a| a.seq);
        for a in admitted {
            state.apply(&a.tx);
            let t = a.tx.tx();
            adm.committed(&t.sender, t.nonce + 1);
        }
    }
    assert!(pending.is_empty(), "every commit was reported");
    out
}

#[test]
fn generated_transactions_pass_admission_end_to_end() {
    let w = Workload::new(Preset::Uniform.config(21)).unwrap();
    let events = w.generate(3_000);
    let results = run_through_admission(&w, &events);
    assert!(
        results.iter().all(|r| r.1 == "OK"),
        "every normal tx is admitted"
    );
    let flagged = results
        .iter()
        .filter(|r| r.3 != Some(AnomalyClass::Normal))
        .count();
    assert!(flagged <= 30, "uniform traffic flagged: {flagged} of 3,000");
}

#[test]
fn spam_attack_end_to_end_labels_match_outcomes() {
    let w = Workload::new(Preset::SpamAttack.config(22)).unwrap();
    let events = w.generate(4_000);
    let results = run_through_admission(&w, &events);
    let mut scores: HashMap<Label, Vec<f32>> = HashMap::new();
    for &(label, code, score, _) in &results {
        let expected: &[&str] = match label {
            Label::Normal | Label::Spam | Label::Oversized => &["OK"],
            Label::Replay => &["E_DUPLICATE", "E_STALE_NONCE"],
            Label::BadSignature => &["E_BAD_SIGNATURE"],
            Label::Malformed => &["E_TX_TRUNCATED", "E_TX_TOO_LARGE", "E_TX_VERSION"],
        };
        assert!(expected.contains(&code), "{label:?} -> {code}");
        if code == "OK" {
            scores.entry(label).or_default().push(score);
        }
    }
    let mean = |l: Label| {
        let v = &scores[&l];
        v.iter().sum::<f32>() / v.len() as f32
    };
    assert!(mean(Label::Normal) < 0.1, "normal {}", mean(Label::Normal));
    assert!(mean(Label::Spam) > 0.8, "spam {}", mean(Label::Spam));
    assert!(
        mean(Label::Oversized) > 0.8,
        "oversized {}",
        mean(Label::Oversized)
    );
    let normal_flagged = results
        .iter()
        .filter(|r| r.0 == Label::Normal && r.3 != Some(AnomalyClass::Normal))
        .count();
    let normal = scores[&Label::Normal].len();
    assert!(
        normal_flagged * 50 <= normal,
        "{normal_flagged} of {normal}"
    );
}
