//! [`Manifest`]: the `model.toml` of a model folder.
//!
//! ```toml
//! name = "ordering-mlp"          # [a-z0-9._-], 1..=64 characters
//! slot = "ordering"              # one of the five slots
//! version = "1.2.0"              # any non-empty string without whitespace, up to 64 characters
//! schema = 1                     # the slot's feature-schema version the model was built for
//! file = "model.onnx"            # optional, relative to the folder (default model.onnx)
//! input = "input"                # optional: the graph input fed with f32[N, F]
//! output = "probabilities"       # optional: the graph output read
//! output_column = 1              # optional: column of an [N, K] output (classifier: 1)
//! description = "..."            # optional
//!
//! [metrics]                      # optional, free-form: what training measured (held out)
//! mse = 0.012
//! seed = 7
//!
//! [training]                     # optional, free-form: how the model was made
//! command = "cargo run -p aurigraph-training --release -- all --seed 7 --out models"
//! algorithm = "linfa-linear 0.8 ordinary least squares"
//! ```
//!
//! `[metrics]` holds measurements (numbers, counts, the seed); `[training]` holds provenance
//! (the command that remakes the model, its seed, the algorithm, the data, the target).
//! Neither is interpreted by the node: both are kept, printed and round-tripped as written.
//! Every other unknown field is refused (a misspelt `output_colum` would otherwise be
//! ignored silently).

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::error::{OnnxError, OnnxResult};
use aurigraph_decision::slot::SlotKind;

/// The model file's name when the manifest gives none.
pub const DEFAULT_MODEL_FILE: &str = "model.onnx";

/// The manifest's file name in a model folder.
pub const MANIFEST_FILE: &str = "model.toml";

/// The `model.toml` of a model folder. See the `onnx` module docs for the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model name: `[a-z0-9._-]`, 1 to 64 characters.
    pub name: String,
    /// The slot it answers.
    pub slot: SlotKind,
    /// Version: non-empty, no whitespace, up to 64 characters.
    pub version: String,
    /// The slot's feature-schema version it was built for.
    pub schema: u32,
    /// Model file, relative to the folder; `model.onnx` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Graph input fed with the features; required only when the graph has several inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Graph output read; required only when the graph has several `f32` outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Column of an `[N, K]` output to read (a classifier's `[N, 2]` probabilities: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_column: Option<usize>,
    /// What the model is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What training measured: held-out metrics, row counts, the seed (free-form).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, toml::Value>,
    /// How the model was made: the command that remakes it, the seed, the algorithm, the
    /// data and the target (free-form; `training/` writes `command`, `seed`, `algorithm`,
    /// `data`, `target`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub training: BTreeMap<String, toml::Value>,
}

impl Manifest {
    /// A manifest with the required fields; the optional ones empty.
    pub fn new(name: &str, slot: SlotKind, version: &str) -> Self {
        Self {
            name: name.to_string(),
            slot,
            version: version.to_string(),
            schema: slot.contract().schema_version,
            file: None,
            input: None,
            output: None,
            output_column: None,
            description: None,
            metrics: BTreeMap::new(),
            training: BTreeMap::new(),
        }
    }

