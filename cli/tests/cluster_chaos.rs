//! kill -9 of the leader under load, with real processes: `aurigraph cluster up` starts
//! three validators; client tasks submit pre-signed transfers to all three round-robin
//! (followers forward); the leader's process is killed with SIGKILL while they run; a new
//! leader takes over; the killed node is started again from its config (`aurigraph start
//! --config`) and catches up. The verdict: every acknowledged transaction is committed on
//! every replica, exactly once in the chain, and every replica reaches one head.
//!
//! "Accepted" in a cluster means committed. A client whose submission got no answer (its
//! node died, a forward failed, the commit was still pending) does not know what became of
//! it, so it sends the same bytes again to another node; a later `E_DUPLICATE` or
//! `E_STALE_NONCE` means the earlier attempt is in a mempool or committed: the client then
//! asks the replicas for the transaction by hash before moving to its next nonce, and counts
//! it as "confirmed by hash" (committed without an acknowledgement), checked like the
//! acknowledged ones.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cluster::{Down, aurigraph, text, up_three};
use crate::common::*;
use aurigraph_cli::demo::longest_without_leader;
use serde_json::{Value, json};

/// Client tasks, one development account each (accounts 1..=CLIENTS send, 40.. receive).
const CLIENTS: u32 = 12;
/// How long the clients start new transactions.
const LOAD: Duration = Duration::from_secs(6);
/// When the leader is killed, from the start of the load.
const KILL_AT: Duration = Duration::from_secs(2);
/// When the killed node is started again, from the start of the load.
const RESTART_AT: Duration = Duration::from_secs(4);
/// How long after the load a client may still resolve its last transaction.
const DRAIN: Duration = Duration::from_secs(8);

/// What became of one attempt to submit.
enum Answer {
    /// 200, accepted (committed).
    Accepted,
    /// Refused with this code.
    Refused(String),
    /// No answer: the connection failed or the request timed out (which).
    Lost(&'static str),
}

fn lost(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "no answer (timeout)"
    } else if e.is_connect() {
        "no answer (connect)"
    } else {
        "no answer (connection lost)"
    }
}

async fn submit(c: &reqwest::Client, url: &str, body: &str) -> Answer {
    let r = match c
        .post(format!("{url}/v1/transactions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Answer::Lost(lost(&e)),
    };
    let status = r.status().as_u16();
    let v: Value = match r.text().await {
        Ok(t) => serde_json::from_str(&t).unwrap_or(Value::Null),
        Err(e) => return Answer::Lost(lost(&e)),
    };
    if status == 200 && v["accepted"].as_u64() == Some(1) {
        Answer::Accepted
    } else if code(&v).is_empty() {
        Answer::Refused(format!("HTTP {status} {v}"))
    } else {
        Answer::Refused(code(&v).to_string())
    }
}

/// The state of transaction `hash` on the replicas that answer: `committed` when one says
/// so, else `pending` when one holds it, else `unknown`.
async fn state_anywhere(c: &reqwest::Client, urls: &[String], hash: &str) -> &'static str {
    let mut state = "unknown";
    for url in urls {
        let Ok(r) = c.get(format!("{url}/v1/transactions/{hash}")).send().await else {
            continue;
        };
        let Ok(v) = r.json::<Value>().await else {
            continue;
        };
        match v["state"].as_str() {
            Some("committed") => return "committed",
            Some("pending") => state = "pending",
            _ => {}
        }
    }
    state
}

/// What one client did.
#[derive(Default)]
struct Outcome {
    /// Acknowledged transactions: hash and when the answer came.
    acked: Vec<(String, Instant)>,
    /// Committed, learned by hash after the answer was lost or refused as a duplicate.
    confirmed: Vec<String>,
    /// Refusals and lost answers, by code.
    refusals: HashMap<String, u64>,
    /// The last transaction, unresolved at the drain's end (neither acknowledged nor seen
    /// committed): nothing was promised for it.
    unresolved: Option<String>,
    /// What a correct node never does (a duplicate on a first attempt, an unknown code).
    anomalies: Vec<String>,
}

