//! The Raft state machine: committed blocks applied through a [`BlockApplier`].
//!
//! [`BlockStateMachine`] implements openraft's `RaftStateMachine` and `RaftSnapshotBuilder`
//! (storage v2) over any [`BlockApplier`]: the node implements the trait over its pipeline
//! and RocksDB; [`LedgerApplier`](crate::ledger_applier::LedgerApplier) implements it over
//! an in-memory [`ShardedState`](aurigraph_ledger::state::ShardedState).
//!
//! ## What each entry does
//!
//! - **Normal** (a [`BlockEntry`]): [`BlockApplier::apply`] executes the block and checks
//!   that it reaches the leader's `state_root`. The response is the [`BlockApplied`] the
//!   applier returns.
//! - **Blank** and **membership** entries are not blocks: the state machine records their
//!   log id (and the membership) and responds with `BlockApplied::default()`.
//!
//! ## A failed apply stops the replica's Raft
//!
//! openraft treats an error returned by `apply` as fatal: the replica's Raft stops and the
//! entry is never marked applied. A block whose root differs from the leader's
//! ([`ApplyError::RootMismatch`], `E_ROOT_MISMATCH`) means this replica's state diverged
//! from the leader's; it is not applied (the state stays at the previous block) and the
//! replica stops, rather than keep executing on a state no one else has. The `io::Error`
//! openraft sees displays the code first (`[E_ROOT_MISMATCH] ...`) and carries the
//! [`ApplyError`] ([`ApplyError::from_io`] gets it back).
//!
//! ## Restart: the Raft state is persisted by the applier, with each block
//!
//! The state machine's own state is the last applied log id and the last membership (the
//! *Raft state*). It is encoded to opaque bytes and handed to the applier, which must store
//! it **atomically with what it applies**:
//!
//! - with every block ([`BlockApplier::apply`]), the Raft state after that block;
//! - with every installed snapshot ([`BlockApplier::install`]), the snapshot's;
//! - after a batch of entries that ends with blank or membership entries,
//!   [`BlockApplier::save_raft_state`] alone.
//!
//! [`BlockStateMachine::new`] reads it back ([`BlockApplier::raft_state`]), so after a
//! restart `applied_state` reports the log id of the last block the applier holds and
//! openraft re-applies only the committed entries after it: a block is never applied twice,
//! and the applier need not be idempotent. The other design, Raft state in memory only,
//! does not survive a restart once logs are purged: openraft would restart from no applied
//! log id and ask for log entries that were deleted after a snapshot (`StorageHelper`
//! refuses with "Cannot re-apply logs").
//!
//! Blank and membership entries may be persisted late (at the end of their batch, or with
//! the next block): after a crash in between, openraft re-applies them, which changes
//! nothing but the recorded log id and membership. Their Raft state is persisted before
//! `apply` returns, so before any snapshot covers them and before openraft purges them.
//!
//! An applier that keeps everything in memory (like `LedgerApplier`) loses it all on a
//! restart, the Raft state with it: the replica restarts from genesis and needs the whole
//! log, or a snapshot from the leader.
//!
//! ## Snapshots
//!
//! A snapshot is the applier's full state ([`BlockApplier::snapshot`]: the height and
//! opaque bytes) with openraft's metadata (last applied log id, membership). It is built
//! under the same lock `apply` takes, so state and metadata match. The last snapshot built
//! or installed is kept in memory for `get_current_snapshot`; none survives a restart, and
//! openraft builds a fresh one when it needs it. The snapshot data type is [`SnapshotData`],
//! a `Cursor<Vec<u8>>` over `postcard((height, state bytes))`.
//!
//! Applying a block is synchronous work on the state machine's task (the executor's
//! parallelism is its own thread pool).

use std::io::{self, Cursor};
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::alias::SnapshotOf;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use aurigraph_ledger::state::StateRoot;

use crate::types::{BlockApplied, BlockEntry, LogId, SnapshotMeta, StoredMembership, TypeConfig};

