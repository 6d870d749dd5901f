//! Loading a plugin: read, size cap, compile, check imports and exports against the ABI,
//! call `metadata`, check the claimed slots against the exports and the schema versions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{ExternType, FuncType, Linker, Module, ModuleExport, ValType};

use super::abi;
use super::error::{PluginError, Result};
use super::policy::WasmPolicy;
use super::runtime::WasmRuntime;
use super::sandbox::{self, Limits};
use aurigraph_decision::policy::Policy;
use aurigraph_decision::slot::SlotKind;

/// File name of the module inside a plugin folder.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// What a plugin says about itself (its `metadata` export), plus where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginMeta {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The slots it implements, each with the schema version it was built for.
    pub slots: Vec<(SlotKind, u32)>,
    /// Where it was loaded from (a path, or a label for bytes).
    pub source: String,
    /// Size of the module, in bytes.
    pub module_bytes: usize,
}

/// What every call of a plugin needs, shared by its policies.
pub(crate) struct PluginCore {
    pub(crate) runtime: WasmRuntime,
    pub(crate) pre: wasmtime::InstancePre<Limits>,
    pub(crate) memory: ModuleExport,
    pub(crate) realloc: ModuleExport,
    pub(crate) meta: PluginMeta,
}

/// A loaded, validated plugin. It yields one [`Policy`] per slot it implements.
#[derive(Clone)]
pub struct WasmPlugin {
    core: Arc<PluginCore>,
    exports: Vec<(SlotKind, ModuleExport)>,
}

impl std::fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("meta", &self.core.meta)
            .finish_non_exhaustive()
    }
}

impl WasmPlugin {
    /// Name, version, slots and source.
    pub fn meta(&self) -> &PluginMeta {
        &self.core.meta
    }

    /// The slots it implements.
    pub fn slots(&self) -> impl Iterator<Item = SlotKind> + '_ {
        self.exports.iter().map(|(s, _)| *s)
    }

    /// The policy answering `slot`.
    pub fn policy(&self, slot: SlotKind) -> Result<WasmPolicy> {
        self.exports
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(s, export)| WasmPolicy::new(self.core.clone(), *s, *export))
            .ok_or_else(|| PluginError::NoSuchSlot {
                plugin: self.core.meta.name.clone(),
                slot,
            })
    }

    /// Instantiates the module once in a fresh sandbox, as every call does, and drops it:
    /// a health check, and the fixed cost of a call that the benchmarks time.
    pub fn instantiate_once(&self) -> Result<()> {
        let deadline = Instant::now() + self.core.runtime.config().load_deadline;
        let mut store = sandbox::store(&self.core.runtime, deadline);
        self.core
            .pre
            .instantiate(&mut store)
            .map(drop)
            .map_err(|e| PluginError::Instantiate(sandbox::classify(&store, &e).to_string()))
    }

    /// One policy per slot it implements, in the order of [`SlotKind::ALL`].
    pub fn policies(&self) -> Vec<Arc<dyn Policy>> {
        self.exports
            .iter()
            .map(|(s, export)| {
                Arc::new(WasmPolicy::new(self.core.clone(), *s, *export)) as Arc<dyn Policy>
            })
            .collect()
    }
}

impl WasmRuntime {
    /// Loads a plugin from a `.wasm` file or from a folder holding `plugin.wasm`.
    pub fn load(&self, path: &Path) -> Result<WasmPlugin> {
        let file: PathBuf = if path.is_dir() {
            let f = path.join(PLUGIN_FILE);
            if !f.is_file() {
                return Err(PluginError::NotFound(path.to_path_buf()));
            }
            f
        } else {
            path.to_path_buf()
        };
        let io = |e: std::io::Error| PluginError::Io {
            path: file.clone(),
            reason: e.to_string(),
        };
        let size = std::fs::metadata(&file).map_err(io)?.len();
        let limit = self.config().max_module_bytes;
        if size > limit as u64 {
            return Err(PluginError::TooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit,
            });
        }
        let bytes = std::fs::read(&file).map_err(io)?;
        self.load_bytes(&bytes, &file.display().to_string())
    }

    /// Loads a plugin from the bytes of its module; `source` names it in errors and logs.
    pub fn load_bytes(&self, bytes: &[u8], source: &str) -> Result<WasmPlugin> {
        let cfg = self.config();
        if bytes.len() > cfg.max_module_bytes {
            return Err(PluginError::TooLarge {
                size: bytes.len(),
                limit: cfg.max_module_bytes,
            });
        }
        let module = Module::from_binary(self.engine(), bytes).map_err(|e| {
            let msg = format!("{e:#}");
            // The pooling allocator checks the module's declared memories and tables
            // against its slots at compile time.
            if msg.contains("pooling allocator") {
                PluginError::Limits(msg)
            } else {
                PluginError::Compile(msg)
            }
        })?;
        if let Some(i) = module.imports().next() {
            return Err(PluginError::Imports {
                module: i.module().to_string(),
                name: i.name().to_string(),
            });
        }
        let (memory, realloc, metadata, exported) = check_exports(&module, cfg.memory_cap)?;
        let pre = Linker::new(self.engine())
            .instantiate_pre(&module)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let core = PluginCore {
            runtime: self.clone(),
            pre,
            memory,
            realloc,
            meta: PluginMeta {
                name: String::new(),
                version: String::new(),
                slots: Vec::new(),
                source: source.to_string(),
                module_bytes: bytes.len(),
            },
        };
        let abi::PluginInfo {
            name,
            version,
            slots,
        } = read_metadata(&core, &metadata)?;
        for &(slot, version) in &slots {
            if !exported.iter().any(|(s, _)| *s == slot) {
                return Err(PluginError::Exports(format!(
                    "claims `{slot}` but does not export `{}`",
                    abi::export_name(slot)
                )));
            }
            let node = slot.contract().schema_version;
            if version != node {
                return Err(PluginError::Schema {
                    slot,
                    plugin: version,
                    node,
                });
            }
        }
        if let Some((slot, _)) = exported
            .iter()
            .find(|(s, _)| !slots.iter().any(|c| c.0 == *s))
        {
            return Err(PluginError::Exports(format!(
                "exports `{}` but does not claim the `{slot}` slot in its metadata",
                abi::export_name(*slot)
            )));
        }
        let meta = PluginMeta {
            name,
            version,
            slots,
            ..core.meta
        };
        let exports = SlotKind::ALL
            .into_iter()
            .filter_map(|s| exported.iter().find(|(e, _)| *e == s).copied())
            .collect();
        Ok(WasmPlugin {
            core: Arc::new(PluginCore { meta, ..core }),
            exports,
        })
    }
}

