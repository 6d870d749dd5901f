//! The `leader_health` trainer on a small synthetic data folder laid out as recorded chaos
//! runs are (`RUN/node-ID.csv` telemetry exports and `RUN/events.json`): labels, the split by
//! run, a model the engine's ONNX backend loads, and probabilities that rank the rows before a
//! crash (whose disk append latency grows) above the healthy ones.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use aurigraph_decision::slot::leader_health::LeaderHealthFeatures;
use aurigraph_decision::{Policy, SlotKind};
use aurigraph_training::data::telemetry::LEADING_COLUMNS;
use aurigraph_training::manifest::Metric;
use aurigraph_training::slots::leader_health::{self, HORIZON_MS, is_held_out, label, read_runs};
use aurigraph_training::{TrainConfig, TrainedModel};

const RUNS: usize = 8;
const TICKS: u64 = 240;
const TICK_MS: u64 = 250;
/// The leader's disk starts slowing down this long before it is killed.
const DEGRADE_MS: u64 = 8_000;

/// A small deterministic noise source (an LCG), in `-1..1`.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn header() -> String {
    let mut h: Vec<String> = LEADING_COLUMNS.iter().map(|s| s.to_string()).collect();
    h.extend(
        SlotKind::LeaderHealth
            .contract()
            .features
            .iter()
            .map(|f| f.name.clone()),
    );
    h.push("value".into());
    h.join(",")
}

fn run_name(i: usize) -> String {
    format!("run-{:02}", i + 1)
}

/// Runs 3 and 6 are healthy; the others kill the leader (node 1) at the end, after its disk
/// slowed down for [`DEGRADE_MS`].
fn crashes(i: usize) -> bool {
    !matches!(i + 1, 3 | 6)
}

fn start_ms(i: usize) -> u64 {
    1_733_350_000_000 + i as u64 * 1_000_000
}

fn crash_ms(i: usize) -> u64 {
    start_ms(i) + TICKS * TICK_MS
}

/// One node's rows: node 1 leads and scores itself, nodes 2 and 3 score it as followers.
fn node_csv(i: usize, node: u64, noise: &mut Noise) -> String {
    let mut text = header();
    text.push('\n');
    for t in 0..TICKS {
        let at = start_ms(i) + t * TICK_MS;
        let to_crash = crash_ms(i) - at;
        let slowing = if node == 1 && crashes(i) && to_crash < DEGRADE_MS {
            let x = 1.0 - to_crash as f32 / DEGRADE_MS as f32;
            400.0 * x * x
        } else {
            0.0
        };
        let leader = node == 1;
        let f = LeaderHealthFeatures {
            heartbeat_interval_ms: 50.0,
            election_timeout_ms: 500.0,
            ms_since_last_heartbeat: 40.0 + 10.0 * noise.next(),
            missed_heartbeats: 0.0,
            rtt_mean_ms: if leader {
                2.0 + 0.5 * noise.next()
            } else {
                0.0
            },
            rtt_p99_ms: if leader { 6.0 + noise.next() } else { 0.0 },
            rtt_trend: if leader { 0.05 * noise.next() } else { 0.0 },
            replication_lag_entries: 10.0 + 5.0 * noise.next(),
            window_ticks: 20.0,
            heartbeat_jitter_ms: 2.0 + noise.next(),
            fsync_ms_mean: 1.0 + 0.5 * noise.next() + slowing,
            fsync_ms_trend: 0.02 * noise.next() + slowing / 50.0,
            apply_ms_mean: 5.0 + noise.next(),
            cpu_utilisation: 0.2 + 0.05 * noise.next(),
            tick_lag_ms: 0.5 + 0.2 * noise.next(),
            rss_growth_mb_s: 0.1 * noise.next(),
            mempool_depth: 100.0 + 50.0 * noise.next(),
            self_scored: if leader { 1.0 } else { 0.0 },
        };
        let features: Vec<String> = f.to_row().iter().map(f32::to_string).collect();
        writeln!(
            text,
            "{h},0,{h},{at},baseline,static,heartbeat-rule,1,,3.250,{d},0,{},0.01",
            features.join(","),
            h = t + 1,
            d = "ab".repeat(32),
        )
        .unwrap();
    }
    text
}

