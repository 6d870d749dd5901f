//! `scaling`: the scaling curve with cores, in one run, as a plain binary (no criterion).
//!
//! For each thread count (default 1, 2, 4, 8, 16, capped at the machine's cores; `--threads`
//! sets the list and is not capped, so a 16-core machine can run `--threads 1,2,4,8,16`):
//!
//! - **executors**: the sequential one, the conflict-aware scheduled one and Block-STM (with
//!   its default abort-rate guard; with `--stm-variants` also `stm-no-precheck`, the guard
//!   without its chain pre-check, and `stm-raw`, guard and pre-check off: the paper's
//!   algorithm run to the end) on
//!   blocks of 10,000 and 50,000 transfers (`--sizes`) between the senders and 100,000 other
//!   accounts, at low contention (1 % of transfers pay one of 4 hot accounts) and with every
//!   transaction conflicting (every transfer pays the same account); each repetition runs
//!   all of them round-robin on the same block, so background load falls on all alike; the
//!   median per block and its ratio to the sequential median of the same run; the note
//!   gives Block-STM's re-executions, conflicts and `tail` (transactions it finished
//!   sequentially after its guard stopped speculation, or the whole block when the
//!   pre-check found one chain);
//! - **signatures**: [`SignatureVerifier::verify_batch`] of 8,192 transfers (chunks of
//!   1,024) on a pool of `t` threads: the bound that batched verification puts on
//!   admission, in signatures per second;
//! - **pipeline**: 100,000 transfers of the `uniform` workload through [`Pipeline`] in its
//!   concurrent shape (one thread submits, another produces blocks, as the node runs; see
//!   `benches/benches/pipeline.rs`), with admission's verification pool and the executor
//!   (scheduled) on `t` threads, in committed transactions per second.
//!
//! Medians of `--reps` repetitions (default 11; the pipeline `--pipeline-reps`, default 3).
//! Output: a plain-text table, and with `--json FILE` the same numbers as JSON.
//!
//! Build once, run anywhere: the binary needs nothing from the workspace at run time
//! (workloads are generated, the policies are the built-in static ones):
//!
//! ```sh
//! CARGO_TARGET_DIR=target cargo build --profile bench -p aurigraph-benches --bin scaling
//! scp target/release/scaling host:/tmp/ && ssh host /tmp/scaling --threads 1,2,4,8,16 --json /tmp/scaling.json
//! ```
//!
//! (The target machine needs the same architecture and a glibc at least as new as the build
//! machine's.) `--only executors,signatures,pipeline` runs a subset.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use aurigraph_benches::CHAIN;
use aurigraph_decision::host::HostConfig;
use aurigraph_decision::metrics::EngineMetrics;
use aurigraph_ledger::admission::{AdmissionConfig, SignatureVerifier};
use aurigraph_ledger::executor::{
    AbortGuard, BlockExecutor, BlockStmExecutor, ExecutorConfig, ExecutorKind, ScheduledExecutor,
    SequentialExecutor,
};
use aurigraph_ledger::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use aurigraph_ledger::state::ShardedState;
use aurigraph_ledger::tx::SignedTransaction;
use aurigraph_ledger::workload::{Workload, WorkloadConfig};
const SIGNATURES: usize = 8_192;

struct Args {
    threads: Vec<usize>,
    sizes: Vec<usize>,
    reps: usize,
    pipeline_reps: usize,
    pipeline_txs: usize,
    json: Option<String>,
    only: Vec<String>,
    stm_variants: bool,
    submitters: Vec<usize>,
}

const USAGE: &str = "usage: scaling [--threads 1,2,4,8,16] [--sizes 10000,50000] [--reps N] \
[--pipeline-reps N] [--pipeline-txs N] [--only executors,signatures,pipeline] [--json FILE] \
[--stm-variants] [--submitters 1,4]";

fn list(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|x| x.trim().replace('_', "").parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad list `{v}`: {e}"))
}

