//! **Fault injection, for tests and chaos runs; never in a production config.** A node
//! started with `[faults] enabled = true` serves `POST /v1/admin/faults` (admin token), which
//! degrades this node the way failing machines do, so the `leader_health` slot and the chaos
//! suite (`aurigraph chaos run`) see failures that give warning:
//!
//! | `kind` | what it does | fields (defaults) |
//! |---|---|---|
//! | `disk_slow` | each Raft log append is held `start_ms + growth_ms_per_s x seconds since` (at most `max_ms`) before its synced write: a disk whose fsync latency grows | `start_ms` 2, `growth_ms_per_s` 100, `max_ms` 3,000 |
//! | `cpu_starve` | every `every_ms`, each worker thread of the node's runtime is blocked for `stall_ms + growth_ms_per_s x seconds since` (at most `every_ms`): the node's tasks wait as on a starved CPU, without taking CPU from other processes | `stall_ms` 10, `every_ms` 100, `growth_ms_per_s` 20 |
//! | `net_flaky` | every Raft RPC this node sends is held `delay_ms + growth_ms_per_s x seconds since` (at most `max_ms`) and dropped with probability `loss` | `delay_ms` 5, `growth_ms_per_s` 30, `max_ms` 2,000, `loss` 0.02 |
//! | `partition` | every Raft RPC this node sends fails, and its Raft service refuses every call: it is cut off from every peer | |
//! | `mem_leak` | allocates (and touches) `mb_per_s` MB each second and keeps it; at `crash_at_mb` it aborts the process, as the kernel's OOM killer would end it | `mb_per_s` 64, `crash_at_mb` 768 |
//! | `clear` | lifts every fault (memory leaked so far is freed) | |
//!
//! A `kind` already active is restarted with the new fields. `GET /v1/admin/faults` lists
//! what is active. A node started without `[faults] enabled` refuses both with
//! `E_FAULTS_DISABLED`; a body that does not parse is refused with `E_BAD_FAULT`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aurigraph_consensus::faults::FaultyLinks;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// `[faults]`: whether the fault-injection API is served (tests and chaos runs only).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsConfig {
    /// Serve `POST /v1/admin/faults`. Default false; never in production.
    pub enabled: bool,
}

/// One fault as `POST /v1/admin/faults` takes it (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultSpec {
    /// A disk whose append latency grows.
    DiskSlow {
        /// Delay at the start, ms.
        #[serde(default = "two")]
        start_ms: f64,
        /// Growth per second, ms.
        #[serde(default = "hundred")]
        growth_ms_per_s: f64,
        /// Ceiling, ms.
        #[serde(default = "three_thousand")]
        max_ms: f64,
    },
    /// The node's runtime workers stalled periodically.
    CpuStarve {
        /// Stall at the start, ms.
        #[serde(default = "ten")]
        stall_ms: f64,
        /// Period, ms.
        #[serde(default = "hundred")]
        every_ms: f64,
        /// Growth of the stall per second, ms.
        #[serde(default = "twenty")]
        growth_ms_per_s: f64,
    },
    /// Outgoing Raft RPCs delayed (growing) and lost.
    NetFlaky {
        /// Delay at the start, ms.
        #[serde(default = "five")]
        delay_ms: f64,
        /// Growth per second, ms.
        #[serde(default = "thirty")]
        growth_ms_per_s: f64,
        /// Ceiling, ms.
        #[serde(default = "two_thousand")]
        max_ms: f64,
        /// Loss probability per RPC.
        #[serde(default = "loss")]
        loss: f64,
    },
    /// Cut off from every peer.
    Partition {},
    /// Memory allocated and kept, then an abort.
    MemLeak {
        /// MB per second.
        #[serde(default = "sixty_four")]
        mb_per_s: f64,
        /// Abort at this many MB leaked.
        #[serde(default = "crash_at")]
        crash_at_mb: f64,
    },
    /// Lift every fault.
    Clear {},
}

fn two() -> f64 {
    2.0
}
fn five() -> f64 {
    5.0
}
fn ten() -> f64 {
    10.0
}
fn twenty() -> f64 {
    20.0
}
fn thirty() -> f64 {
    30.0
}
fn sixty_four() -> f64 {
    64.0
}
fn hundred() -> f64 {
    100.0
}
fn two_thousand() -> f64 {
    2_000.0
}
fn three_thousand() -> f64 {
    3_000.0
}
fn crash_at() -> f64 {
    768.0
}
fn loss() -> f64 {
    0.02
}

