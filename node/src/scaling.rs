//! Scaling advice from the `demand` forecast: how many business replicas the forecast load
//! needs, moved toward by bounded steps and held by cooldowns, so an autoscaler (the chart's
//! HorizontalPodAutoscaler on `aurigraph_scaling_desired_replicas`) can follow it.
//!
//! # The advice
//!
//! [`ScalingAdvisor::advise`] takes a forecast arrival rate (tx/s) and the time, and answers
//! an [`Advice`]:
//!
//! ```text
//! capacity_per_replica = capacity_tps_per_core * cores_per_replica
//! needed  = ceil(forecast * (1 + burst_headroom + rolling_update_headroom) / capacity_per_replica)
//! target  = clamp(needed, min_replicas, max_replicas)
//! desired = current + min(target - current, scale_up_step)    when target > current and the up cooldown is over
//!         = current - min(current - target, scale_down_step)  when target < current and the down cooldown is over
//!         = current                                            otherwise
//! ```
//!
//! `burst_headroom` (default 0.20) covers bursts inside a forecast interval,
//! `rolling_update_headroom` (0.10) the replica a rolling update takes out. Cooldowns count
//! from the last change, whatever its direction: a move up waits `scale_up_cooldown_s`
//! (600 s), a move down `scale_down_cooldown_s` (1,800 s). So the advice never changes twice
//! within a cooldown, a scale-down never follows a scale-up by less than the down cooldown
//! (no flapping), and one move is at most `scale_up_step` (2) up or `scale_down_step` (1)
//! down. The advisor is pure and deterministic: the clock is an argument ([`Duration`] since
//! any fixed origin; the node passes Unix time), nothing sleeps.
//!
//! # Capacity
//!
//! Capacity per core is **configured** (`scaling.capacity_tps_per_core`, default 5,000
//! tx/s: the 3-node cluster's measured 9.9-19.8 k committed tx/s on 2 cores in
//! `docs/PERFORMANCE.md`, rounded down). It is not measured by the running node: a node
//! shows its capacity only while saturated, which a correctly scaled node never is, and a
//! figure measured below saturation would understate it and over-scale. Measure it with the
//! benchmarks on the target machines and configure it.
//!
//! # In the node
//!
//! Each second the producer asks the `demand` slot for the forecast of the next 8 intervals
//! and calls `observe_forecast` with it: the advisor takes the forecast's **maximum over
//! the horizon**, so on a rising load it answers for the highest rate expected in the next 8
//! seconds (scaling up before the peak, by the lead of the horizon and the replicas' start-up
//! covered by the headroom), while on a falling load the maximum is the nearest interval, so
//! it scales down only once the load has dropped. The advice is served at `GET /v1/scaling`
//! and as the gauges `aurigraph_demand_forecast_tps` and `aurigraph_scaling_desired_replicas`.
//!
//! In a cluster, followers forward submissions to the leader, so the leader's arrival rate
//! is the cluster's and its advice is the one that counts: aggregate the gauge with `max`
//! over the replicas.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A scaling policy or configuration outside its ranges, with the stable code
/// `E_SCALING_POLICY`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("[E_SCALING_POLICY] {0}")]
pub struct ScalingError(pub String);

impl ScalingError {
    /// The stable code: `E_SCALING_POLICY`.
    pub fn code(&self) -> &'static str {
        "E_SCALING_POLICY"
    }
}

