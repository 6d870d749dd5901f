//! Block execution: three executors with one result, the sequential one.
//!
//! An executor takes the committed state (read only), the chain id and a block's transactions
//! in block order, and returns an [`Execution`]: a [`Receipt`] per transaction in block order,
//! the block's write set and the fees. [`commit`] applies the write set to a
//! [`ShardedState`], which updates the state root incrementally, and returns the
//! [`BlockOutcome`]. Executors never check signatures: admission checked them before a
//! transaction entered the mempool.
//!
//! ## Execution rules (the sequential definition)
//!
//! For each transaction, in block order:
//!
//! 1. **Skips** (checked in this order; a skip changes nothing, not even the nonce, and
//!    charges no fee): another `chain_id` ([`TxStatus::WrongChain`]); a field rule broken
//!    ([`TxStatus::Invalid`], as [`Transaction::validate`]); the sender is the fee sink
//!    ([`TxStatus::ReservedSender`]); `nonce` is not the sender's next nonce
//!    ([`TxStatus::BadNonce`]); the sender's nonce is `u64::MAX`
//!    ([`TxStatus::NonceExhausted`]); the sender's balance is below the fee
//!    ([`TxStatus::CannotPayFee`]).
//! 2. **Charge**: the fee leaves the sender and the sender's nonce advances by one.
//! 3. **Operation**: if the balance left covers the amount sent (the sum of all outputs of a
//!    multi-transfer) and no recipient's balance would exceed `u64::MAX`, every output
//!    applies ([`TxStatus::Success`]); otherwise none does
//!    ([`TxStatus::InsufficientFunds`], [`TxStatus::BalanceOverflow`]): a multi-transfer is
//!    all or nothing, and fee and nonce stay charged. Arithmetic is checked everywhere;
//!    repeated recipients of a multi-transfer add up in output order.
//!
//! **Fees.** The fees of a block go to [`FEE_SINK`], credited **once, after the last
//! transaction**, outside the parallel part: crediting the sink per transaction would make
//! every pair of transactions conflict. Fees of a block are therefore not spendable within
//! it, and a transfer *to* the sink is an ordinary transfer. If the credit would overflow
//! the sink's balance, the sink is credited up to `u64::MAX` and the excess is burned
//! ([`Execution::fees_burned`]). [`FEE_SINK`] is not a valid Ed25519 key, so no signature
//! can ever spend from it; the executor also skips it as a sender.
//!
//! **Write set.** Every account whose value after the block differs from its value before,
//! sorted by address; an account back at the default value (balance 0, nonce 0) is written
//! as such and [`ShardedState::apply`] deletes it.
//!
//! ## The three executors
//!
//! | kind | needs declared accounts | speculation | on 2 cores (see below) |
//! |---|---|---|---|
//! | [`SequentialExecutor`] | no | no | the oracle and the fallback |
//! | [`ScheduledExecutor`] | yes ([`Transaction::accounts`]) | no | the default |
//! | [`BlockStmExecutor`] | no | yes (Block-STM) | for operations whose accesses are unknown in advance |
//!
//! All three produce identical receipts, write sets and fees (property tests in
//! `engine/ledger/tests/executor_props.rs` check each parallel executor against the sequential
//! one with 1, 2 and 8 threads, Block-STM also with 16); only [`ExecStats`] differs.
//!
//! ## Measurements and the default
//!
//! `EXECUTOR_QUICK_ROUNDS=40 cargo bench -p aurigraph-benches --bench executor` (the
//! executors round-robin on the same blocks), blocks of 10,000 transfers between 110,000
//! accounts, median time per block on the shared 2-core machine (2026-12-01 23:09, load
//! average 1.5), in brackets the median of the per-round ratios to the sequential one; other
//! runs, with their commands and dates, are in the *Executor* section of
//! `docs/PERFORMANCE.md`:
//!
//! | contention | sequential | scheduled x1 | scheduled x2 | Block-STM x1 | Block-STM x2 |
//! |---|---|---|---|---|---|
//! | low (1 % pay one of 4 hot accounts) | 10.6 ms | 5.89 ms (1.97x) | 4.39 ms (2.42x) | 29.8 ms | 25.6 ms |
//! | full (every transfer pays one account) | 6.33 ms | 4.02 ms (1.59x) | 3.46 ms (1.88x, runs serially) | 21.7 ms | 24.5 ms |
//!
//! The Block-STM columns are the implementation before its rewrite (2026-12-04: state read
//! once per account, no allocation or re-hashing on the hot path, counters on their own
//! cache lines, the sequential executor for one thread); see *Scaling with cores* in
//! `docs/PERFORMANCE.md` and the `scaling` bench binary for its current curve. Block-STM
//! also stops speculating when its conflicts per execution run high, and finishes the block
//! sequentially on top of its validated prefix ([`AbortGuard`], counted in
//! [`ExecStats::sequential_tail`]).
//!
//! Reads of the state (cache misses) dominate a transfer: the scheduler reads a block's
//! accounts in overlapped batches while planning ([`StateView::accounts`]), which is most of
//! its lead even on one thread. Block-STM's bookkeeping (version maps, read sets, locks,
//! the scheduler's counters) costs about as much as a transfer itself: on the 2-core machine
//! (`scaling`, 2026-12-05) Block-STM x2 ran 1.21-1.23x the sequential executor at low
//! contention and 1.03-1.18x with every transaction conflicting (there the chain pre-check
//! runs the block sequentially), the scheduler x2 1.9-2.5x. The scheduler wins because
//! declared accounts make speculation unnecessary: [`ExecutorKind::default`] is
//! [`ExecutorKind::Scheduled`].
//! Under oversubscription (more runnable threads than cores) a parallel executor's workers
//! wait on descheduled peers and fall behind the sequential one: size `threads` to the
//! cores the node really has.
//!
//! [`Transaction::validate`]: crate::tx::Transaction::validate
//! [`StateView::accounts`]: crate::state::StateView::accounts
//! [`Transaction::accounts`]: crate::tx::Transaction::accounts

