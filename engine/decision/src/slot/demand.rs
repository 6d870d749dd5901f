//! The `demand` slot: forecasts the transaction arrival rate for the next intervals; the
//! forecast feeds batch sizing and scaling advice.
//!
//! Input is one row with the arrival rate of the last [`WINDOW`] intervals, oldest first
//! (`f32[1, 32]`, columns `rate_t_minus_31` .. `rate_t_minus_0`, see [`DemandWindow`]), output
//! the forecast for the next [`HORIZON`] intervals, nearest first (`f32[1, 8]`), in tx/s and
//! in `0..=1e9` ([`FORECAST_MAX`]).
//!
//! # Static policy: Holt (double exponential) smoothing
//!
//! [`Holt`] tracks a level `l` and a trend `b` (tx/s per interval) over the window:
//!
//! ```text
//! l_0 = y_0,  b_0 = y_1 - y_0
//! l_t = alpha * y_t + (1 - alpha) * (l_{t-1} + b_{t-1})
//! b_t = beta * (l_t - l_{t-1}) + (1 - beta) * b_{t-1}
//! forecast(h) = clamp(l + h * b, 0, FORECAST_MAX)   for h = 1..=HORIZON
//! ```
//!
//! `alpha` (default 0.5) sets how fast the level follows new values, `beta` (default 0.3) how
//! fast the trend does. A linear ramp is forecast exactly (the level and trend lock onto it
//! from the first two values), a constant series as the same constant, and a falling series
//! never goes below 0. The arithmetic runs in `f64`. A non-finite value in the window (which
//! input validation rejects anyway) is replaced by the one-step forecast, i.e. carries no
//! information; a window with no finite value at all forecasts 0.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Feature, OutputLen, OutputSpec, Rows, SlotContract, SlotKind};
use crate::error::EngineError;
use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};

/// Number of past intervals in the input row.
pub const WINDOW: usize = 32;
/// Number of future intervals forecast.
pub const HORIZON: usize = 8;
/// Largest forecast a policy may answer, in tx/s.
pub const FORECAST_MAX: f32 = 1e9;

/// Name of column `i` (0 = oldest): `rate_t_minus_{WINDOW - 1 - i}`.
pub fn feature_name(column: usize) -> String {
    format!(
        "rate_t_minus_{}",
        WINDOW.saturating_sub(1).saturating_sub(column)
    )
}

/// The `demand` slot's contract, schema version 1.
pub(crate) fn contract() -> SlotContract {
    let features = (0..WINDOW)
        .map(|i| {
            let ago = WINDOW - 1 - i;
            let when = match ago {
                0 => "the latest completed interval".to_string(),
                1 => "the interval before the latest".to_string(),
                n => format!("{n} intervals before the latest"),
            };
            Feature::new(
                feature_name(i),
                "tx/s",
                format!("Mean transaction arrival rate during {when}."),
            )
        })
        .collect();
    SlotContract {
        slot: SlotKind::Demand,
        schema_version: 1,
        description: "Forecasts the transaction arrival rate for the next intervals.",
        called: "once per interval",
        rows: Rows::Single,
        features,
        output: OutputSpec {
            name: "forecast_rate",
            len: OutputLen::Fixed(HORIZON),
            min: 0.0,
            max: FORECAST_MAX,
            unit: "tx/s",
            meaning: "Forecast mean arrival rate for each of the next 8 intervals, nearest \
                      first; feeds batch sizing and scaling advice.",
        },
        default_deadline: Duration::from_millis(10),
    }
}

/// The `demand` input: arrival rates of the last [`WINDOW`] intervals, oldest first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemandWindow {
    /// `rates[0]` is the oldest interval (`rate_t_minus_31`), `rates[WINDOW - 1]` the latest
    /// (`rate_t_minus_0`), in tx/s.
    pub rates: [f32; WINDOW],
}

impl Default for DemandWindow {
    fn default() -> Self {
        Self {
            rates: [0.0; WINDOW],
        }
    }
}

impl DemandWindow {
    /// The window from a history of rates, oldest first, of any length: the last [`WINDOW`]
    /// values are kept; a shorter history (a node that just started) is padded at the old end
    /// with its oldest value, or with 0 when it is empty.
    pub fn from_recent(history: &[f32]) -> Self {
        let kept = &history[history.len().saturating_sub(WINDOW)..];
        let pad = kept.first().copied().unwrap_or(0.0);
        let mut rates = [pad; WINDOW];
        rates[WINDOW - kept.len()..].copy_from_slice(kept);
        Self { rates }
    }

