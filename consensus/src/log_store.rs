//! The Raft log and vote in the node's RocksDB ([`RaftLogStore`]), in two column families of
//! their own:
//!
//! | column family | key | value |
//! |---|---|---|
//! | `raft_log` ([`CF_RAFT_LOG`]) | log index (u64 big-endian) | the [`Entry`] (postcard) |
//! | `raft_meta` ([`CF_RAFT_META`]) | `vote` | the last saved [`Vote`] (postcard) |
//! | `raft_meta` | `committed` | the last saved committed [`LogId`] (postcard) |
//! | `raft_meta` | `last_purged` | the last purged [`LogId`] (postcard) |
//!
//! **Durability.** An append is one `WriteBatch`, written with `WriteOptions::set_sync(true)`
//! on a blocking thread; `append` awaits it and only then reports the entries flushed
//! ([`IOFlushed::io_completed`]). The vote, a truncation and a purge are synced before their
//! calls return. `save_committed` is not synced: openraft does not require it, and the WAL
//! makes it durable with the next synced write. Every write returns before the next begins
//! (openraft calls the store through `&mut self`), so they reach the WAL in call order.
//!
//! **Reads.** A range read iterates over one RocksDB snapshot and fails on a gap between
//! indices or on an entry whose log id does not match its key. Bytes that do not decode are
//! an error ([`LogStoreError::Corrupt`]), never a panic.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use aurigraph_storage::{CF_RAFT_LOG, CF_RAFT_META, Storage};
use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Sorts after every 8-byte key: the exclusive end of a range delete to the end of the log.
const END_OF_LOG: [u8; 9] = [0xff; 9];

/// A failure of the Raft log store, with a stable code. openraft sees it as an [`io::Error`]
/// (`InvalidData` for [`LogStoreError::Corrupt`] and [`LogStoreError::Gap`], `Other` for the
/// rest) whose source is this error.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// RocksDB refused an operation.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// A column family of the log store is not in the database.
    #[error("column family `{0}` is missing")]
    MissingFamily(&'static str),
    /// Stored bytes do not decode.
    #[error("corrupt raft {what}: {detail}")]
    Corrupt {
        /// What was read (`log entry at 7`, `vote`, ...).
        what: String,
        /// Why it does not decode.
        detail: String,
    },
    /// A range read found no entry at an index between two present ones.
    #[error("raft log has a gap: expected index {expected}, found {found}")]
    Gap {
        /// The index that should have come next.
        expected: u64,
        /// The index found instead.
        found: u64,
    },
    /// A value could not be encoded.
    #[error("encoding raft {what}: {source}")]
    Encode {
        /// What was written.
        what: &'static str,
        /// The encoder's error.
        source: postcard::Error,
    },
    /// The blocking thread that runs a synced write did not finish.
    #[error("synced write task: {0}")]
    Task(io::Error),
}

impl LogStoreError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LogStoreError::Db(_) => "E_RAFT_LOG_DB",
            LogStoreError::MissingFamily(_) => "E_RAFT_LOG_FAMILY",
            LogStoreError::Corrupt { .. } | LogStoreError::Gap { .. } => "E_RAFT_LOG_CORRUPT",
            LogStoreError::Encode { .. } => "E_RAFT_LOG_ENCODE",
            LogStoreError::Task(_) => "E_RAFT_LOG_TASK",
        }
    }
}

