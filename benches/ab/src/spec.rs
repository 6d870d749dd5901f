//! An arm's SPEC: which policy answers each slot.
//!
//! Grammar: `static`, or a comma-separated list of `SLOT=POLICY` where `POLICY` is
//! `static`, `onnx:NAME[@VERSION]` (a model of the models folder) or `wasm:NAME[@VERSION]`
//! (a plugin of the plugins folder). Slots not named stay static. Without a version the
//! highest registered version of that name for the slot is used.
//!
//! One node setting may also be given per arm, as a list item of its own:
//! `block.batch_size_reads_forecast=true|false` (the node's `[block]` key of that name;
//! default false), e.g. `batch_size=static,block.batch_size_reads_forecast=true`. It is
//! printed last, and only when true.
//!
//! ```
//! use aurigraph_ab::spec::{ArmSpec, PolicyChoice};
//! use aurigraph_decision::SlotKind;
//!
//! let s: ArmSpec = "ordering=wasm:conflict-aware@1.0.0,batch_size=static".parse().unwrap();
//! assert_eq!(
//!     s.choice(SlotKind::Ordering),
//!     &PolicyChoice::Wasm { name: "conflict-aware".into(), version: Some("1.0.0".into()) }
//! );
//! assert!("ordering=tflite:x".parse::<ArmSpec>().is_err());
//! ```
//!
//! Errors carry stable codes: `E_AB_SPEC_SYNTAX`, `E_AB_SPEC_SLOT`, `E_AB_SPEC_BACKEND`,
//! `E_AB_SPEC_DUPLICATE`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aurigraph_decision::SlotKind;

/// A SPEC that does not parse, with its stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("[{code}] {message}")]
pub struct SpecError {
    /// Stable code (`E_AB_SPEC_*`).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        code,
        message: message.into(),
    }
}

/// What answers one slot.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PolicyChoice {
    /// The slot's static policy.
    #[default]
    Static,
    /// A registered ONNX model.
    Onnx {
        /// Its name.
        name: String,
        /// Its version (highest registered when `None`).
        version: Option<String>,
    },
    /// A registered WASM plugin.
    Wasm {
        /// Its name.
        name: String,
        /// Its version (highest registered when `None`).
        version: Option<String>,
    },
}

impl fmt::Display for PolicyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, name, version) = match self {
            PolicyChoice::Static => return f.write_str("static"),
            PolicyChoice::Onnx { name, version } => ("onnx", name, version),
            PolicyChoice::Wasm { name, version } => ("wasm", name, version),
        };
        write!(f, "{b}:{name}")?;
        if let Some(v) = version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

impl FromStr for PolicyChoice {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let s = s.trim();
        if s == "static" {
            return Ok(PolicyChoice::Static);
        }
        let Some((backend, rest)) = s.split_once(':') else {
            return Err(err(
                "E_AB_SPEC_SYNTAX",
                format!(
                    "policy `{s}`: expected `static`, `onnx:NAME[@VERSION]` or `wasm:NAME[@VERSION]`"
                ),
            ));
        };
        let (name, version) = match rest.split_once('@') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (rest.trim(), None),
        };
        let valid = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(name) {
            return Err(err(
                "E_AB_SPEC_SYNTAX",
                format!("policy `{s}`: the name must be letters, digits, `-`, `_` or `.`"),
            ));
        }
        if let Some(v) = version
            && !valid(v)
        {
            return Err(err(
                "E_AB_SPEC_SYNTAX",
                format!(
                    "policy `{s}`: the version after `@` must be letters, digits, `-`, `_` or `.`"
                ),
            ));
        }
        let name = name.to_string();
        let version = version.map(str::to_string);
        match backend.trim() {
            "onnx" => Ok(PolicyChoice::Onnx { name, version }),
            "wasm" => Ok(PolicyChoice::Wasm { name, version }),
            other => Err(err(
                "E_AB_SPEC_BACKEND",
                format!("policy `{s}`: backend `{other}`; expected `static`, `onnx` or `wasm`"),
            )),
        }
    }
}

/// One arm: a policy per slot (static where not named).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ArmSpec {
    choices: BTreeMap<SlotKind, PolicyChoice>,
    /// The arm's node `[block] batch_size_reads_forecast`.
    pub batch_size_reads_forecast: bool,
}

/// The node setting an arm's SPEC may carry.
pub const READS_FORECAST_KEY: &str = "block.batch_size_reads_forecast";

const STATIC: PolicyChoice = PolicyChoice::Static;

impl ArmSpec {
    /// What answers `slot`.
    pub fn choice(&self, slot: SlotKind) -> &PolicyChoice {
        self.choices.get(&slot).unwrap_or(&STATIC)
    }

    /// The slots that are not static, with their choice.
    pub fn non_static(&self) -> impl Iterator<Item = (SlotKind, &PolicyChoice)> {
        self.choices
            .iter()
            .filter(|(_, c)| **c != PolicyChoice::Static)
            .map(|(s, c)| (*s, c))
    }
}

