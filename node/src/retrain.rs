//! The closed loop on a running node: retrain a slot's model on the node's own telemetry and
//! roll the new version out under the guard.
//!
//! Training never runs in the node's process and the node library links no training code:
//! [`Retrainer`] spawns the node's own binary (`[retrain] program`, default the running
//! executable) as a child process, `aurigraph train SLOT --data-dir DATA --models MODELS
//! --json`, which reads the telemetry read-only, trains, validates and writes a new version
//! folder into the models folder; the node reads its one-line JSON answer. A failure (a
//! refusal such as `E_TRAIN_NO_GAIN`, a crash, a timeout) is reported in the slot's retrain
//! state and leaves the models folder and every running version untouched.
//!
//! A run starts from `POST /v1/policies/{slot}/train` (admin) or, with `[retrain] enabled`,
//! every `every_blocks` blocks or when a candidate in shadow diverges by `on_drift` or more.
//! With `[retrain] enabled` and the slot in `slots`, the new version is then rolled out
//! through the host's own commands: loaded as the candidate, `shadow` for
//! `shadow_decisions` decisions, the step `schedule` with `min_decisions` per step (the
//! guard holds each step or rolls the candidate back by itself), and promoted only after
//! `min_decisions` decisions at the last step with no alarm. Each step is logged with
//! tracing and kept in the state `GET /v1/policies/{slot}` shows under `retrain`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aurigraph_decision::SlotKind;
use aurigraph_decision::policy::BackendKind;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::node::NodeCore;

/// `[retrain]`: the background retraining policy. Off by default; the admin call works
/// either way (without the policy it only trains and registers the version).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrainConfig {
    /// Run retraining in the background and roll the versions out. Default false.
    pub enabled: bool,
    /// Slots it covers. Default `["demand"]` (the only self-supervised slot).
    pub slots: Vec<String>,
    /// Retrain every this many blocks (0: never by height). Default 0.
    pub every_blocks: u64,
    /// Retrain when a candidate in shadow has a mean divergence of at least this (after
    /// `shadow_decisions` shadow runs). Default none.
    pub on_drift: Option<f64>,
    /// Shadow runs before the canary schedule starts. Default 200.
    pub shadow_decisions: u64,
    /// Canary steps in percent. Default `[5, 25, 50, 100]`.
    pub schedule: Vec<f64>,
    /// Candidate decisions per step, and at the last step before the promotion. Default 200.
    pub min_decisions: u64,
    /// The binary that trains (`PROGRAM train SLOT ...`). Default the running executable.
    pub program: Option<PathBuf>,
    /// Pass `--force`: write a version even when it is no better than the static rule.
    /// Default false.
    pub force: bool,
    /// Longest a training run may take before it is killed, ms. Default 600000.
    pub timeout_ms: u64,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            slots: vec!["demand".into()],
            every_blocks: 0,
            on_drift: None,
            shadow_decisions: 200,
            schedule: vec![5.0, 25.0, 50.0, 100.0],
            min_decisions: 200,
            program: None,
            force: false,
            timeout_ms: 600_000,
        }
    }
}

impl RetrainConfig {
    /// Checks the section.
    pub fn validate(&self) -> Result<(), String> {
        for s in &self.slots {
            s.parse::<SlotKind>()
                .map_err(|e| format!("retrain.slots: `{s}`: {e}"))?;
        }
        aurigraph_decision::rollout::StepSchedule::from_percents(
            &self.schedule,
            self.min_decisions,
        )
        .map_err(|e| format!("retrain.schedule / min_decisions: {e}"))?;
        if self.timeout_ms == 0 {
            return Err("retrain.timeout_ms must be at least 1".into());
        }
        Ok(())
    }

    fn covers(&self, slot: SlotKind) -> bool {
        self.enabled && self.slots.iter().any(|s| s == slot.as_str())
    }
}

/// Where a slot's retraining stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing running.
    Idle,
    /// The child process is training.
    Training,
    /// Trained and registered; no rollout (`[retrain]` off for the slot).
    Registered,
    /// The candidate runs in shadow.
    Shadow,
    /// The candidate climbs the canary schedule.
    Canary,
    /// The candidate was promoted.
    Promoted,
    /// The guard (or an operator) rolled the candidate back.
    RolledBack,
    /// Training or the rollout failed; nothing changed.
    Failed,
}

/// One logged step.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// The phase entered.
    pub phase: Phase,
    /// What happened.
    pub detail: String,
}

