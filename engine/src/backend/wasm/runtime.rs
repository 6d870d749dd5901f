//! The shared wasmtime [`Engine`], its epoch ticker and the sandbox limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::{PluginError, Result};

/// Sandbox and runtime settings, shared by every plugin of a [`WasmRuntime`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Largest linear memory of one call's instance, in bytes (growing past it fails, and
    /// the call traps). Default 64 MiB.
    pub memory_cap: usize,
    /// Largest module file accepted, in bytes. Default 16 MiB.
    pub max_module_bytes: usize,
    /// Largest table, in elements. Default 100,000.
    pub max_table_elements: usize,
    /// Largest wasm call stack, in bytes. Default 512 KiB.
    pub max_stack: usize,
    /// Period of the epoch ticker: a call overruns its deadline by at most about one tick.
    /// Default 1 ms.
    pub epoch_tick: Duration,
    /// Instances that may run at once across every plugin of the runtime, from a pre-allocated
    /// pool (wasmtime's pooling allocator); a call beyond it falls back. `0` allocates each
    /// instance on demand instead. Default 64.
    pub pooled_instances: u32,
    /// Deadline of the `metadata` call at load. Default 1 s.
    pub load_deadline: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_cap: 64 << 20,
            max_module_bytes: 16 << 20,
            max_table_elements: 100_000,
            max_stack: 512 << 10,
            epoch_tick: Duration::from_millis(1),
            pooled_instances: 64,
            load_deadline: Duration::from_secs(1),
        }
    }
}

/// One wasmtime [`Engine`] with its epoch ticker: compiles and runs plugins.
///
/// Cheap to clone (a reference count). The ticker thread increments the engine's epoch every
/// [`RuntimeConfig::epoch_tick`] and stops once the runtime and every plugin loaded by it
/// are dropped. Most programs use the process-wide [`WasmRuntime::shared`].
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: RuntimeConfig,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl WasmRuntime {
    /// A runtime with its own engine and ticker thread.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        if config.epoch_tick.is_zero() || config.memory_cap == 0 {
            return Err(PluginError::Runtime(
                "epoch_tick and memory_cap must be positive".into(),
            ));
        }
        let mut c = Config::new();
        c.epoch_interruption(true);
        c.max_wasm_stack(config.max_stack);
        if config.pooled_instances > 0 {
            let n = config.pooled_instances;
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(n)
                .total_memories(n)
                .total_tables(n)
                .max_memories_per_module(1)
                .max_tables_per_module(1)
                .max_memory_size(config.memory_cap)
                .table_elements(config.max_table_elements);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&c).map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker, flag, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
        thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(tick);
                    ticker.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Runtime(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                config,
                stop,
            }),
        })
    }

    /// The process-wide runtime with the default [`RuntimeConfig`], created on first use.
    pub fn shared() -> Result<Self> {
        static SHARED: OnceLock<Result<WasmRuntime>> = OnceLock::new();
        SHARED
            .get_or_init(|| WasmRuntime::new(RuntimeConfig::default()))
            .clone()
    }

    /// Its settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Epoch ticks that end at or just before `remaining` from now (at least one).
    pub(crate) fn ticks(&self, remaining: Duration) -> u64 {
        let tick = self.inner.config.epoch_tick.as_nanos().max(1);
        u64::try_from(remaining.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}
