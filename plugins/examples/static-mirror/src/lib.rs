//! # `static-mirror`: every slot, as the node's static policies decide it
//!
//! One plugin implementing all five slots with the same rules and default parameters as the
//! node's built-in static policies (`engine/decision/src/slot/*.rs`, `docs/CONTRACTS.md`):
//!
//! - `ordering`: fee priority (total `fee`, descending), then arrival (`arrival_seq`,
//!   ascending), as rank scores;
//! - `batch_size`: the queue-depth rule (grow when two batches are waiting, shrink when the
//!   last block ran 10% over its latency target; the conflict condition is off by default);
//! - `leader_health` (schema v2): the heartbeat rule, a logistic combination of silence, missed
//!   heartbeats, RTT and replication lag;
//! - `anomaly`: the z-score rule, a logistic map of the larger of the sender-rate and size
//!   z-scores;
//! - `demand`: Holt double exponential smoothing (alpha 0.5, beta 0.3) over the window.
//!
//! It is a reference for plugin authors (a starting point whose behaviour is known exactly:
//! the node's test suite checks it answers what the static policies answer) and the plugin the
//! conformance suite runs on every slot through WASM. A real plugin changes one rule and keeps
//! the rest; rolled out next to the static baseline, a mirror shows the cost of the WASM path
//! alone, since every decision is the same.

use aurigraph_plugin_sdk::rank::{desc_then_asc, scores_by_int_key};
use aurigraph_plugin_sdk::schema::{anomaly, batch_size, demand, leader_health, ordering};
use aurigraph_plugin_sdk::{Rows, export_plugin};

/// `ordering`: rank of `(fee desc, arrival_seq asc)`, best = `N`, equal keys share a score.
pub fn order(rows: Rows<'_>) -> Vec<f32> {
    scores_by_int_key(
        rows.iter()
            .map(|r| desc_then_asc(r[ordering::FEE], r[ordering::ARRIVAL_SEQ])),
    )
}

/// Largest target the node accepts (`batch_size` output maximum).
const TARGET_MAX: f32 = batch_size::OUTPUT_MAX;

fn finite_or_zero(v: f32) -> f32 {
    if v.is_finite() { v } else { 0.0 }
}

/// `batch_size`: the queue-depth rule with its default parameters.
pub fn batch(rows: Rows<'_>) -> Result<f32, String> {
    const DEEP_RATIO: f32 = 2.0;
    const GROW_FRACTION: f32 = 0.25;
    const GROW_STEP: f32 = 16.0;
    const SHRINK_FACTOR: f32 = 0.75;
    const LATENCY_SLACK: f32 = 0.1;
    // Off (the conflict rate is at most 1): see `QueueDepthParams::conflict_limit`.
    const CONFLICT_LIMIT: f32 = 1.0;
    let f = rows.row(0).ok_or("no row")?;
    let (fmin, fmax) = (f[batch_size::MIN_BATCH_SIZE], f[batch_size::MAX_BATCH_SIZE]);
    let min = if fmin.is_finite() && fmin >= 0.0 {
        fmin.min(TARGET_MAX)
    } else {
        1.0
    };
    let max = if fmax.is_finite() && fmax > 0.0 {
        fmax.min(TARGET_MAX)
    } else {
        TARGET_MAX
    };
    let max = max.max(min);
    let clamp = |v: f32| v.max(min).min(max);
    let cur = finite_or_zero(f[batch_size::CURRENT_BATCH_SIZE]);
    let cur = if cur > 0.0 { clamp(cur) } else { min };
    let latency = finite_or_zero(f[batch_size::LAST_BLOCK_LATENCY_MS]);
    let target = finite_or_zero(f[batch_size::TARGET_LATENCY_MS]);
    let conflicts = finite_or_zero(f[batch_size::CONFLICT_RATE]);
    let queue = finite_or_zero(f[batch_size::QUEUE_DEPTH]);
    let too_slow = target > 0.0 && latency > target * (1.0 + LATENCY_SLACK);
    let next = if too_slow || conflicts > CONFLICT_LIMIT {
        (cur * SHRINK_FACTOR).floor()
    } else if queue >= cur * DEEP_RATIO && queue > 0.0 {
        (cur + GROW_STEP.max(cur * GROW_FRACTION)).ceil()
    } else {
        cur.round()
    };
    Ok(clamp(next))
}

