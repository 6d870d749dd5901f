//! [`OnnxPolicy`]: an ONNX model answering a slot, and how it is loaded, checked and warmed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use tract_onnx::prelude::*;

use super::MAX_MODEL_BYTES;
use super::error::{OnnxError, OnnxResult};
use super::graph;
use super::manifest::Manifest;
use super::plan::{self, OutputReader, Plan, Plans};
use super::tree;
use aurigraph_decision::features::FeatureMatrix;
use aurigraph_decision::policy::{BackendKind, Isolation, Policy, PolicyError, PolicyInfo};
use aurigraph_decision::slot::{OutputFault, OutputLen, Rows, SlotContract, SlotKind};

/// The batch sizes that get a specialised plan by default (see the [module docs](super)).
pub const DEFAULT_BUCKETS: [usize; 12] = [
    256, 512, 1024, 2048, 3072, 4096, 5120, 6144, 8192, 10240, 12288, 16384,
];

/// Models whose file is larger than this get no specialised plans: each plan may hold its
/// own packed copy of the weights.
pub const BUCKET_MAX_MODEL_BYTES: u64 = 8 << 20;

/// The default [`LoadOptions::memory_cap`]: 64 MiB, as the WASM backend's memory cap.
pub const DEFAULT_MEMORY_CAP: u64 = 64 << 20;

/// Rows of the golden inputs a batched slot's model answers at warm-up.
const GOLDEN_ROWS: [usize; 4] = [1, 7, 64, 300];

/// How a model is loaded.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The per-decision deadline the model must meet; `None` takes the slot's default.
    pub deadline: Option<Duration>,
    /// Rows of the batch timed at warm-up for batched slots (the largest batch the node
    /// sends). Default 10,000.
    pub timed_rows: usize,
    /// Batch sizes that get a specialised plan (batched slots only); empty for none.
    pub buckets: Vec<usize>,
    /// Largest number of bytes of tensors a plan may keep alive at once, for the largest
    /// batch it runs: each bucket plan at its batch size, the symbolic plan of a batched
    /// slot at the larger of the largest bucket and [`timed_rows`](Self::timed_rows), a
    /// single-row slot's plan at one row. A model over it is refused at load with
    /// `E_MODEL_MEMORY`. Default [`DEFAULT_MEMORY_CAP`] (64 MiB).
    pub memory_cap: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            timed_rows: 10_000,
            buckets: DEFAULT_BUCKETS.to_vec(),
            memory_cap: DEFAULT_MEMORY_CAP,
        }
    }
}

/// What a load found and measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Input tensor fed.
    pub input: String,
    /// Output tensor read.
    pub output: String,
    /// Column read from an `[N, K]` output.
    pub output_column: Option<usize>,
    /// Size of the model file.
    pub model_bytes: u64,
    /// blake3 of the model file, hex.
    pub digest: String,
    /// The tool that wrote the model (`producer_name producer_version`).
    pub producer: String,
    /// Time to parse, check and optimise (all plans), in microseconds.
    pub prepare_us: u64,
    /// Rows of the timed warm-up batch.
    pub timed_rows: usize,
    /// Latency of the timed batch (best of up to 3 runs), in microseconds.
    pub timed_us: u64,
    /// The budget it had to meet, in microseconds.
    pub budget_us: u64,
    /// Batch sizes with a specialised plan.
    pub buckets: Vec<usize>,
    /// Peak bytes of the tensors alive at once, the largest over the plans, each for the
    /// largest batch it runs (see [`LoadOptions::memory_cap`]).
    pub memory_bytes: u64,
    /// Rows the symbolic plan was estimated for (one for a single-row slot).
    pub memory_rows: usize,
    /// What was adapted on the way (ZipMap stripped, nodes pruned, buckets dropped).
    pub notes: Vec<String>,
}

