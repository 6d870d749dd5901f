//! `aurigraph demo`: the product in one command.
//!
//! An embedded node starts with its RocksDB in a temporary folder and its API on a local
//! port (printed, so it can be called while the demo runs). A seeded workload (signed
//! transfers with hot accounts, bursts and injected spam, oversized, replayed, badly signed
//! and malformed transactions) is submitted at its own arrival times through the node's
//! service code, the same path as `POST /v1/transactions`: admission (batched signature
//! checks, the `anomaly` slot), the priority mempool, block production (`batch_size` and
//! `ordering` slots), the parallel executor, the RocksDB commit. The node's producer runs
//! `demand` each second and `leader_health` each round.
//!
//! The shipped models and an example plugin show each rollout path, loaded through the
//! registries exactly as `aurigraph policy load` does:
//!
//! - `ordering`: the ONNX model `ordering-linear` climbs a step schedule 5 → 25 → 50 → 100%
//!   while the guard holds;
//! - `anomaly`: the WASM plugin `sender-rate` on a 25% canary (the ONNX `anomaly-logistic`
//!   when the plugins are not built);
//! - `batch_size`: the ONNX `batch-size-linear` behind a fault injector that fails 4% of its
//!   decisions, on a 50% canary: the guard rolls it back by itself;
//! - `demand`: the ONNX `demand-autoregression` in shadow, compared and never used;
//! - `leader_health`: static (a node alone has no leader to score: its model, trained on
//!   recorded chaos runs, acts in a cluster; see `aurigraph chaos ab`).
//!
//! A candidate that cannot be had (no models folder, say) leaves its slot on static and the
//! demo says so.
//!
//! It closes with three tables: each slot and arm (decisions, fallbacks, shadow, rollbacks);
//! the node's figures (committed transactions, throughput, submit-to-commit latency,
//! refusals); and what the `anomaly` slot did, per workload label (honest, spam, oversized):
//! the class admission gave each accepted transaction, and the submit-to-commit p50 and p99
//! of those that committed. The class is read from the mempool right after the submission
//! returns; for a transaction already committed by then, it is the class of its score in the
//! `anomaly` decision admission took for that submission (an observer on the slot's host,
//! next to the node's telemetry), under admission's thresholds.
//!
//! `--cluster N` shows a validator cluster under a crash instead: N `aurigraph start`
//! processes started as `aurigraph cluster up` starts them ([`crate::cluster`]), client
//! threads sending transfers round-robin to every node (each the next nonce of its own
//! development account once the last is acknowledged, the same bytes again to the next node
//! when an answer is lost), the leader killed with SIGKILL at a third of `--duration` and
//! started again from its config at two thirds. The verdict: every acknowledged transaction
//! committed on every node in one block, exactly once in the chain (its blocks walked on node
//! 1), each sender's nonce where its transactions put it, and one state root on every node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aurigraph_decision::fault::{Fault, FaultyPolicy};
use aurigraph_decision::host::{DecisionObserver, DecisionRecord, WARMUP_INPUTS};
use aurigraph_decision::rollout::{Mode, PolicyRef, PolicyResolver, StepSchedule};
use aurigraph_decision::slot::anomaly::AnomalyClass;
use aurigraph_decision::{BackendKind, Policy, SlotHost, SlotKind};
use aurigraph_ledger::mempool::CLASSES;
use aurigraph_ledger::tx::TxHash;
use aurigraph_ledger::workload::{Label, Workload};
use aurigraph_node::config::Allocation;
use aurigraph_node::{Node, NodeConfig, NodeCore};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;

use crate::args::DemoArgs;

pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One `anomaly` decision: the thread that took it, its input rows and its scores.
type Seen = (ThreadId, usize, Vec<f32>);

/// Keeps the scores of each `anomaly` decision with the thread that took it: an observer on
/// the slot's host that first hands the decision to the node's telemetry observer, if any.
struct AnomalyTap {
    host: Arc<SlotHost>,
    telemetry: Option<DecisionObserver>,
    /// The decisions not taken yet.
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl AnomalyTap {
    fn install(core: &NodeCore) -> Self {
        let host = core.hosts[&SlotKind::Anomaly].clone();
        let telemetry = core.telemetry.as_ref().map(|t| t.observer());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (inner, sink) = (telemetry.clone(), seen.clone());
        host.set_observer(Some(Arc::new(move |r: &DecisionRecord<'_>| {
            if let Some(t) = &inner {
                t(r);
            }
            sink.lock().push((
                std::thread::current().id(),
                r.input.rows(),
                r.decision.values.clone(),
            ));
        })));
        Self {
            host,
            telemetry,
            seen,
        }
    }

