//! One call's sandbox: a fresh [`Store`] with the memory cap and the epoch deadline, and the
//! canonical-ABI reads and writes in the guest's memory (bounds-checked, never trusting a
//! pointer the guest returns).

use std::time::Instant;

use wasmtime::{
    Extern, Instance, Memory, ModuleExport, ResourceLimiter, Store, Trap, TypedFunc, WasmParams,
    WasmResults,
};

use super::runtime::WasmRuntime;
use aurigraph_decision::policy::PolicyError;

/// Limits of one store; remembers whether the memory cap was hit, to say so when the guest
/// then traps.
pub(crate) struct Limits {
    memory_cap: usize,
    table_cap: usize,
    /// Size the guest asked for when it was refused.
    refused_memory: Option<usize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.refused_memory = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_cap)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A store for one call, its epoch deadline set from `deadline`.
pub(crate) fn store(runtime: &WasmRuntime, deadline: Instant) -> Store<Limits> {
    let cfg = runtime.config();
    let mut store = Store::new(
        runtime.engine(),
        Limits {
            memory_cap: cfg.memory_cap,
            table_cap: cfg.max_table_elements,
            refused_memory: None,
        },
    );
    store.limiter(|l| l as &mut dyn ResourceLimiter);
    store.set_epoch_deadline(runtime.epoch_delta(deadline));
    store.epoch_deadline_trap();
    store
}

/// Maps a wasmtime error of a call to the policy error the host counts.
pub(crate) fn classify(store: &Store<Limits>, err: &wasmtime::Error) -> PolicyError {
    let refused = store.data().refused_memory;
    let cap = store.data().memory_cap;
    match (err.downcast_ref::<Trap>(), refused) {
        (Some(Trap::Interrupt), _) => PolicyError::DeadlineExceeded,
        (_, Some(asked)) => PolicyError::Trapped(format!(
            "memory cap of {cap} bytes reached (the plugin asked for {asked} bytes)"
        )),
        (Some(trap), None) => PolicyError::Trapped(trap.to_string()),
        (None, None) => PolicyError::Failed(format!("{err:#}")),
    }
}

/// The typed function behind `export` in `instance`.
pub(crate) fn func<P: WasmParams, R: WasmResults>(
    store: &mut Store<Limits>,
    instance: &Instance,
    export: &ModuleExport,
) -> Result<TypedFunc<P, R>, PolicyError> {
    instance
        .get_module_export(&mut *store, export)
        .and_then(Extern::into_func)
        .and_then(|f| f.typed::<P, R>(&*store).ok())
        .ok_or_else(|| PolicyError::Failed("an export checked at load is gone".into()))
}

/// The linear memory behind `export` in `instance`.
pub(crate) fn memory(
    store: &mut Store<Limits>,
    instance: &Instance,
    export: &ModuleExport,
) -> Result<Memory, PolicyError> {
    instance
        .get_module_export(&mut *store, export)
        .and_then(Extern::into_memory)
        .ok_or_else(|| PolicyError::Failed("the memory export checked at load is gone".into()))
}

/// `len` elements of `size` bytes at guest address `ptr`, if wholly inside `mem` and aligned.
pub(crate) fn slice(mem: &[u8], ptr: u32, len: u32, size: usize) -> Option<&[u8]> {
    let start = usize::try_from(ptr).ok()?;
    if !start.is_multiple_of(size) {
        return None;
    }
    let bytes = usize::try_from(len).ok()?.checked_mul(size)?;
    mem.get(start..start.checked_add(bytes)?)
}

/// The little-endian `u32` at guest address `at`.
pub(crate) fn u32_at(mem: &[u8], at: usize) -> Option<u32> {
    let b = mem.get(at..at.checked_add(4)?)?;
    b.try_into().ok().map(u32::from_le_bytes)
}

/// Writes `values` at guest address `ptr` (little-endian `f32`s); `false` if out of bounds.
pub(crate) fn write_f32s(mem: &mut [u8], ptr: u32, values: &[f32]) -> bool {
    let Some(start) = usize::try_from(ptr).ok() else {
        return false;
    };
    let Some(dst) = start
        .checked_add(values.len() * 4)
        .and_then(|end| mem.get_mut(start..end))
    else {
        return false;
    };
    for (d, v) in dst.chunks_exact_mut(4).zip(values) {
        d.copy_from_slice(&v.to_le_bytes());
    }
    true
}

/// Reads little-endian `f32`s.
pub(crate) fn read_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
