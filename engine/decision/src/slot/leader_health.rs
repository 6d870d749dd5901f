//! The `leader_health` slot: the probability that the current leader fails within the next
//! horizon (about one election timeout), so the node can transfer leadership pre-emptively.
//!
//! Input is one row summarising the recent heartbeat window (`f32[1, F]`, see
//! [`LeaderHealthFeatures`]), output one value (`f32[1]`) in `0..=1`.
//!
//! # Schema version 2
//!
//! Version 2 has 18 columns: the 9 heartbeat and replication columns of version 1
//! (`heartbeat_interval_ms` .. `window_ticks`, same order, same meaning), then what the node
//! sees of its own health: `heartbeat_jitter_ms`, `fsync_ms_mean`, `fsync_ms_trend`,
//! `apply_ms_mean`, `cpu_utilisation`, `tick_lag_ms`, `rss_growth_mb_s`, `mempool_depth`, and
//! `self_scored` (1 when the leader scores itself, 0 when a follower scores the leader). The
//! node-local columns describe the node that computes the row: on the leader scoring itself
//! they describe the leader; on a follower they describe the follower (its `fsync_ms_*` are
//! 0: it cannot see the leader's disk). A column a node cannot see is 0. Models built for
//! version 1 (9 inputs, `schema = 1`) are refused at load with `E_SCHEMA_VERSION` (ONNX) or
//! `E_WASM_SCHEMA` (WASM).
//!
//! # Static policy: missed-heartbeat and RTT threshold rule
//!
//! [`HeartbeatRule`] is a smooth version of the classic thresholds ("no heartbeat for an
//! election timeout", "heartbeats being missed", "RTT close to the timeout"): it adds
//! normalised, non-negative evidence terms and passes the sum through a logistic function:
//!
//! ```text
//! et      = election_timeout_ms   (or 10 x heartbeat_interval_ms, or default_election_timeout_ms)
//! silence = ms_since_last_heartbeat / et             (1.0 = an election timeout of silence)
//! missed  = missed_heartbeats / max(window_ticks, missed_heartbeats, 1)   (share of window, 0..1)
//! p99     = rtt_p99_ms / et
//! mean    = rtt_mean_ms / et
//! trend   = max(rtt_trend, 0) * trend_horizon_ticks / et   (RTT growth expected over the horizon)
//! lag     = ln(1 + replication_lag_entries / lag_scale_entries)
//!
//! z = bias + silence_weight*silence + missed_weight*missed + rtt_p99_weight*p99
//!          + rtt_mean_weight*mean + trend_weight*trend + lag_weight*lag
//! p = 1 / (1 + exp(-z))
//! ```
//!
//! Each term is clamped to `0..=1000` first (negative or non-finite values read as 0), so the
//! answer is always a finite probability in `0..=1`. All weights are non-negative, so the
//! probability never decreases when heartbeats are missed, silence lasts longer, RTT rises
//! or replication falls behind. With the defaults ([`HeartbeatParams::default`]) a healthy
//! leader (silence of a heartbeat interval, low RTT) scores about 0.01, a leader silent for a
//! full election timeout about 0.95, and 1.25 timeouts about 0.995.
//!
//! The rule reads only the 9 version-1 columns. It deliberately ignores the node-health
//! columns of version 2 (`heartbeat_jitter_ms` .. `self_scored`: disk append latency, apply
//! latency, CPU, tick lag, memory growth, mempool depth): it has no calibrated thresholds for
//! them, so it only sees a failing leader once heartbeats go missing or slow down. Learning
//! how a slowing disk or a starving process precedes a failure is the job of a model trained
//! on recorded cluster telemetry (`aurigraph-training train leader_health`). The rule's
//! answers for a row are the same as under version 1 for the same 9 values.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Feature, OutputLen, OutputSpec, Rows, SlotContract, SlotKind};
use crate::error::EngineError;
use crate::features::FeatureMatrix;
use crate::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};

/// Number of features in the row.
pub const FEATURE_COUNT: usize = 18;