impl From<LogStoreError> for io::Error {
    fn from(e: LogStoreError) -> Self {
        let kind = match e {
            LogStoreError::Corrupt { .. } | LogStoreError::Gap { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

type Result<T, E = LogStoreError> = std::result::Result<T, E>;

/// The Raft log storage of a node, over the node's [`Storage`]. Cloning it is cheap; the
/// clones share the database, and a clone is the log reader openraft asks for.
#[derive(Clone)]
pub struct RaftLogStore {
    storage: Arc<Storage>,
    on_append: Option<AppendObserver>,
    write_delay: Option<WriteDelay>,
}

/// **Fault injection, for tests and chaos runs; never in a production config.** Asked before
/// each append: how long to hold it before the synced write (a slow disk). The held time
/// counts in what the [`AppendObserver`] is told.
pub type WriteDelay = Arc<dyn Fn() -> std::time::Duration + Send + Sync>;

/// Called after each append with how long its synced write took and how many entries it
/// wrote (the node feeds its `aurigraph_raft_append_seconds` histogram with it).
pub type AppendObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

impl Debug for RaftLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore")
            .field("path", &self.storage.path())
            .finish()
    }
}

fn family<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily> {
    db.cf_handle(name).ok_or(LogStoreError::MissingFamily(name))
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| LogStoreError::Corrupt {
        what: "log key".into(),
        detail: format!("{} bytes, not 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|source| LogStoreError::Encode { what, source })
}

fn decode<T: DeserializeOwned>(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| LogStoreError::Corrupt {
        what: what(),
        detail: e.to_string(),
    })
}

fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry> {
    let index = key_index(key)?;
    let entry: Entry = decode(|| format!("log entry at {index}"), value)?;
    if entry.index() != index {
        return Err(LogStoreError::Corrupt {
            what: format!("log entry at {index}"),
            detail: format!("it holds log id {}", entry.log_id()),
        });
    }
    Ok(entry)
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl RaftLogStore {
    /// A log store over `storage`, whose database must have the [`CF_RAFT_LOG`] and
    /// [`CF_RAFT_META`] families ([`Storage::open`] creates them).
    pub fn new(storage: Arc<Storage>) -> Result<Self> {
        family(storage.db(), CF_RAFT_LOG)?;
        family(storage.db(), CF_RAFT_META)?;
        Ok(Self {
            storage,
            on_append: None,
            write_delay: None,
        })
    }

    /// The same store, calling `observer` after each append (see [`AppendObserver`]).
    pub fn with_append_observer(mut self, observer: AppendObserver) -> Self {
        self.on_append = Some(observer);
        self
    }

    /// The same store, holding each append for what `delay` answers (see [`WriteDelay`]).
    pub fn with_write_delay(mut self, delay: WriteDelay) -> Self {
        self.write_delay = Some(delay);
        self
    }

    /// The storage it writes to.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &'static [u8]) -> Result<Option<T>> {
        let db = self.storage.db();
        let Some(bytes) = db.get_pinned_cf(family(db, CF_RAFT_META)?, key)? else {
            return Ok(None);
        };
        let what = || String::from_utf8_lossy(key).into_owned();
        decode(what, &bytes).map(Some)
    }

    /// Builds a batch on a blocking thread with `fill` and writes it synced; returns once the
    /// write has returned.
    async fn write_synced<F>(&self, fill: F) -> Result<()>
    where
        F: FnOnce(&DB, &mut WriteBatch) -> Result<()> + Send + 'static,
    {
        let storage = Arc::clone(&self.storage);
        TypeConfig::spawn_blocking(move || -> Result<()> {
            let db = storage.db();
            let mut batch = WriteBatch::default();
            fill(db, &mut batch)?;
            db.write_opt(batch, &synced())?;
            Ok(())
        })
        .await
        .map_err(LogStoreError::Task)?
    }

    /// The entries with index in `[start, end)` (`end` `None`: to the end of the log), read
    /// from one snapshot.
    fn read_range(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>> {
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let db = self.storage.db();
        let cf = family(db, CF_RAFT_LOG)?;
        let snapshot = db.snapshot();
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(index_key(end));
        }
        let from = index_key(start);
        let iter =
            snapshot.iterator_cf_opt(cf, opts, IteratorMode::From(&from, Direction::Forward));
        let mut entries: Vec<Entry> = Vec::new();
        for item in iter {
            let (key, value) = item?;
            let entry = decode_entry(&key, &value)?;
            if let Some(prev) = entries.last() {
                let expected = prev.index().wrapping_add(1);
                if entry.index() != expected {
                    return Err(LogStoreError::Gap {
                        expected,
                        found: entry.index(),
                    });
                }
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>> {
        let db = self.storage.db();
        let cf = family(db, CF_RAFT_LOG)?;
        match db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                Ok(Some(decode_entry(&key, &value)?.log_id()))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        Ok(self.read_range(start, end)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.read_meta(KEY_VOTE)?)
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let value = encode("vote", vote)?;
        self.write_synced(move |db, batch| {
            batch.put_cf(family(db, CF_RAFT_META)?, KEY_VOTE, value);
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let db = self.storage.db();
        let cf = family(db, CF_RAFT_META)?;
        match committed {
            Some(id) => db
                .put_cf(cf, KEY_COMMITTED, encode("committed log id", &id)?)
                .map_err(LogStoreError::from)?,
            None => db
                .delete_cf(cf, KEY_COMMITTED)
                .map_err(LogStoreError::from)?,
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.read_meta(KEY_COMMITTED)?)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        if let Some(delay) = &self.write_delay {
            let d = delay();
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
        }
        let mut encoded = Vec::new();
        for entry in entries {
            encoded.push((index_key(entry.index()), encode("log entry", &entry)?));
        }
        let n = encoded.len();
        let written = self
            .write_synced(move |db, batch| {
                let cf = family(db, CF_RAFT_LOG)?;
                for (key, value) in encoded {
                    batch.put_cf(cf, key, value);
                }
                Ok(())
            })
            .await;
        match written {
            Ok(()) => {
                if let Some(f) = &self.on_append {
                    f(started.elapsed(), n);
                }
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let e = io::Error::from(e);
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match last_log_id {
            None => 0,
            Some(id) => match id.index().checked_add(1) {
                Some(i) => i,
                None => return Ok(()),
            },
        };
        self.write_synced(move |db, batch| {
            batch.delete_range_cf(
                family(db, CF_RAFT_LOG)?,
                &index_key(from)[..],
                &END_OF_LOG[..],
            );
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let value = encode("last purged log id", &log_id)?;
        let upto = log_id.index();
        self.write_synced(move |db, batch| {
            batch.put_cf(family(db, CF_RAFT_META)?, KEY_LAST_PURGED, value);
            let cf = family(db, CF_RAFT_LOG)?;
            match upto.checked_add(1) {
                Some(end) => batch.delete_range_cf(cf, index_key(0), index_key(end)),
                None => batch.delete_range_cf(cf, &index_key(0)[..], &END_OF_LOG[..]),
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}
