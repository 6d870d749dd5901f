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
//! - `leader_health`: static (its model waits for cluster telemetry).
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

fn percentile(sorted: &[Duration], q: f64) -> Duration {
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
    notes.push("leader_health: static".into());
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

/// Client threads of the cluster demo, one development account each (accounts 1 to
/// CLIENTS send, 40 and up receive).
const CLIENTS: u32 = 12;
/// How long after the load a client may still resolve its last transaction.
const DRAIN: Duration = Duration::from_secs(8);
/// How long the demo waits for every node at one head after the load.
const CATCH_UP: Duration = Duration::from_secs(30);

/// What became of one attempt to submit.
enum Answer {
    /// 200, accepted (in a cluster: committed).
    Accepted,
    /// Refused with this code, or no answer (`no answer (...)`).
    Refused(String),
}

fn submit_once(c: &reqwest::blocking::Client, url: &str, body: &str) -> Answer {
    let lost = |e: &reqwest::Error| {
        Answer::Refused(
            if e.is_timeout() {
                "no answer (timeout)"
            } else if e.is_connect() {
                "no answer (connect)"
            } else {
                "no answer (connection lost)"
            }
            .to_string(),
        )
    };
    let r = match c
        .post(format!("{url}/v1/transactions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
    {
        Ok(r) => r,
        Err(e) => return lost(&e),
    };
    let status = r.status().as_u16();
    let v: serde_json::Value = match r.text() {
        Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
        Err(e) => return lost(&e),
    };
    if status == 200 && v["accepted"].as_u64() == Some(1) {
        return Answer::Accepted;
    }
    // A batch's refusal is per item; a request's is the error body's code.
    let code = v["items"][0]["code"]
        .as_str()
        .or_else(|| v["code"].as_str())
        .or_else(|| v["error"]["code"].as_str());
    Answer::Refused(code.map_or_else(|| format!("HTTP {status}"), str::to_string))
}

/// GET `url` as JSON, `None` on any failure.
fn get_json(c: &reqwest::blocking::Client, url: &str) -> Option<serde_json::Value> {
    let r = c.get(url).send().ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().ok()
}

/// Whether transaction `hash` is committed on one of the nodes that answer.
fn committed_anywhere(c: &reqwest::blocking::Client, urls: &[String], hash: &str) -> bool {
    urls.iter().any(|url| {
        get_json(c, &format!("{url}/v1/transactions/{hash}"))
            .is_some_and(|v| v["state"] == "committed")
    })
}

/// What one client thread did.
#[derive(Default)]
struct Outcome {
    /// Development account that sent.
    sender: u32,
    /// Its committed nonce before the load.
    first_nonce: u64,
    /// Acknowledged transactions: hash, submit-to-answer time, when the answer came.
    acked: Vec<(String, Duration, Instant)>,
    /// Committed, learned by hash after an answer was lost.
    confirmed: Vec<String>,
    /// Refusals and lost answers, by code.
    refusals: BTreeMap<String, u64>,
    /// The last transaction, neither acknowledged nor seen committed by the drain's end:
    /// nothing was promised for it.
    unresolved: Option<String>,
    /// What a correct cluster never does.
    anomalies: Vec<String>,
}

/// How one transaction ended for its client.
enum Resolution {
    Acked,
    Confirmed,
    Unresolved,
    Anomaly(String),
}

/// Sends `body` (transaction `hash`) until it is acknowledged or seen committed, each
/// attempt to the next node, `give_up` at the latest. A submission without an answer may
/// have gone through: the same bytes go again, and `E_DUPLICATE` / `E_STALE_NONCE` then
/// send the client looking for the transaction by hash.
fn resolve_tx(
    c: &reqwest::blocking::Client,
    urls: &[String],
    next: &mut usize,
    (body, hash): (&str, &str),
    give_up: Instant,
    refusals: &mut BTreeMap<String, u64>,
) -> Resolution {
    let mut attempts = 0u32;
    loop {
        let url = &urls[*next % urls.len()];
        *next += 1;
        attempts += 1;
        let code = match submit_once(c, url, body) {
            Answer::Accepted => return Resolution::Acked,
            Answer::Refused(code) => code,
        };
        *refusals.entry(code.clone()).or_default() += 1;
        match code.as_str() {
            "E_DUPLICATE" | "E_STALE_NONCE" => {
                if attempts == 1 {
                    return Resolution::Anomaly(format!("{code} on the first attempt"));
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    if committed_anywhere(c, urls, hash) {
                        return Resolution::Confirmed;
                    }
                    if code == "E_DUPLICATE" {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Resolution::Anomaly(
                            "E_STALE_NONCE, but the transaction is committed on no node".into(),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            c if c.starts_with("no answer") => {}
            "E_NOT_LEADER" | "E_FORWARD" | "E_COMMIT_PENDING" | "E_NOT_READY" | "E_TIMEOUT"
            | "E_OVERLOADED" | "E_MEMPOOL_FULL" | "E_SENDER_LIMIT" | "E_DROPPED" | "E_RAFT" => {}
            other => return Resolution::Anomaly(format!("unexpected refusal {other}")),
        }
        if Instant::now() > give_up {
            return Resolution::Unresolved;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Transfers from development account `sender`, nonces in order, one at a time (the next
/// once the last is acknowledged or seen committed), each attempt to the next node; no new
/// one after `stop`. `acked` counts acknowledgements for the progress bar.
fn cluster_client(
    sender: u32,
    urls: &[String],
    chain_id: u32,
    stop: Instant,
    acked: &std::sync::atomic::AtomicU64,
) -> Outcome {
    use aurigraph_ledger::tx::{Operation, Transaction};
    use aurigraph_node::config::dev_key;
    let mut out = Outcome {
        sender,
        ..Outcome::default()
    };
    let c = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(12))
        .connect_timeout(Duration::from_secs(1))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            out.anomalies.push(format!("cannot build a client: {e}"));
            return out;
        }
    };
    let (key, from) = dev_key(sender);
    let Some(mut nonce) = urls.iter().find_map(|u| {
        get_json(&c, &format!("{u}/v1/accounts/{}", from.to_hex()))?["nonce"].as_u64()
    }) else {
        out.anomalies
            .push(format!("sender {sender}: no node answered its nonce"));
        return out;
    };
    out.first_nonce = nonce;
    let to = dev_key(40 + sender % 20).1;
    let mut next = sender as usize;
    while Instant::now() < stop {
        let tx = Transaction {
            chain_id,
            sender: from,
            nonce,
            fee: 10,
            op: Operation::Transfer { to, amount: 1 },
        }
        .sign(&key);
        let hash = tx.hash().to_string();
        let body = serde_json::json!(hex::encode(tx.encoded())).to_string();
        let sent = Instant::now();
        match resolve_tx(
            &c,
            urls,
            &mut next,
            (&body, &hash),
            stop + DRAIN,
            &mut out.refusals,
        ) {
            Resolution::Acked => {
                let now = Instant::now();
                out.acked.push((hash, now - sent, now));
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Resolution::Confirmed => out.confirmed.push(hash),
            Resolution::Unresolved => {
                out.unresolved = Some(hash);
                break;
            }
            Resolution::Anomaly(what) => {
                out.anomalies
                    .push(format!("sender {sender} nonce {nonce} ({hash}): {what}"));
                break;
            }
        }
        nonce += 1;
    }
    out
}

/// Prints a line above the progress bar (also when the bar is hidden: `--quiet`, no
/// terminal).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}

/// A restarted node has caught up when it follows the leader within this many blocks of the
/// leader's head.
const CAUGHT_UP_BLOCKS: u64 = 5;

/// Whether the node at `url` follows a leader and is within [`CAUGHT_UP_BLOCKS`] of its
/// height.
fn follows(c: &reqwest::blocking::Client, urls: &[String], url: &str) -> bool {
    let Some(v) = crate::cluster::cluster_view(c, url) else {
        return false;
    };
    let Some(leader) = v["leader"].as_u64() else {
        return false;
    };
    if v["state"] != "follower" {
        return false;
    }
    let leader_height = urls
        .iter()
        .filter_map(|u| crate::cluster::cluster_view(c, u))
        .find(|l| l["id"].as_u64() == Some(leader) && l["state"] == "leader")
        .and_then(|l| l["height"].as_u64());
    let height = v["height"].as_u64().unwrap_or(0);
    leader_height.is_some_and(|lh| height + CAUGHT_UP_BLOCKS >= lh)
}

/// The leader that some node's view says it is (the highest term's), polling every node.
fn current_leader(c: &reqwest::blocking::Client, urls: &[String]) -> Option<u64> {
    urls.iter()
        .filter_map(|u| crate::cluster::cluster_view(c, u))
        .filter(|v| v["state"] == "leader")
        .max_by_key(|v| v["term"].as_u64().unwrap_or(0))
        .and_then(|v| v["id"].as_u64())
}

/// Polls every node's `/v1/cluster` every 50 ms until `on` is cleared: when, and which node
/// said it leads (if any).
fn watch_leader(urls: &[String], on: &std::sync::atomic::AtomicBool) -> Vec<(Instant, bool)> {
    let mut samples = Vec::new();
    let Ok(c) = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
    else {
        return samples;
    };
    while on.load(std::sync::atomic::Ordering::Relaxed) {
        let at = Instant::now();
        samples.push((at, current_leader(&c, urls).is_some()));
        std::thread::sleep(
            (at + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
        );
    }
    samples
}

/// The longest span without a node that says it leads, from samples `(when, some node
/// leads)` in time order (to the last sample when none came). Shared with the chaos test.
pub fn longest_without_leader(samples: &[(Instant, bool)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for (at, leader) in samples {
        match (leader, since) {
            (false, None) => since = Some(*at),
            (true, Some(s)) => {
                longest = longest.max(*at - s);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some((last, _))) = (since, samples.last()) {
        longest = longest.max(*last - s);
    }
    longest
}

/// The cluster's nodes while the demo runs: `cluster down` and every process reaped when
/// dropped (an error included).
struct RunningCluster {
    dir: std::path::PathBuf,
    children: Vec<(u64, std::process::Child)>,
    down: bool,
}

impl RunningCluster {
    fn down(&mut self) -> Result<()> {
        self.down = true;
        let r = crate::cluster::down(&crate::args::ClusterDirArgs {
            dir: self.dir.clone(),
        });
        for (_, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        r
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.down();
        }
    }
}

/// The head of node `url`: (height, hash, state root).
fn head_of(c: &reqwest::blocking::Client, url: &str) -> Option<(u64, String, String)> {
    let h = get_json(c, &format!("{url}/v1/head"))?;
    Some((
        h["height"].as_u64()?,
        h["hash"].as_str()?.to_string(),
        h["state_root"].as_str()?.to_string(),
    ))
}

/// Runs `aurigraph demo --cluster N`.
fn run_cluster(args: &DemoArgs, n: u64) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let leader_before = started.leader;
    let mut cluster = RunningCluster {
        dir: started.dir.clone(),
        children: started.children,
        down: false,
    };
    let c = crate::cluster::http()?;
    let (start_height, _, _) = head_of(&c, &urls[0]).context("node 1 does not answer /v1/head")?;
    let chain_id = get_json(&c, &format!("{}/v1/head", urls[0]))
        .and_then(|h| h["chain_id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .unwrap_or(1);
    println!(
        "aurigraph demo: a cluster of {n} validators in {}{}, leader node {leader_before} (term \
         {})",
        cluster.dir.display(),
        if started.restarted {
            " (started again from its data)"
        } else {
            ""
        },
        started.term
    );
    for node in &nodes {
        println!("  node {}  {}  {}", node.id, node.role.as_str(), node.url);
    }
    let load = args.duration;
    println!(
        "load: {CLIENTS} clients sending transfers round-robin to every node for {load:.0?}; \
         the leader is killed (SIGKILL) at {:.1?} and started again at {:.1?}",
        load / 3,
        load * 2 / 3
    );

    let acked_count = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let urls_arc = Arc::new(urls.clone());
    let watcher = {
        let (u, on) = (urls_arc.clone(), watching.clone());
        std::thread::spawn(move || watch_leader(&u, &on))
    };
    let t0 = Instant::now();
    let stop = t0 + load;
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|s| {
            let (u, a) = (urls_arc.clone(), acked_count.clone());
            std::thread::spawn(move || cluster_client(s, &u, chain_id, stop, &a))
        })
        .collect();

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(load.as_millis() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let tick = |bar: &ProgressBar, what: &str| {
        bar.set_position(t0.elapsed().min(load).as_millis() as u64);
        bar.set_message(format!(
            "{} acknowledged | {what}",
            acked_count.load(Ordering::Relaxed)
        ));
    };
    let wait_until = |at: Instant, what: &str| {
        while Instant::now() < at {
            tick(&bar, what);
            std::thread::sleep(Duration::from_millis(100).min(at - Instant::now()));
        }
    };

    // kill -9 of the leader.
    wait_until(t0 + load / 3, "load on every node");
    let victim = current_leader(&c, &urls).unwrap_or(leader_before);
    let child = cluster
        .children
        .iter_mut()
        .find(|(id, _)| *id == victim)
        .map(|(_, ch)| ch)
        .with_context(|| {
            format!("node {victim}, the leader, is not a process this demo started")
        })?;
    let pid = child.id();
    child
        .kill()
        .with_context(|| format!("cannot kill node {victim} (pid {pid})"))?;
    let _ = child.wait();
    let killed_at = Instant::now();
    say(
        &bar,
        format!(
            "{:>6.1?}  leader node {victim} (pid {pid}) killed with SIGKILL",
            killed_at - t0
        ),
    );

    // Started again from its config.
    wait_until(t0 + load * 2 / 3, &format!("node {victim} down"));
    let child = crate::cluster::restart_node(&cluster.dir, victim)?;
    let restarted_at = Instant::now();
    say(
        &bar,
        format!(
            "{:>6.1?}  node {victim} started again from its config (pid {})",
            restarted_at - t0,
            child.id()
        ),
    );
    cluster.children.push((victim, child));
    let victim_url = &urls[nodes.iter().position(|n| n.id == victim).unwrap_or(0)];
    let mut caught_up_at = None;
    let mut catching_up = |bar: &ProgressBar| {
        if caught_up_at.is_none() && follows(&c, &urls, victim_url) {
            caught_up_at = Some(Instant::now());
            say(
                bar,
                format!(
                    "{:>6.1?}  node {victim} follows the leader again, within {CAUGHT_UP_BLOCKS} \
                 blocks of its head",
                    t0.elapsed()
                ),
            );
        }
    };
    while Instant::now() < stop {
        catching_up(&bar);
        tick(&bar, &format!("node {victim} catching up"));
        std::thread::sleep(Duration::from_millis(100).min(stop - Instant::now()));
    }

    // The clients resolve their last transactions.
    let mut outcomes = Vec::new();
    for t in clients {
        while !t.is_finished() {
            catching_up(&bar);
            tick(&bar, "the clients resolving their last transactions");
            std::thread::sleep(Duration::from_millis(100));
        }
        outcomes.push(
            t.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let load_end = Instant::now();

    // Every node at one head.
    let caught_up_by = Instant::now() + CATCH_UP;
    let head = loop {
        let heads: Vec<Option<(u64, String, String)>> =
            urls.iter().map(|u| head_of(&c, u)).collect();
        if let Some(Some(first)) = heads.first()
            && heads.iter().all(|h| h.as_ref() == Some(first))
        {
            catching_up(&bar);
            break Some(first.clone());
        }
        if Instant::now() > caught_up_by {
            break None;
        }
        tick(&bar, &format!("node {victim} catching up"));
        std::thread::sleep(Duration::from_millis(100));
    };
    let one_head_after = load_end.elapsed();
    let leader_after = current_leader(&c, &urls);
    watching.store(false, Ordering::Relaxed);
    let samples = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the leader watcher panicked"))?;
    bar.finish_and_clear();

    // The verdict: every acknowledged (or confirmed) transaction committed on every node,
    // in one block, exactly once in the chain; each sender's nonce where its transactions
    // put it; one head.
    let mut problems: Vec<String> = outcomes.iter().flat_map(|o| o.anomalies.clone()).collect();
    let promised: Vec<&String> = outcomes
        .iter()
        .flat_map(|o| o.acked.iter().map(|(h, ..)| h).chain(&o.confirmed))
        .collect();
    let mut lost = Vec::new();
    for h in &promised {
        let mut blocks = std::collections::HashSet::new();
        for url in &urls {
            match get_json(&c, &format!("{url}/v1/transactions/{h}")) {
                Some(v) if v["state"] == "committed" => {
                    blocks.insert(v["block_height"].as_u64());
                }
                other => lost.push(format!(
                    "{h} on {url}: {}",
                    other.map_or("no answer".to_string(), |v| v["state"].to_string())
                )),
            }
        }
        if blocks.len() > 1 {
            problems.push(format!("{h}: in blocks {blocks:?} on different nodes"));
        }
    }
    let end_height = head.as_ref().map_or(start_height, |h| h.0);
    let mut in_chain: HashMap<String, u32> = HashMap::new();
    for height in start_height + 1..=end_height {
        let b = get_json(&c, &format!("{}/v1/blocks/{height}", urls[0]))
            .with_context(|| format!("node 1 does not answer /v1/blocks/{height}"))?;
        for t in b["transactions"].as_array().into_iter().flatten() {
            if let Some(h) = t["hash"].as_str() {
                *in_chain.entry(h.to_string()).or_default() += 1;
            }
        }
    }
    let not_once: Vec<String> = promised
        .iter()
        .filter(|h| in_chain.get(h.as_str()).copied().unwrap_or(0) != 1)
        .map(|h| {
            format!(
                "{h}: {} times in the chain",
                in_chain.get(h.as_str()).copied().unwrap_or(0)
            )
        })
        .collect();
    for o in &outcomes {
        let done = o.first_nonce + (o.acked.len() + o.confirmed.len()) as u64;
        let addr = aurigraph_node::config::dev_key(o.sender).1.to_hex();
        for url in &urls {
            let nonce = get_json(&c, &format!("{url}/v1/accounts/{addr}"))
                .and_then(|a| a["nonce"].as_u64());
            let ok = nonce.is_some_and(|n| n == done || (o.unresolved.is_some() && n == done + 1));
            if !ok {
                problems.push(format!(
                    "sender {} on {url}: nonce {nonce:?}, {done} expected",
                    o.sender
                ));
            }
        }
    }

    // The tables.
    let acked: Vec<&(String, Duration, Instant)> = outcomes.iter().flat_map(|o| &o.acked).collect();
    let confirmed = promised.len() - acked.len();
    let unresolved = outcomes.iter().filter(|o| o.unresolved.is_some()).count();
    let acked_after_kill = acked.iter().filter(|(_, _, at)| *at > killed_at).count();
    let mut refusals: BTreeMap<&str, u64> = BTreeMap::new();
    for o in &outcomes {
        for (k, v) in &o.refusals {
            *refusals.entry(k).or_default() += v;
        }
    }
    let mut latencies: Vec<Duration> = acked.iter().map(|(_, l, _)| *l).collect();
    latencies.sort_unstable();
    let span = acked
        .iter()
        .map(|(_, _, at)| *at)
        .max()
        .map_or(Duration::from_millis(1), |last| {
            last.saturating_duration_since(t0)
                .max(Duration::from_millis(1))
        });
    let mut s = Table::new();
    s.load_style(UTF8_FULL_CONDENSED);
    s.set_header(["figure", "value"]);
    s.add_row([
        "acknowledged (committed) transactions".to_string(),
        format!("{} ({acked_after_kill} after the kill)", acked.len()),
    ]);
    s.add_row([
        "confirmed by hash after a lost answer".to_string(),
        confirmed.to_string(),
    ]);
    s.add_row([
        "unresolved at the end (nothing promised)".to_string(),
        unresolved.to_string(),
    ]);
    s.add_row([
        "throughput".to_string(),
        format!(
            "{:.0} tx/s acknowledged over {span:.2?}",
            acked.len() as f64 / span.as_secs_f64()
        ),
    ]);
    s.add_row([
        "submit-to-commit latency".to_string(),
        format!(
            "p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default()
        ),
    ]);
    s.add_row([
        "refused or unanswered attempts (retried)".to_string(),
        format!("{refusals:?}"),
    ]);
    s.add_row([
        "leader before / after".to_string(),
        format!(
            "node {leader_before} / {}",
            leader_after.map_or("none".to_string(), |l| format!("node {l}"))
        ),
    ]);
    s.add_row([
        "killed / started again".to_string(),
        format!(
            "node {victim} at {:.1?} / at {:.1?}",
            killed_at - t0,
            restarted_at - t0
        ),
    ]);
    s.add_row([
        format!("node {victim} caught up"),
        match caught_up_at {
            Some(at) => format!(
                "{:.2?} after its restart (within {CAUGHT_UP_BLOCKS} blocks of the leader)",
                at - restarted_at
            ),
            None => "no".to_string(),
        },
    ]);
    s.add_row([
        "time without a leader (longest)".to_string(),
        format!("{:.2?}", longest_without_leader(&samples)),
    ]);
    s.add_row([
        "every node at one head".to_string(),
        match &head {
            Some(h) => format!("{one_head_after:.2?} after the load, height {}", h.0),
            None => format!("not within {CATCH_UP:.0?} after the load"),
        },
    ]);
    s.add_row(["wall time".to_string(), format!("{:.2?}", t0.elapsed())]);
    println!("{s}");

    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["node", "role", "state", "height", "state_root"]);
    let mut roots = std::collections::BTreeSet::new();
    for node in &nodes {
        let v = crate::cluster::cluster_view(&c, &node.url);
        let field = |k: &str| {
            v.as_ref().map_or("-".to_string(), |v| match &v[k] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".to_string(),
                other => other.to_string(),
            })
        };
        match v.as_ref().and_then(|v| v["state_root"].as_str()) {
            Some(r) => roots.insert(r.to_string()),
            None => roots.insert(format!("(node {} did not answer)", node.id)),
        };
        t.add_row([
            node.id.to_string(),
            node.role.as_str().to_string(),
            field("state"),
            field("height"),
            field("state_root"),
        ]);
    }
    println!("{t}");

    let lost_count = lost.len();
    problems.extend(not_once);
    let verdict = if lost.is_empty() && problems.is_empty() && roots.len() == 1 {
        let root = roots.first().cloned().unwrap_or_default();
        println!(
            "verdict: nothing lost: all {} acknowledged transactions committed exactly once on \
             all {n} nodes; one state root on every node ({root})",
            promised.len()
        );
        Ok(())
    } else {
        for l in lost.iter().chain(&problems).take(20) {
            println!("  {l}");
        }
        println!(
            "verdict: FAILED: {lost_count} acknowledged transaction(s) missing on some node, {} \
             other problem(s), {} different state roots",
            problems.len(),
            roots.len()
        );
        Err(anyhow::anyhow!(
            "[E_DEMO_VERDICT] the cluster lost or duplicated acknowledged transactions, or its \
             nodes disagree (see above)"
        ))
    };
    println!(
        "stopping the cluster (aurigraph cluster down --dir {})",
        cluster.dir.display()
    );
    cluster.down()?;
    verdict
}
