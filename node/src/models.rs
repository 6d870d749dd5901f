//! `aurigraph models ...`: the contract ML engineers build against.

use anyhow::{Result, bail};
use aurigraph_engine::SlotKind;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::cli::{ModelsCommand, SchemaArgs};

/// Runs a `models` verb.
pub fn run(cmd: &ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Schema(args) => schema(args),
    }
}

fn schema(args: &SchemaArgs) -> Result<()> {
    let slot: SlotKind = match args.slot.parse() {
        Ok(s) => s,
        Err(e) => bail!("[{}] {e}", aurigraph_engine::EngineError::code(&e)),
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
