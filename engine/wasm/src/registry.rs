//! [`PluginRegistry`]: the watched plugins folder, the WASM twin of the ONNX
//! ONNX models registry (`aurigraph_onnx::ModelRegistry`).
//!
//! A plugin is an entry of the root folder: a `*.wasm` file, or a sub-folder holding
//! [`PLUGIN_FILE`](super::PLUGIN_FILE) (`plugin.wasm`); other entries are ignored. Both
//! forms are accepted so a plugin can be dropped in as the single file the build produces, or shipped in a folder next
//! to its notes. [`PluginRegistry::poll`] (called by the node on a timer, or by a [`Watcher`]
//! thread) looks at each entry's fingerprint: the size and modification time of the module,
//! then the blake3 hash of its bytes when those changed. A new or changed module is loaded
//! and validated (size cap, compile, no imports, exports against the slots it claims, schema
//! versions, `metadata` under a deadline) off the hot path, and registered as a candidate
//! version under `slot / name @ version` **once per slot it implements**: a plugin that
//! exports `ordering` and `anomaly` registers two versions, which a rollout uses
//! independently. A module that fails to load leaves any version already registered from it
//! untouched and is recorded, with its stable `E_WASM_*` code, in
//! [`PluginRegistry::errors`] until it loads or disappears. Two entries that claim the same
//! slot, name and version: the second (in name order) is refused with `E_WASM_DUPLICATE`.
//!
//! The reports are the models registry's: [`PollReport`], [`LoadFailure`] (its `folder` is
//! the plugin's file or folder) and [`ModelKey`].
//!
//! Nothing the registry does changes what answers decisions: an operator loads a registered
//! version into a [`SlotHost`](aurigraph_decision::SlotHost) as the candidate
//! ([`PluginRegistry::policy`] + `SlotHost::load_candidate`) and rolls it out; after a
//! restart the host finds it again through the registry's [`PolicyResolver`] (or through
//! the node's registries resolver, which serves both backends). A host keeps its
//! own reference to the plugin, so unloading or replacing a registered version never affects
//! a decision in flight or a plugin already live.
//!
//! Write a plugin atomically (copy to a temporary name without the `.wasm` extension, then
//! rename) so a poll never sees a half-written module; if one does, the load fails, is
//! reported, and the next poll retries because the size or time changed again.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use super::error::{PluginError, Result};
use super::plugin::{PLUGIN_FILE, WasmPlugin};
use super::policy::WasmPolicy;
use super::runtime::WasmRuntime;
use aurigraph_decision::ResolveError;
use aurigraph_decision::policy::{BackendKind, Policy};
use aurigraph_decision::registry::{LoadFailure, ModelKey, PollReport, Watcher, stamp_of};
use aurigraph_decision::rollout::{PolicyRef, PolicyResolver};
use aurigraph_decision::slot::SlotKind;

/// A registered plugin version (one slot of a plugin), for listings.
#[derive(Clone, Debug, Serialize)]
pub struct PluginSummary {
    /// The version.
    pub key: ModelKey,
    /// The plugin's file or folder.
    pub path: PathBuf,
    /// Every slot the plugin implements (it is listed once per slot).
    pub slots: Vec<SlotKind>,
    /// Size of the module, in bytes.
    pub module_bytes: usize,
    /// blake3 hash of the module, hex.
    pub blake3: String,
}

type Stamp = aurigraph_decision::registry::FileStamp;

struct EntryState {
    stamp: Option<Stamp>,
    /// Hash of the module last loaded from this entry; `None` after a failure.
    hash: Option<blake3::Hash>,
    /// The versions this entry registered last (one per slot).
    keys: Vec<ModelKey>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<PathBuf, EntryState>,
    plugins: BTreeMap<ModelKey, Registered>,
    errors: BTreeMap<PathBuf, LoadFailure>,
}

struct Registered {
    path: PathBuf,
    plugin: WasmPlugin,
    hash: blake3::Hash,
}

/// The watched plugins folder. See the module docs.
pub struct PluginRegistry {
    root: PathBuf,
    runtime: WasmRuntime,
    state: Mutex<State>,
    /// Serialises polls (a watcher and an explicit call).
    polling: Mutex<()>,
}

impl fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn failure(path: &Path, e: &PluginError) -> LoadFailure {
    LoadFailure {
        folder: path.to_path_buf(),
        code: e.code(),
        reason: e.to_string().replace(['\n', '\r'], " "),
    }
}

fn key(slot: SlotKind, name: &str, version: &str) -> ModelKey {
    ModelKey {
        slot,
        name: name.to_string(),
        version: version.to_string(),
    }
}

impl PluginRegistry {
    /// A registry of the plugins under `root`, loaded by `runtime`; nothing is loaded until
    /// [`poll`](Self::poll).
    pub fn new(root: impl Into<PathBuf>, runtime: WasmRuntime) -> Self {
        Self {
            root: root.into(),
            runtime,
            state: Mutex::new(State::default()),
            polling: Mutex::new(()),
        }
    }

