//! [`NodeCore`]: one node's parts wired together (storage, the engine's pipeline and slot
//! hosts, the model and plugin registries, block production), and [`Node`], the running
//! node with its API server.
//!
//! Start-up: open RocksDB; on a new database write the genesis, otherwise read the state
//! back and check its root against the head; poll the models and plugins folders; build the
//! five slot hosts on the RocksDB rollout store (a rollout survives a restart); resume the
//! pipeline at the head; admit again the accepted submissions that had not committed; start
//! block production, the folder watchers and the server.
//!
//! Block production (one thread): every `block.interval_ms`, or at once when a full block is
//! waiting, propose a block (`batch_size` and `ordering` slots), hand it to the block log,
//! execute it, commit it to RocksDB in one batch, then publish it to subscribers. The block
//! log is the seam where consensus goes: [`BlockLog`] on a single node passes the block
//! straight through; the openraft log replicates it before it executes. Side loops run in
//! the same thread: `demand` forecasts the arrival rate each second and `leader_health`
//! scores the heartbeat window each round.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::registries::Registries;
use anyhow::{Context, Result};
use aurigraph_decision::slot::{demand, leader_health};
use aurigraph_decision::{SlotHost, SlotKind};
use aurigraph_ledger::batcher::BatcherConfig;
use aurigraph_ledger::executor::ExecutorConfig;
use aurigraph_ledger::mempool::{MempoolConfig, Removal};
use aurigraph_ledger::pipeline::{Pipeline, PipelineConfig, PipelineSlots, ProducedBlock};
use aurigraph_ledger::state::ShardedState;
use aurigraph_ledger::tx::SignedTransaction;
use aurigraph_onnx::{LoadOptions, ModelRegistry};
use aurigraph_wasm::{PluginRegistry, WasmRuntime};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::broadcast;

use crate::block::{BlockHeader, StoredBlock, tx_root};
use crate::config::{NodeConfig, genesis_hash};
use crate::metrics::NodeMetrics;
use crate::storage::{BlockWrite, Head, RocksRolloutStore, Storage};
use crate::telemetry::Recorder;

/// A committed block as subscribers see it.
#[derive(Clone, Debug)]
pub struct BlockEvent {
    /// The block's header fields and hash.
    pub height: u64,
    /// Block hash.
    pub hash: [u8; 32],
    /// State root after it.
    pub state_root: aurigraph_ledger::state::StateRoot,
    /// Its transactions' receipts, in block order.
    pub receipts: Vec<aurigraph_ledger::executor::Receipt>,
    /// The executor's conflicts in this block (see `ExecStats::conflicts`).
    pub conflicts: u64,
    /// Executions beyond one per transaction (Block-STM only).
    pub re_executions: u64,
    /// Transactions executed (fee charged), successful or not; the rest were skipped.
    pub executed: usize,
    /// Proposal to commit, as the pipeline measured it.
    pub latency: Duration,
}

/// Where a proposed block goes before it executes: the seam for consensus.
///
/// A single node passes blocks straight through ([`SingleNodeLog`]); the replicated log
/// (openraft, with its entries in RocksDB) will append the block, wait for a quorum and only
/// then let it execute, on every replica in the same order. The log entry is the block: its
/// transactions in block order; model outputs are never needed to replay it.
pub trait BlockLog: Send + Sync {
    /// Appends the block at `height`; `Ok` once it may execute.
    fn append(&self, height: u64, txs: &[SignedTransaction]) -> Result<(), String>;
}

/// The block log of a single node: every block may execute at once.
#[derive(Debug, Default)]
pub struct SingleNodeLog;

impl BlockLog for SingleNodeLog {
    fn append(&self, _height: u64, _txs: &[SignedTransaction]) -> Result<(), String> {
        Ok(())
    }
}

