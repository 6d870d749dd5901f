//! The `leader_health` slot in a running cluster: every replica scores the leader each tick,
//! and the leader hands leadership over before it fails.
//!
//! **Signals.** Each `leader_health.tick_ms` the monitor builds the slot's feature row
//! (schema 2, see `aurigraph models schema leader_health`) from the last
//! `leader_health.window_ticks` ticks:
//! - on the leader (`self_scored = 1`): the round trip of every AppendEntries it sent
//!   (heartbeats included; mean, p99, slope across ticks), the spread of the intervals between
//!   a follower's acknowledgements, the time since a quorum acknowledged it, ticks at which
//!   that was over two heartbeat intervals ("missed"), the slowest voter's replication lag,
//!   its own Raft log append (fsync) latency and its slope, block apply latency, process CPU
//!   per core, how late the tick itself fired (run-queue pressure), resident memory growth,
//!   mempool depth;
//! - on a follower or learner (`self_scored = 0`): what it sees of the leader: the time since
//!   the leader's last AppendEntries, ticks with none, the spread of their intervals; the
//!   leader-internal columns are 0 (it cannot see them).
//!
//! **Decision.** The row goes through the slot's host like every slot's input (static rule,
//! ONNX model or WASM plugin, with shadow, canary, the guard and the fallback; recorded in the
//! decision telemetry with the tick number as key). On the leader, when the failure probability
//! is at or above `threshold` for `consecutive_ticks` ticks in a row, hand-over is on, at
//! least `min_interval_ms` passed since this node's last hand-over, and the trigger is armed
//! (it re-arms once the probability falls below `release`: hysteresis), the leader transfers
//! leadership through openraft to the healthiest follower: the voter with the smallest
//! replication lag, then the smallest round trip. A follower's score is published
//! (`GET /v1/cluster`, `aurigraph_leader_health_probability`) and not acted on.
//!
//! **Timing.** The monitor derives the election timing the measured round trips allow:
//! `election_min = clamp(max(rtt_multiple x RTT p99, 3 x heartbeat), election_floor_ms,
//! election_ceiling_ms)`, `election_max = 2 x election_min`, where the RTT p99 is the median
//! of the per-tick RTT p99 over the leader's last minute of healthy ticks (its own score
//! below `release`; at least 10 s of them): a spell of degradation, which inflates the round
//! trips the leader measures, does not stretch the timing. It is published and written to
//! `DATA_DIR/raft-timing.json` every 10 s on the leader; with `adaptive_timing = true` a
//! replica starts with the timing in that file (openraft fixes a replica's timeouts when it
//! starts, so a change takes effect at the next start), and with the configured timing when
//! there is none.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aurigraph_consensus::leadership::LinkStats;
use aurigraph_consensus::replica::{self, ReplicaStatus};
use aurigraph_decision::SlotKind;
use aurigraph_decision::slot::leader_health::LeaderHealthFeatures;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::node::NodeCore;

/// `[leader_health]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderHealthConfig {
    /// Run the monitor on a cluster replica. Default true.
    pub enabled: bool,
    /// Let the leader hand over when its score crosses `threshold`. Default true.
    pub handover: bool,
    /// Tick, ms. Default 100.
    pub tick_ms: u64,
    /// Ticks in the feature window. Default 20.
    pub window_ticks: usize,
    /// Failure probability at or above which the leader hands over. Default 0.8.
    pub threshold: f64,
    /// Probability below which the trigger re-arms (hysteresis). Default 0.5.
    pub release: f64,
    /// Ticks in a row at or above `threshold` before a hand-over. Default 3.
    pub consecutive_ticks: u32,
    /// Least time between two hand-overs by this node, ms. Default 30,000.
    pub min_interval_ms: u64,
    /// Start the replica with the election timing derived from measured round trips (see the
    /// module docs). Default true.
    pub adaptive_timing: bool,
    /// Lowest election timeout the derived timing may use, ms. Default 150.
    pub election_floor_ms: u64,
    /// Highest, ms. Default 5,000.
    pub election_ceiling_ms: u64,
    /// Election timeout as a multiple of the RTT p99, at least. Default 10.
    pub rtt_multiple: f64,
}

