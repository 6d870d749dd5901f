//! ONNX export of the trained models, written from Rust without any Python or protoc.
//!
//! - [`proto`]: the ONNX protobuf messages the exporter needs, hand-written `prost` messages
//!   (no build step);
//! - [`Network`]: a trained model as numbers (standardiser, dense layers, activations), with a
//!   native `predict`;
//! - [`Network::to_onnx`]: the model as an opset-13 graph (`Sub`/`Div` standardisation,
//!   `Gemm`, `Relu`/`Sigmoid`/`Clip`, `Reshape`), see [`export`];
//! - [`eval`]: a reference evaluator for exactly those operators, used by the tests to check
//!   the encoded bytes against `predict`.
//!
//! A linear regression is one `Gemm` with one output column, a logistic regression the same
//! followed by `Sigmoid`, the demand autoregression one `Gemm` with a `[W, H]` weight matrix,
//! and a small MLP `Gemm -> Relu -> Gemm`.

pub mod eval;
pub mod export;
pub mod network;
pub mod proto;

pub use export::{BATCH_PARAM, ExportSpec, IR_VERSION, OPSET};
pub use network::{Activation, BatchAxis, Dense, Network, OutputShape, Standardizer};
