//! The ledger's integration tests, one test binary (`cargo test -p aurigraph-ledger --test
//! ledger`): each module is one area, in its own file.

mod admission;
mod batcher;
mod executor_props;
mod executor_state_root;
mod mempool;
mod pipeline;
mod tx_decode_fuzz;
mod tx_strategies;
mod vectors;
mod workload;
mod workload_presets;
