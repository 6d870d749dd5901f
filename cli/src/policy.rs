//! `aurigraph policy ...`: a running node's policies through its admin API (status, load,
//! shadow, canary, schedule, promote, rollback).

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use crate::args::{NodeArgs, PolicyCommand, TokenArgs};
use crate::client::{Client, token};

fn slot_table(slots: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "slot",
        "mode",
        "baseline",
        "decisions",
        "fallbacks",
        "candidate",
        "decisions",
        "fallbacks",
        "guard (candidate)",
        "last rollback",
        "retrain",
    ]);
    let answerer = |v: &Value| {
        if v.is_null() {
            "-".to_string()
        } else {
            format!(
                "{}:{}@{}",
                v["backend"].as_str().unwrap_or("?"),
                v["name"].as_str().unwrap_or("?"),
                v["version"].as_str().unwrap_or("?")
            )
        }
    };
    for s in slots {
        let mode = match s["mode"]["mode"].as_str() {
            Some("canary") => format!(
                "canary {}%",
                s["mode"]["basis_points"].as_u64().unwrap_or(0) as f64 / 100.0
            ),
            Some(m) => m.to_string(),
            None => s["mode"].to_string(),
        };
        t.add_row([
            s["slot"].as_str().unwrap_or("?").to_string(),
            mode,
            answerer(&s["baseline"]),
            s["baseline_totals"]["decisions"].to_string(),
            s["baseline_totals"]["fallbacks"].to_string(),
            answerer(&s["candidate"]),
            s["candidate_totals"]["decisions"].to_string(),
            s["candidate_totals"]["fallbacks"].to_string(),
            guard(&s["guard"]),
            s["last_rollback"].as_str().unwrap_or("").to_string(),
            retrain(&s["retrain"]),
        ]);
    }
    t
}

/// The closed loop's state of a slot: its phase, the candidate it trained, why it failed.
fn retrain(r: &Value) -> String {
    match r["phase"].as_str() {
        None | Some("idle") if r["runs"].as_u64().unwrap_or(0) == 0 => "-".into(),
        phase => {
            let mut out = phase.unwrap_or("?").to_string();
            if let Some(c) = r["candidate"].as_str() {
                out.push_str(&format!(" {c}"));
            }
            if let Some(code) = r["code"].as_str() {
                out.push_str(&format!(" [{code}]"));
            }
            out
        }
    }
}

/// The guard's figures: failures with the test's e-value, and the key metric of both arms
/// with the anytime-valid confidence sequence of candidate - baseline.
fn guard(g: &Value) -> String {
    if g.is_null() {
        return "-".into();
    }
    let mut out = format!(
        "failures {}/{} ({:.2}%), e-value {:.2}",
        g["failures"],
        g["decisions"],
        g["failure_rate"].as_f64().unwrap_or(0.0) * 100.0,
        g["failure_e_value"].as_f64().unwrap_or(0.0)
    );
    let m = &g["metric"];
    if !m.is_null() {
        out.push_str(&format!(
            "; metric {:.3} (n {}) vs baseline {:.3} (n {}), diff in [{:.3}, {:.3}]",
            m["candidate_mean"].as_f64().unwrap_or(f64::NAN),
            m["candidate_n"],
            m["baseline_mean"].as_f64().unwrap_or(f64::NAN),
            m["baseline_n"],
            m["diff_lower"].as_f64().unwrap_or(f64::NAN),
            m["diff_upper"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    out
}

/// Runs a `policy` verb.
pub fn policy(cmd: &PolicyCommand) -> Result<()> {
    let (node, path, body, tok): (&NodeArgs, String, Value, Option<&TokenArgs>) = match cmd {
        PolicyCommand::Status { slot, json, node } => {
            let c = Client::new(node)?;
            let v = match slot {
                Some(s) => json!({"slots": [c.get(&format!("/v1/policies/{s}"))?]}),
                None => c.get("/v1/policies")?,
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let slots = v["slots"].as_array().cloned().unwrap_or_default();
                println!("{}", slot_table(&slots));
            }
            return Ok(());
        }
        PolicyCommand::Load {
            slot,
            name,
            version,
            backend,
            node,
            token,
        } => (
            node,
            format!("/v1/policies/{slot}/load"),
            json!({"backend": backend, "name": name, "version": version}),
            Some(token),
        ),
        PolicyCommand::Shadow { slot, node, token } => (
            node,
            format!("/v1/policies/{slot}/shadow"),
            json!({}),
            Some(token),
        ),
        PolicyCommand::Canary {
            slot,
            percent,
            node,
            token,
        } => (
            node,
            format!("/v1/policies/{slot}/canary"),
            json!({"percent": percent}),
            Some(token),
        ),
        PolicyCommand::Schedule {
            slot,
            percents,
            min_decisions,
            node,
            token,
        } => (
            node,
            format!("/v1/policies/{slot}/schedule"),
            json!({"percents": percents, "min_decisions": min_decisions}),
            Some(token),
        ),
        PolicyCommand::Promote { slot, node, token } => (
            node,
            format!("/v1/policies/{slot}/promote"),
            json!({}),
            Some(token),
        ),
        PolicyCommand::Rollback {
            slot,
            reason,
            node,
            token: t,
        } => (
            node,
            format!("/v1/policies/{slot}/rollback"),
            json!({"reason": reason}),
            Some(t),
        ),
    };
    let c = Client::new(node)?;
    let tok = match tok {
        Some(t) => Some(token(t)?),
        None => None,
    };
    let v = c.post(&path, &body, tok)?;
    println!("{}", slot_table(&[v]));
    Ok(())
}
