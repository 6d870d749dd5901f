//! [`LedgerApplier`]: a [`BlockApplier`] over an in-memory
//! [`ShardedState`] and one of the ledger's executors.
//!
//! Applying a block decodes its transactions ([`SignedTransaction::decode`]; signatures are
//! not verified here: the leader's admission verified them before the block was proposed),
//! executes them (side-effect free), commits the write set, and compares the new root with
//! the block's `state_root`. On a mismatch the accounts the block wrote are put back to their
//! values before it, so the state and its root are those of the previous block.
//!
//! [`LedgerApplier::propose`] computes the root a block would reach, the same way, and puts
//! the state back whatever the outcome: a leader fills `state_root` with it before proposing.
//!
//! Everything is in memory, the Raft state too (see the restart notes in
//! [`state_machine`](crate::state_machine)).
//!
//! The snapshot is `postcard(LedgerSnapshot)`: a format version, the chain id, the height,
//! the state root, and every account (address, balance, nonce) in address order.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use aurigraph_ledger::executor::{BlockExecutor, ExecutorConfig, commit};
use aurigraph_ledger::state::{Account, Genesis, ShardedState, StateRoot, StateView};
use aurigraph_ledger::tx::{Address, SignedTransaction};

use crate::state_machine::{ApplyError, BlockApplier, check_snapshot, snapshot_state};
use crate::types::{BlockApplied, BlockEntry};

/// Version of the snapshot format.
const SNAPSHOT_VERSION: u8 = 1;

/// A ledger state snapshot.
#[derive(Serialize, Deserialize)]
struct LedgerSnapshot {
    version: u8,
    chain_id: u32,
    height: u64,
    root: [u8; 32],
    accounts: Vec<(Address, Account)>,
}

struct Inner {
    state: ShardedState,
    height: u64,
    raft_state: Option<Vec<u8>>,
}

/// A [`BlockApplier`] over an in-memory state.
pub struct LedgerApplier {
    executor: Box<dyn BlockExecutor>,
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for LedgerApplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("LedgerApplier")
            .field("executor", &self.executor.kind())
            .field("height", &inner.height)
            .field("root", &inner.state.root())
            .finish_non_exhaustive()
    }
}

impl LedgerApplier {
    /// An applier at height 0 with the genesis state, `shards` storage shards and the
    /// executor `executor` builds.
    pub fn new(
        genesis: &Genesis,
        shards: usize,
        executor: ExecutorConfig,
    ) -> Result<Self, ApplyError> {
        let state = ShardedState::from_genesis(genesis, shards)
            .map_err(|e| ApplyError::Setup(format!("genesis: [{}] {e}", e.code())))?;
        Self::from_state(state, 0, executor)
    }

    /// An applier resuming from `state` at `height`.
    pub fn from_state(
        state: ShardedState,
        height: u64,
        executor: ExecutorConfig,
    ) -> Result<Self, ApplyError> {
        let executor = executor
            .build()
            .map_err(|e| ApplyError::Setup(format!("executor: [{}] {e}", e.code())))?;
        Ok(Self {
            executor,
            inner: RwLock::new(Inner {
                state,
                height,
                raft_state: None,
            }),
        })
    }

    /// Height of the last applied block (0: genesis).
    pub fn height(&self) -> u64 {
        self.inner.read().height
    }

    /// The current state root.
    pub fn root(&self) -> StateRoot {
        self.inner.read().state.root()
    }

    /// The account at `address`.
    pub fn account(&self, address: &Address) -> Account {
        self.inner.read().state.account(address)
    }

    /// Number of (non-default) accounts.
    pub fn accounts(&self) -> usize {
        self.inner.read().state.len()
    }

    /// The block at `height` (the next one: else [`ApplyError::BlockHeight`]) with `txs`,
    /// its `state_root` set to the root executing them on the current state reaches. The
    /// state is unchanged.
    pub fn propose(
        &self,
        height: u64,
        parent: [u8; 32],
        timestamp_ms: u64,
        txs: Vec<Vec<u8>>,
    ) -> Result<BlockEntry, ApplyError> {
        let mut inner = self.inner.write();
        let (root, before) = self.execute_block(&mut inner, height, &txs)?;
        revert(&mut inner, &before);
        Ok(BlockEntry {
            height,
            parent,
            timestamp_ms,
            state_root: root.0,
            txs,
        })
    }

