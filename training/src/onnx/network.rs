//! [`Network`]: the models this crate trains, as plain numbers: a feature standardiser, dense
//! layers with activations, and an output clamp. It predicts natively (the training metrics
//! are computed with it) and exports itself to ONNX ([`Network::to_onnx`]).

use crate::error::{Result, TrainingError};

/// `(x - mean) / std` per feature, applied to the raw contract features first.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation (never 0: a constant feature gets 1).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Mean and standard deviation of each column of the row-major `rows x cols` matrix `x`,
    /// in `f64`; a column with (almost) no spread gets a standard deviation of 1, so it is
    /// only centred.
    pub fn fit(x: &[f64], cols: usize) -> Self {
        let rows = x.len().checked_div(cols).unwrap_or(0);
        let mut mean = vec![0.0f64; cols];
        let mut var = vec![0.0f64; cols];
        for row in x.chunks_exact(cols.max(1)).take(rows) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        let n = rows.max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        for row in x.chunks_exact(cols.max(1)).take(rows) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let std = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / n).sqrt();
                if sd > 1e-6 * m.abs().max(1.0) {
                    sd
                } else {
                    1.0
                }
            })
            .collect::<Vec<f64>>();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: std.iter().map(|&s| s as f32).collect(),
        }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Standardises the row-major matrix `x` (as the exported graph does, in `f32` for the
    /// statistics and `f64` for the arithmetic).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let cols = self.len().max(1);
        x.chunks_exact(cols)
            .flat_map(|row| {
                row.iter()
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|(v, (m, s))| (v - f64::from(*m)) / f64::from(*s))
            })
            .collect()
    }
}

/// What follows a dense layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Nothing.
    Identity,
    /// `max(x, 0)` (ONNX `Relu`).
    Relu,
    /// `1 / (1 + exp(-x))` (ONNX `Sigmoid`).
    Sigmoid,
    /// `min(max(x, min), max)` (ONNX `Clip` with `min` and `max` inputs).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Activation {
    /// Applies the activation to one value.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Clip { min, max } => x.max(f64::from(min)).min(f64::from(max)),
        }
    }
}

/// A dense layer `y = x W + b` followed by an activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Inputs per row.
    pub inputs: usize,
    /// Outputs per row.
    pub outputs: usize,
    /// Row-major `[inputs, outputs]` weights.
    pub weights: Vec<f32>,
    /// `outputs` biases.
    pub bias: Vec<f32>,
    /// What follows.
    pub activation: Activation,
}

impl Dense {
    /// A layer from `f64` weights (row-major `[inputs, outputs]`) and biases; fails when the
    /// lengths do not match or a value is not finite in `f32`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        weights: &[f64],
        bias: &[f64],
        activation: Activation,
    ) -> Result<Self> {
        if weights.len() != inputs * outputs || bias.len() != outputs {
            return Err(TrainingError::Shape(format!(
                "dense layer {inputs}x{outputs} got {} weights and {} biases",
                weights.len(),
                bias.len()
            )));
        }
        let to_f32 = |v: &[f64]| -> Result<Vec<f32>> {
            v.iter()
                .map(|&w| {
                    let f = w as f32;
                    if f.is_finite() {
                        Ok(f)
                    } else {
                        Err(TrainingError::NonFinite(format!("parameter {w}")))
                    }
                })
                .collect()
        };
        Ok(Self {
            inputs,
            outputs,
            weights: to_f32(weights)?,
            bias: to_f32(bias)?,
            activation,
        })
    }

    /// Applies the layer to the row-major `rows x inputs` matrix `x`.
    pub fn forward(&self, x: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(x.len() / self.inputs.max(1) * self.outputs);
        for row in x.chunks_exact(self.inputs.max(1)) {
            for o in 0..self.outputs {
                let mut acc = f64::from(self.bias[o]);
                for (i, v) in row.iter().enumerate() {
                    acc += v * f64::from(self.weights[i * self.outputs + o]);
                }
                out.push(self.activation.apply(acc));
            }
        }
        out
    }
}

/// How the graph's batch axis is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchAxis {
    /// Symbolic (`dim_param "N"`): any number of rows (`f32[N, F]`).
    Symbolic,
    /// Exactly one row (`f32[1, F]`).
    One,
}

/// The shape of the graph's output, from the slot contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputShape {
    /// One value per row: `f32[N]` (or `f32[1]` with [`BatchAxis::One`]).
    PerRow,
    /// The last layer's outputs for the single row: `f32[1, n]`.
    Row,
}

/// A trained model: an optional standardiser, then dense layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Applied to the raw features first.
    pub standardizer: Option<Standardizer>,
    /// Applied in order.
    pub layers: Vec<Dense>,
}

impl Network {
    /// Checks that the layers chain: the standardiser and the first layer take the same
    /// number of features, each layer's outputs feed the next one's inputs.
    pub fn validate(&self) -> Result<()> {
        let first = self
            .layers
            .first()
            .ok_or_else(|| TrainingError::Shape("a network needs a layer".into()))?;
        if let Some(s) = &self.standardizer {
            if s.mean.len() != first.inputs || s.std.len() != first.inputs {
                return Err(TrainingError::Shape(format!(
                    "standardiser has {} features, the first layer takes {}",
                    s.mean.len(),
                    first.inputs
                )));
            }
            if s.std.iter().any(|&v| !(v.is_finite() && v > 0.0))
                || s.mean.iter().any(|v| !v.is_finite())
            {
                return Err(TrainingError::NonFinite(
                    "standardiser statistics".to_string(),
                ));
            }
        }
        for w in self.layers.windows(2) {
            if w[0].outputs != w[1].inputs {
                return Err(TrainingError::Shape(format!(
                    "layer of {} outputs feeds a layer of {} inputs",
                    w[0].outputs, w[1].inputs
                )));
            }
        }
        Ok(())
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Number of outputs per row.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// The outputs for the row-major `rows x inputs` matrix `x`, row-major `rows x outputs`,
    /// computed in `f64` from the `f32` parameters the ONNX file holds.
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let mut h = match &self.standardizer {
            Some(s) => s.apply(x),
            None => x.to_vec(),
        };
        for layer in &self.layers {
            h = layer.forward(&h);
        }
        h
    }
}
