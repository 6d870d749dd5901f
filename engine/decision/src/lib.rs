//! # aurigraph-decision: the decision core
//!
//! The decision core owns the node's decisions: the slots, their contracts, the static
//! rules, the host that routes each decision between a baseline and a candidate, rollout and
//! metrics. It knows nothing of transactions, blocks, storage or the network; the ledger
//! (`aurigraph-ledger`) asks its slot hosts, and the backends (`aurigraph-onnx`,
//! `aurigraph-wasm`) implement its [`Policy`] trait.
//!
//! Its I/O is narrow and named: [`rollout::RolloutStore`] reads and writes the rollout
//! state file, and [`registry`] reads file metadata for the backends' folder registries.
//! Its threads are the host's watchdog workers ([`host`]) and the registries' polling
//! [`registry::Watcher`]. Nothing here opens a socket.
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
//! use aurigraph_decision::{FeatureMatrix, HostConfig, SlotHost, SlotKind};
//! use rand::{SeedableRng, rngs::SmallRng};
//!
//! let host = SlotHost::new(SlotKind::Ordering, HostConfig::default()).expect("default config");
//! let mut rng = SmallRng::seed_from_u64(7);
//! let input: FeatureMatrix = SlotKind::Ordering.sample_input(16, &mut rng);
//! let decision = host.decide(42, &input).expect("input fits the contract");
//! assert_eq!(decision.values.len(), 16);
//! assert_eq!(decision.tag.answered_by.backend.as_str(), "static");
//! ```

pub mod clock;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod error;
#[cfg(feature = "testing")]
pub mod fault;
pub mod features;
pub mod host;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod rollout;
pub mod slot;

pub use error::{EngineError, ResolveError, Result, StoreError};
pub use features::FeatureMatrix;
pub use host::{Arm, Decision, DecisionTag, FallbackReason, HostConfig, SlotHost};
pub use policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};
pub use slot::{SlotContract, SlotKind};
