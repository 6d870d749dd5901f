//! Decision telemetry end to end: a real node records its decisions and blocks in RocksDB,
//! is stopped, and `telemetry::export` reads them back as CSV, JSON lines and Parquet (read
//! back with parquet's reader: the CSV's records and values); sampling at 0
//! records nothing; the retention bound holds, across a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use aurigraph_cli::export::{ExportOptions, ExportSummary, Format, export};
use aurigraph_decision::SlotKind;
use aurigraph_ledger::tx::{Operation, Transaction};
use aurigraph_node::config::{FeatureRecording, dev_key};
use aurigraph_node::{Node, NodeConfig};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Row, RowAccessor};
use serde_json::Value;

fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().expect("address"),
        ..NodeConfig::default()
    };
    c.admin.token = Some("telemetry-test-admin-token-0123".into());
    c.policies.models_dir = dir.join("models");
    c.policies.plugins_dir = dir.join("plugins");
    c.block.interval_ms = 10;
    c.storage.sync = false;
    c
}

fn transfer(from: u32, nonce: u64) -> Vec<u8> {
    let (key, sender) = dev_key(from);
    Transaction {
        chain_id: 1,
        sender,
        nonce,
        fee: 10,
        op: Operation::Transfer {
            to: dev_key(from + 100).1,
            amount: 5,
        },
    }
    .sign(&key)
    .encoded()
    .to_vec()
}

/// Submits `txs` and waits until they are all committed (executed and in RocksDB).
fn submit_and_wait(node: &Node, txs: &[Vec<u8>]) {
    let core = node.core();
    let items = core.submit(txs).expect("submission");
    assert!(items.iter().all(|i| i.accepted), "all accepted");
    let t0 = Instant::now();
    // Empty mempool: executed; head at the pipeline's height: committed to RocksDB too.
    while !core.pipeline.mempool().is_empty() || core.head().height < core.pipeline.height() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not committed in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run_export(dir: &Path, format: Format, slot: Option<SlotKind>) -> (String, ExportSummary) {
    let mut out = Vec::new();
    let sum = export(
        &ExportOptions {
            data_dir: dir.join("data"),
            format,
            slot,
            from: None,
            to: None,
        },
        &mut out,
    )
    .expect("export");
    (String::from_utf8(out).expect("utf-8"), sum)
}

/// A Parquet export read back with parquet's own reader.
struct ParquetExport {
    columns: Vec<String>,
    num_rows: i64,
    compression: Compression,
    rows: Vec<Row>,
}

fn parquet_rows(dir: &Path, slot: Option<SlotKind>) -> (ParquetExport, ExportSummary) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let sum = export(
        &ExportOptions {
            data_dir: dir.join("data"),
            format: Format::Parquet,
            slot,
            from: None,
            to: None,
        },
        &mut std::fs::File::create(file.path()).expect("create"),
    )
    .expect("parquet export");
    let reader = SerializedFileReader::new(std::fs::File::open(file.path()).expect("open"))
        .expect("a parquet file");
    let meta = reader.metadata();
    let columns = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let export = ParquetExport {
        columns,
        num_rows: meta.file_metadata().num_rows(),
        compression: meta.row_group(0).column(0).compression(),
        rows: reader
            .get_row_iter(None)
            .expect("rows")
            .map(|r| r.expect("a row"))
            .collect(),
    };
    (export, sum)
}

