//! What a replica's links show of the leader's health: the round trip of every AppendEntries
//! (heartbeats included) the leader sends, and the arrival of every AppendEntries a follower
//! receives. [`LinkStats`] records both; the node's `leader_health` monitor reads windows of
//! them each tick ([`LinkStats::rtts_since`], [`LinkStats::arrivals_since`]).
//!
//! The leader hand-over itself is [`crate::replica::transfer_leader`]; the election timing a
//! replica runs with is fixed when it starts ([`crate::replica::ReplicaConfig`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::NodeId;

/// Samples kept of each kind; older ones are dropped first.
pub const KEPT_SAMPLES: usize = 4_096;

/// Round trips and arrivals of AppendEntries RPCs, shared by a replica's network client and
/// its server through an `Arc`.
#[derive(Debug, Default)]
pub struct LinkStats {
    rtts: Mutex<VecDeque<(Instant, NodeId, Duration)>>,
    arrivals: Mutex<VecDeque<Instant>>,
}

fn push<T>(q: &Mutex<VecDeque<T>>, v: T) {
    let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= KEPT_SAMPLES {
        q.pop_front();
    }
    q.push_back(v);
}

impl LinkStats {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// An AppendEntries to `target` answered after `rtt` (a failed one is not recorded).
    pub fn record_rtt(&self, target: NodeId, rtt: Duration) {
        push(&self.rtts, (Instant::now(), target, rtt));
    }

    /// An AppendEntries arrived from the leader.
    pub fn record_arrival(&self) {
        push(&self.arrivals, Instant::now());
    }

    /// The round trips answered since `t`, oldest first: when, to whom, how long.
    pub fn rtts_since(&self, t: Instant) -> Vec<(Instant, NodeId, Duration)> {
        let q = self.rtts.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().filter(|(at, _, _)| *at >= t).copied().collect()
    }

    /// The arrivals since `t`, oldest first.
    pub fn arrivals_since(&self, t: Instant) -> Vec<Instant> {
        let q = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().filter(|at| **at >= t).copied().collect()
    }

    /// The last arrival, if any.
    pub fn last_arrival(&self) -> Option<Instant> {
        let q = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        q.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_samples_and_filters_by_time() {
        let s = LinkStats::new();
        for i in 0..(KEPT_SAMPLES + 10) {
            s.record_rtt(2, Duration::from_micros(i as u64));
        }
        let all = s.rtts_since(Instant::now() - Duration::from_secs(60));
        assert_eq!(all.len(), KEPT_SAMPLES);
        assert_eq!(all[0].2, Duration::from_micros(10));
        assert!(
            s.rtts_since(Instant::now() + Duration::from_secs(1))
                .is_empty()
        );
        assert!(s.last_arrival().is_none());
        s.record_arrival();
        assert!(s.last_arrival().is_some());
        assert_eq!(
            s.arrivals_since(Instant::now() - Duration::from_secs(1))
                .len(),
            1
        );
    }
}
