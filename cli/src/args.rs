//! The command line (clap). Each verb's arguments live here; its behaviour in its module.

use clap::{Args, Parser, Subcommand};

/// Aurigraph node: a ledger node whose scheduling decisions come from hot-swappable ONNX
/// models and WASM plugins, with a static policy always behind them.
#[derive(Debug, Parser)]
#[command(name = "aurigraph", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// On an error, also print where it was raised (a stack trace, when `RUST_BACKTRACE`
    /// or `RUST_LIB_BACKTRACE` enables capturing one): for reporting bugs.
    #[arg(long, global = true)]
    pub backtrace: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the product in one command: an embedded node (RocksDB in a temporary folder)
    /// serving a seeded workload, the shipped models and an example plugin on canary and
    /// shadow, a guard rollback, and closing tables per slot and arm. With `--cluster N`: a
    /// validator cluster whose leader is killed under load, and the check that nothing
    /// acknowledged was lost.
    Demo(DemoArgs),
    /// Run a node: RocksDB storage, block production, gRPC and HTTP on one address.
    Start(StartArgs),
    /// Operate a running node's policies (admin API): status, load, shadow, canary,
    /// schedule, promote, rollback.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Build, sign and submit transactions to a running node, and look them up.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Drive load against a running node: signed transfers from funded senders at a set
    /// rate for a set time, and a report of what was offered, acknowledged and committed
    /// (counted in the node's blocks).
    Load(LoadArgs),
    /// The model contract: slot schemas, and the offline check of a model folder.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Benchmarks: `bench ab`, the A/B comparison of two policy arms.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Decision telemetry recorded by a node: export it for notebooks and training.
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// A validator cluster on this machine: `aurigraph start` processes on 127.0.0.1, one
    /// folder each under DIR (up, status, down).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Fault scenarios under load against a running cluster (`cluster up --chaos --dir
    /// DIR`): a crash, a partition, a degradation or an overload, and the verdict that
    /// nothing acknowledged was lost.
    #[command(subcommand)]
    Chaos(ChaosCommand),
    /// The closed loop: retrain a slot's model on a node's recorded telemetry (read-only,
    /// works while the node runs), validate it as the node loads it and write it into the
    /// models folder as a new version (a candidate; nothing goes live by itself).
    Train(TrainArgs),
}

/// Arguments of `aurigraph train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The slot: `demand` (the others' labels are not in the telemetry).
    pub slot: String,
    /// The node's data dir (the database is DIR/db).
    #[arg(long, env = "AURIGRAPH_DATA_DIR")]
    pub data_dir: std::path::PathBuf,
    /// The models folder the new version is written into.
    #[arg(long, default_value = "models", env = "AURIGRAPH_MODELS_DIR")]
    pub models: std::path::PathBuf,
    /// Seed, recorded in the lineage (the fit is deterministic).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The version the new one replaces (default: the newest version of the model's name
    /// in the models folder).
    #[arg(long)]
    pub parent: Option<String>,
    /// Write the model even when it is no better than the static rule on the held-out split.
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object on standard output (also on failure).
    #[arg(long)]
    pub json: bool,
}

/// `aurigraph chaos ...`
#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Run one scenario under steady load (the fault from a third of --duration to two
    /// thirds); print the verdict and figures, write them as JSON (--out) and the run's
    /// labels to DIR/chaos-runs/SCENARIO-MS/events.json. Exits non-zero on a failed
    /// verdict.
    Run(ChaosRunArgs),
    /// The leader_health slot's A/B under a scenario: --runs runs on static and --runs with
    /// --model at 100% on every node, alternating; per arm the unavailability per leader
    /// failure and the hand-over lead time (median, min/max), and with --healthy-minutes the
    /// false hand-overs per hour of a fault-free cluster.
    Ab(ChaosAbArgs),
}