impl fmt::Display for ArmSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .choices
            .iter()
            .map(|(s, c)| format!("{s}={c}"))
            .collect();
        if self.batch_size_reads_forecast {
            parts.push(format!("{READS_FORECAST_KEY}=true"));
        }
        if parts.is_empty() {
            f.write_str("static")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

impl FromStr for ArmSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(err(
                "E_AB_SPEC_SYNTAX",
                "empty SPEC; expected `static` or SLOT=POLICY[,SLOT=POLICY...]",
            ));
        }
        if s == "static" {
            return Ok(ArmSpec::default());
        }
        let mut choices = BTreeMap::new();
        let mut reads_forecast = None;
        for part in s.split(',') {
            let part = part.trim();
            let Some((slot, policy)) = part.split_once('=') else {
                return Err(err(
                    "E_AB_SPEC_SYNTAX",
                    format!("`{part}`: expected SLOT=POLICY (e.g. ordering=onnx:ordering-linear)"),
                ));
            };
            let slot = slot.trim();
            if slot == READS_FORECAST_KEY {
                let value = match policy.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(err(
                            "E_AB_SPEC_SYNTAX",
                            format!("`{slot}={other}`: expected true or false"),
                        ));
                    }
                };
                if reads_forecast.replace(value).is_some() {
                    return Err(err(
                        "E_AB_SPEC_DUPLICATE",
                        format!("`{slot}` is named twice"),
                    ));
                }
                continue;
            }
            let kind = slot.parse::<SlotKind>().map_err(|_| {
                err(
                    "E_AB_SPEC_SLOT",
                    format!(
                        "unknown slot `{slot}`; slots: {}",
                        SlotKind::ALL.map(|k| k.as_str()).join(", ")
                    ),
                )
            })?;
            let choice: PolicyChoice = policy.parse()?;
            if choices.insert(kind, choice).is_some() {
                return Err(err(
                    "E_AB_SPEC_DUPLICATE",
                    format!("slot `{kind}` is named twice"),
                ));
            }
        }
        Ok(ArmSpec {
            choices,
            batch_size_reads_forecast: reads_forecast.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: ArmSpec = "ordering=static,batch_size=onnx:batch-size-linear"
            .parse()
            .unwrap();
        assert_eq!(s.choice(SlotKind::Ordering), &PolicyChoice::Static);
        assert_eq!(
            s.choice(SlotKind::BatchSize),
            &PolicyChoice::Onnx {
                name: "batch-size-linear".into(),
                version: None
            }
        );
        assert_eq!(s.choice(SlotKind::Anomaly), &PolicyChoice::Static);
        assert_eq!(s.non_static().count(), 1);
        let again: ArmSpec = s.to_string().parse().unwrap();
        assert_eq!(again, s);
        assert_eq!("static".parse::<ArmSpec>().unwrap().to_string(), "static");
    }

    #[test]
    fn carries_the_forecast_setting() {
        let s: ArmSpec = "batch_size=onnx:batch-size-linear,block.batch_size_reads_forecast=true"
            .parse()
            .unwrap();
        assert!(s.batch_size_reads_forecast);
        assert_eq!(s.non_static().count(), 1);
        assert_eq!(
            s.to_string(),
            "batch_size=onnx:batch-size-linear,block.batch_size_reads_forecast=true"
        );
        assert_eq!(s.to_string().parse::<ArmSpec>().unwrap(), s);
        let off: ArmSpec = "static".parse().unwrap();
        assert!(!off.batch_size_reads_forecast);
        let code = |s: &str| s.parse::<ArmSpec>().unwrap_err().code;
        assert_eq!(
            code("block.batch_size_reads_forecast=yes"),
            "E_AB_SPEC_SYNTAX"
        );
        assert_eq!(
            code("block.batch_size_reads_forecast=true,block.batch_size_reads_forecast=false"),
            "E_AB_SPEC_DUPLICATE"
        );
    }

    #[test]
    fn refuses_with_stable_codes() {
        let code = |s: &str| s.parse::<ArmSpec>().unwrap_err().code;
        assert_eq!(code(""), "E_AB_SPEC_SYNTAX");
        assert_eq!(code("ordering"), "E_AB_SPEC_SYNTAX");
        assert_eq!(code("ordering=onnx:"), "E_AB_SPEC_SYNTAX");
        assert_eq!(code("ordering=onnx:a@"), "E_AB_SPEC_SYNTAX");
        assert_eq!(code("ordering=linear"), "E_AB_SPEC_SYNTAX");
        assert_eq!(code("sorting=static"), "E_AB_SPEC_SLOT");
        assert_eq!(code("ordering=tflite:x"), "E_AB_SPEC_BACKEND");
        assert_eq!(
            code("ordering=static,ordering=onnx:x"),
            "E_AB_SPEC_DUPLICATE"
        );
    }
}