    /// The rate `ago` intervals before the latest (0 = latest), or `None` past the window.
    pub fn rate_t_minus(&self, ago: usize) -> Option<f32> {
        WINDOW.checked_sub(ago + 1).map(|i| self.rates[i])
    }

    /// The row in the contract's column order.
    pub fn to_row(&self) -> [f32; WINDOW] {
        self.rates
    }

    /// Reads a row laid out in the contract's column order; `None` unless it has exactly
    /// [`WINDOW`] values.
    pub fn from_row(row: &[f32]) -> Option<Self> {
        Some(Self {
            rates: row.try_into().ok()?,
        })
    }

    /// The slot's `f32[1, WINDOW]` input.
    pub fn matrix(&self) -> FeatureMatrix {
        FeatureMatrix::new(1, WINDOW, self.rates.to_vec())
            .expect("1 x WINDOW values by construction")
    }
}

/// Parameters of [`Holt`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoltParams {
    /// Level smoothing factor, in `(0, 1]`. Default 0.5.
    pub alpha: f64,
    /// Trend smoothing factor, in `[0, 1]`. Default 0.3.
    pub beta: f64,
}

impl Default for HoltParams {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            beta: 0.3,
        }
    }
}

impl HoltParams {
    /// Checks `0 < alpha <= 1` and `0 <= beta <= 1`.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.alpha > 0.0 && self.alpha <= 1.0 && (0.0..=1.0).contains(&self.beta) {
            Ok(())
        } else {
            Err(EngineError::InvalidConfig(format!(
                "holt: alpha must be in (0, 1] and beta in [0, 1], got alpha {} beta {}",
                self.alpha, self.beta
            )))
        }
    }
}

/// Static `demand` policy: Holt double exponential smoothing. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Holt {
    info: PolicyInfo,
    params: HoltParams,
}

impl Default for Holt {
    fn default() -> Self {
        Self::build(HoltParams::default())
    }
}

impl Holt {
    /// Holt smoothing with the given factors, refused with [`EngineError::InvalidConfig`] when
    /// [`HoltParams::validate`] fails.
    pub fn with_params(params: HoltParams) -> Result<Self, EngineError> {
        params.validate()?;
        Ok(Self::build(params))
    }

    fn build(params: HoltParams) -> Self {
        Self {
            info: PolicyInfo {
                name: "holt".to_string(),
                version: "1".to_string(),
                backend: BackendKind::Static,
                slot: SlotKind::Demand,
                schema_version: 1,
            },
            params,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &HoltParams {
        &self.params
    }

    /// The final `(level, trend)` after smoothing `series` (oldest first), or `None` when it
    /// holds no finite value.
    pub fn smooth(&self, series: &[f32]) -> Option<(f64, f64)> {
        let HoltParams { alpha, beta } = self.params;
        let start = series.iter().position(|v| v.is_finite())?;
        let mut level = f64::from(series[start]);
        let mut trend = 0.0f64;
        let mut trend_known = false;
        for &y in &series[start + 1..] {
            let y = if y.is_finite() {
                f64::from(y)
            } else {
                level + trend
            };
            if !trend_known {
                trend = y - level;
                trend_known = true;
            }
            let prev = level;
            level = alpha * y + (1.0 - alpha) * (level + trend);
            trend = beta * (level - prev) + (1.0 - beta) * trend;
        }
        Some((level, trend))
    }

    /// The forecast for the next [`HORIZON`] intervals after `series` (oldest first, any
    /// length), nearest first, each in `0..=FORECAST_MAX`.
    pub fn forecast(&self, series: &[f32]) -> [f32; HORIZON] {
        let mut out = [0.0f32; HORIZON];
        if let Some((level, trend)) = self.smooth(series) {
            for (h, o) in out.iter_mut().enumerate() {
                let v = level + (h + 1) as f64 * trend;
                *o = if v.is_nan() {
                    0.0
                } else {
                    v.clamp(0.0, f64::from(FORECAST_MAX)) as f32
                };
            }
        }
        out
    }
}

impl Policy for Holt {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, _deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        if input.rows() != 1 || input.cols() != WINDOW {
            return Err(PolicyError::Failed(format!(
                "demand expects 1 x {WINDOW} features, got {} x {}",
                input.rows(),
                input.cols()
            )));
        }
        let row = input
            .row(0)
            .ok_or_else(|| PolicyError::Failed("demand: missing row".to_string()))?;
        Ok(self.forecast(row).to_vec())
    }
}

/// A realistic window of arrival rates: a base load with a drift, a daily-like cycle, noise
/// and now and then a burst; never negative.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> FeatureMatrix {
    let base: f32 = rng.random_range(50.0..5_000.0);
    let drift = base * rng.random_range(-0.01..0.02);
    let amplitude = base * rng.random_range(0.0..0.3);
    let period: f32 = rng.random_range(8.0..64.0);
    let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let burst_at = if rng.random_bool(0.2) {
        Some(rng.random_range(0..WINDOW))
    } else {
        None
    };
    let mut rates = [0.0f32; WINDOW];
    for (t, r) in rates.iter_mut().enumerate() {
        let t_f = t as f32;
        let season = amplitude * (std::f32::consts::TAU * t_f / period + phase).sin();
        let noise = base * 0.05 * (rng.random::<f32>() * 2.0 - 1.0);
        let burst = match burst_at {
            Some(b) if t >= b && t < b + 3 => base * rng.random_range(0.5..3.0),
            _ => 0.0,
        };
        *r = (base + drift * t_f + season + noise + burst).max(0.0);
    }
    DemandWindow { rates }.matrix()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn eval(holt: &Holt, rates: [f32; WINDOW]) -> Vec<f32> {
        let out = holt
            .evaluate(&DemandWindow { rates }.matrix(), far())
            .unwrap();
        contract().validate_output(1, &out).unwrap();
        out
    }

