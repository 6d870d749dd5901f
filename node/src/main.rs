//! `aurigraph`: the node binary. It parses the command line and hands each verb to the
//! module named for it; every concern lives in its module (or crate), not here.

mod cli;
mod demo;
mod models;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.verbose);
    match cli.command {
        cli::Command::Demo(args) => demo::run(&args),
        cli::Command::Models(cmd) => models::run(&cmd),
    }
}