/// `1 / (1 + e^-z)`, in `0..=1` (NaN reads as 0.5).
fn logistic(z: f32) -> f32 {
    if z.is_nan() {
        return 0.5;
    }
    (1.0 / (1.0 + (-z).exp())).clamp(0.0, 1.0)
}

/// `leader_health`: the heartbeat rule with its default parameters.
pub fn leader(rows: Rows<'_>) -> Result<f32, String> {
    const BIAS: f32 = -6.0;
    const SILENCE_WEIGHT: f32 = 9.0;
    const MISSED_WEIGHT: f32 = 4.0;
    const RTT_P99_WEIGHT: f32 = 3.0;
    const RTT_MEAN_WEIGHT: f32 = 3.0;
    const TREND_WEIGHT: f32 = 2.0;
    const TREND_HORIZON_TICKS: f32 = 10.0;
    const LAG_WEIGHT: f32 = 0.5;
    const LAG_SCALE_ENTRIES: f32 = 1000.0;
    const DEFAULT_ELECTION_TIMEOUT_MS: f32 = 1000.0;
    const TERM_CAP: f32 = 1000.0;
    use leader_health as lh;
    let f = rows.row(0).ok_or("no row")?;
    let positive = |v: f32| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let et = if positive(f[lh::ELECTION_TIMEOUT_MS]) > 0.0 {
        f[lh::ELECTION_TIMEOUT_MS]
    } else if positive(f[lh::HEARTBEAT_INTERVAL_MS]) > 0.0 {
        f[lh::HEARTBEAT_INTERVAL_MS] * 10.0
    } else {
        DEFAULT_ELECTION_TIMEOUT_MS
    };
    let et = et.max(f32::MIN_POSITIVE);
    let term = |v: f32| positive(v).min(TERM_CAP);
    let missed = positive(f[lh::MISSED_HEARTBEATS]);
    let window = positive(f[lh::WINDOW_TICKS]).max(missed).max(1.0);
    let silence = term(f[lh::MS_SINCE_LAST_HEARTBEAT] / et);
    let missed = term(missed / window);
    let p99 = term(f[lh::RTT_P99_MS] / et);
    let mean = term(f[lh::RTT_MEAN_MS] / et);
    let trend = term(positive(f[lh::RTT_TREND]) * TREND_HORIZON_TICKS / et);
    let lag = term((positive(f[lh::REPLICATION_LAG_ENTRIES]) / LAG_SCALE_ENTRIES).ln_1p());
    let z = BIAS
        + SILENCE_WEIGHT * silence
        + MISSED_WEIGHT * missed
        + RTT_P99_WEIGHT * p99
        + RTT_MEAN_WEIGHT * mean
        + TREND_WEIGHT * trend
        + LAG_WEIGHT * lag;
    Ok(logistic(z))
}

/// `anomaly`: the z-score rule with its default parameters (midpoint 3 sigma, steepness 1.5).
pub fn anomalous(rows: Rows<'_>) -> Vec<f32> {
    const MIDPOINT: f32 = 3.0;
    const STEEPNESS: f32 = 1.5;
    let z_or_mean = |z: f32| if z.is_nan() { 0.0 } else { z };
    rows.iter()
        .map(|r| {
            let z = z_or_mean(r[anomaly::SENDER_RATE_Z]).max(z_or_mean(r[anomaly::SIZE_Z]));
            let x = STEEPNESS * (z - MIDPOINT);
            (1.0 / (1.0 + (-x).exp())).clamp(0.0, 1.0)
        })
        .collect()
}

