//! Seam: the Raft log and vote in the node's RocksDB, in column families of their own, one
//! `WriteBatch` per append, synced before the append is reported flushed.
//!
//! Nothing lives here yet; a single node runs with [`SingleNodeLog`](crate::SingleNodeLog).
