//! The consensus crate's integration tests, one test binary (`cargo test --workspace --test
//! consensus`): each module is one area, in its own file.

mod cluster;
mod common;
mod log_store;
mod network;
mod partition;
mod state_machine;
