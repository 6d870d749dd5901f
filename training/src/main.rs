//! `aurigraph-training`: trains the shipped models and writes them to a models folder.
//!
//! ```text
//! cargo run -p aurigraph-training --release -- all --seed 42 --out models
//! cargo run -p aurigraph-training --release -- train anomaly --seed 42 --out models
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use aurigraph_training::{TrainConfig, TrainableSlot};
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
    /// Train every learnable slot's model (anomaly, ordering, batch_size, demand).
    All(Options),
    /// Train one slot's model.
    Train {
        /// The slot: anomaly, ordering, batch_size or demand.
        slot: TrainableSlot,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (slots, options) = match cli.command {
        Command::All(o) => (TrainableSlot::ALL.to_vec(), o),
        Command::Train { slot, options } => (vec![slot], options),
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
    Ok(())
}
