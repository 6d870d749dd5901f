//! # The aurigraph node
//!
//! The decision core (`aurigraph-decision`) and its backends (`aurigraph-onnx`,
//! `aurigraph-wasm`) own decisions, the ledger (`aurigraph-ledger`) owns execution; this
//! crate is the server that wires them to I/O: start-up, block production and the block
//! log seam (`aurigraph-consensus`) in [`node`], on RocksDB (`aurigraph-storage`); the
//! models and plugins registries as one resolver ([`registries`]); the APIs ([`api`]: gRPC
//! `aurigraph.v1` and its REST/WebSocket mirror on one address) and the admin API, whose
//! operations are in [`service`]; scaling advice from the `demand` forecast ([`scaling`]);
//! Prometheus metrics ([`metrics`]); decision telemetry
//! recording ([`telemetry`]); and the configuration ([`config`]). The `aurigraph` binary
//! (`aurigraph-cli`) is built on it; integration tests start a real node through [`Node`].

pub mod api;
pub mod config;
pub mod error;
pub mod faults;
pub mod health;
pub mod metrics;
pub mod node;
pub mod registries;
pub mod retrain;
pub mod scaling;
pub mod service;
pub mod telemetry;

/// The gRPC types and services generated from `proto/aurigraph/v1/node.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("aurigraph.v1");
}

pub use config::NodeConfig;
pub use error::{ApiError, ErrorKind, NodeError, NodeResult};
pub use node::{Node, NodeCore};
