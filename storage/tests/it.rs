//! The storage crate's integration tests, one test binary (`cargo test -p aurigraph-storage
//! --test storage`): each module is one area, in its own file.

mod archive;
mod block_decode_fuzz;
// Valid-transaction strategies, shared with the ledger's decoding fuzz properties.
mod storage;
#[path = "../../engine/ledger/tests/tx_strategies.rs"]
#[expect(
    dead_code,
    reason = "the block properties use some of the shared strategies"
)]
mod tx_strategies;
