//! The node's integration tests, one test binary (`cargo test -p aurigraph-node --test node`):
//! each module is one area, in its own file, and `common` holds the helpers they share (the
//! command line's tests include it too).

mod admin;
mod api;
mod bad_input;
mod common;
mod overload;
mod registries;
