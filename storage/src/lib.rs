//! # aurigraph-storage: the node's RocksDB
//!
//! One database, one column family per kind of data, one `WriteBatch` per block; and the
//! stored block format ([`block`]). The node and the consensus layer both build on it.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `default` (meta) | `head`, `genesis`, `format` | the head (height, hash, state root), the genesis hash, the layout version |
//! | `state` | address (32 bytes) | balance (u64 LE), nonce (u64 LE) |
//! | `blocks` | height (u64 BE) | the stored block ([`crate::block`]) |
//! | `tx_index` | transaction hash | height (u64 LE), index in the block (u32 LE) |
//! | `receipts` | height (u64 BE) ++ index (u32 BE) | status (u8), fee charged (u64 LE) |
//! | `mempool` | transaction hash | arrival sequence (u64 BE) ++ the signed transaction: accepted, not yet committed or dropped |
//! | `dropped` | transaction hash | a [`DroppedTx`] (JSON): an accepted transaction that left the mempool without committing, its code and the transaction |
//! | `rollout` | slot name | the slot's rollout record (JSON) |
//! | `telemetry` | `0x01` ++ height (u64 BE) | the block's outcome and its batch decisions (JSON, the node's `telemetry::BlockRecord`) |
//! | `telemetry` | `0x02` ++ height (u64 BE) ++ sequence (u32 BE) | one sampled decision (JSON, the node's `telemetry::DecisionRecord`), written with the block at `height` (decisions taken since the previous block) or, between blocks, under the head's height |
//! | `raft_log` | log index (u64 BE) | a Raft log entry (postcard), written by the consensus crate's `log_store` |
//! | `raft_meta` | `vote`, `committed`, `last_purged` | the Raft vote, the last committed log id, the last purged log id (postcard) |
//!
//! Telemetry keys start with a kind byte, so one family holds both kinds in height order and
//! the retention bound is a range delete in the block's batch (see the node's `telemetry` module).
//! Keys of the first layout (a bare height, first byte `0x00`) are ignored by the export.
//!
//! The two `raft_*` families belong to the consensus crate, which reaches them through
//! [`Storage::db`] and the names [`CF_RAFT_LOG`] and [`CF_RAFT_META`]; nothing else here reads or
//! writes them. Its writes are always synced, whatever the `sync` setting below.
//!
//! **Atomicity.** A block commits in one `WriteBatch`: the block, its index and receipts, the
//! state writes, the new head, its telemetry and the removal of its transactions from the
//! `mempool` family. A crash leaves the previous block or this one, never a part.
//!
//! **Durability (fsync policy).** With `sync = true` (the default) every block batch and
//! every batch of accepted submissions is written with `WriteOptions::set_sync(true)`: the
//! write-ahead log is fsynced before the call returns, so a block or a submission that was
//! acknowledged survives a crash of the process or of the machine. A node alone writes its
//! block with [`Storage::commit_block_unsynced`] and syncs with [`Storage::sync_wal`] before
//! any read or announcement sees the block (so that submissions are not held behind the
//! fsync); since the log is one sequence, any synced write after it syncs it too. With `sync = false` the
//! writes reach the OS page cache only: they survive a crash of the process (kill -9) but not
//! of the machine. Rollout records are always synced (they are rare).
//!
//! **Submissions.** A transaction the node accepts is written to the `mempool` family before it
//! enters the in-memory mempool and before the client hears "accepted". It leaves the family
//! in the batch of the block that commits it, or in the batch ([`Storage::settle_pending`])
//! that records it in `dropped` when it leaves the mempool uncommitted (evicted, replaced,
//! stale). So the family holds exactly what the mempool holds (plus submissions being
//! admitted), and on start the node admits it again in arrival order (the sequence number in
//! the value). Nothing acknowledged leaves the family without a block or a `dropped` record.
//!
//! **Storage tiers.** Old blocks and their receipts can move from `blocks` and `receipts` to
//! zstd-compressed segment files in an archive folder ([`archive`]; records under `archive/`
//! in the default family); [`Storage::block`] and [`Storage::receipt`] read RocksDB first,
//! then the archive.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aurigraph_decision::SlotKind;
use aurigraph_decision::rollout::{RolloutRecord, RolloutStore};
use aurigraph_decision::{EngineError, StoreError};
use aurigraph_ledger::executor::Receipt;
use aurigraph_ledger::state::{Account, ShardedState, StateRoot};
use aurigraph_ledger::tx::{Address, TxHash};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};

pub mod archive;
pub mod block;

use crate::archive::{Archive, ArchiveRecovery, ArchiveRun, SegmentRecord};
use crate::block::{StoredBlock, status_from_u8};

/// Layout version written at creation; a database of another version is refused.
pub const STORAGE_FORMAT: u32 = 2;