/// How one transaction ended for its client.
enum Resolution {
    Acked,
    Confirmed,
    Unresolved,
    Anomaly(String),
}

/// Sends `body` (transaction `hash`) until it is acknowledged or seen committed, each
/// attempt to the next node (`next`), the drain's end at the latest.
async fn resolve(
    c: &reqwest::Client,
    urls: &[String],
    next: &mut usize,
    body: &str,
    hash: &str,
    give_up: Instant,
    refusals: &mut HashMap<String, u64>,
) -> Resolution {
    let mut attempts = 0u32;
    loop {
        let url = &urls[*next % urls.len()];
        *next += 1;
        attempts += 1;
        let code = match submit(c, url, body).await {
            Answer::Accepted => return Resolution::Acked,
            Answer::Refused(code) => code,
            Answer::Lost(why) => why.to_string(),
        };
        *refusals.entry(code.clone()).or_default() += 1;
        match code.as_str() {
            // The same bytes were sent before: that attempt is pending or committed.
            "E_DUPLICATE" | "E_STALE_NONCE" => {
                if attempts == 1 {
                    return Resolution::Anomaly(format!("{code} on the first attempt"));
                }
                // Committed: confirmed. Pending: wait (retrying the same bytes). A stale
                // nonce can only be this transaction's, committed somewhere.
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match state_anywhere(c, urls, hash).await {
                        "committed" => return Resolution::Confirmed,
                        _ if code == "E_DUPLICATE" => break,
                        _ if Instant::now() > deadline => {
                            return Resolution::Anomaly(
                                "E_STALE_NONCE, but the transaction is committed on no replica"
                                    .into(),
                            );
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
            // No leader known or reachable, the commit still pending, overload, a drop: the
            // outcome is open, try again elsewhere.
            c if c.starts_with("no answer") => {}
            "E_NOT_LEADER" | "E_FORWARD" | "E_COMMIT_PENDING" | "E_NOT_READY" | "E_TIMEOUT"
            | "E_OVERLOADED" | "E_MEMPOOL_FULL" | "E_SENDER_LIMIT" | "E_DROPPED" => {}
            other => return Resolution::Anomaly(format!("unexpected refusal {other}")),
        }
        if Instant::now() > give_up {
            return Resolution::Unresolved;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits transfers from development account `sender`, nonces in order, one at a time (the
/// next only once the last is acknowledged or seen committed), each attempt to the next
/// node; starts no new one after `stop`.
async fn client(sender: u32, urls: Arc<Vec<String>>, stop: Instant) -> Outcome {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(12))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let mut out = Outcome::default();
    let mut next = sender as usize;
    let mut nonce = 0;
    while Instant::now() < stop {
        let tx = transfer(sender, nonce, 40 + sender % 20, 1);
        let hash = tx.hash().to_string();
        let body = json!(hex_of(&tx)).to_string();
        let r = resolve(
            &c,
            &urls,
            &mut next,
            &body,
            &hash,
            stop + DRAIN,
            &mut out.refusals,
        )
        .await;
        match r {
            Resolution::Acked => out.acked.push((hash, Instant::now())),
            Resolution::Confirmed => out.confirmed.push(hash),
            Resolution::Unresolved => {
                out.unresolved = Some(hash);
                break;
            }
            Resolution::Anomaly(what) => {
                out.anomalies
                    .push(format!("sender {sender} nonce {nonce} ({hash}): {what}"));
                break;
            }
        }
        nonce += 1;
    }
    out
}

/// Polls `GET /v1/cluster` on every node every 50 ms while `on`: when, and whether some
/// node said it leads.
async fn watch_leader(
    urls: Arc<Vec<String>>,
    on: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(Instant, bool)> {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let leads = |url: String| {
        let c = c.clone();
        async move {
            let Ok(r) = c.get(format!("{url}/v1/cluster")).send().await else {
                return false;
            };
            r.json::<Value>()
                .await
                .is_ok_and(|v| v["state"] == "leader")
        }
    };
    let mut samples = Vec::new();
    while on.load(std::sync::atomic::Ordering::Relaxed) {
        let at = Instant::now();
        let (a, b, d) = tokio::join!(
            leads(urls[0].clone()),
            leads(urls[1].clone()),
            leads(urls[2].clone())
        );
        samples.push((at, a || b || d));
        tokio::time::sleep_until((at + Duration::from_millis(50)).into()).await;
    }
    samples
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A node of `DIR/cluster.json`.
struct NodeFiles {
    id: u64,
    url: String,
    config: PathBuf,
    log: PathBuf,
}

fn cluster_nodes(dir: &Path) -> Vec<NodeFiles> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).expect("cluster.json");
    let v: Value = serde_json::from_str(&text).expect("cluster.json is JSON");
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| NodeFiles {
            id: n["id"].as_u64().expect("id"),
            url: n["url"].as_str().expect("url").to_string(),
            config: PathBuf::from(n["config"].as_str().expect("config")),
            log: PathBuf::from(n["log"].as_str().expect("log")),
        })
        .collect()
}

/// A node started again by the test (`aurigraph start --config`): `cluster down` knows only
/// the pids it started, so this stops it when dropped (SIGTERM, SIGKILL 10 s later).
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `aurigraph start --config CONFIG`, its output appended to `log`, no `AURIGRAPH_*`
/// variable passed on (as `cluster up` starts a node).
fn start_node(config: &Path, log: &Path) -> Restarted {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the node's log");
    let err = out.try_clone().expect("the node's log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurigraph"));
    cmd.arg("start")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AURIGRAPH_") {
            cmd.env_remove(k);
        }
    }
    Restarted(cmd.spawn().expect("aurigraph start runs"))
}

/// On a failure, copies every node's log out of the test's folder (which goes with the
/// test) and prints where, with their ERROR lines.
struct LogsOnFailure(Vec<PathBuf>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let keep = std::env::temp_dir().join(format!("aurigraph-cluster-chaos-{}", now_ms()));
        let _ = std::fs::create_dir_all(&keep);
        for (i, log) in self.0.iter().enumerate() {
            let copy = keep.join(format!("node-{}.log", i + 1));
            let _ = std::fs::copy(log, &copy);
            let text = std::fs::read_to_string(log).unwrap_or_default();
            eprintln!("---- {} (its ERROR lines)", copy.display());
            for l in text.lines().filter(|l| l.contains("ERROR")).take(20) {
                eprintln!("{l}");
            }
        }
    }
}

/// GET `url` as JSON, `None` on any failure.
async fn try_json(c: &reqwest::Client, url: &str) -> Option<Value> {
    let r = c.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_under_load_loses_no_acknowledged_transaction() {
    let began = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    up_three(&dir);
    let _down = Down(dir.clone());
    let nodes = cluster_nodes(&dir);
    let _logs = LogsOnFailure(nodes.iter().map(|n| n.log.clone()).collect());
    let urls: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.url.clone()).collect());
    let c = http();

    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = tokio::spawn(watch_leader(urls.clone(), watching.clone()));

    // The load.
    let t0 = Instant::now();
    let t0_ms = now_ms();
    let stop = t0 + LOAD;
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|s| tokio::spawn(client(s, urls.clone(), stop)))
        .collect();

    // kill -9 of the leader.
    tokio::time::sleep_until((t0 + KILL_AT).into()).await;
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || aurigraph(&["cluster", "status", "--json"], &d))
        .await
        .expect("join");
    assert!(out.status.success(), "{}", text(&out));
    let st: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let leader = st["leader"]
        .as_u64()
        .unwrap_or_else(|| panic!("a leader: {st}"));
    let pid = st["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"].as_u64() == Some(leader))
        .and_then(|n| n["pid"].as_u64())
        .unwrap_or_else(|| panic!("the leader's pid: {st}"));
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "kill -9 {pid}");
    let killed_at = Instant::now();
    let victim = nodes
        .iter()
        .find(|n| n.id == leader)
        .expect("the leader's node");

    // Started again from its config.
    tokio::time::sleep_until((t0 + RESTART_AT).into()).await;
    let _restarted = start_node(&victim.config, &victim.log);
    let restarted_at = Instant::now();
    poll_until(
        Duration::from_secs(20),
        "the restarted node ready and knowing a leader",
        || async {
            let ready = c
                .get(format!("{}/readyz", victim.url))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            let view = try_json(&c, &format!("{}/v1/cluster", victim.url)).await?;
            (ready && view["leader"].as_u64().is_some()).then_some(())
        },
    )
    .await;
    let ready_after = restarted_at.elapsed();

    let mut outcomes = Vec::new();
    for t in clients {
        outcomes.push(t.await.expect("a client task"));
    }
    let load_end = Instant::now();
    let load_end_ms = now_ms();

    // Every replica at one head.
    let heads = poll_until(
        Duration::from_secs(20),
        "one head on every replica",
        || async {
            let mut heads = Vec::new();
            for url in urls.iter() {
                let h = try_json(&c, &format!("{url}/v1/head")).await?;
                heads.push((
                    h["height"].as_u64()?,
                    h["hash"].to_string(),
                    h["state_root"].as_str()?.to_string(),
                ));
            }
            heads.dedup();
            (heads.len() == 1).then(|| heads.remove(0))
        },
    )
    .await;
    let one_head_after = load_end.elapsed();
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let samples = watcher.await.expect("the watcher");
    let (height, _, root) = heads;
    for url in urls.iter() {
        let v = try_json(&c, &format!("{url}/v1/cluster"))
            .await
            .unwrap_or_else(|| panic!("{url}/v1/cluster"));
        assert!(v["stopped"].is_null(), "{url}: its Raft stopped: {v}");
    }

    // The verdict.
    let anomalies: Vec<&String> = outcomes.iter().flat_map(|o| &o.anomalies).collect();
    let acked: Vec<&(String, Instant)> = outcomes.iter().flat_map(|o| &o.acked).collect();
    let confirmed: Vec<&String> = outcomes.iter().flat_map(|o| &o.confirmed).collect();
    let unresolved = outcomes.iter().filter(|o| o.unresolved.is_some()).count();
    let mut refusals: HashMap<&str, u64> = HashMap::new();
    for o in &outcomes {
        for (k, n) in &o.refusals {
            *refusals.entry(k).or_default() += n;
        }
    }
    let promised: Vec<&String> = acked
        .iter()
        .map(|(h, _)| h)
        .chain(confirmed.iter().copied())
        .collect();
    assert!(!acked.is_empty(), "nothing was acknowledged");

    // Committed on every replica, in one block.
    let mut not_committed = Vec::new();
    for h in &promised {
        let mut at = HashSet::new();
        for url in urls.iter() {
            let v = try_json(&c, &format!("{url}/v1/transactions/{h}")).await;
            match v {
                Some(v) if v["state"] == "committed" => {
                    at.insert(v["block_height"].as_u64());
                    if v["receipt"]["code"] != "OK" {
                        not_committed.push(format!("{h} on {url}: receipt {}", v["receipt"]));
                    }
                }
                other => not_committed.push(format!("{h} on {url}: {other:?}")),
            }
        }
        if at.len() > 1 {
            not_committed.push(format!("{h}: in blocks {at:?} on the replicas"));
        }
    }

    // Exactly once in the chain (walked on one replica: all share the head).
    let mut count: HashMap<String, u32> = HashMap::new();
    let mut stamps = Vec::new();
    for hgt in 1..=height {
        let b = try_json(&c, &format!("{}/v1/blocks/{hgt}", urls[0]))
            .await
            .unwrap_or_else(|| panic!("block {hgt}"));
        stamps.push(b["timestamp_ms"].as_u64().expect("timestamp"));
        for t in b["transactions"].as_array().expect("transactions") {
            *count
                .entry(t["hash"].as_str().expect("hash").to_string())
                .or_default() += 1;
        }
    }
    let twice: Vec<(&String, &u32)> = count.iter().filter(|(_, n)| **n > 1).collect();
    let not_once: Vec<String> = promised
        .iter()
        .filter(|h| count.get(**h).copied().unwrap_or(0) != 1)
        .map(|h| format!("{h}: {} times", count.get(*h).copied().unwrap_or(0)))
        .collect();

    // Each sender's committed nonce: its committed transactions, one more at most when its
    // last one was unresolved.
    let mut nonces = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let sender = i as u32 + 1;
        let done = (o.acked.len() + o.confirmed.len()) as u64;
        for url in urls.iter() {
            let a = try_json(&c, &format!("{url}/v1/accounts/{}", addr_hex(sender)))
                .await
                .unwrap_or_else(|| panic!("account {sender} on {url}"));
            let n = a["nonce"].as_u64().expect("nonce");
            if !(n == done || (o.unresolved.is_some() && n == done + 1)) {
                nonces.push(format!(
                    "sender {sender} on {url}: nonce {n}, {done} transactions done"
                ));
            }
        }
    }

    // Where the unresolved transactions are (nothing was promised for them).
    let mut unresolved_at = Vec::new();
    for h in outcomes.iter().filter_map(|o| o.unresolved.as_ref()) {
        let mut states = Vec::new();
        for url in urls.iter() {
            let v = try_json(&c, &format!("{url}/v1/transactions/{h}")).await;
            states.push(v.map_or("?".to_string(), |v| v["state"].to_string()));
        }
        unresolved_at.push(format!("{}: {}", &h[..12], states.join("/")));
    }
    // Blocks per half second of the run, from the blocks' timestamps.
    let mut timeline = vec![0u32; ((load_end_ms.saturating_sub(t0_ms)) / 500 + 1) as usize];
    for t in &stamps {
        if (t0_ms..=load_end_ms).contains(t) {
            timeline[((t - t0_ms) / 500) as usize] += 1;
        }
    }

    // The figures.
    let window: Vec<u64> = stamps
        .iter()
        .copied()
        .filter(|t| (t0_ms..=load_end_ms).contains(t))
        .collect();
    let commit_gap = window
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    let mut ack_times: Vec<Instant> = acked.iter().map(|(_, t)| *t).collect();
    ack_times.sort();
    let ack_gap = ack_times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let acked_after_kill = ack_times.iter().filter(|t| **t > killed_at).count();
    let mut refusals: Vec<_> = refusals.into_iter().collect();
    refusals.sort();
    println!(
        "cluster chaos: leader node {leader} (pid {pid}) killed at {:?}, started again at {:?}, \
         ready {ready_after:?} later; load {:?}\n\
         acknowledged {} ({acked_after_kill} after the kill), confirmed by hash {}, \
         unresolved {unresolved}; refusals and lost answers {refusals:?}\n\
         time without a leader (longest) {:?}; longest gap between commits {commit_gap} ms \
         (blocks' timestamps), between acknowledgements {ack_gap:?}\n\
         blocks per 0.5 s of the run: {timeline:?}; unresolved (states on the replicas): \
         {unresolved_at:?}\n\
         one head on all replicas {one_head_after:?} after the load: height {height}, root {root}\n\
         the whole test so far {:?}",
        killed_at - t0,
        restarted_at - t0,
        load_end - t0,
        acked.len(),
        confirmed.len(),
        longest_without_leader(&samples),
        began.elapsed(),
    );

    assert!(anomalies.is_empty(), "{anomalies:#?}");
    assert!(not_committed.is_empty(), "{not_committed:#?}");
    assert!(not_once.is_empty(), "{not_once:#?}");
    assert!(twice.is_empty(), "in the chain more than once: {twice:?}");
    assert!(nonces.is_empty(), "{nonces:#?}");
    assert!(acked_after_kill > 0, "nothing acknowledged after the kill");
}
