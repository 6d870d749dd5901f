//! `aurigraph chaos run|ab`: fault scenarios under load against a running cluster (`aurigraph
//! cluster up --chaos --dir DIR`), and the verdict that nothing acknowledged was lost.
//!
//! **The load.** [`CLIENTS`] client threads, one development account each (accounts 1 to
//! [`CLIENTS`] send, 40 and up receive), send transfers round-robin to every node: the next
//! nonce once the last is acknowledged (committed) or seen committed by hash, the same bytes
//! again to the next node when an answer is lost (`E_DUPLICATE` / `E_STALE_NONCE` then send
//! the client looking for it by hash). `--rate` paces them; by default each sends as fast as
//! its transactions are acknowledged. A watcher polls every node's `/v1/cluster` every 50 ms
//! (who leads) and each node's VmRSS every 500 ms.
//!
//! **The scenarios.** The load runs `--duration` (D); the fault starts at D/3:
//!
//! - `kill-leader` / `kill-follower`: SIGKILL of the leader (a follower), started again from
//!   its config at 2D/3 (`aurigraph demo --cluster N` is `kill-leader` on a cluster of its
//!   own);
//! - `partition-leader`: the node fault `partition` on the leader until 2D/3, then `clear`;
//! - `degrade-leader-disk|cpu|net`: the node fault `disk_slow` / `cpu_starve` / `net_flaky`
//!   on the leader, SIGKILL of that node `--warning` later, started again at 2D/3 (or a
//!   second after the kill); a hand-over before the kill is recorded with its lead time;
//! - `leak-leader`: the node fault `mem_leak` on the leader, sized to abort the process half
//!   way through the fault window; the node is started again once it died;
//! - `rolling-restart`: SIGTERM then a restart of each node in turn, followers first, each
//!   waited for until it follows the leader within [`CAUGHT_UP_BLOCKS`] blocks;
//! - `overload`: first the capacity (acknowledged transactions per second of `aurigraph
//!   load` at a high rate, 5 s, D/3 when D < 15 s), then 150% of it offered to the leader for
//!   the fault window (60 s when D >= 60 s, else D/3), refusals counted by code;
//! - `none`: no fault (`chaos ab --healthy-minutes`).
//!
//! **The verdict** ([`failures`]): every acknowledged transaction (the clients' and the
//! overload's) committed exactly once in every node's chain, at one height; the clients'
//! transactions also committed with receipt `OK` by hash on every node, and each sender's
//! nonce where its transactions put it; every node at one head and state root, none with its
//! Raft stopped; something acknowledged after the fault began; no node's VmRSS above
//! `--max-rss-mb`. Figures: time without a leader, the longest gap between acknowledgements,
//! submit-to-commit p50/p99 overall and in the fault window, refusals by code, the hand-over
//! lead time, leader changes, max RSS per node. The labels of each run (crashes, faults,
//! hand-overs, wall-clock ms) go to `DIR/chaos-runs/SCENARIO-MS/events.json`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::args::{ChaosAbArgs, ChaosCommon, ChaosRunArgs};
use crate::cluster::{Member, cluster_view};
use crate::demo::percentile;

/// Client threads (accounts 1 to CLIENTS send, 40 and up receive).
pub const CLIENTS: u32 = 12;
/// How long after the load a client may still resolve its last transaction.
const DRAIN: Duration = Duration::from_secs(8);
/// How long the run waits for every node at one head after the load.
const CATCH_UP: Duration = Duration::from_secs(30);
/// A restarted node has caught up when it follows the leader within this many blocks of the
/// leader's head.
pub const CAUGHT_UP_BLOCKS: u64 = 5;
/// `mem_leak`: MiB allocated per second.
const LEAK_MB_PER_S: u64 = 64;
/// `overload`: what is offered, in percent of the measured capacity.
const OVERLOAD_PERCENT: u64 = 150;
/// `overload`: the rate offered while the capacity is measured.
const CAPACITY_PROBE_RATE: u64 = 20_000;

/// A fault scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// SIGKILL of the leader, started again at 2/3.
    KillLeader,
    /// SIGKILL of a follower, started again at 2/3.
    KillFollower,
    /// The leader cut off from every other node until 2/3.
    PartitionLeader,
    /// The leader's Raft log appends slowed down, then SIGKILL after --warning.
    DegradeLeaderDisk,
    /// The leader's runtime stalled more and more, then SIGKILL after --warning.
    DegradeLeaderCpu,
    /// The leader's outgoing Raft RPCs delayed and lost, then SIGKILL after --warning.
    DegradeLeaderNet,
    /// The leader leaks memory until it aborts; started again after it died.
    LeakLeader,
    /// SIGTERM and a restart of every node in turn, the leader last.
    RollingRestart,
    /// 150% of the measured capacity offered for the fault window.
    Overload,
    /// No fault.
    None,
}

impl Scenario {
    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KillLeader => "kill-leader",
            Self::KillFollower => "kill-follower",
            Self::PartitionLeader => "partition-leader",
            Self::DegradeLeaderDisk => "degrade-leader-disk",
            Self::DegradeLeaderCpu => "degrade-leader-cpu",
            Self::DegradeLeaderNet => "degrade-leader-net",
            Self::LeakLeader => "leak-leader",
            Self::RollingRestart => "rolling-restart",
            Self::Overload => "overload",
            Self::None => "none",
        }
    }

    /// The node fault a degrade scenario starts (the defaults: visibly struggling within
    /// the default 5 s warning on two cores, still leading).
    fn degradation(self) -> Option<Value> {
        Some(match self {
            Self::DegradeLeaderDisk => {
                json!({"kind": "disk_slow", "start_ms": 2, "growth_ms_per_s": 100, "max_ms": 3000})
            }
            Self::DegradeLeaderCpu => {
                json!({"kind": "cpu_starve", "stall_ms": 10, "every_ms": 100, "growth_ms_per_s": 20})
            }
            Self::DegradeLeaderNet => {
                json!({"kind": "net_flaky", "delay_ms": 5, "growth_ms_per_s": 30, "loss": 0.02})
            }
            _ => return None,
        })
    }
}

// ---- the client side ----

/// What became of one attempt to submit.
enum Answer {
    /// 200, accepted (in a cluster: committed).
    Accepted,
    /// Refused with this code, or no answer (`no answer (...)`).
    Refused(String),
}

