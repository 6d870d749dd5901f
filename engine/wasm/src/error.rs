//! Why a plugin was refused at load, with a stable code per reason.

use std::path::PathBuf;

use aurigraph_decision::slot::SlotKind;

/// Result alias of the WASM backend.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// Why a plugin could not be loaded. Nothing is swapped when a load fails: the running
/// policy stays. [`PluginError::code`] is stable, for the CLI, the APIs and the logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The file or folder could not be read.
    #[error("cannot read plugin `{path}`: {reason}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A folder without a `plugin.wasm`.
    #[error("no plugin in `{0}` (expected a `.wasm` file or a folder with `plugin.wasm`)")]
    NotFound(PathBuf),
    /// The module is larger than the configured cap.
    #[error("the module is {size} bytes, over the {limit}-byte cap")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap ([`RuntimeConfig::max_module_bytes`](super::RuntimeConfig)).
        limit: usize,
    },
    /// Not a valid WebAssembly module, or it uses a feature the runtime does not enable.
    #[error("not a valid WebAssembly module: {0}")]
    Compile(String),
    /// The module imports something; plugins may import nothing (no WASI, no host calls).
    #[error(
        "the module imports `{module}::{name}`; plugins may import nothing (no WASI, no host functions)"
    )]
    Imports {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A required export is missing or has the wrong type, or the exported slot functions
    /// differ from the slots the plugin claims.
    #[error("exports do not match the plugin contract: {0}")]
    Exports(String),
    /// `metadata` trapped or answered something malformed.
    #[error("bad plugin metadata: {0}")]
    Metadata(String),
    /// The plugin was built for another feature-schema version of a slot.
    #[error("the plugin implements `{slot}` on schema v{plugin}, the node uses v{node}")]
    Schema {
        /// The slot.
        slot: SlotKind,
        /// Version the plugin declares.
        plugin: u32,
        /// Version of the node's contract.
        node: u32,
    },
    /// The module asks for more than the sandbox allows (initial memory over the cap,
    /// 64-bit or several memories).
    #[error("the module exceeds the sandbox limits: {0}")]
    Limits(String),
    /// The module compiled but could not be instantiated.
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    /// The plugin does not implement the requested slot.
    #[error("plugin `{plugin}` does not implement `{slot}`")]
    NoSuchSlot {
        /// The plugin's name.
        plugin: String,
        /// The slot asked for.
        slot: SlotKind,
    },
    /// A plugins folder holds two plugins that claim the same slot, name and version; the
    /// second (in name order of the folder) is refused.
    #[error("{key} is already registered from `{other}`; give this plugin another name or version")]
    Duplicate {
        /// The version claimed twice, as `slot/name@version`.
        key: String,
        /// The plugin that registered it first.
        other: PathBuf,
    },
    /// No plugin registered under this slot, name and version.
    #[error("no plugin {slot}/{name}@{version} is registered")]
    NotRegistered {
        /// The slot.
        slot: SlotKind,
        /// The plugin's name.
        name: String,
        /// Its version.
        version: String,
    },
    /// The runtime itself could not start (engine configuration, epoch thread).
    #[error("the WASM runtime cannot start: {0}")]
    Runtime(String),
}

impl PluginError {
    /// Stable code, e.g. `E_WASM_EXPORTS`.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::Io { .. } => "E_WASM_IO",
            PluginError::NotFound(_) => "E_WASM_NOT_FOUND",
            PluginError::TooLarge { .. } => "E_WASM_TOO_LARGE",
            PluginError::Compile(_) => "E_WASM_COMPILE",
            PluginError::Imports { .. } => "E_WASM_IMPORTS",
            PluginError::Exports(_) => "E_WASM_EXPORTS",
            PluginError::Metadata(_) => "E_WASM_METADATA",
            PluginError::Schema { .. } => "E_WASM_SCHEMA",
            PluginError::Limits(_) => "E_WASM_LIMITS",
            PluginError::Instantiate(_) => "E_WASM_INSTANTIATE",
            PluginError::NoSuchSlot { .. } => "E_WASM_NO_SUCH_SLOT",
            PluginError::Duplicate { .. } => "E_WASM_DUPLICATE",
            PluginError::NotRegistered { .. } => "E_WASM_NOT_REGISTERED",
            PluginError::Runtime(_) => "E_WASM_RUNTIME",
        }
    }
}