/// Why a block, a snapshot or the Raft state could not be applied. Each variant has a
/// stable code ([`ApplyError::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The block reached another state root than the leader's; nothing of it was applied.
    /// The replica's Raft stops (see the module docs).
    #[error(
        "block {height}: this replica reached state root {got}, the leader's block says {expected}; the block is not applied and this replica stops"
    )]
    RootMismatch {
        /// The block's height.
        height: u64,
        /// The root in the block (the leader's).
        expected: StateRoot,
        /// The root this replica reached.
        got: StateRoot,
    },
    /// A transaction of the block could not be decoded.
    #[error("block {height}: transaction {index} does not decode: [{tx_code}] {reason}")]
    BlockDecode {
        /// The block's height.
        height: u64,
        /// The transaction's index in the block.
        index: usize,
        /// The transaction decoder's code (`E_TX_*`).
        tx_code: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The block is not the one after the applier's last.
    #[error("block {got} does not follow the applied height {applied} (expected block {})", applied.saturating_add(1))]
    BlockHeight {
        /// The applier's height.
        applied: u64,
        /// The block's height.
        got: u64,
    },
    /// The executor could not execute the block.
    #[error("block {height}: execution failed: [{exec_code}] {reason}")]
    Execution {
        /// The block's height.
        height: u64,
        /// The executor's code (`E_EXEC_*`).
        exec_code: &'static str,
        /// The executor's message.
        reason: String,
    },
    /// A snapshot could not be built, decoded or installed.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The stored Raft state (last applied log id, membership) could not be encoded or
    /// decoded.
    #[error("raft state: {0}")]
    RaftState(String),
    /// The applier could not persist what it applied.
    #[error("applier storage: {0}")]
    Storage(String),
    /// The applier could not be built (genesis, executor).
    #[error("applier setup: {0}")]
    Setup(String),
}

impl ApplyError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::RootMismatch { .. } => "E_ROOT_MISMATCH",
            ApplyError::BlockDecode { .. } => "E_BLOCK_DECODE",
            ApplyError::BlockHeight { .. } => "E_BLOCK_HEIGHT",
            ApplyError::Execution { .. } => "E_BLOCK_EXECUTION",
            ApplyError::Snapshot(_) => "E_SNAPSHOT",
            ApplyError::RaftState(_) => "E_RAFT_STATE",
            ApplyError::Storage(_) => "E_APPLY_STORAGE",
            ApplyError::Setup(_) => "E_APPLIER_SETUP",
        }
    }

    /// The `ApplyError` inside an `io::Error` this module returned to openraft.
    pub fn from_io(err: &io::Error) -> Option<&ApplyError> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<Coded>())
            .map(|c| &c.0)
    }
}

/// An [`ApplyError`] whose display starts with its code (`[E_ROOT_MISMATCH] ...`).
#[derive(Debug)]
struct Coded(ApplyError);

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.0.code(), self.0)
    }
}

impl std::error::Error for Coded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<ApplyError> for io::Error {
    fn from(e: ApplyError) -> Self {
        let kind = match e {
            ApplyError::BlockDecode { .. } | ApplyError::Snapshot(_) | ApplyError::RaftState(_) => {
                io::ErrorKind::InvalidData
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, Coded(e))
    }
}

/// What applies committed blocks on a replica (the node implements it over its pipeline and
/// storage; [`LedgerApplier`](crate::ledger_applier::LedgerApplier) in memory).
///
/// `raft_state` arguments are opaque bytes the state machine encodes (the last applied log
/// id and membership); an applier stores them atomically with what it applies and returns
/// the last stored from [`BlockApplier::raft_state`] (see the module docs).
pub trait BlockApplier: Send + Sync + 'static {
    /// Applies one committed block and stores `raft_state` with it. A block that is not the
    /// one after the applier's height is refused ([`ApplyError::BlockHeight`]) or, by an
    /// applier that documents it, skipped the same way on every replica (the node's: it
    /// returns its unchanged height); a block must reach `entry.state_root` (else
    /// [`ApplyError::RootMismatch`]). On any error nothing is applied or stored.
    fn apply(&self, entry: &BlockEntry, raft_state: &[u8]) -> Result<BlockApplied, ApplyError>;

    /// Stores `raft_state` alone (after entries that are not blocks).
    fn save_raft_state(&self, raft_state: &[u8]) -> Result<(), ApplyError>;

    /// The Raft state last stored; `None` when none was (a fresh replica).
    fn raft_state(&self) -> Result<Option<Vec<u8>>, ApplyError>;

