//! The Raft type configuration ([`TypeConfig`]): node ids are `u64`, a node is known by its
//! API address ([`NodeInfo`]), and a log entry's application data is a [`BlockEntry`]: the
//! block the leader proposes, with everything its header needs, so every replica applies it
//! to the same result. The response a proposer waits for is [`BlockApplied`].
//!
//! openraft is pinned exactly (`=0.10.0-alpha.37`: leader transfer and pre-vote are only in
//! 0.10); its types are named here and in this crate's other Raft modules only.

use serde::{Deserialize, Serialize};

/// A replica's id in the cluster.
pub type NodeId = u64;

/// How a replica is reached: the address of its gRPC/HTTP API (the Raft service shares it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port` of the node's API.
    pub addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

/// The log entry's data: one block as the leader proposed it. The header fields are the
/// leader's (timestamp included), so replicas hash the same block; `state_root` is the root
/// the leader reached executing it, which every replica must reach too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Height.
    pub height: u64,
    /// Hash of the parent block.
    pub parent: [u8; 32],
    /// The leader's clock when it proposed the block, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The state root after the block, as the leader computed it.
    pub state_root: [u8; 32],
    /// The block's transactions in block order, canonically encoded.
    pub txs: Vec<Vec<u8>>,
}

impl std::fmt::Display for BlockEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "block {} ({} txs)", self.height, self.txs.len())
    }
}

/// What applying a block produced on a replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockApplied {
    /// Height applied.
    pub height: u64,
    /// The state root the replica reached.
    pub state_root: [u8; 32],
}

openraft::declare_raft_types!(
    /// Aurigraph's Raft types.
    pub TypeConfig:
        D = BlockEntry,
        R = BlockApplied,
        NodeId = NodeId,
        Node = NodeInfo,
);

/// The Raft handle of a replica.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A membership as stored with the state machine.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
