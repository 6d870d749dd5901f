//! The node's configuration: TOML (every field optional, see `node/aurigraph.example.toml`),
//! then environment overrides, then command-line flags.
//!
//! | variable | overrides |
//! |---|---|
//! | `AURIGRAPH_DATA_DIR` | `data_dir` |
//! | `AURIGRAPH_LISTEN` | `listen` |
//! | `AURIGRAPH_ADMIN_TOKEN` | `admin.token` |
//! | `AURIGRAPH_MODELS_DIR` | `policies.models_dir` |
//! | `AURIGRAPH_PLUGINS_DIR` | `policies.plugins_dir` |
//! | `AURIGRAPH_BLOCK_INTERVAL_MS` | `block.interval_ms` |
//! | `AURIGRAPH_SYNC` | `storage.sync` (`true` or `false`) |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aurigraph_decision::HostConfig;
use aurigraph_decision::host::BreakerConfig;
use aurigraph_decision::rollout::GuardConfig;
use aurigraph_ledger::state::Genesis;
use aurigraph_ledger::tx::{Address, keypair_from_seed};
use ed25519_consensus::SigningKey;
use serde::{Deserialize, Serialize};

/// Default API address: gRPC and HTTP on one port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7600";

/// A configuration error, with the stable code `E_CONFIG`.
#[derive(Debug, thiserror::Error)]
#[error("[E_CONFIG] {0}")]
pub struct ConfigError(pub String);

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// gRPC and HTTP address.
    pub listen: SocketAddr,
    /// Chain identity and initial balances.
    pub genesis: GenesisConfig,
    /// RocksDB.
    pub storage: StorageConfig,
    /// Block production.
    pub block: BlockConfig,
    /// Limits of the APIs.
    pub api: ApiConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// Where models and plugins are watched.
    pub policies: PoliciesConfig,
    /// Decision telemetry (see [`crate::telemetry`]).
    pub telemetry: TelemetryConfig,
    /// The replicated log (off unless `node_id` is set).
    pub cluster: ClusterConfig,
    /// Scaling advice from the `demand` forecast (see [`crate::scaling`]).
    pub scaling: crate::scaling::ScalingConfig,
    /// The `leader_health` monitor and hand-over (see [`crate::health`]).
    pub leader_health: crate::health::LeaderHealthConfig,
    /// Fault injection, for tests and chaos runs only (see [`crate::faults`]).
    pub faults: crate::faults::FaultsConfig,
    /// The closed loop: background retraining and rollout (see [`crate::retrain`]).
    pub retrain: crate::retrain::RetrainConfig,
}

/// A replica of a validator cluster (openraft). Off when `node_id` is 0: the node then runs
/// alone, every block executing at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This replica's id (1 and up); 0: no cluster.
    pub node_id: u64,
    /// What this replica is for: `validator` (a voter), `business` (a learner that applies
    /// blocks, serves the API and forwards submissions), `slim` (a learner that serves reads,
    /// refuses submissions and keeps only recent blocks).
    pub role: NodeRole,
    /// The voters the cluster is initialized with (by the replica with `bootstrap = true`).
    pub members: Vec<ClusterMember>,
    /// Whether this replica initializes the cluster (once, on an empty log).
    pub bootstrap: bool,
    /// The secret every Raft RPC carries (`AURIGRAPH_CLUSTER_SECRET` overrides it). Required.
    pub secret: Option<String>,
    /// Leader heartbeat, ms (0: 100).
    pub heartbeat_ms: u64,
    /// Election timeout range, ms (0: 500 and 1,000).
    pub election_min_ms: u64,
    /// Upper end of the election timeout range, ms.
    pub election_max_ms: u64,
    /// Build a state snapshot every this many applied log entries (one per block, plus
    /// membership changes); 0: never (the log is then never purged). Default 5,000.
    pub snapshot_logs: u64,
    /// Entries a snapshot covers that stay in the log; older ones are purged. A replica behind
    /// by more (or a new learner) receives the snapshot. Default 1,000.
    pub snapshot_keep_logs: u64,
    /// On a `slim` replica: the blocks kept below the head (older blocks, their transaction
    /// index and receipts are deleted as blocks apply). Default 10,000; ignored by other roles.
    pub slim_keep_blocks: u64,
    /// On the leader: blocks proposed and not yet committed at once (each next one executed
    /// on top of those in flight). 1: one block at a time. Default 4.
    pub max_blocks_in_flight: usize,
}

