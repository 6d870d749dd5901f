//! Persistence of the rollout state.
//!
//! The host writes a [`RolloutRecord`] per slot on every change of routing (load, shadow,
//! canary, step, promote, rollback) through a [`RolloutStore`]. The node backs it with a
//! RocksDB column family; [`MemoryStore`] and [`FileStore`] serve tests and tools. On start,
//! the host reads the record back and asks a [`PolicyResolver`] (the model and plugin
//! registry) to turn each [`PolicyRef`] into a loaded policy.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{Mode, StepSchedule};
use crate::error::{EngineError, ResolveError, StoreError};
use crate::policy::{BackendKind, Policy};
use crate::slot::SlotKind;

/// Enough to find a policy again after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// Backend kind.
    pub backend: BackendKind,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The persisted rollout state of one slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Format version of this record.
    pub format: u32,
    /// The slot.
    pub slot: SlotKind,
    /// The promoted baseline; `None` means the static policy.
    pub baseline: Option<PolicyRef>,
    /// The candidate, if any.
    pub candidate: Option<PolicyRef>,
    /// Mode.
    pub mode: Mode,
    /// Salt of the sticky canary hash: keeps keys in their buckets across restarts.
    pub salt: u64,
    /// The step schedule, if the canary climbs one.
    pub schedule: Option<StepSchedule>,
    /// Current index into the schedule.
    pub step: usize,
    /// The reason of the last rollback, if any.
    pub last_rollback: Option<String>,
    /// When this record was written (Unix milliseconds).
    pub updated_at_ms: u64,
}

/// Where rollout records live. Implementations must make `save` durable before returning
/// `Ok` and must be safe to call from several threads.
pub trait RolloutStore: Send + Sync {
    /// The last saved record of `slot`, if any.
    fn load(&self, slot: SlotKind) -> Result<Option<RolloutRecord>, EngineError>;
    /// Saves `record`, replacing the previous one of its slot.
    fn save(&self, record: &RolloutRecord) -> Result<(), EngineError>;
}

/// Turns a persisted [`PolicyRef`] back into a loaded policy (the model and plugin registry).
pub trait PolicyResolver: Send + Sync {
    /// The policy `r` for `slot`, or why it cannot be had.
    fn resolve(&self, slot: SlotKind, r: &PolicyRef) -> Result<Arc<dyn Policy>, ResolveError>;
}

/// An in-memory store (tests, the demo).
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<SlotKind, RolloutRecord>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

impl RolloutStore for MemoryStore {
    fn load(&self, slot: SlotKind) -> Result<Option<RolloutRecord>, EngineError> {
        Ok(self.records.lock().get(&slot).cloned())
    }

    fn save(&self, record: &RolloutRecord) -> Result<(), EngineError> {
        self.records.lock().insert(record.slot, record.clone());
        Ok(())
    }
}

/// A store of one JSON file per slot in a folder, written atomically (temporary file,
/// fsync, rename).
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    write_lock: Mutex<()>,
}

impl FileStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Arc<Self>, EngineError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(Arc::new(Self {
            dir,
            write_lock: Mutex::new(()),
        }))
    }

    fn path(&self, slot: SlotKind) -> PathBuf {
        self.dir.join(format!("{slot}.rollout.json"))
    }
}

impl RolloutStore for FileStore {
    fn load(&self, slot: SlotKind) -> Result<Option<RolloutRecord>, EngineError> {
        let path = self.path(slot);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                }
                .into());
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { slot, source }.into())
    }

    fn save(&self, record: &RolloutRecord) -> Result<(), EngineError> {
        let _guard = self.write_lock.lock();
        let path = self.path(record.slot);
        let tmp = path.with_extension("json.tmp");
        let err = |action: &'static str| {
            let path = tmp.clone();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        let json = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Encode {
            slot: record.slot,
            source,
        })?;
        let mut f = fs::File::create(&tmp).map_err(err("create"))?;
        f.write_all(&json).map_err(err("write"))?;
        f.sync_all().map_err(err("sync"))?;
        fs::rename(&tmp, &path).map_err(err("rename"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(slot: SlotKind) -> RolloutRecord {
        RolloutRecord {
            format: 1,
            slot,
            baseline: None,
            candidate: Some(PolicyRef {
                backend: BackendKind::Onnx,
                name: "mlp".into(),
                version: "3".into(),
            }),
            mode: Mode::Canary { basis_points: 2500 },
            salt: 77,
            schedule: Some(StepSchedule::from_percents(&[5.0, 25.0, 100.0], 50).unwrap()),
            step: 1,
            last_rollback: None,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn file_store_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.load(SlotKind::Ordering).unwrap(), None);
        store.save(&record(SlotKind::Ordering)).unwrap();
        drop(store);
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(
            store.load(SlotKind::Ordering).unwrap(),
            Some(record(SlotKind::Ordering))
        );
        assert_eq!(store.load(SlotKind::Demand).unwrap(), None);
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("anomaly.rollout.json"), b"{not json").unwrap();
        let err = store.load(SlotKind::Anomaly).unwrap_err();
        assert_eq!(err.code(), "E_STORE");
        assert!(err.to_string().contains("corrupt"));
    }
}
