//! The statistics of the A/B harness: percentiles, the B/A ratio with its confidence
//! interval, and the verdict.
//!
//! ## The ratio and its interval
//!
//! Each round runs the same chunk of the workload through both arms, back to back, so a
//! round gives one paired ratio `r_i = B_i / A_i` (of TPS, of p99 latency) in which the
//! machine's drift during that round cancels out. The ratios are analysed on the log scale,
//! where a ratio and its inverse are symmetric:
//!
//! - **point estimate**: the geometric mean `exp(mean(ln r_i))`;
//! - **interval (the one the verdict uses)**: Student's t-interval on `ln r_i`,
//!   `exp(mean ± t(0.975, n-1) · sd / sqrt(n))`, 95% two-sided. With one round there is no
//!   interval (it is unbounded) and the verdict is inconclusive;
//! - **also reported**: a bootstrap percentile interval (10,000 resamples of the rounds,
//!   seeded, so the report is reproducible) of the same geometric mean. With few rounds it
//!   is too narrow (with 2 rounds it is just the span of the two ratios), which is why the
//!   verdict uses the t-interval.
//!
//! ## The verdict
//!
//! For a metric where higher is better (TPS), B is `better` when the interval's lower bound
//! is above 1, `worse` when its upper bound is below 1, otherwise `inconclusive`; for a
//! metric where lower is better (latency) the other way round. The overall verdict is
//! `better` when at least one metric is better and none worse, `worse` when at least one is
//! worse and none better, and `inconclusive` otherwise (mixed results included).

use serde::Serialize;

/// The `q` quantile (0..=1) of sorted values, linearly interpolated between closest ranks;
/// 0 for no values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            let frac = pos - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Mean; 0 for no values.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Sample standard deviation (n - 1); 0 below two values.
pub fn std_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    v.sqrt()
}

/// The 0.975 quantile of Student's t distribution with `df` degrees of freedom (for a 95%
/// two-sided interval). Exact table to 30, then the Cornish-Fisher expansion around the
/// normal quantile (error below 1e-4). `df` 0 gives infinity.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let z: f64 = 1.959_964;
            let n = df as f64;
            let z3 = z.powi(3);
            let z5 = z.powi(5);
            z + (z3 + z) / (4.0 * n) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// A B/A ratio with its 95% confidence interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatioCi {
    /// Geometric mean of the per-round ratios.
    pub ratio: f64,
    /// Lower bound of the t-interval on log ratios (0 when unbounded).
    pub lo: f64,
    /// Upper bound of the t-interval on log ratios (infinity when unbounded; JSON `null`).
    pub hi: f64,
    /// Lower bound of the bootstrap percentile interval.
    pub bootstrap_lo: f64,
    /// Upper bound of the bootstrap percentile interval.
    pub bootstrap_hi: f64,
    /// The per-round ratios it was computed from.
    pub per_round: Vec<f64>,
    /// How the interval (`lo`, `hi`) was computed.
    pub method: &'static str,
}

/// The interval method of [`RatioCi::lo`] and [`RatioCi::hi`].
pub const CI_METHOD: &str = "95% Student t-interval on the log of per-round B/A ratios";

impl RatioCi {
    /// From per-round ratios (each `B_i / A_i`, finite and positive; others are dropped).
    /// `seed` seeds the bootstrap.
    pub fn from_ratios(ratios: &[f64], seed: u64) -> Self {
        let ratios: Vec<f64> = ratios
            .iter()
            .copied()
            .filter(|r| r.is_finite() && *r > 0.0)
            .collect();
        let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
        let n = logs.len();
        if n == 0 {
            return Self {
                ratio: f64::NAN,
                lo: 0.0,
                hi: f64::INFINITY,
                bootstrap_lo: 0.0,
                bootstrap_hi: f64::INFINITY,
                per_round: ratios,
                method: CI_METHOD,
            };
        }
        let m = mean(&logs);
        let (lo, hi) = if n < 2 {
            (0.0, f64::INFINITY)
        } else {
            let half = t_975(n - 1) * std_dev(&logs) / (n as f64).sqrt();
            ((m - half).exp(), (m + half).exp())
        };
        let (bootstrap_lo, bootstrap_hi) = bootstrap_log_mean(&logs, 10_000, seed);
        Self {
            ratio: m.exp(),
            lo,
            hi,
            bootstrap_lo,
            bootstrap_hi,
            per_round: ratios,
            method: CI_METHOD,
        }
    }

    /// Whether the interval contains 1.
    pub fn contains_one(&self) -> bool {
        self.lo <= 1.0 && 1.0 <= self.hi
    }

    /// The verdict for B on this metric.
    pub fn verdict(&self, direction: Direction) -> Verdict {
        if !(self.lo.is_finite() && self.hi.is_finite()) || self.contains_one() {
            return Verdict::Inconclusive;
        }
        let b_higher = self.lo > 1.0;
        match (direction, b_higher) {
            (Direction::HigherIsBetter, true) | (Direction::LowerIsBetter, false) => {
                Verdict::Better
            }
            _ => Verdict::Worse,
        }
    }
}

