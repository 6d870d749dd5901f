//! The A/B report: per-arm figures, the ratios with their intervals and the verdict, as
//! `report.md` (a markdown table), `report.json` and the plots ([`super::plot`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::stats::{self, Direction, RatioCi, Verdict};
use super::{AbConfig, Amount, ArmRun, DecisionTime, RoundFigures, Speed};

/// Per-slot decision overhead of one arm.
#[derive(Clone, Debug, Serialize)]
pub struct SlotOverhead {
    /// Decisions over the run.
    pub decisions: u64,
    /// Total wall time in the host, milliseconds.
    pub total_ms: f64,
    /// Mean per decision, microseconds.
    pub mean_us: f64,
}

/// One arm's figures over the whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ArmReport {
    /// `A` or `B`.
    pub arm: String,
    /// Its SPEC.
    pub spec: String,
    /// What answered each slot (`backend:name@version`).
    pub answered_by: BTreeMap<String, String>,
    /// Events offered.
    pub offered: usize,
    /// Accepted at submission.
    pub accepted: usize,
    /// Committed and executed.
    pub committed: usize,
    /// Accepted, never committed within the drain timeout.
    pub left: usize,
    /// Refusals at submission by code.
    pub refused: BTreeMap<String, u64>,
    /// Committed per second: all committed over the sum of the rounds' spans.
    pub tps: f64,
    /// Submit-to-commit latency over every transaction, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// p50 and p99 latency of the transactions the workload labels normal (honest), and
    /// their count; what a better `anomaly` policy should lower. Milliseconds.
    pub normal_p50_ms: f64,
    /// p99 of the normal-labelled transactions.
    pub normal_p99_ms: f64,
    /// Normal-labelled transactions committed.
    pub normal_committed: usize,
    /// p50 and p99 latency of the transactions the workload labels spam, and their count.
    pub spam_p50_ms: f64,
    /// p99 of the spam-labelled transactions.
    pub spam_p99_ms: f64,
    /// Spam-labelled transactions committed.
    pub spam_committed: usize,
    /// Blocks committed.
    pub blocks: usize,
    /// Mean transactions per block.
    pub mean_block_txs: f64,
    /// Conflicts per transaction in a block.
    pub conflict_rate: f64,
    /// Re-executions per transaction in a block.
    pub re_execution_rate: f64,
    /// Decision overhead per slot (slots that decided).
    pub decision_overhead: BTreeMap<String, SlotOverhead>,
    /// Decision time of every slot per committed transaction, microseconds.
    pub decision_us_per_tx: f64,
    /// Decisions answered by the static fallback, per slot.
    pub fallbacks: BTreeMap<String, u64>,
    /// Per-round figures.
    pub rounds: Vec<RoundFigures>,
    /// Latency quantiles 0, 1, ..., 100 percent, milliseconds (the CDF, for notebooks).
    pub latency_quantiles_ms: Vec<f64>,
    /// Committed per second in consecutive bins of the arm's active time:
    /// `(bin start, seconds; tx/s)`.
    pub throughput_series: Vec<(f64, f64)>,
}

/// A metric compared between the arms.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The metric.
    pub metric: String,
    /// B/A ratio and its intervals.
    pub ci: RatioCi,
    /// The verdict for B on this metric.
    pub verdict: Verdict,
}

/// The whole A/B result.
#[derive(Clone, Debug, Serialize)]
pub struct AbReport {
    /// Format version of this JSON.
    pub format: u32,
    /// Workload preset.
    pub workload: String,
    /// Its seed.
    pub seed: u64,
    /// Events generated.
    pub events: usize,
    /// Of which the warm-up, unmeasured.
    pub warmup: usize,
    /// `--txs` or `--duration`.
    pub amount: Amount,
    /// Rounds run.
    pub rounds: usize,
    /// Submission speed.
    pub speed: Speed,
    /// Block interval of the nodes, milliseconds.
    pub block_interval_ms: u64,
    /// fsync per block.
    pub sync: bool,
    /// Wall time of the rounds, seconds.
    pub wall_s: f64,
    /// Build profile of the binary (`debug` or `release`).
    pub profile: &'static str,
    /// Cores available.
    pub cores: usize,
    /// Arm A.
    pub a: ArmReport,
    /// Arm B.
    pub b: ArmReport,
    /// TPS B/A.
    pub tps: Comparison,
    /// p99 submit-to-commit latency B/A.
    pub p99_latency: Comparison,
    /// p99 latency of the normal-labelled (honest) transactions B/A; reported, not part of
    /// the verdict (only workloads with labelled spam make it differ from `p99_latency`).
    pub normal_p99_latency: Comparison,
    /// The overall verdict for B (see [`stats`]).
    pub verdict: Verdict,
    /// How the intervals were computed.
    pub ci_method: &'static str,
}

