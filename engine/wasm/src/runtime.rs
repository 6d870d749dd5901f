//! The shared wasmtime [`Engine`], its epoch ticker and the sandbox limits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Linear memory kept resident (memset to zero on reuse) per pooled slot: enough for a
/// 10,000-row ordering batch in and its scores out.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

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
    /// Period of the epoch ticker. The ticker keeps the epoch at the number of whole ticks
    /// elapsed since the runtime started (by a monotonic clock, however late the thread
    /// wakes), and a call is interrupted at the first tick at or after its deadline: it
    /// overruns by at most the ticker thread's wake-up latency, never by an accumulated
    /// drift. Default 1 ms.
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
/// Cheap to clone (a reference count). The ticker thread wakes every
/// [`RuntimeConfig::epoch_tick`] and advances the engine's epoch by the ticks actually elapsed
/// since the runtime started (one monotonic clock: a late wake-up catches up instead of
/// drifting), and stops once the runtime and every plugin loaded by it
/// are dropped. Most programs use the process-wide [`WasmRuntime::shared`].
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: RuntimeConfig,
    stop: Arc<AtomicBool>,
    clock: Arc<EpochClock>,
}

/// The ticker's time base: epoch `n` is issued once `n` ticks have elapsed since `start`.
struct EpochClock {
    start: Instant,
    tick: Duration,
    /// Epochs issued so far (the engine's epoch, as far as the ticker knows).
    issued: AtomicU64,
}

impl EpochClock {
    /// Whole ticks elapsed at `t`.
    fn ticks_at(&self, t: Instant) -> u64 {
        let nanos = t.saturating_duration_since(self.start).as_nanos();
        u64::try_from(nanos / self.tick.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Brings the engine's epoch up to the ticks elapsed now.
    fn advance(&self, engine: &Engine) {
        let due = self.ticks_at(Instant::now());
        // Only this thread writes `issued`; counting each epoch right after issuing it keeps
        // `issued` within one of the engine's epoch for the deadline computation.
        while self.issued.load(Ordering::Acquire) < due {
            engine.increment_epoch();
            self.issued.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// When tick `n` is due.
    fn due(&self, n: u64) -> Instant {
        let nanos = u64::try_from(self.tick.as_nanos()).unwrap_or(u64::MAX);
        self.start + Duration::from_nanos(n.saturating_mul(nanos))
    }
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
                .table_elements(config.max_table_elements)
                // A slot's memory is zeroed with memset on reuse up to this size instead of
                // being handed back to the kernel: each call instantiates afresh, and page
                // faults on the rows' pages were most of a 10,000-row call's cost.
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES.min(config.memory_cap))
                .table_keep_resident(64 << 10);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&c).map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(EpochClock {
            start: Instant::now(),
            tick: config.epoch_tick,
            issued: AtomicU64::new(0),
        });
        let (ticker, flag, time) = (engine.clone(), stop.clone(), clock.clone());
        thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Sleep to the next tick boundary, not for a tick: oversleeping once
                    // does not push every later tick back.
                    let next = time.due(time.ticks_at(Instant::now()).saturating_add(1));
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                    time.advance(&ticker);
                }
            })
            .map_err(|e| PluginError::Runtime(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                config,
                stop,
                clock,
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

    /// The epoch delta to give a store so that it is interrupted at the first tick at or
    /// after `deadline` (at least one tick from now): the deadline is placed on the ticker's
    /// absolute time base, so it does not depend on how far the current epoch lags.
    pub(crate) fn epoch_delta(&self, deadline: Instant) -> u64 {
        let clock = &self.inner.clock;
        let nanos = deadline.saturating_duration_since(clock.start).as_nanos();
        let target =
            u64::try_from(nanos.div_ceil(clock.tick.as_nanos().max(1))).unwrap_or(u64::MAX);
        target
            .saturating_sub(clock.issued.load(Ordering::Acquire))
            .max(1)
    }

    /// Epochs issued by the ticker so far (diagnostics and tests of the time base).
    pub fn epochs_issued(&self) -> u64 {
        self.inner.clock.issued.load(Ordering::Acquire)
    }
}
