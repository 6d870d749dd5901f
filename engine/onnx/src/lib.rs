//! # aurigraph-onnx: the ONNX backend
//!
//! Models run by tract (`tract-onnx` 0.23), the drop-in model folder and
//! its registry.
//!
//! ## Parts
//!
//! - [`Manifest`]: the `model.toml` of a model folder (`name`, `slot`, `version`, `schema`,
//!   optional `file`, `input`, `output`, `output_column`, `description`, `[metrics]`,
//!   `[training]`).
//! - [`OnnxPolicy`]: a model that implements [`Policy`](aurigraph_decision::Policy) for its slot. Loading
//!   ([`OnnxPolicy::load_folder`], [`OnnxPolicy::from_bytes`]) runs every check before the
//!   model is handed out:
//!   1. size (at most [`MAX_MODEL_BYTES`], refused before reading), manifest, schema version;
//!   2. the graph: input and output tensors (by the manifest's names, or the only ones),
//!      rank 2, the slot's feature count, `f32`, a symbolic batch axis for batched slots,
//!      operators tract runs, no external tensor data. A `ZipMap` on the chosen output is
//!      stripped and the nodes the output does not need (a classifier's `label`) are pruned;
//!   3. tract types the graph with the input fact set from the slot's schema
//!      (`f32[N, F]`, `N` symbolic, or `f32[1, F]`), checks the output shape
//!      (`[N]`, `[N, 1]`, `[N, K]` + `output_column`; `[H]`/`[1, H]` for fixed outputs),
//!      and optimises once;
//!   4. memory: the peak of the tensors each plan keeps alive at once, for the largest
//!      batch it runs, must be at most [`LoadOptions::memory_cap`] (default
//!      [`DEFAULT_MEMORY_CAP`], 64 MiB), else `E_MODEL_MEMORY` (see "Memory cap" below);
//!   5. warm-up on the slot's golden inputs: any error, NaN, wrong length or out-of-range
//!      value refuses the model; then a batch of [`LoadOptions::timed_rows`] rows is timed
//!      (best of up to 3 runs: load on the machine only adds time) and a model slower than
//!      90% of the deadline is refused (the host keeps
//!      the last tenth for the fallback).
//! - [`ModelRegistry`]: watches a models folder by polling, loads new or changed folders off
//!   the hot path, registers them as candidate versions, keeps the load errors, lists and
//!   unloads versions, and resolves persisted rollout state
//!   ([`PolicyResolver`](aurigraph_decision::rollout::PolicyResolver)). It never puts a model live:
//!   the operator loads it into a [`SlotHost`](aurigraph_decision::SlotHost) as the candidate and rolls
//!   it out.
//! - [`OnnxError`]: every refusal, with a stable code (`E_ONNX_PARSE`, `E_ONNX_SHAPE`, ...).
//!
//! ## Isolation
//!
//! tract cannot be interrupted mid-run, so an [`OnnxPolicy`] runs on the host's watchdog
//! workers ([`Isolation::Watchdog`](aurigraph_decision::Isolation::Watchdog)): the decision waits at most
//! until its deadline, then the static policy answers and the late run finishes on its
//! worker. The warm-up timing keeps models that cannot meet the deadline out.
//!
//! ## Memory cap
//!
//! The file size bounds the weights, not the tensors a graph computes on the way (a `Tile`
//! of the input can ask gigabytes per batch). At load, each optimised plan is walked in the
//! order tract runs it, with each tensor's size from its typed fact (shape times element
//! size, plus the buffer of a matrix packed for multiplication) and each tensor alive until
//! its last consumer has run; the peak is the plan's estimate. Bucket plans are estimated
//! at their batch size, the symbolic plan of a batched slot at the larger of the largest
//! bucket and [`LoadOptions::timed_rows`] (the largest batch the node sends; the decision
//! core sets no bound on a batch's rows), a single-row slot's plan at one row. A plan over
//! the cap, or one with a tensor whose size depends on the data (`NonZero`), is refused
//! with `E_MODEL_MEMORY` before any batch runs; the message gives the estimate, the rows
//! and the cap, and [`LoadReport`] keeps the estimate of a model that loads. The estimate
//! leaves out the weights and operators' scratch space, and counts a buffer tract reuses
//! in place twice. A batch larger than the one estimated needs memory in proportion to
//! its rows.
//!
//! ## Plans by batch-size bucket
//!
//! With a symbolic batch axis tract resolves shapes and picks matrix-multiplication
//! strategies on every call; a plan specialised to a batch size does it once at load. A
//! batched slot's model therefore gets, besides its symbolic plan, plans specialised to
//! [`DEFAULT_BUCKETS`] (256 ... 16,384 rows); a batch runs on the smallest bucket that
//! holds it, padded with zero rows whose answers are dropped (at most 2x the rows, about
//! 1.3x from 2,048 rows on). Measured on the 2-core build machine with the committed
//! PyTorch MLP fixture (9-16-16-1): see `benches/benches/onnx.rs` and docs/PERFORMANCE.md.
//!
//! Trade-offs: load time and memory grow with the number of plans (9 small plans: a few
//! ms, tens of KB for a small MLP), so models over [`BUCKET_MAX_MODEL_BYTES`] get the
//! symbolic plan only; and padding is only correct when rows are independent, so the
//! warm-up compares the padded plans with the symbolic plan on golden inputs and drops the
//! buckets of a model whose answers differ (a model that normalises across the batch).
//!
//! ## Operators beyond tract
//!
//! `ai.onnx.ml` `TreeEnsembleRegressor` (scikit-learn's gradient boosting and random forest
//! regressors through skl2onnx) is not in tract 0.23. This backend registers it: the forest is
//! parsed and checked at load, then evaluated by a tract operator of ours in safe Rust (one
//! walk per row and tree; see `tree.rs`), not by tract's classifier kernel.

mod error;
mod graph;
mod manifest;
mod plan;
mod policy;
mod registry;
mod tree;

pub use aurigraph_decision::registry::{LoadFailure, ModelKey, PollReport, Watcher};
pub use error::{OnnxError, OnnxResult};
pub use manifest::{DEFAULT_MODEL_FILE, MANIFEST_FILE, Manifest};
pub use policy::{
    BUCKET_MAX_MODEL_BYTES, DEFAULT_BUCKETS, DEFAULT_MEMORY_CAP, LoadOptions, LoadReport,
    OnnxPolicy, own_ops, supports_op,
};
pub use registry::{ModelRegistry, ModelSummary};

/// The largest model file accepted: 60 MB (60 * 1024 * 1024 bytes).
pub const MAX_MODEL_BYTES: u64 = 60 * 1024 * 1024;
