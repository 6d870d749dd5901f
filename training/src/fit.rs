//! Thin wrappers around linfa: fit on row-major `f64` slices (linfa 0.8 uses ndarray 0.16;
//! nothing here leaks ndarray types, so the rest of the crate and tract's ndarray 0.17 never
//! meet it).

use linfa::prelude::*;
use linfa_linear::LinearRegression;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use crate::error::{Result, TrainingError};

fn matrix(x: &[f64], cols: usize) -> Result<Array2<f64>> {
    if cols == 0 || !x.len().is_multiple_of(cols) || x.is_empty() {
        return Err(TrainingError::Shape(format!(
            "{} values do not make rows of {cols} features",
            x.len()
        )));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return Err(TrainingError::NonFinite(format!("feature value {v}")));
    }
    Array2::from_shape_vec((x.len() / cols, cols), x.to_vec())
        .map_err(|e| TrainingError::Shape(e.to_string()))
}

/// Ordinary least squares with an intercept: `(weights, intercept)`.
pub fn linear(x: &[f64], cols: usize, y: &[f64]) -> Result<(Vec<f64>, f64)> {
    let x = matrix(x, cols)?;
    if y.len() != x.nrows() {
        return Err(TrainingError::Shape(format!(
            "{} targets for {} rows",
            y.len(),
            x.nrows()
        )));
    }
    let ds = Dataset::new(x, Array1::from(y.to_vec()));
    let fitted = LinearRegression::new()
        .fit(&ds)
        .map_err(|e| TrainingError::Fit(e.to_string()))?;
    Ok((fitted.params().to_vec(), fitted.intercept()))
}

/// L2-regularised logistic regression (L-BFGS) of `P(label = true)`: `(weights, intercept)`.
pub fn logistic(
    x: &[f64],
    cols: usize,
    labels: &[bool],
    alpha: f64,
    max_iterations: u64,
) -> Result<(Vec<f64>, f64)> {
    let x = matrix(x, cols)?;
    if labels.len() != x.nrows() {
        return Err(TrainingError::Shape(format!(
            "{} labels for {} rows",
            labels.len(),
            x.nrows()
        )));
    }
    if labels.iter().all(|&l| l) || labels.iter().all(|&l| !l) {
        return Err(TrainingError::Data("both classes are needed".into()));
    }
    let y: Array1<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    let ds = Dataset::new(x, y);
    let fitted = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(max_iterations)
        .fit(&ds)
        .map_err(|e| TrainingError::Fit(e.to_string()))?;
    // linfa models the probability of its "positive" class; when that is 0 (false),
    // P(true) = 1 - sigmoid(z) = sigmoid(-z): negate the parameters.
    let sign = if fitted.labels().pos.class == 1 {
        1.0
    } else {
        -1.0
    };
    Ok((
        fitted.params().iter().map(|w| sign * w).collect(),
        sign * fitted.intercept(),
    ))
}
