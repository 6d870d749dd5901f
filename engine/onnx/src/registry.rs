//! [`ModelRegistry`]: the watched models folder.
//!
//! The registry scans a root folder whose subfolders are model folders (`model.toml` +
//! the model file). [`ModelRegistry::poll`] (called by the node on a timer, or by a
//! [`Watcher`] thread) looks at each folder's fingerprint: the size and modification time
//! of the manifest and the model file, then the blake3 hash of their bytes when those
//! changed. A new or changed folder is loaded, checked and warmed off the hot path and
//! registered as a candidate version under `slot / name @ version`. A folder that fails to
//! load leaves any version already registered untouched and is recorded, with its code,
//! in [`ModelRegistry::errors`] until it loads or disappears.
//!
//! Nothing the registry does changes what answers decisions: an operator loads a
//! registered version into a [`SlotHost`](aurigraph_decision::SlotHost) as the candidate
//! ([`ModelRegistry::policy`] + `SlotHost::load_candidate`) and rolls it out. A host keeps
//! its own reference to the model, so unloading or replacing a registered version never
//! affects a decision in flight or a model already live.
//!
//! Write a folder atomically (copy to a sibling folder, then rename) to avoid a poll seeing
//! a half-written file; if one does, the load fails, is reported, and the next poll retries
//! because the size or time changed again.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use super::error::{OnnxError, OnnxResult};
use super::manifest::{MANIFEST_FILE, Manifest};
use super::policy::{LoadOptions, LoadReport, OnnxPolicy};
use aurigraph_decision::ResolveError;
use aurigraph_decision::policy::{BackendKind, Policy};
use aurigraph_decision::registry::{
    FileStamp, LoadFailure, ModelKey, PollReport, Watcher, stamp_of,
};
use aurigraph_decision::rollout::{PolicyRef, PolicyResolver};
use aurigraph_decision::slot::SlotKind;

/// A registered version, for listings.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    /// The version.
    pub key: ModelKey,
    /// Its folder.
    pub folder: PathBuf,
    /// The manifest's description.
    pub description: Option<String>,
    /// What the load found and measured.
    pub report: LoadReport,
}

#[derive(Clone, PartialEq, Eq)]
struct Stamp {
    manifest: FileStamp,
    model: FileStamp,
}

struct FolderState {
    stamp: Option<Stamp>,
    hash: Option<blake3::Hash>,
    /// The version this folder registered last.
    key: Option<ModelKey>,
}

#[derive(Default)]
struct State {
    folders: BTreeMap<PathBuf, FolderState>,
    models: BTreeMap<ModelKey, (PathBuf, Arc<OnnxPolicy>)>,
    errors: BTreeMap<PathBuf, LoadFailure>,
}

/// The watched models folder. See the `onnx` module docs.
pub struct ModelRegistry {
    root: PathBuf,
    options: LoadOptions,
    state: Mutex<State>,
    /// Serialises polls (a watcher and an explicit call).
    polling: Mutex<()>,
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ModelRegistry {
    /// A registry of the model folders under `root`; nothing is loaded until [`poll`](Self::poll).
    pub fn new(root: impl Into<PathBuf>, options: LoadOptions) -> Self {
        Self {
            root: root.into(),
            options,
            state: Mutex::new(State::default()),
            polling: Mutex::new(()),
        }
    }

    /// The watched folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Scans the folder once: loads new and changed model folders, unregisters versions
    /// whose folder disappeared, and records failures. Heavy (parses and warms models);
    /// call it off the hot path.
    pub fn poll(&self) -> PollReport {
        let _one = self.polling.lock();
        let mut report = PollReport::default();
        let mut seen: Vec<PathBuf> = Vec::new();
        match std::fs::read_dir(&self.root) {
            Ok(entries) => {
                let mut dirs: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join(MANIFEST_FILE).is_file())
                    .collect();
                dirs.sort();
                for dir in dirs {
                    self.poll_folder(&dir, &mut report);
                    seen.push(dir);
                }
            }
            Err(e) => {
                let failure = LoadFailure {
                    folder: self.root.clone(),
                    code: "E_IO",
                    reason: format!("cannot read the models folder: {e}"),
                };
                self.state
                    .lock()
                    .errors
                    .insert(self.root.clone(), failure.clone());
                report.failed.push(failure);
                return report;
            }
        }
        let mut st = self.state.lock();
        st.errors.remove(&self.root);
        let gone: Vec<PathBuf> = st
            .folders
            .keys()
            .filter(|f| !seen.contains(f))
            .cloned()
            .collect();
        for folder in gone {
            if let Some(FolderState { key: Some(key), .. }) = st.folders.remove(&folder)
                && st.models.get(&key).is_some_and(|(f, _)| *f == folder)
            {
                st.models.remove(&key);
                tracing::info!(model = %key, "model folder removed; version unregistered");
                report.removed.push(key);
            }
            st.errors.remove(&folder);
        }
        report
    }