/// A replica's role in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// A voter: it may lead, and its acknowledgement counts toward a quorum.
    #[default]
    Validator,
    /// A learner that applies every block, serves the API and forwards submissions to the
    /// leader.
    Business,
    /// A learner that applies every block and serves reads; it refuses submissions
    /// (`E_SLIM_READ_ONLY`) and keeps only recent blocks.
    Slim,
}

impl NodeRole {
    /// `validator`, `business` or `slim`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Validator => "validator",
            NodeRole::Business => "business",
            NodeRole::Slim => "slim",
        }
    }
}

/// One voter of the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterMember {
    /// Its id.
    pub id: u64,
    /// `host:port` of its API (the Raft service shares it).
    pub addr: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: 0,
            role: NodeRole::default(),
            members: Vec::new(),
            bootstrap: false,
            secret: None,
            heartbeat_ms: 0,
            election_min_ms: 0,
            election_max_ms: 0,
            snapshot_logs: 5_000,
            snapshot_keep_logs: 1_000,
            slim_keep_blocks: 10_000,
            max_blocks_in_flight: 4,
        }
    }
}

impl ClusterConfig {
    /// Whether the node is a replica of a cluster.
    pub fn enabled(&self) -> bool {
        self.node_id != 0
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("aurigraph-data"),
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7600))),
            genesis: GenesisConfig::default(),
            storage: StorageConfig::default(),
            block: BlockConfig::default(),
            api: ApiConfig::default(),
            admin: AdminConfig::default(),
            policies: PoliciesConfig::default(),
            telemetry: TelemetryConfig::default(),
            cluster: ClusterConfig::default(),
            scaling: crate::scaling::ScalingConfig::default(),
            leader_health: crate::health::LeaderHealthConfig::default(),
            faults: crate::faults::FaultsConfig::default(),
            retrain: crate::retrain::RetrainConfig::default(),
        }
    }
}

/// Chain identity and initial balances.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenesisConfig {
    /// Chain id every transaction must carry.
    pub chain_id: u32,
    /// Development accounts funded at genesis, with keys anyone can derive
    /// ([`dev_key`]): `aurigraph tx --from-dev N` signs with them. 0 for none.
    pub dev_accounts: u32,
    /// Balance of each development account.
    pub dev_balance: u64,
    /// Further allocations: address (hex) and balance.
    pub allocations: Vec<Allocation>,
}

impl Default for GenesisConfig {
    fn default() -> Self {
        Self {
            chain_id: 1,
            dev_accounts: 64,
            dev_balance: 1_000_000_000_000,
            allocations: Vec::new(),
        }
    }
}

/// One genesis allocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// Address, 64 hex characters.
    pub address: String,
    /// Balance in base units.
    pub balance: u64,
}

/// RocksDB settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// fsync every block and every batch of accepted submissions (see `storage` docs).
    pub sync: bool,
    /// Storage shards of the in-memory state.
    pub state_shards: usize,
    /// Storage tiers: blocks (with their receipts) more than this many blocks below the head
    /// move from RocksDB to compressed archive segments, one segment at a time (see the
    /// storage crate's `archive` module). 0 (the default): off, every block stays in RocksDB.
    /// Hot blocks then stay below `archive_after_blocks + 2 x archive_segment_blocks`.
    pub archive_after_blocks: u64,
    /// The archive folder (default `<data_dir>/archive`). Read on every start when it holds
    /// segments, even with archiving off.
    pub archive_dir: Option<PathBuf>,
    /// Heights per archive segment.
    pub archive_segment_blocks: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            sync: true,
            state_shards: aurigraph_ledger::state::DEFAULT_SHARDS,
            archive_after_blocks: 0,
            archive_dir: None,
            archive_segment_blocks: 1_000,
        }
    }
}

