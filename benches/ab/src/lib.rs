//! # aurigraph-ab: the A/B harness behind `aurigraph bench ab`
//!
//! The same seeded workload through two policy arms, each on its own embedded node,
//! interleaved in rounds; per-arm figures, the B/A ratios with confidence intervals, a
//! verdict, and a report with plots.
//!
//! ## How a run goes
//!
//! 1. The workload preset (`uniform`, `hot-accounts`, `bursty`, `diurnal`, `spam-attack`,
//!    `adversarial-spam`, `shifting-hotspots`, `seasonal-demand`; see `benches/README.md`) is generated once from its seed: `--txs N` events, or every
//!    event that arrives within `--duration D` of workload time.
//! 2. Each arm gets its own node ([`Node::start`]: RocksDB in a temporary folder, the
//!    workload's genesis, the API on `127.0.0.1:0`, block production on its own thread,
//!    default block settings). Its SPEC's policies ([`spec`]) are resolved in the models
//!    and plugins folders, loaded as candidates (validated and warmed up) and promoted to
//!    baseline, so they answer every decision; the static policy stays behind them as the
//!    fallback. Then the arm's [`AbConfig::extra_policies`], if any, the same way.
//! 3. A warm-up (the first tenth of the events, at most 1,000) goes through both arms
//!    unmeasured. The rest is split into `--rounds R` consecutive chunks. In round `i` the chunk
//!    goes through A then B when `i` is even, B then A when it is odd; each arm keeps its
//!    node (and its state) across rounds. An arm's chunk is submitted through the node's
//!    service code (the path of `POST /v1/transactions`) at the events' arrival times
//!    scaled by `--speed` (or as fast as the node takes them with `--speed max`), then the
//!    harness waits until every accepted transaction has committed before the other arm
//!    starts. With `--speed max` the harness also wakes the arm's producer whenever
//!    transactions wait (as the node does itself when a full block waits), so the figures
//!    measure capacity, not the phase of the block timer; at a finite speed the producer
//!    keeps its own timer, as in production. The idle arm's node runs nothing but its producer's empty rounds.
//! 4. Per arm and round: committed transactions per second (first submission to last
//!    commit), submit-to-commit latency of every transaction (from the call to `submit`
//!    to the commit event), conflicts and re-executions per executed transaction (the
//!    executor's stats of each block), decision time in the slot hosts (their latency
//!    histograms), and at the end each slot's fallbacks.
//! 5. The per-round B/A ratios of TPS and of p99 latency give the ratio and its interval
//!    ([`stats`]: a t-interval on log ratios), and the verdict.
//!
//! [`report`] writes `report.md`, `report.json`, `throughput.svg` and `latency.svg`.

pub mod plot;
pub mod report;
pub mod spec;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aurigraph_decision::policy::Policy;
use aurigraph_decision::rollout::{PolicyRef, PolicyResolver};
use aurigraph_decision::{BackendKind, SlotKind};
use aurigraph_ledger::tx::TxHash;
use aurigraph_ledger::workload::{Event, Label, Workload};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use serde::Serialize;

use aurigraph_node::NodeConfig;
use aurigraph_node::config::Allocation;
use aurigraph_node::node::{BlockEvent, Node, NodeCore};
pub use report::AbReport;
use spec::{ArmSpec, PolicyChoice};

/// How fast a chunk is offered to an arm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// As fast as the node admits them (requests of up to 2,000 transactions back to back).
    Max,
    /// At the events' arrival times, this many times faster.
    Factor(f64),
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches('x').parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "[E_AB_SPEED] speed `{s}`: expected `max` or a positive factor such as 1 or 10"
            )),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) => write!(f, "{x}x"),
        }
    }
}

/// How much of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// This many events.
    Txs(usize),
    /// Every event arriving within this much workload time.
    Duration(Duration),
}

