//! `aurigraph cluster up|status|down`: a validator cluster on this machine, each validator
//! (and each business learner, `--learners`) an `aurigraph start` process on 127.0.0.1 with
//! its own folder under DIR.
//!
//! DIR holds `cluster.json` (each node's id, url, config, log and pid) and, per node,
//! `node-<id>/`: `aurigraph.toml` (a complete config: `aurigraph start --config` runs the
//! node alone), `data/`, `node.log` and `pid` while it runs. The nodes share empty
//! `DIR/models` and `DIR/plugins` folders, one admin token and the cluster secret (both in
//! every config, which is written readable by its owner only). They run on their configs
//! alone: no `AURIGRAPH_*` variable is passed on.
//!
//! Validators are ids 1 to N (node 1 bootstraps the cluster); learners are ids N+1 to N+M,
//! `role = "business"`, `bootstrap = false`, the validators as `members`: `up` adds each
//! through the leader's admin API (`POST /v1/cluster/learner`) unless the leader's
//! membership already holds it (a cluster started again), and returns once each has caught
//! up with the leader.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aurigraph_node::NodeConfig;
use aurigraph_node::config::{ClusterConfig, ClusterMember, NodeRole};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::args::{ClusterChangeArgs, ClusterDirArgs, ClusterStatusArgs, ClusterUpArgs};

/// Validators of a new cluster unless `--nodes` says otherwise.
const DEFAULT_NODES: u64 = 3;
/// Node N listens on 127.0.0.1:(DEFAULT_BASE_PORT+N-1) unless `--base-port` says otherwise.
const DEFAULT_BASE_PORT: u16 = 7601;
/// How long `up` waits for a leader and every node ready.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);
/// A learner has caught up when it applied the leader's last applied log entry but this
/// many at most.
const LEARNER_LAG: u64 = 2;

/// `DIR/cluster.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterFile {
    nodes: Vec<NodeEntry>,
}

/// One node of `DIR/cluster.json`.
#[derive(Debug, Serialize, Deserialize)]
struct NodeEntry {
    id: u64,
    /// `validator` or `business` (a learner); absent in the files of older clusters:
    /// validator.
    #[serde(default)]
    role: NodeRole,
    url: String,
    config: PathBuf,
    log: PathBuf,
    /// The running process; `null` once `down` stopped it.
    pid: Option<u32>,
}

impl NodeEntry {
    fn pid_file(&self) -> PathBuf {
        self.config.with_file_name("pid")
    }

    /// The pid of this node's process if it is running: from cluster.json, else the pid
    /// file.
    fn running_pid(&self) -> Option<u32> {
        let pid = self.pid.or_else(|| {
            fs::read_to_string(self.pid_file())
                .ok()
                .and_then(|s| s.trim().parse().ok())
        })?;
        alive(pid, &self.config).then_some(pid)
    }
}

fn cluster_file(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn node_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node-{id}"))
}

fn read_cluster(dir: &Path) -> Result<ClusterFile> {
    let path = cluster_file(dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "[E_NO_CLUSTER] {} holds no cluster ({} is missing; `aurigraph cluster up --dir` \
             makes one)",
            dir.display(),
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text)
        .with_context(|| format!("[E_CLUSTER_FILE] {} is not a cluster file", path.display()))
}

fn write_cluster(dir: &Path, c: &ClusterFile) -> Result<()> {
    let path = cluster_file(dir);
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(c)?;
    fs::write(&tmp, text + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Whether `pid` is a running (not zombie) process started with `config` on its command
/// line. Elsewhere than Linux: whether `kill -0 pid` succeeds.
#[cfg(target_os = "linux")]
fn alive(pid: u32, config: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X" | "x") | None) {
        return false;
    }
    let Ok(cmdline) = fs::read(proc.join("cmdline")) else {
        return false;
    };
    let want = config.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == want)
}

#[cfg(not(target_os = "linux"))]
fn alive(pid: u32, _config: &Path) -> bool {
    signal(pid, "0")
}

/// Sends `kill -SIG pid`; whether it was delivered.
pub(crate) fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

pub(crate) fn http() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .context("cannot build the HTTP client")
}

/// `GET url/v1/cluster`, `None` when the node does not answer 200 with JSON.
pub(crate) fn cluster_view(c: &reqwest::blocking::Client, url: &str) -> Option<Value> {
    let r = c.get(format!("{url}/v1/cluster")).send().ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().ok()
}