/// A slot's retrain state, as `GET /v1/policies/{slot}` shows it under `retrain`.
#[derive(Clone, Debug, Serialize)]
pub struct RetrainView {
    /// Current phase.
    pub phase: Phase,
    /// What started the current or last run (`admin`, `every_blocks`, `drift`).
    pub trigger: Option<String>,
    /// The candidate version (`name@version`).
    pub candidate: Option<String>,
    /// Why it failed or was rolled back.
    pub reason: Option<String>,
    /// The failure's code.
    pub code: Option<String>,
    /// When the current or last run started, ms.
    pub started_ms: Option<u64>,
    /// Last change, ms.
    pub updated_ms: Option<u64>,
    /// Runs started.
    pub runs: u64,
    /// The training's JSON report (metrics, lineage).
    pub report: Option<serde_json::Value>,
    /// Every step of the current or last run.
    pub steps: Vec<Step>,
}

impl Default for RetrainView {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            trigger: None,
            candidate: None,
            reason: None,
            code: None,
            started_ms: None,
            updated_ms: None,
            runs: 0,
            report: None,
            steps: Vec::new(),
        }
    }
}

struct SlotState {
    view: RetrainView,
    /// The running child's answer, once it exits.
    child: Option<std::sync::mpsc::Receiver<Result<serde_json::Value, (String, String)>>>,
    /// Whether the version is rolled out after training.
    rollout: bool,
    /// (name, version) of the candidate.
    model: Option<(String, String)>,
    /// Shadow runs (ok) when the shadow started.
    shadow_base: u64,
    /// Candidate decisions when the last step was reached.
    last_step_base: Option<u64>,
    /// Height of the last `every_blocks` run.
    last_height: u64,
}

/// The retrain states of the slots, and the driver that moves them on.
#[derive(Default)]
pub struct Retrainer {
    slots: Mutex<BTreeMap<SlotKind, SlotState>>,
}

impl std::fmt::Debug for Retrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrainer").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SlotState {
    fn new() -> Self {
        Self {
            view: RetrainView::default(),
            child: None,
            rollout: false,
            model: None,
            shadow_base: 0,
            last_step_base: None,
            last_height: 0,
        }
    }

    fn enter(&mut self, slot: SlotKind, phase: Phase, detail: String) {
        match phase {
            Phase::Failed | Phase::RolledBack => {
                tracing::warn!(slot = %slot, phase = ?phase, %detail, "retrain step")
            }
            _ => tracing::info!(slot = %slot, phase = ?phase, %detail, "retrain step"),
        }
        let at = now_ms();
        self.view.phase = phase;
        self.view.updated_ms = Some(at);
        self.view.steps.push(Step {
            at_ms: at,
            phase,
            detail,
        });
    }

    fn busy(&self) -> bool {
        matches!(
            self.view.phase,
            Phase::Training | Phase::Shadow | Phase::Canary
        )
    }
}

impl Retrainer {
    /// The slot's retrain state.
    pub fn view(&self, slot: SlotKind) -> RetrainView {
        self.slots
            .lock()
            .get(&slot)
            .map(|s| s.view.clone())
            .unwrap_or_default()
    }

