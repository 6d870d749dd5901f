//! Where the training rows come from.
//!
//! - [`traffic`]: a seeded workload admitted by the engine's real admission (`anomaly`,
//!   `ordering` rows);
//! - [`batch_sim`]: a documented simulation of block latency against batch size and
//!   contention (`batch_size` rows);
//! - [`arrivals`]: arrival-rate series drawn from the workload's arrival patterns
//!   (`demand` rows);
//! - [`telemetry`]: rows a node recorded, read from `aurigraph telemetry export` (CSV per
//!   slot), for training on real traffic (the shipped models do not use it).

pub mod arrivals;
pub mod batch_sim;
pub mod telemetry;
pub mod traffic;

pub use traffic::{AdmittedRow, Traffic};

use aurigraph_ledger::workload::WorkloadRng;
use rand::Rng;

/// The generator for `purpose` under `seed` (domain-separated, fixed forever).
pub fn rng(seed: u64, purpose: &str) -> WorkloadRng {
    WorkloadRng::derive(seed, &format!("training {purpose}"))
}

/// A standard normal draw (Box-Muller).
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A draw from a log-uniform distribution on `lo..hi` (both > 0).
pub fn log_uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// A Poisson draw with mean `lambda` (Knuth's method below 30, a rounded normal above).
pub fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    if lambda < 30.0 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u32, 1.0f64);
        loop {
            p *= rng.random::<f64>();
            if p <= l {
                return f64::from(k);
            }
            k += 1;
        }
    }
    (lambda + lambda.sqrt() * normal(rng)).round().max(0.0)
}
