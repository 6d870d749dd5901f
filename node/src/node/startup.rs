//! Opening a node: storage, the state, the registries, the slot hosts, the pipeline, and
//! the re-admission of accepted submissions that had not committed. See the [`super`]
//! module for the order. Nothing runs yet when [`open`] returns: [`Node::start`] starts the
//! producer and the server.
//!
//! [`Node::start`]: super::Node::start

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use aurigraph_consensus::{BlockLog, SingleNodeLog};
use aurigraph_decision::{SlotHost, SlotKind};
use aurigraph_ledger::batcher::BatcherConfig;
use aurigraph_ledger::executor::ExecutorConfig;
use aurigraph_ledger::mempool::MempoolConfig;
use aurigraph_ledger::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_ledger::state::ShardedState;
use aurigraph_onnx::{LoadOptions, ModelRegistry};
use aurigraph_storage::{RocksRolloutStore, Storage, StorageError};
use aurigraph_wasm::{PluginRegistry, WasmRuntime};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::broadcast;

use super::{DroppedEvent, NodeCore};
use crate::config::{NodeConfig, genesis_hash};
use crate::error::{NodeError, NodeResult};
use crate::metrics::NodeMetrics;
use crate::registries::Registries;
use crate::telemetry::Recorder;

/// Opens storage, restores the state and the rollouts, and re-admits pending submissions.
pub fn open(config: NodeConfig) -> NodeResult<Arc<NodeCore>> {
    open_with_log(config, Box::new(SingleNodeLog))
}