/// Writes the synthetic data folder: 8 runs of 3 nodes.
fn write_data(dir: &Path) {
    let mut noise = Noise(42);
    for i in 0..RUNS {
        let run = dir.join(run_name(i));
        std::fs::create_dir_all(&run).unwrap();
        for node in 1..=3 {
            std::fs::write(
                run.join(format!("node-{node}.csv")),
                node_csv(i, node, &mut noise),
            )
            .unwrap();
        }
        let crashes = if crashes(i) {
            format!(
                r#"[{{"node": 1, "at_ms": {}, "kind": "kill", "signal": 9}}]"#,
                crash_ms(i)
            )
        } else {
            "[]".into()
        };
        let events = format!(
            r#"{{"scenario": "degrade-leader-disk", "crashes": {crashes},
                "faults": [{{"node": 1, "kind": "disk_slow", "at_ms": {}}}],
                "recorded_by": "chaos 0.1"}}"#,
            crash_ms(i) - DEGRADE_MS
        );
        std::fs::write(run.join("events.json"), events).unwrap();
    }
    // Not a run: ignored.
    std::fs::write(dir.join("README.txt"), "recorded runs").unwrap();
}

fn metric(model: &TrainedModel, key: &str) -> f64 {
    match model.manifest.metrics.get(key) {
        Some(Metric::Number(v)) => *v,
        Some(Metric::Count(v)) => *v as f64,
        other => panic!("metric {key}: {other:?}"),
    }
}

fn text(model: &TrainedModel, key: &str) -> String {
    match model.manifest.metrics.get(key) {
        Some(Metric::Text(v)) => v.clone(),
        other => panic!("metric {key}: {other:?}"),
    }
}

#[test]
fn rows_are_labelled_from_the_crashes_and_split_by_run() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let runs = read_runs(dir.path()).unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, (0..RUNS).map(run_name).collect::<Vec<_>>());
    assert_eq!(runs[0].events.scenario, "degrade-leader-disk");
    assert_eq!(runs[0].events.crashes[0].node, 1);
    assert!(runs[2].events.crashes.is_empty());
    assert_eq!(runs[0].nodes.len(), 3);
    assert_eq!(runs[0].nodes[&2].len(), TICKS as usize);

    let l = label(&runs).unwrap();
    // Only the leader's own rows are trained on; the followers' are counted.
    assert_eq!(l.rows.len(), RUNS * TICKS as usize);
    assert_eq!(l.follower_rows, RUNS * 2 * TICKS as usize);
    assert_eq!(l.without_features, 0);
    let per_crash = (HORIZON_MS / TICK_MS) as usize;
    let positives: Vec<_> = l.rows.iter().filter(|r| r.label).collect();
    assert_eq!(positives.len(), 6 * per_crash);
    for r in &positives {
        assert!(crashes(r.run) && r.node == 1);
        let c = crash_ms(r.run);
        assert!(r.at_ms < c && r.at_ms >= c - HORIZON_MS, "{}", r.at_ms);
    }

    // Every 4th run (sorted by name) is held out, whole.
    let held: Vec<usize> = (0..RUNS).filter(|&i| is_held_out(i)).collect();
    assert_eq!(held, [3, 7]);
}