    /// The (input rows, scores) of the decisions this thread took since the last call; those
    /// of other threads (API submissions) are dropped.
    fn take_mine(&self) -> Vec<(usize, Vec<f32>)> {
        let me = std::thread::current().id();
        std::mem::take(&mut *self.seen.lock())
            .into_iter()
            .filter(|(t, ..)| *t == me)
            .map(|(_, rows, values)| (rows, values))
            .collect()
    }

    /// Puts the node's own observer back.
    fn remove(self) {
        self.host.set_observer(self.telemetry);
    }
}

/// An accepted submission: its workload label, when it was submitted, and the class
/// admission gave it: read from the mempool right after the submission returned or, when it
/// had left the mempool by then, from its `anomaly` score under admission's thresholds
/// (`None` when neither was available).
struct Accepted {
    label: Label,
    at: Instant,
    class: Option<AnomalyClass>,
}

/// The accepted transactions of one workload label: classes and submit-to-commit latencies.
#[derive(Default)]
struct LabelTally {
    accepted: u64,
    /// Count per class, in the order of [`CLASSES`].
    classes: [u64; 3],
    /// Accepted transactions whose class was not read.
    unseen: u64,
    /// Submit-to-commit latency of those that committed.
    latencies: Vec<Duration>,
}

/// The table of what the `anomaly` slot did, one row per workload label with accepted
/// transactions: admission's class counts and the submit-to-commit p50/p99.
fn anomaly_table(tallies: &BTreeMap<Label, LabelTally>) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let mut header = vec!["workload label".to_string(), "accepted".to_string()];
    header.extend(CLASSES.iter().map(|c| format!("{} (class)", c.as_str())));
    let unseen = tallies.values().any(|t| t.unseen > 0);
    if unseen {
        header.push("class not read".to_string());
    }
    header.extend([
        "committed".to_string(),
        "latency p50".to_string(),
        "latency p99".to_string(),
    ]);
    t.set_header(header);
    for (label, tally) in tallies {
        let name = match label {
            Label::Normal => "honest (normal)".to_string(),
            other => other.as_str().to_string(),
        };
        let mut row = vec![name, tally.accepted.to_string()];
        row.extend(tally.classes.iter().map(|n| {
            if tally.accepted == 0 {
                n.to_string()
            } else {
                format!("{n} ({:.1}%)", *n as f64 * 100.0 / tally.accepted as f64)
            }
        }));
        if unseen {
            row.push(tally.unseen.to_string());
        }
        let mut latencies = tally.latencies.clone();
        latencies.sort_unstable();
        row.push(latencies.len().to_string());
        if latencies.is_empty() {
            row.extend(["-".to_string(), "-".to_string()]);
        } else {
            row.push(format!("{:.1?}", percentile(&latencies, 0.5)));
            row.push(format!("{:.1?}", percentile(&latencies, 0.99)));
        }
        t.add_row(row);
    }
    t
}

fn resolve(
    core: &NodeCore,
    slot: SlotKind,
    backend: BackendKind,
    name: &str,
) -> Option<Arc<dyn Policy>> {
    let version = match backend {
        BackendKind::Onnx => {
            core.registries
                .models
                .as_ref()?
                .list()
                .into_iter()
                .find(|m| m.key.slot == slot && m.key.name == name)?
                .key
                .version
        }
        _ => {
            core.registries
                .plugins
                .as_ref()?
                .list()
                .into_iter()
                .find(|p| p.key.slot == slot && p.key.name == name)?
                .key
                .version
        }
    };
    core.registries
        .resolve(
            slot,
            &PolicyRef {
                backend,
                name: name.to_string(),
                version,
            },
        )
        .ok()
}

