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
    }
}
