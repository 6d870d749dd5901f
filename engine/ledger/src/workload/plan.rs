//! The planner: every choice of the workload (times, kinds, accounts, amounts, nonces),
//! made sequentially from one seeded generator, as unsigned drafts. Signing comes after,
//! in parallel, and cannot change the output.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::Rng;
use rand_distr::{Distribution, Zipf};

use super::Label;
use super::config::{Arrival, WorkloadConfig};
use super::rng::WorkloadRng;
use crate::tx::{Address, MAX_OUTPUTS, MAX_TX_BYTES, Operation, Transaction};

/// How many recent admissible transactions a replay picks from.
pub(crate) const REPLAY_MEMORY: usize = 1_024;

/// What an event's bytes will be.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// `tx` signed by account `signer`; with `corrupt`, one signature bit flipped.
    Sign {
        tx: Transaction,
        signer: usize,
        corrupt: bool,
    },
    /// These bytes as they are.
    Raw(Vec<u8>),
}

/// One planned event.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    pub index: u64,
    pub at_nanos: u64,
    pub label: Label,
    pub body: Body,
}

/// The Poisson arrival process (thinning of a process at the pattern's top rate).
struct Arrivals {
    pattern: Arrival,
    max_rate: f64,
    t: f64,
}

impl Arrivals {
    fn next(&mut self, rng: &mut WorkloadRng) -> f64 {
        loop {
            let u: f64 = rng.random();
            self.t += -(1.0 - u).ln() / self.max_rate;
            if rng.random::<f64>() * self.max_rate < self.pattern.rate_at(self.t) {
                return self.t;
            }
        }
    }
}

/// Picks accounts by popularity rank.
enum Popularity {
    Uniform(usize),
    Zipf(Zipf<f64>, usize),
}

impl Popularity {
    fn new(n: usize, exponent: f64) -> Self {
        if exponent > 0.0 {
            // n >= 2 and exponent > 0 are validated: construction cannot fail.
            match Zipf::new(n as f64, exponent) {
                Ok(z) => Popularity::Zipf(z, n),
                Err(_) => Popularity::Uniform(n),
            }
        } else {
            Popularity::Uniform(n)
        }
    }

    fn pick(&self, rng: &mut WorkloadRng) -> usize {
        match self {
            Popularity::Uniform(n) => rng.random_range(0..*n),
            Popularity::Zipf(z, n) => (z.sample(rng) as usize).clamp(1, *n) - 1,
        }
    }
}

pub(crate) struct Planner<'a> {
    config: &'a WorkloadConfig,
    addresses: &'a [Address],
    rng: WorkloadRng,
    arrivals: Arrivals,
    next_regular: u64,
    /// Pending scheduled events: (time, order, account, kind).
    spam: BinaryHeap<Reverse<(u64, u64, usize, Scheduled)>>,
    spam_order: u64,
    burst_probability: f64,
    recipients: Popularity,
    senders: Popularity,
    nonces: Vec<u64>,
    replayable: VecDeque<(Transaction, usize)>,
    index: u64,
    /// Time of the event being planned, in seconds (for hot sets that move).
    now_s: f64,
    /// Sybils activated so far.
    next_sybil: usize,
    /// Newcomers used so far.
    next_newcomer: usize,
}

/// What a scheduled event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scheduled {
    /// Part of a spam burst: a minimum-fee transfer, label `Spam`.
    SpamBurst,
    /// A sybil's transaction: honest-looking, label `Spam`.
    Sybil,
    /// An honest burst or a newcomer's follow-up: label `Normal`.
    Honest,
}

fn nanos(t: f64) -> u64 {
    (t * 1e9).round().clamp(0.0, u64::MAX as f64) as u64
}

impl<'a> Planner<'a> {
    pub(crate) fn new(config: &'a WorkloadConfig, addresses: &'a [Address]) -> Self {
        let mut rng = WorkloadRng::derive(config.seed, "plan");
        let mut arrivals = Arrivals {
            pattern: config.arrival.clone(),
            max_rate: config.arrival.max_rate(),
            t: 0.0,
        };
        let first = nanos(arrivals.next(&mut rng));
        let senders = if config.zipf_senders {
            config.zipf_exponent
        } else {
            0.0
        };
        Self {
            config,
            addresses,
            rng,
            arrivals,
            next_regular: first,
            spam: BinaryHeap::new(),
            spam_order: 0,
            burst_probability: config.anomalies.burst_probability(),
            recipients: Popularity::new(config.accounts, config.zipf_exponent),
            senders: Popularity::new(config.accounts, senders),
            nonces: vec![0; addresses.len()],
            replayable: VecDeque::new(),
            index: 0,
            now_s: 0.0,
            next_sybil: 0,
            next_newcomer: 0,
        }
    }