mod block_stm;
mod hash;
mod receipt;
mod scheduled;
mod semantics;
mod sequential;
mod workers;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::block_stm::{AbortGuard, BlockStmExecutor, CHAIN_SAMPLE};
pub use self::receipt::{Receipt, TxStatus};
pub use self::scheduled::{MIN_PARALLEL_TXS, ScheduledExecutor};
pub use self::sequential::SequentialExecutor;
use crate::state::{Account, ShardedState, StateRoot, StateView};
use crate::tx::{Address, SignedTransaction};

/// The fee sink: receives every block's fees (see the module docs). The bytes spell
/// `aurigraph:fee-sink:v1` followed by zeros, which is not the encoding of an Ed25519 point,
/// so no key can sign for it.
pub const FEE_SINK: Address = Address(*b"aurigraph:fee-sink:v1\0\0\0\0\0\0\0\0\0\0\0");

/// Most worker threads an executor accepts.
pub const MAX_THREADS: usize = 256;
/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 1 << 24;

/// Why an executor could not execute a block or could not be built. Each variant has a
/// stable code. A transaction never causes one: failing transactions get a failure
/// [`TxStatus`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecutorError {
    /// A thread count outside `1..=MAX_THREADS`.
    #[error("thread count {0} outside 1..={MAX_THREADS}")]
    Threads(usize),
    /// The thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
    /// More than [`MAX_BLOCK_TXS`] transactions.
    #[error("block of {0} transactions exceeds {MAX_BLOCK_TXS}")]
    BlockTooLarge(usize),
    /// A transaction touched an account it did not declare (a bug in the scheduler).
    #[error("transaction touched undeclared account {0}")]
    Undeclared(Address),
    /// A worker stopped because another failed.
    #[error("execution aborted after another worker failed")]
    Aborted,
    /// An internal invariant broke (a bug, reported instead of a panic).
    #[error("executor invariant broken: {0}")]
    Invariant(&'static str),
    /// An unknown executor name.
    #[error("unknown executor `{0}` (expected sequential, scheduled or block-stm)")]
    UnknownKind(String),
}

impl ExecutorError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ExecutorError::Threads(_) => "E_EXEC_THREADS",
            ExecutorError::ThreadPool(_) => "E_EXEC_THREAD_POOL",
            ExecutorError::BlockTooLarge(_) => "E_EXEC_BLOCK_TOO_LARGE",
            ExecutorError::Undeclared(_) => "E_EXEC_UNDECLARED_ACCOUNT",
            ExecutorError::Aborted => "E_EXEC_ABORTED",
            ExecutorError::Invariant(_) => "E_EXEC_INVARIANT",
            ExecutorError::UnknownKind(_) => "E_EXEC_UNKNOWN_KIND",
        }
    }
}

/// Which executor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// [`SequentialExecutor`].
    Sequential,
    /// [`ScheduledExecutor`] (the default: see the measurements in the module docs).
    #[default]
    Scheduled,
    /// [`BlockStmExecutor`].
    BlockStm,
}

impl ExecutorKind {
    /// All kinds.
    pub const ALL: [ExecutorKind; 3] = [
        ExecutorKind::Sequential,
        ExecutorKind::Scheduled,
        ExecutorKind::BlockStm,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Sequential => "sequential",
            ExecutorKind::Scheduled => "scheduled",
            ExecutorKind::BlockStm => "block-stm",
        }
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutorKind {
    type Err = ExecutorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ExecutorError::UnknownKind(s.to_owned()))
    }
}

/// How to build an executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorConfig {
    /// Which executor.
    pub kind: ExecutorKind,
    /// Worker threads (ignored by the sequential executor).
    pub threads: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            kind: ExecutorKind::default(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(MAX_THREADS),
        }
    }
}