/// An ONNX model loaded by tract, checked against its slot's contract and warmed up.
///
/// Runs on the host's watchdog workers ([`Isolation::Watchdog`]): tract cannot be
/// interrupted mid-run, so the host stops waiting at the deadline and answers with the
/// static policy while the late run finishes on its worker. The warm-up refuses a model
/// whose timed batch does not fit the deadline, which keeps such late runs rare.
pub struct OnnxPolicy {
    info: PolicyInfo,
    manifest: Manifest,
    contract: &'static SlotContract,
    plans: Plans,
    reader: OutputReader,
    report: LoadReport,
}

impl std::fmt::Debug for OnnxPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxPolicy")
            .field("info", &self.info)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// tract's ONNX operator table plus this backend's own operators.
static ONNX: LazyLock<tract_onnx::Onnx> = LazyLock::new(|| {
    let mut onnx = tract_onnx::onnx();
    tree::register(&mut onnx.op_register);
    onnx
});

/// Whether the backend runs ONNX operator `op_type` (tract's table plus this backend's own).
pub fn supports_op(op_type: &str) -> bool {
    ONNX.op_register.0.contains_key(op_type)
}

/// The operators this backend adds to tract.
pub fn own_ops() -> &'static [&'static str] {
    &tree::OPS
}

fn one_line(e: &TractError) -> String {
    let s = format!("{e:#}");
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

impl OnnxPolicy {
    /// Loads the model folder `folder` (`model.toml` + the model file) for the slot its
    /// manifest declares.
    pub fn load_folder(folder: &Path, options: &LoadOptions) -> OnnxResult<Self> {
        let manifest = Manifest::read(folder)?;
        let bytes = read_model(folder, &manifest)?;
        Self::from_bytes(manifest, &bytes, options)
    }

    /// Loads the model folder `folder` for `slot`; refused with `E_SLOT_MISMATCH` when its
    /// manifest declares another slot.
    pub fn load_folder_for(
        slot: SlotKind,
        folder: &Path,
        options: &LoadOptions,
    ) -> OnnxResult<Self> {
        let manifest = Manifest::read(folder)?;
        if manifest.slot != slot {
            return Err(OnnxError::SlotMismatch {
                declared: manifest.slot,
                expected: slot,
            });
        }
        let bytes = read_model(folder, &manifest)?;
        Self::from_bytes(manifest, &bytes, options)
    }

    /// Loads a model from its bytes and manifest: checks, optimises and warms it up.
    pub fn from_bytes(manifest: Manifest, bytes: &[u8], options: &LoadOptions) -> OnnxResult<Self> {
        manifest.check("<manifest>")?;
        let size = bytes.len() as u64;
        if size > MAX_MODEL_BYTES {
            return Err(OnnxError::TooLarge {
                size,
                limit: MAX_MODEL_BYTES,
            });
        }
        match catch_unwind(AssertUnwindSafe(|| Self::load(manifest, bytes, options))) {
            Ok(r) => r,
            Err(p) => Err(OnnxError::Panic(panic_text(p))),
        }
    }

    fn load(manifest: Manifest, bytes: &[u8], options: &LoadOptions) -> OnnxResult<Self> {
        let start = Instant::now();
        let contract = manifest.slot.contract();
        let proto = graph::decode(bytes)?;
        let producer = format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string();
        let prepared = graph::prepare(proto, &manifest, contract, &supports_op)?;
        let mut notes = prepared.notes;
        let mut model = ONNX
            .model_for_proto_model(&prepared.proto)
            .map_err(|e| OnnxError::Parse(one_line(&e)))?;

        let f = contract.feature_count();
        let batch = model.sym("N");
        let rows_dim: TDim = match contract.rows {
            Rows::Batch => batch.clone().into(),
            Rows::Single => 1.into(),
        };
        let input_shape = tvec![rows_dim.clone(), f.to_dim()];
        model
            .set_input_fact(0, f32::fact(input_shape.clone()).into())
            .map_err(|e| OnnxError::Tract(one_line(&e)))?;
        let typed = model.into_typed().map_err(|e| {
            let msg = one_line(&e);
            if msg.contains("Unimplemented") {
                OnnxError::UnsupportedOp {
                    ops: vec![msg],
                    hint: "tract cannot run this operator".into(),
                }
            } else {
                OnnxError::Shape(format!(
                    "shape inference fails with input `{}` = f32[{}, {f}]: {msg}",
                    prepared.input,
                    if contract.rows == Rows::Batch {
                        "N"
                    } else {
                        "1"
                    }
                ))
            }
        })?;
        let reader = output_reader(&typed, contract, &manifest, &prepared.output, &batch)?;
        let decluttered = typed
            .into_decluttered()
            .map_err(|e| OnnxError::Tract(one_line(&e)))?;
        let generic = optimise(decluttered.clone())?;
        let memory_rows = match contract.rows {
            Rows::Batch => options
                .buckets
                .iter()
                .copied()
                .chain([options.timed_rows])
                .max()
                .unwrap_or(1)
                .max(1),
            Rows::Single => 1,
        };
        let mut memory_bytes = check_memory(&generic, Some(&batch), memory_rows, options)?;
        let mut plans = Plans::new(f, generic);
        if contract.rows == Rows::Batch && !options.buckets.is_empty() {
            if (bytes.len() as u64) <= BUCKET_MAX_MODEL_BYTES {
                let mut buckets = Vec::new();
                for &size in &options.buckets {
                    let subs = std::collections::HashMap::from([(batch.clone(), size.to_dim())]);
                    let fixed = decluttered
                        .set_symbols(&subs)
                        .map_err(|e| OnnxError::Tract(one_line(&e)))?;
                    let plan = optimise(fixed)?;
                    memory_bytes = memory_bytes.max(check_memory(&plan, None, size, options)?);
                    buckets.push((size, plan));
                }
                plans.set_buckets(buckets);
            } else {
                notes.push(format!(
                    "no specialised plans: the model is over {BUCKET_MAX_MODEL_BYTES} bytes"
                ));
            }
        }
        let prepare_us = micros(start.elapsed());

        let mut policy = OnnxPolicy {
            info: PolicyInfo {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
                backend: BackendKind::Onnx,
                slot: manifest.slot,
                schema_version: manifest.schema,
            },
            contract,
            plans,
            reader,
            report: LoadReport {
                input: prepared.input,
                output: prepared.output,
                output_column: manifest.output_column,
                model_bytes: bytes.len() as u64,
                digest: blake3::hash(bytes).to_hex().to_string(),
                producer,
                prepare_us,
                timed_rows: 0,
                timed_us: 0,
                budget_us: 0,
                buckets: Vec::new(),
                memory_bytes,
                memory_rows,
                notes,
            },
            manifest,
        };
        policy.warm_up(options)?;
        policy.report.buckets = policy.plans.bucket_sizes();
        Ok(policy)
    }

    /// Golden inputs must give valid answers; padded buckets must agree with the symbolic
    /// plan (else they are dropped); the timed batch must fit the deadline.
    fn warm_up(&mut self, options: &LoadOptions) -> OnnxResult<()> {
        let slot = self.info.slot;
        let c = self.contract;
        let mut rng = SmallRng::seed_from_u64(0x0A11_0C0D);
        let golden: &[usize] = match c.rows {
            Rows::Batch => &GOLDEN_ROWS,
            Rows::Single => &[1],
        };
        let far = Instant::now() + Duration::from_secs(3600);
        for &rows in golden {
            let input = slot.sample_input(rows, &mut rng);
            let out = self
                .evaluate(&input, far)
                .map_err(|e| OnnxError::Warmup(format!("{e} on a golden input of {rows} rows")))?;
            match c.validate_output(input.rows(), &out) {
                Ok(()) => {}
                Err(OutputFault::NonFinite { index }) => {
                    return Err(OnnxError::WarmupNan { rows, index });
                }
                Err(fault) => {
                    return Err(OnnxError::Warmup(format!(
                        "{fault} on a golden input of {rows} rows"
                    )));
                }
            }
            if c.rows == Rows::Batch && self.plans.bucket_for(rows).is_some() {
                let generic = self
                    .plans
                    .run_generic(&input)
                    .and_then(|t| self.reader.read(&t, rows, true))
                    .map_err(|e| OnnxError::Warmup(one_line(&e)))?;
                let agree = generic
                    .iter()
                    .zip(&out)
                    .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs())));
                if !agree {
                    self.plans.set_buckets(Vec::new());
                    self.report.notes.push(format!(
                        "no specialised plans: padded batches change the answers of real rows \
                         ({rows} rows), so rows are not independent in this model"
                    ));
                }
            }
        }

        let deadline = options.deadline.unwrap_or(c.default_deadline);
        let budget = deadline - deadline / 10;
        let rows = match c.rows {
            Rows::Batch => options.timed_rows.max(1),
            Rows::Single => 1,
        };
        let input = slot.sample_input(rows, &mut rng);
        // The fastest of up to 3 runs: a busy machine only adds time, so one run within
        // the budget shows the model can meet it; 3 runs over it (or one far over) refuse it.
        let mut took = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            self.evaluate(&input, far)
                .map_err(|e| OnnxError::Warmup(format!("{e} on the timed batch of {rows} rows")))?;
            took = took.min(t.elapsed());
            if took <= budget || took > budget * 20 {
                break;
            }
        }
        self.report.timed_rows = rows;
        self.report.timed_us = micros(took);
        self.report.budget_us = micros(budget);
        if took > budget {
            return Err(OnnxError::TooSlow {
                slot,
                rows,
                took,
                budget,
            });
        }
        Ok(())
    }

    /// The manifest it was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the load found and measured.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }
}

