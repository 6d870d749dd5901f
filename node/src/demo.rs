//! `aurigraph demo`: the policy host on a seeded workload, in one command.
//!
//! Until the node issue lands (RocksDB, block production, APIs), the demo drives the
//! engine's five slot hosts directly, the way the node will: every round consults
//! `anomaly` and `ordering` with a batch of transactions, and `batch_size`,
//! `leader_health` and `demand` with one row each. Candidates show each rollout path:
//!
//! - `ordering`: `fee-per-byte` climbs a step schedule (5, 25, 50, 100%) while the guard holds;
//! - `anomaly`: a steeper z-score rule on a fixed 25% canary;
//! - `batch_size`: a fault-injected rule failing 4% of its decisions, on a 50% canary, that
//!   the guard rolls back by itself;
//! - `demand`: a slower Holt smoothing in shadow, compared and never used;
//! - `leader_health`: static (its model waits for cluster telemetry).
//!
//! The rollout state is persisted in a temporary folder through the file store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aurigraph_engine::fault::{Fault, FaultyPolicy};
use aurigraph_engine::host::WARMUP_INPUTS;
use aurigraph_engine::metrics::EngineMetrics;
use aurigraph_engine::policy::Variant;
use aurigraph_engine::rollout::{FileStore, Mode, PolicyRef, PolicyResolver, StepSchedule};
use aurigraph_engine::slot::{anomaly, batch_size, demand, ordering};
use aurigraph_engine::{Policy, SlotHost, SlotKind};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::cli::DemoArgs;

/// The demo's candidates, by name: also what the resolver restores after a restart.
fn candidate(name: &str) -> Option<Arc<dyn Policy>> {
    let p: Arc<dyn Policy> = match name {
        "fee-per-byte" => Arc::new(Variant::new(
            Arc::new(ordering::FeePriority::with_params(
                ordering::FeePriorityParams {
                    key: ordering::FeeKey::FeePerByte,
                },
            )),
            "fee-per-byte",
            "1",
        )),
        "zscore-steep" => Arc::new(Variant::new(
            Arc::new(
                anomaly::ZScoreRule::with_params(anomaly::ZScoreParams {
                    midpoint: 2.5,
                    steepness: 2.0,
                })
                .ok()?,
            ),
            "zscore-steep",
            "1",
        )),
        "queue-depth-flaky" => Arc::new(
            FaultyPolicy::new(
                Arc::new(batch_size::QueueDepthRule::default()),
                Fault::Error,
            )
            .with_rate(0.04)
            .after_calls(WARMUP_INPUTS as u64)
            .named("queue-depth-flaky", "1"),
        ),
        "holt-slow" => Arc::new(Variant::new(
            Arc::new(
                demand::Holt::with_params(demand::HoltParams {
                    alpha: 0.2,
                    beta: 0.1,
                })
                .ok()?,
            ),
            "holt-slow",
            "1",
        )),
        _ => return None,
    };
    Some(p)
}

struct DemoResolver;

impl PolicyResolver for DemoResolver {
    fn resolve(&self, _slot: SlotKind, r: &PolicyRef) -> Result<Arc<dyn Policy>, String> {
        candidate(&r.name).ok_or_else(|| format!("unknown demo policy {}", r.name))
    }
}

/// Per (slot, arm, answered-by) figures.
#[derive(Default)]
struct Tally {
    decisions: u64,
    fallbacks: BTreeMap<&'static str, u64>,
    latencies_ns: Vec<u64>,
}

fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Duration::from_nanos(sorted[i.min(sorted.len() - 1)])
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let store = FileStore::open(dir.path())?;
    let metrics = EngineMetrics::default();
    let mut hosts = BTreeMap::new();
    for slot in SlotKind::ALL {
        let host = SlotHost::builder(slot)
            .metrics(metrics.clone())
            .store(store.clone(), Arc::new(DemoResolver))
            .build()
            .with_context(|| format!("cannot start the {slot} host"))?;
        hosts.insert(slot, host);
    }
    let load = |slot: SlotKind, name: &str| -> Result<()> {
        let p = candidate(name).with_context(|| format!("no demo candidate {name}"))?;
        hosts[&slot].load_candidate(p)?;
        Ok(())
    };
    load(SlotKind::Ordering, "fee-per-byte")?;
    hosts[&SlotKind::Ordering]
        .start_schedule(StepSchedule::from_percents(&[5.0, 25.0, 50.0, 100.0], 300)?)?;
    load(SlotKind::Anomaly, "zscore-steep")?;
    hosts[&SlotKind::Anomaly].set_mode(Mode::Canary {
        basis_points: 2_500,
    })?;
    load(SlotKind::BatchSize, "queue-depth-flaky")?;
    hosts[&SlotKind::BatchSize].set_mode(Mode::Canary {
        basis_points: 5_000,
    })?;
    load(SlotKind::Demand, "holt-slow")?;
    hosts[&SlotKind::Demand].set_mode(Mode::Shadow)?;

    println!(
        "aurigraph demo: {} rounds, batches of {} transactions, seed {}; rollout state in {}",
        args.rounds,
        args.batch,
        args.seed,
        dir.path().display()
    );
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.rounds)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rounds  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut tallies: BTreeMap<(SlotKind, &'static str, String), Tally> = BTreeMap::new();
    let started = Instant::now();
    let mut decisions = 0u64;
    for round in 0..args.rounds {
        for slot in SlotKind::ALL {
            let input = slot.sample_input(args.batch, &mut rng);
            let d = hosts[&slot]
                .decide(round, &input)
                .with_context(|| format!("{slot} refused its input"))?;
            decisions += 1;
            let t = tallies
                .entry((slot, d.tag.arm.as_str(), d.tag.answered_by.to_string()))
                .or_default();
            t.decisions += 1;
            t.latencies_ns.push(d.latency.as_nanos() as u64);
            if let Some(r) = d.tag.fallback {
                *t.fallbacks.entry(r.as_str()).or_default() += 1;
            }
        }
        if round % 256 == 0 {
            bar.set_position(round);
            bar.set_message(format!(
                "ordering {} | batch_size {}",
                hosts[&SlotKind::Ordering].status().mode,
                hosts[&SlotKind::BatchSize].status().mode
            ));
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "slot",
        "arm",
        "answered by",
        "decisions",
        "fallbacks",
        "p50",
        "p99",
    ]);
    for ((slot, arm, by), tally) in &mut tallies {
        tally.latencies_ns.sort_unstable();
        let fallbacks = if tally.fallbacks.is_empty() {
            "0".to_string()
        } else {
            tally
                .fallbacks
                .iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.add_row([
            slot.to_string(),
            arm.to_string(),
            by.clone(),
            tally.decisions.to_string(),
            fallbacks,
            format!("{:.1?}", percentile(&tally.latencies_ns, 0.50)),
            format!("{:.1?}", percentile(&tally.latencies_ns, 0.99)),
        ]);
    }
    println!("{t}");

    let mut s = Table::new();
    s.load_style(UTF8_FULL_CONDENSED);
    s.set_header([
        "slot",
        "mode",
        "baseline",
        "candidate",
        "guard",
        "shadow",
        "last rollback",
    ]);
    for (slot, host) in &hosts {
        let st = host.status();
        let guard = st.guard.as_ref().map_or("-".to_string(), |g| {
            format!(
                "{}/{} failed, e-value {:.2}",
                g.failures, g.decisions, g.failure_e_value
            )
        });
        let shadow = if st.shadow.ok + st.shadow.failed + st.shadow.skipped == 0 {
            "-".to_string()
        } else {
            format!(
                "{} ok, {} failed, {} skipped, divergence {:.3}",
                st.shadow.ok, st.shadow.failed, st.shadow.skipped, st.shadow.mean_divergence
            )
        };
        let mode = match &st.schedule {
            Some(sch) => format!(
                "{} (step {}/{})",
                st.mode,
                sch.step + 1,
                sch.steps_percent.len()
            ),
            None => st.mode.to_string(),
        };
        s.add_row([
            slot.to_string(),
            mode,
            st.baseline.to_string(),
            st.candidate.map_or("-".to_string(), |c| c.to_string()),
            guard,
            shadow,
            st.last_rollback.unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{s}");
    println!(
        "{decisions} decisions in {:.2?} ({:.0} decisions/s, {:.0} transactions scored/s)",
        elapsed,
        decisions as f64 / elapsed.as_secs_f64(),
        (args.rounds as f64 * 2.0 * args.batch as f64) / elapsed.as_secs_f64()
    );
    Ok(())
}
