//! Seam: leader hand-over to a named node and election timing, for the `leader_health` slot to
//! act on.
//!
//! Nothing lives here yet; a single node runs with [`SingleNodeLog`](crate::SingleNodeLog).