impl Policy for OnnxPolicy {
    fn info(&self) -> &PolicyInfo {
        &self.info
    }

    fn isolation(&self) -> Isolation {
        Isolation::Watchdog
    }

    fn evaluate(&self, input: &FeatureMatrix, _deadline: Instant) -> Result<Vec<f32>, PolicyError> {
        let c = self.contract;
        if input.cols() != c.feature_count() || input.rows() == 0 {
            return Err(PolicyError::Failed(format!(
                "expected [N, {}] features, got [{}, {}]",
                c.feature_count(),
                input.rows(),
                input.cols()
            )));
        }
        if c.rows == Rows::Single && input.rows() != 1 {
            return Err(PolicyError::Failed(format!(
                "expected one row, got {}",
                input.rows()
            )));
        }
        let per_row = c.output.len == OutputLen::PerRow;
        self.plans
            .run(input)
            .and_then(|out| self.reader.read(&out, input.rows(), per_row))
            .map_err(|e| PolicyError::Failed(one_line(&e)))
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// The peak bytes of `plan` for a batch of `rows` rows, refused when over the cap.
fn check_memory(
    plan: &Plan,
    batch: Option<&Symbol>,
    rows: usize,
    options: &LoadOptions,
) -> OnnxResult<u64> {
    let estimate = plan::peak_bytes(plan, batch, rows)
        .map_err(|reason| OnnxError::MemoryUnbounded { rows, reason })?;
    if estimate > options.memory_cap {
        return Err(OnnxError::MemoryCap {
            estimate,
            rows,
            cap: options.memory_cap,
        });
    }
    Ok(estimate)
}

fn optimise(model: TypedModel) -> OnnxResult<Plan> {
    model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| OnnxError::Tract(one_line(&e)))
}

/// Reads the model file named by `manifest` in `folder`, refusing it unread when too large.
pub(crate) fn read_model(folder: &Path, manifest: &Manifest) -> OnnxResult<Vec<u8>> {
    let path = folder.join(manifest.model_file());
    let io = |e: std::io::Error| OnnxError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(&path).map_err(io)?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge {
            size: meta.len(),
            limit: MAX_MODEL_BYTES,
        });
    }
    let bytes = std::fs::read(&path).map_err(io)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_MODEL_BYTES,
        });
    }
    Ok(bytes)
}