/// Upper bound applied to every normalised evidence term before weighting.
const TERM_CAP: f32 = 1000.0;

/// `(name, unit, description)` of every column, in order.
const FEATURES: [(&str, &str, &str); FEATURE_COUNT] = [
    (
        "heartbeat_interval_ms",
        "ms",
        "Configured interval between the leader's heartbeats.",
    ),
    (
        "election_timeout_ms",
        "ms",
        "Election timeout currently in force (the lower bound of its randomised range).",
    ),
    (
        "ms_since_last_heartbeat",
        "ms",
        "On a follower: time since the last append or heartbeat from the leader arrived; on \
         the leader itself: time since a quorum last acknowledged it.",
    ),
    (
        "missed_heartbeats",
        "count",
        "Heartbeat ticks in the window at which the expected heartbeat had not arrived.",
    ),
    (
        "rtt_mean_ms",
        "ms",
        "Mean append/heartbeat RPC round-trip time over the window (on the leader: to its \
         followers; on a follower: 0 unless measured).",
    ),
    (
        "rtt_p99_ms",
        "ms",
        "99th percentile of the append/heartbeat RPC round-trip time over the window (0 \
         where this node cannot see it).",
    ),
    (
        "rtt_trend",
        "ms/tick",
        "Least-squares slope of the round-trip time across the window's ticks (positive = \
         getting slower; 0 where this node cannot see it).",
    ),
    (
        "replication_lag_entries",
        "entries",
        "Log entries the leader has appended that this node (or the slowest voter of the \
         quorum, on the leader) has not yet acknowledged.",
    ),
    (
        "window_ticks",
        "ticks",
        "Number of heartbeat ticks the window covers.",
    ),
    (
        "heartbeat_jitter_ms",
        "ms",
        "Standard deviation of the intervals between heartbeats received (follower) or \
         acknowledged (leader) over the window.",
    ),
    (
        "fsync_ms_mean",
        "ms",
        "This node's Raft log append (fsync) latency, mean over the window (0 on a follower \
         scoring the leader: it cannot see the leader's disk).",
    ),
    (
        "fsync_ms_trend",
        "ms/tick",
        "Least-squares slope of this node's log append latency across the window's ticks \
         (0 on a follower scoring the leader).",
    ),
    (
        "apply_ms_mean",
        "ms",
        "Mean block apply latency on this node over the window.",
    ),
    (
        "cpu_utilisation",
        "share",
        "Process CPU time over wall time across the window, per core of the machine (0..1).",
    ),
    (
        "tick_lag_ms",
        "ms",
        "How late the health tick fired against its schedule, mean over the window \
         (run-queue or starvation pressure on this node).",
    ),
    (
        "rss_growth_mb_s",
        "MB/s",
        "Growth rate of the process resident memory across the window (negative = \
         shrinking).",
    ),
    (
        "mempool_depth",
        "transactions",
        "Transactions waiting in this node's mempool at the tick.",
    ),
    (
        "self_scored",
        "0/1",
        "1 when the leader scores itself (the node-local columns describe the leader), 0 \
         when a follower scores the leader (they describe the follower).",
    ),
];

/// The `leader_health` slot's contract, schema version 2.
pub(crate) fn contract() -> SlotContract {
    SlotContract {
        slot: SlotKind::LeaderHealth,
        schema_version: 2,
        description: "Predicts the probability that the leader fails within the next horizon.",
        called: "on each heartbeat tick",
        rows: Rows::Single,
        features: FEATURES
            .iter()
            .map(|&(name, unit, description)| Feature::new(name, unit, description))
            .collect(),
        output: OutputSpec {
            name: "failure_probability",
            len: OutputLen::Fixed(1),
            min: 0.0,
            max: 1.0,
            unit: "probability",
            meaning: "Probability (0..1) that the leader fails within the next election \
                      timeout; above the configured threshold the node can hand leadership \
                      over pre-emptively.",
        },
        default_deadline: Duration::from_millis(5),
    }
}