fn parse_args() -> Result<Args, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut a = Args {
        threads: [1, 2, 4, 8, 16]
            .into_iter()
            .filter(|&t| t <= cores)
            .collect(),
        sizes: vec![10_000, 50_000],
        reps: 11,
        pipeline_reps: 3,
        pipeline_txs: 100_000,
        json: None,
        only: vec!["executors".into(), "signatures".into(), "pipeline".into()],
        stm_variants: false,
        submitters: vec![1, 4],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        if flag == "--stm-variants" {
            a.stm_variants = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let one = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--threads" => a.threads = list(&value)?,
            "--sizes" => a.sizes = list(&value)?,
            "--reps" => a.reps = one(&value)?.max(1),
            "--pipeline-reps" => a.pipeline_reps = one(&value)?.max(1),
            "--pipeline-txs" => a.pipeline_txs = one(&value)?.max(1),
            "--submitters" => a.submitters = list(&value)?,
            "--json" => a.json = Some(value),
            "--only" => a.only = value.split(',').map(|s| s.trim().to_owned()).collect(),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.submitters.is_empty() || a.submitters.contains(&0) {
        return Err("--submitters: a list of counts of at least 1".into());
    }
    if a.threads.is_empty() || a.threads.contains(&0) {
        return Err("--threads: a list of counts of at least 1".into());
    }
    Ok(a)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One row of the results.
struct Row {
    section: &'static str,
    workload: String,
    what: String,
    threads: usize,
    /// Median milliseconds (executors: per block; signatures: per batch; pipeline: per run).
    median_ms: f64,
    /// Items per second at the median.
    per_s: f64,
    /// Against the reference of the same run: sequential (executors) or 1 thread.
    ratio: Option<f64>,
    note: String,
}

/// Blocks of `n` transfers from `n` distinct senders: (state, low-contention block,
/// every-transaction-conflicting block).
fn executor_setup(
    n: usize,
) -> (
    ShardedState,
    Vec<Arc<SignedTransaction>>,
    Vec<Arc<SignedTransaction>>,
) {
    let (state, mut blocks) = aurigraph_benches::transfer_blocks(n, &[(1, 4), (100, 1)]);
    let full = blocks.pop().unwrap_or_default();
    let low = blocks.pop().unwrap_or_default();
    (state, low, full)
}

fn executors(args: &Args, rows: &mut Vec<Row>) {
    let mut execs: Vec<(String, usize, Box<dyn BlockExecutor>)> =
        vec![("sequential".into(), 1, Box::new(SequentialExecutor::new()))];
    for &t in &args.threads {
        execs.push((
            "scheduled".into(),
            t,
            Box::new(ScheduledExecutor::new(t).expect("pool")),
        ));
        execs.push((
            "block-stm".into(),
            t,
            Box::new(BlockStmExecutor::new(t).expect("pool")),
        ));
        if args.stm_variants {
            let no_precheck = AbortGuard {
                chain_precheck: false,
                ..AbortGuard::default()
            };
            for (name, guard) in [
                ("stm-no-precheck", no_precheck),
                ("stm-raw", AbortGuard::off()),
            ] {
                execs.push((
                    name.into(),
                    t,
                    Box::new(BlockStmExecutor::with_guard(t, guard).expect("pool")),
                ));
            }
        }
    }
    for &n in &args.sizes {
        eprintln!("executors: preparing blocks of {n} transfers");
        let (state, low, full) = executor_setup(n);
        for (contention, block) in [("low", &low), ("full", &full)] {
            let expected = SequentialExecutor::new()
                .execute(&state, CHAIN, block)
                .expect("execute");
            let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(args.reps); execs.len()];
            let mut notes = vec![String::new(); execs.len()];
            for (i, (_, _, exec)) in execs.iter().enumerate() {
                // Warm-up, and the check that every executor agrees with the oracle.
                let got = exec.execute(&state, CHAIN, block).expect("execute");
                assert!(got.same_result(&expected), "{} differs", exec.kind());
                notes[i] = if exec.kind() == ExecutorKind::BlockStm {
                    format!(
                        "re-exec {} conflicts {} tail {}",
                        got.stats.re_executions, got.stats.conflicts, got.stats.sequential_tail
                    )
                } else {
                    format!(
                        "re-exec {} conflicts {}",
                        got.stats.re_executions, got.stats.conflicts
                    )
                };
            }
            for _ in 0..args.reps {
                for (i, (_, _, exec)) in execs.iter().enumerate() {
                    let t = Instant::now();
                    black_box(
                        exec.execute(&state, CHAIN, black_box(block))
                            .expect("execute"),
                    );
                    times[i].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
            for (((name, t, exec), med), note) in execs.iter().zip(&medians).zip(notes) {
                rows.push(Row {
                    section: "executor",
                    workload: format!("{contention}/{n}"),
                    what: name.clone(),
                    threads: *t,
                    median_ms: *med,
                    per_s: n as f64 / (med / 1e3),
                    ratio: Some(medians[0] / med),
                    note: if exec.kind() == ExecutorKind::Sequential {
                        String::new()
                    } else {
                        note
                    },
                });
            }
            eprintln!("executors: {contention}/{n} done");
        }
    }
}

fn signatures(args: &Args, rows: &mut Vec<Row>) {
    let w = Workload::new(WorkloadConfig {
        seed: 42,
        accounts: 4_096,
        multi_transfer_share: 0.0,
        ..WorkloadConfig::default()
    })
    .expect("valid workload");
    let txs: Vec<SignedTransaction> = w
        .generate(SIGNATURES)
        .iter()
        .map(|e| SignedTransaction::decode(&e.bytes).expect("a normal transaction"))
        .collect();
    let mut one = None;
    for &t in &args.threads {
        let v = SignatureVerifier::new(Some(t), 1_024).expect("pool");
        assert!(v.verify_batch(&txs).iter().all(|ok| *ok));
        let mut times: Vec<f64> = (0..args.reps)
            .map(|_| {
                let s = Instant::now();
                black_box(v.verify_batch(black_box(&txs)));
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let med = median(&mut times);
        let per_s = SIGNATURES as f64 / (med / 1e3);
        let base = *one.get_or_insert(per_s);
        rows.push(Row {
            section: "signatures",
            workload: format!("batch/{SIGNATURES}"),
            what: "verify_batch".into(),
            threads: t,
            median_ms: med,
            per_s,
            ratio: Some(per_s / base),
            note: String::new(),
        });
        eprintln!("signatures: {t} threads done");
    }
}

/// One run of the concurrent pipeline: (seconds, committed).
fn pipeline_once(
    workload: &Workload,
    bytes: &[&[u8]],
    threads: usize,
    submitters: usize,
) -> (f64, usize) {
    let slots =
        PipelineSlots::new(&HostConfig::default(), &EngineMetrics::default()).expect("slots");
    let config = PipelineConfig {
        admission: AdmissionConfig {
            verify_threads: Some(threads),
            ..AdmissionConfig::default()
        },
        executor: ExecutorConfig {
            kind: ExecutorKind::Scheduled,
            threads,
        },
        ..PipelineConfig::default()
    };
    let p = Pipeline::new(config, slots, workload.genesis()).expect("pipeline");
    let start = Instant::now();
    let committed = aurigraph_benches::submit_while_producing_with(&p, bytes, submitters);
    (start.elapsed().as_secs_f64(), committed)
}

fn pipeline(args: &Args, rows: &mut Vec<Row>) {
    let workload = Workload::preset("uniform", 5).expect("preset");
    let events = workload.generate(args.pipeline_txs);
    let bytes: Vec<&[u8]> = events.iter().map(|e| e.bytes.as_slice()).collect();
    let mut one = None;
    for &t in &args.threads {
        for &n in &args.submitters {
            let mut rates = Vec::new();
            let mut times = Vec::new();
            let mut committed = 0;
            for _ in 0..args.pipeline_reps {
                let (secs, c) = pipeline_once(&workload, &bytes, t, n);
                assert!(c > args.pipeline_txs * 9 / 10, "only {c} committed");
                committed = c;
                rates.push(c as f64 / secs);
                times.push(secs * 1e3);
            }
            let per_s = median(&mut rates);
            let base = *one.get_or_insert(per_s);
            rows.push(Row {
                section: "pipeline",
                workload: format!("uniform/{}", args.pipeline_txs),
                what: format!("submitters {n}"),
                threads: t,
                median_ms: median(&mut times),
                per_s,
                ratio: Some(per_s / base),
                note: format!("{committed} committed"),
            });
        }
        eprintln!("pipeline: {t} threads done");
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = cpu_model();
    let mut rows = Vec::new();
    if args.only.iter().any(|s| s == "executors") {
        executors(&args, &mut rows);
    }
    if args.only.iter().any(|s| s == "signatures") {
        signatures(&args, &mut rows);
    }
    if args.only.iter().any(|s| s == "pipeline") {
        pipeline(&args, &mut rows);
    }
    println!(
        "machine: {cores} cores ({model}); threads {:?}; reps {} (pipeline {})",
        args.threads, args.reps, args.pipeline_reps
    );
    println!(
        "{:<10} {:<12} {:<15} {:>7} {:>11} {:>13} {:>8}  note",
        "section", "workload", "what", "threads", "median ms", "per second", "ratio"
    );
    for r in &rows {
        println!(
            "{:<10} {:<12} {:<15} {:>7} {:>11.3} {:>13.0} {:>8}  {}",
            r.section,
            r.workload,
            r.what,
            r.threads,
            r.median_ms,
            r.per_s,
            r.ratio.map_or(String::new(), |x| format!("{x:.2}x")),
            r.note
        );
    }
    println!(
        "ratio: executors against the sequential median of the same workload; signatures and \
         pipeline against their 1-thread (first) row"
    );
    if let Some(path) = &args.json {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"cores\":{cores},\"cpu\":\"{}\",\"reps\":{},\"pipeline_reps\":{},\"rows\":[",
            json_escape(&model),
            args.reps,
            args.pipeline_reps
        );
        for (i, r) in rows.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"section\":\"{}\",\"workload\":\"{}\",\"what\":\"{}\",\"threads\":{},\
                 \"median_ms\":{:.4},\"per_s\":{:.1},\"ratio\":{},\"note\":\"{}\"}}",
                if i == 0 { "" } else { "," },
                r.section,
                json_escape(&r.workload),
                json_escape(&r.what),
                r.threads,
                r.median_ms,
                r.per_s,
                r.ratio.map_or("null".into(), |x| format!("{x:.4}")),
                json_escape(&r.note)
            );
        }
        out.push_str("]}\n");
        if let Err(e) = std::fs::write(path, out) {
            eprintln!("--json {path}: {e}");
            std::process::exit(1);
        }
    }
}