/// Puts the demo's candidates on their slots; returns a line per slot for the header.
fn roll_out(core: &NodeCore) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let host = |s: SlotKind| core.hosts[&s].clone();
    match resolve(
        core,
        SlotKind::Ordering,
        BackendKind::Onnx,
        "ordering-linear",
    ) {
        Some(p) => {
            host(SlotKind::Ordering).load_candidate(p)?;
            host(SlotKind::Ordering)
                .start_schedule(StepSchedule::from_percents(&[5.0, 25.0, 50.0, 100.0], 100)?)?;
            notes.push("ordering: onnx ordering-linear on a 5,25,50,100% schedule".into());
        }
        None => notes.push("ordering: static (model ordering-linear not found)".into()),
    }
    let anomaly = resolve(core, SlotKind::Anomaly, BackendKind::Wasm, "sender-rate")
        .map(|p| (p, "wasm plugin sender-rate"))
        .or_else(|| {
            resolve(
                core,
                SlotKind::Anomaly,
                BackendKind::Onnx,
                "anomaly-logistic",
            )
            .map(|p| (p, "onnx anomaly-logistic (plugins not built)"))
        });
    match anomaly {
        Some((p, what)) => {
            host(SlotKind::Anomaly).load_candidate(p)?;
            host(SlotKind::Anomaly).set_mode(Mode::Canary {
                basis_points: 2_500,
            })?;
            notes.push(format!("anomaly: {what} on a 25% canary"));
        }
        None => notes.push("anomaly: static (no candidate found)".into()),
    }
    match resolve(
        core,
        SlotKind::BatchSize,
        BackendKind::Onnx,
        "batch-size-linear",
    ) {
        Some(p) => {
            let flaky = FaultyPolicy::new(p, Fault::Error)
                .with_rate(0.04)
                .after_calls(WARMUP_INPUTS as u64)
                .named("batch-size-linear-flaky", "1");
            host(SlotKind::BatchSize).load_candidate(Arc::new(flaky))?;
            host(SlotKind::BatchSize).set_mode(Mode::Canary {
                basis_points: 5_000,
            })?;
            notes.push(
                "batch_size: onnx batch-size-linear failing 4% (fault-injected) on a 50% canary"
                    .into(),
            );
        }
        None => notes.push("batch_size: static (model batch-size-linear not found)".into()),
    }
    match resolve(
        core,
        SlotKind::Demand,
        BackendKind::Onnx,
        "demand-autoregression",
    ) {
        Some(p) => {
            host(SlotKind::Demand).load_candidate(p)?;
            host(SlotKind::Demand).set_mode(Mode::Shadow)?;
            notes.push("demand: onnx demand-autoregression in shadow".into());
        }
        None => notes.push("demand: static (model demand-autoregression not found)".into()),
    }
    notes.push(
        "leader_health: static (a node alone has no leader; the model acts in a cluster)".into(),
    );
    Ok(notes)
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    if let Some(n) = args.cluster {
        return run_cluster(args, n);
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("[E_CONFIG] --speed must be a positive number");
    }
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let workload = Workload::preset(&args.workload, args.seed)
        .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    let mut config = NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: args.listen,
        ..NodeConfig::default()
    };
    config.genesis.chain_id = workload.genesis().chain_id;
    config.genesis.dev_accounts = 0;
    config.genesis.allocations = workload
        .genesis()
        .allocations
        .iter()
        .map(|(a, b)| Allocation {
            address: a.to_hex(),
            balance: *b,
        })
        .collect();
    config.policies.models_dir = args.models.clone();
    config.policies.plugins_dir = args.plugins.clone();
    config.block.interval_ms = 20;
    // The demo's admin calls are in-process; the API still wants a token.
    let mut token = [0u8; 16];
    rand::fill(&mut token);
    config.admin.token = Some(hex::encode(token));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let node = rt.block_on(Node::start(config))?;
    let core = node.core().clone();
    let notes = roll_out(&core)?;
    println!(
        "aurigraph demo: {} transactions of the `{}` workload (seed {}), at {}x its arrival times",
        args.txs, args.workload, args.seed, args.speed
    );
    println!(
        "embedded node: http://{} (try /v1/head, /v1/policies, /metrics), RocksDB in {}",
        node.addr(),
        dir.path().display()
    );
    for n in &notes {
        println!("  {n}");
    }
    println!("signing the workload...");
    let events = workload.generate(args.txs);

    // Commit times, from the node's block events.
    let mut rx = core.subscribe();
    let collector = std::thread::spawn(move || {
        let mut committed: Vec<(TxHash, Instant, bool)> = Vec::new();
        let mut blocks = 0u64;
        while let Ok(b) = rx.blocking_recv() {
            let now = Instant::now();
            blocks += 1;
            for r in &b.receipts {
                committed.push((r.tx_hash, now, r.status.is_success()));
            }
        }
        (committed, blocks)
    });

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
    let tap = AnomalyTap::install(&core);
    let started = Instant::now();
    let mut submitted: HashMap<TxHash, Accepted> = HashMap::new();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = 0usize;
    let tick = Duration::from_millis(10);
    while next < events.len() {
        let now = started.elapsed().mul_f64(args.speed);
        let start = next;
        while next < events.len() && events[next].at <= now && next - start < 2_000 {
            next += 1;
        }
        if next == start {
            std::thread::sleep(tick);
            continue;
        }
        let batch: Vec<Vec<u8>> = events[start..next]
            .iter()
            .map(|e| e.bytes.clone())
            .collect();
        let at = Instant::now();
        let result = core.submit(&batch);
        let decisions = tap.take_mine();
        match result {
            Ok(items) => {
                // One item per input, in input order.
                let mut accepted: Vec<(Option<TxHash>, Label)> = Vec::new();
                for (item, event) in items.into_iter().zip(&events[start..next]) {
                    match (item.accepted, item.hash) {
                        (true, Some(h)) => accepted.push((TxHash::from_hex(&h), event.label)),
                        _ => *refused.entry(item.code.unwrap_or_default()).or_default() += 1,
                    }
                }
                // Admission takes one `anomaly` decision per call, one score per transaction
                // it admitted, in input order. When the mempool took every one of them, the
                // scores line up with the accepted transactions.
                let scores = match decisions.as_slice() {
                    [(rows, values)] if *rows == values.len() && values.len() == accepted.len() => {
                        Some(values)
                    }
                    _ => None,
                };
                for (i, (h, label)) in accepted.into_iter().enumerate() {
                    let Some(h) = h else { continue };
                    let class = core
                        .pipeline
                        .mempool()
                        .get(&h)
                        .map(|t| t.class)
                        .or_else(|| scores.map(|s| core.pipeline.admission().classify(s[i])));
                    submitted.insert(h, Accepted { label, at, class });
                }
            }
            Err(e) => *refused.entry(e.code.to_string()).or_default() += batch.len() as u64,
        }
        bar.set_position(next as u64);
        let st = |s: SlotKind| core.hosts[&s].status().mode.to_string();
        bar.set_message(format!(
            "height {} | ordering {} | batch_size {}",
            core.head().height,
            st(SlotKind::Ordering),
            st(SlotKind::BatchSize)
        ));
    }
    tap.remove();
    // Let what is ready commit (what has a nonce gap from a refused predecessor never will).
    let drain_until = Instant::now() + Duration::from_secs(10);
    while core.pipeline.mempool().ready_len() > 0 && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let statuses: Vec<_> = core.hosts.values().map(|h| h.status()).collect();
    let head = core.head_info();
    let mempool_left = core.pipeline.mempool().len();
    rt.block_on(node.shutdown());
    drop(core);
    let (committed, blocks) = collector
        .join()
        .map_err(|_| anyhow::anyhow!("the commit collector panicked"))?;

    let mut tallies: BTreeMap<Label, LabelTally> = BTreeMap::new();
    for a in submitted.values() {
        let tally = tallies.entry(a.label).or_default();
        tally.accepted += 1;
        match a.class {
            Some(c) => {
                if let Some(i) = CLASSES.iter().position(|k| *k == c) {
                    tally.classes[i] += 1;
                }
            }
            None => tally.unseen += 1,
        }
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(committed.len());
    let mut succeeded = 0u64;
    let mut last_commit = started;
    for (h, at, ok) in &committed {
        if let Some(sub) = submitted.get(h) {
            let latency = at.saturating_duration_since(sub.at);
            latencies.push(latency);
            tallies
                .entry(sub.label)
                .or_default()
                .latencies
                .push(latency);
        }
        succeeded += u64::from(*ok);
        last_commit = last_commit.max(*at);
    }
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
    for st in &statuses {
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
            st.slot.to_string(),
            mode,
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
                    .as_ref()
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
        if let Some(why) = &st.last_rollback {
            t.add_row([
                String::new(),
                String::new(),
                "rollback".into(),
                why.clone(),
                String::new(),
                String::new(),
            ]);
        }
    }
    println!("{t}");

    let n = committed.len() as f64;
    let span = last_commit
        .saturating_duration_since(started)
        .max(Duration::from_millis(1));
    let mut s = Table::new();
    s.load_style(UTF8_FULL_CONDENSED);
    s.set_header(["figure", "value"]);
    s.add_row([
        "committed transactions".to_string(),
        format!(
            "{} in {blocks} blocks ({succeeded} succeeded)",
            committed.len()
        ),
    ]);
    s.add_row([
        "throughput".to_string(),
        format!(
            "{:.0} tx/s committed over {span:.2?}",
            n / span.as_secs_f64()
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
    s.add_row(["refused at submission".to_string(), format!("{refused:?}")]);
    s.add_row([
        "left in the mempool".to_string(),
        if mempool_left == 0 {
            "0".to_string()
        } else {
            format!("{mempool_left} (waiting on a nonce gap from a refused predecessor)")
        },
    ]);
    s.add_row([
        "head".to_string(),
        format!("height {}, state root {}", head.height, head.state_root),
    ]);
    s.add_row(["wall time".to_string(), format!("{elapsed:.2?}")]);
    println!("{s}");

    println!(
        "anomaly slot: the class admission gave each accepted transaction (mempool priority \
         normal > suspicious > anomalous), by workload label; latency is submit-to-commit"
    );
    println!("{}", anomaly_table(&tallies));
    Ok(())
}

// ---- `aurigraph demo --cluster N` ----

/// Runs `aurigraph demo --cluster N`: the `kill-leader` scenario of [`crate::chaos`] on a
/// cluster of its own.
fn run_cluster(args: &DemoArgs, n: u64) -> Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path().join("cluster")
        }
    };
    let existing = dir.join("cluster.json").exists();
    // A new cluster on free ports (another base when one was taken meanwhile); a stopped
    // one in --dir on its own.
    let mut started = None;
    for _ in 0..5 {
        let up = crate::args::ClusterUpArgs {
            nodes: Some(n),
            dir: dir.clone(),
            base_port: if existing {
                None
            } else {
                Some(crate::cluster::free_base(n)?)
            },
            secret: None,
            learners: None,
            chaos: false,
        };
        match crate::cluster::start(&up) {
            Ok(s) => {
                started = Some(s);
                break;
            }
            Err(e) if !existing && e.to_string().contains("[E_PORT_IN_USE]") => {}
            Err(e) => return Err(e),
        }
    }
    let started = started.context("[E_PORT_IN_USE] no free ports for the cluster in 5 tries")?;
    let nodes = started.nodes();
    println!(
        "aurigraph demo: a cluster of {n} validators in {}{}, leader node {} (term {})",
        started.dir.display(),
        if started.restarted {
            " (started again from its data)"
        } else {
            ""
        },
        started.leader,
        started.term
    );
    for node in &nodes {
        println!("  node {}  {}  {}", node.id, node.role.as_str(), node.url);
    }
    let load = args.duration;
    println!(
        "load: {} clients sending transfers round-robin to every node for {load:.0?}; \
         the leader is killed (SIGKILL) at {:.1?} and started again at {:.1?}",
        crate::chaos::CLIENTS,
        load / 3,
        load * 2 / 3
    );
    let dir = started.dir.clone();
    let mut cluster = crate::chaos::Nodes::with_children(&dir, started.children)?;
    let run = crate::chaos::run_scenario(
        &mut cluster,
        &crate::chaos::RunOpts {
            scenario: crate::chaos::Scenario::KillLeader,
            duration: load,
            rate: None,
            warning: Duration::ZERO,
            max_rss_mb: u64::MAX,
            quiet: args.quiet,
            labels: false,
        },
    );
    println!(
        "stopping the cluster (aurigraph cluster down --dir {})",
        dir.display()
    );
    let down = cluster.down();
    if !run?.passed {
        return Err(anyhow::anyhow!(
            "[E_DEMO_VERDICT] the cluster lost or duplicated acknowledged transactions, or its \
             nodes disagree (see above)"
        ));
    }
    down
}