fn ready(c: &reqwest::blocking::Client, url: &str) -> bool {
    c.get(format!("{url}/readyz"))
        .send()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// The last `n` lines of a log file, indented, for an error message.
fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for l in &lines[lines.len().saturating_sub(n)..] {
        let _ = write!(out, "\n    {l}");
    }
    out
}

/// Where the nodes of a new cluster listen and what they share.
struct Layout<'a> {
    /// Validators: ids 1 to `validators`.
    validators: u64,
    base: u16,
    secret: &'a str,
    token: &'a str,
    /// `--chaos`: the fault API on, decision features recorded in full.
    chaos: bool,
}

/// The config of node `id` (a validator when `id <= validators`, else a business learner),
/// every path absolute under `dir`.
fn node_config(dir: &Path, id: u64, l: &Layout<'_>) -> NodeConfig {
    let (n, base, secret, token) = (l.validators, l.base, l.secret, l.token);
    let mut c = NodeConfig::default();
    let own = node_dir(dir, id);
    c.data_dir = own.join("data");
    c.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port(base, id)));
    c.admin.token = Some(token.to_string());
    c.policies.models_dir = dir.join("models");
    c.policies.plugins_dir = dir.join("plugins");
    c.cluster = ClusterConfig {
        node_id: id,
        role: if id <= n {
            NodeRole::Validator
        } else {
            NodeRole::Business
        },
        members: (1..=n)
            .map(|m| ClusterMember {
                id: m,
                addr: format!("127.0.0.1:{}", port(base, m)),
            })
            .collect(),
        bootstrap: id == 1,
        secret: Some(secret.to_string()),
        heartbeat_ms: 100,
        election_min_ms: 500,
        election_max_ms: 1_000,
        ..ClusterConfig::default()
    };
    if l.chaos {
        c.telemetry.features = aurigraph_node::config::FeatureRecording::Full;
    }
    c
}

/// `base + id - 1`; `up` checks the range before.
fn port(base: u16, id: u64) -> u16 {
    u16::try_from(u64::from(base) + id - 1).unwrap_or(u16::MAX)
}

