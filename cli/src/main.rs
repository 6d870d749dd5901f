//! `aurigraph`: the node binary. It parses the command line and hands each verb to the
//! module named for it (in the `aurigraph_cli` library); every concern lives in its module
//! (or crate), not here.

use std::process::ExitCode;

use aurigraph_cli::args::{
    self, BenchCommand, ChaosCommand, ClusterCommand, Command, TelemetryCommand,
};
use aurigraph_cli::{
    bench, chaos, cluster, demo, load, models, policy, start, telemetry, train, tx,
};
use clap::Parser;

/// Errors print as `error: [CODE] message` and their causes on one line each; the stack
/// trace only with `--backtrace` (a config mistake is not a bug, whatever `RUST_BACKTRACE`
/// says).
fn main() -> ExitCode {
    let cli = args::Cli::parse();
    args::init_tracing(cli.verbose);
    let backtrace = cli.backtrace;
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if backtrace {
                eprintln!("{}", e.backtrace());
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(&args),
        Command::Start(args) => start::run(&args),
        Command::Policy(cmd) => policy::policy(&cmd),
        Command::Tx(cmd) => tx::tx(&cmd),
        Command::Load(args) => load::load(&args),
        Command::Models(cmd) => models::run(&cmd),
        Command::Bench(BenchCommand::Ab(args)) => bench::ab(&args),
        Command::Telemetry(TelemetryCommand::Export(args)) => telemetry::export(&args),
        Command::Cluster(ClusterCommand::Up(args)) => cluster::up(&args),
        Command::Cluster(ClusterCommand::Status(args)) => cluster::status(&args),
        Command::Cluster(ClusterCommand::Down(args)) => cluster::down(&args),
        Command::Cluster(ClusterCommand::AddLearner(args)) => cluster::change("learner", &args),
        Command::Cluster(ClusterCommand::Promote(args)) => cluster::change("promote", &args),
        Command::Cluster(ClusterCommand::Remove(args)) => cluster::change("remove", &args),
        Command::Cluster(ClusterCommand::Transfer(args)) => cluster::change("transfer", &args),
        Command::Chaos(ChaosCommand::Run(args)) => chaos::run(&args),
        Command::Chaos(ChaosCommand::Ab(args)) => chaos::ab(&args),
        Command::Train(args) => train::run(&args),
    }
}
