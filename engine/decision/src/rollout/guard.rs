//! The rollout [`Guard`]: decides, after every observation, whether the candidate must go.
//!
//! Checking a fixed-sample test after every decision inflates false alarms: with enough
//! looks, noise crosses any fixed threshold. The guard therefore uses two *anytime-valid*
//! sequential procedures, whose error guarantees hold uniformly over time, so the host may
//! look after every single decision:
//!
//! 1. **Failure rate: a one-sided mixture SPRT (mSPRT).** Each candidate decision is a
//!    Bernoulli trial (1 = error, timeout, panic, trap or invalid output). Against the null
//!    `p <= p0` (`p0` = [`GuardConfig::max_failure_rate`], 1% by default) the guard tracks the
//!    mixture likelihood ratio
//!
//!    `Λ_n = Σ_j w_j (q_j/p0)^k ((1-q_j)/(1-p0))^(n-k)`
//!
//!    over a discrete prior of alternatives `q_j = p0·{1.5, 2, 3, 5, 10, 20, 50}` (equal
//!    weights, capped below 1). Every component is a non-negative supermartingale whenever
//!    the true rate is at most `p0` (because `q_j >= p0`), hence so is the mixture, and
//!    Ville's inequality bounds the chance that `Λ_n` *ever* reaches `1/α` by `α`. The guard
//!    alarms when `Λ_n >= 1/α` and at least [`GuardConfig::min_decisions`] decisions were seen,
//!    or, before that minimum, as soon as `Λ_n >= 1/α²`: evidence that conclusive (a false
//!    alarm at most `α²` likely) is overwhelming failure, e.g. a candidate that fails every
//!    call is rolled back after a handful of decisions instead of waiting for the minimum.
//!
//! 2. **Key metric regression: asymptotic confidence sequences** (Waudby-Smith, Arbour,
//!    Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic
//!    confidence sequences", 2021/2024). For each arm the guard keeps a running mean and
//!    variance and the time-uniform radius
//!
//!    `r_t = σ̂_t · sqrt( 2(tρ²+1)/(t²ρ²) · ln( sqrt(tρ²+1)/(α/2) ) )`,
//!
//!    with `ρ` tuned to be tightest at [`GuardConfig::metric_min_samples`]. Each arm's
//!    sequence covers its mean at level `α/2`, so the difference of the two sequences covers
//!    the difference of means at level `α` (union bound). The guard alarms when the
//!    candidate is worse than the baseline by more than the relative margin with that
//!    confidence: `lower(cand) - upper(base) > margin · |mean(base)|` (for a metric where
//!    higher is worse; mirrored otherwise).

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// Guard settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardConfig {
    /// Highest tolerated failure rate of the candidate (the null hypothesis), 0.01 = 1%.
    pub max_failure_rate: f64,
    /// Candidate decisions required before a failure-rate rollback on ordinary evidence
    /// (`Λ >= 1/α`); conclusive evidence (`Λ >= 1/α²`) rolls back before it. `u64::MAX`
    /// turns the failure-rate test off.
    pub min_decisions: u64,
    /// False-alarm probability of the failure-rate test over the whole rollout.
    pub failure_alpha: f64,
    /// Relative regression of the key metric that triggers a rollback (0.10 = 10% worse).
    pub metric_margin: f64,
    /// Observations required on each arm before a metric rollback.
    pub metric_min_samples: u64,
    /// False-alarm probability of the metric test over the whole rollout.
    pub metric_alpha: f64,
    /// Whether a higher key metric is worse (latency) or better (throughput).
    pub higher_is_worse: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_failure_rate: 0.01,
            min_decisions: 200,
            failure_alpha: 0.01,
            metric_margin: 0.10,
            metric_min_samples: 100,
            metric_alpha: 0.05,
            higher_is_worse: true,
        }
    }
}

impl GuardConfig {
    /// Checks the ranges of the settings.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::InvalidConfig(format!("guard: {m}")));
        if !(self.max_failure_rate > 0.0 && self.max_failure_rate < 0.5) {
            return bad("max_failure_rate must be in (0, 0.5)");
        }
        if !(self.failure_alpha > 0.0 && self.failure_alpha < 1.0) {
            return bad("failure_alpha must be in (0, 1)");
        }
        if !(self.metric_alpha > 0.0 && self.metric_alpha < 1.0) {
            return bad("metric_alpha must be in (0, 1)");
        }
        if !(self.metric_margin >= 0.0 && self.metric_margin.is_finite()) {
            return bad("metric_margin must be a finite number >= 0");
        }
        if self.metric_min_samples < 2 {
            return bad("metric_min_samples must be at least 2");
        }
        Ok(())
    }
}

