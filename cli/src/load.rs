//! `aurigraph load`: signed transfers from the dev accounts at a target rate against a
//! running node, and what it committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use aurigraph_ledger::tx::{Operation, Transaction};
use aurigraph_node::config::dev_key;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde_json::json;

use crate::args::LoadArgs;
use crate::client::Client;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs `aurigraph load`: transfers between development accounts at `rate` for
/// `duration`, in requests of `batch`; then waits for the accepted ones to commit.
pub fn load(args: &LoadArgs) -> Result<()> {
    if args.senders == 0 || args.batch == 0 || args.rate == 0 {
        bail!("[E_CONFIG] --senders, --batch and --rate must be positive");
    }
    let c = Client::new(&args.node)?;
    let start_head = c.get("/v1/head")?["height"].as_u64().unwrap_or(0);
    let keys: Vec<_> = (0..args.senders).map(dev_key).collect();
    let mut nonces = Vec::with_capacity(keys.len());
    for (_, a) in &keys {
        nonces.push(
            c.get(&format!("/v1/accounts/{}", a.to_hex()))?["next_nonce"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let total = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tx  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut sent = 0u64;
    let mut accepted = 0u64;
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies = Vec::new();
    while sent < total {
        // Pace: the batch that starts now is due at sent / rate.
        let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let n = args.batch.min((total - sent) as usize);
        let mut batch = Vec::with_capacity(n);
        let mut who = Vec::with_capacity(n);
        for _ in 0..n {
            let s = rng.random_range(0..keys.len());
            // Any other development account (a transfer to oneself is refused).
            let other = (s + rng.random_range(1..keys.len().max(2))) % keys.len();
            let to = keys[other].1;
            let (key, sender) = &keys[s];
            let signed = Transaction {
                chain_id: args.chain_id,
                sender: *sender,
                nonce: nonces[s],
                fee: 10,
                op: Operation::Transfer {
                    to,
                    amount: rng.random_range(1..1_000),
                },
            }
            .sign(key);
            nonces[s] += 1;
            who.push(s);
            batch.push(hex::encode(signed.encoded()));
        }
        let t0 = Instant::now();
        let r = c.post("/v1/transactions", &json!({"transactions": batch}), None);
        latencies.push(t0.elapsed());
        sent += n as u64;
        let mut resync = Vec::new();
        match r {
            Ok(v) => {
                for (item, s) in v["results"].as_array().into_iter().flatten().zip(&who) {
                    if item["accepted"].as_bool() == Some(true) {
                        accepted += 1;
                    } else {
                        let code = item["code"].as_str().unwrap_or("?").to_string();
                        *refused.entry(code).or_default() += 1;
                        resync.push(*s);
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let code = msg
                    .strip_prefix('[')
                    .and_then(|m| m.split(']').next())
                    .unwrap_or("E_REQUEST")
                    .to_string();
                *refused.entry(code).or_default() += n as u64;
                resync.extend(who.iter().copied());
            }
        }
        resync.sort_unstable();
        resync.dedup();
        for s in resync {
            if let Ok(v) = c.get(&format!("/v1/accounts/{}", keys[s].1.to_hex())) {
                nonces[s] = v["next_nonce"].as_u64().unwrap_or(nonces[s]);
            }
        }
        bar.set_position(sent);
        bar.set_message(format!("{accepted} accepted"));
    }
    let offered_for = started.elapsed();
    bar.finish_and_clear();
    // Wait until the accepted transactions have committed: the head stops moving for a
    // second (or 30 s at most).
    let drain_until = Instant::now() + Duration::from_secs(30);
    let mut committed = 0u64;
    let mut height = start_head;
    let mut last_move = Instant::now();
    loop {
        let head = c.get("/v1/head")?["height"].as_u64().unwrap_or(height);
        if head > height {
            last_move = Instant::now();
        }
        while height < head {
            height += 1;
            committed += c.get(&format!("/v1/blocks/{height}"))?["transactions"]
                .as_array()
                .map_or(0, |a| a.len() as u64);
        }
        if committed >= accepted
            || last_move.elapsed() > Duration::from_secs(1)
            || Instant::now() > drain_until
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed().saturating_sub(last_move.elapsed());
    latencies.sort_unstable();
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["figure", "value"]);
    t.add_row([
        "offered".to_string(),
        format!(
            "{sent} tx in {offered_for:.2?} ({:.0} tx/s)",
            sent as f64 / offered_for.as_secs_f64()
        ),
    ]);
    t.add_row(["accepted".to_string(), accepted.to_string()]);
    t.add_row(["refused".to_string(), format!("{refused:?}")]);
    t.add_row([
        "committed".to_string(),
        format!(
            "{committed} in blocks {}..={height} ({:.0} tx/s over {elapsed:.2?})",
            start_head + 1,
            committed as f64 / elapsed.as_secs_f64()
        ),
    ]);
    t.add_row([
        "request latency".to_string(),
        format!(
            "p50 {:.1?}, p99 {:.1?} ({} requests of up to {})",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.len(),
            args.batch
        ),
    ]);
    println!("{t}");
    Ok(())
}
