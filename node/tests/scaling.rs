//! Scaling advice from the `demand` forecast.
//!
//! - On the `diurnal` preset (1,000 tx/s ± 80% over a 60 s "day"), three simulated days:
//!   the per-second arrival rates (from the generator's arrival times) go through the same
//!   forecast the node uses (a `demand` slot host on its static Holt policy, asked with the
//!   producer's window, the maximum over the horizon taken by
//!   [`aurigraph_node::scaling::horizon_max`]) and an advisor on a simulated clock, one tick
//!   per second of workload time. A day lasts 60 s instead of 86,400 s, so the test policy
//!   scales the cooldowns down with it (2 s up, 6 s down: the 1:3 ratio of the defaults'
//!   600 s and 1,800 s, as short as one tick a second allows while a cooldown still spans
//!   ticks) and the capacity (200 tx/s a replica, so the day swings between 2 and 12
//!   replicas needed, bounds 1 and 14). It asserts: the replicas advised cover each peak's
//!   actual rate [`LEAD`] seconds before it (scaled up before the peak), earlier than the
//!   same advisor fed the rate just measured (reactive), rise from the trough before, never
//!   change twice within a cooldown, move by at most the steps, stay within the bounds.
//! - A node answers `GET /v1/scaling` before and after its first forecast, and `/metrics`
//!   carries `aurigraph_demand_forecast_tps` and `aurigraph_scaling_desired_replicas`.

use std::time::Duration;

use aurigraph_decision::slot::demand::{self, DemandWindow};
use aurigraph_decision::{SlotHost, SlotKind};
use aurigraph_ledger::workload::Workload;
use aurigraph_node::scaling::{ScalingAdvisor, ScalingPolicy, horizon_max};

use crate::common::*;

/// Simulated days of the `diurnal` preset.
const DAYS: usize = 3;
/// Seconds in one of its days.
const DAY: usize = 60;
/// How long before a peak the advice must already cover it, seconds (a replica's start-up,
/// on the test's time scale).
const LEAD: usize = 3;

fn test_policy() -> ScalingPolicy {
    ScalingPolicy {
        min_replicas: 1,
        max_replicas: 14,
        capacity_tps_per_core: 100.0,
        cores_per_replica: 2.0,
        up_cooldown: Duration::from_secs(2),
        down_cooldown: Duration::from_secs(6),
        ..ScalingPolicy::default()
    }
}

/// Arrivals per second of the `diurnal` preset over `DAYS` days.
fn diurnal_rates() -> Vec<f32> {
    let w = Workload::preset("diurnal", 11).expect("the preset exists");
    let secs = DAYS * DAY;
    let mut counts = vec![0u32; secs];
    // The mean is 1,000 tx/s: a few more events than that cover the whole span.
    for e in w.generate(secs * 1_000 + 5_000) {
        if let Some(c) = counts.get_mut(e.at.as_secs() as usize) {
            *c += 1;
        }
    }
    assert!(
        counts[secs - 1] > 0,
        "the events cover the last second: {counts:?}"
    );
    counts.into_iter().map(|c| c as f32).collect()
}