    #[test]
    fn struct_columns_match_contract_names() {
        let c = contract();
        assert_eq!(c.feature_count(), WINDOW);
        let mut rates = [0.0f32; WINDOW];
        for (i, r) in rates.iter_mut().enumerate() {
            *r = i as f32;
        }
        let w = DemandWindow { rates };
        let row = w.to_row();
        for ago in 0..WINDOW {
            let col = c.feature_index(&format!("rate_t_minus_{ago}")).unwrap();
            assert_eq!(
                Some(row[col]),
                w.rate_t_minus(ago),
                "column of rate_t_minus_{ago}"
            );
            assert_eq!(col, WINDOW - 1 - ago);
        }
        assert_eq!(c.features[0].name, "rate_t_minus_31");
        assert_eq!(c.features[WINDOW - 1].name, "rate_t_minus_0");
        assert_eq!(w.rate_t_minus(WINDOW), None);
        assert_eq!(DemandWindow::from_row(&row), Some(w));
        assert_eq!(DemandWindow::from_row(&row[1..]), None);
        assert_eq!(w.matrix().row(0).unwrap(), &row);
        assert!(c.features.iter().all(|f| f.unit == "tx/s"));
    }

    #[test]
    fn contract_and_info() {
        let c = contract();
        assert_eq!(c.schema_version, 1);
        assert_eq!(c.input_shape(), [1, WINDOW as i64]);
        assert_eq!(c.output_shape(), vec![1, HORIZON as i64]);
        assert_eq!(c.output_len(1), HORIZON);
        let p = Holt::default();
        assert_eq!(p.info().name, "holt");
        assert_eq!(p.info().version, "1");
        assert_eq!(p.info().backend, BackendKind::Static);
        assert_eq!(p.info().slot, SlotKind::Demand);
        assert_eq!(p.info().schema_version, 1);
        assert_eq!(p.isolation(), Isolation::Inline);
        assert_eq!(
            p.params(),
            &HoltParams {
                alpha: 0.5,
                beta: 0.3
            }
        );
    }

    #[test]
    fn linear_ramp_is_forecast_exactly() {
        for holt in [
            Holt::default(),
            Holt::with_params(HoltParams {
                alpha: 0.2,
                beta: 0.9,
            })
            .unwrap(),
            Holt::with_params(HoltParams {
                alpha: 1.0,
                beta: 0.0,
            })
            .unwrap(),
        ] {
            let mut rates = [0.0f32; WINDOW];
            for (t, r) in rates.iter_mut().enumerate() {
                *r = 100.0 + 7.5 * t as f32;
            }
            let out = eval(&holt, rates);
            for (h, &v) in out.iter().enumerate() {
                let expected = 100.0 + 7.5 * (WINDOW + h) as f32;
                assert!((v - expected).abs() < 1e-3, "h={h}: {v} vs {expected}");
            }
        }
    }

