//! [`FaultyLinks`]: **fault injection for tests and chaos runs, never for a production
//! config.** A fake, deliberately faulty network between replicas.
//!
//! It is a shared, thread-safe table of directed links `(from, to)` between replicas that can
//! be cut, made lossy or slowed down. A [`RaftNetwork`](crate::network::RaftNetwork) built
//! with [`RaftNetwork::with_faults`](crate::network::RaftNetwork::with_faults) asks it before
//! each Raft RPC it sends from its replica to a peer ([`FaultyLinks::check`]):
//!
//! - a cut link, or a message the link's loss probability drops, fails the RPC at once with
//!   openraft's `Unreachable`, the error a dead peer gives; nothing is sent;
//! - a link with a delay holds the RPC that long (`tokio::time::sleep`) before sending it.
//!
//! Each replica's client checks only its own outgoing links, so cutting one direction
//! silences one side; cutting both ([`FaultyLinks::cut_both`], [`FaultyLinks::isolate`])
//! partitions for real. [`FaultyLinks::heal`] restores every link. A network built with
//! [`RaftNetwork::new`](crate::network::RaftNetwork::new) has no faults and never consults
//! this.
//!
//! Losses are drawn from a small PRNG seeded at construction ([`FaultyLinks::with_seed`]), so
//! the sequence of draws is reproducible; which RPC gets which draw still depends on how the
//! replicas' tasks interleave.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::types::NodeId;

/// Why [`FaultyLinks`] refused to carry an RPC. Its display starts with the code
/// `E_FAULT_INJECTED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InjectedFault {
    /// The directed link is cut.
    #[error("[E_FAULT_INJECTED] the link {from} -> {to} is cut (fault injection)")]
    Cut {
        /// The sending replica.
        from: NodeId,
        /// The receiving replica.
        to: NodeId,
    },
    /// The link's loss probability dropped this RPC.
    #[error("[E_FAULT_INJECTED] the link {from} -> {to} dropped the message (fault injection)")]
    Lost {
        /// The sending replica.
        from: NodeId,
        /// The receiving replica.
        to: NodeId,
    },
}

#[derive(Default)]
struct State {
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Loss probability per link, in millionths (0..=1_000_000).
    loss: BTreeMap<(NodeId, NodeId), u32>,
    delay: BTreeMap<(NodeId, NodeId), Duration>,
    /// Replicas whose server refuses every call (see [`FaultyLinks::block_inbound`]).
    inbound: BTreeSet<NodeId>,
    rng: u64,
    cut_hits: u64,
    lost: u64,
}

impl State {
    /// SplitMix64: small, seedable, good enough to draw losses.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Fault injection for tests and chaos runs (see the module docs): the faults of the directed
/// links between replicas, shared by every replica's
/// [`RaftNetwork`](crate::network::RaftNetwork) through an `Arc`. All links start healthy.
pub struct FaultyLinks {
    state: Mutex<State>,
}

impl std::fmt::Debug for FaultyLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultyLinks")
            .field("cut", &state.cut)
            .field("loss_ppm", &state.loss)
            .field("delay", &state.delay)
            .finish_non_exhaustive()
    }
}

impl Default for FaultyLinks {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultyLinks {
    /// Every link healthy; losses drawn from seed 0.
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// Every link healthy; losses drawn from a PRNG seeded with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                rng: seed,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the directed link `from -> to`: RPCs `from` sends to `to` fail as unreachable.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.lock().cut.insert((from, to));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&self, a: NodeId, b: NodeId) {
        let mut state = self.lock();
        state.cut.insert((a, b));
        state.cut.insert((b, a));
    }

    /// Cuts both directions between `node` and each of `others` (`node` itself is skipped):
    /// `node` is partitioned away from them.
    pub fn isolate(&self, node: NodeId, others: impl IntoIterator<Item = NodeId>) {
        let mut state = self.lock();
        for other in others.into_iter().filter(|o| *o != node) {
            state.cut.insert((node, other));
            state.cut.insert((other, node));
        }
    }

    /// Restores the directed link `from -> to` (its cut only; loss and delay stay).
    pub fn restore(&self, from: NodeId, to: NodeId) {
        self.lock().cut.remove(&(from, to));
    }