impl FaultSpec {
    /// Its `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::DiskSlow { .. } => "disk_slow",
            FaultSpec::CpuStarve { .. } => "cpu_starve",
            FaultSpec::NetFlaky { .. } => "net_flaky",
            FaultSpec::Partition {} => "partition",
            FaultSpec::MemLeak { .. } => "mem_leak",
            FaultSpec::Clear {} => "clear",
        }
    }

    /// Checks the fields: finite, non-negative, a loss in 0..=1, a period of at least 1 ms.
    pub fn validate(&self) -> Result<(), String> {
        let fields: Vec<(&str, f64)> = match *self {
            FaultSpec::DiskSlow {
                start_ms,
                growth_ms_per_s,
                max_ms,
            } => vec![
                ("start_ms", start_ms),
                ("growth_ms_per_s", growth_ms_per_s),
                ("max_ms", max_ms),
            ],
            FaultSpec::CpuStarve {
                stall_ms,
                every_ms,
                growth_ms_per_s,
            } => {
                if every_ms.is_finite() && every_ms < 1.0 {
                    return Err("every_ms must be at least 1".into());
                }
                vec![
                    ("stall_ms", stall_ms),
                    ("every_ms", every_ms),
                    ("growth_ms_per_s", growth_ms_per_s),
                ]
            }
            FaultSpec::NetFlaky {
                delay_ms,
                growth_ms_per_s,
                max_ms,
                loss,
            } => {
                if !(0.0..=1.0).contains(&loss) {
                    return Err("loss must be in 0..=1".into());
                }
                vec![
                    ("delay_ms", delay_ms),
                    ("growth_ms_per_s", growth_ms_per_s),
                    ("max_ms", max_ms),
                ]
            }
            FaultSpec::MemLeak {
                mb_per_s,
                crash_at_mb,
            } => vec![("mb_per_s", mb_per_s), ("crash_at_mb", crash_at_mb)],
            FaultSpec::Partition {} | FaultSpec::Clear {} => Vec::new(),
        };
        for (name, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a finite number >= 0"));
            }
        }
        Ok(())
    }
}

/// An active fault and since when.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveFault {
    /// The fault as given.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Wall clock when it started, ms since the Unix epoch.
    pub since_ms: u64,
    #[serde(skip)]
    started: Instant,
}

impl ActiveFault {
    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

fn grown(start: f64, per_s: f64, secs: f64, max: f64) -> Duration {
    Duration::from_secs_f64((start + per_s * secs).min(max).max(0.0) / 1e3)
}

/// The faults injected into this node (see the module docs).
pub struct FaultInjector {
    me: u64,
    links: Arc<FaultyLinks>,
    peers: Mutex<Vec<u64>>,
    active: Mutex<Vec<ActiveFault>>,
    leaked: Mutex<Vec<Vec<u8>>>,
    /// Bumped by every change, so background loops of a replaced fault stop.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector")
            .field("me", &self.me)
            .field("active", &*self.active.lock())
            .finish_non_exhaustive()
    }
}