/// The bootstrap percentile interval (2.5%, 97.5%) of `exp(mean(logs))`: `iterations`
/// resamples with replacement, drawn by a seeded SplitMix64.
pub fn bootstrap_log_mean(logs: &[f64], iterations: usize, seed: u64) -> (f64, f64) {
    let n = logs.len();
    if n == 0 {
        return (0.0, f64::INFINITY);
    }
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut means: Vec<f64> = (0..iterations.max(1))
        .map(|_| {
            let s: f64 = (0..n).map(|_| logs[(next() % n as u64) as usize]).sum();
            s / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (
        percentile(&means, 0.025).exp(),
        percentile(&means, 0.975).exp(),
    )
}

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// More is better (throughput).
    HigherIsBetter,
    /// Less is better (latency).
    LowerIsBetter,
}

/// B against A.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B is better with 95% confidence.
    Better,
    /// B is worse with 95% confidence.
    Worse,
    /// The interval contains 1 (or the metrics disagree).
    Inconclusive,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The overall verdict of several metrics (see the module docs).
    pub fn combine(verdicts: &[Verdict]) -> Verdict {
        let better = verdicts.contains(&Verdict::Better);
        let worse = verdicts.contains(&Verdict::Worse);
        match (better, worse) {
            (true, false) => Verdict::Better,
            (false, true) => Verdict::Worse,
            _ => Verdict::Inconclusive,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&xs, 0.0), 1.0);
        assert_eq!(percentile(&xs, 0.5), 3.0);
        assert_eq!(percentile(&xs, 1.0), 5.0);
        assert!((percentile(&xs, 0.9) - 4.6).abs() < 1e-12);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(9), 2.262);
        // Beyond the table the expansion agrees with published values.
        assert!((t_975(40) - 2.021).abs() < 1e-3);
        assert!((t_975(120) - 1.980).abs() < 1e-3);
        assert!(t_975(0).is_infinite());
    }

    /// A known case: ln ratios 0.1, 0.2, 0.3, 0.4, 0.5 have mean 0.3 and sd 0.158114; the
    /// 95% t-interval (t = 2.776 for 4 df) is 0.3 ± 0.196293, so the ratio is e^0.3 with
    /// bounds e^0.103707 and e^0.496293.
    #[test]
    fn t_interval_known_case() {
        let ratios: Vec<f64> = [0.1f64, 0.2, 0.3, 0.4, 0.5]
            .iter()
            .map(|l| l.exp())
            .collect();
        let ci = RatioCi::from_ratios(&ratios, 1);
        assert!((ci.ratio - 0.3f64.exp()).abs() < 1e-9);
        let half = 2.776 * 0.158_113_883 / 5f64.sqrt();
        assert!((half - 0.196_293).abs() < 1e-5);
        assert!((ci.lo - (0.3 - half).exp()).abs() < 1e-9);
        assert!((ci.hi - (0.3 + half).exp()).abs() < 1e-9);
        assert!(!ci.contains_one());
        assert_eq!(ci.verdict(Direction::HigherIsBetter), Verdict::Better);
        assert_eq!(ci.verdict(Direction::LowerIsBetter), Verdict::Worse);
        // The bootstrap interval lies within the resampled extremes and around the mean.
        assert!(ci.bootstrap_lo >= 0.1f64.exp() - 1e-12);
        assert!(ci.bootstrap_hi <= 0.5f64.exp() + 1e-12);
        assert!(ci.bootstrap_lo < ci.ratio && ci.ratio < ci.bootstrap_hi);
        // Reproducible.
        assert_eq!(ci, RatioCi::from_ratios(&ratios, 1));
    }

    #[test]
    fn symmetric_ratios_are_inconclusive() {
        let ci = RatioCi::from_ratios(&[0.9, 1.0 / 0.9, 0.95, 1.0 / 0.95], 3);
        assert!((ci.ratio - 1.0).abs() < 1e-12);
        assert!(ci.contains_one());
        assert_eq!(ci.verdict(Direction::HigherIsBetter), Verdict::Inconclusive);
        // One round: no interval.
        let one = RatioCi::from_ratios(&[2.0], 3);
        assert!(one.hi.is_infinite());
        assert_eq!(
            one.verdict(Direction::HigherIsBetter),
            Verdict::Inconclusive
        );
        // Non-finite ratios are dropped.
        let none = RatioCi::from_ratios(&[f64::NAN, 0.0], 3);
        assert!(none.per_round.is_empty());
        assert_eq!(
            none.verdict(Direction::LowerIsBetter),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn verdicts_combine() {
        use Verdict::*;
        assert_eq!(Verdict::combine(&[Better, Inconclusive]), Better);
        assert_eq!(Verdict::combine(&[Worse, Inconclusive]), Worse);
        assert_eq!(Verdict::combine(&[Better, Worse]), Inconclusive);
        assert_eq!(
            Verdict::combine(&[Inconclusive, Inconclusive]),
            Inconclusive
        );
    }
}