    /// The watched folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Scans the folder once: loads new and changed plugins, unregisters the versions of
    /// plugins that disappeared, and records failures. Heavy (compiles modules); call it off
    /// the hot path.
    pub fn poll(&self) -> PollReport {
        let _one = self.polling.lock();
        let mut report = PollReport::default();
        let listed = match entries(&self.root) {
            Ok(l) => l,
            Err(e) => {
                let f = LoadFailure {
                    folder: self.root.clone(),
                    code: e.code(),
                    reason: format!("cannot read the plugins folder: {e}"),
                };
                self.state
                    .lock()
                    .errors
                    .insert(self.root.clone(), f.clone());
                report.failed.push(f);
                return report;
            }
        };
        for (path, file) in &listed {
            self.poll_entry(path, file, &mut report);
        }
        let mut st = self.state.lock();
        st.errors.remove(&self.root);
        let gone: Vec<PathBuf> = st
            .entries
            .keys()
            .filter(|p| !listed.iter().any(|(l, _)| l == *p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(entry) = st.entries.remove(&path) {
                for key in entry.keys {
                    if st.plugins.get(&key).is_some_and(|r| r.path == path) {
                        st.plugins.remove(&key);
                        tracing::info!(plugin = %key, "plugin removed; version unregistered");
                        report.removed.push(key);
                    }
                }
            }
            st.errors.remove(&path);
        }
        if !report.removed.is_empty() {
            // A plugin refused as a duplicate may be free to register now: look again.
            let retry: Vec<PathBuf> = st
                .errors
                .iter()
                .filter(|(_, f)| f.code == "E_WASM_DUPLICATE")
                .map(|(p, _)| p.clone())
                .collect();
            for p in retry {
                if let Some(e) = st.entries.get_mut(&p) {
                    e.stamp = None;
                }
            }
        }
        report
    }

    fn poll_entry(&self, path: &Path, file: &Path, report: &mut PollReport) {
        let stamp = stamp_of(file);
        let previous = {
            let st = self.state.lock();
            match st.entries.get(path) {
                Some(e) if e.stamp == Some(stamp) => {
                    report.unchanged += 1;
                    return;
                }
                Some(e) => e.hash,
                None => None,
            }
        };
        let loaded = self.load_entry(path, file, previous);
        let mut st = self.state.lock();
        let entry = st.entries.entry(path.to_path_buf()).or_insert(EntryState {
            stamp: None,
            hash: None,
            keys: Vec::new(),
        });
        entry.stamp = Some(stamp);
        match loaded {
            // Touched, not changed.
            Ok((_, None)) => {
                st.errors.remove(path);
                report.unchanged += 1;
            }
            Ok((hash, Some(plugin))) => {
                let m = plugin.meta();
                let keys: Vec<ModelKey> = plugin
                    .slots()
                    .map(|s| key(s, &m.name, &m.version))
                    .collect();
                if let Some((k, other)) = keys.iter().find_map(|k| {
                    st.plugins
                        .get(k)
                        .filter(|r| r.path != path)
                        .map(|r| (k, r.path.clone()))
                }) {
                    let e = PluginError::Duplicate {
                        key: k.to_string(),
                        other,
                    };
                    let f = failure(path, &e);
                    tracing::warn!(plugin = %path.display(), reason = %f.reason, "plugin refused");
                    if let Some(entry) = st.entries.get_mut(path) {
                        entry.hash = None;
                    }
                    st.errors.insert(path.to_path_buf(), f.clone());
                    report.failed.push(f);
                    return;
                }
                // Versions this entry registered before and no longer claims go.
                let old = st
                    .entries
                    .get(path)
                    .map(|e| e.keys.clone())
                    .unwrap_or_default();
                for k in old.into_iter().filter(|k| !keys.contains(k)) {
                    if st.plugins.get(&k).is_some_and(|r| r.path == path) {
                        st.plugins.remove(&k);
                        report.removed.push(k);
                    }
                }
                for k in &keys {
                    tracing::info!(plugin = %k, path = %path.display(), "plugin registered as a candidate version");
                    st.plugins.insert(
                        k.clone(),
                        Registered {
                            path: path.to_path_buf(),
                            plugin: plugin.clone(),
                            hash,
                        },
                    );
                    report.loaded.push(k.clone());
                }
                if let Some(entry) = st.entries.get_mut(path) {
                    entry.hash = Some(hash);
                    entry.keys = keys;
                }
                st.errors.remove(path);
            }
            Err(e) => {
                let f = failure(path, &e);
                tracing::warn!(plugin = %path.display(), code = f.code, reason = %f.reason, "plugin failed to load; registered versions untouched");
                if let Some(entry) = st.entries.get_mut(path) {
                    entry.hash = None;
                }
                st.errors.insert(path.to_path_buf(), f.clone());
                report.failed.push(f);
            }
        }
    }

    /// Reads the module once (what is hashed is what is loaded); `None` when its bytes are
    /// those loaded last time.
    fn load_entry(
        &self,
        path: &Path,
        file: &Path,
        previous: Option<blake3::Hash>,
    ) -> Result<(blake3::Hash, Option<WasmPlugin>)> {
        let io = |e: std::io::Error| PluginError::Io {
            path: file.to_path_buf(),
            reason: e.to_string(),
        };
        if !file.is_file() {
            return Err(PluginError::NotFound(path.to_path_buf()));
        }
        let limit = self.runtime.config().max_module_bytes;
        let size = std::fs::metadata(file).map_err(io)?.len();
        if size > limit as u64 {
            return Err(PluginError::TooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit,
            });
        }
        let bytes = std::fs::read(file).map_err(io)?;
        let hash = blake3::hash(&bytes);
        if previous == Some(hash) {
            return Ok((hash, None));
        }
        let plugin = self
            .runtime
            .load_bytes(&bytes, &file.display().to_string())?;
        Ok((hash, Some(plugin)))
    }

