//! Policy backends beyond the static rules.
//!
//! - [`wasm`]: WASM policy plugins run by wasmtime, written against the WIT world in
//!   `plugins/wit/policy.wit` (usually with the guest SDK in `plugins/sdk`).
//!
//! - [`Registries`]: the ONNX models registry and the WASM plugins registry as one
//!   [`PolicyResolver`](crate::rollout::PolicyResolver), for hosts restored after a restart.
//!
//! Every backend yields [`Policy`](crate::Policy) values, one per slot it answers, so the
//! [`SlotHost`](crate::SlotHost) gives them all the same contract checks, warm-up, deadline,
//! fallback, circuit breaker, rollout and metrics, and the conformance suite
//! ([`crate::conformance`]) runs unchanged against each of them.

mod registries;
pub mod wasm;

pub use registries::Registries;