fn jsonl(dir: &Path) -> Vec<Value> {
    run_export(dir, Format::Jsonl, None)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_records_decisions_and_blocks_and_the_export_reads_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = config(dir.path());
    c.telemetry.features = FeatureRecording::Full;
    let node = Node::start(c).await.expect("the node starts");
    let txs: Vec<Vec<u8>> = (0..4u32)
        .flat_map(|a| (0..10u64).map(move |n| transfer(a, n)))
        .collect();
    tokio::task::block_in_place(|| {
        submit_and_wait(&node, &txs);
        // Long enough for a `demand` round (one a second).
        std::thread::sleep(Duration::from_millis(1_200));
    });
    node.shutdown().await;

    let records = jsonl(dir.path());
    let slots: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|r| r["kind"] == "decision")
        .filter_map(|r| r["slot"].as_str())
        .collect();
    for slot in [
        "anomaly",
        "batch_size",
        "ordering",
        "leader_health",
        "demand",
    ] {
        assert!(slots.contains(slot), "no {slot} decision in {slots:?}");
    }
    let blocks: Vec<&Value> = records.iter().filter(|r| r["kind"] == "block").collect();
    assert!(!blocks.is_empty());
    let txs_in_blocks: u64 = blocks.iter().map(|b| b["txs"].as_u64().unwrap()).sum();
    assert_eq!(txs_in_blocks, 40, "every transaction is in a block record");
    let accepted: u64 = blocks.iter().map(|b| b["accepted"].as_u64().unwrap()).sum();
    assert_eq!(accepted, 40);
    for b in &blocks {
        let l = &b["submit_to_commit_ms"];
        assert!(l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap());
        assert!(b["batch_size"]["outcome"] == "decided", "{b}");
    }
    // A decision carries what answered and, with `full`, its input rows and values.
    let ordering = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["slot"] == "ordering")
        .unwrap();
    assert_eq!(ordering["backend"], "static");
    assert_eq!(ordering["arm"], "baseline");
    let rows = ordering["rows"].as_u64().unwrap() as usize;
    assert_eq!(ordering["features"].as_array().unwrap().len(), rows);
    assert_eq!(ordering["values"].as_array().unwrap().len(), rows);
    assert_eq!(ordering["features_digest"].as_str().unwrap().len(), 64);

    // CSV, all records: a header and one line per record.
    let (csv, sum_all) = run_export(dir.path(), Format::Csv, None);
    let mut lines = csv.lines();
    let csv_header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    assert!(csv_header.join(",").starts_with("kind,height,seq,slot,key"));
    assert_eq!(lines.count() as u64, sum_all.lines);
    assert_eq!(sum_all.lines as usize, records.len());

    // CSV of one slot: its feature names as columns, one line per decision.
    let (csv, sum_slot) = run_export(dir.path(), Format::Csv, Some(SlotKind::BatchSize));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(header.contains(&"queue_depth") && header.contains(&"value"));
    let qd = header.iter().position(|h| *h == "queue_depth").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    // Idle rounds ask too (queue depth 0); the blocks' decisions saw the queue.
    assert!(rows.iter().any(|r| r[qd].parse::<f32>().unwrap() >= 1.0));
    assert_eq!(sum_slot.blocks, 0);
    assert!(sum_slot.decisions >= blocks.len() as u64);

    // Parquet, all records: the CSV's records and columns, read back by parquet's reader.
    let csv_lines = sum_all.lines;
    let (pq, sum) = parquet_rows(dir.path(), None);
    assert_eq!(sum, sum_all, "the same records as the CSV");
    assert_eq!(pq.rows.len() as u64, csv_lines);
    assert_eq!(pq.num_rows, csv_lines as i64);
    assert_eq!(pq.columns, csv_header);
    assert_eq!(pq.compression, Compression::SNAPPY);
    let col = |name: &str| pq.columns.iter().position(|c| c == name).unwrap();
    for (row, rec) in pq.rows.iter().zip(&records) {
        assert_eq!(
            row.get_string(col("kind")).unwrap(),
            rec["kind"].as_str().unwrap()
        );
        assert_eq!(
            row.get_long(col("height")).unwrap() as u64,
            rec["height"].as_u64().unwrap()
        );
        assert_eq!(
            row.get_long(col("at_ms")).unwrap() as u64,
            rec["at_ms"].as_u64().unwrap()
        );
        if rec["kind"] == "decision" {
            assert_eq!(
                row.get_string(col("slot")).unwrap(),
                rec["slot"].as_str().unwrap()
            );
            assert_eq!(
                row.get_string(col("backend")).unwrap(),
                rec["backend"].as_str().unwrap()
            );
            assert_eq!(
                row.get_long(col("key")).unwrap() as u64,
                rec["key"].as_u64().unwrap()
            );
            assert_eq!(
                row.get_long(col("seq")).unwrap() as u64,
                rec["seq"].as_u64().unwrap()
            );
            let latency = rec["latency_us"].as_f64().unwrap();
            let pq_latency = row.get_double(col("latency_us")).unwrap();
            assert!((pq_latency - latency).abs() <= 1e-9 * latency.max(1.0));
            assert!(row.get_long(col("txs")).is_err(), "null for a decision");
            // The input rows, as the CSV's JSON array (null when not recorded); the f32s
            // compare as f32 (JSON lines print them widened to f64).
            match row.get_string(col("features")) {
                Ok(f) => {
                    let pq_rows: Vec<Vec<f32>> = serde_json::from_str(f).unwrap();
                    let rows: Vec<Vec<f32>> =
                        serde_json::from_value(rec["features"].clone()).unwrap();
                    assert_eq!(pq_rows, rows);
                }
                Err(_) => assert!(rec["features"].is_null()),
            }
        } else {
            assert_eq!(
                row.get_long(col("txs")).unwrap() as u64,
                rec["txs"].as_u64().unwrap()
            );
            assert_eq!(
                row.get_long(col("accepted")).unwrap() as u64,
                rec["accepted"].as_u64().unwrap()
            );
            assert!(row.get_string(col("slot")).is_err(), "null for a block");
        }
    }

    // Parquet of one slot: the per-slot CSV's columns and rows, features as FLOAT.
    let (pq, sum) = parquet_rows(dir.path(), Some(SlotKind::BatchSize));
    assert_eq!(sum, sum_slot);
    assert_eq!(pq.columns, header);
    assert_eq!(pq.rows.len(), rows.len(), "one row per CSV line");
    let value = header.iter().position(|h| *h == "value").unwrap();
    for (p, c) in pq.rows.iter().zip(&rows) {
        assert_eq!(p.get_long(0).unwrap().to_string(), c[0], "height");
        assert_eq!(p.get_float(qd).unwrap(), c[qd].parse::<f32>().unwrap());
        assert_eq!(
            p.get_float(value).unwrap(),
            c[value].parse::<f32>().unwrap()
        );
    }

    // An unknown format does not parse; a height range filters.
    assert!("xlsx".parse::<Format>().is_err());
    let mut out = Vec::new();
    export(
        &ExportOptions {
            data_dir: dir.path().join("data"),
            format: Format::Jsonl,
            slot: None,
            from: Some(1),
            to: Some(1),
        },
        &mut out,
    )
    .unwrap();
    for l in String::from_utf8(out).unwrap().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["height"], 1, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_at_zero_records_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = config(dir.path());
    c.telemetry.sample_rate = 0.0;
    let node = Node::start(c).await.expect("the node starts");
    let txs: Vec<Vec<u8>> = (0..10u64).map(|n| transfer(0, n)).collect();
    tokio::task::block_in_place(|| submit_and_wait(&node, &txs));
    assert!(node.core().head().height >= 1);
    node.shutdown().await;
    let (_, sum) = run_export(dir.path(), Format::Jsonl, None);
    assert_eq!(sum, ExportSummary::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_bound_holds_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = config(dir.path());
    c.telemetry.max_records = 7;
    for round in 0..2u64 {
        let node = Node::start(c.clone()).await.expect("the node starts");
        tokio::task::block_in_place(|| {
            // One block per transaction: many heights, several decisions each.
            for n in 0..6u64 {
                submit_and_wait(&node, &[transfer(1, round * 6 + n)]);
            }
        });
        let head = node.core().head().height;
        node.shutdown().await;
        let records = jsonl(dir.path());
        let decisions: Vec<&Value> = records.iter().filter(|r| r["kind"] == "decision").collect();
        let blocks: Vec<&Value> = records.iter().filter(|r| r["kind"] == "block").collect();
        assert_eq!(
            decisions.len(),
            7,
            "round {round}: the newest 7 decisions stay"
        );
        assert!(blocks.len() <= 7 && !blocks.is_empty());
        assert_eq!(blocks.last().unwrap()["height"], head);
        // The newest records are kept: (height, seq) strictly increasing, ending at the head.
        let keys: Vec<(u64, u64)> = decisions
            .iter()
            .map(|d| (d["height"].as_u64().unwrap(), d["seq"].as_u64().unwrap()))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys.last().unwrap().0 >= head);
    }

    // An age bound: only the last 2 heights' records.
    let mut c2 = config(dir.path());
    c2.telemetry.max_age_blocks = 2;
    let node = Node::start(c2).await.expect("the node restarts");
    tokio::task::block_in_place(|| {
        for n in 0..3u64 {
            submit_and_wait(&node, &[transfer(1, 12 + n)]);
        }
    });
    let head = node.core().head().height;
    node.shutdown().await;
    for r in jsonl(dir.path()) {
        let h = r["height"].as_u64().unwrap();
        assert!(
            h + 2 > head,
            "record at {h} older than 2 blocks (head {head}): {r}"
        );
    }
}