/// [`open`] with another block log: the seam where a replicated log plugs in (and where the
/// tests put a fault-injecting one).
pub fn open_with_log(config: NodeConfig, log: Box<dyn BlockLog>) -> NodeResult<Arc<NodeCore>> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeError::io(format!("cannot create {}", config.data_dir.display()), e))?;
    let storage = Arc::new(Storage::open(
        &config.data_dir.join("db"),
        config.storage.sync,
    )?);
    // Storage tiers: the archive opens when archiving is on or segments are recorded; a
    // recorded segment missing or altered refuses the start (E_ARCHIVE_MISSING/_CORRUPT).
    if config.storage.archive_after_blocks > 0 || !storage.archive_records()?.is_empty() {
        let r = storage.open_archive(&config.archive_dir())?;
        for p in &r.removed {
            tracing::warn!(file = %p.display(), "unrecorded archive file from an interrupted run removed (its blocks are still in RocksDB)");
        }
        tracing::info!(
            segments = r.segments,
            bytes = r.bytes,
            archived_to = storage.archived_to()?,
            "archive opened"
        );
    }
    let genesis = config.genesis()?;
    let ghash = genesis_hash(&genesis);
    let shards = config.storage.state_shards;
    let (state, head) = match storage.genesis()? {
        None => {
            let state = ShardedState::from_genesis(&genesis, shards)
                .map_err(|e| NodeError::Startup(format!("genesis: [{}] {e}", e.code())))?;
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
                return Err(NodeError::GenesisMismatch {
                    data_dir: config.data_dir.clone(),
                    chain_id,
                });
            }
            let head = storage.head()?.ok_or_else(|| {
                StorageError::Corrupt("the database has a genesis but no head".into())
            })?;
            let state = storage.load_state(chain_id, shards)?;
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
            .config(config.policies.host_config())
            .metrics(metrics.engine().clone())
            .store(store.clone(), Arc::new(registries.clone()))
            .build()?;
        hosts.insert(slot, Arc::new(host));
    }
    let telemetry = if config.telemetry.enabled {
        let r = Recorder::open(config.telemetry.clone(), &storage)?;
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
    let cores = ExecutorConfig::default();
    let executor = ExecutorConfig {
        threads: if b.executor_threads > 0 {
            b.executor_threads
        } else {
            (cores.threads / 2).max(1)
        },
        ..cores
    };
    let pipeline_config = PipelineConfig {
        mempool: MempoolConfig {
            max_txs: b.mempool_txs,
            eviction: b.mempool_eviction,
            gapped_ttl_ms: b.mempool_gapped_ttl_ms,
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
    let (events, _) = broadcast::channel(config.api.subscription_buffer);
    let (drops, _) = broadcast::channel(config.api.subscription_buffer);
    let subscribers = Arc::new(tokio::sync::Semaphore::new(config.api.max_subscribers));
    let pruned = storage.prune_dropped(
        head.height
            .saturating_sub(config.block.dropped_retention_blocks),
    )?;
    if pruned > 0 {
        tracing::info!(pruned, "dropped-transaction records past retention deleted");
    }
    let scaling = crate::scaling::ScalingAdvisor::from_config(&config.scaling)
        .map_err(|e| crate::config::ConfigError(e.0))?;
    metrics.scaling_advice(0.0, scaling.desired_replicas());
    let faults = (config.faults.enabled && config.cluster.enabled())
        .then(|| Arc::new(crate::faults::FaultInjector::new(config.cluster.node_id)));
    if faults.is_some() {
        tracing::warn!("fault injection is on ([faults] enabled): for tests and chaos runs only");
    }
    let core = Arc::new(NodeCore {
        config,
        storage,
        pipeline,
        hosts,
        registries,
        metrics,
        admin_token,
        telemetry,
        events,
        drops,
        view: RwLock::new(()),
        head: RwLock::new(head),
        pending_seq: AtomicU64::new(0),
        subscribers,
        halt: tokio::sync::watch::Sender::new(None),
        ready: AtomicBool::new(false),
        inflight_txs: AtomicUsize::new(0),
        accepted_total: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        wake: (Mutex::new(()), Condvar::new()),
        log,
        cluster: std::sync::OnceLock::new(),
        scaling: Mutex::new(scaling),
        faults,
        retrain: crate::retrain::Retrainer::default(),
    });
    core.metrics.set_head(head.height);
    readmit_pending(&core)?;
    core.ready.store(true, Ordering::Release);
    Ok(core)
}

/// Accepted submissions that had not committed when the node stopped go through admission
/// again, in the order they were accepted. One refused now (its nonce used meanwhile, or a
/// smaller mempool) is recorded as dropped with the refusal's code, so a client asking
/// about it learns why; nothing leaves the `mempool` family silently.
fn readmit_pending(core: &NodeCore) -> NodeResult<()> {
    let pending = core.storage.pending()?;
    let next_seq = pending.last().map_or(0, |p| p.seq.saturating_add(1));
    core.pending_seq.store(next_seq, Ordering::Relaxed);
    if pending.is_empty() {
        return Ok(());
    }
    let height = core.head().height;
    let mut dropped = Vec::new();
    let mut forget = Vec::new();
    let mut readmitted = 0usize;
    for chunk in pending.chunks(READMIT_CHUNK) {
        let bytes: Vec<&[u8]> = chunk.iter().map(|p| p.bytes.as_slice()).collect();
        let results = core.pipeline.submit(&bytes);
        for (p, r) in chunk.iter().zip(&results) {
            match r {
                Ok(_) => readmitted += 1,
                Err(refused) => {
                    if core.storage.tx_location(&p.hash)?.is_some() {
                        forget.push(p.hash);
                        continue;
                    }
                    tracing::warn!(tx = %p.hash, code = refused.code, reason = %refused.reason, "acknowledged transaction not re-admitted: recorded as dropped");
                    dropped.push(DroppedEvent {
                        hash: p.hash,
                        code: refused.code.to_string(),
                        reason: format!("not admitted again on restart: {}", refused.reason),
                        height,
                    });
                }
            }
        }
    }
    core.settle(&forget, dropped)?;
    tracing::info!(
        readmitted,
        dropped = pending.len() - readmitted,
        "pending submissions re-admitted in arrival order"
    );
    Ok(())
}

/// Re-admission submits recorded transactions this many at a time.
const READMIT_CHUNK: usize = 4_096;

fn open_registries(config: &NodeConfig) -> NodeResult<Registries> {
    let p = &config.policies;
    let models = Arc::new(ModelRegistry::new(&p.models_dir, LoadOptions::default()));
    if p.models_dir.is_dir() {
        let rep = models.poll();
        for f in &rep.failed {
            tracing::warn!(folder = %f.folder.display(), code = f.code, reason = %f.reason, "model not loaded");
        }
        tracing::info!(loaded = rep.loaded.len(), folder = %p.models_dir.display(), "models registered");
    }
    let runtime = WasmRuntime::shared()
        .map_err(|e| NodeError::Startup(format!("wasm runtime: [{}] {e}", e.code())))?;
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

fn admin_token(config: &NodeConfig) -> NodeResult<String> {
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
    write_private(&path, &token)
        .map_err(|e| NodeError::io(format!("cannot write {}", path.display()), e))?;
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