fn arm_report(run: &ArmRun) -> ArmReport {
    let sum = |f: fn(&RoundFigures) -> usize| run.rounds.iter().map(f).sum::<usize>();
    let committed = sum(|r| r.committed);
    let block_txs = sum(|r| r.block_txs);
    let blocks = sum(|r| r.blocks);
    let span: f64 = run.rounds.iter().map(|r| r.span_s).sum();
    let conflicts: u64 = run.rounds.iter().map(|r| r.conflicts).sum();
    let re_exec: u64 = run.rounds.iter().map(|r| r.re_executions).sum();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut decisions: BTreeMap<String, DecisionTime> = BTreeMap::new();
    for r in &run.rounds {
        for (k, v) in &r.refused {
            *refused.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.decisions {
            let e = decisions.entry(k.clone()).or_default();
            e.decisions += v.decisions;
            e.seconds += v.seconds;
        }
    }
    let total_decision_s: f64 = decisions.values().map(|d| d.seconds).sum();
    let per = |n: f64, d: usize| if d == 0 { 0.0 } else { n / d as f64 };
    let lat = &run.latencies_ms;
    ArmReport {
        arm: run.id.as_str().to_string(),
        spec: run.spec.to_string(),
        answered_by: run.answered_by.clone(),
        offered: sum(|r| r.offered),
        accepted: sum(|r| r.accepted),
        committed,
        left: sum(|r| r.left),
        refused,
        tps: if span > 0.0 {
            committed as f64 / span
        } else {
            0.0
        },
        p50_ms: stats::percentile(lat, 0.50),
        p95_ms: stats::percentile(lat, 0.95),
        p99_ms: stats::percentile(lat, 0.99),
        mean_ms: stats::mean(lat),
        normal_p50_ms: stats::percentile(&run.normal_latencies_ms, 0.50),
        normal_p99_ms: stats::percentile(&run.normal_latencies_ms, 0.99),
        normal_committed: run.normal_latencies_ms.len(),
        spam_p50_ms: stats::percentile(&run.spam_latencies_ms, 0.50),
        spam_p99_ms: stats::percentile(&run.spam_latencies_ms, 0.99),
        spam_committed: run.spam_latencies_ms.len(),
        blocks,
        mean_block_txs: per(block_txs as f64, blocks),
        conflict_rate: per(conflicts as f64, block_txs),
        re_execution_rate: per(re_exec as f64, block_txs),
        decision_overhead: decisions
            .iter()
            .filter(|(_, d)| d.decisions > 0)
            .map(|(k, d)| {
                (
                    k.clone(),
                    SlotOverhead {
                        decisions: d.decisions,
                        total_ms: d.seconds * 1e3,
                        mean_us: d.seconds * 1e6 / d.decisions as f64,
                    },
                )
            })
            .collect(),
        decision_us_per_tx: per(total_decision_s * 1e6, committed),
        fallbacks: run.fallbacks.clone(),
        rounds: run.rounds.clone(),
        latency_quantiles_ms: (0..=100)
            .map(|q| stats::percentile(lat, f64::from(q) / 100.0))
            .collect(),
        throughput_series: throughput_series(&run.throughput, span),
    }
}

/// Bins `(t, executed)` block points over `span` seconds into about 50 bins of tx/s.
pub fn throughput_series(points: &[(f64, usize)], span: f64) -> Vec<(f64, f64)> {
    if points.is_empty() || span <= 0.0 {
        return Vec::new();
    }
    let width = (span / 50.0).max(0.05);
    let bins = (span / width).ceil().max(1.0) as usize;
    let mut counts = vec![0usize; bins];
    for (t, n) in points {
        let i = ((t / width) as usize).min(bins - 1);
        counts[i] += n;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * width, c as f64 / width))
        .collect()
}

fn compare(metric: &str, ratios: Vec<f64>, seed: u64, direction: Direction) -> Comparison {
    let ci = RatioCi::from_ratios(&ratios, seed);
    let verdict = ci.verdict(direction);
    Comparison {
        metric: metric.to_string(),
        ci,
        verdict,
    }
}