/// The node's parts, shared by the block producer and the APIs.
pub struct NodeCore {
    /// The configuration it started with.
    pub config: NodeConfig,
    /// RocksDB.
    pub storage: Arc<Storage>,
    /// The transaction path (admission, mempool, batcher, executor, state).
    pub pipeline: Arc<Pipeline>,
    /// The five slot hosts.
    pub hosts: BTreeMap<SlotKind, Arc<SlotHost>>,
    /// The watched models and plugins folders.
    pub registries: Registries,
    /// Prometheus metrics (engine and node).
    pub metrics: NodeMetrics,
    /// The admin bearer token.
    pub admin_token: String,
    /// Decision telemetry (`None` when `telemetry.enabled = false`).
    pub telemetry: Option<Arc<Recorder>>,
    pub(crate) events: broadcast::Sender<Arc<BlockEvent>>,
    head: RwLock<Head>,
    ready: AtomicBool,
    pub(crate) inflight_txs: AtomicUsize,
    pub(crate) accepted_total: AtomicU64,
    stop: AtomicBool,
    wake: (Mutex<()>, Condvar),
    log: Box<dyn BlockLog>,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore")
            .field("data_dir", &self.config.data_dir)
            .field("head", &*self.head.read())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NodeCore {
    /// Opens storage, restores the state and the rollouts, and re-admits pending
    /// submissions. Nothing runs yet: see [`Node::start`].
    pub fn open(config: NodeConfig) -> Result<Arc<Self>> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let storage = Arc::new(
            Storage::open(&config.data_dir.join("db"), config.storage.sync)
                .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?,
        );
        let genesis = config.genesis()?;
        let ghash = genesis_hash(&genesis);
        let shards = config.storage.state_shards;
        let (state, head) = match storage.genesis()? {
            None => {
                let state = ShardedState::from_genesis(&genesis, shards)
                    .map_err(|e| anyhow::anyhow!("genesis: [{}] {e}", e.code()))?;
                let head = storage.init_genesis(ghash, &state)?;
                tracing::info!(
                    chain_id = genesis.chain_id,
                    accounts = state.len(),
                    "new database: genesis written"
                );
                (state, head)
            }
            Some((stored, chain_id)) => {
                if stored != ghash || chain_id != genesis.chain_id {
                    anyhow::bail!(
                        "[E_GENESIS_MISMATCH] the database in {} was created for another genesis \
                         (chain {chain_id}); use another --data-dir or the genesis it was made with",
                        config.data_dir.display()
                    );
                }
                let head = storage
                    .head()?
                    .context("[E_STORAGE_CORRUPT] the database has a genesis but no head")?;
                let state = storage
                    .load_state(chain_id, shards)
                    .map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
                tracing::info!(height = head.height, root = %head.state_root, "state restored");
                (state, head)
            }
        };

        let metrics = NodeMetrics::new();
        let registries = open_registries(&config)?;
        let store = RocksRolloutStore::new(storage.clone());
        let mut hosts = BTreeMap::new();
        for slot in SlotKind::ALL {
            let host = SlotHost::builder(slot)
                .metrics(metrics.engine().clone())
                .store(store.clone(), Arc::new(registries.clone()))
                .build()
                .with_context(|| format!("cannot start the {slot} host"))?;
            hosts.insert(slot, Arc::new(host));
        }
        let telemetry = if config.telemetry.enabled {
            let r = Recorder::open(config.telemetry.clone(), &storage)
                .map_err(|e| anyhow::anyhow!("[{}] telemetry: {e}", e.code()))?;
            r.install(hosts.values());
            Some(r)
        } else {
            None
        };
        let slots = PipelineSlots {
            anomaly: hosts[&SlotKind::Anomaly].clone(),
            batch_size: hosts[&SlotKind::BatchSize].clone(),
            ordering: hosts[&SlotKind::Ordering].clone(),
        };
        let b = &config.block;
        let mut executor = ExecutorConfig::default();
        if b.executor_threads > 0 {
            executor.threads = b.executor_threads;
        }
        let pipeline_config = PipelineConfig {
            mempool: MempoolConfig {
                max_txs: b.mempool_txs,
                ..MempoolConfig::default()
            },
            batcher: BatcherConfig {
                min_batch_size: b.min_txs,
                max_batch_size: b.max_txs,
                ..BatcherConfig::default()
            },
            executor,
            ..PipelineConfig::default()
        };
        let pipeline = Arc::new(Pipeline::from_state(
            pipeline_config,
            slots,
            state,
            head.height,
        )?);
        let admin_token = admin_token(&config)?;
        let (events, _) = broadcast::channel(1024);
        let core = Arc::new(Self {
            config,
            storage,
            pipeline,
            hosts,
            registries,
            metrics,
            admin_token,
            telemetry,
            events,
            head: RwLock::new(head),
            ready: AtomicBool::new(false),
            inflight_txs: AtomicUsize::new(0),
            accepted_total: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(()), Condvar::new()),
            log: Box::new(SingleNodeLog),
        });
        core.metrics.set_head(head.height);
        core.readmit_pending()?;
        core.ready.store(true, Ordering::Release);
        Ok(core)
    }

    /// Accepted submissions that had not committed when the node stopped go through
    /// admission again; what is refused now (committed meanwhile, stale) is forgotten.
    fn readmit_pending(&self) -> Result<()> {
        let pending = self.storage.pending()?;
        if pending.is_empty() {
            return Ok(());
        }
        let results = self.pipeline.submit(&pending);
        let mut dropped = Vec::new();
        let mut readmitted = 0usize;
        for (bytes, r) in pending.iter().zip(&results) {
            match r {
                Ok(_) => readmitted += 1,
                Err(refused) => {
                    tracing::debug!(code = refused.code, "pending submission not re-admitted");
                    if let Ok(tx) = SignedTransaction::decode(bytes) {
                        dropped.push(tx.hash());
                    }
                }
            }
        }
        self.storage.delete_pending(&dropped)?;
        tracing::info!(
            readmitted,
            dropped = dropped.len(),
            "pending submissions re-admitted"
        );
        Ok(())
    }

    /// The head.
    pub fn head(&self) -> Head {
        *self.head.read()
    }

    /// Whether the node serves (storage healthy, production running).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Asks the producer to run a round now (a full block is waiting).
    pub(crate) fn wake_producer(&self) {
        self.wake.1.notify_one();
    }

    /// Subscribes to committed blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BlockEvent>> {
        self.events.subscribe()
    }

    /// Produces, commits and publishes every block that is ready now. Returns how many.
    pub fn produce_ready_blocks(&self, max_blocks: usize) -> Result<usize> {
        let mut n = 0;
        // An empty mempool proposes nothing: the slots are not asked for an idle round.
        while n < max_blocks && self.pipeline.mempool().ready_len() > 0 {
            let Some(proposal) = self.pipeline.propose() else {
                break;
            };
            let txs: Vec<SignedTransaction> =
                proposal.batch.txs.iter().map(|t| (*t.tx).clone()).collect();
            self.log
                .append(proposal.height, &txs)
                .map_err(|e| anyhow::anyhow!("[E_LOG] block {}: {e}", proposal.height))?;
            let produced = self.pipeline.apply(proposal)?;
            self.commit(produced, txs)?;
            n += 1;
        }
        Ok(n)
    }

    fn commit(&self, produced: ProducedBlock, txs: Vec<SignedTransaction>) -> Result<()> {
        let parent = self.head().hash;
        let header = BlockHeader {
            height: produced.height,
            parent,
            state_root: produced.outcome.state_root,
            timestamp_ms: now_ms(),
            tx_root: tx_root(txs.iter().map(|t| t.hash())),
        };
        let receipts = produced.outcome.execution.receipts.clone();
        let block = StoredBlock {
            header,
            txs,
            receipts,
        };
        let telemetry = self.telemetry.as_ref().map(|t| {
            let c = self.pipeline.admission().counters();
            t.block_write(&produced, (c.admitted, c.refused))
        });
        let forget: Vec<_> = produced
            .removed
            .iter()
            .filter(|r| r.reason == Removal::Stale)
            .map(|r| r.hash)
            .collect();
        let head = self
            .storage
            .commit_block(&BlockWrite {
                block: &block,
                writes: &produced.outcome.execution.write_set,
                telemetry,
                forget: &forget,
            })
            .map_err(|e| {
                // The engine's state is ahead of the disk now: stop serving rather than
                // acknowledge what may not be durable.
                self.ready.store(false, Ordering::Release);
                anyhow::anyhow!(
                    "[{}] block {} not committed: {e}",
                    e.code(),
                    produced.height
                )
            })?;
        *self.head.write() = head;
        self.metrics.block_committed(&block, produced.latency);
        self.observe_outcomes(&produced);
        let event = Arc::new(BlockEvent {
            height: head.height,
            hash: head.hash,
            state_root: head.state_root,
            receipts: block.receipts,
            conflicts: produced.outcome.execution.stats.conflicts,
            re_executions: produced.outcome.execution.stats.re_executions,
            executed: produced.outcome.execution.stats.executed,
            latency: produced.latency,
        });
        // No subscriber is not an error.
        let _ = self.events.send(event);
        Ok(())
    }

    /// Feeds each slot's key metric to its guard, per arm, so a canary is judged on what
    /// it led to (the same anytime-valid confidence sequences `policy status` shows):
    /// `ordering` on the block's proposal-to-commit time, `batch_size` on the mean
    /// submit-to-commit latency of the block's transactions (ms, higher is worse). A
    /// decision the static policy answered in a fallback credits no arm.
    fn observe_outcomes(&self, produced: &ProducedBlock) {
        let arm_of = |answer: &aurigraph_ledger::batcher::SlotAnswer| {
            answer.tag().filter(|t| t.fallback.is_none()).map(|t| t.arm)
        };
        if let Some(arm) = arm_of(&produced.batch.ordering) {
            self.hosts[&SlotKind::Ordering]
                .observe_outcome(arm, produced.latency.as_secs_f64() * 1e3);
        }
        if let Some(arm) = arm_of(&produced.batch.batch_size)
            && !produced.txs.is_empty()
        {
            let now = Instant::now();
            let total: f64 = produced
                .txs
                .iter()
                .map(|t| now.saturating_duration_since(t.admitted_at).as_secs_f64() * 1e3)
                .sum();
            self.hosts[&SlotKind::BatchSize]
                .observe_outcome(arm, total / produced.txs.len() as f64);
        }
    }

    /// The producer's loop; returns when [`stop`](Self::stop) is called or storage fails.
    fn run_producer(self: Arc<Self>) {
        let interval = Duration::from_millis(self.config.block.interval_ms);
        let mut last_demand = Instant::now();
        let mut rates: Vec<f32> = Vec::new();
        let mut arrivals_seen = self.accepted_total.load(Ordering::Relaxed);
        let mut round: u64 = 0;
        while !self.stop.load(Ordering::Acquire) {
            let started = Instant::now();
            match self.produce_ready_blocks(64) {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "block production stopped");
                    self.ready.store(false, Ordering::Release);
                    return;
                }
            }
            round += 1;
            // leader_health: this node's heartbeat window (a single node has no peers yet).
            let round_ms = started.elapsed().as_secs_f32() * 1e3;
            let hb = leader_health::LeaderHealthFeatures {
                heartbeat_interval_ms: interval.as_secs_f32() * 1e3,
                election_timeout_ms: interval.as_secs_f32() * 1e4,
                ms_since_last_heartbeat: round_ms,
                missed_heartbeats: 0.0,
                rtt_mean_ms: round_ms,
                rtt_p99_ms: round_ms,
                rtt_trend: 0.0,
                replication_lag_entries: 0.0,
                window_ticks: 10.0,
            };
            if let Err(e) = self.hosts[&SlotKind::LeaderHealth].decide(round, &hb.matrix()) {
                tracing::warn!(error = %e, "leader_health decision failed");
            }
            // demand: the arrival rate per second, forecast each second.
            if last_demand.elapsed() >= Duration::from_secs(1) {
                let accepted = self.accepted_total.load(Ordering::Relaxed);
                let secs = last_demand.elapsed().as_secs_f32();
                rates.push(accepted.saturating_sub(arrivals_seen) as f32 / secs);
                arrivals_seen = accepted;
                last_demand = Instant::now();
                if rates.len() > demand::WINDOW {
                    rates.remove(0);
                }
                let w = demand::DemandWindow::from_recent(&rates).matrix();
                if let Err(e) = self.hosts[&SlotKind::Demand].decide(round, &w) {
                    tracing::warn!(error = %e, "demand decision failed");
                }
            }
            self.metrics.set_mempool(self.pipeline.mempool().len());
            self.flush_telemetry();
            let mut guard = self.wake.0.lock();
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            if self.pipeline.mempool().ready_len() < self.config.block.max_txs {
                let _ = self.wake.1.wait_for(&mut guard, interval);
            }
        }
    }

    /// Writes the decisions recorded since the last block (between blocks: under the
    /// head's height). A failure is logged: telemetry never stops the node.
    pub fn flush_telemetry(&self) {
        if let Some(t) = &self.telemetry
            && t.pending() > 0
        {
            let w = t.flush_write(self.head().height);
            if let Err(e) = self.storage.write_telemetry(&w) {
                tracing::warn!(error = %e, "telemetry not written");
            }
        }
    }

    /// Stops block production (the thread finishes its round).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.ready.store(false, Ordering::Release);
        let _guard = self.wake.0.lock();
        self.wake.1.notify_all();
    }
}

