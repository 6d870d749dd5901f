//! `aurigraph`: the node binary. It parses the command line and hands each verb to the
//! module named for it (in the `aurigraph_cli` library); every concern lives in its module
//! (or crate), not here.

use aurigraph_cli::args::{self, BenchCommand, Command, TelemetryCommand};
use aurigraph_cli::{bench, demo, load, models, policy, start, telemetry, tx};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = args::Cli::parse();
    args::init_tracing(cli.verbose);
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Start(args) => start::run(&args),
        Command::Policy(cmd) => policy::policy(&cmd),
        Command::Tx(cmd) => tx::tx(&cmd),
        Command::Load(args) => load::load(&args),
        Command::Models(cmd) => models::run(&cmd),
        Command::Bench(BenchCommand::Ab(args)) => bench::ab(&args),
        Command::Telemetry(TelemetryCommand::Export(args)) => telemetry::export(&args),
    }
}