/// Block production.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockConfig {
    /// Time between production rounds when the mempool is not full enough for a block: the
    /// most a transaction waits for its round (default 10; `aurigraph load` at 25 k tx/s
    /// on 2 cores, submit-to-commit p50 46 ms with 50, 21 ms with 10, no throughput lost at
    /// saturation; an idle node proposes nothing).
    pub interval_ms: u64,
    /// Smallest block (the `batch_size` slot's lower clamp).
    pub min_txs: usize,
    /// Largest block (the `batch_size` slot's upper clamp).
    pub max_txs: usize,
    /// Executor threads (0: half the cores, at least one: admission's signature checks run
    /// on every core at the same time, and an executor with a worker per core waited on
    /// descheduled workers; `aurigraph load` at 30 k tx/s on 2 cores: submit-to-commit p50
    /// 69 -> 37 ms with one thread instead of two).
    pub executor_threads: usize,
    /// Mempool capacity in transactions.
    pub mempool_txs: usize,
    /// What a full mempool may evict (an evicted transaction is reported `dropped` with
    /// `E_DROPPED_EVICTED`): `"none"`, `"by_class"` (default: only for a transaction of a
    /// better priority class, normal over suspicious over anomalous, so spam flagged by the
    /// `anomaly` slot makes room for honest traffic) or `"by_fee"` (also for a higher fee in
    /// the same class). Otherwise a full mempool refuses with `E_MEMPOOL_FULL`.
    pub mempool_eviction: aurigraph_ledger::mempool::Eviction,
    /// A transaction behind a nonce gap (an earlier nonce of its sender is missing) is dropped
    /// with `E_DROPPED_EXPIRED` once it was admitted more than this many milliseconds ago;
    /// checked once per production round. 0: never.
    pub mempool_gapped_ttl_ms: u64,
    /// How many blocks a dropped transaction's record is kept (pruned on start).
    pub dropped_retention_blocks: u64,
    /// Consecutive failures of one block (append, execution, storage) retried, with
    /// exponential backoff from 50 ms up to `retry_backoff_max_ms`, before the node halts.
    pub retry_limit: u32,
    /// Longest wait between two tries of a failing block.
    pub retry_backoff_max_ms: u64,
    /// When true the `batch_size` slot's `arrival_rate` feature is the `demand` slot's
    /// forecast for the next interval (the first horizon value, tx/s) instead of the
    /// measured arrival rate. Refreshed at each forecast (each
    /// `telemetry.demand_interval_ms`); when no forecast is fresher than 3 intervals (or
    /// the `demand` decision fails) the measured rate is used again. Default false.
    pub batch_size_reads_forecast: bool,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            interval_ms: 10,
            min_txs: 1,
            max_txs: 5_000,
            executor_threads: 0,
            mempool_txs: 100_000,
            mempool_eviction: aurigraph_ledger::mempool::Eviction::ByClass,
            mempool_gapped_ttl_ms: 600_000,
            dropped_retention_blocks: 100_000,
            retry_limit: 20,
            retry_backoff_max_ms: 5_000,
            batch_size_reads_forecast: false,
        }
    }
}

/// Limits of the APIs (tower layers and admission back-pressure).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// A request that takes longer is answered 503 `E_TIMEOUT` (HTTP) / DEADLINE_EXCEEDED (gRPC).
    pub request_timeout_ms: u64,
    /// Requests served at once; more are refused at once with 429 / RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Transactions being admitted at once (decoding, signature checks); a submission that
    /// would exceed it is refused with `E_OVERLOADED` (429 / RESOURCE_EXHAUSTED).
    pub max_inflight_txs: usize,
    /// Most transactions in one submission.
    pub max_txs_per_request: usize,
    /// Subscriptions (WebSocket and gRPC streams together) open at once; more are refused
    /// with `E_TOO_MANY_SUBSCRIBERS` (429 / RESOURCE_EXHAUSTED).
    pub max_subscribers: usize,
    /// Events a subscriber may fall behind by (blocks, and drop announcements) before it is
    /// disconnected with `E_LAGGED`.
    pub subscription_buffer: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 512,
            max_inflight_txs: 20_000,
            max_txs_per_request: 5_000,
            max_subscribers: 256,
            subscription_buffer: 1_024,
        }
    }
}

/// The admin API.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token admin calls must carry. When unset (and `AURIGRAPH_ADMIN_TOKEN` is
    /// unset), the node makes a random one at start and writes it to
    /// `<data_dir>/admin.token`.
    pub token: Option<String>,
}

