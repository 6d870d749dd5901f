//! The A/B harness end to end: two embedded nodes, a seeded workload in interleaved rounds,
//! the report files.

use std::path::PathBuf;

use aurigraph_ab::spec::ArmSpec;
use aurigraph_ab::stats::Verdict;
use aurigraph_ab::{AbConfig, Amount, Speed, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(a: &str, b: &str) -> AbConfig {
    let mut c = AbConfig::new(a.parse().unwrap(), b.parse().unwrap(), "hot-accounts");
    c.amount = Amount::Txs(2_000);
    c.rounds = 2;
    c.seed = 3;
    c.speed = Speed::Max;
    c.sync = false;
    c.quiet = true;
    c.models_dir = repo().join("models");
    c.plugins_dir = repo().join("plugins/dist");
    c
}

/// Static against static: the interval contains 1 and the verdict is inconclusive. This is a
/// statistical claim: a 95% interval misses 1 in about one run out of twenty by chance, and
/// more often on a loaded machine (other builds on the same cores shift one arm's rounds more
/// than the other's), so the test allows three attempts; the bookkeeping is checked on each.
#[test]
fn static_against_static_is_inconclusive() {
    let mut last = String::new();
    for attempt in 0..3 {
        let mut c = config("static", "static");
        c.seed = 3 + attempt;
        let r = run(&c).expect("the A/B runs");
        assert_eq!(r.events, 2_000);
        assert_eq!(r.warmup, 200, "a tenth of the events warm up");
        for arm in [&r.a, &r.b] {
            assert_eq!(arm.offered, 1_800);
            assert_eq!(arm.accepted, 1_800, "hot-accounts has no refusals");
            assert_eq!(arm.committed, 1_800);
            assert_eq!(arm.left, 0);
            assert_eq!(arm.rounds.len(), 2);
            assert!(arm.tps > 0.0 && arm.p99_ms >= arm.p50_ms && arm.p50_ms > 0.0);
            assert!(arm.answered_by.values().all(|v| v.starts_with("static:")));
            assert_eq!(arm.fallbacks.values().sum::<u64>(), 0);
            assert!(arm.conflict_rate > 0.0, "hot accounts conflict");
        }
        assert!(
            r.a.rounds[0].first && !r.a.rounds[1].first,
            "the order alternates"
        );
        assert!(!r.b.rounds[0].first && r.b.rounds[1].first);
        let near_one = (0.5..2.0).contains(&r.tps.ci.ratio);
        if r.tps.ci.contains_one()
            && r.p99_latency.ci.contains_one()
            && near_one
            && r.verdict == Verdict::Inconclusive
        {
            return;
        }
        last = format!(
            "attempt {attempt}: verdict {}, TPS {:?}, p99 {:?}",
            r.verdict, r.tps.ci, r.p99_latency.ci
        );
    }
    panic!("static against static was decided three times: {last}");
}

#[test]
fn static_against_an_onnx_model_writes_the_report() {
    let r = run(&config("static", "ordering=onnx:ordering-linear")).expect("the A/B runs");
    assert_eq!(r.a.answered_by["ordering"], "static:fee-priority@1");
    assert!(
        r.b.answered_by["ordering"].starts_with("onnx:ordering-linear@"),
        "{:?}",
        r.b.answered_by
    );
    assert_eq!(r.b.committed, 1_800);
    let ordering = &r.b.decision_overhead["ordering"];
    assert!(ordering.decisions > 0 && ordering.mean_us > 0.0);
    assert_eq!(r.tps.ci.per_round.len(), 2);

    let out = tempfile::tempdir().unwrap();
    let files = r.write(out.path()).expect("the report is written");
    assert_eq!(files.len(), 4);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("| TPS (committed/s) |"), "{md}");
    assert!(md.contains("onnx:ordering-linear"), "{md}");
    assert!(md.contains("**Verdict: B is "), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["workload"], "hot-accounts");
    assert_eq!(json["a"]["committed"], 1_800);
    assert!(json["tps"]["ci"]["ratio"].as_f64().unwrap() > 0.0);
    assert!(["better", "worse", "inconclusive"].contains(&json["verdict"].as_str().unwrap()));
    assert_eq!(
        json["b"]["latency_quantiles_ms"].as_array().unwrap().len(),
        101
    );
    for plot in ["throughput.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(out.path().join(plot)).unwrap();
        assert!(svg.starts_with("<svg"), "{plot}");
        assert!(svg.matches("<polyline").count() >= 2, "{plot}: two series");
    }
}

#[test]
fn unknown_policies_and_bad_specs_are_refused_with_codes() {
    let e = run(&config("static", "ordering=onnx:no-such-model")).unwrap_err();
    assert!(
        e.to_string().contains("E_AB_POLICY_NOT_FOUND")
            || format!("{e:#}").contains("E_AB_POLICY_NOT_FOUND"),
        "{e:#}"
    );
    let e = "ordering=onnx:x,ordering=static"
        .parse::<ArmSpec>()
        .unwrap_err();
    assert_eq!(e.code, "E_AB_SPEC_DUPLICATE");
    let mut c = config("static", "static");
    c.workload = "no-such-workload".into();
    assert!(format!("{:#}", run(&c).unwrap_err()).contains("E_AB_WORKLOAD"));
}
