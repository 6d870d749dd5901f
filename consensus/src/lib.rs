//! # aurigraph-consensus: where a proposed block goes before it executes
//!
//! Two things live here.
//!
//! **The block log the node runs today**, [`block_log`]: the [`BlockLog`] trait the node's
//! block producer hands every proposed block to, and [`SingleNodeLog`], the log of a single
//! node, which lets every block execute at once (errors typed, [`BlockLogError`]).
//!
//! **The replicated log, on openraft** (pinned `=0.10.0-alpha.37`), tested as a cluster of
//! replicas in one process (`tests/cluster.rs`) and run by the node (`aurigraph-node`, `cluster.rs`):
//!
//! - [`types`]: the Raft type configuration. The log entry is the block as the leader
//!   proposed it ([`types::BlockEntry`]: height, parent, the leader's timestamp and state root,
//!   the transactions in block order); replaying it needs the ledger's executor and nothing of
//!   the decision backends.
//! - [`log_store`]: the Raft log, vote and committed id in the `raft_log` and `raft_meta`
//!   families of the node's RocksDB; one synced `WriteBatch` per append, acknowledged to
//!   openraft after the sync.
//! - [`state_machine`]: openraft's state machine over a [`state_machine::BlockApplier`], which
//!   must reach the root in the entry (`E_ROOT_MISMATCH` otherwise: the replica's apply stops);
//!   snapshots are the applier's full state.
//! - [`ledger_applier`]: a [`state_machine::BlockApplier`] over an in-memory state and the
//!   ledger's executor (the cluster tests' replicas; the node has its own, `NodeApplier`).
//! - [`network`]: the Raft RPCs over tonic (`aurigraph.raft.v1.Raft`), postcard payloads,
//!   snapshots streamed in chunks, every call authenticated by the cluster secret.
//! - [`replica`]: a replica as the node runs it (start, the RPC routes, initialize, propose,
//!   status): the one module the node reaches openraft through.
//! - [`leadership`]: [`leadership::LinkStats`], the round trips and arrivals of AppendEntries
//!   that the node's `leader_health` monitor reads.
//! - [`faults`]: fault injection for tests and chaos runs ([`faults::FaultyLinks`]: cut,
//!   lossy or slow links between replicas, wired in by `RaftNetwork::with_faults`); never in
//!   a production config.

pub mod block_log;
pub mod faults;
pub mod leadership;
pub mod ledger_applier;
pub mod log_store;
pub mod network;
pub mod replica;
pub mod state_machine;
pub mod types;

pub use block_log::{BlockLog, BlockLogError, SingleNodeLog};