/// Everything that defines an A/B run.
#[derive(Clone, Debug)]
pub struct AbConfig {
    /// Arm A (the reference).
    pub a: ArmSpec,
    /// Arm B (the challenger): ratios are B/A.
    pub b: ArmSpec,
    /// Workload preset name.
    pub workload: String,
    /// How much of it.
    pub amount: Amount,
    /// Workload seed.
    pub seed: u64,
    /// Rounds (chunks), at least 1; 2 or more for an interval.
    pub rounds: usize,
    /// Submission speed.
    pub speed: Speed,
    /// Models folder.
    pub models_dir: PathBuf,
    /// Plugins folder.
    pub plugins_dir: PathBuf,
    /// Block production interval of both nodes, milliseconds.
    pub block_interval_ms: u64,
    /// fsync every block (the node's default).
    pub sync: bool,
    /// Events at the start of the workload that go through both arms, unmeasured, before
    /// the rounds (thread pools, RocksDB and the policies warm up); `None`: a tenth of the
    /// events, at most 1,000.
    pub warmup: Option<usize>,
    /// How long to wait for an arm's chunk to commit after its last submission.
    pub drain_timeout: Duration,
    /// No progress bar.
    pub quiet: bool,
    /// Policies put on an arm's slots after its SPEC's, loaded and promoted the same way;
    /// for policies a SPEC cannot name (a fault-injecting policy in a test). Empty by
    /// default.
    pub extra_policies: Vec<ExtraPolicy>,
}

/// A policy for one arm that its SPEC cannot name; it answers the slot of its
/// [`PolicyInfo`](aurigraph_decision::policy::PolicyInfo).
#[derive(Clone)]
pub struct ExtraPolicy {
    /// The arm whose node it goes on.
    pub arm: ArmId,
    /// The policy.
    pub policy: Arc<dyn Policy>,
}

impl std::fmt::Debug for ExtraPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = self.policy.info();
        f.debug_struct("ExtraPolicy")
            .field("arm", &self.arm)
            .field("slot", &info.slot)
            .field("policy", &info.label())
            .finish()
    }
}

impl AbConfig {
    /// A run of `a` against `b` on `workload` with the defaults: 20,000 transactions, seed 1,
    /// 10 rounds, speed max, `models` and `plugins/dist`, 50 ms blocks, fsync on.
    pub fn new(a: ArmSpec, b: ArmSpec, workload: &str) -> Self {
        Self {
            a,
            b,
            workload: workload.to_string(),
            amount: Amount::Txs(20_000),
            seed: 1,
            rounds: 10,
            speed: Speed::Max,
            models_dir: PathBuf::from("models"),
            plugins_dir: PathBuf::from("plugins/dist"),
            block_interval_ms: 50,
            sync: true,
            warmup: None,
            drain_timeout: Duration::from_secs(30),
            quiet: false,
            extra_policies: Vec::new(),
        }
    }
}

/// Which arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ArmId {
    /// The reference.
    A,
    /// The challenger.
    B,
}

impl ArmId {
    /// `A` or `B`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArmId::A => "A",
            ArmId::B => "B",
        }
    }
}

/// One committed block as the harness saw it.
#[derive(Clone, Debug)]
struct BlockSeen {
    at: Instant,
    txs: usize,
    executed: usize,
    conflicts: u64,
    re_executions: u64,
    hashes: Vec<TxHash>,
}

/// Decision time of one slot (from the host's latency histogram).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DecisionTime {
    /// Decisions taken.
    pub decisions: u64,
    /// Their total wall time inside the host, seconds.
    pub seconds: f64,
}

/// What one arm did in one round.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundFigures {
    /// Round index, from 0.
    pub round: usize,
    /// Whether this arm went first in the round.
    pub first: bool,
    /// Events offered.
    pub offered: usize,
    /// Accepted at submission.
    pub accepted: usize,
    /// Committed in a block and executed (fee charged).
    pub committed: usize,
    /// Accepted but not committed when the drain timed out.
    pub left: usize,
    /// First submission to last commit, seconds.
    pub span_s: f64,
    /// Committed per second over the span.
    pub tps: f64,
    /// Submit-to-commit latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Blocks committed.
    pub blocks: usize,
    /// Transactions in those blocks.
    pub block_txs: usize,
    /// Executor conflicts in those blocks.
    pub conflicts: u64,
    /// Re-executions in those blocks.
    pub re_executions: u64,
    /// Decision time per slot during the round.
    pub decisions: BTreeMap<String, DecisionTime>,
    /// Refusals at submission by code.
    pub refused: BTreeMap<String, u64>,
    /// p99 latency of the transactions the workload labels normal (honest), milliseconds.
    pub normal_p99_ms: f64,
    /// p50 latency of the transactions the workload labels spam, milliseconds.
    pub spam_p50_ms: f64,
    #[serde(skip)]
    latencies_ms: Vec<f64>,
    #[serde(skip)]
    normal_latencies_ms: Vec<f64>,
    #[serde(skip)]
    spam_latencies_ms: Vec<f64>,
    /// (seconds since the round started, executed transactions) per block.
    #[serde(skip)]
    block_times: Vec<(f64, usize)>,
}

