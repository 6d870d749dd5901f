//! The Raft log store on a temporary RocksDB: openraft's log-storage conformance suite, the log
//! and vote across a reopen, and corrupt bytes read as errors.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aurigraph_consensus::log_store::{LogStoreError, RaftLogStore};
use aurigraph_consensus::types::{
    BlockApplied, BlockEntry, Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
use aurigraph_storage::{CF_RAFT_LOG, CF_RAFT_META, Storage};
use futures_util::TryStreamExt;
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder,
    RaftStateMachine,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, StorageError};
use tempfile::TempDir;

type LeaderId = openraft::alias::LeaderIdOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, ()>;

/// The state of [`MemStateMachine`]: what was applied and the last snapshot's metadata.
#[derive(Default)]
struct SmState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<SnapshotMeta>,
}

/// An in-memory state machine that records the applied log id and membership only: the
/// conformance suite needs one next to the log store.
#[derive(Clone, Default)]
struct MemStateMachine {
    state: Arc<Mutex<SmState>>,
}

impl MemStateMachine {
    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, SmState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("state machine lock poisoned"))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    type SnapshotData = ();

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut state = self.state()?;
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        state.snapshot = Some(meta.clone());
        Ok(Snapshot { meta, snapshot: () })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotData = ();
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.state()?;
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let response = {
                let mut state = self.state()?;
                state.last_applied = Some(log_id);
                match &entry.payload {
                    EntryPayload::Normal(block) => BlockApplied {
                        height: block.height,
                        state_root: block.state_root,
                    },
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(log_id), m.clone());
                        BlockApplied::default()
                    }
                    EntryPayload::Blank => BlockApplied::default(),
                }
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        _snapshot: (),
    ) -> Result<(), io::Error> {
        let mut state = self.state()?;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let state = self.state()?;
        Ok(state
            .snapshot
            .clone()
            .map(|meta| Snapshot { meta, snapshot: () }))
    }
}

fn open_store(dir: &Path) -> Result<RaftLogStore, io::Error> {
    let storage = Storage::open(dir, true).map_err(io::Error::other)?;
    Ok(RaftLogStore::new(Arc::new(storage))?)
}

/// Builds a log store on a fresh temporary database; the directory is the guard.
struct RocksBuilder;

impl StoreBuilder<TypeConfig, RaftLogStore, MemStateMachine, TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore, MemStateMachine), StorageError<TypeConfig>> {
        let err =
            |e: io::Error| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e);
        let dir = tempfile::tempdir().map_err(err)?;
        let store = open_store(dir.path()).map_err(err)?;
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[tokio::test]
async fn the_rocksdb_log_store_passes_openraft_log_storage_suite() {
    Suite::test_all(RocksBuilder)
        .await
        .expect("log storage conformance suite");
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(LeaderId::new_committed(term, 1), index)
}

fn block(term: u64, index: u64) -> Entry {
    Entry::new_normal(
        log_id(term, index),
        BlockEntry {
            height: index,
            parent: [index as u8; 32],
            timestamp_ms: 1_700_000_000_000 + index,
            state_root: [0xa0 ^ index as u8; 32],
            txs: vec![vec![1, 2, 3], index.to_be_bytes().to_vec()],
        },
    )
}

/// Appends `entries`, waits for the flush callback and returns its result.
async fn append_flushed(store: &mut RaftLogStore, entries: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await?;
    rx.await.map_err(io::Error::other)?
}

#[tokio::test]
async fn append_reports_flushed_after_the_entries_are_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open_store(dir.path()).expect("open");
    let entries: Vec<Entry> = (1..=3).map(|i| block(1, i)).collect();

    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(entries.clone(), IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("callback called").expect("flushed");

    let mut reader = store.get_log_reader().await;
    assert_eq!(
        reader.try_get_log_entries(1..=3).await.expect("read"),
        entries
    );
    assert_eq!(reader.try_get_log_entries(..).await.expect("read"), entries);
    assert_eq!(
        reader.try_get_log_entries(2..).await.expect("read"),
        entries[1..]
    );
    assert_eq!(
        reader.try_get_log_entries(0..2).await.expect("read"),
        entries[..1]
    );
    assert!(
        reader
            .try_get_log_entries(3..3)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        reader
            .try_get_log_entries(4..)
            .await
            .expect("read")
            .is_empty()
    );
}