    /// The replica's full state for a snapshot: its height and opaque bytes.
    fn snapshot(&self) -> Result<(u64, Vec<u8>), ApplyError>;

    /// Replaces the replica's state with a snapshot's (`height` and `data` as
    /// [`BlockApplier::snapshot`] returned them on some replica) and stores `raft_state`
    /// with it; on error nothing changes.
    fn install(&self, height: u64, data: &[u8], raft_state: &[u8]) -> Result<(), ApplyError>;
}

impl<T: BlockApplier + ?Sized> BlockApplier for Arc<T>
where
    Arc<T>: Send + Sync + 'static,
{
    fn apply(&self, entry: &BlockEntry, raft_state: &[u8]) -> Result<BlockApplied, ApplyError> {
        (**self).apply(entry, raft_state)
    }

    fn save_raft_state(&self, raft_state: &[u8]) -> Result<(), ApplyError> {
        (**self).save_raft_state(raft_state)
    }

    fn raft_state(&self) -> Result<Option<Vec<u8>>, ApplyError> {
        (**self).raft_state()
    }

    fn snapshot(&self) -> Result<(u64, Vec<u8>), ApplyError> {
        (**self).snapshot()
    }

    fn install(&self, height: u64, data: &[u8], raft_state: &[u8]) -> Result<(), ApplyError> {
        (**self).install(height, data, raft_state)
    }
}

/// Checks an applier's decoded snapshot against what it is installed as: its format
/// `version` (the applier's is `expected_version`) and the `height` its data holds against the
/// `height` openraft installs it at. `E_SNAPSHOT` otherwise.
pub fn check_snapshot(
    version: u8,
    expected_version: u8,
    data_height: u64,
    height: u64,
) -> Result<(), ApplyError> {
    if version != expected_version {
        return Err(ApplyError::Snapshot(format!(
            "format version {version} (expected {expected_version})"
        )));
    }
    if data_height != height {
        return Err(ApplyError::Snapshot(format!(
            "the data is at height {data_height}, the snapshot says {height}"
        )));
    }
    Ok(())
}

/// The state a snapshot's `accounts` make (chain `chain_id`, `shards` shards), refused with
/// `E_SNAPSHOT` unless its recomputed root is the snapshot's `root`.
pub fn snapshot_state(
    chain_id: u32,
    shards: usize,
    accounts: &[(
        aurigraph_ledger::tx::Address,
        aurigraph_ledger::state::Account,
    )],
    root: [u8; 32],
) -> Result<aurigraph_ledger::state::ShardedState, ApplyError> {
    let mut state = aurigraph_ledger::state::ShardedState::new(chain_id, shards)
        .map_err(|e| ApplyError::Snapshot(format!("state: [{}] {e}", e.code())))?;
    let got = state.apply(accounts);
    if got.0 != root {
        return Err(ApplyError::Snapshot(format!(
            "the accounts' root {got} differs from the snapshot's {}",
            StateRoot(root)
        )));
    }
    Ok(state)
}

/// The snapshot data openraft moves between the state machine and the network.
pub type SnapshotData = Cursor<Vec<u8>>;

/// A snapshot with its metadata.
pub type Snapshot = SnapshotOf<TypeConfig, SnapshotData>;

/// The Raft state as the applier stores it.
#[derive(Serialize, Deserialize)]
struct RaftStateRecord {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

fn encode_raft_state(
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
) -> Result<Vec<u8>, ApplyError> {
    #[derive(Serialize)]
    struct Ref<'a> {
        last_applied: &'a Option<LogId>,
        membership: &'a StoredMembership,
    }
    postcard::to_stdvec(&Ref {
        last_applied,
        membership,
    })
    .map_err(|e| ApplyError::RaftState(format!("encode: {e}")))
}

fn decode_raft_state(bytes: &[u8]) -> Result<RaftStateRecord, ApplyError> {
    postcard::from_bytes(bytes).map_err(|e| ApplyError::RaftState(format!("decode: {e}")))
}

/// A snapshot's data: the applier's height and state.
#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    height: u64,
    state: Vec<u8>,
}

/// What the state machine holds besides the applier.
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The last snapshot built or installed: metadata and data.
    current: Option<(SnapshotMeta, Vec<u8>)>,
}

