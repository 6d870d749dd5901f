//! `aurigraph-training`: trains the shipped models and writes them to a models folder.
//!
//! ```text
//! cargo run -p aurigraph-training --release -- all --seed 42 --out models
//! cargo run -p aurigraph-training --release -- train anomaly --seed 42 --out models
//! cargo run -p aurigraph-training --release -- train leader_health --data DIR --seed 42 --out models
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use aurigraph_training::slots::leader_health::DEFAULT_DATA;
use aurigraph_training::{ModelFiles, TrainConfig, TrainableSlot, TrainedModel};
use clap::{Parser, Subcommand};

/// Train the per-slot models from a seeded workload and export them to ONNX.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train every learnable slot's model (anomaly, ordering, batch_size, demand; then
    /// leader_health when its recorded data folder exists).
    All {
        #[command(flatten)]
        options: Options,
        /// The recorded chaos runs `leader_health` trains on; default
        /// `training/data/leader_health` under the workspace root. Skipped with a note when
        /// the folder does not exist.
        #[arg(long)]
        leader_health_data: Option<PathBuf>,
    },
    /// Train one slot's model.
    Train {
        /// The slot: anomaly, ordering, batch_size, demand or leader_health.
        slot: TrainableSlot,
        /// leader_health only (required there): the folder of recorded chaos runs, one
        /// `RUN/` folder each with `node-ID.csv` telemetry exports and `events.json`.
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        options: Options,
    },
}

#[derive(clap::Args, Debug)]
struct Options {
    /// Seed of every random choice; the same seed writes byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The models folder; each model goes to `<out>/<name>/`.
    #[arg(long, default_value = "models")]
    out: PathBuf,
    /// Train on a tenth of the data (a quick look; not the shipped models).
    #[arg(long)]
    small: bool,
}

/// The default `leader_health` data folder: [`DEFAULT_DATA`] under the workspace root.
fn default_leader_health_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DEFAULT_DATA)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // (slot, data folder and how the command spells it, for leader_health)
    let (slots, leader_health, options) = match cli.command {
        Command::All {
            options,
            leader_health_data,
        } => {
            let (dir, label) = match leader_health_data {
                Some(d) => (d.clone(), d.display().to_string()),
                None => (default_leader_health_data(), DEFAULT_DATA.to_string()),
            };
            let leader_health = if dir.is_dir() {
                Some((dir, label))
            } else {
                println!(
                    "leader_health: skipped: no recorded data at {} (`{DEFAULT_DATA}` or \
                     --leader-health-data DIR; see training/README.md)",
                    dir.display()
                );
                None
            };
            (TrainableSlot::ALL.to_vec(), leader_health, options)
        }
        Command::Train {
            slot: TrainableSlot::LeaderHealth,
            data,
            options,
        } => {
            let data =
                data.context("train leader_health needs --data DIR (recorded chaos runs)")?;
            let label = data.display().to_string();
            (Vec::new(), Some((data, label)), options)
        }
        Command::Train {
            slot,
            data,
            options,
        } => {
            anyhow::ensure!(
                data.is_none(),
                "--data is for leader_health only; {slot} trains from the seed"
            );
            (vec![slot], None, options)
        }
    };
    let config = if options.small {
        TrainConfig::small(options.seed)
    } else {
        TrainConfig::new(options.seed)
    };
    for slot in slots {
        let started = Instant::now();
        let (model, files) = aurigraph_training::train_and_write(slot, &config, &options.out)
            .with_context(|| format!("training and writing the {slot} model"))?;
        report(slot, &model, &files, started);
    }
    if let Some((dir, label)) = leader_health {
        let started = Instant::now();
        let slot = TrainableSlot::LeaderHealth;
        let (model, files) =
            aurigraph_training::train_leader_health_and_write(&config, &dir, &label, &options.out)
                .with_context(|| {
                    format!(
                        "training and writing the {slot} model from {}",
                        dir.display()
                    )
                })?;
        report(slot, &model, &files, started);
    }
    Ok(())
}

fn report(slot: TrainableSlot, model: &TrainedModel, files: &ModelFiles, started: Instant) {
    println!(
        "{slot}: {} ({} bytes) in {:.1} s",
        files.dir.display(),
        files.onnx.len(),
        started.elapsed().as_secs_f64()
    );
    for (k, v) in &model.manifest.metrics {
        println!(
            "  {k} = {}",
            toml::Value::try_from(v).map_or_else(|_| "?".into(), |v| v.to_string())
        );
    }
}
