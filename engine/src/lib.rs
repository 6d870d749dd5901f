//! # Aurigraph scheduling engine
//!
//! The engine owns the node's decisions. It never does I/O of its own: the node wires it to
//! storage, consensus and the network.
//!
//! ## Core concepts
//!
//! - **Slot** ([`slot`]): one of five decisions the node takes (`ordering`, `batch_size`,
//!   `leader_health`, `anomaly`, `demand`). Each has a [`SlotContract`]: a versioned feature
//!   schema, input and output shapes, and output validation.
//! - **Policy** ([`policy`]): anything that answers a slot. The [`Policy`] trait is
//!   implemented by each slot's static rule (always present, the fallback forever), and by
//!   the ONNX (tract) and WASM (wasmtime) backends.
//! - **Host** ([`host`]): one [`SlotHost`] per slot holds a baseline and an optional
//!   candidate behind an atomic pointer. Every decision has a deadline; any error, timeout,
//!   panic, non-finite or out-of-contract answer is replaced by the static policy's answer,
//!   the reason is counted, and a circuit breaker sends the slot to static for a cooldown
//!   after repeated failures. Every [`Decision`] is tagged with what answered it.
//! - **Rollout** ([`rollout`]): modes `off`, `shadow` and `canary P` with sticky, salted
//!   routing; an optional step schedule; a [`Guard`](rollout::Guard) that rolls back by
//!   itself using sequential tests that stay valid when checked after every decision; and a
//!   [`RolloutStore`](rollout::RolloutStore) so the state survives a restart.
//! - **Metrics** ([`metrics`]): per slot and arm, decisions, fallbacks by reason and latency
//!   histograms in a `prometheus-client` registry that the node serves at `/metrics`.
//!
//! ## A decision, end to end
//!
//! ```
//! use aurigraph_engine::{FeatureMatrix, HostConfig, SlotHost, SlotKind};
//! use rand::{SeedableRng, rngs::SmallRng};
//!
//! let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).expect("default config");
//! let mut rng = SmallRng::seed_from_u64(7);
//! let input: FeatureMatrix = SlotKind::Ordering.sample_input(16, &mut rng);
//! let decision = host.decide(42, &input).expect("input fits the contract");
//! assert_eq!(decision.values.len(), 16);
//! assert_eq!(decision.tag.answered_by.backend.as_str(), "static");
//! ```

pub mod admission;
pub mod backend;
pub mod batcher;
pub mod clock;
pub mod conformance;
pub mod error;
pub mod executor;
pub mod fault;
pub mod features;
pub mod host;
pub mod mempool;
pub mod metrics;
pub mod onnx;
pub mod pipeline;
pub mod policy;
pub mod rollout;
pub mod slot;
pub mod state;
pub mod tx;
pub mod workload;

pub use error::{EngineError, Result};
pub use features::FeatureMatrix;
pub use host::{Arm, Decision, DecisionTag, FallbackReason, HostConfig, SlotHost};
pub use policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};
pub use slot::{SlotContract, SlotKind};