/// What every `aurigraph chaos` verb takes.
#[derive(Debug, Args)]
pub struct ChaosCommon {
    /// The scenario.
    #[arg(long, value_enum)]
    pub scenario: crate::chaos::Scenario,
    /// The cluster's folder (as given to `cluster up`); the cluster must be running.
    #[arg(long)]
    pub dir: std::path::PathBuf,
    /// How long the load runs, e.g. 30s; the fault starts at a third of it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Steady load offered by the client threads, transactions per second all together
    /// [default: as fast as each client's last transaction is acknowledged].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// degrade-leader-*: seconds between the degradation and the SIGKILL.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warning: std::time::Duration,
    /// The verdict fails when a node's resident memory (VmRSS) exceeded this, MiB.
    #[arg(long, default_value_t = 2048)]
    pub max_rss_mb: u64,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `aurigraph chaos run`.
#[derive(Debug, Args)]
pub struct ChaosRunArgs {
    #[allow(missing_docs)] // flattened: documented on `ChaosCommon`
    #[command(flatten)]
    pub common: ChaosCommon,
    /// The verdict as JSON [default: DIR/chaos-SCENARIO-UNIXTIME.json].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// After the run, write each node's `leader_health` telemetry as CSV (node-ID.csv) into
    /// the run's folder (the databases are opened read-only: the nodes stay up).
    #[arg(long)]
    pub export_telemetry: bool,
}

/// Arguments of `aurigraph chaos ab`.
#[derive(Debug, Args)]
pub struct ChaosAbArgs {
    #[allow(missing_docs)] // flattened: documented on `ChaosCommon`
    #[command(flatten)]
    pub common: ChaosCommon,
    /// Runs per arm.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// The leader_health model (a folder of --models) of the model arm.
    #[arg(long)]
    pub model: String,
    /// Where the model's folder is copied from into DIR/models when missing there.
    #[arg(long, default_value = "models")]
    pub models: std::path::PathBuf,
    /// Also run the cluster this many minutes per arm with no fault and count hand-overs.
    #[arg(long, default_value_t = 0.0, value_name = "M")]
    pub healthy_minutes: f64,
    /// The comparison as JSON [default: DIR/chaos-ab-SCENARIO-UNIXTIME.json].
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `aurigraph cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Write DIR/node-ID/aurigraph.toml for each validator (and learner), start each as a
    /// background process (its output in DIR/node-ID/node.log), and return once a leader is
    /// elected, every node is ready and every learner has caught up with the leader. A
    /// stopped cluster in DIR starts again from its files.
    Up(ClusterUpArgs),
    /// Each node of DIR's cluster: state, height, state root, lag behind the leader's log.
    Status(ClusterStatusArgs),
    /// Stop DIR's nodes: SIGTERM, SIGKILL after 10 s. Their files and data stay.
    Down(ClusterDirArgs),
    /// Add a learner through the leader: a node already started with `[cluster]`, its
    /// `node_id` (`--id`), not bootstrapping, listening on `--addr`. It applies blocks, serves
    /// the API and forwards submissions, without a vote.
    AddLearner(ClusterChangeArgs),
    /// Make learner `--id` a voter (a validator), through the leader.
    Promote(ClusterChangeArgs),
    /// Remove replica `--id` (voter or learner) from the membership, through the leader.
    Remove(ClusterChangeArgs),
    /// Hand the leadership to voter `--id` (up to date), through the leader.
    Transfer(ClusterChangeArgs),
}

/// Arguments of `aurigraph cluster add-learner|promote|remove|transfer`: the replica, and
/// where the cluster is (`--dir` of `cluster up`, or any node's `--node` and the admin
/// `--token`). The change is sent to the leader, found from the node asked.
#[derive(Debug, Args)]
pub struct ClusterChangeArgs {
    /// The replica's id.
    #[arg(long)]
    pub id: u64,
    /// `host:port` of the new learner's API (add-learner only).
    #[arg(long)]
    pub addr: Option<String>,
    /// The cluster's folder (as given to `cluster up`): its nodes and admin token.
    #[arg(long, conflicts_with = "node")]
    pub dir: Option<std::path::PathBuf>,
    /// Any node of the cluster (when there is no `--dir`).
    #[arg(long, env = "AURIGRAPH_NODE")]
    pub node: Option<String>,
    /// Admin bearer token (when there is no `--dir`).
    #[arg(long, env = "AURIGRAPH_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Arguments of `aurigraph cluster up`.
#[derive(Debug, Args)]
pub struct ClusterUpArgs {
    /// Validators (voters), ids 1 to N [default: 3, or the stopped cluster's count].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=32))]
    pub nodes: Option<u64>,
    /// The cluster's folder: cluster.json, and node-ID/ (config, data, log, pid) per node.
    #[arg(long)]
    pub dir: std::path::PathBuf,
    /// Node N listens on 127.0.0.1:(P+N-1) (API and Raft) [default: 7601].
    #[arg(long, value_name = "P")]
    pub base_port: Option<u16>,
    /// The cluster secret every Raft RPC carries, 16+ characters [default: 32 random hex
    /// characters].
    #[arg(long, value_name = "S", hide_env_values = true)]
    pub secret: Option<String>,
    /// Business learners (non-voting replicas that apply every block, serve the API and
    /// forward submissions), ids N+1 to N+M, added through the leader's admin API
    /// [default: 0, or the stopped cluster's count].
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u64).range(0..=16))]
    pub learners: Option<u64>,
    /// For `aurigraph chaos`: every node's config gets `[faults] enabled = true` (the
    /// fault-injection admin API) and `telemetry.features = "full"` (a new cluster only).
    #[arg(long)]
    pub chaos: bool,
}

/// Arguments of `aurigraph cluster status`.
#[derive(Debug, Args)]
pub struct ClusterStatusArgs {
    /// The cluster's folder (as given to `cluster up`).
    #[arg(long)]
    pub dir: std::path::PathBuf,
    /// Print JSON: {"leader", "term", "nodes": [{"id", "role", "url", "pid", "state",
    /// "height", "state_root", "lag"}]}.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `aurigraph cluster down`.
#[derive(Debug, Args)]
pub struct ClusterDirArgs {
    /// The cluster's folder (as given to `cluster up`).
    #[arg(long)]
    pub dir: std::path::PathBuf,
}

/// `aurigraph telemetry ...`
#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Write the telemetry of a node's data dir (opened read-only) as CSV, JSON lines or
    /// Parquet: every recorded decision (slot, features or their digest, values, what
    /// answered, latency) and every block's outcome.
    Export(TelemetryExportArgs),
}

/// Arguments of `aurigraph telemetry export`.
#[derive(Debug, Args)]
pub struct TelemetryExportArgs {
    /// The node's data dir (the database is DIR/db).
    #[arg(long, env = "AURIGRAPH_DATA_DIR")]
    pub data_dir: std::path::PathBuf,
    /// csv, jsonl or parquet (parquet: the CSV's rows and columns, typed).
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Only this slot's decisions (CSV: one line per input row, the slot's feature columns).
    #[arg(long)]
    pub slot: Option<String>,
    /// First height (inclusive).
    #[arg(long, value_name = "H")]
    pub from: Option<u64>,
    /// Last height (inclusive).
    #[arg(long, value_name = "H")]
    pub to: Option<u64>,
}

/// `aurigraph bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the same seeded workload through two policy arms (each on its own embedded node),
    /// interleaved in rounds; write report.md, report.json and SVG plots with the B/A ratios
    /// of TPS and p99 latency, their 95% intervals and a verdict.
    Ab(AbArgs),
}

/// Arguments of `aurigraph bench ab`.
#[derive(Debug, Args)]
pub struct AbArgs {
    /// Arm A (the reference): `static`, or SLOT=POLICY[,SLOT=POLICY...] with POLICY one of
    /// `static`, `onnx:NAME[@VERSION]`, `wasm:NAME[@VERSION]`; unnamed slots stay static.
    #[arg(long, value_name = "SPEC")]
    pub a: aurigraph_ab::spec::ArmSpec,
    /// Arm B (the challenger; ratios are B/A), same syntax.
    #[arg(long, value_name = "SPEC")]
    pub b: aurigraph_ab::spec::ArmSpec,
    /// Workload preset: uniform, hot-accounts, bursty, diurnal, spam-attack, adversarial-spam,
    /// shifting-hotspots or seasonal-demand.
    #[arg(long, default_value = "hot-accounts")]
    pub workload: String,
    /// Transactions (events) to generate.
    #[arg(long, default_value_t = 20_000, conflicts_with = "duration")]
    pub txs: usize,
    /// Instead of --txs: every event arriving within this much workload time (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Interleaved rounds (each a chunk of the workload through both arms).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Submission speed: `max` (as fast as the node admits) or a factor of the workload's
    /// arrival times (1 = real time).
    #[arg(long, default_value = "max")]
    pub speed: aurigraph_ab::Speed,
    /// Block production interval of both nodes, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub block_interval_ms: u64,
    /// Do not fsync every block (faster; both arms alike).
    #[arg(long)]
    pub no_sync: bool,
    /// Models folder.
    #[arg(long, default_value = "models")]
    pub models: std::path::PathBuf,
    /// Plugins folder (built by scripts/build-plugins).
    #[arg(long, default_value = "plugins/dist")]
    pub plugins: std::path::PathBuf,
    /// Output folder for report.md, report.json, throughput.svg and latency.svg.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl AbArgs {
    /// The harness configuration.
    pub fn config(&self) -> aurigraph_ab::AbConfig {
        let mut c = aurigraph_ab::AbConfig::new(self.a.clone(), self.b.clone(), &self.workload);
        c.amount = match self.duration {
            Some(d) => aurigraph_ab::Amount::Duration(d),
            None => aurigraph_ab::Amount::Txs(self.txs),
        };
        c.seed = self.seed;
        c.rounds = self.rounds;
        c.speed = self.speed;
        c.block_interval_ms = self.block_interval_ms;
        c.sync = !self.no_sync;
        c.models_dir = self.models.clone();
        c.plugins_dir = self.plugins.clone();
        c.quiet = self.quiet;
        c
    }
}

/// Arguments of `aurigraph start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Configuration file (TOML; see node/aurigraph.example.toml). Without it: defaults.
    #[arg(long, env = "AURIGRAPH_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Database folder (overrides the file and AURIGRAPH_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// gRPC and HTTP address (overrides the file and AURIGRAPH_LISTEN).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// Where a client verb finds the node.
#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// The node's HTTP address.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7600",
        env = "AURIGRAPH_NODE",
        global = true
    )]
    pub node: String,
}