    pub(crate) fn next_draft(&mut self) -> Draft {
        let index = self.index;
        self.index += 1;
        if let Some(&Reverse((at, _, sender, kind))) = self.spam.peek()
            && at <= self.next_regular
        {
            self.spam.pop();
            self.now_s = at as f64 / 1e9;
            let (label, fee, op) = match kind {
                Scheduled::SpamBurst => {
                    let to = self.recipient(sender);
                    (
                        Label::Spam,
                        self.config.min_fee,
                        Operation::Transfer { to, amount: 1 },
                    )
                }
                Scheduled::Sybil => {
                    let (fee, op) = self.regular_op(sender);
                    (Label::Spam, fee, op)
                }
                Scheduled::Honest => {
                    let (fee, op) = self.regular_op(sender);
                    (Label::Normal, fee, op)
                }
            };
            let tx = self.transaction(sender, fee, op);
            return self.signed(index, at, label, tx, sender, false);
        }
        let at = self.next_regular;
        self.now_s = at as f64 / 1e9;
        self.next_regular = nanos(self.arrivals.next(&mut self.rng)).max(at);
        if self.burst_probability > 0.0 && self.rng.random::<f64>() < self.burst_probability {
            self.start_burst(at);
        }
        let mut wave = 0.0;
        if let Some(adv) = &self.config.adversary {
            let t = self.now_s;
            wave = adv.replay_wave_at(t);
            if self.rng.random::<f64>() < adv.activation_probability(t) {
                self.start_sybil(at);
            }
            if self.rng.random::<f64>() < adv.honest_burst_probability {
                self.start_honest_burst(at);
            }
        }
        let a = &self.config.anomalies;
        let u: f64 = self.rng.random();
        let mut edge = a.oversized_share;
        if u < edge {
            return self.oversized(index, at);
        }
        edge += a.replay_share + wave;
        if u < edge && !self.replayable.is_empty() {
            let i = self.rng.random_range(0..self.replayable.len());
            let (tx, signer) = self.replayable[i].clone();
            return Draft {
                index,
                at_nanos: at,
                label: Label::Replay,
                body: Body::Sign {
                    tx,
                    signer,
                    corrupt: false,
                },
            };
        }
        edge += a.bad_signature_share;
        if u < edge {
            let sender = self.senders.pick(&mut self.rng);
            let (fee, op) = self.regular_op(sender);
            let tx = Transaction {
                chain_id: self.config.chain_id,
                sender: self.addresses[sender],
                nonce: self.nonces[sender], // not used up: the transaction is refused
                fee,
                op,
            };
            return Draft {
                index,
                at_nanos: at,
                label: Label::BadSignature,
                body: Body::Sign {
                    tx,
                    signer: sender,
                    corrupt: true,
                },
            };
        }
        edge += a.malformed_share;
        if u < edge {
            return Draft {
                index,
                at_nanos: at,
                label: Label::Malformed,
                body: Body::Raw(self.malformed()),
            };
        }
        let sender = self.regular_sender(at);
        let (fee, op) = self.regular_op(sender);
        let tx = self.transaction(sender, fee, op);
        self.signed(index, at, Label::Normal, tx, sender, false)
    }

    /// The sender of a regular transaction: a newcomer (then its follow-ups are
    /// scheduled), a hot account of the current hot set, or a regular account.
    fn regular_sender(&mut self, at: u64) -> usize {
        if let Some(adv) = &self.config.adversary
            && adv.newcomer_share > 0.0
            && self.rng.random::<f64>() < adv.newcomer_share
        {
            let first = self.config.total_accounts() - adv.newcomer_accounts;
            let sender = first + self.next_newcomer % adv.newcomer_accounts;
            self.next_newcomer += 1;
            let follow_ups = self.rng.random_range(0..=2);
            self.schedule(sender, at, follow_ups, 4.0, Scheduled::Honest);
            return sender;
        }
        if let Some(h) = &self.config.hotspots
            && self.rng.random::<f64>() < h.chain_share
        {
            let j = self.rng.random_range(0..h.hot_accounts);
            return h.hot_rank(self.now_s, j, self.config.accounts);
        }
        self.senders.pick(&mut self.rng)
    }

    /// Schedules `n` transactions of `sender` after `at`, with exponential gaps of mean
    /// `mean_gap_s` seconds.
    fn schedule(&mut self, sender: usize, at: u64, n: usize, mean_gap_s: f64, kind: Scheduled) {
        let mut t = at as f64 / 1e9;
        for _ in 0..n {
            let u: f64 = self.rng.random();
            t += -(1.0 - u).ln() * mean_gap_s;
            self.spam
                .push(Reverse((nanos(t).max(at), self.spam_order, sender, kind)));
            self.spam_order += 1;
        }
    }

    /// Activates the next sybil: its first transaction at `at`, the rest with exponential
    /// gaps of mean `sybil_gap`.
    fn start_sybil(&mut self, at: u64) {
        let Some(adv) = &self.config.adversary else {
            return;
        };
        let first = self.config.accounts + self.config.anomalies.spam_senders;
        let sender = first + self.next_sybil % adv.sybil_accounts.max(1);
        self.next_sybil += 1;
        let n = self.rng.random_range(2..=adv.sybil_max_txs);
        let gap = adv.sybil_gap.as_secs_f64();
        self.spam
            .push(Reverse((at, self.spam_order, sender, Scheduled::Sybil)));
        self.spam_order += 1;
        self.schedule(sender, at, n - 1, gap, Scheduled::Sybil);
    }

