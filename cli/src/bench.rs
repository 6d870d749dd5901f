//! `aurigraph bench ab`: the A/B harness (`aurigraph_ab`) with its report written
//! to `--out`.

use crate::args::AbArgs;

/// Runs the comparison and writes its report.
pub fn ab(args: &AbArgs) -> anyhow::Result<()> {
    aurigraph_ab::run_and_write(&args.config(), &args.out)
}