/// `demand`: Holt double exponential smoothing of the window (oldest first), forecast for
/// the next `HORIZON` intervals, each in the output range; no finite value forecasts zeros.
pub fn forecast(rows: Rows<'_>) -> Result<Vec<f32>, String> {
    const ALPHA: f64 = 0.5;
    const BETA: f64 = 0.3;
    let series = rows.row(0).ok_or("no row")?;
    let mut out = vec![0.0f32; demand::HORIZON];
    let Some(start) = series.iter().position(|v| v.is_finite()) else {
        return Ok(out);
    };
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
        level = ALPHA * y + (1.0 - ALPHA) * (level + trend);
        trend = BETA * (level - prev) + (1.0 - BETA) * trend;
    }
    for (h, o) in out.iter_mut().enumerate() {
        let v = level + (h + 1) as f64 * trend;
        *o = if v.is_nan() {
            0.0
        } else {
            v.clamp(0.0, f64::from(demand::OUTPUT_MAX)) as f32
        };
    }
    Ok(out)
}

export_plugin! {
    name: "static-mirror",
    version: "1.0.0",
    ordering: order,
    batch_size: batch,
    leader_health: leader,
    anomaly: anomalous,
    demand: forecast,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[f32], cols: usize) -> Rows<'_> {
        Rows::new(data, cols).unwrap()
    }

    #[test]
    fn ordering_is_fee_then_fifo() {
        let mut data = vec![0.0; 3 * ordering::FEATURE_COUNT];
        for (i, (fee, seq)) in [(5.0, 2.0), (9.0, 3.0), (5.0, 1.0)].into_iter().enumerate() {
            data[i * ordering::FEATURE_COUNT + ordering::FEE] = fee;
            data[i * ordering::FEATURE_COUNT + ordering::ARRIVAL_SEQ] = seq;
        }
        assert_eq!(
            order(rows(&data, ordering::FEATURE_COUNT)),
            vec![1.0, 3.0, 2.0]
        );
    }

    #[test]
    fn batch_grows_when_deep_and_shrinks_when_slow() {
        let mut f = [0.0f32; batch_size::FEATURE_COUNT];
        f[batch_size::CURRENT_BATCH_SIZE] = 100.0;
        f[batch_size::MIN_BATCH_SIZE] = 10.0;
        f[batch_size::MAX_BATCH_SIZE] = 1000.0;
        f[batch_size::TARGET_LATENCY_MS] = 100.0;
        f[batch_size::LAST_BLOCK_LATENCY_MS] = 50.0;
        f[batch_size::QUEUE_DEPTH] = 300.0;
        assert_eq!(batch(rows(&f, batch_size::FEATURE_COUNT)), Ok(125.0));
        f[batch_size::LAST_BLOCK_LATENCY_MS] = 200.0;
        assert_eq!(batch(rows(&f, batch_size::FEATURE_COUNT)), Ok(75.0));
    }

    #[test]
    fn leader_and_anomaly_stay_in_range_and_demand_follows_a_trend() {
        let quiet = [0.0f32; leader_health::FEATURE_COUNT];
        let p = leader(rows(&quiet, leader_health::FEATURE_COUNT)).unwrap();
        assert!(p > 0.0 && p < 0.01, "{p}");
        let mut a = [0.0f32; anomaly::FEATURE_COUNT];
        a[anomaly::SENDER_RATE_Z] = 3.0;
        assert_eq!(anomalous(rows(&a, anomaly::FEATURE_COUNT)), vec![0.5]);
        let series: Vec<f32> = (0..demand::WINDOW)
            .map(|i| 100.0 + 10.0 * i as f32)
            .collect();
        let out = forecast(rows(&series, demand::FEATURE_COUNT)).unwrap();
        assert_eq!(out.len(), demand::HORIZON);
        assert!(out.windows(2).all(|w| w[1] > w[0]), "{out:?}");
        let gaps = [f32::NAN; demand::WINDOW];
        assert_eq!(
            forecast(rows(&gaps, demand::FEATURE_COUNT)).unwrap(),
            vec![0.0; 8]
        );
    }
}