/// The `leader_health` features, by name. [`LeaderHealthFeatures::to_row`] lays them out in
/// the contract's column order. A column this node cannot see is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaderHealthFeatures {
    /// Configured heartbeat interval, in ms.
    pub heartbeat_interval_ms: f32,
    /// Election timeout in force (lower bound of its range), in ms.
    pub election_timeout_ms: f32,
    /// Follower: ms since the last append/heartbeat from the leader arrived; leader: ms
    /// since a quorum last acknowledged it.
    pub ms_since_last_heartbeat: f32,
    /// Ticks in the window at which the expected heartbeat had not arrived.
    pub missed_heartbeats: f32,
    /// Mean append/heartbeat RPC round trip over the window, in ms (leader: to its
    /// followers; follower: 0 unless measured).
    pub rtt_mean_ms: f32,
    /// 99th-percentile append/heartbeat RPC round trip over the window, in ms.
    pub rtt_p99_ms: f32,
    /// Least-squares slope of the RTT across the window, in ms per tick.
    pub rtt_trend: f32,
    /// Unacknowledged log entries.
    pub replication_lag_entries: f32,
    /// Ticks in the window.
    pub window_ticks: f32,
    /// Standard deviation of the heartbeat intervals received (follower) or acknowledged
    /// (leader) over the window, in ms.
    pub heartbeat_jitter_ms: f32,
    /// This node's Raft log append (fsync) latency, mean over the window, in ms (0 on a
    /// follower scoring the leader).
    pub fsync_ms_mean: f32,
    /// Slope of the append latency across the window, in ms per tick.
    pub fsync_ms_trend: f32,
    /// Mean block apply latency over the window, in ms.
    pub apply_ms_mean: f32,
    /// Process CPU time / wall time over the window, per core of the machine (0..1).
    pub cpu_utilisation: f32,
    /// How late the health tick fired against its schedule, mean over the window, in ms.
    pub tick_lag_ms: f32,
    /// Growth rate of the process resident memory over the window, in MB/s.
    pub rss_growth_mb_s: f32,
    /// Transactions in the mempool.
    pub mempool_depth: f32,
    /// 1 when the leader scores itself, 0 when a follower scores the leader.
    pub self_scored: f32,
}

impl LeaderHealthFeatures {
    /// The row in the contract's column order.
    pub fn to_row(&self) -> [f32; FEATURE_COUNT] {
        [
            self.heartbeat_interval_ms,
            self.election_timeout_ms,
            self.ms_since_last_heartbeat,
            self.missed_heartbeats,
            self.rtt_mean_ms,
            self.rtt_p99_ms,
            self.rtt_trend,
            self.replication_lag_entries,
            self.window_ticks,
            self.heartbeat_jitter_ms,
            self.fsync_ms_mean,
            self.fsync_ms_trend,
            self.apply_ms_mean,
            self.cpu_utilisation,
            self.tick_lag_ms,
            self.rss_growth_mb_s,
            self.mempool_depth,
            self.self_scored,
        ]
    }

    /// Reads a row laid out in the contract's column order; `None` unless it has exactly
    /// [`FEATURE_COUNT`] values.
    pub fn from_row(row: &[f32]) -> Option<Self> {
        let r: &[f32; FEATURE_COUNT] = row.try_into().ok()?;
        Some(Self {
            heartbeat_interval_ms: r[0],
            election_timeout_ms: r[1],
            ms_since_last_heartbeat: r[2],
            missed_heartbeats: r[3],
            rtt_mean_ms: r[4],
            rtt_p99_ms: r[5],
            rtt_trend: r[6],
            replication_lag_entries: r[7],
            window_ticks: r[8],
            heartbeat_jitter_ms: r[9],
            fsync_ms_mean: r[10],
            fsync_ms_trend: r[11],
            apply_ms_mean: r[12],
            cpu_utilisation: r[13],
            tick_lag_ms: r[14],
            rss_growth_mb_s: r[15],
            mempool_depth: r[16],
            self_scored: r[17],
        })
    }