/// The `[scaling]` section: the replicas deployed now and the [`ScalingPolicy`] in plain
/// units (cooldowns in seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScalingConfig {
    /// Replicas deployed when the node starts (the chart sets the business StatefulSet's
    /// count): the advice starts from it (clamped to the bounds). Default 1.
    pub current_replicas: u32,
    /// Fewest replicas advised, at least 1. Default 1.
    pub min_replicas: u32,
    /// Most replicas advised, at least `min_replicas`, at most 10,000. Default 10.
    pub max_replicas: u32,
    /// Committed tx/s one core sustains, configured (see the [module docs](self)). Default
    /// 5,000.
    pub capacity_tps_per_core: f64,
    /// Cores of one replica. Default 2.
    pub cores_per_replica: f64,
    /// Share added to the forecast for bursts, `0..=10`. Default 0.20.
    pub burst_headroom: f64,
    /// Share added for the replica a rolling update takes out, `0..=10`. Default 0.10.
    pub rolling_update_headroom: f64,
    /// Most replicas added by one move, at least 1. Default 2.
    pub scale_up_step: u32,
    /// Seconds after a change before a move up, at most 604,800. Default 600.
    pub scale_up_cooldown_s: u64,
    /// Most replicas removed by one move, at least 1. Default 1.
    pub scale_down_step: u32,
    /// Seconds after a change before a move down, at most 604,800. Default 1,800.
    pub scale_down_cooldown_s: u64,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        let p = ScalingPolicy::default();
        Self {
            current_replicas: 1,
            min_replicas: p.min_replicas,
            max_replicas: p.max_replicas,
            capacity_tps_per_core: p.capacity_tps_per_core,
            cores_per_replica: p.cores_per_replica,
            burst_headroom: p.burst_headroom,
            rolling_update_headroom: p.rolling_update_headroom,
            scale_up_step: p.up_step,
            scale_up_cooldown_s: p.up_cooldown.as_secs(),
            scale_down_step: p.down_step,
            scale_down_cooldown_s: p.down_cooldown.as_secs(),
        }
    }
}

/// Longest cooldown accepted: a week.
const MAX_COOLDOWN: Duration = Duration::from_secs(7 * 24 * 3_600);

impl ScalingConfig {
    /// The policy this section describes, checked ([`ScalingPolicy::validate`]).
    pub fn policy(&self) -> Result<ScalingPolicy, ScalingError> {
        let p = ScalingPolicy {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            capacity_tps_per_core: self.capacity_tps_per_core,
            cores_per_replica: self.cores_per_replica,
            burst_headroom: self.burst_headroom,
            rolling_update_headroom: self.rolling_update_headroom,
            up_step: self.scale_up_step,
            up_cooldown: Duration::from_secs(self.scale_up_cooldown_s),
            down_step: self.scale_down_step,
            down_cooldown: Duration::from_secs(self.scale_down_cooldown_s),
        };
        p.validate()?;
        Ok(p)
    }
}

/// How the advice is computed; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScalingPolicy {
    /// Fewest replicas advised.
    pub min_replicas: u32,
    /// Most replicas advised.
    pub max_replicas: u32,
    /// Committed tx/s one core sustains.
    pub capacity_tps_per_core: f64,
    /// Cores of one replica.
    pub cores_per_replica: f64,
    /// Share added to the forecast for bursts.
    pub burst_headroom: f64,
    /// Share added for the replica a rolling update takes out.
    pub rolling_update_headroom: f64,
    /// Most replicas added by one move.
    pub up_step: u32,
    /// Time after a change before a move up.
    pub up_cooldown: Duration,
    /// Most replicas removed by one move.
    pub down_step: u32,
    /// Time after a change before a move down.
    pub down_cooldown: Duration,
}

impl Default for ScalingPolicy {
    /// 20% burst and 10% rolling-update headroom, up 2 with a 600 s cooldown, down 1 with
    /// 1,800 s, 1 to 10 replicas of 2 cores at 5,000 tx/s each.
    fn default() -> Self {
        Self {
            min_replicas: 1,
            max_replicas: 10,
            capacity_tps_per_core: 5_000.0,
            cores_per_replica: 2.0,
            burst_headroom: 0.20,
            rolling_update_headroom: 0.10,
            up_step: 2,
            up_cooldown: Duration::from_secs(600),
            down_step: 1,
            down_cooldown: Duration::from_secs(1_800),
        }
    }
}

