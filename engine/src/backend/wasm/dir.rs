//! A plugins folder: load every plugin in it once ([`PluginDir`]), or poll it for added,
//! changed and removed plugins ([`PluginWatcher`]).
//!
//! A folder entry is a plugin when it is a `*.wasm` file or a sub-folder holding
//! `plugin.wasm`; other entries are ignored. Entries are visited in name order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::error::{PluginError, Result};
use super::plugin::{PLUGIN_FILE, WasmPlugin};
use super::runtime::WasmRuntime;
use crate::policy::Policy;
use crate::slot::SlotKind;

/// Every plugin of a folder: the ones loaded and the ones refused, with why.
#[derive(Debug, Default)]
pub struct PluginDir {
    /// Loaded plugins, in name order.
    pub loaded: Vec<(PathBuf, WasmPlugin)>,
    /// Refused plugins and the reason; nothing of them is used.
    pub refused: Vec<(PathBuf, PluginError)>,
}

impl PluginDir {
    /// The policies of every loaded plugin that implements `slot`.
    pub fn policies(&self, slot: SlotKind) -> Vec<Arc<dyn Policy>> {
        self.loaded
            .iter()
            .filter_map(|(_, p)| p.policy(slot).ok())
            .map(|p| Arc::new(p) as Arc<dyn Policy>)
            .collect()
    }
}

/// The plugin entries of `dir`, in name order, with the file to read for each.
pub(super) fn entries(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
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

impl WasmRuntime {
    /// Loads every plugin of `dir`. Fails only when the folder cannot be listed; a plugin
    /// that cannot be loaded is listed in [`PluginDir::refused`].
    pub fn load_dir(&self, dir: &Path) -> Result<PluginDir> {
        let mut out = PluginDir::default();
        for (path, _) in entries(dir)? {
            match self.load(&path) {
                Ok(p) => out.loaded.push((path, p)),
                Err(e) => out.refused.push((path, e)),
            }
        }
        Ok(out)
    }
}

/// What a poll of a [`PluginWatcher`] found.
#[derive(Debug)]
pub enum PluginEvent {
    /// A new or changed plugin, loaded and validated.
    Loaded(PathBuf, WasmPlugin),
    /// A new or changed plugin that was refused; whatever ran before keeps running.
    Refused(PathBuf, PluginError),
    /// A plugin that is gone from the folder.
    Removed(PathBuf),
}

/// Size and modification time: a plugin is reloaded when either changes.
type Stamp = (u64, Option<SystemTime>);

/// Polls a plugins folder and loads what was added or changed since the last poll.
///
/// The caller decides what to do with each event (typically: load the plugin's policies as
/// candidates of their slots, where the rollout takes over); polling is cheap (one listing
/// and a `stat` per entry), so a period of a second or so is fine.
#[derive(Debug)]
pub struct PluginWatcher {
    runtime: WasmRuntime,
    dir: PathBuf,
    seen: BTreeMap<PathBuf, Stamp>,
}

impl PluginWatcher {
    /// A watcher of `dir`; the first [`poll`](Self::poll) reports every plugin in it.
    pub fn new(runtime: WasmRuntime, dir: impl Into<PathBuf>) -> Self {
        Self {
            runtime,
            dir: dir.into(),
            seen: BTreeMap::new(),
        }
    }

    /// Lists the folder and loads what is new or changed. Fails only when the folder cannot
    /// be listed.
    pub fn poll(&mut self) -> Result<Vec<PluginEvent>> {
        let mut events = Vec::new();
        let mut now = BTreeMap::new();
        for (path, file) in entries(&self.dir)? {
            let stamp = std::fs::metadata(&file)
                .map(|m| (m.len(), m.modified().ok()))
                .unwrap_or((0, None));
            if self.seen.get(&path) != Some(&stamp) {
                events.push(match self.runtime.load(&path) {
                    Ok(p) => PluginEvent::Loaded(path.clone(), p),
                    Err(e) => PluginEvent::Refused(path.clone(), e),
                });
            }
            now.insert(path, stamp);
        }
        for gone in self.seen.keys().filter(|p| !now.contains_key(*p)) {
            events.push(PluginEvent::Removed(gone.clone()));
        }
        self.seen = now;
        Ok(events)
    }
}