const CF_STATE: &str = "state";
const CF_BLOCKS: &str = "blocks";
const CF_TX_INDEX: &str = "tx_index";
const CF_RECEIPTS: &str = "receipts";
const CF_MEMPOOL: &str = "mempool";
const CF_ROLLOUT: &str = "rollout";
const CF_TELEMETRY: &str = "telemetry";
const CF_DROPPED: &str = "dropped";
/// Column family of the Raft log: log index (u64 big-endian) to entry.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Column family of the Raft metadata: the vote, the committed and the last purged log ids.
pub const CF_RAFT_META: &str = "raft_meta";
const FAMILIES: [&str; 10] = [
    CF_STATE,
    CF_BLOCKS,
    CF_TX_INDEX,
    CF_RECEIPTS,
    CF_MEMPOOL,
    CF_ROLLOUT,
    CF_TELEMETRY,
    CF_DROPPED,
    CF_RAFT_LOG,
    CF_RAFT_META,
];

const KEY_HEAD: &[u8] = b"head";
/// In `raft_meta`: the Raft state machine's own state (last applied log id, membership).
const KEY_RAFT_STATE: &[u8] = b"state_machine";
const KEY_GENESIS: &[u8] = b"genesis";
const KEY_FORMAT: &[u8] = b"format";
const KEY_CHAIN: &[u8] = b"chain_id";
/// The last archived height (u64 LE; absent: nothing archived).
const KEY_ARCHIVED_TO: &[u8] = b"archive/to";
/// Prefix of the segment records: ++ first height (u64 BE) -> [`SegmentRecord`].
const KEY_ARCHIVE_SEG: &[u8] = b"archive/seg/";

/// A storage failure, with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB refused an operation (I/O error, lock held by another process, ...).
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored bytes do not decode: the database is corrupt.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// The database belongs to another chain or layout.
    #[error("{0}")]
    Mismatch(String),
    /// The archive folder could not be written or read.
    #[error("archive: {0}")]
    Archive(String),
    /// A recorded archive segment is missing.
    #[error("{0}")]
    ArchiveMissing(String),
    /// An archive segment does not match its record or does not decode.
    #[error("{0}")]
    ArchiveCorrupt(String),
    /// Syncing the write-ahead log to disk failed after a block was written
    /// ([`Storage::sync_wal`]): what was written may not survive a crash.
    #[error("syncing the write-ahead log failed: {0}")]
    Sync(String),
}

impl StorageError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::Db(_) => "E_STORAGE",
            StorageError::Corrupt(_) => "E_STORAGE_CORRUPT",
            StorageError::Mismatch(_) => "E_STORAGE_MISMATCH",
            StorageError::Archive(_) => "E_ARCHIVE_IO",
            StorageError::ArchiveMissing(_) => "E_ARCHIVE_MISSING",
            StorageError::ArchiveCorrupt(_) => "E_ARCHIVE_CORRUPT",
            StorageError::Sync(_) => "E_STORAGE_SYNC",
        }
    }
}

/// Result of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// The chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Height of the last committed block (0: the genesis).
    pub height: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// The state root after it.
    pub state_root: StateRoot,
}

impl Head {
    fn encode(&self) -> [u8; 72] {
        let mut out = [0u8; 72];
        out[..8].copy_from_slice(&self.height.to_le_bytes());
        out[8..40].copy_from_slice(&self.hash);
        out[40..].copy_from_slice(&self.state_root.0);
        out
    }

    fn decode(b: &[u8]) -> StorageResult<Self> {
        if b.len() != 72 {
            return Err(StorageError::Corrupt(format!("head of {} bytes", b.len())));
        }
        let mut height = [0u8; 8];
        height.copy_from_slice(&b[..8]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[8..40]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&b[40..]);
        Ok(Self {
            height: u64::from_le_bytes(height),
            hash,
            state_root: StateRoot(root),
        })
    }
}

/// Where a committed transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

/// What one block commit writes.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    /// The block.
    pub block: &'a StoredBlock,
    /// Accounts whose value changed.
    pub writes: &'a [(Address, Account)],
    /// Telemetry written (and pruned) in the same batch, if any.
    pub telemetry: Option<TelemetryWrite>,
    /// The Raft state machine's own state after this block (a replica of a cluster), kept in
    /// `raft_meta` under `state_machine` in the same batch.
    pub raft_state: Option<&'a [u8]>,
}

/// RocksDB's figures of [`Storage::rocksdb_figures`], in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RocksDbFigures {
    /// SST files on disk.
    pub sst_bytes: u64,
    /// Estimated live data (what compaction would keep).
    pub live_data_bytes: u64,
    /// Memtables in memory.
    pub memtable_bytes: u64,
    /// Estimated bytes compaction still has to rewrite.
    pub pending_compaction_bytes: u64,
}

/// An accepted transaction that left the mempool without committing: why, when, and the
/// transaction itself (so a query can still show it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DroppedTx {
    /// Stable code (`E_DROPPED_EVICTED`, `E_DROPPED_REPLACED`, `E_DROPPED_STALE`, or the code
    /// of the refusal when it was not admitted again on restart).
    pub code: String,
    /// Human-readable reason.
    pub reason: String,
    /// The head's height when it was dropped.
    pub height: u64,
    /// The signed transaction (hex of its canonical encoding). Left empty by the caller of
    /// [`Storage::settle_pending`], which fills it from the `mempool` family.
    pub tx: String,
}

