//! # aurigraph-wasm: WASM policy plugins, run by wasmtime
//!
//! A backend of the decision core (`aurigraph-decision`): every plugin slot is a
//! [`Policy`](aurigraph_decision::Policy) the slot host runs like any other.
//!
//! A plugin is a WebAssembly module, usually written in Rust with the guest SDK
//! (`plugins/sdk`) and built for `wasm32-unknown-unknown` by `scripts/build-plugins`. It
//! implements one or more slots against the WIT world `plugins/wit/policy.wit`; its exports are
//! that world's canonical-ABI lowering (see [`abi`]), called directly as a core module.
//!
//! ## Parts
//!
//! - [`WasmRuntime`]: one shared wasmtime `Engine` (Cranelift, pooling allocator, epoch
//!   interruption) and the ticker thread that keeps its epoch at the whole milliseconds
//!   elapsed on a monotonic clock (late wake-ups catch up, so deadlines do not drift).
//! - [`WasmPlugin`]: a loaded and validated module. Loading refuses, with a stable
//!   [`PluginError::code`], a module that is too large, does not compile, imports anything (no
//!   WASI: no files, network, clock or randomness), lacks an export or has one of the wrong
//!   type, claims slots it does not export (or the reverse), was built for another schema
//!   version, or starts with more memory than the cap.
//! - [`WasmPolicy`]: one slot of a plugin as a [`Policy`](aurigraph_decision::Policy), for the
//!   [`SlotHost`](aurigraph_decision::SlotHost) like any other backend.
//! - [`PluginRegistry`]: the watched plugins folder, as the node runs it: every plugin
//!   validated and registered once per slot it implements, versioned by blake3 content hash,
//!   refusals kept with their codes, a watch thread, and the [`PolicyResolver`](aurigraph_decision::rollout::PolicyResolver)
//!   that restores a persisted WASM baseline or candidate after a restart. The node serves
//!   the models and plugins registries together as one resolver.
//!
//! ## A call
//!
//! Each decision gets a fresh `Store` with a [`ResourceLimiter`](wasmtime::ResourceLimiter)
//! (the memory cap, one instance, one memory, one bounded table) and an epoch deadline at the
//! first tick at or after the decision's deadline; the module is instantiated from its
//! pre-linked `InstancePre`, the rows are copied in through `cabi_realloc`, the slot function
//! runs, and the scores are copied out after bounds checks. An epoch interrupt is
//! [`PolicyError::DeadlineExceeded`](aurigraph_decision::PolicyError), any other trap (including a
//! refused memory growth and a guest panic) is [`PolicyError::Trapped`](aurigraph_decision::PolicyError),
//! and an `error` answer or a malformed return area is
//! [`PolicyError::Failed`](aurigraph_decision::PolicyError); in each case the host's static policy
//! answers that decision.
//!
//! ```no_run
//! use std::path::Path;
//! use aurigraph_decision::{HostConfig, SlotHost, SlotKind};
//! use aurigraph_wasm::WasmRuntime;
//!
//! let runtime = WasmRuntime::shared()?;
//! let plugin = runtime.load(Path::new("plugins/dist/fee-per-byte.wasm"))?;
//! let host = SlotHost::new(SlotKind::Ordering, HostConfig::default())?;
//! host.load_candidate(std::sync::Arc::new(plugin.policy(SlotKind::Ordering)?))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod abi;
mod error;
mod plugin;
mod policy;
mod registry;
mod runtime;
mod sandbox;

pub use error::{PluginError, Result};
pub use plugin::{PLUGIN_FILE, PluginMeta, WasmPlugin};
pub use policy::WasmPolicy;
pub use registry::{PluginRegistry, PluginSummary};
pub use runtime::{RuntimeConfig, WasmRuntime};