/// Writes `config` to `path`, readable by its owner only (it holds the secret and token);
/// with `chaos`, its `[faults]` section says `enabled = true` (the node's fault-injection
/// API, `POST /v1/admin/faults`).
fn write_config(path: &Path, config: &NodeConfig, dir: &Path, chaos: bool) -> Result<()> {
    let mut table = toml::Table::try_from(config).context("cannot write the node's config")?;
    if chaos {
        let mut faults = toml::Table::new();
        faults.insert("enabled".into(), toml::Value::Boolean(true));
        table.insert("faults".into(), toml::Value::Table(faults));
    }
    let body = toml::to_string_pretty(&table).context("cannot write the node's config")?;
    // The text must read back as the same config.
    NodeConfig::parse(&body)
        .map_err(|e| anyhow::anyhow!("[E_CONFIG] the written config does not parse: {}", e.0))?;
    let text = format!(
        "# Node {} ({}) of the cluster in {} (written by `aurigraph cluster up`).\n\
         # Run alone: aurigraph start --config {}\n\n{body}",
        config.cluster.node_id,
        config.cluster.role.as_str(),
        dir.display(),
        path.display()
    );
    let mut open = fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut f = open
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Starts `aurigraph start --config CONFIG` in the background, its output appended to
/// `log`, in its own process group so that the terminal's Ctrl-C does not reach it.
fn spawn_node(config: &Path, log: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find the aurigraph binary")?;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(exe);
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
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .with_context(|| format!("cannot start the node of {}", config.display()))
}

/// What `up` builds on: the nodes of a stopped cluster already in DIR, or new ones.
fn plan(args: &ClusterUpArgs, dir: &Path) -> Result<ClusterFile> {
    if cluster_file(dir).exists() {
        let existing = read_cluster(dir)?;
        let running: Vec<String> = existing
            .nodes
            .iter()
            .filter_map(|n| n.running_pid().map(|p| format!("node {} (pid {p})", n.id)))
            .collect();
        if !running.is_empty() {
            bail!(
                "[E_CLUSTER_RUNNING] {} already holds a running cluster: {}; `aurigraph cluster \
                 down --dir {}` stops it",
                dir.display(),
                running.join(", "),
                dir.display()
            );
        }
        return restart_plan(args, dir, existing);
    }
    let n = args.nodes.unwrap_or(DEFAULT_NODES);
    let total = n + args.learners.unwrap_or(0);
    let base = args.base_port.unwrap_or(DEFAULT_BASE_PORT);
    if base == 0 || u64::from(base) + total - 1 > u64::from(u16::MAX) {
        bail!(
            "[E_USAGE] ports {base}..{} are not all valid",
            u64::from(base) + total - 1
        );
    }
    let secret = args.secret.clone().unwrap_or_else(random_hex);
    if secret.len() < 16 {
        bail!("[E_USAGE] --secret must be at least 16 characters");
    }
    check_ports(base, total)?;
    let token = random_hex();
    let layout = Layout {
        validators: n,
        base,
        secret: &secret,
        token: &token,
        chaos: args.chaos,
    };
    for sub in ["models", "plugins"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let mut nodes = Vec::new();
    for id in 1..=total {
        let own = node_dir(dir, id);
        fs::create_dir_all(&own).with_context(|| format!("cannot create {}", own.display()))?;
        let config = node_config(dir, id, &layout);
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("node {id}'s config: {e}"))?;
        let path = own.join("aurigraph.toml");
        write_config(&path, &config, dir, args.chaos)?;
        nodes.push(NodeEntry {
            id,
            role: config.cluster.role,
            url: format!("http://{}", config.listen),
            config: path,
            log: own.join("node.log"),
            pid: None,
        });
    }
    Ok(ClusterFile { nodes })
}

/// The stopped cluster of DIR, started again from its configs when the flags agree with it.
fn restart_plan(args: &ClusterUpArgs, dir: &Path, existing: ClusterFile) -> Result<ClusterFile> {
    let exists = |what: String| -> anyhow::Error {
        anyhow::anyhow!(
            "[E_CLUSTER_EXISTS] {} holds a stopped cluster {what}; `aurigraph cluster up --dir \
             {}` without other flags starts it again, or use another folder",
            dir.display(),
            dir.display()
        )
    };
    let n = existing
        .nodes
        .iter()
        .filter(|node| node.role == NodeRole::Validator)
        .count() as u64;
    let m = existing.nodes.len() as u64 - n;
    if let Some(want) = args.nodes
        && want != n
    {
        return Err(exists(format!("of {n} validators, not {want}")));
    }
    if let Some(want) = args.learners
        && want != m
    {
        return Err(exists(format!("with {m} learners, not {want}")));
    }
    let mut first_port = None;
    for node in &existing.nodes {
        let c = load_config(&node.config)?;
        if node.id == 1 {
            first_port = Some(c.listen.port());
        }
        if let Err(e) = TcpListener::bind(c.listen) {
            bail!(
                "[E_PORT_IN_USE] {} (node {}) cannot be bound ({e}); it is in {}",
                c.listen,
                node.id,
                node.config.display()
            );
        }
        if let Some(s) = &args.secret
            && c.cluster.secret.as_deref() != Some(s.as_str())
        {
            return Err(exists("with another secret".to_string()));
        }
    }
    if let (Some(want), Some(have)) = (args.base_port, first_port)
        && want != have
    {
        return Err(exists(format!("on base port {have}")));
    }
    Ok(existing)
}

/// Reads a node config file as `aurigraph start --config` does, without the environment.
fn load_config(path: &Path) -> Result<NodeConfig> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    NodeConfig::parse(&text).map_err(|e| anyhow::anyhow!("[E_CONFIG] {}: {}", path.display(), e.0))
}

/// Refuses when one of ports `base..base+n` on 127.0.0.1 is taken.
fn check_ports(base: u16, n: u64) -> Result<()> {
    for id in 1..=n {
        let p = port(base, id);
        if let Err(e) = TcpListener::bind(("127.0.0.1", p)) {
            bail!(
                "[E_PORT_IN_USE] 127.0.0.1:{p} (node {id}) cannot be bound ({e}); choose another \
                 --base-port"
            );
        }
    }
    Ok(())
}

