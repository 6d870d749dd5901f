//! [`WasmPolicy`]: one slot of a plugin, as a [`Policy`].

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ModuleExport;

use super::abi::{self, Answer};
use super::plugin::{PluginCore, PluginMeta};
use super::sandbox;
use aurigraph_decision::features::FeatureMatrix;
use aurigraph_decision::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};
use aurigraph_decision::slot::SlotKind;

/// One slot of a [`WasmPlugin`](super::WasmPlugin).
///
/// Each call instantiates the module afresh in its own store (from the pre-linked
/// `InstancePre`, with the pooling allocator by default), so calls from several threads
/// never share guest state and a plugin cannot remember anything between decisions. The
/// store's epoch deadline is the decision's deadline, hence [`Isolation::Inline`]: a
/// runaway plugin is interrupted at the first epoch tick at or after the deadline.
#[derive(Clone)]
pub struct WasmPolicy {
    core: Arc<PluginCore>,
    export: ModuleExport,
    info: PolicyInfo,
}

impl std::fmt::Debug for WasmPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPolicy")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl WasmPolicy {
    pub(crate) fn new(core: Arc<PluginCore>, slot: SlotKind, export: ModuleExport) -> Self {
        let schema_version = core
            .meta
            .slots
            .iter()
            .find(|(s, _)| *s == slot)
            .map_or(0, |(_, v)| *v);
        let info = PolicyInfo {
            name: core.meta.name.clone(),
            version: core.meta.version.clone(),
            backend: BackendKind::Wasm,
            slot,
            schema_version,
        };
        Self { core, export, info }
    }

    /// The plugin it comes from.
    pub fn plugin(&self) -> &PluginMeta {
        &self.core.meta
    }
}

impl Policy for WasmPolicy {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Inline
    }

    fn evaluate(&self, input: &FeatureMatrix, deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        if Instant::now() >= deadline {
            return Err(PolicyError::DeadlineExceeded);
        }
        let values = input.as_slice();
        let (Ok(len), Ok(rows), Ok(bytes)) = (
            i32::try_from(values.len()),
            i32::try_from(input.rows()),
            i32::try_from(values.len().saturating_mul(4)),
        ) else {
            return Err(PolicyError::Failed(
                "the input is too large for a 32-bit guest".into(),
            ));
        };
        let core = &*self.core;
        let mut store = sandbox::store(&core.runtime, deadline);
        let fail = |store: &wasmtime::Store<_>, e: wasmtime::Error| sandbox::classify(store, &e);
        let instance = match core.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(fail(&store, e)),
        };
        let memory = sandbox::memory(&mut store, &instance, &core.memory)?;
        let realloc =
            sandbox::func::<(i32, i32, i32, i32), i32>(&mut store, &instance, &core.realloc)?;
        let ptr = match realloc.call(&mut store, (0, 0, 4, bytes)) {
            Ok(p) => p as u32,
            Err(e) => return Err(fail(&store, e)),
        };
        if !sandbox::write_f32s(memory.data_mut(&mut store), ptr, values) {
            return Err(PolicyError::Failed(format!(
                "cabi_realloc answered {ptr:#x}, outside the guest's memory"
            )));
        }
        let f = sandbox::func::<(i32, i32, i32), i32>(&mut store, &instance, &self.export)?;
        let ret = match f.call(&mut store, (ptr as i32, len, rows)) {
            Ok(r) => r as u32,
            Err(e) => return Err(fail(&store, e)),
        };
        // The instance is dropped with the store right after this read, which frees its
        // memory whole: `cabi_post_*` (for hosts that keep instances) is not needed here.
        match abi::lift_answer(memory.data(&store), ret) {
            Ok(Answer::Values(bytes)) => Ok(sandbox::read_f32s(bytes)),
            Ok(Answer::Error(message)) => Err(PolicyError::Failed(format!(
                "the plugin answered an error: {message}"
            ))),
            Err(e) => Err(PolicyError::Failed(format!("malformed answer: {e}"))),
        }
    }
}