    /// Executes and commits the block at `height`; returns the new root and the accounts
    /// it wrote as they were before.
    fn execute_block(
        &self,
        inner: &mut Inner,
        height: u64,
        txs: &[Vec<u8>],
    ) -> Result<(StateRoot, Vec<(Address, Account)>), ApplyError> {
        if inner.height.checked_add(1) != Some(height) {
            return Err(ApplyError::BlockHeight {
                applied: inner.height,
                got: height,
            });
        }
        let block = txs
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                SignedTransaction::decode(bytes).map(Arc::new).map_err(|e| {
                    ApplyError::BlockDecode {
                        height,
                        index,
                        tx_code: e.code(),
                        reason: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let execution = self
            .executor
            .execute(&inner.state, inner.state.chain_id(), &block)
            .map_err(|e| ApplyError::Execution {
                height,
                exec_code: e.code(),
                reason: e.to_string(),
            })?;
        let before: Vec<(Address, Account)> = execution
            .write_set
            .iter()
            .map(|(a, _)| (*a, inner.state.account(a)))
            .collect();
        let outcome = commit(&mut inner.state, execution);
        Ok((outcome.state_root, before))
    }
}

/// Puts back the accounts a block wrote.
fn revert(inner: &mut Inner, before: &[(Address, Account)]) {
    inner.state.apply(before);
}

impl BlockApplier for LedgerApplier {
    fn apply(&self, entry: &BlockEntry, raft_state: &[u8]) -> Result<BlockApplied, ApplyError> {
        let mut inner = self.inner.write();
        let (root, before) = self.execute_block(&mut inner, entry.height, &entry.txs)?;
        if root.0 != entry.state_root {
            revert(&mut inner, &before);
            return Err(ApplyError::RootMismatch {
                height: entry.height,
                expected: StateRoot(entry.state_root),
                got: root,
            });
        }
        inner.height = entry.height;
        inner.raft_state = Some(raft_state.to_vec());
        Ok(BlockApplied {
            height: entry.height,
            state_root: root.0,
        })
    }

    fn save_raft_state(&self, raft_state: &[u8]) -> Result<(), ApplyError> {
        self.inner.write().raft_state = Some(raft_state.to_vec());
        Ok(())
    }

    fn raft_state(&self) -> Result<Option<Vec<u8>>, ApplyError> {
        Ok(self.inner.read().raft_state.clone())
    }

    fn snapshot(&self) -> Result<(u64, Vec<u8>), ApplyError> {
        let inner = self.inner.read();
        let snapshot = LedgerSnapshot {
            version: SNAPSHOT_VERSION,
            chain_id: inner.state.chain_id(),
            height: inner.height,
            root: inner.state.root().0,
            accounts: inner.state.iter().map(|(a, acc)| (*a, *acc)).collect(),
        };
        let bytes = postcard::to_stdvec(&snapshot)
            .map_err(|e| ApplyError::Snapshot(format!("encode: {e}")))?;
        Ok((inner.height, bytes))
    }

    fn install(&self, height: u64, data: &[u8], raft_state: &[u8]) -> Result<(), ApplyError> {
        let snapshot: LedgerSnapshot =
            postcard::from_bytes(data).map_err(|e| ApplyError::Snapshot(format!("decode: {e}")))?;
        check_snapshot(snapshot.version, SNAPSHOT_VERSION, snapshot.height, height)?;
        let (chain_id, shards) = {
            let inner = self.inner.read();
            (inner.state.chain_id(), inner.state.shard_count())
        };
        if snapshot.chain_id != chain_id {
            return Err(ApplyError::Snapshot(format!(
                "chain {} (this replica's is {chain_id})",
                snapshot.chain_id
            )));
        }
        let state = snapshot_state(chain_id, shards, &snapshot.accounts, snapshot.root)?;
        let mut inner = self.inner.write();
        inner.state = state;
        inner.height = height;
        inner.raft_state = Some(raft_state.to_vec());
        Ok(())
    }
}
