//! # aurigraph-ledger: the execution path
//!
//! What happens to a transaction on one node, from its bytes to a committed block:
//!
//! - [`tx`]: the transaction format, its decoding and checks, hashes and addresses.
//! - [`state`]: accounts, the genesis, the sharded in-memory state and its root.
//! - [`executor`]: the block executors (sequential, the oracle; conflict-aware scheduled;
//!   Block-STM), which all reach the same state and receipts.
//! - [`admission`]: decoding, field checks, batched signature verification, nonce, balance
//!   and duplicate checks, and the `anomaly` slot's class for each transaction.
//! - [`mempool`]: priority classes, per-sender nonce queues, bounds and back-pressure.
//! - [`batcher`]: block size from the `batch_size` slot and order from the `ordering` slot.
//! - [`pipeline`]: the parts wired together ([`pipeline::Pipeline`]).
//! - [`workload`]: the seeded workload generator the demo, the benchmarks, the A/B harness
//!   and training replay.
//!
//! ## Replaying a block needs no model
//!
//! [`tx`], [`state`] and [`executor`] use nothing of the decision core but the
//! [`AnomalyClass`](aurigraph_decision::slot::anomaly::AnomalyClass) an admitted transaction carries,
//! and this crate does not depend on tract or wasmtime: a replica validates and executes a
//! block with the parallel executor alone. The decisions (which transactions, how many, in
//! what order) are taken by the slot hosts the admission and the batcher ask, and their
//! outcome travels in the block.

pub mod admission;
pub mod batcher;
pub mod error;
pub mod executor;
pub mod mempool;
pub mod pipeline;
pub mod state;
pub mod tx;
pub mod workload;

pub use error::{LedgerError, Result};