    /// Parses and checks a manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> OnnxResult<Self> {
        let m: Manifest = toml::from_str(text).map_err(|e| OnnxError::Manifest {
            path: origin.to_string(),
            reason: e.message().to_string()
                + &e.span()
                    .map(|s| format!(" (at byte {})", s.start))
                    .unwrap_or_default(),
        })?;
        m.check(origin)?;
        Ok(m)
    }

    /// Reads `model.toml` from `folder`.
    pub fn read(folder: &Path) -> OnnxResult<Self> {
        let path = folder.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| OnnxError::Manifest {
            path: path.display().to_string(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The manifest as TOML; [`Manifest::parse`] reads it back unchanged.
    pub fn to_toml(&self) -> OnnxResult<String> {
        toml::to_string(self).map_err(|e| OnnxError::Manifest {
            path: "<memory>".to_string(),
            reason: e.to_string(),
        })
    }

    /// The model file's name relative to the folder.
    pub fn model_file(&self) -> &str {
        self.file.as_deref().unwrap_or(DEFAULT_MODEL_FILE)
    }

    /// Checks the values: name and version syntax, the file stays inside the folder, and
    /// the schema version is the slot's.
    pub fn check(&self, origin: &str) -> OnnxResult<()> {
        let bad = |reason: String| {
            Err(OnnxError::Manifest {
                path: origin.to_string(),
                reason,
            })
        };
        let name_ok = (1..=64).contains(&self.name.len())
            && self.name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !name_ok {
            return bad(format!(
                "name `{}` must be 1 to 64 characters of a-z, 0-9, `.`, `_`, `-`",
                self.name
            ));
        }
        if !(1..=64).contains(&self.version.len())
            || self
                .version
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(format!(
                "version `{}` must be 1 to 64 characters without whitespace",
                self.version
            ));
        }
        let file = Path::new(self.model_file());
        let inside = !self.model_file().is_empty()
            && file
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return bad(format!(
                "file `{}` must be a relative path inside the model folder",
                self.model_file()
            ));
        }
        let expected = self.slot.contract().schema_version;
        if self.schema != expected {
            return Err(OnnxError::SchemaVersion {
                slot: self.slot,
                declared: self.schema,
                expected,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "ordering-mlp"
        slot = "ordering"
        version = "1.0.0"
        schema = 1
        output_column = 0
        [metrics]
        mse = 0.5
        seed = 7
        [metrics.train]
        rows = 1000
        [training]
        command = "cargo run -p aurigraph-training --release -- all --seed 7 --out models"
        seed = 7
    "#;

    #[test]
    fn parses_and_round_trips() {
        let m = Manifest::parse(GOOD, "t").unwrap();
        assert_eq!(m.slot, SlotKind::Ordering);
        assert_eq!(m.model_file(), "model.onnx");
        assert_eq!(m.metrics["seed"].as_integer(), Some(7));
        assert_eq!(m.training["seed"].as_integer(), Some(7));
        assert!(m.training["command"].as_str().unwrap().contains("--seed 7"));
        let back = Manifest::parse(&m.to_toml().unwrap(), "t").unwrap();
        assert_eq!(back, m);
        let fresh = Manifest::new("x", SlotKind::Demand, "2");
        assert_eq!(
            Manifest::parse(&fresh.to_toml().unwrap(), "t").unwrap(),
            fresh
        );
    }

    #[test]
    fn refusals_have_codes() {
        let cases = [
            ("name = \"a\"", "E_MANIFEST"),
            (
                "name = \"a\"\nslot = \"nope\"\nversion = \"1\"\nschema = 1",
                "E_MANIFEST",
            ),
            (
                "name = \"A b\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1",
                "E_MANIFEST",
            ),
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1 2\"\nschema = 1",
                "E_MANIFEST",
            ),
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1\noutput_colum = 1",
                "E_MANIFEST",
            ),
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1\nfile = \"../x.onnx\"",
                "E_MANIFEST",
            ),
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1\nfile = \"/etc/x\"",
                "E_MANIFEST",
            ),
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 2",
                "E_SCHEMA_VERSION",
            ),
            ("\u{0}\u{1}garbage = = =", "E_MANIFEST"),
            // `training` is a table, not a value; a misspelt table is unknown.
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1\ntraining = 3",
                "E_MANIFEST",
            ),
            (
                "name = \"a\"\nslot = \"ordering\"\nversion = \"1\"\nschema = 1\n[trainig]\nseed = 1",
                "E_MANIFEST",
            ),
        ];
        for (text, code) in cases {
            let e = Manifest::parse(text, "t").unwrap_err();
            assert_eq!(e.code(), code, "{text}: {e}");
        }
    }
}