    /// Starts a training run of `slot` in the background (`trigger` says why). Refused with
    /// `E_RETRAIN_RUNNING` (409) while one runs or rolls out.
    pub fn start(
        &self,
        core: &NodeCore,
        slot: SlotKind,
        trigger: &str,
    ) -> Result<RetrainView, ApiError> {
        let mut slots = self.slots.lock();
        let st = slots.entry(slot).or_insert_with(SlotState::new);
        if st.busy() {
            return Err(ApiError::new(
                crate::error::ErrorKind::Conflict,
                "E_RETRAIN_RUNNING",
                format!(
                    "{slot} is already retraining ({:?}); wait for it to finish",
                    st.view.phase
                ),
            ));
        }
        let cfg = &core.config.retrain;
        let program = match &cfg.program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| {
                ApiError::internal("E_INTERNAL", format!("cannot find the node's binary: {e}"))
            })?,
        };
        let models_dir = core.config.policies.models_dir.clone();
        let mut cmd = std::process::Command::new(&program);
        cmd.arg("train")
            .arg(slot.as_str())
            .arg("--data-dir")
            .arg(&core.config.data_dir)
            .arg("--models")
            .arg(&models_dir)
            .arg("--json");
        // The parent: the version answering the slot when it is an ONNX model.
        let baseline = core.hosts.get(&slot).map(|h| h.status().baseline);
        if let Some(b) = baseline.filter(|b| b.backend == BackendKind::Onnx) {
            cmd.arg("--parent").arg(b.version.as_ref());
        }
        if cfg.force {
            cmd.arg("--force");
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            ApiError::internal(
                "E_RETRAIN_SPAWN",
                format!("cannot start {} train: {e}", program.display()),
            )
        })?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("aurigraph-retrain-{slot}"))
            .spawn(move || {
                let t0 = Instant::now();
                let answer = loop {
                    match child.try_wait() {
                        Ok(Some(_)) => break None,
                        Ok(None) if t0.elapsed() > timeout => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break Some((
                                "E_RETRAIN_TIMEOUT".to_string(),
                                format!(
                                    "training took longer than {} ms: killed",
                                    timeout.as_millis()
                                ),
                            ));
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                        Err(e) => break Some(("E_IO".to_string(), e.to_string())),
                    }
                };
                let result = match answer {
                    Some(err) => Err(err),
                    None => read_answer(child),
                };
                let _ = tx.send(result);
            })
            .map_err(|e| ApiError::internal("E_INTERNAL", format!("cannot start a thread: {e}")))?;
        st.child = Some(rx);
        st.rollout = cfg.covers(slot);
        st.model = None;
        st.last_step_base = None;
        st.view = RetrainView {
            runs: st.view.runs + 1,
            trigger: Some(trigger.to_string()),
            started_ms: Some(now_ms()),
            ..RetrainView::default()
        };
        st.enter(
            slot,
            Phase::Training,
            format!(
                "{trigger}: {} train {slot} --data-dir {} --models {} --json",
                program.display(),
                core.config.data_dir.display(),
                models_dir.display()
            ),
        );
        Ok(st.view.clone())
    }

    /// Moves every slot's run on one step; called by the driver thread.
    fn tick(&self, core: &NodeCore) {
        let cfg = &core.config.retrain;
        // Triggers of the background policy.
        if cfg.enabled {
            let height = core.head.read().height;
            for name in &cfg.slots {
                let Ok(slot) = name.parse::<SlotKind>() else {
                    continue;
                };
                let (busy, last) = {
                    let mut slots = self.slots.lock();
                    let st = slots.entry(slot).or_insert_with(SlotState::new);
                    (st.busy(), st.last_height)
                };
                if busy {
                    continue;
                }
                let mut trigger = None;
                if cfg.every_blocks > 0 && height >= last + cfg.every_blocks {
                    trigger = Some("every_blocks");
                }
                if let (Some(th), Some(h)) = (cfg.on_drift, core.hosts.get(&slot)) {
                    let s = h.status();
                    if s.mode == aurigraph_decision::rollout::Mode::Shadow
                        && s.shadow.ok >= cfg.shadow_decisions
                        && s.shadow.mean_divergence >= th
                    {
                        trigger = Some("drift");
                    }
                }
                if let Some(t) = trigger {
                    if let Some(st) = self.slots.lock().get_mut(&slot) {
                        st.last_height = height;
                    }
                    if let Err(e) = self.start(core, slot, t) {
                        tracing::warn!(slot = %slot, error = %e, "retrain did not start");
                    }
                }
            }
        }
        let mut slots = self.slots.lock();
        for (&slot, st) in slots.iter_mut() {
            match st.view.phase {
                Phase::Training => self.after_training(core, slot, st),
                Phase::Shadow | Phase::Canary => self.rollout_step(core, slot, st),
                _ => {}
            }
        }
    }

    fn after_training(&self, core: &NodeCore, slot: SlotKind, st: &mut SlotState) {
        let Some(rx) = &st.child else { return };
        let result = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err(("E_INTERNAL".into(), "the training thread ended".into()))
            }
        };
        st.child = None;
        let report = match result {
            Ok(r) => r,
            Err((code, reason)) => {
                st.view.code = Some(code.clone());
                st.view.reason = Some(reason.clone());
                st.enter(
                    slot,
                    Phase::Failed,
                    format!("[{code}] {reason}; nothing changed"),
                );
                return;
            }
        };
        let name = report["name"].as_str().unwrap_or_default().to_string();
        let version = report["version"].as_str().unwrap_or_default().to_string();
        st.view.report = Some(report);
        st.view.candidate = Some(format!("{name}@{version}"));
        st.model = Some((name.clone(), version.clone()));
        // Register it now rather than at the next poll of the watcher.
        if let Some(m) = &core.registries.models {
            m.poll();
        }
        let registered = core
            .registries
            .models
            .as_ref()
            .is_some_and(|m| m.get(slot, &name, &version).is_some());
        if !registered {
            let why = "the registry did not register the written version".to_string();
            st.view.code = Some("E_POLICY_NOT_FOUND".into());
            st.view.reason = Some(why.clone());
            st.enter(slot, Phase::Failed, why);
            return;
        }
        if !st.rollout {
            st.enter(
                slot,
                Phase::Registered,
                format!("{name}@{version} registered as a candidate version (no rollout: [retrain] is off for {slot})"),
            );
            return;
        }
        let loaded = core
            .load(slot.as_str(), "onnx", &name, &version)
            .and_then(|_| core.set_mode(slot.as_str(), crate::service::ModeRequest::Shadow));
        match loaded {
            Ok(s) => {
                st.shadow_base = s.shadow.ok;
                st.enter(
                    slot,
                    Phase::Shadow,
                    format!(
                        "{name}@{version} loaded as the candidate, in shadow for {} decisions",
                        core.config.retrain.shadow_decisions
                    ),
                );
            }
            Err(e) => {
                st.view.code = Some(e.code.to_string());
                st.view.reason = Some(e.to_string());
                st.enter(
                    slot,
                    Phase::Failed,
                    format!("loading {name}@{version}: {e}"),
                );
            }
        }
    }

    fn rollout_step(&self, core: &NodeCore, slot: SlotKind, st: &mut SlotState) {
        let cfg = &core.config.retrain;
        let Some(host) = core.hosts.get(&slot) else {
            return;
        };
        let s = host.status();
        let Some((name, version)) = st.model.clone() else {
            return;
        };
        let ours = s
            .candidate
            .as_ref()
            .is_some_and(|c| c.name.as_ref() == name && c.version.as_ref() == version);
        if !ours {
            let reason = s
                .last_rollback
                .clone()
                .unwrap_or_else(|| "the candidate was replaced or unloaded".into());
            st.view.reason = Some(reason.clone());
            st.enter(
                slot,
                Phase::RolledBack,
                format!("{name}@{version} rolled back: {reason}; the baseline answers"),
            );
            return;
        }
        match st.view.phase {
            Phase::Shadow => {
                if s.shadow.ok.saturating_sub(st.shadow_base) < cfg.shadow_decisions {
                    return;
                }
                match core.set_schedule(slot.as_str(), &cfg.schedule, cfg.min_decisions) {
                    Ok(_) => st.enter(
                        slot,
                        Phase::Canary,
                        format!(
                            "shadow done ({} runs, mean divergence {:.4}); canary schedule {:?}% with {} decisions per step",
                            s.shadow.ok - st.shadow_base,
                            s.shadow.mean_divergence,
                            cfg.schedule,
                            cfg.min_decisions
                        ),
                    ),
                    Err(e) => {
                        st.view.code = Some(e.code.to_string());
                        st.view.reason = Some(e.to_string());
                        st.enter(slot, Phase::Failed, format!("schedule: {e}"));
                    }
                }
            }
            Phase::Canary => {
                let Some(sched) = &s.schedule else { return };
                if sched.step + 1 < sched.steps_percent.len() {
                    return;
                }
                let base = *st
                    .last_step_base
                    .get_or_insert(s.candidate_totals.decisions);
                let held = s.guard.as_ref().is_none_or(|g| g.alarm.is_none());
                if s.candidate_totals.decisions.saturating_sub(base) < cfg.min_decisions || !held {
                    return;
                }
                match core.promote(slot.as_str()) {
                    Ok(_) => st.enter(
                        slot,
                        Phase::Promoted,
                        format!(
                            "{name}@{version} promoted: the guard held through every step ({} candidate decisions)",
                            s.candidate_totals.decisions
                        ),
                    ),
                    Err(e) => {
                        st.view.code = Some(e.code.to_string());
                        st.view.reason = Some(e.to_string());
                        st.enter(slot, Phase::Failed, format!("promote: {e}"));
                    }
                }
            }
            _ => {}
        }
    }
}

