//! [`TrainedModel`]: a trained network with its export spec and manifest, and how it is
//! written to a models folder.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainingError};
use crate::manifest::Manifest;
use crate::onnx::{ExportSpec, Network};

/// A trained model, ready to be written.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// The parameters.
    pub network: Network,
    /// How the ONNX graph is named and shaped.
    pub spec: ExportSpec,
    /// The `model.toml`.
    pub manifest: Manifest,
}

/// The bytes of a written model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFiles {
    /// The folder.
    pub dir: PathBuf,
    /// `model.onnx`.
    pub onnx: Vec<u8>,
    /// `model.toml`.
    pub toml: String,
}

impl TrainedModel {
    /// The encoded `model.onnx` and `model.toml`. The manifest is parsed back with the
    /// engine's [`Manifest::parse`](aurigraph_onnx::Manifest::parse), the parser the
    /// node loads model folders with, so a manifest the node would refuse is never written.
    pub fn encode(&self) -> Result<(Vec<u8>, String)> {
        let toml = self.manifest.to_toml()?;
        aurigraph_onnx::Manifest::parse(&toml, &self.manifest.name).map_err(|e| {
            TrainingError::Contract {
                code: e.code(),
                reason: e.one_line(),
            }
        })?;
        Ok((self.network.to_onnx(&self.spec)?, toml))
    }

    /// Writes `<root>/<name>/model.onnx` and `model.toml` (creating the folder), and returns
    /// what it wrote.
    pub fn write(&self, root: &Path) -> Result<ModelFiles> {
        let (onnx, toml) = self.encode()?;
        let dir = root.join(&self.manifest.name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrainingError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let onnx_path = dir.join(&self.manifest.file);
        std::fs::write(&onnx_path, &onnx).map_err(io(&onnx_path))?;
        let toml_path = dir.join("model.toml");
        std::fs::write(&toml_path, &toml).map_err(io(&toml_path))?;
        Ok(ModelFiles { dir, onnx, toml })
    }
}
