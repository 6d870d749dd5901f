//! `aurigraph models ...`: the contract ML engineers build against.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use aurigraph_decision::SlotKind;
use aurigraph_onnx::{LoadOptions, OnnxError, OnnxPolicy};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::args::{ModelsCommand, SchemaArgs, ValidateArgs};

/// Runs a `models` verb.
pub fn run(cmd: &ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Schema(args) => schema(args),
        ModelsCommand::Validate(args) => validate(args),
    }
}

/// `aurigraph models validate PATH`: loads the folder exactly as the node would (checks,
/// optimisation, warm-up, timing) and says yes, or why not. Exit code 1 on a refusal.
fn validate(args: &ValidateArgs) -> Result<()> {
    // `validate model.toml` run inside the folder: the parent of a bare file name is "".
    let folder: &Path = if args.path.file_name().is_some_and(|n| n == "model.toml") {
        match args.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    } else {
        &args.path
    };
    let deadline = match args.deadline_ms {
        Some(ms) if ms.is_finite() && ms > 0.0 && ms < 3.6e6 => {
            Some(Duration::from_secs_f64(ms / 1e3))
        }
        Some(ms) => bail!("--deadline-ms must be a positive number of milliseconds, got {ms}"),
        None => None,
    };
    let options = LoadOptions {
        deadline,
        timed_rows: args.timed_rows.max(1),
        ..LoadOptions::default()
    };
    let result = if folder.is_dir() {
        OnnxPolicy::load_folder(folder, &options)
    } else {
        Err(OnnxError::Io {
            path: folder.display().to_string(),
            reason: "not a model folder (expected a folder with model.toml and model.onnx)"
                .to_string(),
        })
    };
    match result {
        Ok(p) => {
            let m = p.manifest();
            let r = p.report();
            if args.json {
                let v = serde_json::json!({
                    "ok": true,
                    "name": m.name,
                    "version": m.version,
                    "slot": m.slot,
                    "schema": m.schema,
                    "report": r,
                });
                println!("{}", serde_json::to_string(&v)?);
            } else {
                let col = r
                    .output_column
                    .map(|c| format!(" column {c}"))
                    .unwrap_or_default();
                println!(
                    "ok: {}@{} loads for `{}`: input `{}`, output `{}`{col}; {} row(s) in {:.3} ms \
                     (budget {:.3} ms){}",
                    m.name,
                    m.version,
                    m.slot,
                    r.input,
                    r.output,
                    r.timed_rows,
                    r.timed_us as f64 / 1e3,
                    r.budget_us as f64 / 1e3,
                    if r.notes.is_empty() {
                        String::new()
                    } else {
                        format!("; note: {}", r.notes.join("; "))
                    }
                );
            }
            Ok(())
        }
        Err(e) => {
            if args.json {
                let v = serde_json::json!({
                    "ok": false,
                    "code": e.code(),
                    "reason": e.one_line(),
                });
                println!("{}", serde_json::to_string(&v)?);
            } else {
                eprintln!("error [{}] {}", e.code(), e.one_line());
            }
            std::process::exit(1);
        }
    }
}

fn schema(args: &SchemaArgs) -> Result<()> {
    let slot: SlotKind = match args.slot.parse() {
        Ok(s) => s,
        Err(e) => bail!("[{}] {e}", aurigraph_decision::EngineError::code(&e)),
    };
    let c = slot.contract();
    if args.json {
        let v = serde_json::json!({
            "slot": c.slot,
            "schema_version": c.schema_version,
            "description": c.description,
            "called": c.called,
            "input_shape": c.input_shape(),
            "output_shape": c.output_shape(),
            "features": c.features,
            "output": c.output,
            "default_deadline_us": c.default_deadline.as_micros() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "slot {} (schema v{}): {}",
        c.slot, c.schema_version, c.description
    );
    println!("called: {}", c.called);
    println!(
        "input  f32{:?}   output f32{:?}   deadline {:?}",
        c.input_shape(),
        c.output_shape(),
        c.default_deadline
    );
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["#", "feature", "unit", "meaning"]);
    for (i, f) in c.features.iter().enumerate() {
        t.add_row([
            i.to_string(),
            f.name.clone(),
            f.unit.to_string(),
            f.description.clone(),
        ]);
    }
    println!("{t}");
    let o = &c.output;
    println!(
        "output `{}` ({}), valid range {}..={}: {}",
        o.name, o.unit, o.min, o.max, o.meaning
    );
    Ok(())
}
