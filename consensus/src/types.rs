//! Seam: the Raft type configuration: node ids, the log entry (a block: its transactions in
//! block order, with the leader's header) and the response a client waits for.
//!
//! Nothing lives here yet; a single node runs with [`SingleNodeLog`](crate::SingleNodeLog).