/// Why the guard fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GuardAlarm {
    /// The failure rate is above the bound with confidence.
    FailureRate {
        /// Candidate decisions seen.
        decisions: u64,
        /// Failures among them.
        failures: u64,
        /// The mixture likelihood ratio when it crossed `1/α`.
        e_value: f64,
    },
    /// The key metric regressed beyond the margin with confidence.
    MetricRegression {
        /// Baseline mean.
        baseline_mean: f64,
        /// Candidate mean.
        candidate_mean: f64,
        /// Lower end of the confidence sequence for the regression (candidate worse by).
        regression_lower: f64,
    },
}

impl std::fmt::Display for GuardAlarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardAlarm::FailureRate {
                decisions,
                failures,
                e_value,
            } => write!(
                f,
                "failure rate {failures}/{decisions} exceeds the bound (e-value {e_value:.1})"
            ),
            GuardAlarm::MetricRegression {
                baseline_mean,
                candidate_mean,
                regression_lower,
            } => write!(
                f,
                "key metric regressed: candidate {candidate_mean:.4} vs baseline {baseline_mean:.4} (worse by at least {regression_lower:.4})"
            ),
        }
    }
}

/// Running mean and variance (Welford).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Adds one observation.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean (0 when empty).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample standard deviation (0 with fewer than two observations).
    pub fn std_dev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).max(0.0).sqrt()
        }
    }

    /// Radius of the asymptotic confidence sequence at level `alpha`, tuned for `t_star`.
    pub fn cs_radius(&self, alpha: f64, t_star: u64) -> f64 {
        if self.n < 2 {
            return f64::INFINITY;
        }
        let t = self.n as f64;
        let l = -2.0 * alpha.ln();
        let rho2 = (l + (l + 1.0).ln()) / t_star.max(1) as f64;
        let a = t * rho2 + 1.0;
        let inner = (2.0 * a / (t * t * rho2)) * (a.sqrt() / alpha).ln();
        self.std_dev() * inner.max(0.0).sqrt()
    }
}

/// Comparison of the key metric between the arms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// Baseline observations and mean.
    pub baseline_n: u64,
    /// Baseline mean.
    pub baseline_mean: f64,
    /// Candidate observations.
    pub candidate_n: u64,
    /// Candidate mean.
    pub candidate_mean: f64,
    /// Confidence sequence for `candidate - baseline` (anytime-valid at `metric_alpha`).
    pub diff_lower: f64,
    /// Upper end of that sequence.
    pub diff_upper: f64,
}

/// What the guard knows, for status pages and the APIs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardSnapshot {
    /// Candidate decisions seen since the candidate was loaded.
    pub decisions: u64,
    /// Failures among them.
    pub failures: u64,
    /// Observed failure rate.
    pub failure_rate: f64,
    /// Current mixture likelihood ratio of the failure test (alarm at `1/α`).
    pub failure_e_value: f64,
    /// Key metric comparison, once both arms have observations.
    pub metric: Option<MetricComparison>,
    /// The alarm, once fired.
    pub alarm: Option<GuardAlarm>,
}

const MIXTURE_MULTIPLIERS: [f64; 7] = [1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0];

/// The guard of one candidate. See the module docs for the statistics.
#[derive(Clone, Debug)]
pub struct Guard {
    config: GuardConfig,
    /// `(ln(q/p0), ln((1-q)/(1-p0)))` per mixture component.
    components: Vec<(f64, f64)>,
    log_weight: f64,
    decisions: u64,
    failures: u64,
    baseline: Moments,
    candidate: Moments,
    alarm: Option<GuardAlarm>,
}