/// Where models and plugins are watched.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoliciesConfig {
    /// Models folder (one folder per model); missing is fine (nothing to load).
    pub models_dir: PathBuf,
    /// Plugins folder (`*.wasm`); missing is fine.
    pub plugins_dir: PathBuf,
    /// How often the folders are polled.
    pub watch_interval_ms: u64,
    /// Consecutive failures of one arm that open a slot's circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker keeps the slot on its static policy, ms.
    pub breaker_cooldown_ms: u64,
    /// The guard's failure-rate bound for a candidate (0.01 = 1%).
    pub guard_max_failure_rate: f64,
    /// Candidate decisions before the guard rolls back on ordinary evidence (conclusive
    /// evidence rolls back before).
    pub guard_min_decisions: u64,
    /// False-alarm probability of the guard's failure-rate test over a rollout.
    pub guard_failure_alpha: f64,
    /// Relative regression of a slot's key metric that rolls the candidate back (0.10 = 10%).
    pub guard_metric_margin: f64,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        let guard = GuardConfig::default();
        let breaker = BreakerConfig::default();
        Self {
            models_dir: PathBuf::from("models"),
            plugins_dir: PathBuf::from("plugins/dist"),
            watch_interval_ms: 2_000,
            breaker_failure_threshold: breaker.failure_threshold,
            breaker_cooldown_ms: breaker.cooldown.as_millis() as u64,
            guard_max_failure_rate: guard.max_failure_rate,
            guard_min_decisions: guard.min_decisions,
            guard_failure_alpha: guard.failure_alpha,
            guard_metric_margin: guard.metric_margin,
        }
    }
}

impl PoliciesConfig {
    /// The slot hosts' settings: the library's defaults with this section's breaker and
    /// guard values.
    pub fn host_config(&self) -> HostConfig {
        HostConfig {
            breaker: BreakerConfig {
                failure_threshold: self.breaker_failure_threshold,
                cooldown: Duration::from_millis(self.breaker_cooldown_ms),
            },
            guard: GuardConfig {
                max_failure_rate: self.guard_max_failure_rate,
                min_decisions: self.guard_min_decisions,
                failure_alpha: self.guard_failure_alpha,
                metric_margin: self.guard_metric_margin,
                ..GuardConfig::default()
            },
            ..HostConfig::default()
        }
    }
}

/// How a decision's input features are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureRecording {
    /// Every row of the input, and every output value.
    Full,
    /// For batched slots (`ordering`, `anomaly`): a blake3 digest of the input (its f32
    /// values, little-endian) and a summary of the outputs (count, min, max, mean) instead of
    /// the values. Single-row slots record their one row and values either way.
    Digest,
}

/// Decision telemetry: what the slots decided, what answered, and the blocks' outcomes,
/// in the RocksDB `telemetry` column family (see [`crate::telemetry`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Record at all. Default true.
    pub enabled: bool,
    /// Share of decision keys recorded, 0..=1 (deterministic by key: a block's height
    /// samples its block record and its `batch_size` and `ordering` decisions together).
    /// Default 1.
    pub sample_rate: f64,
    /// `full` or `digest` (default).
    pub features: FeatureRecording,
    /// Most decision records kept (the oldest go first), and most block records. Default
    /// 200,000. At least 1.
    pub max_records: u64,
    /// Records of blocks older than this many blocks are deleted (0: no age bound, the
    /// default).
    pub max_age_blocks: u64,
    /// How often the producer measures the arrival rate and asks the `demand` slot for a
    /// forecast, ms (the rates stay in tx/s). Default 1000; tests use less. 1..=60000.
    pub demand_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_rate: 1.0,
            features: FeatureRecording::Digest,
            max_records: 200_000,
            max_age_blocks: 0,
            demand_interval_ms: 1000,
        }
    }
}