impl AbReport {
    /// Builds the report of a finished run.
    pub fn build(
        cfg: &AbConfig,
        events: usize,
        warmup: usize,
        wall: Duration,
        a: ArmRun,
        b: ArmRun,
    ) -> Self {
        let pairs = a.rounds.iter().zip(&b.rounds);
        let tps_ratios: Vec<f64> = pairs.clone().map(|(x, y)| y.tps / x.tps).collect();
        let p99_ratios: Vec<f64> = pairs.clone().map(|(x, y)| y.p99_ms / x.p99_ms).collect();
        let normal_ratios: Vec<f64> = pairs
            .filter(|(x, y)| x.normal_p99_ms > 0.0 && y.normal_p99_ms > 0.0)
            .map(|(x, y)| y.normal_p99_ms / x.normal_p99_ms)
            .collect();
        let normal_p99 = compare(
            "normal_p99_latency",
            normal_ratios,
            cfg.seed.wrapping_add(2),
            Direction::LowerIsBetter,
        );
        let tps = compare("tps", tps_ratios, cfg.seed, Direction::HigherIsBetter);
        let p99 = compare(
            "p99_latency",
            p99_ratios,
            cfg.seed.wrapping_add(1),
            Direction::LowerIsBetter,
        );
        let verdict = Verdict::combine(&[tps.verdict, p99.verdict]);
        Self {
            format: 1,
            workload: cfg.workload.clone(),
            seed: cfg.seed,
            events,
            warmup,
            amount: cfg.amount,
            rounds: a.rounds.len(),
            speed: cfg.speed,
            block_interval_ms: cfg.block_interval_ms,
            sync: cfg.sync,
            wall_s: wall.as_secs_f64(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            a: arm_report(&a),
            b: arm_report(&b),
            tps,
            p99_latency: p99,
            normal_p99_latency: normal_p99,
            verdict,
            ci_method: stats::CI_METHOD,
        }
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let (a, b) = (&self.a, &self.b);
        let _ = writeln!(s, "# A/B: `{}` (A) against `{}` (B)\n", a.spec, b.spec);
        let _ = writeln!(
            s,
            "Workload `{}`, seed {}, {} events ({} of warm-up, then {} interleaved rounds), \
             speed {}, {} ms blocks, fsync {}; {} build on {} cores; {:.1} s.\n",
            self.workload,
            self.seed,
            self.events,
            self.warmup,
            self.rounds,
            self.speed,
            self.block_interval_ms,
            if self.sync { "on" } else { "off" },
            self.profile,
            self.cores,
            self.wall_s
        );
        let _ = writeln!(
            s,
            "**Verdict: B is {}** (TPS {}, p99 latency {}).\n",
            self.verdict, self.tps.verdict, self.p99_latency.verdict
        );
        let _ = writeln!(s, "| figure | A | B | B/A |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        let row = |s: &mut String, name: &str, x: String, y: String, r: String| {
            let _ = writeln!(s, "| {name} | {x} | {y} | {r} |");
        };
        let ratio = |x: f64, y: f64| {
            if x > 0.0 {
                format!("{:.3}", y / x)
            } else {
                "-".into()
            }
        };
        row(
            &mut s,
            "TPS (committed/s)",
            format!("{:.0}", a.tps),
            format!("{:.0}", b.tps),
            format!(
                "**{:.3}** [{}]",
                self.tps.ci.ratio,
                fmt_ci(self.tps.ci.lo, self.tps.ci.hi)
            ),
        );
        for (name, x, y) in [
            ("p50 latency (ms)", a.p50_ms, b.p50_ms),
            ("p95 latency (ms)", a.p95_ms, b.p95_ms),
        ] {
            row(
                &mut s,
                name,
                format!("{x:.1}"),
                format!("{y:.1}"),
                ratio(x, y),
            );
        }
        row(
            &mut s,
            "p99 latency (ms)",
            format!("{:.1}", a.p99_ms),
            format!("{:.1}", b.p99_ms),
            format!(
                "**{:.3}** [{}]",
                self.p99_latency.ci.ratio,
                fmt_ci(self.p99_latency.ci.lo, self.p99_latency.ci.hi)
            ),
        );
        row(
            &mut s,
            "p99 latency, normal-labelled (ms)",
            format!("{:.1}", a.normal_p99_ms),
            format!("{:.1}", b.normal_p99_ms),
            format!(
                "{:.3} [{}]",
                self.normal_p99_latency.ci.ratio,
                fmt_ci(self.normal_p99_latency.ci.lo, self.normal_p99_latency.ci.hi)
            ),
        );
        row(
            &mut s,
            "p50 latency, spam-labelled (ms)",
            format!("{:.1}", a.spam_p50_ms),
            format!("{:.1}", b.spam_p50_ms),
            ratio(a.spam_p50_ms, b.spam_p50_ms),
        );
        row(
            &mut s,
            "conflicts per tx",
            format!("{:.4}", a.conflict_rate),
            format!("{:.4}", b.conflict_rate),
            ratio(a.conflict_rate, b.conflict_rate),
        );
        row(
            &mut s,
            "re-executions per tx",
            format!("{:.4}", a.re_execution_rate),
            format!("{:.4}", b.re_execution_rate),
            ratio(a.re_execution_rate, b.re_execution_rate),
        );
        row(
            &mut s,
            "blocks (mean txs)",
            format!("{} ({:.0})", a.blocks, a.mean_block_txs),
            format!("{} ({:.0})", b.blocks, b.mean_block_txs),
            String::new(),
        );
        row(
            &mut s,
            "decision time per tx (µs)",
            format!("{:.2}", a.decision_us_per_tx),
            format!("{:.2}", b.decision_us_per_tx),
            ratio(a.decision_us_per_tx, b.decision_us_per_tx),
        );
        let mut slots: Vec<&String> = a
            .decision_overhead
            .keys()
            .chain(b.decision_overhead.keys())
            .collect();
        slots.sort();
        slots.dedup();
        for slot in slots {
            let f = |r: &ArmReport| {
                r.decision_overhead.get(slot).map_or("-".into(), |o| {
                    format!("{:.1} µs × {}", o.mean_us, o.decisions)
                })
            };
            row(
                &mut s,
                &format!("`{slot}` decision (mean × n)"),
                f(a),
                f(b),
                String::new(),
            );
        }
        let fb = |r: &ArmReport| r.fallbacks.values().sum::<u64>().to_string();
        row(&mut s, "fallbacks", fb(a), fb(b), String::new());
        row(
            &mut s,
            "committed / accepted / offered",
            format!("{} / {} / {}", a.committed, a.accepted, a.offered),
            format!("{} / {} / {}", b.committed, b.accepted, b.offered),
            String::new(),
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Intervals: {}; bootstrap percentile (10,000 resamples): TPS [{}], p99 [{}].\n",
            self.ci_method,
            fmt_ci(self.tps.ci.bootstrap_lo, self.tps.ci.bootstrap_hi),
            fmt_ci(
                self.p99_latency.ci.bootstrap_lo,
                self.p99_latency.ci.bootstrap_hi
            )
        );
        let _ = writeln!(s, "Answered by:\n");
        for (slot, x) in &a.answered_by {
            let y = b.answered_by.get(slot).map_or("-", String::as_str);
            let _ = writeln!(s, "- `{slot}`: A `{x}`, B `{y}`");
        }
        let _ = writeln!(s, "\n## Per round\n");
        let _ = writeln!(
            s,
            "| round | first | A TPS | B TPS | TPS B/A | A p99 ms | B p99 ms | p99 B/A |"
        );
        let _ = writeln!(s, "|---:|:---:|---:|---:|---:|---:|---:|---:|");
        for (x, y) in a.rounds.iter().zip(&b.rounds) {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {:.3} | {:.1} | {:.1} | {:.3} |",
                x.round + 1,
                if x.first { "A" } else { "B" },
                x.tps,
                y.tps,
                y.tps / x.tps,
                x.p99_ms,
                y.p99_ms,
                y.p99_ms / x.p99_ms
            );
        }
        let _ = writeln!(
            s,
            "\n![throughput](throughput.svg)\n\n![latency](latency.svg)"
        );
        s
    }

