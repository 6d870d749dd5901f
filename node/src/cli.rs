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

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the product in one command: a seeded workload through admission, mempool,
    /// batcher and the parallel executor, with candidates on canary and shadow, a guard
    /// rollback, and closing tables per slot and arm.
    Demo(DemoArgs),
    /// The model contract: slot schemas, and the offline check of a model folder.
    #[command(subcommand)]
    Models(ModelsCommand),
}

/// Arguments of `aurigraph demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the workload.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Transactions to generate and submit.
    #[arg(long, default_value_t = 60_000)]
    pub txs: usize,
    /// Workload preset: uniform, hot-accounts, bursty, diurnal or spam-attack.
    #[arg(long, default_value = "spam-attack")]
    pub workload: String,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
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
        .with_writer(std::io::stderr)
        .try_init();
}