/// A cluster `up` started (or started again): its folder, its nodes, the processes it
/// spawned, and the leader they agreed on.
pub(crate) struct Started {
    /// The cluster's folder, absolute.
    pub(crate) dir: PathBuf,
    cluster: ClusterFile,
    /// The node processes, by node id (their pids are in cluster.json too).
    pub(crate) children: Vec<(u64, Child)>,
    /// The leader once every node was up.
    pub(crate) leader: u64,
    /// Its term.
    pub(crate) term: u64,
    /// Whether DIR held a stopped cluster, started again.
    pub(crate) restarted: bool,
}

/// One node of a started cluster, as the demo sees it.
pub(crate) struct NodeInfo {
    pub(crate) id: u64,
    pub(crate) role: NodeRole,
    pub(crate) url: String,
}

impl Started {
    /// The nodes, in id order.
    pub(crate) fn nodes(&self) -> Vec<NodeInfo> {
        self.cluster
            .nodes
            .iter()
            .map(|n| NodeInfo {
                id: n.id,
                role: n.role,
                url: n.url.clone(),
            })
            .collect()
    }
}

/// Runs `aurigraph cluster up`.
pub fn up(args: &ClusterUpArgs) -> Result<()> {
    let started = start(args)?;
    let (dir, leader) = (&started.dir, started.leader);
    let learners = started
        .cluster
        .nodes
        .iter()
        .filter(|n| n.role != NodeRole::Validator)
        .count();
    println!(
        "aurigraph cluster: {} validators{} in {}{}, leader node {leader} (term {})",
        started.cluster.nodes.len() - learners,
        match learners {
            0 => String::new(),
            1 => " and 1 business learner".to_string(),
            m => format!(" and {m} business learners"),
        },
        dir.display(),
        if started.restarted {
            " (started again from their data)"
        } else {
            ""
        },
        started.term
    );
    for node in &started.cluster.nodes {
        println!(
            "  node {}  {}  {}  pid {}  {}{}",
            node.id,
            node.role.as_str(),
            node.url,
            node.pid.unwrap_or(0),
            node.log.display(),
            if node.id == leader { "  (leader)" } else { "" }
        );
    }
    println!(
        "admin token and secret: in each node's aurigraph.toml\n\
         aurigraph cluster status --dir {0}; aurigraph cluster down --dir {0}",
        dir.display()
    );
    Ok(())
}

/// What `aurigraph cluster up` does, without printing: plans the nodes (new, or the stopped
/// cluster of DIR), starts them, waits for a leader every validator follows, adds the
/// learners the leader's membership lacks and waits for them to catch up. On a failure the
/// nodes it started are stopped.
pub(crate) fn start(args: &ClusterUpArgs) -> Result<Started> {
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let restarted = cluster_file(&dir).exists();
    let mut cluster = plan(args, &dir)?;

    let mut children = Vec::new();
    if let Err(e) = spawn_all(&dir, &mut cluster, &mut children) {
        stop_children(&mut children);
        return Err(e);
    }

    let up = wait_up(&cluster, &mut children)
        .and_then(|(leader, term)| join_learners(&cluster, &mut children, leader, term));
    let (leader, term) = match up {
        Ok(lt) => lt,
        Err(e) => {
            eprintln!(
                "the cluster in {} did not come up: stopping its nodes",
                dir.display()
            );
            stop_children(&mut children);
            for node in &mut cluster.nodes {
                let _ = fs::remove_file(node.pid_file());
                node.pid = None;
            }
            let _ = write_cluster(&dir, &cluster);
            return Err(e);
        }
    };
    Ok(Started {
        dir,
        cluster,
        children,
        leader,
        term,
        restarted,
    })
}

/// Starts node `id` of the cluster in `dir` again from its config (after a crash, say),
/// recording its pid in its pid file and in cluster.json (so that `down` stops it).
pub(crate) fn restart_node(dir: &Path, id: u64) -> Result<Child> {
    let mut cluster = read_cluster(dir)?;
    let node = cluster
        .nodes
        .iter_mut()
        .find(|n| n.id == id)
        .with_context(|| {
            format!(
                "[E_NO_NODE] the cluster in {} has no node {id}",
                dir.display()
            )
        })?;
    if let Some(pid) = node.running_pid() {
        bail!("[E_CLUSTER_RUNNING] node {id} already runs (pid {pid})");
    }
    let child = spawn_node(&node.config, &node.log)?;
    let pid = child.id();
    node.pid = Some(pid);
    fs::write(node.pid_file(), format!("{pid}\n"))
        .with_context(|| format!("cannot write {}", node.pid_file().display()))?;
    write_cluster(dir, &cluster)?;
    Ok(child)
}