impl NodeConfig {
    /// Reads `path` (TOML), or the defaults when `None`, then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut c = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", p.display())))?;
                Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", p.display(), e.0)))?
            }
            None => Self::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        c.validate()?;
        Ok(c)
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.message().to_string()))
    }

    /// Applies `AURIGRAPH_*` overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("AURIGRAPH_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("AURIGRAPH_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|e| ConfigError(format!("AURIGRAPH_LISTEN={v}: {e}")))?;
        }
        if let Some(v) = get("AURIGRAPH_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            self.admin.token = Some(v);
        }
        if let Some(v) = get("AURIGRAPH_MODELS_DIR") {
            self.policies.models_dir = PathBuf::from(v);
        }
        if let Some(v) = get("AURIGRAPH_PLUGINS_DIR") {
            self.policies.plugins_dir = PathBuf::from(v);
        }
        if let Some(v) = get("AURIGRAPH_BLOCK_INTERVAL_MS") {
            self.block.interval_ms = v
                .parse()
                .map_err(|e| ConfigError(format!("AURIGRAPH_BLOCK_INTERVAL_MS={v}: {e}")))?;
        }
        if let Some(v) = get("AURIGRAPH_CLUSTER_SECRET") {
            self.cluster.secret = Some(v);
        }
        if let Some(v) = get("AURIGRAPH_SYNC") {
            self.storage.sync = v
                .parse()
                .map_err(|e| ConfigError(format!("AURIGRAPH_SYNC={v}: {e}")))?;
        }
        Ok(())
    }

    /// The archive folder: `storage.archive_dir`, or `<data_dir>/archive`.
    pub fn archive_dir(&self) -> PathBuf {
        self.storage
            .archive_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("archive"))
    }

    /// Checks values that would fail later in a less clear way.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.leader_health.validate().map_err(ConfigError)?;
        self.retrain.validate().map_err(ConfigError)?;
        if !(1..=60_000).contains(&self.telemetry.demand_interval_ms) {
            return Err(ConfigError(
                "telemetry.demand_interval_ms must be in 1..=60000".into(),
            ));
        }
        if self.storage.archive_segment_blocks == 0 {
            return Err(ConfigError(
                "storage.archive_segment_blocks must be at least 1".into(),
            ));
        }
        let b = &self.block;
        if b.interval_ms == 0 || b.interval_ms > 60_000 {
            return Err(ConfigError("block.interval_ms must be in 1..=60000".into()));
        }
        if b.min_txs == 0 || b.min_txs > b.max_txs {
            return Err(ConfigError(
                "block.min_txs must be in 1..=block.max_txs".into(),
            ));
        }
        if b.retry_backoff_max_ms < 50 {
            return Err(ConfigError(
                "block.retry_backoff_max_ms must be at least 50".into(),
            ));
        }
        let c = &self.cluster;
        if c.enabled() {
            if c.secret.as_deref().is_none_or(|s| s.len() < 16) {
                return Err(ConfigError(
                    "cluster.secret (or AURIGRAPH_CLUSTER_SECRET) of at least 16 characters is \
                     required in a cluster"
                        .into(),
                ));
            }
            if c.bootstrap && !c.members.iter().any(|m| m.id == c.node_id) {
                return Err(ConfigError(
                    "cluster.members must list this node (cluster.node_id) to bootstrap".into(),
                ));
            }
            if c.bootstrap && c.role != NodeRole::Validator {
                return Err(ConfigError(format!(
                    "cluster.role = \"{}\" is a learner: only a validator bootstraps the cluster",
                    c.role.as_str()
                )));
            }
            if c.role == NodeRole::Slim && c.slim_keep_blocks == 0 {
                return Err(ConfigError(
                    "cluster.slim_keep_blocks must be at least 1 on a slim replica".into(),
                ));
            }
        }
        let a = &self.api;
        if a.max_body_bytes < 1024
            || a.max_concurrent_requests == 0
            || a.max_inflight_txs == 0
            || a.max_txs_per_request == 0
            || a.max_subscribers == 0
            || a.subscription_buffer == 0
        {
            return Err(ConfigError(
                "api limits must be positive (max_body_bytes at least 1024)".into(),
            ));
        }
        if let Some(t) = &self.admin.token
            && t.len() < 16
        {
            return Err(ConfigError(
                "admin.token must be at least 16 characters".into(),
            ));
        }
        let p = &self.policies;
        if p.breaker_failure_threshold == 0 || p.breaker_cooldown_ms == 0 {
            return Err(ConfigError(
                "policies.breaker_failure_threshold and breaker_cooldown_ms must be positive"
                    .into(),
            ));
        }
        p.host_config()
            .guard
            .validate()
            .map_err(|e| ConfigError(format!("policies: {e}")))?;
        let t = &self.telemetry;
        if !(0.0..=1.0).contains(&t.sample_rate) {
            return Err(ConfigError("telemetry.sample_rate must be in 0..=1".into()));
        }
        if t.max_records == 0 {
            return Err(ConfigError(
                "telemetry.max_records must be at least 1".into(),
            ));
        }
        self.scaling
            .policy()
            .map_err(|e| ConfigError(e.0.clone()))?;
        self.genesis()?;
        Ok(())
    }

    /// The genesis allocation this configuration describes.
    pub fn genesis(&self) -> Result<Genesis, ConfigError> {
        let g = &self.genesis;
        let mut allocations: Vec<(Address, u64)> = (0..g.dev_accounts)
            .map(|i| (dev_key(i).1, g.dev_balance))
            .collect();
        for a in &g.allocations {
            let addr = Address::from_hex(&a.address).ok_or_else(|| {
                ConfigError(format!(
                    "genesis allocation address `{}` is not 64 hex characters",
                    a.address
                ))
            })?;
            allocations.push((addr, a.balance));
        }
        Ok(Genesis {
            chain_id: g.chain_id,
            allocations,
        })
    }
}