#[tokio::test]
async fn the_log_vote_and_committed_survive_reopening_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = Vote::new(3, 1);
    let entries: Vec<Entry> = (1..=10)
        .map(|i| block(if i <= 5 { 2 } else { 3 }, i))
        .collect();
    {
        let mut store = open_store(dir.path()).expect("open");
        append_flushed(&mut store, vec![Entry::new_blank(log_id(1, 0))])
            .await
            .expect("append blank");
        append_flushed(&mut store, entries[..6].to_vec())
            .await
            .expect("append first part");
        append_flushed(&mut store, entries[6..].to_vec())
            .await
            .expect("append second part");
        store.save_vote(&vote).await.expect("save vote");
        store
            .save_committed(Some(log_id(3, 8)))
            .await
            .expect("save committed");
        store.purge(log_id(2, 3)).await.expect("purge");
        store
            .truncate_after(Some(log_id(3, 9)))
            .await
            .expect("truncate");
    }

    let mut store = open_store(dir.path()).expect("reopen");
    assert_eq!(
        store.get_log_state().await.expect("log state"),
        LogState {
            last_purged_log_id: Some(log_id(2, 3)),
            last_log_id: Some(log_id(3, 9)),
        }
    );
    assert_eq!(
        store.read_committed().await.expect("committed"),
        Some(log_id(3, 8))
    );
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(
        reader.try_get_log_entries(0..100).await.expect("entries"),
        entries[3..9]
    );

    store.purge(log_id(3, 9)).await.expect("purge all");
    drop((reader, store));
    let mut store = open_store(dir.path()).expect("reopen");
    assert_eq!(
        store.get_log_state().await.expect("log state"),
        LogState {
            last_purged_log_id: Some(log_id(3, 9)),
            last_log_id: Some(log_id(3, 9)),
        }
    );
}

#[tokio::test]
async fn corrupt_bytes_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(Storage::open(dir.path(), true).expect("open"));
    let mut store = RaftLogStore::new(Arc::clone(&storage)).expect("store");
    append_flushed(&mut store, (1..=3).map(|i| block(1, i)).collect())
        .await
        .expect("append");

    let db = storage.db();
    let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log family");
    let meta = db.cf_handle(CF_RAFT_META).expect("raft_meta family");

    // An entry that does not decode.
    db.put_cf(log, 2u64.to_be_bytes(), [0xff, 0xff, 0xff])
        .expect("put");
    let err = store
        .try_get_log_entries(1..=3)
        .await
        .expect_err("corrupt entry");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert_eq!(
        err.get_ref()
            .and_then(|e| e.downcast_ref::<LogStoreError>())
            .map(LogStoreError::code),
        Some("E_RAFT_LOG_CORRUPT")
    );

    // An entry stored under another index.
    let misplaced = postcard::to_stdvec(&block(1, 7)).expect("encode");
    db.put_cf(log, 2u64.to_be_bytes(), misplaced).expect("put");
    let err = store
        .try_get_log_entries(1..=3)
        .await
        .expect_err("misplaced entry");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");

    // A hole between present entries.
    db.delete_cf(log, 2u64.to_be_bytes()).expect("delete");
    let err = store.try_get_log_entries(1..=3).await.expect_err("gap");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");

    // A key of the wrong length.
    db.put_cf(log, [9u8; 3], [0u8]).expect("put");
    let err = store.get_log_state().await.expect_err("bad key");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    db.delete_cf(log, [9u8; 3]).expect("delete");

    // A vote, a committed id and a purged id that do not decode.
    for key in [&b"vote"[..], b"committed", b"last_purged"] {
        db.put_cf(meta, key, [0xff; 2]).expect("put");
    }
    let err = store.read_vote().await.expect_err("corrupt vote");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    let err = store.read_committed().await.expect_err("corrupt committed");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    let err = store
        .get_log_state()
        .await
        .expect_err("corrupt last purged");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}