    #[test]
    fn constant_series_stays_constant() {
        let out = eval(&Holt::default(), [1234.5; WINDOW]);
        assert_eq!(out, vec![1234.5; HORIZON]);
        let out = eval(&Holt::default(), [0.0; WINDOW]);
        assert_eq!(out, vec![0.0; HORIZON]);
    }

    #[test]
    fn falling_series_clamps_at_zero() {
        let mut rates = [0.0f32; WINDOW];
        for (t, r) in rates.iter_mut().enumerate() {
            *r = (400.0 - 15.0 * t as f32).max(0.0);
        }
        let out = eval(&Holt::default(), rates);
        assert!(out.iter().all(|&v| v >= 0.0));
        let mut ramp = [0.0f32; WINDOW];
        for (t, r) in ramp.iter_mut().enumerate() {
            *r = 1000.0 - 30.0 * t as f32; // ends at 70, heading below 0 in 3 intervals
        }
        let out = eval(&Holt::default(), ramp);
        assert!(
            (out[0] - 40.0).abs() < 1e-3 && (out[1] - 10.0).abs() < 1e-3,
            "{out:?}"
        );
        assert!(out[2..].iter().all(|&v| v == 0.0), "{out:?}");
    }

    #[test]
    fn step_change_is_followed() {
        let mut rates = [100.0f32; WINDOW];
        for r in &mut rates[WINDOW - 8..] {
            *r = 500.0;
        }
        let out = eval(&Holt::default(), rates);
        assert!(out[0] > 400.0 && out[0] < 700.0, "{out:?}");
        // A smaller alpha reacts more slowly.
        let slow = eval(
            &Holt::with_params(HoltParams {
                alpha: 0.1,
                beta: 0.1,
            })
            .unwrap(),
            rates,
        );
        assert!(slow[0] < out[0]);
    }

    #[test]
    fn extreme_and_non_finite_values() {
        let holt = Holt::default();
        let out = eval(&holt, [f32::MAX; WINDOW]);
        assert_eq!(out, vec![FORECAST_MAX; HORIZON]);
        let mut alt = [0.0f32; WINDOW];
        for (t, r) in alt.iter_mut().enumerate() {
            *r = if t % 2 == 0 { f32::MAX } else { -f32::MAX };
        }
        eval(&holt, alt);
        let mut gaps = [50.0f32; WINDOW];
        gaps[0] = f32::NAN;
        gaps[10] = f32::INFINITY;
        gaps[WINDOW - 1] = f32::NAN;
        assert_eq!(eval(&holt, gaps), vec![50.0; HORIZON]);
        assert_eq!(eval(&holt, [f32::NAN; WINDOW]), vec![0.0; HORIZON]);
        assert_eq!(holt.forecast(&[]), [0.0; HORIZON]);
        assert_eq!(holt.forecast(&[7.0]), [7.0; HORIZON]);
    }

    #[test]
    fn samples_fit_and_forecasts_are_valid() {
        let mut rng = SmallRng::seed_from_u64(17);
        let c = contract();
        let holt = Holt::default();
        for _ in 0..2000 {
            let m = sample(&mut rng);
            c.validate_input(&m).unwrap();
            c.validate_output(1, &holt.evaluate(&m, far()).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn params_are_validated() {
        for (alpha, beta) in [
            (0.0, 0.3),
            (1.1, 0.3),
            (0.5, -0.1),
            (0.5, 1.5),
            (f64::NAN, 0.3),
            (0.5, f64::NAN),
        ] {
            assert!(
                Holt::with_params(HoltParams { alpha, beta }).is_err(),
                "{alpha} {beta}"
            );
        }
    }

    #[test]
    fn from_recent_pads_and_truncates() {
        assert_eq!(DemandWindow::from_recent(&[]).rates, [0.0; WINDOW]);
        let w = DemandWindow::from_recent(&[3.0, 4.0]);
        assert_eq!(w.rate_t_minus(0), Some(4.0));
        assert_eq!(w.rate_t_minus(1), Some(3.0));
        assert_eq!(w.rate_t_minus(31), Some(3.0));
        let long: Vec<f32> = (0..100).map(|v| v as f32).collect();
        let w = DemandWindow::from_recent(&long);
        assert_eq!(w.rates[0], 68.0);
        assert_eq!(w.rate_t_minus(0), Some(99.0));
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let m = FeatureMatrix::new(1, WINDOW - 1, vec![1.0; WINDOW - 1]).unwrap();
        assert!(Holt::default().evaluate(&m, far()).is_err());
    }
}