impl Guard {
    /// A fresh guard. The config must be valid ([`GuardConfig::validate`]).
    pub fn new(config: GuardConfig) -> Self {
        let p0 = config.max_failure_rate;
        let mut qs: Vec<f64> = MIXTURE_MULTIPLIERS
            .iter()
            .map(|m| (p0 * m).min(0.999))
            .collect();
        qs.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
        let components = qs
            .iter()
            .map(|&q| ((q / p0).ln(), ((1.0 - q) / (1.0 - p0)).ln()))
            .collect::<Vec<_>>();
        let log_weight = -(components.len() as f64).ln();
        Self {
            config,
            components,
            log_weight,
            decisions: 0,
            failures: 0,
            baseline: Moments::default(),
            candidate: Moments::default(),
            alarm: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The alarm, if it has fired. Once fired it stays.
    pub fn alarm(&self) -> Option<&GuardAlarm> {
        self.alarm.as_ref()
    }

    /// Candidate decisions seen.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// `ln Λ_n` of the failure-rate test.
    pub fn failure_log_e_value(&self) -> f64 {
        let (n, k) = (self.decisions as f64, self.failures as f64);
        let terms = self
            .components
            .iter()
            .map(|&(lf, ls)| self.log_weight + k * lf + (n - k) * ls);
        log_sum_exp(terms)
    }

    /// Records one candidate decision; returns the alarm if this observation fired it.
    pub fn record_decision(&mut self, failed: bool) -> Option<GuardAlarm> {
        self.decisions += 1;
        if failed {
            self.failures += 1;
        }
        if self.alarm.is_some() || self.config.min_decisions == u64::MAX {
            return None;
        }
        // Λ only grows on a failure, so it can newly cross a threshold only on a failure
        // or on the decision that reaches the minimum count.
        if !failed && self.decisions != self.config.min_decisions {
            return None;
        }
        let log_e = self.failure_log_e_value();
        let threshold = -self.config.failure_alpha.ln();
        // Before the minimum, only conclusive evidence (Λ >= 1/α²) fires.
        let needed = if self.decisions < self.config.min_decisions {
            2.0 * threshold
        } else {
            threshold
        };
        if log_e >= needed {
            let alarm = GuardAlarm::FailureRate {
                decisions: self.decisions,
                failures: self.failures,
                e_value: log_e.exp(),
            };
            self.alarm = Some(alarm.clone());
            return Some(alarm);
        }
        None
    }

    /// Records one observation of the key metric for an arm (`candidate = true` for the
    /// candidate); returns the alarm if this observation fired it. Non-finite values are
    /// ignored.
    pub fn record_metric(&mut self, candidate: bool, value: f64) -> Option<GuardAlarm> {
        if !value.is_finite() {
            return None;
        }
        if candidate {
            self.candidate.push(value);
        } else {
            self.baseline.push(value);
        }
        if self.alarm.is_some() {
            return None;
        }
        let cmp = self.metric_comparison()?;
        let min = self.config.metric_min_samples;
        if cmp.baseline_n < min || cmp.candidate_n < min {
            return None;
        }
        let allowed = self.config.metric_margin * cmp.baseline_mean.abs();
        let regression_lower = if self.config.higher_is_worse {
            cmp.diff_lower
        } else {
            -cmp.diff_upper
        };
        if regression_lower > allowed {
            let alarm = GuardAlarm::MetricRegression {
                baseline_mean: cmp.baseline_mean,
                candidate_mean: cmp.candidate_mean,
                regression_lower,
            };
            self.alarm = Some(alarm.clone());
            return Some(alarm);
        }
        None
    }

    fn metric_comparison(&self) -> Option<MetricComparison> {
        if self.baseline.count() < 2 || self.candidate.count() < 2 {
            return None;
        }
        let a = self.config.metric_alpha / 2.0;
        let t_star = self.config.metric_min_samples;
        let rb = self.baseline.cs_radius(a, t_star);
        let rc = self.candidate.cs_radius(a, t_star);
        let diff = self.candidate.mean() - self.baseline.mean();
        Some(MetricComparison {
            baseline_n: self.baseline.count(),
            baseline_mean: self.baseline.mean(),
            candidate_n: self.candidate.count(),
            candidate_mean: self.candidate.mean(),
            diff_lower: diff - rb - rc,
            diff_upper: diff + rb + rc,
        })
    }

    /// A snapshot for status pages.
    pub fn snapshot(&self) -> GuardSnapshot {
        GuardSnapshot {
            decisions: self.decisions,
            failures: self.failures,
            failure_rate: if self.decisions == 0 {
                0.0
            } else {
                self.failures as f64 / self.decisions as f64
            },
            failure_e_value: self.failure_log_e_value().exp(),
            metric: self.metric_comparison(),
            alarm: self.alarm.clone(),
        }
    }
}

fn log_sum_exp(terms: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = terms.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.map(|t| (t - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn run_failures(rate: f64, n: u64, seed: u64) -> Option<u64> {
        let mut g = Guard::new(GuardConfig::default());
        let mut rng = SmallRng::seed_from_u64(seed);
        for i in 0..n {
            if g.record_decision(rng.random_bool(rate)).is_some() {
                return Some(i + 1);
            }
        }
        None
    }

    #[test]
    fn always_failing_candidate_is_caught_within_a_handful_of_decisions() {
        let at = run_failures(1.0, 10_000, 1).expect("alarm");
        assert!(at <= 5, "fired at {at}");
        // Mostly failing, too, well before the minimum.
        let at = run_failures(0.5, 10_000, 2).expect("alarm");
        assert!(
            at < GuardConfig::default().min_decisions / 2,
            "fired at {at}"
        );
    }

    #[test]
    fn before_the_minimum_only_conclusive_evidence_fires() {
        // Two failures among the first few decisions are far above 1% but not conclusive.
        let mut g = Guard::new(GuardConfig::default());
        assert!(g.record_decision(true).is_none());
        assert!(g.record_decision(false).is_none());
        assert!(g.record_decision(true).is_none());
        // Λ is past 1/α (it would fire after the minimum) but short of 1/α².
        let t = -GuardConfig::default().failure_alpha.ln();
        let log_e = g.failure_log_e_value();
        assert!(log_e >= t && log_e < 2.0 * t, "log Λ = {log_e}");
    }

    #[test]
    fn five_percent_failures_are_caught_quickly() {
        for seed in 0..20 {
            let at = run_failures(0.05, 5_000, seed).expect("a 5% failure rate must fire");
            assert!(at <= 1_500, "seed {seed}: fired only at {at}");
        }
    }

    #[test]
    fn checking_after_every_decision_keeps_false_alarms_below_alpha() {
        // At the boundary of the null (exactly 1% failures), looking after every one of
        // 20,000 decisions, the alarm must fire in at most ~α of runs (α = 1%).
        let runs = 300;
        let alarms = (0..runs)
            .filter(|&s| run_failures(0.01, 20_000, 1000 + s).is_some())
            .count();
        assert!(
            alarms <= 9,
            "{alarms}/{runs} false alarms at the null boundary"
        );
        // A healthy candidate far below the bound never fires.
        let healthy = (0..100)
            .filter(|&s| run_failures(0.001, 20_000, 5000 + s).is_some())
            .count();
        assert_eq!(healthy, 0);
    }

    #[test]
    fn metric_regression_fires_and_equal_arms_do_not() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut g = Guard::new(GuardConfig::default());
        let mut fired = None;
        for i in 0..5_000 {
            let base = 10.0 + rng.random_range(-1.0..1.0);
            let cand = 13.0 + rng.random_range(-1.0..1.0);
            g.record_metric(false, base);
            if let Some(a) = g.record_metric(true, cand) {
                fired = Some((i, a));
                break;
            }
        }
        let (at, alarm) = fired.expect("a 30% regression must fire");
        assert!(at < 500, "fired late: {at}");
        assert!(matches!(alarm, GuardAlarm::MetricRegression { .. }));

        let mut false_alarms = 0;
        for seed in 0..50 {
            let mut rng = SmallRng::seed_from_u64(100 + seed);
            let mut g = Guard::new(GuardConfig::default());
            for _ in 0..3_000 {
                g.record_metric(false, 10.0 + rng.random_range(-3.0..3.0));
                // 5% worse: inside the 10% margin.
                if g.record_metric(true, 10.5 + rng.random_range(-3.0..3.0))
                    .is_some()
                {
                    false_alarms += 1;
                    break;
                }
            }
        }
        assert_eq!(false_alarms, 0, "a regression inside the margin fired");
    }

    #[test]
    fn lower_is_worse_metrics_are_mirrored() {
        let cfg = GuardConfig {
            higher_is_worse: false,
            ..GuardConfig::default()
        };
        let mut g = Guard::new(cfg);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut fired = false;
        for _ in 0..2_000 {
            g.record_metric(false, 1000.0 + rng.random_range(-50.0..50.0));
            if g.record_metric(true, 700.0 + rng.random_range(-50.0..50.0))
                .is_some()
            {
                fired = true;
                break;
            }
        }
        assert!(fired, "a 30% throughput drop must fire");
    }

    #[test]
    fn config_validation() {
        assert!(GuardConfig::default().validate().is_ok());
        let bad = GuardConfig {
            max_failure_rate: 0.0,
            ..GuardConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().code(), "E_INVALID_CONFIG");
    }
}