impl FaultInjector {
    /// No fault active, for replica `me`.
    pub fn new(me: u64) -> Self {
        Self {
            me,
            links: Arc::new(FaultyLinks::new()),
            peers: Mutex::new(Vec::new()),
            active: Mutex::new(Vec::new()),
            leaked: Mutex::new(Vec::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The link table the replica's network and Raft service consult.
    pub fn links(&self) -> Arc<FaultyLinks> {
        self.links.clone()
    }

    /// The active faults.
    pub fn active(&self) -> Vec<ActiveFault> {
        self.active.lock().clone()
    }

    fn find(&self, kind: &str) -> Option<ActiveFault> {
        self.active
            .lock()
            .iter()
            .find(|a| a.spec.kind() == kind)
            .cloned()
    }

    /// How long to hold a log append now (`disk_slow`).
    pub fn disk_delay(&self) -> Duration {
        match self.find("disk_slow") {
            Some(a) => match a.spec {
                FaultSpec::DiskSlow {
                    start_ms,
                    growth_ms_per_s,
                    max_ms,
                } => grown(start_ms, growth_ms_per_s, a.secs(), max_ms),
                _ => Duration::ZERO,
            },
            None => Duration::ZERO,
        }
    }

    /// Starts `spec` (or, for `clear`, lifts everything). `peers` are the other replicas now,
    /// `rt` the node's runtime (for `cpu_starve`'s stalls).
    pub fn apply(
        self: &Arc<Self>,
        spec: FaultSpec,
        peers: Vec<u64>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<ActiveFault>, String> {
        spec.validate()?;
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        *self.peers.lock() = peers;
        if spec == (FaultSpec::Clear {}) {
            self.active.lock().clear();
            self.leaked.lock().clear();
            self.links.heal();
            tracing::warn!("injected faults cleared");
            return Ok(Vec::new());
        }
        let since_ms = crate::node::producer::now_ms();
        {
            let mut active = self.active.lock();
            active.retain(|a| a.spec.kind() != spec.kind());
            active.push(ActiveFault {
                spec: spec.clone(),
                since_ms,
                started: Instant::now(),
            });
        }
        tracing::warn!(
            kind = spec.kind(),
            ?spec,
            "fault injected (test and chaos only)"
        );
        // Every active fault's loop runs under the newest generation.
        for a in self.active() {
            self.spawn_loop(a, generation, rt);
        }
        Ok(self.active())
    }

    fn live(&self, generation: u64) -> bool {
        self.generation.load(std::sync::atomic::Ordering::Acquire) == generation
    }

    /// The background work of an active fault, until the next change.
    fn spawn_loop(self: &Arc<Self>, a: ActiveFault, generation: u64, rt: &tokio::runtime::Handle) {
        let me = self.clone();
        match a.spec {
            FaultSpec::DiskSlow { .. } | FaultSpec::Clear {} => {}
            FaultSpec::Partition {} => {
                let peers = self.peers.lock().clone();
                self.links.isolate(self.me, peers);
                self.links.block_inbound(self.me, true);
            }
            FaultSpec::NetFlaky {
                delay_ms,
                growth_ms_per_s,
                max_ms,
                loss,
            } => {
                rt.spawn(async move {
                    while me.live(generation) {
                        let d = grown(delay_ms, growth_ms_per_s, a.secs(), max_ms);
                        for p in me.peers.lock().iter() {
                            me.links.set_delay(me.me, *p, d);
                            me.links.set_loss(me.me, *p, loss);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            }
            FaultSpec::CpuStarve {
                stall_ms,
                every_ms,
                growth_ms_per_s,
            } => {
                let workers = rt.metrics().num_workers().max(1);
                let handle = rt.clone();
                rt.spawn(async move {
                    let period = Duration::from_secs_f64(every_ms / 1e3);
                    while me.live(generation) {
                        let stall = grown(stall_ms, growth_ms_per_s, a.secs(), every_ms);
                        for _ in 0..workers {
                            // Blocks the worker that runs it: the node's other tasks wait.
                            handle.spawn(async move { std::thread::sleep(stall) });
                        }
                        tokio::time::sleep(period).await;
                    }
                });
            }
            FaultSpec::MemLeak {
                mb_per_s,
                crash_at_mb,
            } => {
                let spawned = std::thread::Builder::new()
                    .name("aurigraph-fault-leak".into())
                    .spawn(move || {
                        let tick = Duration::from_millis(100);
                        let chunk = (mb_per_s * 1e5) as usize; // MB/s x 0.1 s, in bytes
                        while me.live(generation) {
                            let total: usize = {
                                let mut leaked = me.leaked.lock();
                                leaked.push(vec![0xA5u8; chunk]);
                                leaked.iter().map(Vec::len).sum()
                            };
                            if total as f64 >= crash_at_mb * 1e6 {
                                tracing::error!(
                                    leaked_mb = total / 1_000_000,
                                    "injected memory leak reached its limit: aborting (test and chaos only)"
                                );
                                std::process::abort();
                            }
                            std::thread::sleep(tick);
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start the memory-leak fault's thread");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_bad_ones_are_refused() {
        let s: FaultSpec = serde_json::from_str(r#"{"kind":"disk_slow","start_ms":1}"#).unwrap();
        assert_eq!(
            s,
            FaultSpec::DiskSlow {
                start_ms: 1.0,
                growth_ms_per_s: 100.0,
                max_ms: 3000.0
            }
        );
        assert!(serde_json::from_str::<FaultSpec>(r#"{"kind":"melt"}"#).is_err());
        assert!(serde_json::from_str::<FaultSpec>(r#"{"kind":"partition","x":1}"#).is_err());
        assert!(serde_json::from_str::<FaultSpec>(r#"{"kind":"clear","y":1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<FaultSpec>(r#"{"kind":"partition"}"#).unwrap(),
            FaultSpec::Partition {}
        );
        let bad: FaultSpec = serde_json::from_str(r#"{"kind":"net_flaky","loss":1.5}"#).unwrap();
        assert!(bad.validate().is_err());
        let bad: FaultSpec = serde_json::from_str(r#"{"kind":"cpu_starve","every_ms":0}"#).unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_disk_delay_grows_to_its_ceiling_and_clear_lifts_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let f = Arc::new(FaultInjector::new(1));
        assert_eq!(f.disk_delay(), Duration::ZERO);
        let spec = FaultSpec::DiskSlow {
            start_ms: 5.0,
            growth_ms_per_s: 1e6,
            max_ms: 40.0,
        };
        f.apply(spec, vec![2, 3], rt.handle()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(f.disk_delay(), Duration::from_millis(40));
        f.apply(FaultSpec::Partition {}, vec![2, 3], rt.handle())
            .unwrap();
        assert!(f.links().is_cut(1, 2) && f.links().is_cut(3, 1));
        assert!(f.links().inbound_blocked(1));
        assert_eq!(f.active().len(), 2);
        f.apply(FaultSpec::Clear {}, vec![2, 3], rt.handle())
            .unwrap();
        assert!(f.active().is_empty());
        assert_eq!(f.disk_delay(), Duration::ZERO);
        assert!(!f.links().is_cut(1, 2) && !f.links().inbound_blocked(1));
    }
}