/// How to read the slot's values from the typed model's only output.
fn output_reader(
    typed: &TypedModel,
    c: &SlotContract,
    manifest: &Manifest,
    name: &str,
    batch: &Symbol,
) -> OnnxResult<OutputReader> {
    let outlet = typed
        .output_outlets()
        .ok()
        .and_then(|o| o.first().copied())
        .ok_or_else(|| OnnxError::Shape("the model has no output".into()))?;
    let fact = typed
        .outlet_fact(outlet)
        .map_err(|e| OnnxError::Tract(one_line(&e)))?;
    if fact.datum_type != f32::datum_type() {
        return Err(OnnxError::Dtype(format!(
            "output `{name}` is {:?}, the slot reads f32",
            fact.datum_type
        )));
    }
    let dims: Vec<TDim> = fact.shape.iter().cloned().collect();
    let shown = format!(
        "[{}]",
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let wanted = match c.output.len {
        OutputLen::PerRow => {
            "one value per row: [N], [N, 1], or [N, K] with output_column".to_string()
        }
        OutputLen::Fixed(n) => format!(
            "{n} value(s): [{n}], [1, {n}] or [{n}, 1]{}",
            if n == 1 {
                ", or [1, K] with output_column"
            } else {
                ""
            }
        ),
    };
    let bad = || {
        OnnxError::Shape(format!(
            "output `{name}` has shape {shown}; the `{}` slot reads {wanted}",
            c.slot
        ))
    };
    let column = |width: usize| -> OnnxResult<OutputReader> {
        match manifest.output_column {
            Some(col) if col < width => Ok(OutputReader::Column { width, col }),
            Some(col) => Err(OnnxError::Shape(format!(
                "output_column = {col}, but output `{name}` {shown} has {width} column(s)"
            ))),
            None => Err(OnnxError::Shape(format!(
                "output `{name}` has shape {shown}: set output_column in model.toml (a \
                 classifier's probabilities: output_column = 1)"
            ))),
        }
    };
    let concrete = |d: &TDim| d.to_i64().ok().and_then(|v| usize::try_from(v).ok());
    match c.output.len {
        OutputLen::PerRow => {
            let n: TDim = batch.clone().into();
            if dims.first() != Some(&n) {
                return Err(bad());
            }
            match dims.len() {
                1 => Ok(OutputReader::Flat),
                2 => match concrete(&dims[1]) {
                    Some(1) if manifest.output_column.unwrap_or(0) == 0 => Ok(OutputReader::Flat),
                    Some(k) if k >= 1 => column(k),
                    _ => Err(bad()),
                },
                _ => Err(bad()),
            }
        }
        OutputLen::Fixed(len) => {
            // A single-row slot runs one row: a dimension in the batch symbol (skl2onnx's
            // `N*H` for a multi-output regressor) is read with N = 1.
            let mut one = tract_onnx::prelude::SymbolValues::default();
            one.set(batch, 1);
            let at_one = |d: &TDim| {
                concrete(d).or_else(|| {
                    d.eval_to_i64(&one)
                        .ok()
                        .and_then(|v| usize::try_from(v).ok())
                })
            };
            let sizes: Option<Vec<usize>> = dims.iter().map(at_one).collect();
            let Some(sizes) = sizes else {
                return Err(bad());
            };
            match sizes.as_slice() {
                [k] | [1, k] if *k == len && manifest.output_column.is_none() => {
                    Ok(OutputReader::Flat)
                }
                [1, k] if len == 1 && manifest.output_column.is_some() => column(*k),
                [] if len == 1 => Ok(OutputReader::Flat),
                // Any other layout of exactly `len` values in row-major order (`[len, 1]`,
                // `[1, len, 1]`): the values are the slot's, in order.
                s if manifest.output_column.is_none()
                    && s.iter().product::<usize>() == len
                    && s.iter().filter(|&&d| d != 1).count() <= 1 =>
                {
                    Ok(OutputReader::Flat)
                }
                _ => Err(bad()),
            }
        }
    }
}
