//! # The aurigraph node
//!
//! The decision core (`aurigraph-decision`) and its backends (`aurigraph-onnx`,
//! `aurigraph-wasm`) own decisions, the ledger (`aurigraph-ledger`) owns execution; this
//! crate owns I/O: RocksDB storage ([`storage`]), the models and plugins registries as one
//! resolver ([`registries`]), block production and the consensus seam ([`node`]), the APIs
//! ([`api`]: gRPC `aurigraph.v1` and its REST/WebSocket mirror on one address), the admin
//! API, Prometheus metrics ([`metrics`]) and the configuration ([`config`]). The `aurigraph`
//! binary (CLI) is built on it; integration tests start a real node through [`Node`].

pub mod ab;
pub mod api;
pub mod block;
pub mod config;
pub mod error;
pub mod metrics;
pub mod node;
pub mod registries;
pub mod service;
pub mod storage;
pub mod telemetry;

/// The gRPC types and services generated from `proto/aurigraph/v1/node.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("aurigraph.v1");
}

pub use config::NodeConfig;
pub use error::{ApiError, ErrorKind};
pub use node::{Node, NodeCore};