impl ExecutorConfig {
    /// Builds the executor.
    pub fn build(&self) -> Result<Box<dyn BlockExecutor>, ExecutorError> {
        Ok(match self.kind {
            ExecutorKind::Sequential => Box::new(SequentialExecutor::new()),
            ExecutorKind::Scheduled => Box::new(ScheduledExecutor::new(self.threads)?),
            ExecutorKind::BlockStm => Box::new(BlockStmExecutor::new(self.threads)?),
        })
    }
}

/// Counters of one block's execution. Unlike the rest of an [`Execution`], they depend on
/// the executor and on timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStats {
    /// Which executor ran.
    pub executor: ExecutorKind,
    /// Its configured threads.
    pub threads: usize,
    /// Whether the block ran on several threads (a scheduler runs a serial block on one).
    pub parallel: bool,
    /// Transactions executed (fee charged), successful or not.
    pub executed: usize,
    /// Transactions skipped.
    pub skipped: usize,
    /// Conflicts detected: for the scheduler, the declared accounts of transactions that
    /// wait for an earlier transaction of the block to release them (planned: one per
    /// account after an account's first transaction, so a transaction counts up to once
    /// per account it declares); for Block-STM, failed validations plus reads that hit an
    /// estimate. The pipeline feeds it to the `batch_size` slot as `conflict_rate`.
    pub conflicts: u64,
    /// Executions beyond one per transaction (Block-STM only).
    pub re_executions: u64,
    /// Transactions that Block-STM executed sequentially after its abort-rate guard stopped
    /// speculation, or the whole block when its chain pre-check found one chain (see
    /// [`AbortGuard`]); 0 for the other executors and whenever speculation ran to the end.
    #[serde(default)]
    pub sequential_tail: u64,
}

impl ExecStats {
    fn new(executor: ExecutorKind, threads: usize, parallel: bool, receipts: &[Receipt]) -> Self {
        let skipped = receipts.iter().filter(|r| r.status.is_skip()).count();
        Self {
            executor,
            threads,
            parallel,
            executed: receipts.len() - skipped,
            skipped,
            conflicts: 0,
            re_executions: 0,
            sequential_tail: 0,
        }
    }
}

/// What executing a block produced, before it is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Accounts whose value changed, with their new value, sorted by address.
    pub write_set: Vec<(Address, Account)>,
    /// Fees charged by the block.
    pub fees: u128,
    /// Fees burned because the sink's balance would have overflowed.
    pub fees_burned: u128,
    /// Counters.
    pub stats: ExecStats,
}

impl Execution {
    /// Whether two executions agree on everything but the stats.
    pub fn same_result(&self, other: &Execution) -> bool {
        self.receipts == other.receipts
            && self.write_set == other.write_set
            && self.fees == other.fees
            && self.fees_burned == other.fees_burned
    }
}

/// A block's outcome after commit: the execution and the new state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Receipts, write set, fees and stats.
    pub execution: Execution,
    /// The state root after the block.
    pub state_root: StateRoot,
}

/// Applies an execution's write set to `state` (the root is updated incrementally) and
/// returns the outcome.
pub fn commit(state: &mut ShardedState, execution: Execution) -> BlockOutcome {
    let state_root = state.apply(&execution.write_set);
    BlockOutcome {
        execution,
        state_root,
    }
}

/// A block executor.
///
/// Contract: `execute` must return exactly what [`SequentialExecutor`] returns for the same
/// state, chain id and block (receipts, write set, fees; stats may differ), must not
/// depend on timing or thread count for anything but the stats, and must never panic on any
/// transaction: a transaction that cannot execute gets a failure status.
pub trait BlockExecutor: Send + Sync + fmt::Debug {
    /// Which executor this is.
    fn kind(&self) -> ExecutorKind;

    /// Worker threads.
    fn threads(&self) -> usize;

    /// Executes `block` against `state` without changing it.
    fn execute(
        &self,
        state: &dyn StateView,
        chain_id: u32,
        block: &[Arc<SignedTransaction>],
    ) -> Result<Execution, ExecutorError>;

    /// Executes `block` against `state` and commits the result.
    fn execute_and_commit(
        &self,
        state: &mut ShardedState,
        block: &[Arc<SignedTransaction>],
    ) -> Result<BlockOutcome, ExecutorError> {
        let execution = self.execute(&*state, state.chain_id(), block)?;
        Ok(commit(state, execution))
    }
}

fn check_block(block: &[Arc<SignedTransaction>]) -> Result<(), ExecutorError> {
    if block.len() > MAX_BLOCK_TXS {
        return Err(ExecutorError::BlockTooLarge(block.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_sink_is_not_a_key() {
        assert!(ed25519_consensus::VerificationKey::try_from(FEE_SINK.0).is_err());
    }

    #[test]
    fn kinds_round_trip() {
        for k in ExecutorKind::ALL {
            assert_eq!(k.as_str().parse::<ExecutorKind>(), Ok(k));
        }
        assert_eq!(
            "x".parse::<ExecutorKind>().unwrap_err().code(),
            "E_EXEC_UNKNOWN_KIND"
        );
    }
}