/// One recorded submission in the `mempool` family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTx {
    /// Its hash (the key).
    pub hash: TxHash,
    /// Arrival sequence number: the order the node accepted it in.
    pub seq: u64,
    /// The signed transaction's encoding.
    pub bytes: Vec<u8>,
}

/// Telemetry writes: puts, then range deletes (`[from, to)`), all in the `telemetry` family.
#[derive(Debug, Default, Clone)]
pub struct TelemetryWrite {
    /// Keys and values to write.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Key ranges to delete, `[from, to)` (the retention bound).
    pub deletes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TelemetryWrite {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// The node's database.
pub struct Storage {
    db: DB,
    path: PathBuf,
    sync: bool,
    /// The cold tier, once [`Storage::open_archive`] opened it.
    archive: OnceLock<Archive>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

fn encode_account(a: &Account) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.balance.to_le_bytes());
    out[8..].copy_from_slice(&a.nonce.to_le_bytes());
    out
}

fn decode_account(b: &[u8]) -> StorageResult<Account> {
    if b.len() != 16 {
        return Err(StorageError::Corrupt(format!(
            "account of {} bytes",
            b.len()
        )));
    }
    let mut bal = [0u8; 8];
    bal.copy_from_slice(&b[..8]);
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&b[8..]);
    Ok(Account {
        balance: u64::from_le_bytes(bal),
        nonce: u64::from_le_bytes(nonce),
    })
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn block_key_height(k: &[u8]) -> StorageResult<u64> {
    let at: [u8; 8] = k
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("block key of {} bytes", k.len())))?;
    Ok(u64::from_be_bytes(at))
}