impl Default for LeaderHealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            handover: true,
            tick_ms: 100,
            window_ticks: 20,
            threshold: 0.8,
            release: 0.5,
            consecutive_ticks: 3,
            min_interval_ms: 30_000,
            adaptive_timing: true,
            election_floor_ms: 150,
            election_ceiling_ms: 5_000,
            rtt_multiple: 10.0,
        }
    }
}

impl LeaderHealthConfig {
    /// Checks the section.
    pub fn validate(&self) -> Result<(), String> {
        if self.tick_ms == 0 || self.window_ticks < 2 || self.consecutive_ticks == 0 {
            return Err(
                "leader_health: tick_ms, consecutive_ticks must be >= 1 and window_ticks >= 2"
                    .into(),
            );
        }
        let ordered = self.threshold > 0.0
            && self.threshold <= 1.0
            && (0.0..=self.threshold).contains(&self.release);
        if !ordered {
            return Err(
                "leader_health: need 0 < threshold <= 1 and 0 <= release <= threshold".into(),
            );
        }
        if self.election_floor_ms == 0
            || self.election_ceiling_ms < self.election_floor_ms
            || !(self.rtt_multiple.is_finite() && self.rtt_multiple >= 1.0)
        {
            return Err(
                "leader_health: need 0 < election_floor_ms <= election_ceiling_ms and rtt_multiple >= 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Election timing, ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Election timeout range.
    pub election_min_ms: u64,
    /// Upper end.
    pub election_max_ms: u64,
}

/// The election timing the measured `rtt_p99_ms` allows under `c`'s bounds, with heartbeat
/// `heartbeat_ms` (see the module docs).
pub fn derive_timing(c: &LeaderHealthConfig, heartbeat_ms: u64, rtt_p99_ms: f64) -> Timing {
    let by_rtt = if rtt_p99_ms.is_finite() && rtt_p99_ms > 0.0 {
        (rtt_p99_ms * c.rtt_multiple).ceil() as u64
    } else {
        0
    };
    let min = by_rtt
        .max(heartbeat_ms.saturating_mul(3))
        .clamp(c.election_floor_ms, c.election_ceiling_ms);
    Timing {
        heartbeat_ms,
        election_min_ms: min,
        election_max_ms: min.saturating_mul(2),
    }
}

/// Healthy leader ticks whose RTT p99 the derived timing reads (a minute at 100 ms).
const HEALTHY_TICKS_KEPT: usize = 600;
/// Healthy ticks needed before a timing is derived (10 s at 100 ms).
const HEALTHY_TICKS_NEEDED: usize = 100;

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// The file the derived timing is kept in, under the data dir.
pub const TIMING_FILE: &str = "raft-timing.json";

/// The derived timing kept by an earlier run, when it reads back.
pub fn stored_timing(data_dir: &std::path::Path) -> Option<Timing> {
    let text = std::fs::read_to_string(data_dir.join(TIMING_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A hand-over this node made.
#[derive(Clone, Debug, Serialize)]
pub struct Handover {
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// This node.
    pub from: u64,
    /// The follower it handed to.
    pub to: u64,
    /// The probability that triggered it.
    pub probability: f64,
    /// What answered (`static`, `onnx`, `wasm`) and its name.
    pub answered_by: String,
    /// The policy's name and version.
    pub policy: String,
}

/// What the monitor publishes (`GET /v1/cluster` `leader_health`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct HealthView {
    /// The last failure probability.
    pub probability: f64,
    /// What answered it (`static`, `onnx`, `wasm`).
    pub answered_by: String,
    /// Whether this node scored itself as the leader.
    pub self_scored: bool,
    /// Hand-overs this node made since it started.
    pub handovers: u64,
    /// The last of them.
    pub last_handover: Option<Handover>,
    /// Ticks scored.
    pub ticks: u64,
    /// The last feature row.
    pub features: Option<LeaderHealthFeatures>,
    /// RTT p99 over the window, ms (leader).
    pub rtt_p99_ms: f64,
    /// The median per-tick RTT p99 of this node's last minute of healthy ticks as leader, ms:
    /// what the derived timing reads (`None` before 10 s of them).
    pub typical_rtt_p99_ms: Option<f64>,
    /// The timing in force.
    pub timing: Option<Timing>,
    /// The timing the measured RTT allows.
    pub derived_timing: Option<Timing>,
}

/// Shared between the replica's hooks, its applier and the monitor.
#[derive(Debug, Default)]
pub struct Health {
    /// AppendEntries round trips and arrivals.
    pub stats: Arc<LinkStats>,
    appends: Mutex<VecDeque<(Instant, f32)>>,
    applies: Mutex<VecDeque<(Instant, f32)>>,
    view: Mutex<HealthView>,
}

const KEPT: usize = 4_096;

fn push(q: &Mutex<VecDeque<(Instant, f32)>>, ms: f32) {
    let mut q = q.lock();
    if q.len() >= KEPT {
        q.pop_front();
    }
    q.push_back((Instant::now(), ms));
}

fn since(q: &Mutex<VecDeque<(Instant, f32)>>, t: Instant) -> Vec<f32> {
    q.lock()
        .iter()
        .filter(|(at, _)| *at >= t)
        .map(|(_, v)| *v)
        .collect()
}

impl Health {
    /// A log append took `d`.
    pub fn record_append(&self, d: Duration) {
        push(&self.appends, d.as_secs_f32() * 1e3);
    }

    /// A block apply took `d`.
    pub fn record_apply(&self, d: Duration) {
        push(&self.applies, d.as_secs_f32() * 1e3);
    }

    /// What the monitor last published.
    pub fn view(&self) -> HealthView {
        self.view.lock().clone()
    }

    pub(crate) fn set_timing(&self, t: Timing) {
        self.view.lock().timing = Some(t);
    }
}

fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

fn std_dev(v: &[f32]) -> f32 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt()
}

fn p99(v: &[f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let i = ((s.len() as f64 * 0.99).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

/// Least-squares slope of `v` against its index (per tick).
pub fn slope(v: &[f32]) -> f32 {
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    let xm = (n as f32 - 1.0) / 2.0;
    let ym = mean(v);
    let (mut num, mut den) = (0.0f32, 0.0f32);
    for (i, y) in v.iter().enumerate() {
        let dx = i as f32 - xm;
        num += dx * (y - ym);
        den += dx * dx;
    }
    if den == 0.0 { 0.0 } else { num / den }
}

/// The intervals between consecutive instants, ms.
fn intervals(at: &[Instant]) -> Vec<f32> {
    at.windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f32() * 1e3)
        .collect()
}

/// One tick's figures, kept for the window.
#[derive(Clone, Copy, Debug, Default)]
struct Tick {
    at: Option<Instant>,
    rtt_mean: f32,
    fsync_mean: f32,
    missed: bool,
    lag_ms: f32,
    cpu_s: f64,
    rss_mb: f64,
}

/// The trigger's state: consecutive ticks at or above the threshold, armed or not, the last
/// hand-over.
#[derive(Debug)]
pub struct Trigger {
    above: u32,
    armed: bool,
    last: Option<Instant>,
}

impl Default for Trigger {
    fn default() -> Self {
        Self {
            above: 0,
            armed: true,
            last: None,
        }
    }
}

impl Trigger {
    /// Feeds one leader tick's probability; true when the leader should hand over now.
    pub fn feed(&mut self, c: &LeaderHealthConfig, p: f64, now: Instant) -> bool {
        if p < c.release {
            self.armed = true;
        }
        if p >= c.threshold {
            self.above = self.above.saturating_add(1);
        } else {
            self.above = 0;
        }
        let spaced = self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(c.min_interval_ms));
        if c.handover && self.armed && spaced && self.above >= c.consecutive_ticks {
            self.armed = false;
            self.above = 0;
            self.last = Some(now);
            return true;
        }
        false
    }

    /// Not the leader now: the streak ends (the hand-over spacing and arming stay).
    pub fn reset_streak(&mut self) {
        self.above = 0;
    }
}

/// The healthiest follower to hand over to: a voter other than `me`, smallest replication
/// lag, then smallest mean round trip (`rtt` per node, ms; unknown counts as slowest).
pub fn healthiest(status: &ReplicaStatus, me: u64, rtt: &[(u64, f32)]) -> Option<u64> {
    let lag = |id: u64| {
        status
            .lags
            .iter()
            .find(|(n, _)| *n == id)
            .map_or(u64::MAX, |(_, l)| *l)
    };
    let rtt_of = |id: u64| {
        rtt.iter()
            .find(|(n, _)| *n == id)
            .map_or(f32::INFINITY, |(_, r)| *r)
    };
    status
        .voters
        .iter()
        .copied()
        .filter(|v| *v != me)
        .min_by(|a, b| {
            lag(*a)
                .cmp(&lag(*b))
                .then(rtt_of(*a).total_cmp(&rtt_of(*b)))
        })
}

/// Runs the monitor of the node's replica until the node stops (see the module docs).
pub(crate) async fn run(core: Weak<NodeCore>, health: Arc<Health>) {
    let Some(c) = core.upgrade().map(|c| c.config.leader_health.clone()) else {
        return;
    };
    let tick = Duration::from_millis(c.tick_ms);
    let mut window: VecDeque<Tick> = VecDeque::with_capacity(c.window_ticks + 1);
    let mut trigger = Trigger::default();
    let mut next = tokio::time::Instant::now() + tick;
    let mut n: u64 = 0;
    let mut timing_saved = Instant::now();
    // Per-tick RTT p99 of the leader's healthy ticks (its score below `release`), the last
    // minute: the timing derives from their median, so a degraded spell does not stretch it.
    let mut healthy_rtt: VecDeque<f32> = VecDeque::with_capacity(HEALTHY_TICKS_KEPT);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    loop {
        tokio::time::sleep_until(next).await;
        let lag = tokio::time::Instant::now().saturating_duration_since(next);
        next += tick;
        if tokio::time::Instant::now() > next {
            // Far behind: skip the ticks missed rather than fire them at once.
            next = tokio::time::Instant::now() + tick;
        }
        let Some(core) = core.upgrade() else { return };
        if core.stop.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let Some(cluster) = core.cluster.get() else {
            continue;
        };
        let status = replica::status(&cluster.raft);
        let Some(leader) = status.leader else {
            window.clear();
            trigger.reset_streak();
            continue;
        };
        n += 1;
        let me = status.id;
        let leading = leader == me && replica::is_leader(&cluster.raft);
        let now = Instant::now();
        let tick_start = now - tick;
        let hb = core.config.cluster.heartbeat_ms.max(1) as f32;
        let timing = health.view.lock().timing;
        let election = timing.map_or(hb * 5.0, |t| t.election_min_ms as f32);
        // This tick's figures.
        let rtts = health.stats.rtts_since(tick_start);
        let rtt_ms: Vec<f32> = rtts.iter().map(|r| r.2.as_secs_f32() * 1e3).collect();
        let fsync = since(&health.appends, tick_start);
        let arrivals = health.stats.arrivals_since(tick_start);
        let missed = if leading {
            status
                .quorum_acked_ms_ago
                .is_none_or(|a| a as f32 > 2.0 * hb)
        } else {
            arrivals.is_empty()
        };
        window.push_back(Tick {
            at: Some(now),
            rtt_mean: mean(&rtt_ms),
            fsync_mean: mean(&fsync),
            missed,
            lag_ms: lag.as_secs_f32() * 1e3,
            cpu_s: crate::metrics::process_cpu_seconds().unwrap_or(0.0),
            rss_mb: crate::metrics::process_resident_bytes().unwrap_or(0) as f64 / 1e6,
        });
        while window.len() > c.window_ticks {
            window.pop_front();
        }
        let first = window.front().copied().unwrap_or_default();
        let span_s = first
            .at
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64())
            .max(1e-3);
        let win_start = first.at.unwrap_or(now) - tick;
        let missed_n = window.iter().filter(|t| t.missed).count() as f32;
        let tick_lag = mean(&window.iter().map(|t| t.lag_ms).collect::<Vec<_>>());
        let f = if leading {
            let win_rtts = health.stats.rtts_since(win_start);
            let all: Vec<f32> = win_rtts.iter().map(|r| r.2.as_secs_f32() * 1e3).collect();
            // Spread of the intervals between one follower's acknowledgements, averaged.
            let mut per: std::collections::BTreeMap<u64, Vec<Instant>> = Default::default();
            for (at, id, _) in &win_rtts {
                per.entry(*id).or_default().push(*at);
            }
            let jitters: Vec<f32> = per.values().map(|v| std_dev(&intervals(v))).collect();
            let fsync_w = since(&health.appends, win_start);
            let last = window.back().copied().unwrap_or_default();
            LeaderHealthFeatures {
                heartbeat_interval_ms: hb,
                election_timeout_ms: election,
                ms_since_last_heartbeat: status.quorum_acked_ms_ago.unwrap_or(0) as f32,
                missed_heartbeats: missed_n,
                rtt_mean_ms: mean(&all),
                rtt_p99_ms: p99(&all),
                rtt_trend: slope(&window.iter().map(|t| t.rtt_mean).collect::<Vec<_>>()),
                replication_lag_entries: status.lags.iter().map(|l| l.1).max().unwrap_or(0) as f32,
                window_ticks: window.len() as f32,
                heartbeat_jitter_ms: mean(&jitters),
                fsync_ms_mean: mean(&fsync_w),
                fsync_ms_trend: slope(&window.iter().map(|t| t.fsync_mean).collect::<Vec<_>>()),
                apply_ms_mean: mean(&since(&health.applies, win_start)),
                cpu_utilisation: (((last.cpu_s - first.cpu_s) / span_s / cores).clamp(0.0, 1.0))
                    as f32,
                tick_lag_ms: tick_lag,
                rss_growth_mb_s: ((last.rss_mb - first.rss_mb) / span_s) as f32,
                mempool_depth: core.pipeline.mempool().len() as f32,
                self_scored: 1.0,
            }
        } else {
            let seen = health.stats.arrivals_since(win_start);
            let since_last = health
                .stats
                .last_arrival()
                .map_or(election, |t| now.duration_since(t).as_secs_f32() * 1e3);
            LeaderHealthFeatures {
                heartbeat_interval_ms: hb,
                election_timeout_ms: election,
                ms_since_last_heartbeat: since_last,
                missed_heartbeats: missed_n,
                window_ticks: window.len() as f32,
                heartbeat_jitter_ms: std_dev(&intervals(&seen)),
                ..LeaderHealthFeatures::default()
            }
        };
        let decision = match core.hosts[&SlotKind::LeaderHealth].decide(n, &f.matrix()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "leader_health decision failed");
                continue;
            }
        };
        let p = f64::from(decision.values.first().copied().unwrap_or(0.0));
        let answered = &decision.tag.answered_by;
        core.metrics.leader_health_probability(p);
        if leading && p < c.release && !rtt_ms.is_empty() {
            if healthy_rtt.len() >= HEALTHY_TICKS_KEPT {
                healthy_rtt.pop_front();
            }
            healthy_rtt.push_back(p99(&rtt_ms));
        }
        let typical = (healthy_rtt.len() >= HEALTHY_TICKS_NEEDED)
            .then(|| f64::from(median(healthy_rtt.iter().copied().collect())));
        {
            let mut v = health.view.lock();
            v.probability = p;
            v.answered_by = answered.backend.as_str().to_string();
            v.self_scored = leading;
            v.ticks = n;
            v.features = Some(f);
            if leading {
                v.rtt_p99_ms = f64::from(f.rtt_p99_ms);
            }
            if let Some(rtt) = typical {
                v.typical_rtt_p99_ms = Some(rtt);
                v.derived_timing = Some(derive_timing(&c, hb as u64, rtt));
            }
        }
        if let Some(rtt) = typical
            && leading
            && timing_saved.elapsed() >= Duration::from_secs(10)
        {
            timing_saved = Instant::now();
            save_timing(&core, derive_timing(&c, hb as u64, rtt));
        }
        if !leading {
            trigger.reset_streak();
            continue;
        }
        if !trigger.feed(&c, p, now) {
            continue;
        }
        let per_node: Vec<(u64, f32)> = {
            let mut m: std::collections::BTreeMap<u64, Vec<f32>> = Default::default();
            for (_, id, d) in health.stats.rtts_since(win_start) {
                m.entry(id).or_default().push(d.as_secs_f32() * 1e3);
            }
            m.into_iter().map(|(id, v)| (id, mean(&v))).collect()
        };
        let Some(to) = healthiest(&status, me, &per_node) else {
            tracing::warn!(
                probability = p,
                "leader_health: no follower to hand over to"
            );
            continue;
        };
        let h = Handover {
            at_ms: crate::node::producer::now_ms(),
            from: me,
            to,
            probability: p,
            answered_by: answered.backend.as_str().to_string(),
            policy: format!("{}@{}", answered.name, answered.version),
        };
        tracing::warn!(
            to,
            probability = p,
            answered_by = %h.answered_by,
            policy = %h.policy,
            tick = n,
            "leader_health: handing leadership over before this leader fails"
        );
        match replica::transfer_leader(&cluster.raft, to).await {
            Ok(()) => {
                core.metrics.leader_handover(&h.answered_by);
                let mut v = health.view.lock();
                v.handovers += 1;
                v.last_handover = Some(h);
            }
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "leader_health: hand-over failed")
            }
        }
    }
}