fn is_func(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &ValType, b: &ValType| ValType::eq(a, b);
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(a, b)| same(&a, b))
        && ty.results().zip(results).all(|(a, b)| same(&a, b))
}

type Exported = (
    ModuleExport,
    ModuleExport,
    ModuleExport,
    Vec<(SlotKind, ModuleExport)>,
);

/// Checks the ABI's exports and their types: `memory`, `cabi_realloc`, `metadata` and the
/// slot functions present.
fn check_exports(module: &Module, memory_cap: usize) -> Result<Exported> {
    use ValType::I32;
    let missing =
        |name: &str, what: &str| PluginError::Exports(format!("missing export `{name}` ({what})"));
    let func_export = |name: &str, params: &[ValType], results: &[ValType], what: &str| match module
        .get_export(name)
    {
        Some(ExternType::Func(ty)) if is_func(&ty, params, results) => module
            .get_export_index(name)
            .ok_or_else(|| missing(name, what)),
        Some(other) => Err(PluginError::Exports(format!(
            "`{name}` must be {what}, found {other:?}"
        ))),
        None => Err(missing(name, what)),
    };
    let memory = match module.get_export(abi::MEMORY) {
        Some(ExternType::Memory(m)) => {
            if m.is_64() || m.is_shared() {
                return Err(PluginError::Limits(
                    "the memory must be a 32-bit, unshared memory".into(),
                ));
            }
            let initial = m.minimum().saturating_mul(65_536);
            if initial > memory_cap as u64 {
                return Err(PluginError::Limits(format!(
                    "the memory starts at {initial} bytes, over the {memory_cap}-byte cap"
                )));
            }
            module
                .get_export_index(abi::MEMORY)
                .ok_or_else(|| missing(abi::MEMORY, "the linear memory"))?
        }
        _ => return Err(missing(abi::MEMORY, "the linear memory")),
    };
    let realloc = func_export(
        abi::REALLOC,
        &[I32, I32, I32, I32],
        &[I32],
        "func(i32, i32, i32, i32) -> i32",
    )?;
    let metadata = func_export(abi::METADATA, &[], &[I32], "func() -> i32")?;
    let mut slots = Vec::new();
    for slot in SlotKind::ALL {
        let name = abi::export_name(slot);
        if module.get_export(name).is_some() {
            let e = func_export(name, &[I32, I32, I32], &[I32], "func(i32, i32, i32) -> i32")?;
            slots.push((slot, e));
        }
    }
    if slots.is_empty() {
        return Err(PluginError::Exports(
            "no slot function exported (expected one of ordering, batch-size, leader-health, \
             anomaly, demand)"
                .into(),
        ));
    }
    Ok((memory, realloc, metadata, slots))
}

/// Calls `metadata` under the load deadline and lifts its `plugin-info`.
fn read_metadata(core: &PluginCore, metadata: &ModuleExport) -> Result<abi::PluginInfo> {
    let bad = PluginError::Metadata;
    let deadline = Instant::now() + core.runtime.config().load_deadline;
    let mut store = sandbox::store(&core.runtime, deadline);
    let instance = core
        .pre
        .instantiate(&mut store)
        .map_err(|e| PluginError::Instantiate(sandbox::classify(&store, &e).to_string()))?;
    let f = sandbox::func::<(), i32>(&mut store, &instance, metadata)
        .map_err(|e| bad(e.to_string()))?;
    let ret = f.call(&mut store, ()).map_err(|e| {
        bad(format!(
            "`metadata` failed: {}",
            sandbox::classify(&store, &e)
        ))
    })?;
    let mem =
        sandbox::memory(&mut store, &instance, &core.memory).map_err(|e| bad(e.to_string()))?;
    abi::lift_plugin_info(mem.data(&store), ret as u32).map_err(bad)
}