    /// Writes `report.md`, `report.json`, `throughput.svg` and `latency.svg` into `dir`
    /// (created if needed); returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("[E_AB_OUT] cannot create {}", dir.display()))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.markdown())
            .with_context(|| format!("[E_AB_OUT] cannot write {}", md.display()))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).context("report to JSON")?;
        std::fs::write(&json, text)
            .with_context(|| format!("[E_AB_OUT] cannot write {}", json.display()))?;
        let tp = dir.join("throughput.svg");
        super::plot::throughput(self, &tp)?;
        let lat = dir.join("latency.svg");
        super::plot::latency_cdf(self, &lat)?;
        Ok(vec![md, json, tp, lat])
    }
}

fn fmt_ci(lo: f64, hi: f64) -> String {
    if hi.is_finite() {
        format!("{lo:.3}, {hi:.3}")
    } else {
        "unbounded: 1 round".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_throughput() {
        let pts = [(0.0, 100), (0.5, 100), (0.99, 100)];
        let s = throughput_series(&pts, 1.0);
        assert_eq!(s.len(), 20);
        let total: f64 = s.iter().map(|(_, r)| r * 0.05).sum();
        assert!((total - 300.0).abs() < 1e-9);
        assert!(throughput_series(&[], 1.0).is_empty());
    }
}
