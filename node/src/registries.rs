//! [`Registries`]: the models and the plugins registries behind one [`PolicyResolver`].

use std::sync::Arc;

use aurigraph_decision::ResolveError;
use aurigraph_decision::policy::{BackendKind, Policy};
use aurigraph_decision::rollout::{PolicyRef, PolicyResolver};
use aurigraph_decision::slot::SlotKind;
use aurigraph_onnx::ModelRegistry;
use aurigraph_wasm::PluginRegistry;

/// The node's registries, resolving a persisted [`PolicyRef`] by its backend: ONNX refs by
/// the models folder, WASM refs by the plugins folder. Give it to
/// `SlotHost::builder(..).store(store, resolver)` so a host restored after a restart gets
/// back its baseline and candidate whatever their backend. A registry left `None` resolves
/// nothing of its backend (the restored slot falls back to static for that arm and says why).
#[derive(Clone, Debug, Default)]
pub struct Registries {
    /// The watched models folder.
    pub models: Option<Arc<ModelRegistry>>,
    /// The watched plugins folder.
    pub plugins: Option<Arc<PluginRegistry>>,
}

impl Registries {
    /// Both registries.
    pub fn new(models: Arc<ModelRegistry>, plugins: Arc<PluginRegistry>) -> Self {
        Self {
            models: Some(models),
            plugins: Some(plugins),
        }
    }
}

impl PolicyResolver for Registries {
    fn resolve(&self, slot: SlotKind, r: &PolicyRef) -> Result<Arc<dyn Policy>, ResolveError> {
        match r.backend {
            BackendKind::Onnx => match &self.models {
                Some(m) => m.resolve(slot, r),
                None => Err(ResolveError::NoRegistry("models")),
            },
            BackendKind::Wasm => match &self.plugins {
                Some(p) => p.resolve(slot, r),
                None => Err(ResolveError::NoRegistry("plugins")),
            },
            other => Err(ResolveError::NotKept(other)),
        }
    }
}