/// Admin credentials.
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// Admin bearer token (the node's admin.token, or <data_dir>/admin.token).
    #[arg(long, env = "AURIGRAPH_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `aurigraph policy ...`
// The `node` and `token` fields are flattened: their flags are documented on `NodeArgs`
// and `TokenArgs`, which clap shows in the help.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Every slot's rollout state and per-arm figures (or one slot's).
    Status {
        /// One slot.
        slot: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Load a registered model (onnx) or plugin (wasm) version as the slot's candidate.
    Load {
        /// The slot.
        slot: String,
        /// Name of the model or plugin.
        name: String,
        /// Its version.
        #[arg(id = "policy_version", value_name = "VERSION")]
        version: String,
        /// onnx or wasm.
        #[arg(long, default_value = "onnx")]
        backend: String,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Run the candidate in shadow: compared, never used.
    Shadow {
        /// The slot.
        slot: String,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Route PERCENT% of decisions to the candidate (sticky by decision key).
    Canary {
        /// The slot.
        slot: String,
        /// Share, 0 to 100.
        percent: f64,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Climb a step schedule (e.g. 5,25,50,100) while the guard holds.
    Schedule {
        /// The slot.
        slot: String,
        /// Steps in percent, comma-separated.
        #[arg(value_delimiter = ',')]
        percents: Vec<f64>,
        /// Decisions per step before the next.
        #[arg(long, default_value_t = 200)]
        min_decisions: u64,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Make the candidate the baseline.
    Promote {
        /// The slot.
        slot: String,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Drop the candidate at once.
    Rollback {
        /// The slot.
        slot: String,
        /// Why (recorded).
        #[arg(long, default_value = "operator")]
        reason: String,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        token: TokenArgs,
    },
}

/// `aurigraph tx ...`
// The `node` and `token` fields are flattened: their flags are documented on `NodeArgs`
// and `TokenArgs`, which clap shows in the help.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Sign a transfer with a development account's key and submit it.
    Transfer {
        /// Development account that sends (its key is derived from the index).
        #[arg(long)]
        from_dev: u32,
        /// Recipient: 64 hex characters, or dev:N for a development account.
        #[arg(long)]
        to: String,
        /// Amount.
        #[arg(long)]
        amount: u64,
        /// Fee.
        #[arg(long, default_value_t = 10)]
        fee: u64,
        /// Nonce (default: the node's next nonce for the sender).
        #[arg(long)]
        nonce: Option<u64>,
        /// Chain id.
        #[arg(long, default_value_t = 1)]
        chain_id: u32,
        /// Wait until it commits and print its receipt.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Submit signed transactions given as hex (arguments, or one per line on stdin).
    Submit {
        /// Hex-encoded signed transactions.
        txs: Vec<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A transaction and its receipt.
    Get {
        /// Its hash.
        hash: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// An account's balance and nonces.
    Account {
        /// Address (hex) or dev:N.
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// How `aurigraph load` reaches the node: both are served on the node's one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadTransport {
    /// gRPC (`aurigraph.v1`, HTTP/2, raw transaction bytes).
    Grpc,
    /// The JSON mirror (`POST /v1/transactions`, HTTP/1.1, hex).
    Rest,
}

/// Arguments of `aurigraph load`.
#[derive(Debug, Args)]
#[command(after_long_help = LOAD_HELP)]
pub struct LoadArgs {
    /// Transactions per second to offer, all connections together.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// How long to send, e.g. 30s, 2m, 500ms: a hard bound. Sending stops at this deadline
    /// whatever rate was reached (the requests then in flight are still answered); the
    /// drain follows.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Sending accounts: keys derived from their index (public, like the development
    /// keys), funded from the development accounts by multi-transfers in a setup phase when
    /// their balance is low. At most senders x 64 transactions are in flight (the node's
    /// mempool holds at most 64 pending per sender): 65,536 with the default.
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub senders: u32,
    /// Development accounts the node's genesis funds (`genesis.dev_accounts`), which fund
    /// the senders.
    #[arg(long, default_value_t = 64)]
    pub dev_accounts: u32,
    /// Concurrent connections, one sending thread each (each owns a share of the senders).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
    /// Most transactions per request (the node takes up to `api.max_txs_per_request`,
    /// 5,000 by default). Below full rate a request carries what is due every 20 ms.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// `grpc` or `rest`.
    #[arg(long, value_enum, default_value = "grpc")]
    pub transport: LoadTransport,
    /// Most transactions signed (in parallel, on every core) before the clock starts; any
    /// more are signed while sending.
    #[arg(long, default_value_t = 1_000_000)]
    pub presign: u64,
    /// The drain ends when no new block carried one of the run's transactions for this long
    /// (measured after walking the blocks), if not all acknowledged ones committed before.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain_quiet: std::time::Duration,
    /// Longest drain.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// Longest wait for one answer of the node.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// Chain id (default: the node's, from its head).
    #[arg(long)]
    pub chain_id: Option<u32>,
    /// Seed of the recipients and amounts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON (on stdout; setup notes and the progress bar go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Write the hashes of the acknowledged transactions to FILE, one per line (hex), to
    /// check the committed count against the node's blocks.
    #[arg(long, value_name = "FILE")]
    pub hashes: Option<std::path::PathBuf>,
    /// No progress bar and no setup notes.
    #[arg(long)]
    pub quiet: bool,
    #[allow(missing_docs)] // flattened: the flags are documented on `NodeArgs`
    #[command(flatten)]
    pub node: NodeArgs,
}

const LOAD_HELP: &str = "\
Phases: setup (connect; derive the senders; fund the poor ones from the development accounts and
wait for those transfers to commit; pre-sign), sending (--duration, paced at --rate over
--connections, each request carrying up to --batch transactions), drain (until every
acknowledged transaction is in a block, or --drain-quiet passes without a block carrying one
of them, or --drain-timeout).

In flight: a sender has at most 64 transactions sent and not yet seen in a block (the node's
mempool refuses a 65th with E_SENDER_LIMIT), so at most --senders x 64 are in flight; the
report says how long every sender of a connection was at that bound. The node's mempool
(block.mempool_txs, 100,000 by default) bounds it too.

The report: offered (transactions sent, resubmissions of refused ones included), acknowledged
(answered accepted), refused (by code), committed (acknowledged hashes found in the blocks
after the head at start, up to the final head), each with its rate over the time it really
took: sending time for offered and acknowledged, start to the last block carrying one of
them for committed.";

/// Parses `500ms`, `30s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("`{s}`: units are ms, s, m, h")),
    };
    if !secs.is_finite() || !(0.0..=7.0 * 86_400.0).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Arguments of `aurigraph demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the workload.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Transactions to generate and submit (the presets arrive at about 1,000 tx/s, so the
    /// default takes about a minute at --speed 1).
    #[arg(long, default_value_t = 60_000)]
    pub txs: usize,
    /// Workload preset: uniform, hot-accounts, bursty, diurnal, spam-attack, adversarial-spam,
    /// shifting-hotspots or seasonal-demand.
    #[arg(long, default_value = "spam-attack")]
    pub workload: String,
    /// Play the workload this many times faster than its arrival times.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Models folder whose shipped models go on canary.
    #[arg(long, default_value = "models")]
    pub models: std::path::PathBuf,
    /// Plugins folder (built by scripts/build-plugins).
    #[arg(long, default_value = "plugins/dist")]
    pub plugins: std::path::PathBuf,
    /// Address of the embedded node's API while the demo runs (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
    /// Instead of the embedded node: a cluster of N validator processes (N >= 3, as `cluster
    /// up` starts them), transfers round-robin over every node, the leader killed with
    /// SIGKILL part-way and started again; the verdict checks that every acknowledged
    /// transaction committed exactly once on every node, with one state root. The workload
    /// flags (--txs, --workload, --speed, --models, --plugins, --listen) do not apply.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(3..=9))]
    pub cluster: Option<u64>,
    /// With --cluster: how long the load runs (the leader is killed at a third of it and
    /// started again at two thirds), e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = parse_duration, requires = "cluster")]
    pub duration: std::time::Duration,
    /// With --cluster: the cluster's folder (kept afterwards, stopped) [default: a
    /// temporary folder, removed].
    #[arg(long, requires = "cluster")]
    pub dir: Option<std::path::PathBuf>,
}

/// `aurigraph models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Print a slot's contract: features (name, unit, meaning), shapes, schema version.
    Schema(SchemaArgs),
    /// Check a model folder (model.toml + model.onnx) offline, exactly as the node loads it:
    /// exit 0 when it would load for its slot, otherwise exit 1 with a one-line reason and a
    /// stable error code.
    Validate(ValidateArgs),
}

/// Arguments of `aurigraph models validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The model folder (or its model.toml).
    pub path: std::path::PathBuf,
    /// Print JSON: {"ok": true, ...} or {"ok": false, "code": ..., "reason": ...}.
    #[arg(long)]
    pub json: bool,
    /// Per-decision deadline the model must meet, in milliseconds (default: the slot's).
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<f64>,
    /// Rows of the batch timed at warm-up for batched slots.
    #[arg(long, default_value_t = 10_000)]
    pub timed_rows: usize,
}

/// Arguments of `aurigraph models schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The slot: ordering, batch_size, leader_health, anomaly or demand.
    pub slot: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Sets up logging to stderr: warnings by default, more with -v, RUST_LOG wins.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
