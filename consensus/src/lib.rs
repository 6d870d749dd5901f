//! # aurigraph-consensus: where a proposed block goes before it executes
//!
//! What runs today is [`block_log`]: the [`BlockLog`] trait the node's block producer hands
//! every proposed block to, and [`SingleNodeLog`], the log of a single node, which lets
//! every block execute at once. Its errors are typed ([`BlockLogError`], each with a stable
//! code).
//!
//! The other modules are seams, named for what the replicated log needs and empty today:
//!
//! - [`types`]: the Raft type configuration (node ids, the log entry, the response).
//! - [`log_store`]: the Raft log and vote in the node's RocksDB.
//! - [`state_machine`]: applying committed entries with the ledger's executor.
//! - [`network`]: the Raft RPCs between nodes.
//! - [`leadership`]: leader hand-over and election timing.
//!
//! The log entry is the block: its transactions in block order. Replaying it needs the
//! ledger's executor (`aurigraph-ledger`) and nothing of the decision backends, which is
//! why this crate depends on the ledger alone.

pub mod block_log;
pub mod leadership;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use block_log::{BlockLog, BlockLogError, SingleNodeLog};
