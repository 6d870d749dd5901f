//! [`SenderActivity`]: each sender's recent submission rate and age, for the `anomaly`
//! features.
//!
//! The rate is an exponentially decaying count: on each transaction
//! `count = count * exp(-dt / window) + 1` and `rate = count / window` (tx/s). A sender
//! submitting steadily at `r` tx/s reads about `r`; a burst of `k` transactions reads
//! `k / window` at once, without waiting for the window to pass.
//!
//! [`SenderActivity::record`] also says whether this rate should be folded into the
//! population statistics: with probability `1 / count`, decided by the caller's uniform
//! `u` (admission takes it from the transaction hash, so the choice is deterministic). A
//! sender then contributes about one sample per window however much it sends: the
//! population of rates is sender-weighted, so a flood from a few senders (spam at 20% of
//! all traffic, say) cannot drag the mean and spread it is measured against up to its own
//! level and hide.
//!
//! Memory is bounded: above
//! `capacity` senders, the quietest ones are forgotten (their rate is about 0 anyway; their
//! age restarts).

use std::collections::HashMap;

use crate::tx::Address;

#[derive(Clone, Copy, Debug)]
struct Entry {
    count: f64,
    last: f64,
    first_seen: f64,
}

/// What [`SenderActivity::record`] learned about one transaction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Observation {
    /// Rate in tx/s, this transaction included.
    pub rate: f64,
    /// Seconds since the sender was first seen (0 for a new sender).
    pub age: f64,
    /// Whether to fold `rate` into the population statistics (about once per sender per
    /// window).
    pub fold: bool,
}

/// Per-sender decaying counts. Times are seconds on the admission clock.
#[derive(Debug)]
pub(crate) struct SenderActivity {
    entries: HashMap<Address, Entry>,
    window: f64,
    capacity: usize,
}

impl SenderActivity {
    /// `window` in seconds (> 0), `capacity` senders (>= 1).
    pub(crate) fn new(window: f64, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    /// Counts one transaction of `sender` at `now`; `u` in `0..1` decides the fold.
    pub(crate) fn record(&mut self, sender: Address, now: f64, u: f64) -> Observation {
        if !self.entries.contains_key(&sender) && self.entries.len() >= self.capacity {
            self.evict(now);
        }
        let window = self.window;
        let e = self.entries.entry(sender).or_insert(Entry {
            count: 0.0,
            last: now,
            first_seen: now,
        });
        let dt = (now - e.last).max(0.0);
        e.count = e.count * (-dt / window).exp() + 1.0;
        e.last = e.last.max(now);
        let fold = u * e.count < 1.0;
        Observation {
            rate: e.count / window,
            age: (now - e.first_seen).max(0.0),
            fold,
        }
    }

    /// Forgets the quieter half (at least) of the senders.
    fn evict(&mut self, now: f64) {
        let window = self.window;
        let decayed = |e: &Entry| e.count * (-(now - e.last).max(0.0) / window).exp();
        let mut counts: Vec<f64> = self.entries.values().map(decayed).collect();
        let mid = counts.len() / 2;
        let (_, &mut cut, _) = counts.select_nth_unstable_by(mid, f64::total_cmp);
        // Strictly above the median: at most half stay (none when all are equally quiet).
        self.entries.retain(|_, e| decayed(e) > cut);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_and_burst_rates() {
        let mut a = SenderActivity::new(10.0, 100);
        let s = Address([1; 32]);
        let mut rate = 0.0;
        for i in 0..200 {
            rate = a.record(s, f64::from(i) * 0.5, 0.5).rate;
        }
        assert!((rate - 2.0).abs() < 0.15, "{rate}");
        let b = Address([2; 32]);
        let first = a.record(b, 100.0, 0.99);
        assert!((first.rate - 0.1).abs() < 1e-9);
        assert_eq!(first.age, 0.0);
        assert!(first.fold);
        let mut r = 0.0;
        let mut folds = 1;
        for i in 0..49 {
            let u = (f64::from(i + 1) * 0.618_033_988_75).fract();
            let o = a.record(b, 100.0, u);
            folds += usize::from(o.fold);
            r = o.rate;
        }
        assert!((r - 5.0).abs() < 1e-9, "{r}");
        // Sum of 1/count over 50: about ln 50 + 0.58, not 50.
        assert!((2..=9).contains(&folds), "{folds}");
        assert_eq!(a.record(b, 103.0, 0.5).age, 3.0);
    }

    #[test]
    fn bounded() {
        let mut a = SenderActivity::new(10.0, 8);
        let loud = Address([0; 32]);
        for _ in 0..20 {
            a.record(loud, 0.0, 0.5);
        }
        for i in 1..=100u8 {
            a.record(Address([i; 32]), 0.0, 0.5);
            assert!(a.len() <= 8);
        }
        // The loud sender survives eviction.
        let r = a.record(loud, 0.0, 0.5).rate;
        assert!(r > 2.0, "{r}");
    }
}
