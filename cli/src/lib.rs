//! # aurigraph-cli: the `aurigraph` command line
//!
//! One module per verb, each with the behaviour of that verb; the arguments of every verb
//! are in [`args`] (clap), and `main.rs` only dispatches.
//!
//! | verb | module |
//! |---|---|
//! | `aurigraph demo` | [`demo`] |
//! | `aurigraph start` | [`start`] |
//! | `aurigraph policy ...` | [`policy`] |
//! | `aurigraph tx ...` | [`tx`] |
//! | `aurigraph load` | [`load`] |
//! | `aurigraph models ...` | [`models`] |
//! | `aurigraph bench ab` | [`bench`](mod@bench) (the harness is `aurigraph_ab`) |
//! | `aurigraph telemetry export` | [`telemetry`] (the work is [`export`]'s) |
//! | `aurigraph cluster up/status/down` | [`cluster`] |
//! | `aurigraph chaos run/ab` | [`chaos`] |
//! | `aurigraph train SLOT` | [`train`] (the model code is `aurigraph_training::retrain`'s) |
//!
//! The client verbs reach a running node over its REST API through [`client`] (`load` also
//! over gRPC, its default transport, with the node library's generated client). This crate
//! holds what only the command line needs (clap, indicatif, comfy-table, reqwest, parquet),
//! so the node library stays free of them.

pub mod args;
pub mod bench;
pub mod chaos;
pub mod client;
pub mod cluster;
pub mod demo;
pub mod export;
pub mod load;
pub mod models;
pub mod policy;
pub mod start;
pub mod telemetry;
pub mod train;
pub mod tx;