fn open_registries(config: &NodeConfig) -> Result<Registries> {
    let p = &config.policies;
    let models = Arc::new(ModelRegistry::new(&p.models_dir, LoadOptions::default()));
    if p.models_dir.is_dir() {
        let rep = models.poll();
        for f in &rep.failed {
            tracing::warn!(folder = %f.folder.display(), code = f.code, reason = %f.reason, "model not loaded");
        }
        tracing::info!(loaded = rep.loaded.len(), folder = %p.models_dir.display(), "models registered");
    }
    let runtime = WasmRuntime::shared().map_err(|e| anyhow::anyhow!("wasm runtime: {e}"))?;
    let plugins = Arc::new(PluginRegistry::new(&p.plugins_dir, runtime));
    if p.plugins_dir.is_dir() {
        let rep = plugins.poll();
        for f in &rep.failed {
            tracing::warn!(file = %f.folder.display(), code = f.code, reason = %f.reason, "plugin not loaded");
        }
        tracing::info!(loaded = rep.loaded.len(), folder = %p.plugins_dir.display(), "plugins registered");
    }
    Ok(Registries::new(models, plugins))
}

fn admin_token(config: &NodeConfig) -> Result<String> {
    if let Some(t) = &config.admin.token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && t.trim().len() >= 16
    {
        return Ok(t.trim().to_string());
    }
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let token = hex::encode(bytes);
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(path = %path.display(), "no admin token configured: a random one was written there");
    Ok(token)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A running node: block production, folder watchers and the API server.
pub struct Node {
    core: Arc<NodeCore>,
    producer: Option<JoinHandle<()>>,
    _watchers: Vec<Box<dyn std::any::Any + Send>>,
    server: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the node and starts everything; the server listens on `config.listen` (port 0
    /// takes a free port: see [`addr`](Self::addr)). Call inside a tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Self> {
        let listen = config.listen;
        let core = tokio::task::spawn_blocking(move || NodeCore::open(config))
            .await
            .context("start-up panicked")??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("[E_LISTEN] cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let producer = {
            let core = core.clone();
            std::thread::Builder::new()
                .name("aurigraph-producer".into())
                .spawn(move || core.run_producer())?
        };
        let mut watchers: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        let every = Duration::from_millis(core.config.policies.watch_interval_ms.max(100));
        if let Some(m) = &core.registries.models {
            watchers.push(Box::new(m.watch(every, |rep| {
                for key in &rep.loaded {
                    tracing::info!(model = %key, "model registered as a candidate version");
                }
            })?));
        }
        if let Some(p) = &core.registries.plugins {
            watchers.push(Box::new(p.watch(every, |rep| {
                for key in &rep.loaded {
                    tracing::info!(plugin = %key, "plugin registered as a candidate version");
                }
            })?));
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = crate::api::router(core.clone());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "server stopped");
            }
        });
        tracing::info!(%addr, "aurigraph node serving gRPC and HTTP");
        Ok(Self {
            core,
            producer: Some(producer),
            _watchers: watchers,
            server: Some(server),
            shutdown: Some(tx),
            addr,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's parts.
    pub fn core(&self) -> &Arc<NodeCore> {
        &self.core
    }

    /// Stops the server, then block production; returns once both have stopped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        self.core.stop();
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || p.join()).await;
        }
        self.core.flush_telemetry();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.core.stop();
    }
}