    /// Every registered version, sorted by slot, name and version.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.state
            .lock()
            .plugins
            .iter()
            .map(|(key, r)| PluginSummary {
                key: key.clone(),
                path: r.path.clone(),
                slots: r.plugin.slots().collect(),
                module_bytes: r.plugin.meta().module_bytes,
                blake3: r.hash.to_hex().to_string(),
            })
            .collect()
    }

    /// The plugins that failed to load at their last poll.
    pub fn errors(&self) -> Vec<LoadFailure> {
        self.state.lock().errors.values().cloned().collect()
    }

    /// The plugin registered for `slot` under `name` and `version`.
    pub fn plugin(&self, slot: SlotKind, name: &str, version: &str) -> Option<WasmPlugin> {
        self.state
            .lock()
            .plugins
            .get(&key(slot, name, version))
            .map(|r| r.plugin.clone())
    }

    /// A registered version: the plugin's policy for `slot`.
    pub fn get(&self, slot: SlotKind, name: &str, version: &str) -> Option<WasmPolicy> {
        self.plugin(slot, name, version)
            .and_then(|p| p.policy(slot).ok())
    }

    /// A registered version as a policy, ready for `SlotHost::load_candidate`.
    pub fn policy(&self, slot: SlotKind, name: &str, version: &str) -> Result<Arc<dyn Policy>> {
        self.get(slot, name, version)
            .map(|p| Arc::new(p) as Arc<dyn Policy>)
            .ok_or_else(|| PluginError::NotRegistered {
                slot,
                name: name.to_string(),
                version: version.to_string(),
            })
    }

    /// Unregisters one slot's version; returns whether it was registered. Hosts that hold it
    /// keep running it until they swap. The plugin is not reloaded until its module changes.
    pub fn unload(&self, slot: SlotKind, name: &str, version: &str) -> bool {
        let k = key(slot, name, version);
        let removed = self.state.lock().plugins.remove(&k).is_some();
        if removed {
            tracing::info!(plugin = %k, "plugin version unloaded");
        }
        removed
    }

    /// Starts a thread that polls every `interval` and hands each report that changed
    /// something to `on_change`. Stopped when the [`Watcher`] is dropped.
    pub fn watch(
        self: &Arc<Self>,
        interval: Duration,
        on_change: impl Fn(&PollReport) + Send + 'static,
    ) -> std::io::Result<Watcher> {
        Watcher::spawn(
            "aurigraph-plugins-watch",
            self,
            interval,
            Self::poll,
            on_change,
        )
    }
}

impl PolicyResolver for PluginRegistry {
    fn resolve(
        &self,
        slot: SlotKind,
        r: &PolicyRef,
    ) -> std::result::Result<Arc<dyn Policy>, ResolveError> {
        if r.backend != BackendKind::Wasm {
            return Err(ResolveError::OtherBackend {
                backend: r.backend,
                served: "a WASM plugin",
            });
        }
        self.policy(slot, &r.name, &r.version)
            .map_err(|e| ResolveError::Refused {
                code: e.code(),
                message: e.to_string(),
            })
    }
}

/// The plugin entries of `dir`, in name order, with the file to read for each: a `*.wasm`
/// file, or a sub-folder holding [`PLUGIN_FILE`]; other entries are ignored.
fn entries(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let io = |e: std::io::Error| PluginError::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            let file = path.join(PLUGIN_FILE);
            if file.is_file() {
                out.push((path, file));
            }
        } else if path.extension().is_some_and(|e| e == "wasm") {
            out.push((path.clone(), path));
        }
    }
    out.sort();
    Ok(out)
}