    /// The slot's `f32[1, F]` input.
    pub fn matrix(&self) -> FeatureMatrix {
        FeatureMatrix::new(1, FEATURE_COUNT, self.to_row().to_vec())
            .expect("1 x FEATURE_COUNT values by construction")
    }
}

/// Parameters of [`HeartbeatRule`]; see the [module docs](self) for the formula.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatParams {
    /// Log-odds with no evidence at all. Default -6 (p ~ 0.0025).
    pub bias: f32,
    /// Weight per election timeout of silence. Default 9.
    pub silence_weight: f32,
    /// Weight of the share of missed heartbeats in the window. Default 4.
    pub missed_weight: f32,
    /// Weight per election timeout of p99 RTT. Default 3.
    pub rtt_p99_weight: f32,
    /// Weight per election timeout of mean RTT. Default 3.
    pub rtt_mean_weight: f32,
    /// Weight per election timeout of RTT growth expected over the horizon. Default 2.
    pub trend_weight: f32,
    /// Ticks over which a positive RTT trend is projected. Default 10.
    pub trend_horizon_ticks: f32,
    /// Weight of `ln(1 + lag / lag_scale_entries)`. Default 0.5.
    pub lag_weight: f32,
    /// Replication lag at which the lag term reaches `ln 2`. Default 1000 entries.
    pub lag_scale_entries: f32,
    /// Election timeout assumed when neither it nor the heartbeat interval is given.
    /// Default 1000 ms.
    pub default_election_timeout_ms: f32,
}

impl Default for HeartbeatParams {
    fn default() -> Self {
        Self {
            bias: -6.0,
            silence_weight: 9.0,
            missed_weight: 4.0,
            rtt_p99_weight: 3.0,
            rtt_mean_weight: 3.0,
            trend_weight: 2.0,
            trend_horizon_ticks: 10.0,
            lag_weight: 0.5,
            lag_scale_entries: 1000.0,
            default_election_timeout_ms: 1000.0,
        }
    }
}

impl HeartbeatParams {
    /// Checks the parameters: all finite, weights and the horizon non-negative (which keeps
    /// the rule monotone), the lag scale and default timeout positive.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: &str| {
            Err(EngineError::InvalidConfig(format!(
                "heartbeat rule: {what}"
            )))
        };
        let all = [
            self.bias,
            self.silence_weight,
            self.missed_weight,
            self.rtt_p99_weight,
            self.rtt_mean_weight,
            self.trend_weight,
            self.trend_horizon_ticks,
            self.lag_weight,
            self.lag_scale_entries,
            self.default_election_timeout_ms,
        ];
        if !all.iter().all(|v| v.is_finite()) {
            return bad("parameters must be finite");
        }
        if all[1..8].iter().any(|&w| w < 0.0) {
            return bad("weights and trend_horizon_ticks must be >= 0");
        }
        if self.lag_scale_entries <= 0.0 || self.default_election_timeout_ms <= 0.0 {
            return bad("lag_scale_entries and default_election_timeout_ms must be > 0");
        }
        Ok(())
    }
}

/// Static `leader_health` policy: a logistic combination of silence, missed heartbeats, RTT
/// and replication lag. See the [module docs](self) for the exact rule.
#[derive(Clone, Debug)]
pub struct HeartbeatRule {
    info: PolicyInfo,
    params: HeartbeatParams,
}

impl Default for HeartbeatRule {
    fn default() -> Self {
        Self::build(HeartbeatParams::default())
    }
}

impl HeartbeatRule {
    /// The rule with the given parameters, refused with [`EngineError::InvalidConfig`] when
    /// [`HeartbeatParams::validate`] fails.
    pub fn with_params(params: HeartbeatParams) -> Result<Self, EngineError> {
        params.validate()?;
        Ok(Self::build(params))
    }