    fn poll_folder(&self, dir: &Path, report: &mut PollReport) {
        let manifest_path = dir.join(MANIFEST_FILE);
        // The model file's name comes from the manifest; a manifest that does not parse is
        // stamped with the default name and reported below.
        let file = std::fs::read_to_string(&manifest_path)
            .ok()
            .and_then(|t| Manifest::parse(&t, "").ok())
            .map(|m| m.model_file().to_string())
            .unwrap_or_else(|| super::DEFAULT_MODEL_FILE.to_string());
        let stamp = Stamp {
            manifest: stamp_of(&manifest_path),
            model: stamp_of(&dir.join(&file)),
        };
        {
            let st = self.state.lock();
            if let Some(fs) = st.folders.get(dir)
                && fs.stamp.as_ref() == Some(&stamp)
            {
                report.unchanged += 1;
                return;
            }
        }
        let result = self.load_folder(dir);
        let mut st = self.state.lock();
        match result {
            Ok((hash, _)) if st.folders.get(dir).and_then(|f| f.hash) == Some(hash) => {
                // Touched, not changed.
                if let Some(fs) = st.folders.get_mut(dir) {
                    fs.stamp = Some(stamp);
                }
                st.errors.remove(dir);
                report.unchanged += 1;
            }
            Ok((hash, policy)) => {
                let m = policy.manifest();
                let key = ModelKey {
                    slot: m.slot,
                    name: m.name.clone(),
                    version: m.version.clone(),
                };
                if let Some((other, _)) = st.models.get(&key)
                    && other != dir
                {
                    let failure = LoadFailure {
                        folder: dir.to_path_buf(),
                        code: "E_MANIFEST",
                        reason: format!(
                            "{key} is already registered from `{}`; give this folder another \
                             name or version",
                            other.display()
                        ),
                    };
                    tracing::warn!(folder = %dir.display(), reason = %failure.reason, "model folder refused");
                    st.errors.insert(dir.to_path_buf(), failure.clone());
                    st.folders.insert(
                        dir.to_path_buf(),
                        FolderState {
                            stamp: Some(stamp),
                            hash: None,
                            key: None,
                        },
                    );
                    report.failed.push(failure);
                    return;
                }
                // A folder that now declares another version: the old one goes.
                if let Some(old) = st.folders.get(dir).and_then(|f| f.key.clone())
                    && old != key
                    && st.models.get(&old).is_some_and(|(f, _)| f == dir)
                {
                    st.models.remove(&old);
                    report.removed.push(old);
                }
                tracing::info!(model = %key, folder = %dir.display(), "model registered as a candidate version");
                st.models.insert(key.clone(), (dir.to_path_buf(), policy));
                st.folders.insert(
                    dir.to_path_buf(),
                    FolderState {
                        stamp: Some(stamp),
                        hash: Some(hash),
                        key: Some(key.clone()),
                    },
                );
                st.errors.remove(dir);
                report.loaded.push(key);
            }
            Err(e) => {
                let failure = LoadFailure {
                    folder: dir.to_path_buf(),
                    code: e.code(),
                    reason: e.one_line(),
                };
                tracing::warn!(folder = %dir.display(), code = failure.code, reason = %failure.reason, "model folder failed to load; registered versions untouched");
                let entry = st.folders.entry(dir.to_path_buf()).or_insert(FolderState {
                    stamp: None,
                    hash: None,
                    key: None,
                });
                entry.stamp = Some(stamp);
                entry.hash = None;
                st.errors.insert(dir.to_path_buf(), failure.clone());
                report.failed.push(failure);
            }
        }
    }