impl ScalingPolicy {
    /// Checks the ranges documented on [`ScalingConfig`].
    pub fn validate(&self) -> Result<(), ScalingError> {
        let bad = |m: String| Err(ScalingError(m));
        if self.min_replicas == 0 || self.min_replicas > self.max_replicas {
            return bad(format!(
                "scaling.min_replicas must be in 1..=scaling.max_replicas, got {} and {}",
                self.min_replicas, self.max_replicas
            ));
        }
        if self.max_replicas > 10_000 {
            return bad(format!(
                "scaling.max_replicas must be at most 10000, got {}",
                self.max_replicas
            ));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.capacity_tps_per_core) || !positive(self.cores_per_replica) {
            return bad(format!(
                "scaling.capacity_tps_per_core and cores_per_replica must be positive, got {} and {}",
                self.capacity_tps_per_core, self.cores_per_replica
            ));
        }
        let share = |v: f64| (0.0..=10.0).contains(&v);
        if !share(self.burst_headroom) || !share(self.rolling_update_headroom) {
            return bad(format!(
                "scaling.burst_headroom and rolling_update_headroom must be in 0..=10, got {} and {}",
                self.burst_headroom, self.rolling_update_headroom
            ));
        }
        if self.up_step == 0 || self.down_step == 0 {
            return bad("scaling.scale_up_step and scale_down_step must be at least 1".into());
        }
        if self.up_cooldown > MAX_COOLDOWN || self.down_cooldown > MAX_COOLDOWN {
            return bad(
                "scaling.scale_up_cooldown_s and scale_down_cooldown_s must be at most 604800 (a week)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Committed tx/s one replica sustains.
    pub fn capacity_tps_per_replica(&self) -> f64 {
        self.capacity_tps_per_core * self.cores_per_replica
    }

    /// `ceil(forecast * (1 + burst + rolling) / capacity_per_replica)`, before bounds; a
    /// negative or non-finite forecast counts as 0.
    pub fn needed_replicas(&self, forecast_tps: f64) -> u32 {
        let f = if forecast_tps.is_finite() {
            forecast_tps.max(0.0)
        } else {
            0.0
        };
        let load = f * (1.0 + self.burst_headroom + self.rolling_update_headroom);
        // A hair below an exact multiple is that multiple (1000 * 1.3 / 100 is 13.000000000000002).
        let n = (load / self.capacity_tps_per_replica() - 1e-9).ceil();
        n.clamp(0.0, f64::from(u32::MAX)) as u32
    }
}

/// Why the advice is what it is; serialized as its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No forecast yet: the advice is the replicas deployed.
    NoForecast,
    /// The replicas needed are the replicas advised.
    Steady,
    /// Moved up (by at most the up step).
    ScaleUp,
    /// Moved down (by at most the down step).
    ScaleDown,
    /// More are needed, held until the up cooldown is over.
    UpCooldown,
    /// Fewer are needed, held until the down cooldown is over.
    DownCooldown,
    /// More than `max_replicas` are needed: held at the bound.
    AtMax,
    /// Fewer than `min_replicas` are needed: held at the bound.
    AtMin,
}

impl Reason {
    /// The code, as in the JSON: `no_forecast`, `steady`, `scale_up`, `scale_down`,
    /// `up_cooldown`, `down_cooldown`, `at_max`, `at_min`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoForecast => "no_forecast",
            Reason::Steady => "steady",
            Reason::ScaleUp => "scale_up",
            Reason::ScaleDown => "scale_down",
            Reason::UpCooldown => "up_cooldown",
            Reason::DownCooldown => "down_cooldown",
            Reason::AtMax => "at_max",
            Reason::AtMin => "at_min",
        }
    }
}

/// One advice; see the [module docs](self) for the formulas.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advice {
    /// The forecast it was computed from, tx/s.
    pub forecast_tps: f64,
    /// Committed tx/s one replica sustains.
    pub capacity_tps_per_replica: f64,
    /// Replicas the forecast with headroom needs, before bounds, steps and cooldowns.
    pub needed_replicas: u32,
    /// Replicas advised: after steps, cooldowns and bounds.
    pub desired_replicas: u32,
    /// The replicas advised before this advice.
    pub previous_replicas: u32,
    /// Why.
    pub reason: Reason,
    /// When it was computed.
    pub at: Duration,
    /// When the move the need points to is allowed: the up cooldown's end when more are
    /// needed, the down cooldown's end when fewer are, the earlier of the two otherwise;
    /// after a move, when a next move in the same direction is.
    pub next_change_allowed_at: Duration,
}