    fn build(params: HeartbeatParams) -> Self {
        Self {
            info: PolicyInfo {
                name: "heartbeat-rule".to_string(),
                version: "1".to_string(),
                backend: BackendKind::Static,
                slot: SlotKind::LeaderHealth,
                schema_version: 2,
            },
            params,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &HeartbeatParams {
        &self.params
    }

    /// The failure probability for `f`, always in `0..=1`.
    pub fn probability(&self, f: &LeaderHealthFeatures) -> f32 {
        let p = &self.params;
        let positive = |v: f32| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let et = if positive(f.election_timeout_ms) > 0.0 {
            f.election_timeout_ms
        } else if positive(f.heartbeat_interval_ms) > 0.0 {
            f.heartbeat_interval_ms * 10.0
        } else {
            p.default_election_timeout_ms
        };
        let et = et.max(f32::MIN_POSITIVE);
        let term = |v: f32| positive(v).min(TERM_CAP);

        let missed = positive(f.missed_heartbeats);
        let window = positive(f.window_ticks).max(missed).max(1.0);
        let silence = term(f.ms_since_last_heartbeat / et);
        let missed = term(missed / window);
        let p99 = term(f.rtt_p99_ms / et);
        let mean = term(f.rtt_mean_ms / et);
        let trend = term(positive(f.rtt_trend) * p.trend_horizon_ticks / et);
        let lag = term((positive(f.replication_lag_entries) / p.lag_scale_entries).ln_1p());

        let z = p.bias
            + p.silence_weight * silence
            + p.missed_weight * missed
            + p.rtt_p99_weight * p99
            + p.rtt_mean_weight * mean
            + p.trend_weight * trend
            + p.lag_weight * lag;
        logistic(z)
    }
}

/// `1 / (1 + e^-z)`, in `0..=1` for every input (NaN reads as 0.5).
fn logistic(z: f32) -> f32 {
    if z.is_nan() {
        return 0.5;
    }
    (1.0 / (1.0 + (-z).exp())).clamp(0.0, 1.0)
}

impl Policy for HeartbeatRule {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, _deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        if input.rows() != 1 || input.cols() != FEATURE_COUNT {
            return Err(PolicyError::Failed(format!(
                "leader_health expects 1 x {FEATURE_COUNT} features, got {} x {}",
                input.rows(),
                input.cols()
            )));
        }
        let f = input
            .row(0)
            .and_then(LeaderHealthFeatures::from_row)
            .ok_or_else(|| PolicyError::Failed("leader_health: missing row".to_string()))?;
        Ok(vec![self.probability(&f)])
    }
}

/// A realistic heartbeat window: mostly a healthy leader, sometimes a degraded or silent one,
/// scored by the leader itself or by a follower.
pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> FeatureMatrix {
    let hb: f32 = rng.random_range(20.0..200.0);
    let et = (hb * rng.random_range(5.0..20.0)).round();
    let window = rng.random_range(10..=60u32) as f32;
    let self_scored = rng.random_bool(0.5);
    let f = if rng.random_bool(0.85) {
        let mean = rng.random_range(0.3..30.0f32);
        let fsync = rng.random_range(0.1..5.0f32);
        LeaderHealthFeatures {
            heartbeat_interval_ms: hb.round(),
            election_timeout_ms: et,
            ms_since_last_heartbeat: hb * rng.random_range(0.0..1.2),
            missed_heartbeats: if rng.random_bool(0.9) { 0.0 } else { 1.0 },
            rtt_mean_ms: mean,
            rtt_p99_ms: mean * rng.random_range(1.2..4.0),
            rtt_trend: rng.random_range(-0.2..0.2),
            replication_lag_entries: rng.random_range(0..200) as f32,
            window_ticks: window,
            heartbeat_jitter_ms: hb * rng.random_range(0.0..0.1),
            fsync_ms_mean: fsync,
            fsync_ms_trend: rng.random_range(-0.05..0.05),
            apply_ms_mean: rng.random_range(0.5..30.0),
            cpu_utilisation: rng.random_range(0.02..0.6),
            tick_lag_ms: rng.random_range(0.0..2.0),
            rss_growth_mb_s: rng.random_range(-0.5..0.5),
            mempool_depth: rng.random_range(0..5_000) as f32,
            self_scored: 0.0,
        }
    } else {
        let mean = rng.random_range(20.0..(et * 0.5).max(21.0));
        LeaderHealthFeatures {
            heartbeat_interval_ms: hb.round(),
            election_timeout_ms: et,
            ms_since_last_heartbeat: rng.random_range(0.0..2.0 * et),
            missed_heartbeats: rng.random_range(0..=window as u32) as f32,
            rtt_mean_ms: mean,
            rtt_p99_ms: mean * rng.random_range(1.5..5.0),
            rtt_trend: rng.random_range(0.0..5.0),
            replication_lag_entries: rng.random_range(0..100_000) as f32,
            window_ticks: window,
            heartbeat_jitter_ms: hb * rng.random_range(0.1..3.0),
            fsync_ms_mean: rng.random_range(5.0..2_000.0),
            fsync_ms_trend: rng.random_range(0.0..50.0),
            apply_ms_mean: rng.random_range(10.0..2_000.0),
            cpu_utilisation: rng.random_range(0.3..1.0),
            tick_lag_ms: rng.random_range(0.0..500.0),
            rss_growth_mb_s: rng.random_range(-1.0..200.0),
            mempool_depth: rng.random_range(0..200_000) as f32,
            self_scored: 0.0,
        }
    };
    let f = if self_scored {
        LeaderHealthFeatures {
            self_scored: 1.0,
            ..f
        }
    } else {
        // A follower cannot see the leader's disk.
        LeaderHealthFeatures {
            fsync_ms_mean: 0.0,
            fsync_ms_trend: 0.0,
            ..f
        }
    };
    f.matrix()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn healthy() -> LeaderHealthFeatures {
        LeaderHealthFeatures {
            heartbeat_interval_ms: 50.0,
            election_timeout_ms: 500.0,
            ms_since_last_heartbeat: 40.0,
            missed_heartbeats: 0.0,
            rtt_mean_ms: 2.0,
            rtt_p99_ms: 6.0,
            rtt_trend: 0.0,
            replication_lag_entries: 10.0,
            window_ticks: 20.0,
            heartbeat_jitter_ms: 2.0,
            fsync_ms_mean: 1.0,
            fsync_ms_trend: 0.0,
            apply_ms_mean: 5.0,
            cpu_utilisation: 0.2,
            tick_lag_ms: 0.5,
            rss_growth_mb_s: 0.0,
            mempool_depth: 100.0,
            self_scored: 1.0,
        }
    }

    fn eval(f: &LeaderHealthFeatures) -> f32 {
        let out = HeartbeatRule::default()
            .evaluate(&f.matrix(), far())
            .unwrap();
        contract().validate_output(1, &out).unwrap();
        out[0]
    }

    #[test]
    fn struct_columns_match_contract_names() {
        let c = contract();
        assert_eq!(c.feature_count(), FEATURE_COUNT);
        let f = LeaderHealthFeatures {
            heartbeat_interval_ms: 1.0,
            election_timeout_ms: 2.0,
            ms_since_last_heartbeat: 3.0,
            missed_heartbeats: 4.0,
            rtt_mean_ms: 5.0,
            rtt_p99_ms: 6.0,
            rtt_trend: 7.0,
            replication_lag_entries: 8.0,
            window_ticks: 9.0,
            heartbeat_jitter_ms: 10.0,
            fsync_ms_mean: 11.0,
            fsync_ms_trend: 12.0,
            apply_ms_mean: 13.0,
            cpu_utilisation: 14.0,
            tick_lag_ms: 15.0,
            rss_growth_mb_s: 16.0,
            mempool_depth: 17.0,
            self_scored: 18.0,
        };
        let r = f.to_row();
        let by_name = [
            ("heartbeat_interval_ms", f.heartbeat_interval_ms),
            ("election_timeout_ms", f.election_timeout_ms),
            ("ms_since_last_heartbeat", f.ms_since_last_heartbeat),
            ("missed_heartbeats", f.missed_heartbeats),
            ("rtt_mean_ms", f.rtt_mean_ms),
            ("rtt_p99_ms", f.rtt_p99_ms),
            ("rtt_trend", f.rtt_trend),
            ("replication_lag_entries", f.replication_lag_entries),
            ("window_ticks", f.window_ticks),
            ("heartbeat_jitter_ms", f.heartbeat_jitter_ms),
            ("fsync_ms_mean", f.fsync_ms_mean),
            ("fsync_ms_trend", f.fsync_ms_trend),
            ("apply_ms_mean", f.apply_ms_mean),
            ("cpu_utilisation", f.cpu_utilisation),
            ("tick_lag_ms", f.tick_lag_ms),
            ("rss_growth_mb_s", f.rss_growth_mb_s),
            ("mempool_depth", f.mempool_depth),
            ("self_scored", f.self_scored),
        ];
        assert_eq!(by_name.len(), c.feature_count());
        for (name, v) in by_name {
            assert_eq!(r[c.feature_index(name).unwrap()], v, "column of `{name}`");
        }
        assert_eq!(LeaderHealthFeatures::from_row(&r), Some(f));
        assert_eq!(f.matrix().row(0).unwrap(), &r);
    }

    #[test]
    fn contract_and_info() {
        let c = contract();
        assert_eq!(c.schema_version, 2);
        assert_eq!(c.feature_count(), 18);
        assert_eq!(c.input_shape(), [1, FEATURE_COUNT as i64]);
        assert_eq!(c.output_shape(), vec![1]);
        let p = HeartbeatRule::default();
        assert_eq!(p.info().name, "heartbeat-rule");
        assert_eq!(p.info().version, "1");
        assert_eq!(p.info().backend, BackendKind::Static);
        assert_eq!(p.info().slot, SlotKind::LeaderHealth);
        assert_eq!(p.info().schema_version, 2);
        assert_eq!(p.isolation(), Isolation::Inline);
    }

    #[test]
    fn healthy_leader_is_unlikely_to_fail() {
        assert!(eval(&healthy()) < 0.02, "{}", eval(&healthy()));
    }

    #[test]
    fn silence_past_election_timeout_is_near_certain_failure() {
        let at = eval(&LeaderHealthFeatures {
            ms_since_last_heartbeat: 500.0,
            ..healthy()
        });
        assert!(at > 0.9, "{at}");
        let past = eval(&LeaderHealthFeatures {
            ms_since_last_heartbeat: 750.0,
            missed_heartbeats: 15.0,
            ..healthy()
        });
        assert!(past > 0.999, "{past}");
    }

    fn assert_monotone(mut set: impl FnMut(&mut LeaderHealthFeatures, f32), values: &[f32]) {
        let mut prev = -1.0f32;
        let mut first = None;
        for &v in values {
            let mut f = healthy();
            set(&mut f, v);
            let p = eval(&f);
            assert!((0.0..=1.0).contains(&p));
            assert!(p >= prev, "not monotone at {v}: {p} < {prev}");
            first.get_or_insert(p);
            prev = p;
        }
        assert!(prev > first.unwrap(), "no effect at all");
    }

    #[test]
    fn monotone_in_each_kind_of_evidence() {
        let missed: Vec<f32> = (0..=20).map(|v| v as f32).collect();
        assert_monotone(|f, v| f.missed_heartbeats = v, &missed);
        let ms: Vec<f32> = (0..=40).map(|v| v as f32 * 25.0).collect();
        assert_monotone(|f, v| f.ms_since_last_heartbeat = v, &ms);
        assert_monotone(|f, v| f.rtt_p99_ms = v, &ms);
        assert_monotone(|f, v| f.rtt_mean_ms = v, &ms);
        assert_monotone(|f, v| f.rtt_trend = v / 100.0, &ms);
        let lag: Vec<f32> = (0..=10).map(|v| 10f32.powi(v)).collect();
        assert_monotone(|f, v| f.replication_lag_entries = v, &lag);
    }

    #[test]
    fn the_static_rule_reads_only_the_version_1_columns() {
        // A sick disk, a starving process and growing memory on an otherwise healthy leader:
        // the rule does not see them (that is a trained model's job).
        let sick = LeaderHealthFeatures {
            heartbeat_jitter_ms: 400.0,
            fsync_ms_mean: 900.0,
            fsync_ms_trend: 40.0,
            apply_ms_mean: 800.0,
            cpu_utilisation: 1.0,
            tick_lag_ms: 300.0,
            rss_growth_mb_s: 150.0,
            mempool_depth: 100_000.0,
            self_scored: 0.0,
            ..healthy()
        };
        assert_eq!(eval(&sick), eval(&healthy()));
        let at = eval(&LeaderHealthFeatures {
            ms_since_last_heartbeat: 500.0,
            ..healthy()
        });
        assert!(at > 0.9 && at < 0.97, "{at}");
        assert!(eval(&healthy()) > 0.005, "{}", eval(&healthy()));
    }

    #[test]
    fn missing_timeouts_fall_back() {
        // No election timeout: 10 x heartbeat interval = 500 ms, same as healthy().
        let f = LeaderHealthFeatures {
            election_timeout_ms: 0.0,
            ..healthy()
        };
        assert_eq!(eval(&f), eval(&healthy()));
        let f = LeaderHealthFeatures {
            election_timeout_ms: 0.0,
            heartbeat_interval_ms: 0.0,
            ..healthy()
        };
        assert!(eval(&f) < 0.02);
    }

    #[test]
    fn odd_values_do_not_panic_and_stay_in_range() {
        let odd = [
            0.0,
            -0.0,
            -1.0,
            1e-30,
            1e30,
            f32::MAX,
            f32::MIN,
            f32::NAN,
            f32::INFINITY,
        ];
        let rule = HeartbeatRule::default();
        for &a in &odd {
            for &b in &odd {
                let f = LeaderHealthFeatures {
                    heartbeat_interval_ms: a,
                    election_timeout_ms: b,
                    ms_since_last_heartbeat: a,
                    missed_heartbeats: b,
                    rtt_mean_ms: a,
                    rtt_p99_ms: b,
                    rtt_trend: a,
                    replication_lag_entries: b,
                    window_ticks: a,
                    heartbeat_jitter_ms: b,
                    fsync_ms_mean: a,
                    fsync_ms_trend: b,
                    apply_ms_mean: a,
                    cpu_utilisation: b,
                    tick_lag_ms: a,
                    rss_growth_mb_s: b,
                    mempool_depth: a,
                    self_scored: b,
                };
                let p = rule.probability(&f);
                contract().validate_output(1, &[p]).unwrap();
            }
        }
    }

    #[test]
    fn samples_fit_the_contract() {
        let mut rng = SmallRng::seed_from_u64(9);
        let c = contract();
        let rule = HeartbeatRule::default();
        for _ in 0..2000 {
            let m = sample(&mut rng);
            c.validate_input(&m).unwrap();
            c.validate_output(1, &rule.evaluate(&m, far()).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn params_are_validated() {
        assert!(
            HeartbeatRule::with_params(HeartbeatParams {
                missed_weight: -1.0,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            HeartbeatRule::with_params(HeartbeatParams {
                lag_scale_entries: 0.0,
                ..Default::default()
            })
            .is_err()
        );
        let eager = HeartbeatRule::with_params(HeartbeatParams {
            bias: -2.0,
            ..Default::default()
        })
        .unwrap();
        assert!(eager.probability(&healthy()) > HeartbeatRule::default().probability(&healthy()));
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let m = FeatureMatrix::new(1, 2, vec![1.0; 2]).unwrap();
        assert!(HeartbeatRule::default().evaluate(&m, far()).is_err());
    }
}