/// One arm's node, and what it has seen.
struct ArmNode {
    id: ArmId,
    spec: ArmSpec,
    node: Option<Node>,
    core: Arc<NodeCore>,
    seen: Arc<Mutex<Vec<BlockSeen>>>,
    answered_by: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

/// What one arm did over the whole run (raw, for the report).
#[derive(Debug)]
pub struct ArmRun {
    /// Which arm.
    pub id: ArmId,
    /// Its SPEC.
    pub spec: ArmSpec,
    /// What answered each slot (the promoted baseline, `backend:name@version`).
    pub answered_by: BTreeMap<String, String>,
    /// Per round.
    pub rounds: Vec<RoundFigures>,
    /// Fallbacks per slot over the run (decisions answered by the static fallback).
    pub fallbacks: BTreeMap<String, u64>,
    /// Every submit-to-commit latency, milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    /// The latencies of the transactions the workload labels normal, sorted.
    pub normal_latencies_ms: Vec<f64>,
    /// The latencies of the transactions the workload labels spam, sorted.
    pub spam_latencies_ms: Vec<f64>,
    /// Executed transactions per block against the arm's own active time (seconds since
    /// its first submission, rounds laid end to end).
    pub throughput: Vec<(f64, usize)>,
}

fn resolve_version(
    core: &NodeCore,
    slot: SlotKind,
    backend: BackendKind,
    name: &str,
) -> Vec<String> {
    let mut versions: Vec<String> = match backend {
        BackendKind::Onnx => core.registries.models.as_ref().map_or_else(Vec::new, |m| {
            m.list()
                .into_iter()
                .filter(|e| e.key.slot == slot && e.key.name == name)
                .map(|e| e.key.version)
                .collect()
        }),
        _ => core.registries.plugins.as_ref().map_or_else(Vec::new, |p| {
            p.list()
                .into_iter()
                .filter(|e| e.key.slot == slot && e.key.name == name)
                .map(|e| e.key.version)
                .collect()
        }),
    };
    versions.sort_by(|a, b| version_cmp(a, b));
    versions
}

/// Compares dotted versions numerically where both parts are numbers.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let pa: Vec<&str> = a.split('.').collect();
    let pb: Vec<&str> = b.split('.').collect();
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            _ => x.cmp(y),
        };
        if o.is_ne() {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

fn available(core: &NodeCore, slot: SlotKind, backend: BackendKind) -> String {
    let names: Vec<String> = match backend {
        BackendKind::Onnx => core.registries.models.as_ref().map_or_else(Vec::new, |m| {
            m.list()
                .into_iter()
                .filter(|e| e.key.slot == slot)
                .map(|e| format!("{}@{}", e.key.name, e.key.version))
                .collect()
        }),
        _ => core.registries.plugins.as_ref().map_or_else(Vec::new, |p| {
            p.list()
                .into_iter()
                .filter(|e| e.key.slot == slot)
                .map(|e| format!("{}@{}", e.key.name, e.key.version))
                .collect()
        }),
    };
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Puts an arm's policies on its node's slots as promoted baselines: the SPEC's, then
/// `extra` (each on its own slot).
fn roll_out(
    core: &NodeCore,
    spec: &ArmSpec,
    extra: &[Arc<dyn Policy>],
) -> Result<BTreeMap<String, String>> {
    for (slot, choice) in spec.non_static() {
        let (backend, name, version) = match choice {
            PolicyChoice::Static => continue,
            PolicyChoice::Onnx { name, version } => (BackendKind::Onnx, name, version),
            PolicyChoice::Wasm { name, version } => (BackendKind::Wasm, name, version),
        };
        let folder = match backend {
            BackendKind::Onnx => core.config.policies.models_dir.display().to_string(),
            _ => core.config.policies.plugins_dir.display().to_string(),
        };
        let versions = resolve_version(core, slot, backend, name);
        let version = match version {
            Some(v) if versions.contains(v) => v.clone(),
            None if !versions.is_empty() => versions[versions.len() - 1].clone(),
            _ => anyhow::bail!(
                "[E_AB_POLICY_NOT_FOUND] {slot}={choice}: no such {backend} policy registered for \
                 {slot} in {folder} (registered: {})",
                available(core, slot, backend)
            ),
        };
        let r = PolicyRef {
            backend,
            name: name.clone(),
            version,
        };
        let policy = core
            .registries
            .resolve(slot, &r)
            .map_err(|e| anyhow::anyhow!("[E_AB_POLICY_NOT_FOUND] {slot}={choice}: {e}"))?;
        let host = &core.hosts[&slot];
        host.load_candidate(policy)
            .map_err(|e| anyhow::anyhow!("[{}] {slot}={choice}: {e}", e.code()))?;
        host.promote()
            .map_err(|e| anyhow::anyhow!("[{}] {slot}={choice}: {e}", e.code()))?;
    }
    for policy in extra {
        let info = policy.info();
        let (slot, label) = (info.slot, info.label());
        let host = &core.hosts[&slot];
        host.load_candidate(policy.clone())
            .map_err(|e| anyhow::anyhow!("[{}] {slot}={label}: {e}", e.code()))?;
        host.promote()
            .map_err(|e| anyhow::anyhow!("[{}] {slot}={label}: {e}", e.code()))?;
    }
    Ok(core
        .hosts
        .iter()
        .map(|(s, h)| (s.to_string(), h.status().baseline.to_string()))
        .collect())
}

fn node_config(
    cfg: &AbConfig,
    spec: &ArmSpec,
    workload: &Workload,
    dir: &std::path::Path,
) -> NodeConfig {
    let mut config = NodeConfig {
        data_dir: dir.to_path_buf(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
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
    config.policies.models_dir = cfg.models_dir.clone();
    config.policies.plugins_dir = cfg.plugins_dir.clone();
    config.block.interval_ms = cfg.block_interval_ms;
    config.storage.sync = cfg.sync;
    config.block.batch_size_reads_forecast = spec.batch_size_reads_forecast;
    let mut token = [0u8; 16];
    rand::fill(&mut token);
    config.admin.token = Some(hex::encode(token));
    config
}

impl ArmNode {
    fn start(
        id: ArmId,
        spec: &ArmSpec,
        cfg: &AbConfig,
        workload: &Workload,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("aurigraph-ab-{}-", id.as_str().to_lowercase()))
            .tempdir()
            .context("cannot create a temporary folder")?;
        let node = rt.block_on(Node::start(node_config(cfg, spec, workload, dir.path())))?;
        let core = node.core().clone();
        let extra: Vec<Arc<dyn Policy>> = cfg
            .extra_policies
            .iter()
            .filter(|e| e.arm == id)
            .map(|e| e.policy.clone())
            .collect();
        let answered_by =
            roll_out(&core, spec, &extra).with_context(|| format!("arm {}", id.as_str()))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut rx = core.subscribe();
        let sink = seen.clone();
        // Ends when the node's event channel closes (the node is dropped).
        std::thread::Builder::new()
            .name(format!("ab-collector-{}", id.as_str()))
            .spawn(move || {
                loop {
                    match rx.blocking_recv() {
                        Ok(b) => sink.lock().push(seen_of(&b)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(blocks = n, "A/B collector lagged: blocks missed");
                        }
                        Err(_) => break,
                    }
                }
            })?;
        Ok(Self {
            id,
            spec: spec.clone(),
            node: Some(node),
            core,
            seen,
            answered_by,
            _dir: dir,
        })
    }

    /// Per-slot decision totals (count, seconds) from the engine's latency histograms.
    fn decision_totals(&self) -> BTreeMap<String, DecisionTime> {
        decision_totals(&self.core)
    }

    fn run_chunk(
        &self,
        round: usize,
        first: bool,
        chunk: &[Event],
        cfg: &AbConfig,
        bar: &ProgressBar,
    ) -> RoundFigures {
        let before = self.decision_totals();
        let seen_from = self.seen.lock().len();
        let base = chunk.first().map_or(Duration::ZERO, |e| e.at);
        let mut submitted: HashMap<TxHash, Instant> = HashMap::with_capacity(chunk.len());
        let mut labels: HashMap<TxHash, Label> = HashMap::with_capacity(chunk.len());
        let mut refused: BTreeMap<String, u64> = BTreeMap::new();
        let started = Instant::now();
        let mut next = 0usize;
        while next < chunk.len() {
            let start = next;
            match cfg.speed {
                Speed::Max => next = (next + 2_000).min(chunk.len()),
                Speed::Factor(f) => {
                    let now = started.elapsed().mul_f64(f);
                    while next < chunk.len()
                        && chunk[next].at.saturating_sub(base) <= now
                        && next - start < 2_000
                    {
                        next += 1;
                    }
                    if next == start {
                        let due = chunk[next].at.saturating_sub(base).div_f64(f);
                        let wait = due.saturating_sub(started.elapsed());
                        std::thread::sleep(
                            wait.clamp(Duration::from_micros(200), Duration::from_millis(5)),
                        );
                        continue;
                    }
                }
            }
            let batch: Vec<Vec<u8>> = chunk[start..next].iter().map(|e| e.bytes.clone()).collect();
            let at = Instant::now();
            match self.core.submit(&batch) {
                Ok(items) => {
                    for (item, event) in items.into_iter().zip(&chunk[start..next]) {
                        match (
                            item.accepted,
                            item.hash.as_deref().and_then(TxHash::from_hex),
                        ) {
                            (true, Some(h)) => {
                                submitted.insert(h, at);
                                labels.insert(h, event.label);
                            }
                            _ => *refused.entry(item.code.unwrap_or_default()).or_default() += 1,
                        }
                    }
                }
                Err(e) => *refused.entry(e.code.to_string()).or_default() += batch.len() as u64,
            }
            bar.inc((next - start) as u64);
            if cfg.speed == Speed::Max {
                self.core.wake_producer();
            }
        }
        // Wait until every accepted transaction is in a block.
        let accepted = submitted.len();
        let deadline = Instant::now() + cfg.drain_timeout;
        let mut in_blocks;
        loop {
            in_blocks = self.seen.lock()[seen_from..]
                .iter()
                .map(|b| {
                    b.hashes
                        .iter()
                        .filter(|h| submitted.contains_key(h))
                        .count()
                })
                .sum::<usize>();
            if in_blocks >= accepted || Instant::now() >= deadline {
                break;
            }
            if cfg.speed == Speed::Max {
                self.core.wake_producer();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let after = self.decision_totals();
        let blocks: Vec<BlockSeen> = self.seen.lock()[seen_from..].to_vec();
        let mut f = RoundFigures {
            round,
            first,
            offered: chunk.len(),
            accepted,
            left: accepted.saturating_sub(in_blocks),
            refused,
            blocks: blocks.len(),
            ..RoundFigures::default()
        };
        let mut last = started;
        for b in &blocks {
            f.block_txs += b.txs;
            f.committed += b.executed;
            f.conflicts += b.conflicts;
            f.re_executions += b.re_executions;
            last = last.max(b.at);
            f.block_times.push((
                b.at.saturating_duration_since(started).as_secs_f64(),
                b.executed,
            ));
            for h in &b.hashes {
                if let Some(sub) = submitted.get(h) {
                    let ms = b.at.saturating_duration_since(*sub).as_secs_f64() * 1e3;
                    f.latencies_ms.push(ms);
                    match labels.get(h) {
                        Some(Label::Normal) => f.normal_latencies_ms.push(ms),
                        Some(Label::Spam) => f.spam_latencies_ms.push(ms),
                        _ => {}
                    }
                }
            }
        }
        f.latencies_ms.sort_by(f64::total_cmp);
        f.normal_latencies_ms.sort_by(f64::total_cmp);
        f.spam_latencies_ms.sort_by(f64::total_cmp);
        f.normal_p99_ms = stats::percentile(&f.normal_latencies_ms, 0.99);
        f.spam_p50_ms = stats::percentile(&f.spam_latencies_ms, 0.50);
        f.span_s = last
            .saturating_duration_since(started)
            .as_secs_f64()
            .max(1e-6);
        f.tps = f.committed as f64 / f.span_s;
        f.p50_ms = stats::percentile(&f.latencies_ms, 0.50);
        f.p95_ms = stats::percentile(&f.latencies_ms, 0.95);
        f.p99_ms = stats::percentile(&f.latencies_ms, 0.99);
        f.decisions = after
            .iter()
            .map(|(slot, a)| {
                let b = before.get(slot).copied().unwrap_or_default();
                (
                    slot.clone(),
                    DecisionTime {
                        decisions: a.decisions.saturating_sub(b.decisions),
                        seconds: (a.seconds - b.seconds).max(0.0),
                    },
                )
            })
            .collect();
        f
    }

    fn finish(mut self, rt: &tokio::runtime::Runtime, rounds: Vec<RoundFigures>) -> ArmRun {
        let fallbacks = self
            .core
            .hosts
            .iter()
            .map(|(s, h)| {
                let st = h.status();
                (
                    s.to_string(),
                    st.baseline_totals.fallbacks + st.candidate_totals.fallbacks,
                )
            })
            .collect();
        if let Some(node) = self.node.take() {
            rt.block_on(node.shutdown());
        }
        let mut latencies_ms: Vec<f64> = rounds
            .iter()
            .flat_map(|r| r.latencies_ms.iter().copied())
            .collect();
        latencies_ms.sort_by(f64::total_cmp);
        let gather = |f: fn(&RoundFigures) -> &Vec<f64>| {
            let mut v: Vec<f64> = rounds.iter().flat_map(|r| f(r).iter().copied()).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let normal_latencies_ms = gather(|r| &r.normal_latencies_ms);
        let spam_latencies_ms = gather(|r| &r.spam_latencies_ms);
        let mut throughput = Vec::new();
        let mut offset = 0.0;
        for r in &rounds {
            throughput.extend(r.block_times.iter().map(|(t, n)| (offset + t, *n)));
            offset += r.span_s;
        }
        ArmRun {
            id: self.id,
            spec: self.spec.clone(),
            answered_by: std::mem::take(&mut self.answered_by),
            rounds,
            fallbacks,
            latencies_ms,
            normal_latencies_ms,
            spam_latencies_ms,
            throughput,
        }
    }
}

fn seen_of(b: &BlockEvent) -> BlockSeen {
    BlockSeen {
        at: Instant::now(),
        txs: b.receipts.len(),
        executed: b.executed,
        conflicts: b.conflicts,
        re_executions: b.re_executions,
        hashes: b.receipts.iter().map(|r| r.tx_hash).collect(),
    }
}

/// Decisions and their time inside the host, per slot, both arms together, from each slot
/// host's status (its per-arm totals).
fn decision_totals(core: &NodeCore) -> BTreeMap<String, DecisionTime> {
    core.hosts
        .iter()
        .map(|(slot, host)| {
            let st = host.status();
            let (b, c) = (&st.baseline_totals, &st.candidate_totals);
            (
                slot.to_string(),
                DecisionTime {
                    decisions: b.decisions + c.decisions,
                    seconds: b.decision_seconds + c.decision_seconds,
                },
            )
        })
        .collect()
}

/// Runs the A/B comparison and returns its report (write it with [`AbReport::write`]).
pub fn run(cfg: &AbConfig) -> Result<AbReport> {
    if cfg.rounds == 0 {
        anyhow::bail!("[E_AB_ROUNDS] --rounds must be at least 1");
    }
    let workload = Workload::preset(&cfg.workload, cfg.seed)
        .map_err(|e| anyhow::anyhow!("[E_AB_WORKLOAD] {e}"))?;
    let events: Vec<Event> = match cfg.amount {
        Amount::Txs(n) => workload.generate(n),
        Amount::Duration(d) => workload.stream().take_while(|e| e.at < d).collect(),
    };
    let warmup = cfg
        .warmup
        .unwrap_or((events.len() / 10).min(1_000))
        .min(events.len().saturating_sub(cfg.rounds));
    if events.len() - warmup < cfg.rounds {
        anyhow::bail!(
            "[E_AB_TOO_FEW_TXS] {} events for {} rounds: every round needs at least one",
            events.len(),
            cfg.rounds
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let arms = [
        ArmNode::start(ArmId::A, &cfg.a, cfg, &workload, &rt)?,
        ArmNode::start(ArmId::B, &cfg.b, cfg, &workload, &rt)?,
    ];
    let bar = if cfg.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(2 * events.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tx  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (warm, measured) = events.split_at(warmup);
    if !warm.is_empty() {
        bar.set_message("warm-up (unmeasured)");
        for arm in &arms {
            arm.run_chunk(0, false, warm, cfg, &bar);
        }
    }
    let started = Instant::now();
    let per = measured.len().div_ceil(cfg.rounds);
    let mut figures: [Vec<RoundFigures>; 2] = [Vec::new(), Vec::new()];
    for (round, chunk) in measured.chunks(per).enumerate() {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for (k, &i) in order.iter().enumerate() {
            let arm = &arms[i];
            bar.set_message(format!(
                "round {}/{} arm {} ({})",
                round + 1,
                measured.len().div_ceil(per),
                arm.id.as_str(),
                arm.spec
            ));
            figures[i].push(arm.run_chunk(round, k == 0, chunk, cfg, &bar));
        }
    }
    bar.finish_and_clear();
    let wall = started.elapsed();
    let [fa, fb] = figures;
    let [na, nb] = arms;
    let a = na.finish(&rt, fa);
    let b = nb.finish(&rt, fb);
    Ok(AbReport::build(cfg, events.len(), warmup, wall, a, b))
}

/// `aurigraph bench ab`: runs, writes the report into `out`, prints the markdown report
/// and the files written.
pub fn run_and_write(cfg: &AbConfig, out: &std::path::Path) -> Result<()> {
    if !cfg.quiet {
        eprintln!(
            "aurigraph bench ab: A `{}` against B `{}` on `{}` (seed {}, {} rounds, speed {})",
            cfg.a, cfg.b, cfg.workload, cfg.seed, cfg.rounds, cfg.speed
        );
    }
    let report = run(cfg)?;
    let files = report.write(out)?;
    println!("{}", report.markdown());
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("10".parse::<Speed>(), Ok(Speed::Factor(10.0)));
        assert_eq!("2.5x".parse::<Speed>(), Ok(Speed::Factor(2.5)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_cmp("1.10.0", "1.9.0").is_gt());
        assert!(version_cmp("1.0", "1.0.1").is_lt());
        assert!(version_cmp("2", "2").is_eq());
    }

    #[test]
    fn decision_totals_read_the_hosts() {
        use rand::{SeedableRng, rngs::SmallRng};
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig {
            data_dir: dir.path().join("data"),
            ..NodeConfig::default()
        };
        config.admin.token = Some("ab-unit-test-admin-token-0123".into());
        config.policies.models_dir = dir.path().join("models");
        config.policies.plugins_dir = dir.path().join("plugins");
        let core = aurigraph_node::node::startup::open(config).unwrap();
        let before = decision_totals(&core);
        let input = SlotKind::Ordering.sample_input(8, &mut SmallRng::seed_from_u64(1));
        for k in 0..10 {
            core.hosts[&SlotKind::Ordering].decide(k, &input).unwrap();
        }
        let after = decision_totals(&core);
        assert_eq!(
            after["ordering"].decisions - before["ordering"].decisions,
            10
        );
        assert!(after["ordering"].seconds > before["ordering"].seconds);
        assert_eq!(
            after["batch_size"].decisions,
            before["batch_size"].decisions
        );
    }
}