    /// Restores every link: no cut, no loss, no delay. The PRNG and the counters go on.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.cut.clear();
        state.loss.clear();
        state.delay.clear();
        state.inbound.clear();
    }

    /// Makes the server of replica `node` refuse every Raft call (when it was built with
    /// [`RaftService::with_faults`](crate::network::RaftService::with_faults)): with its
    /// outgoing links cut too, a replica in another process is partitioned from every peer,
    /// since the peers' own tables know nothing of the fault. `false` lifts it.
    pub fn block_inbound(&self, node: NodeId, blocked: bool) {
        let mut state = self.lock();
        if blocked {
            state.inbound.insert(node);
        } else {
            state.inbound.remove(&node);
        }
    }

    /// Whether replica `node`'s server refuses every call.
    pub fn inbound_blocked(&self, node: NodeId) -> bool {
        self.lock().inbound.contains(&node)
    }

    /// Whether the directed link `from -> to` is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.lock().cut.contains(&(from, to))
    }

    /// Makes the directed link `from -> to` drop each RPC with `probability` (clamped to
    /// 0..=1, NaN as 0; resolution one in a million). 0 removes the loss.
    pub fn set_loss(&self, from: NodeId, to: NodeId, probability: f64) {
        let ppm = if probability.is_nan() {
            0
        } else {
            // In 0..=1_000_000 after the clamp: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ppm = (probability.clamp(0.0, 1.0) * 1_000_000.0).round() as u32;
            ppm
        };
        let mut state = self.lock();
        if ppm == 0 {
            state.loss.remove(&(from, to));
        } else {
            state.loss.insert((from, to), ppm);
        }
    }

    /// Holds each RPC sent on the directed link `from -> to` for `delay` before sending it.
    /// `Duration::ZERO` removes the delay.
    pub fn set_delay(&self, from: NodeId, to: NodeId, delay: Duration) {
        let mut state = self.lock();
        if delay.is_zero() {
            state.delay.remove(&(from, to));
        } else {
            state.delay.insert((from, to), delay);
        }
    }

    /// What happens to an RPC `from` sends to `to` now: refused ([`InjectedFault`]: the link
    /// is cut, or a loss was drawn), or carried after the returned delay (zero on a healthy
    /// link).
    pub fn check(&self, from: NodeId, to: NodeId) -> Result<Duration, InjectedFault> {
        let mut state = self.lock();
        if state.cut.contains(&(from, to)) {
            state.cut_hits = state.cut_hits.saturating_add(1);
            return Err(InjectedFault::Cut { from, to });
        }
        if let Some(ppm) = state.loss.get(&(from, to)).copied()
            && state.next() % 1_000_000 < u64::from(ppm)
        {
            state.lost = state.lost.saturating_add(1);
            return Err(InjectedFault::Lost { from, to });
        }
        Ok(state
            .delay
            .get(&(from, to))
            .copied()
            .unwrap_or(Duration::ZERO))
    }

    /// How many RPCs were refused because their link was cut, since construction.
    pub fn refused_by_cuts(&self) -> u64 {
        self.lock().cut_hits
    }

    /// How many RPCs the loss probabilities dropped, since construction.
    pub fn lost(&self) -> u64 {
        self.lock().lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_directed_and_heal_restores_them_all() {
        let links = FaultyLinks::new();
        assert_eq!(links.check(1, 2), Ok(Duration::ZERO));
        links.cut(1, 2);
        assert_eq!(
            links.check(1, 2),
            Err(InjectedFault::Cut { from: 1, to: 2 })
        );
        assert_eq!(links.check(2, 1), Ok(Duration::ZERO), "only one direction");
        links.restore(1, 2);
        assert!(!links.is_cut(1, 2));

        links.block_inbound(3, true);
        assert!(links.inbound_blocked(3) && !links.inbound_blocked(1));
        links.block_inbound(3, false);
        assert!(!links.inbound_blocked(3));

        links.isolate(2, [1, 2, 3]);
        for other in [1, 3] {
            assert!(links.is_cut(2, other) && links.is_cut(other, 2));
        }
        assert!(!links.is_cut(2, 2) && !links.is_cut(1, 3) && !links.is_cut(3, 1));
        links.cut_both(1, 3);
        assert!(links.is_cut(1, 3) && links.is_cut(3, 1));
        links.set_delay(1, 3, Duration::from_millis(5));
        links.set_loss(3, 1, 1.0);
        assert_eq!(links.refused_by_cuts(), 1);

        links.heal();
        for (from, to) in [(1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)] {
            assert_eq!(links.check(from, to), Ok(Duration::ZERO), "{from} -> {to}");
        }
    }

    #[test]
    fn delays_and_losses_apply_to_their_link_only() {
        let links = FaultyLinks::new();
        links.set_delay(1, 2, Duration::from_millis(30));
        assert_eq!(links.check(1, 2), Ok(Duration::from_millis(30)));
        assert_eq!(links.check(2, 1), Ok(Duration::ZERO));
        links.set_delay(1, 2, Duration::ZERO);
        assert_eq!(links.check(1, 2), Ok(Duration::ZERO));

        links.set_loss(1, 2, 1.0);
        assert_eq!(
            links.check(1, 2),
            Err(InjectedFault::Lost { from: 1, to: 2 })
        );
        assert_eq!(links.check(2, 1), Ok(Duration::ZERO));
        links.set_loss(1, 2, f64::NAN);
        assert_eq!(links.check(1, 2), Ok(Duration::ZERO), "NaN is no loss");
        links.set_loss(1, 2, -3.0);
        assert_eq!(links.check(1, 2), Ok(Duration::ZERO));
        assert_eq!(links.lost(), 1);
    }

    #[test]
    fn losses_are_drawn_from_the_seed() {
        let draws = |seed: u64| {
            let links = FaultyLinks::with_seed(seed);
            links.set_loss(1, 2, 0.5);
            (0..200)
                .map(|_| links.check(1, 2).is_err())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7), "the same seed, the same losses");
        assert_ne!(draws(7), draws(8));
        let lost = draws(7).iter().filter(|l| **l).count();
        assert!((60..=140).contains(&lost), "about half of 200 lost: {lost}");
    }
}