impl Advice {
    /// The advice in words.
    pub fn message(&self) -> String {
        let base = format!(
            "forecast {:.0} tx/s with headroom needs {} replicas of {:.0} tx/s",
            self.forecast_tps, self.needed_replicas, self.capacity_tps_per_replica
        );
        let (from, to) = (self.previous_replicas, self.desired_replicas);
        match self.reason {
            Reason::NoForecast => format!("no forecast yet: {to} replicas (as deployed)"),
            Reason::Steady => format!("{base}: {to} advised"),
            Reason::ScaleUp => format!("{base}: up from {from} to {to}"),
            Reason::ScaleDown => format!("{base}: down from {from} to {to}"),
            Reason::UpCooldown => format!("{base}: held at {to} until the up cooldown ends"),
            Reason::DownCooldown => format!("{base}: held at {to} until the down cooldown ends"),
            Reason::AtMax => format!("{base}: held at the maximum, {to}"),
            Reason::AtMin => format!("{base}: held at the minimum, {to}"),
        }
    }
}

/// Turns forecasts into advice under a [`ScalingPolicy`]; keeps the replicas advised and
/// the time of the last change. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct ScalingAdvisor {
    policy: ScalingPolicy,
    deployed: u32,
    current: u32,
    last_change: Option<Duration>,
    last: Option<Advice>,
}

impl ScalingAdvisor {
    /// An advisor starting from `deployed` replicas (clamped to the bounds), with no change
    /// yet (so the first move waits for no cooldown). Refused when the policy is invalid.
    pub fn new(policy: ScalingPolicy, deployed: u32) -> Result<Self, ScalingError> {
        policy.validate()?;
        let current = deployed.clamp(policy.min_replicas, policy.max_replicas);
        Ok(Self {
            policy,
            deployed,
            current,
            last_change: None,
            last: None,
        })
    }

    /// The advisor of a `[scaling]` section.
    pub fn from_config(config: &ScalingConfig) -> Result<Self, ScalingError> {
        Self::new(config.policy()?, config.current_replicas)
    }

    /// The policy.
    pub fn policy(&self) -> &ScalingPolicy {
        &self.policy
    }

    /// The replicas deployed at start, as configured.
    pub fn deployed_replicas(&self) -> u32 {
        self.deployed
    }

    /// The replicas advised now.
    pub fn desired_replicas(&self) -> u32 {
        self.current
    }

    /// The last advice, `None` before the first forecast.
    pub fn last(&self) -> Option<&Advice> {
        self.last.as_ref()
    }

    fn allowed_at(&self, cooldown: Duration) -> Duration {
        self.last_change
            .map_or(Duration::ZERO, |c| c.saturating_add(cooldown))
    }

    /// The advice for `forecast_tps` at `now` (a time not before the previous call's; an
    /// earlier one counts as the previous). Never moves against a cooldown; a move is at
    /// most one step.
    pub fn advise(&mut self, forecast_tps: f64, now: Duration) -> Advice {
        let now = self.last.as_ref().map_or(now, |l| now.max(l.at));
        let p = &self.policy;
        let needed = p.needed_replicas(forecast_tps);
        let target = needed.clamp(p.min_replicas, p.max_replicas);
        let up_at = self.allowed_at(p.up_cooldown);
        let down_at = self.allowed_at(p.down_cooldown);
        let previous = self.current;
        let (desired, reason, next) = if target > previous {
            if now < up_at {
                (previous, Reason::UpCooldown, up_at)
            } else {
                let to = previous.saturating_add(p.up_step).min(target);
                (to, Reason::ScaleUp, now.saturating_add(p.up_cooldown))
            }
        } else if target < previous {
            if now < down_at {
                (previous, Reason::DownCooldown, down_at)
            } else {
                let to = previous.saturating_sub(p.down_step).max(target);
                (to, Reason::ScaleDown, now.saturating_add(p.down_cooldown))
            }
        } else {
            let reason = if needed > p.max_replicas {
                Reason::AtMax
            } else if needed < p.min_replicas {
                Reason::AtMin
            } else {
                Reason::Steady
            };
            (previous, reason, up_at.min(down_at).max(now))
        };
        if desired != previous {
            self.current = desired;
            self.last_change = Some(now);
        }
        let advice = Advice {
            forecast_tps: if forecast_tps.is_finite() {
                forecast_tps.max(0.0)
            } else {
                0.0
            },
            capacity_tps_per_replica: p.capacity_tps_per_replica(),
            needed_replicas: needed,
            desired_replicas: desired,
            previous_replicas: previous,
            reason,
            at: now,
            next_change_allowed_at: next.max(now),
        };
        self.last = Some(advice.clone());
        advice
    }

