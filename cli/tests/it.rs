//! The command line's integration tests, one test binary (`cargo test -p aurigraph-cli --test
//! cli`): each module is one area, in its own file. They run the real `aurigraph` binary
//! (`CARGO_BIN_EXE_aurigraph`), which only this crate's tests can name.

// The node's test helpers (a node on an ephemeral port, signed transfers, clients, polling).
#[path = "../../node/tests/common/mod.rs"]
#[expect(
    dead_code,
    reason = "the node's test helpers: these tests use a few of them"
)]
mod common;

mod architecture;
mod archive_crash;
mod chaos;
mod cluster;
mod crash;
mod demo_cluster;
mod errors;
mod load;
mod models_schema;
mod models_validate;
mod retrain;
mod telemetry;