fn read_answer(child: std::process::Child) -> Result<serde_json::Value, (String, String)> {
    let out = child
        .wait_with_output()
        .map_err(|e| ("E_IO".to_string(), e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let parsed: Option<serde_json::Value> = line.and_then(|l| serde_json::from_str(l).ok());
    match parsed {
        Some(v) if v["ok"] == serde_json::Value::Bool(true) && out.status.success() => Ok(v),
        Some(v) => Err((
            v["code"].as_str().unwrap_or("E_TRAIN_FAILED").to_string(),
            v["message"]
                .as_str()
                .unwrap_or("training failed")
                .to_string(),
        )),
        None => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err((
                "E_TRAIN_FAILED".to_string(),
                format!(
                    "the training process exited with {} and no answer: {}",
                    out.status,
                    stderr.lines().last().unwrap_or_default()
                ),
            ))
        }
    }
}

/// The driver thread: moves the runs on every 50 ms until the node stops.
pub(crate) fn spawn(core: &Arc<NodeCore>) -> std::io::Result<std::thread::JoinHandle<()>> {
    // A weak handle, held only for the length of a tick: a stopped node's storage (and its
    // RocksDB lock) is released when the node is, not up to a tick later.
    let weak = Arc::downgrade(core);
    std::thread::Builder::new()
        .name("aurigraph-retrain".into())
        .spawn(move || {
            loop {
                {
                    let Some(core) = weak.upgrade() else { return };
                    if core.stop.load(Ordering::Acquire) {
                        return;
                    }
                    core.retrain.tick(&core);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
}
