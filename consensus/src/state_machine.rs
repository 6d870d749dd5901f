//! Seam: applying committed entries with the ledger's parallel executor and checking the state
//! root the leader put in the header.
//!
//! Nothing lives here yet; a single node runs with [`SingleNodeLog`](crate::SingleNodeLog).
