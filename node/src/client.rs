//! The client verbs: `aurigraph policy ...`, `aurigraph tx ...` and `aurigraph load`, over
//! the node's REST API.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aurigraph_ledger::tx::{Address, Operation, Transaction};
use aurigraph_node::config::dev_key;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde_json::{Value, json};

use crate::cli::{LoadArgs, NodeArgs, PolicyCommand, TokenArgs, TxCommand};

struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    fn new(node: &NodeArgs) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: node.node.trim_end_matches('/').to_string(),
        })
    }

    fn answer(&self, r: reqwest::Result<reqwest::blocking::Response>) -> Result<Value> {
        let r = r.with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = r.status();
        let body: Value = r.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("E_HTTP");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        bail!("[{code}] {msg} (HTTP {})", status.as_u16())
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.answer(self.http.get(format!("{}{path}", self.base)).send())
    }

    fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.answer(req.send())
    }
}

fn token(t: &TokenArgs) -> Result<&str> {
    t.token.as_deref().context(
        "[E_UNAUTHENTICATED] admin verbs need --token or AURIGRAPH_ADMIN_TOKEN (the node's \
         admin.token, or <data_dir>/admin.token)",
    )
}

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
        ]);
    }
    t
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

fn address(s: &str) -> Result<Address> {
    if let Some(i) = s.strip_prefix("dev:") {
        return Ok(dev_key(i.parse().context("dev:N takes a number")?).1);
    }
    Address::from_hex(s).context("[E_BAD_ADDRESS] an address is 64 hex characters or dev:N")
}

/// Runs a `tx` verb.
pub fn tx(cmd: &TxCommand) -> Result<()> {
    match cmd {
        TxCommand::Transfer {
            from_dev,
            to,
            amount,
            fee,
            nonce,
            chain_id,
            wait,
            node,
        } => {
            let c = Client::new(node)?;
            let (key, sender) = dev_key(*from_dev);
            let nonce = match nonce {
                Some(n) => *n,
                None => c.get(&format!("/v1/accounts/{}", sender.to_hex()))?["next_nonce"]
                    .as_u64()
                    .context("the node's account answer has no next_nonce")?,
            };
            let signed = Transaction {
                chain_id: *chain_id,
                sender,
                nonce,
                fee: *fee,
                op: Operation::Transfer {
                    to: address(to)?,
                    amount: *amount,
                },
            }
            .sign(&key);
            let v = c.post(
                "/v1/transactions",
                &json!(hex::encode(signed.encoded())),
                None,
            )?;
            let hash = signed.hash().to_string();
            println!("accepted {hash} (nonce {nonce})");
            let _ = v;
            if *wait {
                let started = Instant::now();
                loop {
                    let t = c.get(&format!("/v1/transactions/{hash}"))?;
                    if t["state"] == "committed" {
                        println!(
                            "committed in block {} : {} ({})",
                            t["block_height"], t["receipt"]["status"], t["receipt"]["code"]
                        );
                        break;
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        bail!("[E_TIMEOUT] {hash} did not commit within 30 s");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Ok(())
        }
        TxCommand::Submit { txs, node } => {
            let c = Client::new(node)?;
            let mut list = txs.clone();
            if list.is_empty() {
                for line in std::io::stdin().lines() {
                    let line = line?;
                    if !line.trim().is_empty() {
                        list.push(line.trim().to_string());
                    }
                }
            }
            let v = c.post("/v1/transactions", &json!({"transactions": list}), None)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        TxCommand::Get { hash, node } => {
            let v = Client::new(node)?.get(&format!("/v1/transactions/{hash}"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        TxCommand::Account { address: a, node } => {
            let v = Client::new(node)?.get(&format!("/v1/accounts/{}", address(a)?.to_hex()))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
    }
}

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
