//! Arrival-rate series for the `demand` slot, drawn from the workload generator's arrival
//! patterns ([`Arrival`]: steady, diurnal, bursts).
//!
//! Each series picks a pattern with randomised parameters around the workload presets
//! (`uniform`, `diurnal`, `bursty`): a mean rate log-uniform in 100..5,000 tx/s; diurnal
//! amplitude 0.2..0.9 and period 30..120 intervals; bursts 3..10 times the base rate, 1..3
//! intervals long every 6..20 intervals, with a random phase. The rate of interval `k` is the
//! number of arrivals of a Poisson process with the pattern's rate over the interval (1 s),
//! so the series carries the same counting noise the node measures.

use std::time::Duration;

use aurigraph_ledger::workload::Arrival;
use rand::Rng;

use super::{log_uniform, poisson, rng};

/// Length of one interval, in seconds.
pub const INTERVAL_S: f64 = 1.0;

/// A random arrival pattern (see the module docs).
pub fn random_pattern<R: Rng + ?Sized>(rng: &mut R) -> Arrival {
    let mean = log_uniform(rng, 100.0, 5_000.0);
    match rng.random_range(0..3) {
        0 => Arrival::Steady { rate: mean },
        1 => Arrival::Diurnal {
            mean,
            amplitude: rng.random_range(0.2..0.9),
            period: Duration::from_secs_f64(rng.random_range(30.0..120.0) * INTERVAL_S),
        },
        _ => {
            let every = rng.random_range(6..=20) as f64;
            Arrival::Bursts {
                base: mean,
                burst_rate: mean * rng.random_range(3.0..10.0),
                burst_len: Duration::from_secs_f64(rng.random_range(1..=3) as f64 * INTERVAL_S),
                every: Duration::from_secs_f64(every * INTERVAL_S),
            }
        }
    }
}

/// `count` series of `len` intervals each (tx/s per interval), from `seed`.
pub fn series(seed: u64, count: usize, len: usize) -> Vec<Vec<f64>> {
    let mut r = rng(seed, "demand series");
    (0..count)
        .map(|_| {
            let pattern = random_pattern(&mut r);
            let phase = r.random_range(0.0..1_000.0);
            (0..len)
                .map(|k| {
                    // Mean rate over the interval, from 8 sub-steps (bursts start mid-interval).
                    let t0 = phase + k as f64 * INTERVAL_S;
                    let mean = (0..8)
                        .map(|s| pattern.rate_at(t0 + (s as f64 + 0.5) * INTERVAL_S / 8.0))
                        .sum::<f64>()
                        / 8.0;
                    poisson(&mut r, mean * INTERVAL_S) / INTERVAL_S
                })
                .collect()
        })
        .collect()
}

/// Length of one `seasonal-demand` series, in intervals (a little over two weeks of 60 s
/// days, so every series holds its trend change and its launch spike).
pub const SEASONAL_LEN: usize = 900;

/// The `seasonal-demand` preset's arrival rate with `seed` over [`SEASONAL_LEN`] intervals
/// (`Arrival::mean_rates`, the ground truth), with the Poisson counting noise the node
/// measures: `(noisy, truth)`.
pub fn seasonal_series(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let pattern = aurigraph_ledger::workload::Preset::SeasonalDemand
        .config(seed)
        .arrival;
    let truth = pattern.mean_rates(Duration::from_secs_f64(INTERVAL_S), SEASONAL_LEN);
    let mut r = rng(seed, "seasonal demand series");
    let noisy = truth
        .iter()
        .map(|&m| poisson(&mut r, m * INTERVAL_S) / INTERVAL_S)
        .collect();
    (noisy, truth)
}