    /// What `GET /v1/scaling` answers: the last advice, or before the first forecast the
    /// replicas deployed with the reason `no_forecast`.
    pub fn status(&self) -> ScalingStatus {
        let p = &self.policy;
        let policy = PolicyView {
            min_replicas: p.min_replicas,
            max_replicas: p.max_replicas,
            capacity_tps_per_core: p.capacity_tps_per_core,
            capacity_source: "configured",
            cores_per_replica: p.cores_per_replica,
            burst_headroom: p.burst_headroom,
            rolling_update_headroom: p.rolling_update_headroom,
            scale_up_step: p.up_step,
            scale_up_cooldown_s: p.up_cooldown.as_secs(),
            scale_down_step: p.down_step,
            scale_down_cooldown_s: p.down_cooldown.as_secs(),
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match &self.last {
            None => ScalingStatus {
                forecast_tps: None,
                capacity_tps_per_replica: p.capacity_tps_per_replica(),
                current_replicas: self.deployed,
                needed_replicas: None,
                desired_replicas: self.current,
                reason: Reason::NoForecast,
                message: format!("no forecast yet: {} replicas (as deployed)", self.current),
                at_ms: None,
                cooldown_until_ms: None,
                policy,
            },
            Some(a) => ScalingStatus {
                forecast_tps: Some(a.forecast_tps),
                capacity_tps_per_replica: a.capacity_tps_per_replica,
                current_replicas: self.deployed,
                needed_replicas: Some(a.needed_replicas),
                desired_replicas: a.desired_replicas,
                reason: a.reason,
                message: a.message(),
                at_ms: Some(ms(a.at)),
                cooldown_until_ms: (a.next_change_allowed_at > a.at)
                    .then(|| ms(a.next_change_allowed_at)),
                policy,
            },
        }
    }
}

/// The body of `GET /v1/scaling`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScalingStatus {
    /// The forecast of the last advice (the maximum over the `demand` horizon), tx/s; `null`
    /// before the first forecast.
    pub forecast_tps: Option<f64>,
    /// Committed tx/s one replica sustains.
    pub capacity_tps_per_replica: f64,
    /// The replicas deployed, as configured (`scaling.current_replicas`).
    pub current_replicas: u32,
    /// Replicas the forecast with headroom needs, before bounds, steps and cooldowns.
    pub needed_replicas: Option<u32>,
    /// Replicas advised (the `aurigraph_scaling_desired_replicas` gauge).
    pub desired_replicas: u32,
    /// Why, as a code ([`Reason::as_str`]).
    pub reason: Reason,
    /// Why, in words.
    pub message: String,
    /// When the advice was computed, Unix ms.
    pub at_ms: Option<u64>,
    /// Until when the next move the need points to is held by a cooldown, Unix ms; `null`
    /// when a move would be allowed now.
    pub cooldown_until_ms: Option<u64>,
    /// The policy in use.
    pub policy: PolicyView,
}

/// The policy as `GET /v1/scaling` shows it (the `[scaling]` names).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyView {
    /// Fewest replicas advised.
    pub min_replicas: u32,
    /// Most replicas advised.
    pub max_replicas: u32,
    /// Committed tx/s one core sustains.
    pub capacity_tps_per_core: f64,
    /// Where the capacity comes from: `configured`.
    pub capacity_source: &'static str,
    /// Cores of one replica.
    pub cores_per_replica: f64,
    /// Burst headroom.
    pub burst_headroom: f64,
    /// Rolling-update headroom.
    pub rolling_update_headroom: f64,
    /// Most replicas added by one move.
    pub scale_up_step: u32,
    /// Up cooldown, seconds.
    pub scale_up_cooldown_s: u64,
    /// Most replicas removed by one move.
    pub scale_down_step: u32,
    /// Down cooldown, seconds.
    pub scale_down_cooldown_s: u64,
}