fn save_timing(core: &NodeCore, t: Timing) {
    let path = core.config.data_dir.join(TIMING_FILE);
    let tmp = path.with_extension("json.tmp");
    let written = serde_json::to_vec_pretty(&t)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot keep the derived Raft timing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_needs_a_streak_rearms_below_release_and_spaces_hand_overs() {
        let c = LeaderHealthConfig {
            consecutive_ticks: 2,
            min_interval_ms: 1_000,
            ..LeaderHealthConfig::default()
        };
        let t0 = Instant::now();
        let mut t = Trigger::default();
        assert!(!t.feed(&c, 0.9, t0));
        assert!(
            !t.feed(&c, 0.7, t0),
            "a tick below the threshold ends the streak"
        );
        assert!(!t.feed(&c, 0.9, t0));
        assert!(t.feed(&c, 0.95, t0), "two in a row");
        // Disarmed until the probability falls below `release`.
        for _ in 0..5 {
            assert!(!t.feed(&c, 0.99, t0 + Duration::from_secs(5)));
        }
        assert!(!t.feed(&c, 0.4, t0 + Duration::from_secs(5)));
        assert!(!t.feed(&c, 0.9, t0 + Duration::from_millis(500)));
        assert!(
            !t.feed(&c, 0.9, t0 + Duration::from_millis(600)),
            "within min_interval of the last"
        );
        assert!(t.feed(&c, 0.9, t0 + Duration::from_millis(1_100)));
        let off = LeaderHealthConfig {
            handover: false,
            consecutive_ticks: 1,
            ..LeaderHealthConfig::default()
        };
        assert!(!Trigger::default().feed(&off, 1.0, t0));
    }

    #[test]
    fn timing_follows_the_rtt_within_its_bounds() {
        let c = LeaderHealthConfig::default();
        let t = derive_timing(&c, 100, 2.0);
        assert_eq!(
            (t.election_min_ms, t.election_max_ms),
            (300, 600),
            "3 x heartbeat"
        );
        let t = derive_timing(&c, 20, 1.0);
        assert_eq!(t.election_min_ms, 150, "the floor");
        let t = derive_timing(&c, 100, 80.0);
        assert_eq!(t.election_min_ms, 800, "10 x RTT p99");
        let t = derive_timing(&c, 100, 1e6);
        assert_eq!(t.election_min_ms, 5_000, "the ceiling");
        assert!(c.validate().is_ok());
        let bad = LeaderHealthConfig {
            release: 0.9,
            ..LeaderHealthConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_healthiest_follower_has_the_least_lag_then_the_fastest_link() {
        let status = ReplicaStatus {
            id: 1,
            leader: Some(1),
            term: 3,
            state: "leader".into(),
            last_applied: None,
            last_log: None,
            members: Vec::new(),
            voters: vec![1, 2, 3, 4],
            stopped: None,
            lags: vec![(2, 5), (3, 0), (4, 0)],
            quorum_acked_ms_ago: Some(10),
        };
        assert_eq!(healthiest(&status, 1, &[(3, 9.0), (4, 2.0)]), Some(4));
        assert_eq!(healthiest(&status, 1, &[(3, 1.0)]), Some(3));
        assert_eq!(slope(&[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(slope(&[5.0]), 0.0);
        assert_eq!(p99(&[1.0, 2.0, 100.0]), 100.0);
    }
}