/// The signing key and address of development account `i` (derived from a public seed:
/// never use these keys for anything of value).
pub fn dev_key(i: u32) -> (SigningKey, Address) {
    let mut h = blake3::Hasher::new();
    h.update(b"aurigraph-dev-account-v1");
    h.update(&i.to_le_bytes());
    keypair_from_seed(*h.finalize().as_bytes())
}

/// The hash that names a genesis: BLAKE3 over the chain id and the allocations in order.
pub fn genesis_hash(g: &Genesis) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"AURIGRAPH-GENESIS-V1");
    h.update(&g.chain_id.to_le_bytes());
    for (a, b) in &g.allocations {
        h.update(&a.0);
        h.update(&b.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_the_environment_overrides() {
        let mut c = NodeConfig::default();
        c.validate().expect("defaults are valid");
        c.apply_env(|k| match k {
            "AURIGRAPH_LISTEN" => Some("127.0.0.1:9999".into()),
            "AURIGRAPH_SYNC" => Some("false".into()),
            "AURIGRAPH_ADMIN_TOKEN" => Some("0123456789abcdef0123".into()),
            _ => None,
        })
        .expect("valid overrides");
        assert_eq!(c.listen.port(), 9999);
        assert!(!c.storage.sync);
        assert_eq!(c.admin.token.as_deref(), Some("0123456789abcdef0123"));
        let bad = c.apply_env(|k| (k == "AURIGRAPH_SYNC").then(|| "maybe".into()));
        assert!(bad.is_err());
    }

    #[test]
    fn the_example_file_parses_and_unknown_keys_are_refused() {
        let text = include_str!("../aurigraph.example.toml");
        let c = NodeConfig::parse(text).expect("the example parses");
        c.validate().expect("the example is valid");
        let err = NodeConfig::parse("[block]\nintervall_ms = 5\n").unwrap_err();
        assert!(err.0.contains("intervall_ms"), "{}", err.0);
    }

    #[test]
    fn the_guard_and_breaker_come_from_the_policies_section() {
        let c = NodeConfig::parse(
            "[policies]\nbreaker_failure_threshold = 3\nbreaker_cooldown_ms = 250\nguard_min_decisions = 50\nguard_max_failure_rate = 0.05\n",
        )
        .unwrap();
        c.validate().unwrap();
        let h = c.policies.host_config();
        assert_eq!(h.breaker.failure_threshold, 3);
        assert_eq!(h.breaker.cooldown, Duration::from_millis(250));
        assert_eq!(h.guard.min_decisions, 50);
        assert_eq!(h.guard.max_failure_rate, 0.05);
        // The defaults are the library's.
        let d = NodeConfig::default().policies.host_config();
        assert_eq!(d.guard, GuardConfig::default());
        assert_eq!(d.breaker, BreakerConfig::default());
        let bad = NodeConfig::parse("[policies]\nguard_max_failure_rate = 0.9\n").unwrap();
        assert!(bad.validate().is_err());
        let bad = NodeConfig::parse("[policies]\nbreaker_cooldown_ms = 0\n").unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_scaling_section_has_defaults_and_bad_values_are_refused() {
        let c = NodeConfig::parse("[scaling]\nmax_replicas = 6\ncurrent_replicas = 2\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.scaling.max_replicas, 6);
        assert_eq!(c.scaling.scale_up_cooldown_s, 600);
        assert_eq!(c.scaling.burst_headroom, 0.2);
        let bad = NodeConfig::parse("[scaling]\nmin_replicas = 7\nmax_replicas = 6\n").unwrap();
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.starts_with("[E_CONFIG] scaling.min_replicas"), "{e}");
        let bad = NodeConfig::parse("[scaling]\ncapacity_tps_per_core = -1.0\n").unwrap();
        assert!(bad.validate().is_err());
        assert!(NodeConfig::parse("[scaling]\nup_step = 2\n").is_err());
    }

    #[test]
    fn dev_keys_are_stable_and_distinct() {
        assert_eq!(dev_key(0).1, dev_key(0).1);
        assert_ne!(dev_key(0).1, dev_key(1).1);
    }
}