#[test]
fn the_trained_model_loads_in_the_engine_and_ranks_the_rows_before_a_crash_higher() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let config = TrainConfig::new(42);
    let model = leader_health::train(&config, dir.path(), "synthetic").unwrap();
    let m = &model.manifest;
    assert_eq!(m.name, "leader-health-logistic");
    assert_eq!(m.slot, "leader_health");
    assert_eq!(m.schema, 2);
    assert_eq!(m.output, "failure_probability");
    assert_eq!(
        m.training.command,
        "cargo run -p aurigraph-training --release -- train leader_health --data synthetic \
         --seed 42 --out models"
    );
    assert!(m.training.data.contains("run-04"), "{}", m.training.data);

    assert_eq!(text(&model, "runs_test"), "run-04,run-08");
    assert_eq!(
        text(&model, "runs_train"),
        "run-01,run-02,run-03,run-05,run-06,run-07"
    );
    let ticks = TICKS as f64;
    assert_eq!(metric(&model, "rows_test"), 2.0 * ticks);
    assert_eq!(metric(&model, "rows_train"), 6.0 * ticks);
    assert_eq!(metric(&model, "positives_test"), 24.0);
    assert_eq!(metric(&model, "positives_train"), 48.0);
    assert_eq!(metric(&model, "follower_rows"), 16.0 * ticks);
    let model_auc = metric(&model, "model_auc");
    assert!(model_auc > 0.95, "{:?}", m.metrics);
    // The static rule does not look at the disk: it cannot see this failure coming.
    assert!(metric(&model, "static_auc") < model_auc, "{:?}", m.metrics);
    assert!(
        metric(&model, "model_recall_at_0_5") > 0.5,
        "{:?}",
        m.metrics
    );
    assert!(metric(&model, "model_fpr_at_0_5") < 0.05, "{:?}", m.metrics);
    assert_eq!(metric(&model, "crashes_test"), 2.0);
    for run in ["run-04", "run-08"] {
        let lead = metric(&model, &format!("lead_ms_{run}"));
        assert!(lead > 0.0 && lead <= DEGRADE_MS as f64, "{run}: {lead} ms");
    }

    // Written, then loaded by the engine's ONNX backend as the node loads it.
    let out = tempfile::tempdir().unwrap();
    let files = model.write(out.path()).unwrap();
    assert_eq!(files.dir, out.path().join("leader-health-logistic"));
    let policy = aurigraph_onnx::OnnxPolicy::load_folder(
        &files.dir,
        &aurigraph_onnx::LoadOptions {
            timed_rows: 1_000,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    assert_eq!(policy.info().slot, SlotKind::LeaderHealth);
    assert_eq!(policy.info().schema_version, 2);

    // The held-out run-04: the rows of its last 3 s score above every row of its first
    // 40 s, through tract, as natively.
    let runs = read_runs(dir.path()).unwrap();
    let rows = &runs[3].nodes[&1];
    let far = Instant::now() + Duration::from_secs(60);
    let score = |r: &aurigraph_training::data::telemetry::TelemetryRow| {
        let f = r.features.as_ref().unwrap();
        let input = LeaderHealthFeatures::from_row(f).unwrap().matrix();
        let p = policy.evaluate(&input, far).unwrap()[0];
        let x: Vec<f64> = f.iter().map(|&v| f64::from(v)).collect();
        let native = model.network.predict(&x)[0];
        assert!((f64::from(p) - native).abs() < 1e-4, "{p} vs {native}");
        p
    };
    let crash = crash_ms(3);
    let healthy_max = rows
        .iter()
        .filter(|r| r.at_ms < crash - 20_000)
        .map(score)
        .fold(0.0f32, f32::max);
    let before_min = rows
        .iter()
        .filter(|r| r.at_ms >= crash - HORIZON_MS)
        .map(score)
        .fold(1.0f32, f32::min);
    assert!(
        before_min > healthy_max,
        "before the crash {before_min}, healthy {healthy_max}"
    );
    let last = score(rows.last().unwrap());
    assert!(last >= 0.5, "the last row before the crash: {last}");
}

#[test]
fn the_same_folder_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let config = TrainConfig::new(42);
    let a = leader_health::train(&config, dir.path(), "d").unwrap();
    let b = leader_health::train(&config, dir.path(), "d").unwrap();
    assert_eq!(a.encode().unwrap(), b.encode().unwrap());
}

#[test]
fn another_schema_and_too_few_runs_are_refused() {
    // A schema-1 export (9 feature columns) is refused by its header.
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let v1: Vec<&str> = LEADING_COLUMNS
        .iter()
        .copied()
        .chain(
            SlotKind::LeaderHealth
                .contract()
                .features
                .iter()
                .take(9)
                .map(|f| f.name.as_str()),
        )
        .chain(["value"])
        .collect();
    std::fs::write(
        dir.path().join("run-02/node-2.csv"),
        format!("{}\n", v1.join(",")),
    )
    .unwrap();
    let err = leader_health::train(&TrainConfig::new(42), dir.path(), "d").unwrap_err();
    assert!(
        err.to_string().contains("node-2.csv") && err.to_string().contains("header"),
        "{err}"
    );

    // Three runs: none could be held out.
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    for i in 3..RUNS {
        std::fs::remove_dir_all(dir.path().join(run_name(i))).unwrap();
    }
    let err = leader_health::train(&TrainConfig::new(42), dir.path(), "d").unwrap_err();
    assert!(err.to_string().contains("at least 4"), "{err}");
}