/// One node of the cluster in a folder, as `aurigraph chaos` drives it.
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) role: NodeRole,
    pub(crate) url: String,
    /// Its data dir (from its config).
    pub(crate) data_dir: PathBuf,
}

/// The nodes of the cluster in `dir` (validators and learners, in id order) and its admin
/// token.
pub(crate) fn members(dir: &Path) -> Result<(Vec<Member>, String)> {
    let cluster = read_cluster(dir)?;
    let mut token = None;
    let mut out = Vec::new();
    for n in &cluster.nodes {
        let c = load_config(&n.config)?;
        token = token.or(c.admin.token.clone());
        out.push(Member {
            id: n.id,
            role: n.role,
            url: n.url.clone(),
            data_dir: c.data_dir,
        });
    }
    let token = token
        .with_context(|| format!("[E_CONFIG] no node of {} has an admin.token", dir.display()))?;
    Ok((out, token))
}

/// The pid of node `id` of the cluster in `dir` when it is running.
pub(crate) fn node_pid(dir: &Path, id: u64) -> Option<u32> {
    read_cluster(dir)
        .ok()?
        .nodes
        .iter()
        .find(|n| n.id == id)?
        .running_pid()
}

/// A base port from which `n` consecutive ports on 127.0.0.1 bind now, in 20000..60000.
pub(crate) fn free_base(n: u64) -> Result<u16> {
    for _ in 0..200 {
        let base = 20_000 + rand::random::<u16>() % 40_000;
        if (1..=n).all(|id| TcpListener::bind(("127.0.0.1", port(base, id))).is_ok()) {
            return Ok(base);
        }
    }
    bail!("[E_PORT_IN_USE] found no {n} consecutive free ports in 20000..60000")
}

/// Starts every node of `cluster`, recording each pid in its pid file and in cluster.json.
fn spawn_all(
    dir: &Path,
    cluster: &mut ClusterFile,
    children: &mut Vec<(u64, Child)>,
) -> Result<()> {
    for node in &mut cluster.nodes {
        let child = spawn_node(&node.config, &node.log)?;
        let pid = child.id();
        node.pid = Some(pid);
        children.push((node.id, child));
        fs::write(node.pid_file(), format!("{pid}\n"))
            .with_context(|| format!("cannot write {}", node.pid_file().display()))?;
    }
    write_cluster(dir, cluster)
}

/// Fails when one of the node processes `up` started has exited.
fn check_children(cluster: &ClusterFile, children: &mut [(u64, Child)]) -> Result<()> {
    for (id, child) in children.iter_mut() {
        if let Some(status) = child.try_wait().context("cannot check a node's process")? {
            let log = cluster
                .nodes
                .iter()
                .find(|n| n.id == *id)
                .map(|n| n.log.clone())
                .unwrap_or_default();
            bail!(exited(*id, status, &log));
        }
    }
    Ok(())
}

fn timed_out(cluster: &ClusterFile, waiting_for: Option<String>) -> anyhow::Error {
    let logs: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.log.display().to_string())
        .collect();
    anyhow::anyhow!(
        "[E_CLUSTER_TIMEOUT] still waiting for {} after {} s; the logs: {}",
        waiting_for.unwrap_or_default(),
        UP_TIMEOUT.as_secs(),
        logs.join(", ")
    )
}