fn receipt_key(height: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Memtable size of the `mempool` family (see [`Storage::open`]).
const MEMPOOL_MEMTABLE_BYTES: usize = 4 << 20;

impl Storage {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path, sync: bool) -> StorageResult<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Small machines: bounded background work and open files.
        opts.increase_parallelism(2);
        opts.set_max_open_files(512);
        opts.set_keep_log_file_num(4);
        let cfs = FAMILIES.iter().map(|n| {
            let mut cf = Options::default();
            if *n == CF_MEMPOOL {
                // Pending submissions live from admission to their block: every one is a
                // put and soon a delete, keyed by a random hash. A 64 MiB memtable (the
                // default) holds a quarter of a million of them at full load, and each
                // insertion walks the skip list through cache misses (15 % of the request
                // handlers' time under `aurigraph load` at 38 k tx/s); a small memtable
                // keeps the walk short, and flushing it costs little (puts and their
                // deletes meet in it).
                cf.set_write_buffer_size(MEMPOOL_MEMTABLE_BYTES);
            }
            ColumnFamilyDescriptor::new(*n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let s = Self {
            db,
            path: dir.to_path_buf(),
            sync,
            archive: OnceLock::new(),
        };
        match s.db.get(KEY_FORMAT)? {
            None => {
                let mut w = WriteOptions::default();
                w.set_sync(true);
                s.db.put_opt(KEY_FORMAT, STORAGE_FORMAT.to_le_bytes(), &w)?;
            }
            Some(v) if v.as_slice() == STORAGE_FORMAT.to_le_bytes() => {}
            Some(v) if v.as_slice() == 1u32.to_le_bytes() => s.upgrade_from_1()?,
            Some(v) => {
                return Err(StorageError::Mismatch(format!(
                    "database layout {:?} is not version {STORAGE_FORMAT}",
                    v
                )));
            }
        }
        Ok(s)
    }

    /// Layout 1 kept bare transactions in the `mempool` family; layout 2 prefixes each with
    /// its arrival sequence. Layout 1 recorded no order, so the entries get sequence numbers
    /// in key order. One synced batch, with the new layout version.
    fn upgrade_from_1(&self) -> StorageResult<()> {
        let cf = self.cf(CF_MEMPOOL)?;
        let mut b = WriteBatch::default();
        for (seq, item) in self.db.iterator_cf(cf, IteratorMode::Start).enumerate() {
            let (k, v) = item?;
            let mut value = Vec::with_capacity(8 + v.len());
            value.extend_from_slice(&(seq as u64).to_be_bytes());
            value.extend_from_slice(&v);
            b.put_cf(cf, k, value);
        }
        b.put(KEY_FORMAT, STORAGE_FORMAT.to_le_bytes());
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(b, &w)?;
        Ok(())
    }

    /// The folder of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The RocksDB handle, for the consensus crate's Raft log store, which owns the families
    /// [`CF_RAFT_LOG`] and [`CF_RAFT_META`]. The other families are written through the
    /// methods of [`Storage`] only.
    pub fn db(&self) -> &DB {
        &self.db
    }

    fn cf(&self, name: &str) -> StorageResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Corrupt(format!("column family `{name}` is missing")))
    }

    fn write_options(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }

    /// The head, or `None` for a new database.
    pub fn head(&self) -> StorageResult<Option<Head>> {
        self.db.get(KEY_HEAD)?.map(|b| Head::decode(&b)).transpose()
    }

    /// The genesis hash and chain id recorded at creation.
    pub fn genesis(&self) -> StorageResult<Option<([u8; 32], u32)>> {
        let (Some(g), Some(c)) = (self.db.get(KEY_GENESIS)?, self.db.get(KEY_CHAIN)?) else {
            return Ok(None);
        };
        let hash: [u8; 32] = g
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Corrupt("genesis hash".into()))?;
        let chain: [u8; 4] = c
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::Corrupt("chain id".into()))?;
        Ok(Some((hash, u32::from_le_bytes(chain))))
    }

    /// Writes the genesis state and head of a new database, in one synced batch.
    pub fn init_genesis(
        &self,
        genesis_hash: [u8; 32],
        state: &ShardedState,
    ) -> StorageResult<Head> {
        let cf = self.cf(CF_STATE)?;
        let mut b = WriteBatch::default();
        for (addr, acc) in state.iter() {
            b.put_cf(cf, addr.0, encode_account(acc));
        }
        let head = Head {
            height: 0,
            hash: genesis_hash,
            state_root: state.root(),
        };
        b.put(KEY_GENESIS, genesis_hash);
        b.put(KEY_CHAIN, state.chain_id().to_le_bytes());
        b.put(KEY_HEAD, head.encode());
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(b, &w)?;
        Ok(head)
    }

    /// The committed state, read back whole, with `shards` storage shards; its root is
    /// recomputed from scratch and must equal the head's.
    pub fn load_state(&self, chain_id: u32, shards: usize) -> StorageResult<ShardedState> {
        let mut state = ShardedState::new(chain_id, shards)
            .map_err(|e| StorageError::Mismatch(format!("[{}] {e}", e.code())))?;
        let cf = self.cf(CF_STATE)?;
        let mut writes = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            let addr: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("state key of {} bytes", k.len())))?;
            writes.push((Address(addr), decode_account(&v)?));
        }
        writes.sort_by_key(|a| a.0);
        state.apply(&writes);
        if let Some(head) = self.head()? {
            let root = state.recompute_root();
            if root != head.state_root {
                return Err(StorageError::Corrupt(format!(
                    "the stored state's root {root} is not the head's {} (height {})",
                    head.state_root, head.height
                )));
            }
        }
        Ok(state)
    }

    /// Commits a block atomically (see the module docs for what the batch holds), synced
    /// when the storage syncs.
    pub fn commit_block(&self, w: &BlockWrite<'_>) -> StorageResult<Head> {
        self.write_block(w, self.sync)
    }

    /// [`Storage::commit_block`] without waiting for the disk: the batch is in the
    /// write-ahead log and readable at once, durable after [`Storage::sync_wal`] (or any
    /// later synced write: the log is one sequence, so syncing a later write syncs this one).
    /// The node calls this inside its commit section and syncs after leaving it, so that
    /// submissions are not held behind the block's fsync; it keeps the block from its
    /// readers until the sync returns.
    pub fn commit_block_unsynced(&self, w: &BlockWrite<'_>) -> StorageResult<Head> {
        self.write_block(w, false)
    }

    /// Syncs the write-ahead log (when the storage syncs): every write before it is then on
    /// disk. Fails with `E_STORAGE_SYNC`.
    pub fn sync_wal(&self) -> StorageResult<()> {
        if self.sync {
            self.db
                .flush_wal(true)
                .map_err(|e| StorageError::Sync(e.to_string()))?;
        }
        Ok(())
    }

    fn write_block(&self, w: &BlockWrite<'_>, sync: bool) -> StorageResult<Head> {
        let block = w.block;
        let height = block.header.height;
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes(), block.encode());
        let index = self.cf(CF_TX_INDEX)?;
        let receipts = self.cf(CF_RECEIPTS)?;
        let mempool = self.cf(CF_MEMPOOL)?;
        for (i, (tx, r)) in block.txs.iter().zip(&block.receipts).enumerate() {
            let hash = tx.hash();
            let i = i as u32;
            let mut loc = [0u8; 12];
            loc[..8].copy_from_slice(&height.to_le_bytes());
            loc[8..].copy_from_slice(&i.to_le_bytes());
            b.put_cf(index, hash.0, loc);
            let mut rv = [0u8; 9];
            rv[0] = r.status as u8;
            rv[1..].copy_from_slice(&r.fee_charged.to_le_bytes());
            b.put_cf(receipts, receipt_key(height, i), rv);
            b.delete_cf(mempool, hash.0);
        }
        let state = self.cf(CF_STATE)?;
        for (addr, acc) in w.writes {
            // The state drops default accounts; so does the database.
            if *acc == Account::default() {
                b.delete_cf(state, addr.0);
            } else {
                b.put_cf(state, addr.0, encode_account(acc));
            }
        }
        if let Some(t) = &w.telemetry {
            self.telemetry_into(&mut b, t)?;
        }
        if let Some(r) = w.raft_state {
            b.put_cf(self.cf(CF_RAFT_META)?, KEY_RAFT_STATE, r);
        }
        let head = Head {
            height,
            hash: block.hash(),
            state_root: block.header.state_root,
        };
        b.put(KEY_HEAD, head.encode());
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(b, &opts)?;
        Ok(head)
    }

    /// The head and every account of the committed state, read from one RocksDB snapshot
    /// (so they match even while blocks commit), accounts in address order. What a replica
    /// sends as its state snapshot.
    pub fn state_snapshot(&self) -> StorageResult<(Head, Vec<(Address, Account)>)> {
        let snap = self.db.snapshot();
        let head = snap
            .get(KEY_HEAD)?
            .map(|b| Head::decode(&b))
            .transpose()?
            .ok_or_else(|| StorageError::Corrupt("no head: the database has no genesis".into()))?;
        let mut accounts = Vec::new();
        for item in snap.iterator_cf(self.cf(CF_STATE)?, IteratorMode::Start) {
            let (k, v) = item?;
            let addr: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("state key of {} bytes", k.len())))?;
            accounts.push((Address(addr), decode_account(&v)?));
        }
        Ok((head, accounts))
    }

    /// Replaces the committed state with a snapshot's, in one synced batch: every account
    /// removed, the snapshot's `accounts` written, the head set to `head`, and the Raft state
    /// machine's state set to `raft_state`. Blocks, the transaction index and receipts stay as
    /// they are: a replica that installs a snapshot holds no blocks between its old head and
    /// the snapshot's.
    pub fn install_state(
        &self,
        head: &Head,
        accounts: &[(Address, Account)],
        raft_state: &[u8],
    ) -> StorageResult<()> {
        let state = self.cf(CF_STATE)?;
        let mut b = WriteBatch::default();
        // Every key of the family is 32 bytes, so all are below 33 bytes of 0xff.
        b.delete_range_cf(state, [0u8; 32].as_slice(), [0xffu8; 33].as_slice());
        for (addr, acc) in accounts {
            if *acc != Account::default() {
                b.put_cf(state, addr.0, encode_account(acc));
            }
        }
        b.put(KEY_HEAD, head.encode());
        b.put_cf(self.cf(CF_RAFT_META)?, KEY_RAFT_STATE, raft_state);
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(b, &w)?;
        Ok(())
    }

    /// Deletes every block below `height`, with its transaction index entries and receipts,
    /// in one batch (a slim replica keeping only recent blocks). The head and the state are
    /// untouched. Returns how many blocks were deleted.
    pub fn prune_blocks(&self, height: u64) -> StorageResult<usize> {
        let blocks = self.cf(CF_BLOCKS)?;
        let index = self.cf(CF_TX_INDEX)?;
        let mut b = WriteBatch::default();
        let mut n = 0;
        for item in self.db.iterator_cf(blocks, IteratorMode::Start) {
            let (k, v) = item?;
            let at: [u8; 8] = k
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("block key of {} bytes", k.len())))?;
            if u64::from_be_bytes(at) >= height {
                break;
            }
            let block = StoredBlock::decode(&v).map_err(|e| StorageError::Corrupt(e.0))?;
            for tx in &block.txs {
                b.delete_cf(index, tx.hash().0);
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        b.delete_range_cf(blocks, 0u64.to_be_bytes(), height.to_be_bytes());
        b.delete_range_cf(
            self.cf(CF_RECEIPTS)?,
            receipt_key(0, 0),
            receipt_key(height, 0),
        );
        self.db.write_opt(b, &self.write_options())?;
        Ok(n)
    }

    /// Opens the cold tier in `dir` (see [`archive`]): removes what a crash left unrecorded,
    /// and verifies every recorded segment (`E_ARCHIVE_MISSING`, `E_ARCHIVE_CORRUPT`). Once
    /// opened, reads of archived heights answer from it. A second call changes nothing.
    pub fn open_archive(&self, dir: &Path) -> StorageResult<ArchiveRecovery> {
        if let Some(a) = self.archive.get() {
            let (segments, bytes) = a.stats();
            return Ok(ArchiveRecovery {
                segments,
                bytes,
                removed: Vec::new(),
            });
        }
        let (archive, recovery) = Archive::open(dir, self.archive_records()?)?;
        // Only this call sets it; a racing second opener's archive is dropped.
        let _ = self.archive.set(archive);
        Ok(recovery)
    }

    /// The cold tier, when opened.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.get()
    }

    /// The segments RocksDB records, by first height.
    pub fn archive_records(&self) -> StorageResult<Vec<SegmentRecord>> {
        let mut out = Vec::new();
        let iter = self.db.iterator(IteratorMode::From(
            KEY_ARCHIVE_SEG,
            rocksdb::Direction::Forward,
        ));
        for item in iter {
            let (k, v) = item?;
            let Some(first) = k.strip_prefix(KEY_ARCHIVE_SEG) else {
                break;
            };
            let first: [u8; 8] = first
                .try_into()
                .map_err(|_| StorageError::Corrupt("archive record key".into()))?;
            out.push(SegmentRecord::decode(u64::from_be_bytes(first), &v)?);
        }
        Ok(out)
    }

    /// The last archived height (0: nothing archived).
    pub fn archived_to(&self) -> StorageResult<u64> {
        Ok(self
            .db
            .get(KEY_ARCHIVED_TO)?
            .and_then(|v| v.as_slice().try_into().ok())
            .map_or(0, u64::from_le_bytes))
    }

    /// One archive step: when the oldest hot blocks above the archived height fill a segment
    /// of `segment_blocks` heights that ends below `below`, writes that segment durably, then
    /// deletes its blocks and receipts from RocksDB and records it, in one synced batch (see
    /// [`archive`] for the crash story). `None`: nothing to archive yet. The archive must be
    /// open ([`Storage::open_archive`]).
    pub fn archive_step(
        &self,
        below: u64,
        segment_blocks: u64,
    ) -> StorageResult<Option<ArchiveRun>> {
        let Some(archive) = self.archive.get() else {
            return Err(StorageError::Archive("the archive is not open".into()));
        };
        let segment_blocks = segment_blocks.max(1);
        let blocks_cf = self.cf(CF_BLOCKS)?;
        // The first hot block above the archived height (a replica that installed a snapshot
        // may have none for a while).
        let from = self.archived_to()?.saturating_add(1);
        let mut iter = self.db.iterator_cf(
            blocks_cf,
            IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Forward),
        );
        let Some(item) = iter.next() else {
            return Ok(None);
        };
        let (k, _) = item?;
        let first = block_key_height(&k)?;
        let last = first.saturating_add(segment_blocks - 1);
        if last >= below {
            return Ok(None);
        }
        let mut blocks = Vec::with_capacity(segment_blocks as usize);
        let iter = self.db.iterator_cf(
            blocks_cf,
            IteratorMode::From(&first.to_be_bytes(), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            let h = block_key_height(&k)?;
            if h > last {
                break;
            }
            blocks.push((h, v.to_vec()));
        }
        let segment = archive.write_segment(first, last, &blocks)?;
        let end = last.saturating_add(1);
        let mut b = WriteBatch::default();
        b.delete_range_cf(blocks_cf, first.to_be_bytes(), end.to_be_bytes());
        b.delete_range_cf(
            self.cf(CF_RECEIPTS)?,
            receipt_key(first, 0),
            receipt_key(end, 0),
        );
        let mut key = KEY_ARCHIVE_SEG.to_vec();
        key.extend_from_slice(&first.to_be_bytes());
        b.put(key, segment.encode());
        b.put(KEY_ARCHIVED_TO, last.to_le_bytes());
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(b, &w)?;
        // Reclaim the range's disk now rather than at the next natural compaction, so the
        // hot tier's size follows the bound.
        self.db.compact_range_cf(
            blocks_cf,
            Some(first.to_be_bytes()),
            Some(end.to_be_bytes()),
        );
        self.db.compact_range_cf(
            self.cf(CF_RECEIPTS)?,
            Some(receipt_key(first, 0)),
            Some(receipt_key(end, 0)),
        );
        Ok(Some(ArchiveRun { segment }))
    }

    /// Rows of the `blocks` family (an O(rows) scan: tests and diagnostics).
    pub fn hot_block_count(&self) -> StorageResult<usize> {
        let mut n = 0;
        for item in self
            .db
            .iterator_cf(self.cf(CF_BLOCKS)?, IteratorMode::Start)
        {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// RocksDB's own figures, summed over the column families: SST files, estimated live
    /// data, memtables, and bytes waiting for compaction (what an operator watches for disk
    /// and write stalls). A property RocksDB does not report counts 0.
    pub fn rocksdb_figures(&self) -> RocksDbFigures {
        let sum = |name: &str| -> u64 {
            FAMILIES
                .iter()
                .chain(std::iter::once(&"default"))
                .filter_map(|f| self.db.cf_handle(f))
                .filter_map(|cf| self.db.property_int_value_cf(cf, name).ok().flatten())
                .sum()
        };
        RocksDbFigures {
            sst_bytes: sum("rocksdb.total-sst-files-size"),
            live_data_bytes: sum("rocksdb.estimate-live-data-size"),
            memtable_bytes: sum("rocksdb.cur-size-all-mem-tables"),
            pending_compaction_bytes: sum("rocksdb.estimate-pending-compaction-bytes"),
        }
    }

    /// The Raft state machine's own state, as last written with a block or by
    /// [`Storage::save_raft_state`].
    pub fn raft_state(&self) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_RAFT_META)?, KEY_RAFT_STATE)?)
    }

    /// Writes the Raft state machine's own state alone (synced).
    pub fn save_raft_state(&self, state: &[u8]) -> StorageResult<()> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db
            .put_cf_opt(self.cf(CF_RAFT_META)?, KEY_RAFT_STATE, state, &w)?;
        Ok(())
    }

    /// The block at `height`: from the `blocks` family, else from the archive segment that
    /// covers it (when the archive is open).
    pub fn block(&self, height: u64) -> StorageResult<Option<StoredBlock>> {
        let hot = self
            .db
            .get_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())?
            .map(|b| StoredBlock::decode(&b).map_err(|e| StorageError::Corrupt(e.0)))
            .transpose()?;
        match (hot, self.archive.get()) {
            (Some(b), _) => Ok(Some(b)),
            (None, Some(a)) => a.block(height),
            (None, None) => Ok(None),
        }
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, hash: &TxHash) -> StorageResult<Option<TxLocation>> {
        let Some(v) = self.db.get_cf(self.cf(CF_TX_INDEX)?, hash.0)? else {
            return Ok(None);
        };
        if v.len() != 12 {
            return Err(StorageError::Corrupt(format!(
                "tx index of {} bytes",
                v.len()
            )));
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&v[..8]);
        let mut i = [0u8; 4];
        i.copy_from_slice(&v[8..]);
        Ok(Some(TxLocation {
            height: u64::from_le_bytes(h),
            index: u32::from_le_bytes(i),
        }))
    }

    /// The receipt of the transaction at `loc`.
    pub fn receipt(&self, loc: TxLocation, hash: TxHash) -> StorageResult<Option<Receipt>> {
        let Some(v) = self
            .db
            .get_cf(self.cf(CF_RECEIPTS)?, receipt_key(loc.height, loc.index))?
        else {
            // Archived: the receipt is in the block.
            let Some(a) = self.archive.get() else {
                return Ok(None);
            };
            return Ok(a.block(loc.height)?.and_then(|b| {
                b.receipts.get(loc.index as usize).map(|r| Receipt {
                    tx_hash: hash,
                    status: r.status,
                    fee_charged: r.fee_charged,
                })
            }));
        };
        if v.len() != 9 {
            return Err(StorageError::Corrupt(format!(
                "receipt of {} bytes",
                v.len()
            )));
        }
        let mut fee = [0u8; 8];
        fee.copy_from_slice(&v[1..]);
        Ok(Some(Receipt {
            tx_hash: hash,
            status: status_from_u8(v[0]).map_err(|e| StorageError::Corrupt(e.0))?,
            fee_charged: u64::from_le_bytes(fee),
        }))
    }

    /// Records submissions that passed admission (durably when `sync`), before they enter
    /// the mempool and before they are acknowledged: `(hash, arrival sequence, encoding)`.
    pub fn put_pending(&self, txs: &[(TxHash, u64, &[u8])]) -> StorageResult<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let cf = self.cf(CF_MEMPOOL)?;
        let mut b = WriteBatch::default();
        for (hash, seq, bytes) in txs {
            let mut value = Vec::with_capacity(8 + bytes.len());
            value.extend_from_slice(&seq.to_be_bytes());
            value.extend_from_slice(bytes);
            b.put_cf(cf, hash.0, value);
        }
        self.db.write_opt(b, &self.write_options())?;
        Ok(())
    }

    /// Removes recorded submissions that will not commit, in one batch: `forget` are
    /// removed without a trace (they were never acknowledged: refused by the mempool after
    /// the record was written), `dropped` are removed and recorded in the `dropped` family.
    pub fn settle_pending(
        &self,
        forget: &[TxHash],
        dropped: &[(TxHash, DroppedTx)],
    ) -> StorageResult<()> {
        if forget.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let mempool = self.cf(CF_MEMPOOL)?;
        let cf = self.cf(CF_DROPPED)?;
        let mut b = WriteBatch::default();
        for h in forget {
            b.delete_cf(mempool, h.0);
        }
        for (h, d) in dropped {
            let mut d = d.clone();
            if d.tx.is_empty()
                && let Some(v) = self.db.get_cf(mempool, h.0)?
            {
                // The recorded value: sequence (8 bytes), then the transaction.
                d.tx = v.get(8..).map(to_hex).unwrap_or_default();
            }
            b.delete_cf(mempool, h.0);
            let v = serde_json::to_vec(&d).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            b.put_cf(cf, h.0, v);
        }
        self.db.write_opt(b, &self.write_options())?;
        Ok(())
    }

    /// Every recorded submission not yet committed or dropped, in arrival order.
    pub fn pending(&self) -> StorageResult<Vec<PendingTx>> {
        let cf = self.cf(CF_MEMPOOL)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            let hash: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("mempool key of {} bytes", k.len())))?;
            if v.len() < 8 {
                return Err(StorageError::Corrupt(format!(
                    "mempool value of {} bytes",
                    v.len()
                )));
            }
            let (seq, bytes) = v.split_at(8);
            let mut s = [0u8; 8];
            s.copy_from_slice(seq);
            out.push(PendingTx {
                hash: TxHash(hash),
                seq: u64::from_be_bytes(s),
                bytes: bytes.to_vec(),
            });
        }
        out.sort_by_key(|p| (p.seq, p.hash));
        Ok(out)
    }

    /// How many submissions are recorded in the `mempool` family.
    pub fn pending_count(&self) -> StorageResult<usize> {
        let cf = self.cf(CF_MEMPOOL)?;
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// The record of a dropped transaction.
    pub fn dropped(&self, hash: &TxHash) -> StorageResult<Option<DroppedTx>> {
        self.db
            .get_cf(self.cf(CF_DROPPED)?, hash.0)?
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| StorageError::Corrupt(format!("dropped record: {e}")))
            })
            .transpose()
    }

    /// Deletes the dropped records of heights below `height` (the retention bound); how many.
    pub fn prune_dropped(&self, height: u64) -> StorageResult<usize> {
        let cf = self.cf(CF_DROPPED)?;
        let mut b = WriteBatch::default();
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            // An unreadable record is pruned too: it could not be served anyway.
            let keep = serde_json::from_slice::<DroppedTx>(&v).is_ok_and(|d| d.height >= height);
            if !keep {
                b.delete_cf(cf, k);
                n += 1;
            }
        }
        if n > 0 {
            self.db.write_opt(b, &self.write_options())?;
        }
        Ok(n)
    }

    fn telemetry_into(&self, b: &mut WriteBatch, t: &TelemetryWrite) -> StorageResult<()> {
        let cf = self.cf(CF_TELEMETRY)?;
        for (k, v) in &t.puts {
            b.put_cf(cf, k, v);
        }
        for (from, to) in &t.deletes {
            b.delete_range_cf(cf, from, to);
        }
        Ok(())
    }

    /// Writes telemetry outside a block (decisions taken between blocks).
    pub fn write_telemetry(&self, t: &TelemetryWrite) -> StorageResult<()> {
        if t.is_empty() {
            return Ok(());
        }
        let mut b = WriteBatch::default();
        self.telemetry_into(&mut b, t)?;
        self.db.write_opt(b, &self.write_options())?;
        Ok(())
    }

    /// The telemetry value stored under `key`.
    pub fn telemetry(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_TELEMETRY)?, key)?)
    }

    /// Calls `f` on every telemetry record with `from <= key < to`, in key order; stops at
    /// the first error `f` returns.
    pub fn scan_telemetry<E: From<StorageError>>(
        &self,
        from: &[u8],
        to: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let cf = self.cf(CF_TELEMETRY)?;
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(from, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(StorageError::from)?;
            if k.as_ref() >= to {
                break;
            }
            f(&k, &v)?;
        }
        Ok(())
    }

    /// Opens the database of a (possibly running) node read-only, for exports: it sees
    /// what was flushed or logged when it opened, and never writes.
    /// The `raft_*` families are opened only where they exist: a database that no node of this
    /// version has opened for writing has none.
    pub fn open_read_only(dir: &Path) -> StorageResult<Self> {
        let opts = Options::default();
        let existing = DB::list_cf(&opts, dir)?;
        let families = FAMILIES.iter().filter(|name| {
            ![CF_RAFT_LOG, CF_RAFT_META].contains(*name) || existing.iter().any(|e| e == *name)
        });
        let db = DB::open_cf_for_read_only(&opts, dir, families, false)?;
        Ok(Self {
            db,
            path: dir.to_path_buf(),
            sync: false,
            archive: OnceLock::new(),
        })
    }
}

/// The rollout state in the `rollout` column family.
#[derive(Debug, Clone)]
pub struct RocksRolloutStore {
    storage: Arc<Storage>,
}

impl RocksRolloutStore {
    /// A store over `storage`.
    pub fn new(storage: Arc<Storage>) -> Arc<Self> {
        Arc::new(Self { storage })
    }
}

/// A RocksDB failure as the rollout store's backend error.
fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl RolloutStore for RocksRolloutStore {
    fn load(&self, slot: SlotKind) -> Result<Option<RolloutRecord>, EngineError> {
        let cf = self.storage.cf(CF_ROLLOUT).map_err(backend)?;
        let Some(v) = self.storage.db.get_cf(cf, slot.as_str()).map_err(backend)? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { slot, source }.into())
    }

    fn save(&self, record: &RolloutRecord) -> Result<(), EngineError> {
        let cf = self.storage.cf(CF_ROLLOUT).map_err(backend)?;
        let v = serde_json::to_vec(record).map_err(|source| StoreError::Encode {
            slot: record.slot,
            source,
        })?;
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.storage
            .db
            .put_cf_opt(cf, record.slot.as_str(), v, &w)
            .map_err(|e| backend(e).into())
    }
}
