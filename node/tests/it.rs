//! The node's integration tests, one test binary (`cargo test -p aurigraph-node --test node`):
//! each module is one area, in its own file, and `common` holds the helpers they share (the
//! command line's tests include it too).

mod admin;
mod api;
mod archive;
mod bad_input;
mod cluster;
mod common;
mod durability;
mod leader_health;
mod overload;
mod registries;
mod scaling;
mod startup;

/// Held for their whole run by the overload test, which saturates the machine, and by the
/// canary tests of `registries`, which record the backend that answered each decision (one
/// late under that load falls back to the static rule). In separate binaries they never
/// overlapped; in this one the lock keeps them apart.
static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