struct Shared<A> {
    applier: A,
    /// Taken for each entry applied, each snapshot built or installed.
    applied: Mutex<Applied>,
}

/// openraft's state machine over a [`BlockApplier`]. Cheap to clone (clones share the
/// applier and the state).
pub struct BlockStateMachine<A> {
    shared: Arc<Shared<A>>,
}

impl<A> Clone for BlockStateMachine<A> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A> std::fmt::Debug for BlockStateMachine<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let applied = self.shared.applied.lock();
        f.debug_struct("BlockStateMachine")
            .field("last_applied", &applied.last_applied)
            .finish_non_exhaustive()
    }
}

impl<A: BlockApplier> BlockStateMachine<A> {
    /// A state machine over `applier`, starting from the Raft state it stored
    /// ([`BlockApplier::raft_state`]; none: nothing applied, the default membership).
    pub fn new(applier: A) -> Result<Self, ApplyError> {
        let (last_applied, membership) = match applier.raft_state()? {
            Some(bytes) => {
                let r = decode_raft_state(&bytes)?;
                (r.last_applied, r.membership)
            }
            None => (None, StoredMembership::default()),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                applier,
                applied: Mutex::new(Applied {
                    last_applied,
                    membership,
                    current: None,
                }),
            }),
        })
    }

    /// The applier.
    pub fn applier(&self) -> &A {
        &self.shared.applier
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.shared.applied.lock().last_applied
    }

    /// The last applied membership.
    pub fn membership(&self) -> StoredMembership {
        self.shared.applied.lock().membership.clone()
    }
}

/// Builds a snapshot of a [`BlockStateMachine`]'s applier at the moment `build_snapshot`
/// runs.
pub struct BlockSnapshotBuilder<A> {
    shared: Arc<Shared<A>>,
}

impl<A> std::fmt::Debug for BlockSnapshotBuilder<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSnapshotBuilder")
            .finish_non_exhaustive()
    }
}

impl<A: BlockApplier> RaftSnapshotBuilder<TypeConfig> for BlockSnapshotBuilder<A> {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut applied = self.shared.applied.lock();
        let (height, state) = self.shared.applier.snapshot()?;
        let data = postcard::to_stdvec(&SnapshotRecord { height, state })
            .map_err(|e| ApplyError::Snapshot(format!("encode: {e}")))?;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
        };
        applied.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl<A: BlockApplier> RaftStateMachine<TypeConfig> for BlockStateMachine<A> {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = BlockSnapshotBuilder<A>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.shared.applied.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // Whether the recorded Raft state is ahead of what the applier stored.
        let mut unsaved = false;
        while let Some((entry, responder)) = entries.try_next().await? {
            let response = {
                let mut applied = self.shared.applied.lock();
                let log_id = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Normal(block) => {
                        let raft_state = encode_raft_state(&log_id, &applied.membership)?;
                        let response = self.shared.applier.apply(&block, &raft_state)?;
                        applied.last_applied = log_id;
                        unsaved = false;
                        response
                    }
                    EntryPayload::Blank => {
                        applied.last_applied = log_id;
                        unsaved = true;
                        BlockApplied::default()
                    }
                    EntryPayload::Membership(membership) => {
                        applied.last_applied = log_id;
                        applied.membership = StoredMembership::new(log_id, membership);
                        unsaved = true;
                        BlockApplied::default()
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        if unsaved {
            let applied = self.shared.applied.lock();
            let raft_state = encode_raft_state(&applied.last_applied, &applied.membership)?;
            self.shared.applier.save_raft_state(&raft_state)?;
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        BlockSnapshotBuilder {
            shared: Arc::clone(&self.shared),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let record: SnapshotRecord = postcard::from_bytes(&data)
            .map_err(|e| ApplyError::Snapshot(format!("decode: {e}")))?;
        let mut applied = self.shared.applied.lock();
        let raft_state = encode_raft_state(&meta.last_log_id, &meta.last_membership)?;
        self.shared
            .applier
            .install(record.height, &record.state, &raft_state)?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let applied = self.shared.applied.lock();
        Ok(applied.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Cursor::new(data.clone()),
        }))
    }
}