    /// An honest burst from an established regular account, after `at`.
    fn start_honest_burst(&mut self, at: u64) {
        let Some(adv) = &self.config.adversary else {
            return;
        };
        let (len, interval) = (adv.honest_burst_len, adv.honest_burst_interval);
        let sender = self.senders.pick(&mut self.rng);
        let step = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        for i in 1..=len as u64 {
            let t = at.saturating_add(step.saturating_mul(i));
            self.spam
                .push(Reverse((t, self.spam_order, sender, Scheduled::Honest)));
            self.spam_order += 1;
        }
    }

    fn start_burst(&mut self, at: u64) {
        let a = &self.config.anomalies;
        let spammer = self.config.accounts + self.rng.random_range(0..a.spam_senders);
        let step = u64::try_from(a.spam_interval.as_nanos()).unwrap_or(u64::MAX);
        for i in 0..a.spam_burst_len as u64 {
            let t = at.saturating_add(step.saturating_mul(i));
            self.spam
                .push(Reverse((t, self.spam_order, spammer, Scheduled::SpamBurst)));
            self.spam_order += 1;
        }
    }

    fn signed(
        &mut self,
        index: u64,
        at: u64,
        label: Label,
        tx: Transaction,
        signer: usize,
        corrupt: bool,
    ) -> Draft {
        if self.replayable.len() == REPLAY_MEMORY {
            self.replayable.pop_front();
        }
        self.replayable.push_back((tx.clone(), signer));
        Draft {
            index,
            at_nanos: at,
            label,
            body: Body::Sign {
                tx,
                signer,
                corrupt,
            },
        }
    }

    /// A transaction from `sender` with its next nonce (used up).
    fn transaction(&mut self, sender: usize, fee: u64, op: Operation) -> Transaction {
        let nonce = self.nonces[sender];
        self.nonces[sender] += 1;
        Transaction {
            chain_id: self.config.chain_id,
            sender: self.addresses[sender],
            nonce,
            fee,
            op,
        }
    }

    /// A recipient other than `sender`, by popularity.
    fn recipient(&mut self, sender: usize) -> Address {
        let mut r = match &self.config.hotspots {
            Some(h) if self.rng.random::<f64>() < h.hot_share => {
                let j = self.rng.random_range(0..h.hot_accounts);
                h.hot_rank(self.now_s, j, self.config.accounts)
            }
            _ => self.recipients.pick(&mut self.rng),
        };
        if r == sender {
            r = (r + 1) % self.config.accounts;
        }
        self.addresses[r]
    }

    fn amount(&mut self) -> u64 {
        self.rng.random_range(1..=self.config.max_amount)
    }

    /// Fee and operation of a regular transaction.
    fn regular_op(&mut self, sender: usize) -> (u64, Operation) {
        let fee = self
            .rng
            .random_range(self.config.min_fee..=self.config.max_fee);
        let op = if self.rng.random::<f64>() < self.config.multi_transfer_share {
            let n = self.rng.random_range(2..=3);
            let outputs = (0..n)
                .map(|_| (self.recipient(sender), self.amount()))
                .collect();
            Operation::MultiTransfer { outputs }
        } else {
            Operation::Transfer {
                to: self.recipient(sender),
                amount: self.amount(),
            }
        };
        (fee, op)
    }

    fn oversized(&mut self, index: u64, at: u64) -> Draft {
        let sender = self.senders.pick(&mut self.rng);
        let fee = self
            .rng
            .random_range(self.config.min_fee..=self.config.max_fee);
        let outputs = (0..MAX_OUTPUTS)
            .map(|_| (self.recipient(sender), 1))
            .collect();
        let tx = self.transaction(sender, fee, Operation::MultiTransfer { outputs });
        self.signed(index, at, Label::Oversized, tx, sender, false)
    }

    /// Junk, a truncated encoding, or an encoding above the size limit.
    fn malformed(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..3) {
            0 => {
                let len = self.rng.random_range(1..=200);
                let mut b = vec![0u8; len];
                self.rng.fill(&mut b[..]);
                b
            }
            1 => {
                let sender = self.senders.pick(&mut self.rng);
                let (fee, op) = self.regular_op(sender);
                let tx = Transaction {
                    chain_id: self.config.chain_id,
                    sender: self.addresses[sender],
                    nonce: self.nonces[sender],
                    fee,
                    op,
                };
                // The unsigned encoding: the signature is missing.
                tx.encode_unsigned()
            }
            _ => {
                let len = self.rng.random_range(MAX_TX_BYTES + 1..=MAX_TX_BYTES + 512);
                let mut b = vec![0u8; len];
                self.rng.fill(&mut b[..]);
                b[0] = crate::tx::TX_VERSION;
                b
            }
        }
    }
}