/// The forecast the advice is computed from: the largest value of the `demand` slot's
/// forecast over its horizon (0 for an empty or non-finite one). See the
/// [module docs](self) for why the maximum.
pub fn horizon_max(forecast: &[f32]) -> f64 {
    forecast
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(f64::from(v)))
}

/// Feeds one `demand` forecast to the node's advisor at the current Unix time and sets
/// the two gauges; with `block.batch_size_reads_forecast` also hands its first horizon
/// value to the pipeline as the `batch_size` slot's arrival rate, valid for 3
/// `telemetry.demand_interval_ms`. Called by the producer each interval.
pub(crate) fn observe_forecast(core: &crate::node::NodeCore, forecast: &[f32]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if core.config.block.batch_size_reads_forecast
        && let Some(next) = forecast.first()
    {
        let every = Duration::from_millis(core.config.telemetry.demand_interval_ms.max(1));
        core.pipeline.set_arrival_forecast(*next, every * 3);
    }
    let tps = horizon_max(forecast);
    let advice = core.scaling.lock().advise(tps, now);
    core.metrics
        .scaling_advice(advice.forecast_tps, advice.desired_replicas);
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn policy() -> ScalingPolicy {
        ScalingPolicy {
            min_replicas: 2,
            max_replicas: 12,
            capacity_tps_per_core: 50.0,
            cores_per_replica: 2.0,
            ..ScalingPolicy::default()
        }
    }

    #[test]
    fn needed_replicas_is_the_forecast_with_headroom_over_capacity() {
        let p = policy();
        assert_eq!(p.capacity_tps_per_replica(), 100.0);
        // 1,000 * 1.3 / 100 = 13 exactly (not 14 by rounding error).
        assert_eq!(p.needed_replicas(1_000.0), 13);
        assert_eq!(p.needed_replicas(1_001.0), 14);
        assert_eq!(p.needed_replicas(0.0), 0);
        assert_eq!(p.needed_replicas(-5.0), 0);
        assert_eq!(p.needed_replicas(f64::NAN), 0);
        assert_eq!(p.needed_replicas(1.0), 1);
        assert_eq!(p.needed_replicas(1e12), u32::MAX);
    }

    #[test]
    fn moves_up_by_at_most_the_step_and_waits_for_the_up_cooldown() {
        let mut a = ScalingAdvisor::new(policy(), 2).unwrap();
        let first = a.advise(1_000.0, S(1_000));
        assert_eq!((first.needed_replicas, first.desired_replicas), (13, 4));
        assert_eq!(first.reason, Reason::ScaleUp);
        assert_eq!(first.next_change_allowed_at, S(1_600));
        let held = a.advise(1_000.0, S(1_599));
        assert_eq!(
            (held.desired_replicas, held.reason),
            (4, Reason::UpCooldown)
        );
        assert_eq!(held.next_change_allowed_at, S(1_600));
        let next = a.advise(1_000.0, S(1_600));
        assert_eq!((next.desired_replicas, next.reason), (6, Reason::ScaleUp));
        // The last step stops at the target: 12 (the bound), not 14.
        for k in 3..=6 {
            a.advise(1_000.0, S(1_000 + 600 * k));
        }
        let top = a.advise(1_000.0, S(10_000));
        assert_eq!((top.desired_replicas, top.reason), (12, Reason::AtMax));
    }

    #[test]
    fn moves_down_one_at_a_time_after_the_down_cooldown_from_any_change() {
        let mut a = ScalingAdvisor::new(policy(), 8).unwrap();
        // A move down right after a move up waits the down cooldown: no flapping.
        let up = a.advise(1_000.0, S(0));
        assert_eq!(up.desired_replicas, 10);
        let held = a.advise(100.0, S(1_799));
        assert_eq!(
            (held.desired_replicas, held.reason),
            (10, Reason::DownCooldown)
        );
        assert_eq!(held.next_change_allowed_at, S(1_800));
        let down = a.advise(100.0, S(1_800));
        assert_eq!((down.desired_replicas, down.reason), (9, Reason::ScaleDown));
        // A move up after a move down waits only the up cooldown.
        let held = a.advise(2_000.0, S(2_399));
        assert_eq!(held.reason, Reason::UpCooldown);
        let up = a.advise(2_000.0, S(2_400));
        assert_eq!((up.desired_replicas, up.reason), (11, Reason::ScaleUp));
    }

    #[test]
    fn stays_within_the_bounds_and_starts_from_the_deployed_count_clamped() {
        let a = ScalingAdvisor::new(policy(), 50).unwrap();
        assert_eq!(a.desired_replicas(), 12);
        assert_eq!(a.status().reason, Reason::NoForecast);
        assert_eq!(a.status().current_replicas, 50);
        let mut a = ScalingAdvisor::new(policy(), 0).unwrap();
        assert_eq!(a.desired_replicas(), 2);
        let low = a.advise(0.0, S(0));
        assert_eq!((low.desired_replicas, low.reason), (2, Reason::AtMin));
        let steady = a.advise(150.0, S(1));
        assert_eq!((steady.needed_replicas, steady.reason), (2, Reason::Steady));
    }

    #[test]
    fn never_flaps_on_an_oscillating_forecast() {
        let p = policy();
        let mut a = ScalingAdvisor::new(p.clone(), 2).unwrap();
        let mut changes: Vec<(Duration, i64)> = Vec::new();
        for t in 0..20_000u64 {
            // A forecast swinging between 100 and 1,500 tx/s every 7 minutes.
            let f = if (t / 420) % 2 == 0 { 100.0 } else { 1_500.0 };
            let adv = a.advise(f, S(t));
            assert!((p.min_replicas..=p.max_replicas).contains(&adv.desired_replicas));
            let delta = i64::from(adv.desired_replicas) - i64::from(adv.previous_replicas);
            assert!((-1..=2).contains(&delta), "step {delta} at {t}");
            if delta != 0 {
                changes.push((adv.at, delta));
            }
        }
        assert!(changes.len() > 4, "{changes:?}");
        for w in changes.windows(2) {
            let gap = w[1].0 - w[0].0;
            let cooldown = if w[1].1 > 0 {
                p.up_cooldown
            } else {
                p.down_cooldown
            };
            assert!(gap >= cooldown, "{w:?}");
        }
    }

    #[test]
    fn a_clock_going_back_counts_as_the_previous_time() {
        let mut a = ScalingAdvisor::new(policy(), 2).unwrap();
        a.advise(1_000.0, S(1_000));
        let back = a.advise(1_000.0, S(10));
        assert_eq!(back.at, S(1_000));
        assert_eq!(back.reason, Reason::UpCooldown);
    }

    #[test]
    fn bad_policies_are_refused_with_a_clear_message() {
        let cases: [(&str, ScalingConfig); 6] = [
            (
                "min_replicas",
                ScalingConfig {
                    min_replicas: 0,
                    ..Default::default()
                },
            ),
            (
                "min_replicas",
                ScalingConfig {
                    min_replicas: 5,
                    max_replicas: 4,
                    ..Default::default()
                },
            ),
            (
                "capacity_tps_per_core",
                ScalingConfig {
                    capacity_tps_per_core: 0.0,
                    ..Default::default()
                },
            ),
            (
                "burst_headroom",
                ScalingConfig {
                    burst_headroom: -0.1,
                    ..Default::default()
                },
            ),
            (
                "scale_up_step",
                ScalingConfig {
                    scale_down_step: 0,
                    ..Default::default()
                },
            ),
            (
                "cooldown",
                ScalingConfig {
                    scale_down_cooldown_s: 1 << 40,
                    ..Default::default()
                },
            ),
        ];
        for (word, c) in cases {
            let e = c.policy().unwrap_err();
            assert!(
                e.to_string().starts_with("[E_SCALING_POLICY] scaling."),
                "{e}"
            );
            assert!(e.to_string().contains(word), "{e}");
        }
        ScalingConfig::default().policy().unwrap();
        assert_eq!(
            ScalingConfig::default().policy().unwrap(),
            ScalingPolicy::default()
        );
    }

    #[test]
    fn horizon_max_ignores_non_finite_values() {
        assert_eq!(horizon_max(&[1.0, 5.0, f32::NAN, 3.0]), 5.0);
        assert_eq!(horizon_max(&[]), 0.0);
    }
}
