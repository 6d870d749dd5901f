//! Seam: the Raft RPCs between nodes (append entries, vote, snapshot in chunks) over the node's
//! gRPC address.
//!
//! Nothing lives here yet; a single node runs with [`SingleNodeLog`](crate::SingleNodeLog).
