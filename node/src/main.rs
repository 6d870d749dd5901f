//! `aurigraph`: the node binary. It parses the command line and hands each verb to the
//! module named for it; every concern lives in its module (or crate), not here.

mod cli;
mod client;
mod demo;
mod models;
mod start;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.verbose);
    match cli.command {
        cli::Command::Demo(args) => demo::run(&args),
        cli::Command::Start(args) => start::run(&args),
        cli::Command::Policy(cmd) => client::policy(&cmd),
        cli::Command::Tx(cmd) => client::tx(&cmd),
        cli::Command::Load(args) => client::load(&args),
        cli::Command::Models(cmd) => models::run(&cmd),
        cli::Command::Bench(cli::BenchCommand::Ab(args)) => {
            aurigraph_node::ab::run_and_write(&args.config(), &args.out)
        }
        cli::Command::Telemetry(cli::TelemetryCommand::Export(args)) => telemetry_export(&args),
    }
}

/// `aurigraph telemetry export`: the work is the library's (`telemetry::export`).
fn telemetry_export(args: &cli::TelemetryExportArgs) -> anyhow::Result<()> {
    use aurigraph_node::telemetry::export;
    let format: export::Format = args
        .format
        .parse()
        .map_err(|e| anyhow::anyhow!("[E_USAGE] --format {e}"))?;
    let slot = match &args.slot {
        Some(s) => Some(
            s.parse()
                .map_err(|e| anyhow::anyhow!("[E_UNKNOWN_SLOT] --slot {s}: {e}"))?,
        ),
        None => None,
    };
    let opts = export::ExportOptions {
        data_dir: args.data_dir.clone(),
        format,
        slot,
        from: args.from,
        to: args.to,
    };
    let sum = export::run(&opts, args.out.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "exported {} decision records and {} block records ({} lines){}",
        sum.decisions,
        sum.blocks,
        sum.lines,
        args.out
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
