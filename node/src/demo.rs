//! `aurigraph demo`: the product in one command.
//!
//! Until the node issue lands (RocksDB, consensus, APIs), the demo runs the engine's
//! single-node pipeline in-process, the way the node will: a seeded workload (signed
//! transfers with hot accounts, bursts and injected spam, oversized, replayed, badly signed
//! and malformed transactions) goes through admission (batched signature checks, the
//! `anomaly` slot), the priority mempool, the batcher (`batch_size` and `ordering` slots)
//! and the parallel executor, block after block. The `demand` slot forecasts the arrival
//! rate each interval and `leader_health` scores the node's own heartbeat window each block.
//! Candidates show each rollout path:
//!
//! - `ordering`: `fee-per-byte` climbs a step schedule (5, 25, 50, 100%) while the guard holds;
//! - `anomaly`: a steeper z-score rule on a fixed 25% canary;
//! - `batch_size`: a fault-injected rule failing 4% of its decisions, on a 50% canary, that
//!   the guard rolls back by itself;
//! - `demand`: a slower Holt smoothing in shadow, compared and never used;
//! - `leader_health`: static (its model waits for cluster telemetry).
//!
//! The rollout state is persisted in a temporary folder through the file store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aurigraph_engine::fault::{Fault, FaultyPolicy};
use aurigraph_engine::host::WARMUP_INPUTS;
use aurigraph_engine::metrics::EngineMetrics;
use aurigraph_engine::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_engine::policy::Variant;
use aurigraph_engine::rollout::{FileStore, Mode, PolicyRef, PolicyResolver, StepSchedule};
use aurigraph_engine::slot::{anomaly, batch_size, demand, leader_health, ordering};
use aurigraph_engine::tx::TxHash;
use aurigraph_engine::workload::Workload;
use aurigraph_engine::{Policy, SlotHost, SlotKind};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};

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

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Virtual time per interval: the workload's arrivals in one interval are submitted
/// together, then blocks are produced until the mempool has nothing ready.
const INTERVAL: Duration = Duration::from_millis(100);

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
        hosts.insert(slot, Arc::new(host));
    }
    let load = |slot: SlotKind, name: &str| -> Result<()> {
        let p = candidate(name).with_context(|| format!("no demo candidate {name}"))?;
        hosts[&slot].load_candidate(p)?;
        Ok(())
    };
    load(SlotKind::Ordering, "fee-per-byte")?;
    hosts[&SlotKind::Ordering]
        .start_schedule(StepSchedule::from_percents(&[5.0, 25.0, 50.0, 100.0], 20)?)?;
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

    let workload = Workload::preset(&args.workload, args.seed)
        .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    println!(
        "aurigraph demo: {} transactions of the `{}` workload (seed {}); rollout state in {}",
        args.txs,
        args.workload,
        args.seed,
        dir.path().display()
    );
    println!("signing the workload...");
    let events = workload.generate(args.txs);
    let slots = PipelineSlots {
        anomaly: hosts[&SlotKind::Anomaly].clone(),
        batch_size: hosts[&SlotKind::BatchSize].clone(),
        ordering: hosts[&SlotKind::Ordering].clone(),
    };
    let pipeline = Pipeline::new(PipelineConfig::default(), slots, workload.genesis())?;

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(events.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tx  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let started = Instant::now();
    let mut submitted_at: HashMap<TxHash, Instant> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::with_capacity(events.len());
    let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut classes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut blocks = 0u64;
    let mut executed_ok = 0u64;
    let mut rates: Vec<f32> = vec![];
    let mut next = 0usize;
    let mut interval_end = INTERVAL;
    while next < events.len() || !pipeline.mempool().is_empty() {
        let start = next;
        while next < events.len() && events[next].at < interval_end {
            next += 1;
        }
        let window = &events[start..next];
        let bytes: Vec<&[u8]> = window.iter().map(|e| e.bytes.as_slice()).collect();
        let now = Instant::now();
        for r in pipeline.submit(&bytes) {
            match r {
                Ok(h) => {
                    submitted_at.insert(h, now);
                }
                Err(e) => *refused.entry(e.code).or_default() += 1,
            }
        }
        // demand: the arrival rate of the last intervals, forecast each interval.
        rates.push(window.len() as f32 / INTERVAL.as_secs_f32());
        let history = &rates[rates.len().saturating_sub(demand::WINDOW)..];
        hosts[&SlotKind::Demand].decide(
            rates.len() as u64,
            &demand::DemandWindow::from_recent(history).matrix(),
        )?;
        let mut produced_any = false;
        while let Some(block) = pipeline.produce_block()? {
            produced_any = true;
            blocks += 1;
            let committed = Instant::now();
            for (t, receipt) in block.txs.iter().zip(&block.outcome.execution.receipts) {
                *classes.entry(t.class.as_str()).or_default() += 1;
                if receipt.status.is_success() {
                    executed_ok += 1;
                }
                if let Some(at) = submitted_at.remove(&t.tx.hash()) {
                    latencies.push(committed - at);
                }
            }
            let last_block_ms = block.latency.as_secs_f32() * 1e3;
            // leader_health: this node's own heartbeat window (a single node has no peers yet).
            let hb = leader_health::LeaderHealthFeatures {
                heartbeat_interval_ms: 100.0,
                election_timeout_ms: 1_000.0,
                ms_since_last_heartbeat: last_block_ms.min(1_000.0),
                missed_heartbeats: 0.0,
                rtt_mean_ms: last_block_ms,
                rtt_p99_ms: last_block_ms,
                rtt_trend: 0.0,
                replication_lag_entries: 0.0,
                window_ticks: 10.0,
            };
            hosts[&SlotKind::LeaderHealth].decide(block.height, &hb.matrix())?;
            bar.set_position(next as u64);
            bar.set_message(format!(
                "height {} | ordering {} | batch_size {}",
                block.height,
                hosts[&SlotKind::Ordering].status().mode,
                hosts[&SlotKind::BatchSize].status().mode
            ));
        }
        if next >= events.len() && !produced_any {
            // Whatever is left cannot become ready (nonce gaps from refused transactions).
            break;
        }
        interval_end += INTERVAL;
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "slot",
        "mode",
        "arm",
        "answered by",
        "decisions",
        "fallbacks",
    ]);
    for (slot, host) in &hosts {
        let st = host.status();
        let mode = match &st.schedule {
            Some(sch) => format!(
                "{} (step {}/{})",
                st.mode,
                sch.step + 1,
                sch.steps_percent.len()
            ),
            None => st.mode.to_string(),
        };
        t.add_row([
            slot.to_string(),
            mode.clone(),
            "baseline".into(),
            st.baseline.to_string(),
            st.baseline_totals.decisions.to_string(),
            st.baseline_totals.fallbacks.to_string(),
        ]);
        if st.candidate_totals.decisions > 0 || st.candidate.is_some() {
            t.add_row([
                String::new(),
                String::new(),
                "candidate".into(),
                st.candidate
                    .map_or("(rolled back)".to_string(), |c| c.to_string()),
                st.candidate_totals.decisions.to_string(),
                st.candidate_totals.fallbacks.to_string(),
            ]);
        }
        if st.shadow.ok + st.shadow.failed > 0 {
            t.add_row([
                String::new(),
                String::new(),
                "shadow".into(),
                format!("divergence {:.3}", st.shadow.mean_divergence),
                (st.shadow.ok + st.shadow.failed).to_string(),
                format!("{} failed, {} skipped", st.shadow.failed, st.shadow.skipped),
            ]);
        }
        if let Some(why) = st.last_rollback {
            t.add_row([
                String::new(),
                String::new(),
                "rollback".into(),
                why,
                String::new(),
                String::new(),
            ]);
        }
    }
    println!("{t}");

    let committed = latencies.len() as f64;
    let mut s = Table::new();
    s.load_style(UTF8_FULL_CONDENSED);
    s.set_header(["figure", "value"]);
    s.add_row([
        "committed transactions".to_string(),
        format!("{committed} in {blocks} blocks ({executed_ok} succeeded)"),
    ]);
    s.add_row([
        "throughput".to_string(),
        format!(
            "{:.0} tx/s over {:.2?}",
            committed / elapsed.as_secs_f64(),
            elapsed
        ),
    ]);
    s.add_row([
        "submit-to-commit latency".to_string(),
        format!(
            "p50 {:.1?}, p99 {:.1?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        ),
    ]);
    s.add_row([
        "committed by anomaly class".to_string(),
        format!("{classes:?}"),
    ]);
    s.add_row(["refused at submission".to_string(), format!("{refused:?}")]);
    s.add_row([
        "left in the mempool".to_string(),
        pipeline.mempool().len().to_string(),
    ]);
    s.add_row([
        "state root".to_string(),
        pipeline.state().root().to_string(),
    ]);
    println!("{s}");
    Ok(())
}