/// Waits until every validator answers /readyz 200 and agrees on a leader that says it
/// leads; that leader and its term.
fn wait_up(cluster: &ClusterFile, children: &mut [(u64, Child)]) -> Result<(u64, u64)> {
    let c = http()?;
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        check_children(cluster, children)?;
        let waiting_for = match validator_views(&c, cluster) {
            Err(why) => why,
            Ok(views) => match agreed_leader(&views) {
                Some(lt) => return Ok(lt),
                None => "a leader every validator knows".to_string(),
            },
        };
        if Instant::now() >= deadline {
            return Err(timed_out(cluster, Some(waiting_for)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every validator's `/v1/cluster` view once each answers /readyz 200; else what is awaited.
fn validator_views(
    c: &reqwest::blocking::Client,
    cluster: &ClusterFile,
) -> Result<Vec<(u64, Value)>, String> {
    let mut views = Vec::new();
    for node in cluster
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::Validator)
    {
        if !ready(c, &node.url) {
            return Err(format!("node {} to answer /readyz 200", node.id));
        }
        match cluster_view(c, &node.url) {
            Some(v) => views.push((node.id, v)),
            None => return Err(format!("node {} to answer /v1/cluster", node.id)),
        }
    }
    Ok(views)
}

/// Adds each learner of `cluster` that the leader's membership lacks (`POST
/// /v1/cluster/learner` on the leader), then waits until each answers /readyz 200, follows
/// the leader as a learner and has applied the leader's last applied entry (but
/// [`LEARNER_LAG`]). The leader and its term (they may change meanwhile).
fn join_learners(
    cluster: &ClusterFile,
    children: &mut [(u64, Child)],
    mut leader: u64,
    mut term: u64,
) -> Result<(u64, u64)> {
    let learners: Vec<&NodeEntry> = cluster
        .nodes
        .iter()
        .filter(|n| n.role != NodeRole::Validator)
        .collect();
    let Some(first) = learners.first() else {
        return Ok((leader, term));
    };
    let token = load_config(&first.config)?.admin.token.with_context(|| {
        format!(
            "[E_CONFIG] {} has no admin.token to add the learners with",
            first.config.display()
        )
    })?;
    let c = http()?;
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        check_children(cluster, children)?;
        let Some(waiting_for) = learners_ready(&c, cluster, &learners, leader, &token)? else {
            return Ok((leader, term));
        };
        // The leader may have changed: find the one the validators agree on.
        if let Ok(views) = validator_views(&c, cluster)
            && let Some((l, t)) = agreed_leader(&views)
        {
            (leader, term) = (l, t);
        }
        if Instant::now() >= deadline {
            return Err(timed_out(cluster, Some(waiting_for)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One round of [`join_learners`]: `None` once every learner caught up, else what is
/// awaited; an error for a refusal no retry mends (a wrong token, say).
fn learners_ready(
    c: &reqwest::blocking::Client,
    cluster: &ClusterFile,
    learners: &[&NodeEntry],
    leader: u64,
    token: &str,
) -> Result<Option<String>> {
    let Some(url) = cluster
        .nodes
        .iter()
        .find(|n| n.id == leader)
        .map(|n| n.url.as_str())
    else {
        bail!("[E_CLUSTER_FILE] the leader, node {leader}, is not in cluster.json");
    };
    let Some(lv) = cluster_view(c, url).filter(|v| v["state"] == "leader") else {
        return Ok(Some(format!(
            "node {leader} to answer /v1/cluster as the leader"
        )));
    };
    let members: Vec<u64> = lv["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default();
    for l in learners {
        if members.contains(&l.id) {
            continue;
        }
        let addr = l.url.trim_start_matches("http://");
        let r = c
            .post(format!("{url}/v1/cluster/learner"))
            .bearer_auth(token)
            .json(&json!({"id": l.id, "addr": addr}))
            .send();
        match r {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let status = r.status();
                let body = r.text().unwrap_or_default();
                // A wrong token or a malformed request: no retry mends it.
                if matches!(status.as_u16(), 400 | 401 | 403 | 404) {
                    bail!(
                        "[E_ADD_LEARNER] node {leader} refused to add node {} as a learner                          ({status}): {body}",
                        l.id
                    );
                }
                return Ok(Some(format!(
                    "node {} to be added as a learner (node {leader} answered {status}: {body})",
                    l.id
                )));
            }
            Err(e) => {
                return Ok(Some(format!(
                    "node {} to be added as a learner (node {leader}: {e})",
                    l.id
                )));
            }
        }
    }
    let target = lv["last_applied"].as_u64().unwrap_or(0);
    for l in learners {
        if !ready(c, &l.url) {
            return Ok(Some(format!("node {} to answer /readyz 200", l.id)));
        }
        let Some(v) = cluster_view(c, &l.url) else {
            return Ok(Some(format!("node {} to answer /v1/cluster", l.id)));
        };
        if v["state"] != "learner" || v["leader"].as_u64() != Some(leader) {
            return Ok(Some(format!(
                "node {} to follow node {leader} as a learner (it says {}, leader {})",
                l.id, v["state"], v["leader"]
            )));
        }
        let applied = v["last_applied"].as_u64().unwrap_or(0);
        if applied + LEARNER_LAG < target {
            return Ok(Some(format!(
                "node {} to catch up with the leader (applied {applied} of {target})",
                l.id
            )));
        }
    }
    Ok(None)
}

fn exited(id: u64, status: ExitStatus, log: &Path) -> String {
    format!(
        "[E_NODE_EXITED] node {id} exited ({status}) while starting; its log, {}, ends:{}",
        log.display(),
        log_tail(log, 8)
    )
}

/// The leader every view (of the validators) names, if that node's own view says it leads
/// and every other node is its follower (the membership reached it: until then a new
/// replica reports `learner`), with its term.
fn agreed_leader(views: &[(u64, Value)]) -> Option<(u64, u64)> {
    let leader = views.first()?.1["leader"].as_u64()?;
    if views.iter().any(|(id, v)| {
        v["leader"].as_u64() != Some(leader) || (*id != leader && v["state"] != "follower")
    }) {
        return None;
    }
    let (_, lv) = views.iter().find(|(id, _)| *id == leader)?;
    (lv["state"] == "leader").then(|| (leader, lv["term"].as_u64().unwrap_or(0)))
}

/// SIGTERM to the children `up` started, SIGKILL to those still there after the grace.
fn stop_children(children: &mut [(u64, Child)]) {
    for (_, child) in children.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            signal(child.id(), "TERM");
        }
    }
    let deadline = Instant::now() + TERM_GRACE;
    for (_, child) in children.iter_mut() {
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One node as `status` shows it.
struct NodeStatus<'a> {
    node: &'a NodeEntry,
    pid: Option<u32>,
    view: Option<Value>,
}

/// Runs `aurigraph cluster status`.
pub fn status(args: &ClusterStatusArgs) -> Result<()> {
    let cluster = read_cluster(&args.dir)?;
    let c = http()?;
    let nodes: Vec<NodeStatus> = cluster
        .nodes
        .iter()
        .map(|node| {
            let pid = node.running_pid();
            let view = pid.and_then(|_| cluster_view(&c, &node.url));
            NodeStatus { node, pid, view }
        })
        .collect();
    // The leader: the up node that says it leads, the highest term first.
    let leader = nodes
        .iter()
        .filter_map(|n| n.view.as_ref().map(|v| (n.node.id, v)))
        .filter(|(_, v)| v["state"] == "leader")
        .max_by_key(|(_, v)| v["term"].as_u64().unwrap_or(0));
    let term = match leader {
        Some((_, v)) => v["term"].as_u64(),
        None => nodes
            .iter()
            .filter_map(|n| n.view.as_ref()?["term"].as_u64())
            .max(),
    };
    let leader_log = leader.map(|(_, v)| v["last_log"].as_u64().unwrap_or(0));
    let rows: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let v = n.view.as_ref();
            let lag = match (leader_log, v) {
                (Some(last), Some(v)) => {
                    json!(last.saturating_sub(v["last_applied"].as_u64().unwrap_or(0)))
                }
                _ => Value::Null,
            };
            json!({
                "id": n.node.id,
                "role": n.node.role.as_str(),
                "url": n.node.url,
                "pid": n.pid,
                "state": v.map_or(json!("down"), |v| v["state"].clone()),
                "height": v.map_or(Value::Null, |v| v["height"].clone()),
                "state_root": v.map_or(Value::Null, |v| v["state_root"].clone()),
                "lag": lag,
            })
        })
        .collect();
    let leader_id = leader.map(|(id, _)| id);
    if args.json {
        let out = json!({"leader": leader_id, "term": term, "nodes": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "id",
        "role",
        "url",
        "pid",
        "state",
        "height",
        "state_root",
        "lag",
    ]);
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for r in &rows {
        let root = text(&r["state_root"]);
        t.add_row([
            text(&r["id"]),
            text(&r["role"]),
            text(&r["url"]),
            text(&r["pid"]),
            text(&r["state"]),
            text(&r["height"]),
            root.chars().take(12).collect(),
            text(&r["lag"]),
        ]);
    }
    println!("{t}");
    match leader_id {
        Some(id) => println!("leader: node {id}, term {}", term.unwrap_or(0)),
        None => println!(
            "leader: none known{}",
            term.map(|t| format!(" (highest term {t})"))
                .unwrap_or_default()
        ),
    }
    for n in &nodes {
        if let Some(why) = n.view.as_ref().and_then(|v| v["stopped"].as_str()) {
            println!("node {}: its Raft stopped: {why}", n.node.id);
        }
    }
    Ok(())
}

/// Runs `aurigraph cluster down`.
pub fn down(args: &ClusterDirArgs) -> Result<()> {
    let mut cluster = read_cluster(&args.dir)?;
    let mut stopping = Vec::new();
    for node in &cluster.nodes {
        match node.running_pid() {
            Some(pid) => {
                signal(pid, "TERM");
                stopping.push((node, pid));
            }
            None => println!("node {}: not running", node.id),
        }
    }
    let deadline = Instant::now() + TERM_GRACE;
    while stopping.iter().any(|(n, pid)| alive(*pid, &n.config)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (node, pid) in &stopping {
        if alive(*pid, &node.config) {
            signal(*pid, "KILL");
            println!(
                "node {} (pid {pid}): killed, still running {} s after SIGTERM",
                node.id,
                TERM_GRACE.as_secs()
            );
        } else {
            println!("node {} (pid {pid}): stopped", node.id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let left = loop {
        let left: Vec<String> = stopping
            .iter()
            .filter(|(n, pid)| alive(*pid, &n.config))
            .map(|(n, pid)| format!("node {} (pid {pid})", n.id))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !left.is_empty() {
        bail!("[E_STOP] still running after SIGKILL: {}", left.join(", "));
    }
    for node in &mut cluster.nodes {
        match fs::remove_file(node.pid_file()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot remove {}", node.pid_file().display()));
            }
        }
        node.pid = None;
    }
    write_cluster(&args.dir, &cluster)
}

/// `aurigraph cluster add-learner|promote|remove|transfer`: `POST /v1/cluster/{action}` on the
/// leader (found through `GET /v1/cluster` on the nodes of `--dir`, or on `--node`), with the
/// admin token; prints the leader's view after the change.
pub fn change(action: &str, args: &ClusterChangeArgs) -> Result<()> {
    let (urls, token) = match &args.dir {
        Some(dir) => {
            let cluster = read_cluster(dir)?;
            let first = cluster
                .nodes
                .first()
                .with_context(|| format!("[E_CLUSTER_FILE] {} lists no node", dir.display()))?;
            let token = load_config(&first.config)?.admin.token.with_context(|| {
                format!("[E_CONFIG] {} has no admin.token", first.config.display())
            })?;
            (cluster.nodes.iter().map(|n| n.url.clone()).collect(), token)
        }
        None => {
            let node = args
                .node
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:7600".to_string());
            let token = args.token.clone().context(
                "[E_NO_TOKEN] the admin token is needed: --token or AURIGRAPH_ADMIN_TOKEN (or --dir)",
            )?;
            (vec![node.trim_end_matches('/').to_string()], token)
        }
    };
    let body = match action {
        "learner" => {
            let addr = args
                .addr
                .as_deref()
                .context("[E_MISSING_FIELD] add-learner needs --addr HOST:PORT")?;
            json!({"id": args.id, "addr": addr.trim_start_matches("http://")})
        }
        _ => json!({"id": args.id}),
    };
    let c = http()?;
    let leader = urls
        .iter()
        .find_map(|u| {
            let v = cluster_view(&c, u)?;
            let id = v["leader"].as_u64()?;
            v["members"]
                .as_array()?
                .iter()
                .find(|m| m["id"].as_u64() == Some(id))
                .and_then(|m| m["url"].as_str())
                .map(str::to_string)
        })
        .with_context(|| {
            format!(
                "[E_NOT_LEADER] no node of {} knows a leader (is the cluster up?)",
                urls.join(", ")
            )
        })?;
    let slow = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let r = slow
        .post(format!("{leader}/v1/cluster/{action}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .with_context(|| format!("[E_UNREACHABLE] the leader at {leader} did not answer"))?;
    let status = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "[{}] {} (the leader at {leader} answered {status})",
            v["error"]["code"].as_str().unwrap_or("E_CLUSTER_CHANGE"),
            v["error"]["message"].as_str().unwrap_or("refused")
        );
    }
    println!(
        "{action} {}: done; leader {}, term {}, members {}",
        args.id,
        v["leader"],
        v["term"],
        v["members"]
            .as_array()
            .map(|m| m
                .iter()
                .filter_map(|m| m["id"].as_u64())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","))
            .unwrap_or_default()
    );
    Ok(())
}
