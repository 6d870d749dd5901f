//! The pieces the backends' folder registries share: the key a registered version goes by
//! ([`ModelKey`]), what one poll did ([`PollReport`], [`LoadFailure`]), the file fingerprint
//! a poll compares ([`FileStamp`], [`stamp_of`]) and the polling thread ([`Watcher`]).
//!
//! The ONNX models registry (`aurigraph-onnx`) and the WASM plugins registry
//! (`aurigraph-wasm`) both build on them, so the node lists, reports and watches both
//! folders the same way. This module reads file metadata and spawns the watch thread; the
//! rest of the decision core does neither.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::slot::SlotKind;

/// Identifies a registered model version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ModelKey {
    /// The slot.
    pub slot: SlotKind,
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
}

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.slot, self.name, self.version)
    }
}

/// A folder that failed to load.
#[derive(Clone, Debug, Serialize)]
pub struct LoadFailure {
    /// The folder.
    pub folder: PathBuf,
    /// The backend's stable code for the refusal (`E_ONNX_*`, `E_WASM_*`).
    pub code: &'static str,
    /// The reason, on one line.
    pub reason: String,
}

/// What one poll of a registry did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PollReport {
    /// Versions registered (new) or replaced (changed folder).
    pub loaded: Vec<ModelKey>,
    /// Folders that failed to load this time.
    pub failed: Vec<LoadFailure>,
    /// Versions whose folder disappeared, now unregistered.
    pub removed: Vec<ModelKey>,
    /// Folders seen unchanged.
    pub unchanged: usize,
}

/// What a registry compares to tell a file changed: its length and modification time
/// (`u64::MAX` and none when it cannot be read).
pub type FileStamp = (u64, Option<SystemTime>);

/// The [`FileStamp`] of `path` now.
pub fn stamp_of(path: &Path) -> FileStamp {
    match std::fs::metadata(path) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (u64::MAX, None),
    }
}

/// A polling thread started by a registry's `watch` (the ONNX models registry, the WASM
/// plugins registry); dropping it stops the thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts a thread named `name` that calls `poll` on `target` every `interval` and
    /// hands each report that changed something to `on_change`; it holds `target` weakly
    /// and ends when the watcher is dropped or `target` is. Shared by the models and the
    /// plugins registries.
    pub fn spawn<R: Send + Sync + 'static>(
        name: &str,
        target: &Arc<R>,
        interval: Duration,
        poll: fn(&R) -> PollReport,
        on_change: impl Fn(&PollReport) + Send + 'static,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let registry = Arc::downgrade(target);
        let flag = stop.clone();
        let tick = Duration::from_millis(20).min(interval);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    let Some(r) = registry.upgrade() else {
                        return;
                    };
                    let rep = poll(&r);
                    drop(r);
                    if !rep.loaded.is_empty() || !rep.failed.is_empty() || !rep.removed.is_empty() {
                        on_change(&rep);
                    }
                    let mut waited = Duration::ZERO;
                    while waited < interval && !flag.load(Ordering::Acquire) {
                        std::thread::sleep(tick);
                        waited += tick;
                    }
                }
            })?;
        Ok(Watcher {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
