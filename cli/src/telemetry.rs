//! `aurigraph telemetry export`: the verb; the work is [`crate::export`]'s.

use crate::args;
use crate::export;

/// `aurigraph telemetry export`: the work is the library's (`telemetry::export`).
pub fn export(args: &args::TelemetryExportArgs) -> anyhow::Result<()> {
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