#[test]
fn the_advice_scales_up_before_each_diurnal_peak_and_never_flaps() {
    let actual = diurnal_rates();
    let policy = test_policy();
    let capacity = policy.capacity_tps_per_replica();
    let host = SlotHost::builder(SlotKind::Demand)
        .build()
        .expect("a demand host on the static policy");
    let mut advisor = ScalingAdvisor::new(policy.clone(), 1).expect("a valid policy");
    // The same advisor fed the rate just measured instead of the forecast: what a reactive
    // autoscaler would do.
    let mut reactive = ScalingAdvisor::new(policy.clone(), 1).expect("a valid policy");
    let mut reacted = vec![0u32; actual.len()];

    // As the producer does: after second t, the window of rates up to t, one decision.
    let mut window: Vec<f32> = Vec::new();
    let mut desired = vec![0u32; actual.len()];
    let mut changes: Vec<(usize, i64)> = Vec::new();
    for (t, &rate) in actual.iter().enumerate() {
        window.push(rate);
        if window.len() > demand::WINDOW {
            window.remove(0);
        }
        let m = DemandWindow::from_recent(&window).matrix();
        let d = host
            .decide(t as u64, &m)
            .expect("the static forecast answers");
        let advice = advisor.advise(horizon_max(&d.values), Duration::from_secs(t as u64 + 1));
        let (from, to) = (advice.previous_replicas, advice.desired_replicas);
        assert!(
            (policy.min_replicas..=policy.max_replicas).contains(&to),
            "out of bounds at {t}: {advice:?}"
        );
        let delta = i64::from(to) - i64::from(from);
        assert!(
            (-i64::from(policy.down_step)..=i64::from(policy.up_step)).contains(&delta),
            "a move larger than a step at {t}: {advice:?}"
        );
        if delta != 0 {
            changes.push((t, delta));
        }
        desired[t] = to;
        reacted[t] = reactive
            .advise(f64::from(rate), Duration::from_secs(t as u64 + 1))
            .desired_replicas;
    }

    // Never twice within a cooldown: each change waits its direction's cooldown after the
    // one before, whatever that one's direction.
    assert!(changes.len() >= 2 * DAYS, "too few changes: {changes:?}");
    for w in changes.windows(2) {
        let ((t0, _), (t1, d1)) = (w[0], w[1]);
        let cooldown = if d1 > 0 {
            policy.up_cooldown
        } else {
            policy.down_cooldown
        };
        assert!(
            Duration::from_secs((t1 - t0) as u64) >= cooldown,
            "changes at {t0} and {t1} (by {d1}) within a cooldown: {changes:?}"
        );
    }

    // Before each peak. A day's peak is at 15 s (sin = 1), its trough at 45 s; the peak
    // second is the busiest of the day's first half, the trough before it the quietest of
    // the previous day's second half (day 0 starts at the mean, from 1 replica).
    let mut report = Vec::new();
    for day in 0..DAYS {
        let start = day * DAY;
        let peak = (start..start + DAY / 2)
            .max_by(|a, b| actual[*a].total_cmp(&actual[*b]))
            .expect("a day has seconds");
        let low = if day == 0 {
            1
        } else {
            (start - DAY / 2..start)
                .map(|t| desired[t])
                .min()
                .expect("half a day has seconds")
        };
        let covers_from = |advised: &[u32]| {
            (0..=peak)
                .rev()
                .take_while(|&t| f64::from(advised[t]) * capacity >= f64::from(actual[peak]))
                .last()
                .unwrap_or(peak + 1)
        };
        let covered_from = covers_from(&desired);
        let reactive_from = covers_from(&reacted);
        report.push((
            day,
            peak,
            actual[peak],
            low,
            desired[peak - LEAD],
            covered_from,
            reactive_from,
        ));
        assert!(
            peak >= covered_from + LEAD,
            "day {day}: the peak of {} tx/s at {peak} s is covered only from {covered_from} s \
             (advised {:?} over the {LEAD} s before)",
            actual[peak],
            &desired[peak - LEAD..=peak]
        );
        // Earlier than reacting to the rate just measured (day 0 starts from 1 replica, where
        // both climb by the up step each cooldown).
        assert!(
            covered_from <= reactive_from && (day == 0 || covered_from < reactive_from),
            "day {day}: covered from {covered_from} s, reacting from {reactive_from} s"
        );
        assert!(
            desired[peak - LEAD] > low,
            "day {day}: no rise from the trough's {low} before the peak"
        );
    }
    println!(
        "(day, peak s, peak tx/s, trough replicas, replicas LEAD s before, covered from s, \
         reactive covered from s): {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_scaling_advice_and_the_two_gauges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.scaling.current_replicas = 3;
    cfg.scaling.min_replicas = 2;
    cfg.scaling.max_replicas = 8;
    let node = start(cfg).await;
    let base = base(&node);
    let c = http();
    let url = format!("{base}/v1/scaling");

    // 200 from the start; before the first forecast (one second in) the reason says so.
    let (status, first) = get_json(&c, &url).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["current_replicas"], 3, "{first}");
    assert_eq!(first["capacity_tps_per_replica"], 10_000.0, "{first}");
    assert_eq!(first["policy"]["capacity_source"], "configured", "{first}");
    assert_eq!(first["policy"]["scale_up_cooldown_s"], 600, "{first}");
    if first["reason"] == "no_forecast" {
        assert!(first["forecast_tps"].is_null(), "{first}");
        assert_eq!(first["desired_replicas"], 3, "{first}");
    }

    // No traffic: the forecast is 0, so the advice goes down one step to the minimum.
    let advice = poll_until(Duration::from_secs(5), "a first forecast", || {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let (_, v) = get_json(&c, &url).await;
            (v["reason"] != "no_forecast").then_some(v)
        }
    })
    .await;
    for field in [
        "forecast_tps",
        "capacity_tps_per_replica",
        "current_replicas",
        "needed_replicas",
        "desired_replicas",
        "reason",
        "message",
        "at_ms",
        "cooldown_until_ms",
    ] {
        assert!(advice.get(field).is_some(), "no {field}: {advice}");
    }
    assert_eq!(advice["forecast_tps"], 0.0, "{advice}");
    assert_eq!(advice["needed_replicas"], 0, "{advice}");
    assert_eq!(advice["desired_replicas"], 2, "{advice}");
    assert!(
        ["scale_down", "at_min"].contains(&advice["reason"].as_str().unwrap_or("")),
        "{advice}"
    );

    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains("aurigraph_demand_forecast_tps 0"),
        "no forecast gauge:\n{text}"
    );
    assert!(
        text.contains("aurigraph_scaling_desired_replicas 2"),
        "no desired-replicas gauge:\n{text}"
    );
    drop(c);
    node.shutdown().await;
}