    /// Reads the folder's bytes once (what is hashed is what is loaded) and loads them.
    fn load_folder(&self, dir: &Path) -> OnnxResult<(blake3::Hash, Arc<OnnxPolicy>)> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| OnnxError::Manifest {
            path: manifest_path.display().to_string(),
            reason: format!("cannot read it: {e}"),
        })?;
        let manifest = Manifest::parse(&text, &manifest_path.display().to_string())?;
        let bytes = super::policy::read_model(dir, &manifest)?;
        let mut h = blake3::Hasher::new();
        h.update(text.as_bytes());
        h.update(&bytes);
        let hash = h.finalize();
        {
            let st = self.state.lock();
            if st.folders.get(dir).and_then(|f| f.hash) == Some(hash)
                && let Some(key) = st.folders.get(dir).and_then(|f| f.key.clone())
                && let Some((_, p)) = st.models.get(&key)
            {
                // Unchanged content: keep the loaded model, skip the warm-up.
                return Ok((hash, p.clone()));
            }
        }
        let policy = OnnxPolicy::from_bytes(manifest, &bytes, &self.options)?;
        Ok((hash, Arc::new(policy)))
    }

    /// Every registered version, sorted by slot, name and version.
    pub fn list(&self) -> Vec<ModelSummary> {
        self.state
            .lock()
            .models
            .iter()
            .map(|(key, (folder, p))| ModelSummary {
                key: key.clone(),
                folder: folder.clone(),
                description: p.manifest().description.clone(),
                report: p.report().clone(),
            })
            .collect()
    }

    /// The folders that failed to load at their last poll.
    pub fn errors(&self) -> Vec<LoadFailure> {
        self.state.lock().errors.values().cloned().collect()
    }

    /// A registered version.
    pub fn get(&self, slot: SlotKind, name: &str, version: &str) -> Option<Arc<OnnxPolicy>> {
        let key = ModelKey {
            slot,
            name: name.to_string(),
            version: version.to_string(),
        };
        self.state.lock().models.get(&key).map(|(_, p)| p.clone())
    }

    /// A registered version as a policy, ready for `SlotHost::load_candidate`.
    pub fn policy(&self, slot: SlotKind, name: &str, version: &str) -> OnnxResult<Arc<dyn Policy>> {
        self.get(slot, name, version)
            .map(|p| p as Arc<dyn Policy>)
            .ok_or_else(|| OnnxError::NotFound {
                slot,
                name: name.to_string(),
                version: version.to_string(),
            })
    }

    /// Unregisters a version; returns whether it was registered. Hosts that hold it keep
    /// running it until they swap. The folder is not reloaded until it changes.
    pub fn unload(&self, slot: SlotKind, name: &str, version: &str) -> bool {
        let key = ModelKey {
            slot,
            name: name.to_string(),
            version: version.to_string(),
        };
        let removed = self.state.lock().models.remove(&key).is_some();
        if removed {
            tracing::info!(model = %key, "model version unloaded");
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
            "aurigraph-models-watch",
            self,
            interval,
            Self::poll,
            on_change,
        )
    }
}

impl PolicyResolver for ModelRegistry {
    fn resolve(&self, slot: SlotKind, r: &PolicyRef) -> Result<Arc<dyn Policy>, ResolveError> {
        if r.backend != BackendKind::Onnx {
            return Err(ResolveError::OtherBackend {
                backend: r.backend,
                served: "an ONNX model",
            });
        }
        self.policy(slot, &r.name, &r.version)
            .map_err(|e| ResolveError::Refused {
                code: e.code(),
                message: e.one_line(),
            })
    }
}