fn submit_once(c: &reqwest::blocking::Client, url: &str, body: &str) -> Answer {
    let lost = |e: &reqwest::Error| {
        Answer::Refused(
            if e.is_timeout() {
                "no answer (timeout)"
            } else if e.is_connect() {
                "no answer (connect)"
            } else {
                "no answer (connection lost)"
            }
            .to_string(),
        )
    };
    let r = match c
        .post(format!("{url}/v1/transactions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
    {
        Ok(r) => r,
        Err(e) => return lost(&e),
    };
    let status = r.status().as_u16();
    let v: Value = match r.text() {
        Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
        Err(e) => return lost(&e),
    };
    if status == 200 && v["accepted"].as_u64() == Some(1) {
        return Answer::Accepted;
    }
    // A batch's refusal is per item; a request's is the error body's code.
    let code = v["items"][0]["code"]
        .as_str()
        .or_else(|| v["code"].as_str())
        .or_else(|| v["error"]["code"].as_str());
    Answer::Refused(code.map_or_else(|| format!("HTTP {status}"), str::to_string))
}

/// GET `url` as JSON, `None` on any failure.
fn get_json(c: &reqwest::blocking::Client, url: &str) -> Option<Value> {
    let r = c.get(url).send().ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().ok()
}

/// Block `height` of the node at `url`: `None` when the node answers 404 (it does not hold
/// it: below the state snapshot it caught up by); another failure is retried for 5 s.
fn block_at(c: &reqwest::blocking::Client, url: &str, height: u64) -> Result<Option<Value>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let last = match c.get(format!("{url}/v1/blocks/{height}")).send() {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return Ok(None),
            Ok(r) if r.status().is_success() => match r.json() {
                Ok(v) => return Ok(Some(v)),
                Err(e) => e.to_string(),
            },
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("{last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether transaction `hash` is committed on one of the nodes that answer.
fn committed_anywhere(c: &reqwest::blocking::Client, urls: &[String], hash: &str) -> bool {
    urls.iter().any(|url| {
        get_json(c, &format!("{url}/v1/transactions/{hash}"))
            .is_some_and(|v| v["state"] == "committed")
    })
}

/// One acknowledged transaction: its hash, when it was first sent, when the answer came.
struct Ack {
    hash: String,
    sent: Instant,
    at: Instant,
}

/// What one client thread did.
#[derive(Default)]
struct Outcome {
    /// Development account that sent.
    sender: u32,
    /// Its committed nonce before the load.
    first_nonce: u64,
    /// Acknowledged transactions.
    acked: Vec<Ack>,
    /// Committed, learned by hash after an answer was lost.
    confirmed: Vec<String>,
    /// Refusals and lost answers, by code.
    refusals: BTreeMap<String, u64>,
    /// The last transaction, neither acknowledged nor seen committed by the drain's end:
    /// nothing was promised for it.
    unresolved: Option<String>,
    /// What a correct cluster never does.
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
/// attempt to the next node, `give_up` at the latest. A submission without an answer may
/// have gone through: the same bytes go again, and `E_DUPLICATE` / `E_STALE_NONCE` then
/// send the client looking for the transaction by hash.
fn resolve_tx(
    c: &reqwest::blocking::Client,
    urls: &[String],
    next: &mut usize,
    (body, hash): (&str, &str),
    give_up: Instant,
    refusals: &mut BTreeMap<String, u64>,
) -> Resolution {
    let mut attempts = 0u32;
    loop {
        let url = &urls[*next % urls.len()];
        *next += 1;
        attempts += 1;
        let code = match submit_once(c, url, body) {
            Answer::Accepted => return Resolution::Acked,
            Answer::Refused(code) => code,
        };
        *refusals.entry(code.clone()).or_default() += 1;
        match code.as_str() {
            "E_DUPLICATE" | "E_STALE_NONCE" => {
                if attempts == 1 {
                    return Resolution::Anomaly(format!("{code} on the first attempt"));
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    if committed_anywhere(c, urls, hash) {
                        return Resolution::Confirmed;
                    }
                    if code == "E_DUPLICATE" {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Resolution::Anomaly(
                            "E_STALE_NONCE, but the transaction is committed on no node".into(),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            c if c.starts_with("no answer") || c.starts_with("HTTP 5") => {}
            "E_NOT_LEADER"
            | "E_FORWARD"
            | "E_COMMIT_PENDING"
            | "E_NOT_READY"
            | "E_TIMEOUT"
            | "E_OVERLOADED"
            | "E_MEMPOOL_FULL"
            | "E_SENDER_LIMIT"
            | "E_DROPPED"
            | "E_RAFT"
            | "E_TOO_MANY_REQUESTS"
            | "HTTP 429" => {}
            other => return Resolution::Anomaly(format!("unexpected refusal {other}")),
        }
        if Instant::now() > give_up {
            return Resolution::Unresolved;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// When the load stops: `t0` plus `stop_ms`, which a scenario may push back (a rolling
/// restart that takes longer than the load).
struct Clock {
    t0: Instant,
    stop_ms: AtomicU64,
}

impl Clock {
    fn stop(&self) -> Instant {
        self.t0 + Duration::from_millis(self.stop_ms.load(Ordering::Relaxed))
    }

    fn extend_to(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.t0).as_millis() as u64;
        self.stop_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

/// Transfers from development account `sender`, nonces in order, one at a time (the next
/// once the last is acknowledged or seen committed), each attempt to the next node, at most
/// one per `pace`; no new one after the clock's stop. `acked` counts acknowledgements for
/// the progress bar.
fn client(
    sender: u32,
    urls: &[String],
    chain_id: u32,
    clock: &Clock,
    pace: Option<Duration>,
    acked: &AtomicU64,
) -> Outcome {
    use aurigraph_ledger::tx::{Operation, Transaction};
    use aurigraph_node::config::dev_key;
    let mut out = Outcome {
        sender,
        ..Outcome::default()
    };
    let c = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(12))
        .connect_timeout(Duration::from_secs(1))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            out.anomalies.push(format!("cannot build a client: {e}"));
            return out;
        }
    };
    let (key, from) = dev_key(sender);
    let Some(mut nonce) = urls.iter().find_map(|u| {
        get_json(&c, &format!("{u}/v1/accounts/{}", from.to_hex()))?["nonce"].as_u64()
    }) else {
        out.anomalies
            .push(format!("sender {sender}: no node answered its nonce"));
        return out;
    };
    out.first_nonce = nonce;
    let to = dev_key(40 + sender % 20).1;
    let mut next = sender as usize;
    let mut due = Instant::now();
    while Instant::now() < clock.stop() {
        if let Some(p) = pace {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            due = due.max(Instant::now() - p) + p;
        }
        let tx = Transaction {
            chain_id,
            sender: from,
            nonce,
            fee: 10,
            op: Operation::Transfer { to, amount: 1 },
        }
        .sign(&key);
        let hash = tx.hash().to_string();
        let body = serde_json::json!(hex::encode(tx.encoded())).to_string();
        let sent = Instant::now();
        let give_up = clock.stop() + DRAIN;
        match resolve_tx(
            &c,
            urls,
            &mut next,
            (&body, &hash),
            give_up,
            &mut out.refusals,
        ) {
            Resolution::Acked => {
                out.acked.push(Ack {
                    hash,
                    sent,
                    at: Instant::now(),
                });
                acked.fetch_add(1, Ordering::Relaxed);
            }
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

// ---- the cluster side ----

/// Whether the node at `url` follows a leader and is within [`CAUGHT_UP_BLOCKS`] of its
/// height, or leads (a majority elected it: its log is up to date).
fn follows(c: &reqwest::blocking::Client, urls: &[String], url: &str) -> bool {
    let Some(v) = cluster_view(c, url) else {
        return false;
    };
    if v["state"] == "leader" && v["leader"] == v["id"] {
        return true;
    }
    let Some(leader) = v["leader"].as_u64() else {
        return false;
    };
    if v["state"] != "follower" {
        return false;
    }
    let leader_height = urls
        .iter()
        .filter_map(|u| cluster_view(c, u))
        .find(|l| l["id"].as_u64() == Some(leader) && l["state"] == "leader")
        .and_then(|l| l["height"].as_u64());
    let height = v["height"].as_u64().unwrap_or(0);
    leader_height.is_some_and(|lh| height + CAUGHT_UP_BLOCKS >= lh)
}

/// The leader that some node's view says it is (the highest term's), polling every node.
fn current_leader(c: &reqwest::blocking::Client, urls: &[String]) -> Option<u64> {
    urls.iter()
        .filter_map(|u| cluster_view(c, u))
        .filter(|v| v["state"] == "leader")
        .max_by_key(|v| v["term"].as_u64().unwrap_or(0))
        .and_then(|v| v["id"].as_u64())
}

/// The head of node `url`: (height, hash, state root).
fn head_of(c: &reqwest::blocking::Client, url: &str) -> Option<(u64, String, String)> {
    let h = get_json(c, &format!("{url}/v1/head"))?;
    Some((
        h["height"].as_u64()?,
        h["hash"].as_str()?.to_string(),
        h["state_root"].as_str()?.to_string(),
    ))
}

/// VmRSS of process `pid`, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the watcher saw: who led when, and each node's largest VmRSS (KiB).
#[derive(Default)]
struct Watch {
    leaders: Vec<(Instant, Option<u64>)>,
    max_rss_kib: BTreeMap<u64, u64>,
}

/// Polls every node's `/v1/cluster` every 50 ms, and every node's VmRSS every 500 ms,
/// until `on` is cleared.
fn watch(urls: &[String], dir: &Path, ids: &[u64], on: &AtomicBool) -> Watch {
    let mut w = Watch::default();
    let Ok(c) = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
    else {
        return w;
    };
    let mut rss_due = Instant::now();
    while on.load(Ordering::Relaxed) {
        let at = Instant::now();
        w.leaders.push((at, current_leader(&c, urls)));
        if at >= rss_due {
            rss_due = at + Duration::from_millis(500);
            for id in ids {
                if let Some(kib) = crate::cluster::node_pid(dir, *id).and_then(rss_kib) {
                    let m = w.max_rss_kib.entry(*id).or_default();
                    *m = (*m).max(kib);
                }
            }
        }
        std::thread::sleep(
            (at + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
        );
    }
    w
}

/// The longest span without a node that says it leads, from samples `(when, some node
/// leads)` in time order (to the last sample when none came).
pub fn longest_without_leader(samples: &[(Instant, bool)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for (at, leader) in samples {
        match (leader, since) {
            (false, None) => since = Some(*at),
            (true, Some(s)) => {
                longest = longest.max(*at - s);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some((last, _))) = (since, samples.last()) {
        longest = longest.max(*last - s);
    }
    longest
}

/// The leader changes in samples `(when, leader)`: each time a leader other than the last
/// one known leads (a span without a leader in between does not count).
pub fn leader_changes(samples: &[(Instant, Option<u64>)]) -> Vec<(Instant, u64, u64)> {
    let mut out = Vec::new();
    let mut last: Option<u64> = None;
    for (at, l) in samples {
        if let Some(l) = *l {
            if let Some(prev) = last
                && prev != l
            {
                out.push((*at, prev, l));
            }
            last = Some(l);
        }
    }
    out
}

/// When leadership went from `node` to another between `since` and `until` (the first such
/// change), if it did.
pub fn handed_over(
    samples: &[(Instant, Option<u64>)],
    node: u64,
    since: Instant,
    until: Instant,
) -> Option<(Instant, u64)> {
    leader_changes(samples)
        .into_iter()
        .find(|(at, from, _)| *from == node && *at >= since && *at <= until)
        .map(|(at, _, to)| (at, to))
}

/// The longest gap between consecutive times in `times` (any order) that fall in
/// `from..=to`.
pub fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut t: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(t))
        .collect();
    t.sort_unstable();
    t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// Problems with the chains: each promised hash must be exactly once in every node's chain
/// (`hash -> heights` per node), at one height on all of them.
pub fn chain_problems(
    promised: &[String],
    chains: &[(u64, HashMap<String, Vec<u64>>)],
) -> Vec<String> {
    let mut out = Vec::new();
    for h in promised {
        let mut heights = BTreeSet::new();
        for (id, chain) in chains {
            match chain.get(h).map(Vec::as_slice) {
                Some([height]) => {
                    heights.insert(*height);
                }
                other => out.push(format!(
                    "{h}: {} times in node {id}'s chain",
                    other.map_or(0, <[u64]>::len)
                )),
            }
        }
        if heights.len() > 1 {
            out.push(format!("{h}: at heights {heights:?} on different nodes"));
        }
    }
    out
}

/// What the verdict weighs.
#[derive(Debug, Default)]
pub struct Checks {
    /// Acknowledged transactions missing on some node (by hash).
    pub lost: usize,
    /// Other problems (duplicates, wrong nonces, client anomalies, ...).
    pub problems: usize,
    /// Distinct state roots over the nodes (a node that did not answer counts as one).
    pub roots: usize,
    /// Whether every node reached one head.
    pub one_head: bool,
    /// Nodes whose Raft stopped.
    pub stopped: usize,
    /// Acknowledged after the fault began.
    pub acked_after_fault: usize,
    /// Acknowledged in all.
    pub acked: usize,
    /// Largest VmRSS per node, MiB, and the limit.
    pub max_rss_mb: BTreeMap<u64, u64>,
    /// The limit, MiB.
    pub rss_limit_mb: u64,
}

/// Why the verdict fails (empty: it holds).
pub fn failures(c: &Checks) -> Vec<String> {
    let mut f = Vec::new();
    if c.lost > 0 {
        f.push(format!(
            "{} acknowledged transaction(s) missing on some node",
            c.lost
        ));
    }
    if c.problems > 0 {
        f.push(format!("{} other problem(s)", c.problems));
    }
    if c.roots != 1 {
        f.push(format!("{} different state roots", c.roots));
    }
    if !c.one_head {
        f.push("the nodes did not reach one head".to_string());
    }
    if c.stopped > 0 {
        f.push(format!("{} node(s) with their Raft stopped", c.stopped));
    }
    if c.acked == 0 {
        f.push("nothing was acknowledged".to_string());
    } else if c.acked_after_fault == 0 {
        f.push("nothing acknowledged after the fault began".to_string());
    }
    for (id, mb) in &c.max_rss_mb {
        if *mb > c.rss_limit_mb {
            f.push(format!(
                "node {id}: VmRSS {mb} MiB above the limit of {} MiB",
                c.rss_limit_mb
            ));
        }
    }
    f
}

/// The nodes of a cluster under test: `cluster.json`'s, the admin token, and the processes
/// this command started (reaped when it stops them, `cluster down` on [`Nodes::down`]).
pub struct Nodes {
    dir: PathBuf,
    members: Vec<Member>,
    token: String,
    children: Vec<(u64, Child)>,
}

impl Nodes {
    /// The running cluster in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::with_children(dir, Vec::new())
    }

    /// The cluster in `dir`, whose node processes `children` this command started.
    pub(crate) fn with_children(dir: &Path, children: Vec<(u64, Child)>) -> Result<Self> {
        let (members, token) = crate::cluster::members(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            members,
            token,
            children,
        })
    }

    fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    fn url(&self, id: u64) -> Result<&str> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.url.as_str())
            .with_context(|| format!("[E_NO_NODE] the cluster has no node {id}"))
    }

    /// Sends SIG (`KILL`, `TERM`) to node `id` and waits until its process is gone (SIGKILL
    /// 10 s after a SIGTERM); its pid.
    fn stop(&mut self, id: u64, sig: &str) -> Result<u32> {
        let own = self
            .children
            .iter_mut()
            .position(|(i, ch)| *i == id && matches!(ch.try_wait(), Ok(None)));
        let pid = match own {
            Some(k) => self.children[k].1.id(),
            None => crate::cluster::node_pid(&self.dir, id)
                .with_context(|| format!("[E_NODE_DOWN] node {id} is not running"))?,
        };
        if !crate::cluster::signal(pid, sig) {
            bail!("cannot send SIG{sig} to node {id} (pid {pid})");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let gone = match own {
                Some(k) => !matches!(self.children[k].1.try_wait(), Ok(None)),
                None => crate::cluster::node_pid(&self.dir, id).is_none(),
            };
            if gone {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                crate::cluster::signal(pid, "KILL");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `id` again from its config; its pid.
    fn restart(&mut self, id: u64) -> Result<u32> {
        let child = crate::cluster::restart_node(&self.dir, id)?;
        let pid = child.id();
        self.children.push((id, child));
        Ok(pid)
    }

    /// Whether node `id`'s process is gone (reaped when it is this command's).
    fn died(&mut self, id: u64) -> bool {
        if self
            .children
            .iter_mut()
            .any(|(i, ch)| *i == id && matches!(ch.try_wait(), Ok(None)))
        {
            return false;
        }
        crate::cluster::node_pid(&self.dir, id).is_none()
    }

    /// `POST /v1/admin/faults` on node `id`: its answer.
    fn fault(&self, id: u64, body: &Value) -> Result<Value> {
        let c = crate::cluster::http()?;
        let url = self.url(id)?;
        let r = c
            .post(format!("{url}/v1/admin/faults"))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .with_context(|| format!("[E_UNREACHABLE] node {id} did not answer"))?;
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "[{}] node {id} refused the fault {body}: {} (HTTP {}){}",
                v["error"]["code"].as_str().unwrap_or("E_FAULT"),
                v["error"]["message"].as_str().unwrap_or(""),
                status.as_u16(),
                if status.as_u16() == 403 || status.as_u16() == 404 {
                    "; the cluster must be started with `aurigraph cluster up --chaos`"
                } else {
                    ""
                }
            );
        }
        Ok(v)
    }

    /// An admin `POST PATH` with `body` on every node, stopping at the first refusal.
    fn admin_all(&self, path: &str, body: &Value) -> Result<()> {
        let c = crate::cluster::http()?;
        for m in &self.members {
            let r = c
                .post(format!("{}{path}", m.url))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .with_context(|| format!("[E_UNREACHABLE] node {} did not answer", m.id))?;
            if !r.status().is_success() {
                let status = r.status();
                bail!(
                    "node {} refused {path}: HTTP {status} {}",
                    m.id,
                    r.text().unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// `aurigraph cluster down`, and every process this command started reaped.
    pub fn down(&mut self) -> Result<()> {
        let r = crate::cluster::down(&crate::args::ClusterDirArgs {
            dir: self.dir.clone(),
        });
        for (_, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.children.clear();
        r
    }
}

// ---- one run ----

/// How a run goes.
pub(crate) struct RunOpts {
    pub(crate) scenario: Scenario,
    pub(crate) duration: Duration,
    pub(crate) rate: Option<f64>,
    pub(crate) warning: Duration,
    pub(crate) max_rss_mb: u64,
    pub(crate) quiet: bool,
    /// Where the run's folder (events.json) goes: DIR/chaos-runs, or nowhere.
    pub(crate) labels: bool,
}

impl RunOpts {
    fn from_common(c: &ChaosCommon, scenario: Scenario, labels: bool) -> Self {
        Self {
            scenario,
            duration: c.duration,
            rate: c.rate,
            warning: c.warning,
            max_rss_mb: c.max_rss_mb,
            quiet: c.quiet,
            labels,
        }
    }
}

/// What a run found.
pub(crate) struct RunResult {
    pub(crate) passed: bool,
    pub(crate) json: Value,
    /// DIR/chaos-runs/SCENARIO-MS, when labels were written.
    pub(crate) run_dir: Option<PathBuf>,
}

/// A node fault as the labels record it.
struct FaultEvent {
    node: u64,
    kind: String,
    at: Instant,
    cleared: Option<Instant>,
}

/// What the scenario did, for the verdict and the labels.
#[derive(Default)]
struct Script {
    victim: Option<u64>,
    crashes: Vec<(u64, Instant, &'static str)>,
    faults: Vec<FaultEvent>,
    restarts: Vec<(u64, Instant)>,
    /// Restarted nodes once they followed the leader again: after how long.
    caught_up: BTreeMap<u64, Duration>,
    fault_start: Option<Instant>,
    fault_end: Option<Instant>,
    capacity_tps: Option<f64>,
    overload: Option<Value>,
    /// Acknowledged by the overload's `aurigraph load`.
    load_acked: Vec<String>,
}

/// The run in progress: the progress bar, the load's clock, restarted nodes to watch.
struct Ctx<'a> {
    nodes: &'a mut Nodes,
    c: reqwest::blocking::Client,
    urls: Vec<String>,
    clock: Arc<Clock>,
    load: Duration,
    bar: ProgressBar,
    acked: Arc<AtomicU64>,
    script: Script,
}

impl Ctx<'_> {
    /// Prints a line above the progress bar, and logs it.
    fn say(&self, line: String) {
        tracing::info!(target: "aurigraph::chaos", "{}", line.trim());
        self.bar.suspend(|| println!("{line}"));
    }

    fn since(&self, at: Instant) -> Duration {
        at - self.clock.t0
    }

    fn at(&self, share: u32) -> Instant {
        self.clock.t0 + self.load * share / 3
    }

    /// Whether restarted nodes caught up since the last look.
    fn catching_up(&mut self) {
        let pending: Vec<(u64, Instant)> = self
            .script
            .restarts
            .iter()
            .filter(|(id, _)| !self.script.caught_up.contains_key(id))
            .copied()
            .collect();
        for (id, restarted) in pending {
            let Ok(url) = self.nodes.url(id).map(str::to_string) else {
                continue;
            };
            if follows(&self.c, &self.urls, &url) {
                let now = Instant::now();
                self.script.caught_up.insert(id, now - restarted);
                self.say(format!(
                    "{:>6.1?}  node {id} follows the leader again, within {CAUGHT_UP_BLOCKS} \
                     blocks of its head",
                    self.since(now)
                ));
            }
        }
    }

    fn tick(&self, what: &str) {
        self.bar
            .set_position(self.clock.t0.elapsed().min(self.load).as_millis() as u64);
        self.bar.set_message(format!(
            "{} acknowledged | {what}",
            self.acked.load(Ordering::Relaxed)
        ));
    }

    /// Waits until `at`, the progress bar and the restarted nodes looked after.
    fn wait_until(&mut self, at: Instant, what: &str) {
        while Instant::now() < at {
            self.catching_up();
            self.tick(what);
            std::thread::sleep(Duration::from_millis(100).min(at - Instant::now()));
        }
    }

    /// Waits until `done` holds, `limit` at most; whether it did.
    fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            self.catching_up();
            self.tick(what);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn leader(&self, fallback: u64) -> u64 {
        current_leader(&self.c, &self.urls).unwrap_or(fallback)
    }

    /// SIGKILL (or SIGTERM) of node `id`, said and recorded.
    fn crash(&mut self, id: u64, role: &str, sig: &str) -> Result<()> {
        let pid = self.nodes.stop(id, sig)?;
        let at = Instant::now();
        let kind = if sig == "KILL" { "kill" } else { "term" };
        self.script.crashes.push((id, at, kind));
        self.say(format!(
            "{:>6.1?}  {role} node {id} (pid {pid}) {} with SIG{sig}",
            self.since(at),
            if sig == "KILL" { "killed" } else { "stopped" }
        ));
        Ok(())
    }

    /// Node `id` started again from its config, said and recorded.
    fn restart(&mut self, id: u64) -> Result<()> {
        let pid = self.nodes.restart(id)?;
        let at = Instant::now();
        self.script.caught_up.remove(&id);
        self.script.restarts.push((id, at));
        self.say(format!(
            "{:>6.1?}  node {id} started again from its config (pid {pid})",
            self.since(at)
        ));
        Ok(())
    }

    /// A node fault on node `id`, said and recorded (`clear` closes the open ones).
    fn fault(&mut self, id: u64, body: &Value) -> Result<()> {
        self.nodes.fault(id, body)?;
        let at = Instant::now();
        let kind = body["kind"].as_str().unwrap_or("?").to_string();
        if kind == "clear" {
            for f in self.script.faults.iter_mut().filter(|f| f.node == id) {
                f.cleared.get_or_insert(at);
            }
        } else {
            self.script.faults.push(FaultEvent {
                node: id,
                kind: kind.clone(),
                at,
                cleared: None,
            });
        }
        self.say(format!("{:>6.1?}  node {id}: fault {body}", self.since(at)));
        Ok(())
    }

    /// The faulted node's faults end with its process.
    fn cleared_by_crash(&mut self, id: u64, at: Instant) {
        for f in self.script.faults.iter_mut().filter(|f| f.node == id) {
            f.cleared.get_or_insert(at);
        }
    }
}

/// `aurigraph load`'s arguments for the overload phases.
fn load_args(url: &str, rate: u64, duration: Duration) -> crate::args::LoadArgs {
    crate::args::LoadArgs {
        rate: rate.max(1),
        duration,
        senders: 256,
        dev_accounts: 1,
        connections: 4,
        batch: 500,
        transport: crate::args::LoadTransport::Rest,
        presign: (rate as f64 * duration.as_secs_f64()).min(200_000.0) as u64,
        drain_quiet: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(20),
        request_timeout: Duration::from_secs(15),
        chain_id: None,
        seed: 1,
        json: true,
        hashes: None,
        quiet: true,
        node: crate::args::NodeArgs {
            node: url.to_string(),
        },
    }
}

/// The scenario itself, from the start of the load.
fn inject(ctx: &mut Ctx<'_>, o: &RunOpts, leader_before: u64) -> Result<()> {
    let (f, e) = (ctx.at(1), ctx.at(2));
    ctx.wait_until(f, "load on every node");
    let leader = ctx.leader(leader_before);
    ctx.script.fault_start = Some(Instant::now());
    match o.scenario {
        Scenario::None => ctx.wait_until(e, "no fault"),
        Scenario::KillLeader | Scenario::KillFollower => {
            let (victim, role) = if o.scenario == Scenario::KillLeader {
                (leader, "leader")
            } else {
                let id = ctx.nodes.ids().into_iter().find(|id| *id != leader);
                (id.context("no follower to kill")?, "follower")
            };
            ctx.script.victim = Some(victim);
            ctx.crash(victim, role, "KILL")?;
            ctx.wait_until(e, &format!("node {victim} down"));
            ctx.restart(victim)?;
        }
        Scenario::PartitionLeader => {
            ctx.script.victim = Some(leader);
            ctx.fault(leader, &json!({"kind": "partition"}))?;
            ctx.wait_until(e, &format!("node {leader} partitioned"));
            ctx.fault(leader, &json!({"kind": "clear"}))?;
        }
        Scenario::DegradeLeaderDisk | Scenario::DegradeLeaderCpu | Scenario::DegradeLeaderNet => {
            let body = o.scenario.degradation().context("a degradation")?;
            ctx.script.victim = Some(leader);
            ctx.fault(leader, &body)?;
            ctx.wait_until(
                Instant::now() + o.warning,
                &format!("node {leader} degraded"),
            );
            let role = if current_leader(&ctx.c, &ctx.urls) == Some(leader) {
                "leader"
            } else {
                "degraded"
            };
            ctx.crash(leader, role, "KILL")?;
            let killed = Instant::now();
            ctx.cleared_by_crash(leader, killed);
            ctx.wait_until(
                e.max(killed + Duration::from_secs(1)),
                &format!("node {leader} down"),
            );
            ctx.restart(leader)?;
        }
        Scenario::LeakLeader => {
            ctx.script.victim = Some(leader);
            // Dies half way through the fault window.
            let crash_at = (LEAK_MB_PER_S as f64 * (e - f).as_secs_f64() / 2.0).max(32.0) as u64;
            ctx.fault(
                leader,
                &json!({"kind": "mem_leak", "mb_per_s": LEAK_MB_PER_S, "crash_at_mb": crash_at}),
            )?;
            let limit = (e - f) + Duration::from_secs(30);
            let died = ctx.wait_for(limit, &format!("node {leader} leaking"), |ctx| {
                ctx.nodes.died(leader)
            });
            if !died {
                bail!("[E_CHAOS] node {leader} did not abort within {limit:?} of its leak");
            }
            let at = Instant::now();
            ctx.script.crashes.push((leader, at, "abort"));
            ctx.cleared_by_crash(leader, at);
            ctx.say(format!(
                "{:>6.1?}  leader node {leader} aborted (memory limit {crash_at} MiB)",
                ctx.since(at)
            ));
            ctx.restart(leader)?;
        }
        Scenario::RollingRestart => {
            let mut order: Vec<u64> = ctx
                .nodes
                .ids()
                .into_iter()
                .filter(|id| *id != leader)
                .collect();
            order.push(leader);
            for id in order {
                let role = if id == leader { "leader" } else { "follower" };
                ctx.crash(id, role, "TERM")?;
                ctx.restart(id)?;
                let caught = ctx.wait_for(CATCH_UP, &format!("node {id} catching up"), |ctx| {
                    ctx.catching_up();
                    ctx.script.caught_up.contains_key(&id)
                });
                if !caught {
                    bail!(
                        "[E_CHAOS] node {id} did not catch up within {CATCH_UP:?} of its restart"
                    );
                }
                ctx.clock.extend_to(Instant::now() + Duration::from_secs(1));
            }
        }
        Scenario::Overload => {
            let capacity = ctx.script.capacity_tps.unwrap_or(1.0);
            let rate = (capacity * OVERLOAD_PERCENT as f64 / 100.0).ceil() as u64;
            let window = overload_window(o.duration);
            let url = ctx.nodes.url(leader)?.to_string();
            ctx.script.victim = Some(leader);
            ctx.script.faults.push(FaultEvent {
                node: leader,
                kind: format!("overload {rate} tx/s"),
                at: Instant::now(),
                cleared: None,
            });
            ctx.say(format!(
                "{:>6.1?}  {rate} tx/s offered to leader node {leader} for {window:.0?} \
                 ({OVERLOAD_PERCENT}% of {capacity:.0} tx/s)",
                ctx.since(Instant::now())
            ));
            let t =
                std::thread::spawn(move || crate::load::run_json(&load_args(&url, rate, window)));
            while !t.is_finished() {
                ctx.wait_until(Instant::now() + Duration::from_millis(100), "overload");
            }
            let (report, acked) = t
                .join()
                .map_err(|_| anyhow::anyhow!("the overload thread panicked"))??;
            let at = Instant::now();
            if let Some(fe) = ctx.script.faults.last_mut() {
                fe.cleared = Some(at);
            }
            ctx.script.load_acked = acked.iter().map(ToString::to_string).collect();
            ctx.say(format!(
                "{:>6.1?}  overload over: {} acknowledged, refused {}",
                ctx.since(at),
                report["acknowledged"]["transactions"],
                report["refused"]
            ));
            ctx.script.overload = Some(report);
        }
    }
    ctx.script.fault_end = Some(Instant::now());
    Ok(())
}

/// `overload`: how long 150% of the capacity is offered.
fn overload_window(duration: Duration) -> Duration {
    if duration >= Duration::from_secs(60) {
        Duration::from_secs(60)
    } else {
        duration / 3
    }
}

/// The capacity of the cluster through its leader: acknowledged per second of `aurigraph
/// load` at a high rate (5 s; a third of the run when it is shorter than 15 s).
fn measure_capacity(url: &str, duration: Duration) -> Result<(f64, Vec<String>)> {
    let probe = if duration >= Duration::from_secs(15) {
        Duration::from_secs(5)
    } else {
        duration / 3
    };
    let (report, acked) = crate::load::run_json(&load_args(url, CAPACITY_PROBE_RATE, probe))?;
    let rate = report["acknowledged"]["rate"].as_f64().unwrap_or(0.0);
    Ok((
        rate.max(1.0),
        acked.iter().map(ToString::to_string).collect(),
    ))
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Runs `o.scenario` against `nodes` (a running cluster): the load, the fault, the verdict
/// (printed as tables, returned as JSON), the labels in DIR/chaos-runs when asked.
pub(crate) fn run_scenario(nodes: &mut Nodes, o: &RunOpts) -> Result<RunResult> {
    let c = crate::cluster::http()?;
    let urls = nodes.urls();
    let n = urls.len();
    let (start_height, _, _) =
        head_of(&c, &urls[0]).context("[E_NODE_DOWN] node 1 does not answer /v1/head")?;
    let chain_id = get_json(&c, &format!("{}/v1/head", urls[0]))
        .and_then(|h| h["chain_id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .unwrap_or(1);
    let leader_before = current_leader(&c, &urls).context("[E_NOT_LEADER] no node leads")?;

    let mut script = Script::default();
    let mut promised_load = Vec::new();
    if o.scenario == Scenario::Overload {
        let (tps, acked) = measure_capacity(nodes.url(leader_before)?, o.duration)?;
        println!("capacity: {tps:.0} tx/s acknowledged through leader node {leader_before}");
        script.capacity_tps = Some(tps);
        promised_load = acked;
    }
    let load = match o.scenario {
        Scenario::Overload => o.duration / 3 + overload_window(o.duration) + o.duration / 3,
        _ => o.duration,
    };

    let acked_count = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let urls_arc = Arc::new(urls.clone());
    let watcher = {
        let (u, on, dir, ids) = (
            urls_arc.clone(),
            watching.clone(),
            nodes.dir.clone(),
            nodes.ids(),
        );
        std::thread::spawn(move || watch(&u, &dir, &ids, &on))
    };
    let t0 = Instant::now();
    let t0_wall = wall_ms();
    let clock = Arc::new(Clock {
        t0,
        stop_ms: AtomicU64::new(load.as_millis() as u64),
    });
    let pace = o
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(f64::from(CLIENTS) / r));
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|s| {
            let (u, a, k) = (urls_arc.clone(), acked_count.clone(), clock.clone());
            std::thread::spawn(move || client(s, &u, chain_id, &k, pace, &a))
        })
        .collect();

    let bar = if o.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(load.as_millis() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut ctx = Ctx {
        nodes,
        c: c.clone(),
        urls: urls.clone(),
        clock: clock.clone(),
        load,
        bar,
        acked: acked_count,
        script,
    };
    let injected = inject(&mut ctx, o, leader_before);
    if let Err(e) = &injected {
        ctx.say(format!("the scenario stopped: {e:#}"));
        ctx.clock.stop_ms.store(0, Ordering::Relaxed);
    }
    let stop = ctx.clock.stop();
    ctx.wait_until(stop, "load on every node");

    // The clients resolve their last transactions.
    let mut outcomes = Vec::new();
    for t in clients {
        while !t.is_finished() {
            ctx.catching_up();
            ctx.tick("the clients resolving their last transactions");
            std::thread::sleep(Duration::from_millis(100));
        }
        outcomes.push(
            t.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let load_end = Instant::now();

    // Every node at one head.
    let mut head = None;
    ctx.wait_for(CATCH_UP, "every node catching up", |ctx| {
        let heads: Vec<Option<(u64, String, String)>> =
            ctx.urls.iter().map(|u| head_of(&ctx.c, u)).collect();
        if let Some(Some(first)) = heads.first()
            && heads.iter().all(|h| h.as_ref() == Some(first))
        {
            ctx.catching_up();
            head = Some(first.clone());
            return true;
        }
        false
    });
    let one_head_after = load_end.elapsed();
    let leader_after = current_leader(&c, &urls);
    watching.store(false, Ordering::Relaxed);
    let seen = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the leader watcher panicked"))?;
    ctx.bar.finish_and_clear();
    injected?;
    let script = std::mem::take(&mut ctx.script);
    let nodes = ctx.nodes;
    promised_load.extend(script.load_acked.iter().cloned());

    // The verdict: the clients' transactions by hash on every node.
    let mut problems: Vec<String> = outcomes.iter().flat_map(|o| o.anomalies.clone()).collect();
    let promised: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.acked.iter().map(|a| &a.hash).chain(&o.confirmed))
        .cloned()
        .collect();
    // Every promised transaction (the overload's too) exactly once in every node's chain. A
    // replica that caught up by a state snapshot holds no block below it (404): those heights
    // are left out of its chain, and its state root answers for them.
    let end_height = head.as_ref().map_or(start_height, |h| h.0);
    let mut chains = Vec::new();
    let mut not_held: HashMap<u64, BTreeSet<u64>> = HashMap::new();
    for (id, url) in nodes.ids().into_iter().zip(&urls) {
        let mut chain: HashMap<String, Vec<u64>> = HashMap::new();
        for height in start_height + 1..=end_height {
            let Some(b) = block_at(&c, url, height)
                .with_context(|| format!("node {id} does not answer /v1/blocks/{height}"))?
            else {
                not_held.entry(id).or_default().insert(height);
                continue;
            };
            for t in b["transactions"].as_array().into_iter().flatten() {
                if let Some(h) = t["hash"].as_str() {
                    chain.entry(h.to_string()).or_default().push(height);
                }
            }
        }
        chains.push((id, chain));
    }
    // Where each transaction is, by the nodes that hold its block.
    let mut height_of: HashMap<String, u64> = HashMap::new();
    for (_, chain) in &chains {
        for (h, heights) in chain {
            if let Some(first) = heights.first() {
                height_of.entry(h.clone()).or_insert(*first);
            }
        }
    }
    let held = |id: u64, h: &str| {
        height_of
            .get(h)
            .is_none_or(|height| !not_held.get(&id).is_some_and(|s| s.contains(height)))
    };
    let mut lost = Vec::new();
    for h in &promised {
        for (id, url) in nodes.ids().into_iter().zip(&urls) {
            match get_json(&c, &format!("{url}/v1/transactions/{h}")) {
                Some(v) if v["state"] == "committed" => {
                    if !v["receipt"]["code"].is_null() && v["receipt"]["code"] != "OK" {
                        problems.push(format!("{h} on {url}: receipt {}", v["receipt"]));
                    }
                }
                // In a block below this replica's state snapshot: not held there.
                _ if !held(id, h) => {}
                other => lost.push(format!(
                    "{h} on {url}: {}",
                    other.map_or("no answer".to_string(), |v| v["state"].to_string())
                )),
            }
        }
    }
    // A hash whose block a replica does not hold counts once in its chain, where the others
    // have it.
    let chains: Vec<(u64, HashMap<String, Vec<u64>>)> = chains
        .into_iter()
        .map(|(id, mut chain)| {
            for h in promised.iter().chain(&promised_load) {
                if !held(id, h)
                    && let Some(height) = height_of.get(h)
                {
                    chain.entry(h.clone()).or_insert_with(|| vec![*height]);
                }
            }
            (id, chain)
        })
        .collect();
    for (id, s) in &not_held {
        tracing::info!(
            "node {id} holds no block at {} height(s) from {} (caught up by a state snapshot)",
            s.len(),
            s.first().copied().unwrap_or(0)
        );
    }
    let all_promised: Vec<String> = promised.iter().chain(&promised_load).cloned().collect();
    let not_once = chain_problems(&all_promised, &chains);
    for o in &outcomes {
        let done = o.first_nonce + (o.acked.len() + o.confirmed.len()) as u64;
        let addr = aurigraph_node::config::dev_key(o.sender).1.to_hex();
        for url in &urls {
            let nonce = get_json(&c, &format!("{url}/v1/accounts/{addr}"))
                .and_then(|a| a["nonce"].as_u64());
            let ok = nonce.is_some_and(|n| n == done || (o.unresolved.is_some() && n == done + 1));
            if !ok {
                problems.push(format!(
                    "sender {} on {url}: nonce {nonce:?}, {done} expected",
                    o.sender
                ));
            }
        }
    }

    // The figures.
    let acked: Vec<&Ack> = outcomes.iter().flat_map(|o| &o.acked).collect();
    let confirmed = promised.len() - acked.len();
    let unresolved = outcomes.iter().filter(|o| o.unresolved.is_some()).count();
    let fault_start = script.fault_start.unwrap_or(t0 + o.duration / 3);
    let fault_end = script.fault_end.unwrap_or(t0 + o.duration * 2 / 3);
    let acked_after_fault = acked.iter().filter(|a| a.at > fault_start).count();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    for o in &outcomes {
        for (k, v) in &o.refusals {
            *refusals.entry(k.clone()).or_default() += v;
        }
    }
    let mut overload_refusals = BTreeMap::new();
    if let Some(r) = script
        .overload
        .as_ref()
        .and_then(|r| r["refused"].as_object())
    {
        for (k, v) in r {
            overload_refusals.insert(k.clone(), v.as_u64().unwrap_or(0));
        }
    }
    let mut latencies: Vec<Duration> = acked.iter().map(|a| a.at - a.sent).collect();
    latencies.sort_unstable();
    let mut window_latencies: Vec<Duration> = acked
        .iter()
        .filter(|a| (fault_start..=fault_end).contains(&a.sent))
        .map(|a| a.at - a.sent)
        .collect();
    window_latencies.sort_unstable();
    let ack_times: Vec<Instant> = acked.iter().map(|a| a.at).collect();
    let commit_gap = longest_gap(&ack_times, t0, load_end);
    let around = Duration::from_secs(2);
    let fault_gap = longest_gap(
        &ack_times,
        fault_start.checked_sub(around).unwrap_or(t0),
        fault_end + around,
    );
    let leaders_seen: Vec<(Instant, bool)> = seen
        .leaders
        .iter()
        .map(|(at, l)| (*at, l.is_some()))
        .collect();
    let without_leader = longest_without_leader(&leaders_seen);
    let changes = leader_changes(&seen.leaders);
    let kill_at = script
        .crashes
        .iter()
        .find(|(id, _, _)| Some(*id) == script.victim)
        .map(|(_, at, _)| *at);
    let handover = match (script.victim, kill_at, o.scenario.degradation()) {
        (Some(v), Some(k), Some(_)) => handed_over(&seen.leaders, v, fault_start, k),
        _ => None,
    };
    let max_rss_mb: BTreeMap<u64, u64> = seen
        .max_rss_kib
        .iter()
        .map(|(id, kib)| (*id, kib.div_ceil(1024)))
        .collect();
    let views: Vec<(u64, Option<Value>)> = nodes
        .ids()
        .into_iter()
        .zip(&urls)
        .map(|(id, u)| (id, cluster_view(&c, u)))
        .collect();
    let mut roots = BTreeSet::new();
    let mut stopped = 0;
    for (id, v) in &views {
        match v.as_ref().and_then(|v| v["state_root"].as_str()) {
            Some(r) => roots.insert(r.to_string()),
            None => roots.insert(format!("(node {id} did not answer)")),
        };
        if v.as_ref().is_some_and(|v| !v["stopped"].is_null()) {
            stopped += 1;
        }
    }
    let lost_count = lost.len();
    problems.extend(not_once.iter().cloned());
    let checks = Checks {
        lost: lost_count,
        problems: problems.len(),
        roots: roots.len(),
        one_head: head.is_some(),
        stopped,
        acked_after_fault,
        acked: acked.len(),
        max_rss_mb: max_rss_mb.clone(),
        rss_limit_mb: o.max_rss_mb,
    };
    let failed = failures(&checks);

    // The tables.
    let span = ack_times
        .iter()
        .max()
        .map_or(Duration::from_millis(1), |last| {
            last.saturating_duration_since(t0)
                .max(Duration::from_millis(1))
        });
    let mut s = Table::new();
    s.load_style(UTF8_FULL_CONDENSED);
    s.set_header(["figure", "value"]);
    s.add_row([
        "acknowledged (committed) transactions".to_string(),
        format!(
            "{} ({acked_after_fault} after the fault began)",
            acked.len()
        ),
    ]);
    s.add_row([
        "confirmed by hash after a lost answer".to_string(),
        confirmed.to_string(),
    ]);
    s.add_row([
        "unresolved at the end (nothing promised)".to_string(),
        unresolved.to_string(),
    ]);
    s.add_row([
        "throughput".to_string(),
        format!(
            "{:.0} tx/s acknowledged over {span:.2?}",
            acked.len() as f64 / span.as_secs_f64()
        ),
    ]);
    s.add_row([
        "submit-to-commit latency".to_string(),
        format!(
            "p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default()
        ),
    ]);
    s.add_row([
        "submit-to-commit latency in the fault window".to_string(),
        format!(
            "p50 {:.1?}, p99 {:.1?} ({} sent from {:.1?} to {:.1?})",
            percentile(&window_latencies, 0.5),
            percentile(&window_latencies, 0.99),
            window_latencies.len(),
            fault_start - t0,
            fault_end - t0
        ),
    ]);
    s.add_row([
        "refused or unanswered attempts (retried)".to_string(),
        format!("{refusals:?}"),
    ]);
    if let Some(cap) = script.capacity_tps {
        s.add_row([
            "overload: capacity, refused by code".to_string(),
            format!(
                "{cap:.0} tx/s; {} acknowledged of {}; refused {overload_refusals:?}",
                script.load_acked.len(),
                script
                    .overload
                    .as_ref()
                    .map_or(Value::Null, |r| r["offered"]["transactions"].clone()),
            ),
        ]);
    }
    s.add_row([
        "leader before / after".to_string(),
        format!(
            "node {leader_before} / {}",
            leader_after.map_or("none".to_string(), |l| format!("node {l}"))
        ),
    ]);
    s.add_row([
        "leader changes".to_string(),
        changes
            .iter()
            .map(|(at, from, to)| format!("{from}->{to} at {:.1?}", *at - t0))
            .collect::<Vec<_>>()
            .join(", "),
    ]);
    for (id, at, kind) in &script.crashes {
        let again = script
            .restarts
            .iter()
            .find(|(r, rat)| r == id && rat >= at)
            .map(|(_, rat)| *rat);
        s.add_row([
            format!("{kind} / started again"),
            format!(
                "node {id} at {:.1?} / {}",
                *at - t0,
                again.map_or("no".to_string(), |r| format!("at {:.1?}", r - t0))
            ),
        ]);
    }
    for (id, _) in &script.restarts {
        s.add_row([
            format!("node {id} caught up"),
            match script.caught_up.get(id) {
                Some(d) => format!(
                    "{d:.2?} after its restart (within {CAUGHT_UP_BLOCKS} blocks of the leader)"
                ),
                None => "no".to_string(),
            },
        ]);
    }
    if let Some(v) = script.victim
        && o.scenario.degradation().is_some()
    {
        s.add_row([
            "hand-over before the kill".to_string(),
            match (handover, kill_at) {
                (Some((at, to)), Some(k)) => {
                    format!("node {v} -> {to}, {:.2?} before the kill", k - at)
                }
                _ => "none".to_string(),
            },
        ]);
    }
    s.add_row([
        "time without a leader (longest)".to_string(),
        format!("{without_leader:.2?}"),
    ]);
    s.add_row([
        "longest gap between commits".to_string(),
        format!("{commit_gap:.2?} ({fault_gap:.2?} around the fault)"),
    ]);
    s.add_row([
        "max RSS per node".to_string(),
        max_rss_mb
            .iter()
            .map(|(id, mb)| format!("node {id} {mb} MiB"))
            .collect::<Vec<_>>()
            .join(", "),
    ]);
    s.add_row([
        "every node at one head".to_string(),
        match &head {
            Some(h) => format!("{one_head_after:.2?} after the load, height {}", h.0),
            None => format!("not within {CATCH_UP:.0?} after the load"),
        },
    ]);
    s.add_row(["wall time".to_string(), format!("{:.2?}", t0.elapsed())]);
    println!("{s}");

    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["node", "role", "state", "height", "state_root"]);
    for ((id, v), m) in views.iter().zip(&nodes.members) {
        let field = |k: &str| {
            v.as_ref().map_or("-".to_string(), |v| match &v[k] {
                Value::String(s) => s.clone(),
                Value::Null => "-".to_string(),
                other => other.to_string(),
            })
        };
        t.add_row([
            id.to_string(),
            m.role.as_str().to_string(),
            field("state"),
            field("height"),
            field("state_root"),
        ]);
    }
    println!("{t}");

    if failed.is_empty() {
        let root = roots.first().cloned().unwrap_or_default();
        println!(
            "verdict: nothing lost: all {} acknowledged transactions committed exactly once on \
             all {n} nodes; one state root on every node ({root})",
            all_promised.len()
        );
    } else {
        for l in lost.iter().chain(&problems).take(20) {
            println!("  {l}");
        }
        println!("verdict: FAILED: {}", failed.join("; "));
    }

    // The labels and the JSON.
    let wall = |at: Instant| t0_wall + at.saturating_duration_since(t0).as_millis() as u64;
    let handovers: Vec<Value> = changes
        .iter()
        .map(|(at, from, to)| json!({"from": from, "to": to, "at_ms": wall(*at)}))
        .collect();
    let events = json!({
        "scenario": o.scenario.as_str(),
        "crashes": script.crashes.iter().map(|(id, at, kind)| json!({"node": id, "at_ms": wall(*at), "kind": kind})).collect::<Vec<_>>(),
        "faults": script.faults.iter().map(|f| json!({"node": f.node, "kind": f.kind, "at_ms": wall(f.at), "cleared_at_ms": f.cleared.map(wall)})).collect::<Vec<_>>(),
        "handovers": handovers,
    });
    let run_dir = if o.labels {
        let d = nodes
            .dir
            .join("chaos-runs")
            .join(format!("{}-{t0_wall}", o.scenario.as_str()));
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let p = d.join("events.json");
        std::fs::write(&p, serde_json::to_string_pretty(&events)? + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
        Some(d)
    } else {
        None
    };
    let json = json!({
        "scenario": o.scenario.as_str(),
        "passed": failed.is_empty(),
        "failures": failed,
        "problems": problems.iter().chain(&lost).take(50).collect::<Vec<_>>(),
        "nodes": n,
        "duration_s": load.as_secs_f64(),
        "started_at_ms": t0_wall,
        "exactly_once": lost.is_empty() && not_once.is_empty(),
        "one_state_root": roots.len() == 1,
        "one_head": head.is_some(),
        "height": head.as_ref().map(|h| h.0),
        "state_root": (roots.len() == 1).then(|| roots.first().cloned()).flatten(),
        "acknowledged": acked.len(),
        "acknowledged_by_overload": script.load_acked.len() + promised_load.len().saturating_sub(script.load_acked.len()),
        "confirmed": confirmed,
        "unresolved": unresolved,
        "lost": lost_count,
        "not_exactly_once": not_once.len(),
        "acknowledged_after_fault": acked_after_fault,
        "refused": refusals,
        "overload_refused": overload_refusals,
        "capacity_tps": script.capacity_tps,
        "overload": script.overload,
        "time_without_leader_ms": ms(without_leader),
        "longest_commit_gap_ms": ms(commit_gap),
        "commit_gap_around_fault_ms": ms(fault_gap),
        "latency_ms": {"p50": ms(percentile(&latencies, 0.5)), "p99": ms(percentile(&latencies, 0.99)), "max": ms(latencies.last().copied().unwrap_or_default())},
        "fault_window_latency_ms": {"p50": ms(percentile(&window_latencies, 0.5)), "p99": ms(percentile(&window_latencies, 0.99)), "count": window_latencies.len()},
        "fault_window_ms": {"start": ms(fault_start - t0), "end": ms(fault_end - t0)},
        "victim": script.victim,
        "handover_lead_ms": match (handover, kill_at) { (Some((at, _)), Some(k)) => json!(ms(k - at)), _ => Value::Null },
        "handover_to": handover.map(|(_, to)| to),
        "leader_before": leader_before,
        "leader_after": leader_after,
        "leader_changes": changes.len(),
        "caught_up_ms": script.caught_up.iter().map(|(id, d)| (id.to_string(), json!(ms(*d)))).collect::<serde_json::Map<_, _>>(),
        "max_rss_mb": max_rss_mb.iter().map(|(id, mb)| (id.to_string(), json!(mb))).collect::<serde_json::Map<_, _>>(),
        "rss_limit_mb": o.max_rss_mb,
        "leader_health": views.iter().map(|(id, v)| (id.to_string(), v.as_ref().map_or(Value::Null, |v| v["leader_health"].clone()))).collect::<serde_json::Map<_, _>>(),
        "events": events,
        "run_dir": run_dir.as_ref().map(|d| d.display().to_string()),
    });
    Ok(RunResult {
        passed: failed.is_empty(),
        json,
        run_dir,
    })
}

/// Writes `v` as pretty JSON to `path`.
fn write_json(path: &Path, v: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `aurigraph chaos run`.
pub fn run(args: &ChaosRunArgs) -> Result<()> {
    let common = &args.common;
    let mut nodes = Nodes::open(&common.dir)?;
    println!(
        "aurigraph chaos: {} on the cluster in {} ({} nodes): {CLIENTS} clients for {:.0?}, the \
         fault at {:.1?}",
        common.scenario.as_str(),
        common.dir.display(),
        nodes.members.len(),
        common.duration,
        common.duration / 3
    );
    let r = run_scenario(
        &mut nodes,
        &RunOpts::from_common(common, common.scenario, true),
    )?;
    let mut json = r.json;
    if args.export_telemetry
        && let Some(d) = &r.run_dir
    {
        json["telemetry"] = export_telemetry(&nodes, d);
    }
    let out = args.out.clone().unwrap_or_else(|| {
        common.dir.join(format!(
            "chaos-{}-{}.json",
            common.scenario.as_str(),
            wall_ms() / 1000
        ))
    });
    write_json(&out, &json)?;
    println!("the verdict as JSON: {}", out.display());
    if let Some(d) = &r.run_dir {
        println!("the run's labels: {}", d.join("events.json").display());
    }
    if !r.passed {
        bail!(
            "[E_CHAOS_VERDICT] the cluster lost or duplicated acknowledged transactions, or its nodes disagree, or a limit was passed (see above)"
        );
    }
    Ok(())
}

/// Each node's `leader_health` telemetry as CSV (node-ID.csv in `dir`), its database
/// opened read-only while the node runs: what was written per node.
fn export_telemetry(nodes: &Nodes, dir: &Path) -> Value {
    let mut out = serde_json::Map::new();
    for m in &nodes.members {
        let path = dir.join(format!("node-{}.csv", m.id));
        let opts = crate::export::ExportOptions {
            data_dir: m.data_dir.clone(),
            format: crate::export::Format::Csv,
            slot: Some(aurigraph_decision::SlotKind::LeaderHealth),
            from: None,
            to: None,
        };
        let v = match crate::export::run(&opts, Some(&path)) {
            Ok(sum) => json!({"file": path.display().to_string(), "decisions": sum.decisions}),
            Err(e) => {
                tracing::warn!("node {}: telemetry export failed: {e}", m.id);
                json!({"error": e.to_string()})
            }
        };
        out.insert(m.id.to_string(), v);
    }
    Value::Object(out)
}

// ---- `aurigraph chaos ab` ----

/// The median of `xs`, `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        f64::midpoint(v[m - 1], v[m])
    } else {
        v[m]
    })
}

/// A 95% bootstrap interval of the median of `xs` (1,000 resamples, seeded).
pub fn bootstrap_median(xs: &[f64], seed: u64) -> Option<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    if xs.is_empty() {
        return None;
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut meds: Vec<f64> = (0..1000)
        .filter_map(|_| {
            let s: Vec<f64> = (0..xs.len())
                .map(|_| xs[rng.random_range(0..xs.len())])
                .collect();
            median(&s)
        })
        .collect();
    meds.sort_by(f64::total_cmp);
    Some((meds[25], meds[974]))
}

/// `{"n", "median", "min", "max", "ci95"}` of `xs`.
fn summary(xs: &[f64]) -> Value {
    let min = xs.iter().copied().reduce(f64::min);
    let max = xs.iter().copied().reduce(f64::max);
    json!({
        "n": xs.len(),
        "median": median(xs),
        "min": min,
        "max": max,
        "ci95": bootstrap_median(xs, 7).map(|(a, b)| [a, b]),
    })
}

fn summary_text(v: &Value) -> String {
    if v["n"] == 0 {
        return "-".to_string();
    }
    format!(
        "median {:.0} [{:.0}, {:.0}] (95% bootstrap), min {:.0}, max {:.0}, n {}",
        v["median"].as_f64().unwrap_or(f64::NAN),
        v["ci95"][0].as_f64().unwrap_or(f64::NAN),
        v["ci95"][1].as_f64().unwrap_or(f64::NAN),
        v["min"].as_f64().unwrap_or(f64::NAN),
        v["max"].as_f64().unwrap_or(f64::NAN),
        v["n"]
    )
}

/// The model arm's candidate: `DIR/models/NAME` (copied from `--models` when missing) and
/// its version.
fn model_version(args: &ChaosAbArgs) -> Result<String> {
    let dst = args.common.dir.join("models").join(&args.model);
    if !dst.join("model.toml").is_file() {
        let src = args.models.join(&args.model);
        let entries = std::fs::read_dir(&src).with_context(|| {
            format!(
                "[E_NO_MODEL] no model {} in {}",
                args.model,
                args.models.display()
            )
        })?;
        std::fs::create_dir_all(&dst)
            .with_context(|| format!("cannot create {}", dst.display()))?;
        for e in entries {
            let e = e?;
            if e.file_type()?.is_file() {
                std::fs::copy(e.path(), dst.join(e.file_name()))
                    .with_context(|| format!("cannot copy {}", e.path().display()))?;
            }
        }
    }
    let text = std::fs::read_to_string(dst.join("model.toml"))
        .with_context(|| format!("cannot read {}", dst.join("model.toml").display()))?;
    let t: toml::Table = toml::from_str(&text).context("[E_MODEL] model.toml does not parse")?;
    Ok(match &t.get("version") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "1".to_string(),
    })
}

/// Puts every node's `leader_health` slot on an arm: `static` (the candidate rolled back)
/// or the model (loaded, then all decisions routed to it: a 100% canary, so that the next
/// static run can roll it back).
fn set_arm(nodes: &Nodes, model: Option<(&str, &str)>) -> Result<()> {
    match model {
        None => {
            // No candidate to roll back answers a refusal: static already.
            let _ = nodes.admin_all(
                "/v1/policies/leader_health/rollback",
                &json!({"reason": "chaos ab: the static arm"}),
            );
            Ok(())
        }
        Some((name, version)) => {
            let _ = nodes.admin_all(
                "/v1/policies/leader_health/rollback",
                &json!({"reason": "chaos ab: a new model arm"}),
            );
            nodes.admin_all(
                "/v1/policies/leader_health/load",
                &json!({"backend": "onnx", "name": name, "version": version}),
            )?;
            nodes.admin_all(
                "/v1/policies/leader_health/canary",
                &json!({"percent": 100.0}),
            )
        }
    }
}

/// Waits until every node of the cluster is back and follows one leader.
fn settle(nodes: &Nodes) -> Result<()> {
    let c = crate::cluster::http()?;
    let urls = nodes.urls();
    let deadline = Instant::now() + CATCH_UP;
    while Instant::now() < deadline {
        let leader = current_leader(&c, &urls);
        if leader.is_some()
            && urls
                .iter()
                .all(|u| cluster_view(&c, u).is_some_and(|v| v["leader"].as_u64() == leader))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("[E_CLUSTER_TIMEOUT] the cluster did not settle on one leader within {CATCH_UP:?}")
}

/// Runs `aurigraph chaos ab`.
pub fn ab(args: &ChaosAbArgs) -> Result<()> {
    let common = &args.common;
    let mut nodes = Nodes::open(&common.dir)?;
    let version = model_version(args)?;
    let arms = ["static", args.model.as_str()];
    let mut runs: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    let mut healthy: [Option<Value>; 2] = [None, None];
    for i in 0..args.runs {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for arm in order {
            settle(&nodes)?;
            set_arm(
                &nodes,
                (arm == 1).then_some((args.model.as_str(), version.as_str())),
            )?;
            println!(
                "chaos ab: run {} of {}, arm {}",
                i + 1,
                args.runs,
                arms[arm]
            );
            let r = run_scenario(
                &mut nodes,
                &RunOpts::from_common(common, common.scenario, true),
            )?;
            runs[arm].push(r.json);
        }
    }
    if args.healthy_minutes > 0.0 {
        for (arm, slot) in healthy.iter_mut().enumerate() {
            settle(&nodes)?;
            set_arm(
                &nodes,
                (arm == 1).then_some((args.model.as_str(), version.as_str())),
            )?;
            println!(
                "chaos ab: {} healthy minutes, arm {}",
                args.healthy_minutes, arms[arm]
            );
            let mut o = RunOpts::from_common(common, Scenario::None, true);
            o.duration = Duration::from_secs_f64(args.healthy_minutes * 60.0);
            let r = run_scenario(&mut nodes, &o)?;
            let changes = r.json["leader_changes"].as_u64().unwrap_or(0);
            *slot = Some(json!({
                "minutes": args.healthy_minutes,
                "handovers": changes,
                "per_hour": changes as f64 * 60.0 / args.healthy_minutes,
            }));
        }
    }
    let _ = set_arm(&nodes, None);

    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "arm",
        "unavailability per leader failure, ms",
        "hand-over lead time, ms",
        "false hand-overs / h",
        "verdicts",
    ]);
    let mut arms_json = Vec::new();
    for (arm, name) in arms.iter().enumerate() {
        let gaps: Vec<f64> = runs[arm]
            .iter()
            .filter_map(|r| r["commit_gap_around_fault_ms"].as_f64())
            .collect();
        let leads: Vec<f64> = runs[arm]
            .iter()
            .filter_map(|r| r["handover_lead_ms"].as_f64())
            .collect();
        let passed = runs[arm].iter().filter(|r| r["passed"] == true).count();
        let (g, l) = (summary(&gaps), summary(&leads));
        t.add_row([
            (*name).to_string(),
            summary_text(&g),
            format!(
                "{} ({} of {} runs handed over)",
                summary_text(&l),
                leads.len(),
                runs[arm].len()
            ),
            healthy[arm].as_ref().map_or("-".to_string(), |h| {
                format!("{:.1}", h["per_hour"].as_f64().unwrap_or(0.0))
            }),
            format!("{passed} of {} passed", runs[arm].len()),
        ]);
        arms_json.push(json!({
            "arm": name,
            "unavailability_ms": g,
            "handover_lead_ms": l,
            "handed_over": leads.len(),
            "healthy": healthy[arm],
            "passed": passed,
            "runs": runs[arm],
        }));
    }
    println!("{t}");
    let out = args.out.clone().unwrap_or_else(|| {
        common.dir.join(format!(
            "chaos-ab-{}-{}.json",
            common.scenario.as_str(),
            wall_ms() / 1000
        ))
    });
    let all_passed = runs.iter().flatten().all(|r| r["passed"] == true);
    write_json(
        &out,
        &json!({"scenario": common.scenario.as_str(), "model": args.model, "version": version, "runs_per_arm": args.runs, "arms": arms_json}),
    )?;
    println!("the comparison as JSON: {}", out.display());
    if !all_passed {
        bail!("[E_CHAOS_VERDICT] a run's verdict failed (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_changes_and_handovers_come_from_the_samples() {
        let t = Instant::now();
        let s = |ms: u64, l: Option<u64>| (t + Duration::from_millis(ms), l);
        let samples = [
            s(0, Some(1)),
            s(50, Some(1)),
            s(100, None),
            s(150, Some(2)),
            s(200, Some(2)),
            s(250, Some(3)),
        ];
        let ch = leader_changes(&samples);
        assert_eq!(
            ch.iter().map(|(_, f, to)| (*f, *to)).collect::<Vec<_>>(),
            [(1, 2), (2, 3)]
        );
        assert_eq!(
            handed_over(&samples, 1, t, t + Duration::from_millis(300)),
            Some((t + Duration::from_millis(150), 2))
        );
        assert_eq!(
            handed_over(&samples, 1, t, t + Duration::from_millis(100)),
            None
        );
        let flags: Vec<(Instant, bool)> = samples.iter().map(|(a, l)| (*a, l.is_some())).collect();
        assert_eq!(longest_without_leader(&flags), Duration::from_millis(50));
        let times: Vec<Instant> = samples.iter().map(|(a, _)| *a).rev().collect();
        assert_eq!(
            longest_gap(&times, t, t + Duration::from_millis(1000)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn the_verdict_wants_exactly_once_one_root_and_bounded_memory() {
        let promised = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let chain = |pairs: &[(&str, &[u64])]| -> HashMap<String, Vec<u64>> {
            pairs
                .iter()
                .map(|(h, v)| ((*h).to_string(), v.to_vec()))
                .collect()
        };
        let good = chain(&[("a", &[3]), ("b", &[4]), ("c", &[4])]);
        assert!(chain_problems(&promised, &[(1, good.clone()), (2, good.clone())]).is_empty());
        let twice = chain(&[("a", &[3, 5]), ("b", &[4]), ("c", &[4])]);
        let moved = chain(&[("a", &[3]), ("b", &[5])]);
        let p = chain_problems(&promised, &[(1, good), (2, twice), (3, moved)]);
        assert_eq!(
            p,
            [
                "a: 2 times in node 2's chain",
                "b: at heights {4, 5} on different nodes",
                "c: 0 times in node 3's chain"
            ]
        );

        let ok = Checks {
            roots: 1,
            one_head: true,
            acked: 10,
            acked_after_fault: 4,
            max_rss_mb: [(1, 300), (2, 310)].into(),
            rss_limit_mb: 2048,
            ..Checks::default()
        };
        assert!(failures(&ok).is_empty());
        let bad = Checks {
            lost: 1,
            roots: 2,
            acked_after_fault: 0,
            max_rss_mb: [(1, 3000)].into(),
            ..ok
        };
        assert_eq!(failures(&bad).len(), 4, "{:?}", failures(&bad));
    }

    #[test]
    fn medians_and_their_intervals() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let (lo, hi) = bootstrap_median(&[1.0, 2.0, 3.0, 4.0, 5.0], 1).expect("an interval");
        assert!(
            (1.0..=3.0).contains(&lo) && (3.0..=5.0).contains(&hi),
            "{lo} {hi}"
        );
    }
}
