//! What "accepted" promises, through the real servers: an acknowledged transaction commits
//! or reaches a final `dropped` state with a code (queryable, announced on the WebSocket and
//! gRPC streams, kept across a restart); a full mempool refuses rather than evicting by
//! default; the `mempool` family holds what the mempool holds; a restart re-admits in
//! arrival order and records what no longer fits; reads answer from the committed view; a
//! failing block is retried with `/readyz` 503 and a fatal one halts the node; subscriptions
//! are capped; a submission told `E_TIMEOUT` did nothing; a transaction behind a nonce gap
//! expires as dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use aurigraph_consensus::{BlockLog, BlockLogError};
use aurigraph_ledger::tx::{Operation, SignedTransaction, Transaction};
use aurigraph_node::config::dev_key;
use aurigraph_node::{Node, NodeConfig, proto};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A transfer of 1 from development account `from` (nonce `nonce`) with `fee`.
fn paying(from: u32, nonce: u64, fee: u64) -> SignedTransaction {
    let (key, sender) = dev_key(from);
    Transaction {
        chain_id: 1,
        sender,
        nonce,
        fee,
        op: Operation::Transfer {
            to: dev_addr(63 - from),
            amount: 1,
        },
    }
    .sign(&key)
}

/// A node that produces no block on its own for a minute (the first round runs at start, on
/// an empty mempool), so what is submitted stays in the mempool.
fn idle_config(dir: &std::path::Path) -> NodeConfig {
    let mut c = config(dir);
    c.block.interval_ms = 60_000;
    c.storage.sync = false;
    c
}

async fn submit_one(c: &reqwest::Client, base: &str, tx: &SignedTransaction) -> (u16, Value) {
    post_json(
        c,
        &format!("{base}/v1/transactions"),
        &json!(hex_of(tx)),
        None,
    )
    .await
}

async fn tx_json(c: &reqwest::Client, base: &str, tx: &SignedTransaction) -> (u16, Value) {
    get_json(c, &format!("{base}/v1/transactions/{}", tx.hash())).await
}

/// The next WebSocket message of `type` `kind`, within 10 s.
async fn next_ws_of<S>(ws: &mut S, kind: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` message on the WebSocket within 10 s"))
            .expect("the WebSocket stays open")
            .expect("a WebSocket message");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).expect("JSON message");
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_or_replaced_transaction_is_dropped_with_its_code_queryable_announced_and_kept()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = idle_config(dir.path());
    cfg.block.mempool_txs = 4;
    cfg.block.mempool_eviction = aurigraph_ledger::mempool::Eviction::ByFee;
    let node = start(cfg.clone()).await;
    let (c, b) = (http(), base(&node));
    let ch = channel(&node).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/subscribe?transactions=true",
        node.addr()
    ))
    .await
    .expect("the WebSocket connects");
    let mut grpc_events = proto::subscriptions_client::SubscriptionsClient::new(ch.clone())
        .subscribe(proto::SubscribeRequest {
            blocks: false,
            transactions: true,
        })
        .await
        .expect("Subscribe answers")
        .into_inner();

    let held: Vec<_> = (0..4).map(|a| paying(a, 0, 10)).collect();
    for t in &held {
        let (s, v) = submit_one(&c, &b, t).await;
        assert_eq!(s, 200, "{v}");
    }
    // Full: a higher fee evicts the worst tail (lowest fee, then newest): account 3's.
    let rich = paying(4, 0, 50);
    let (s, v) = submit_one(&c, &b, &rich).await;
    assert_eq!(s, 200, "{v}");
    let evicted = &held[3];
    let (s, v) = tx_json(&c, &b, evicted).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "dropped", "{v}");
    assert_eq!(v["code"], "E_DROPPED_EVICTED", "{v}");
    assert_eq!(
        v["encoded"],
        hex_of(evicted),
        "the record keeps the transaction"
    );
    let m = next_ws_of(&mut ws, "dropped").await;
    assert_eq!(m["hash"], evicted.hash().to_string(), "{m}");
    assert_eq!(m["code"], "E_DROPPED_EVICTED", "{m}");
    let e = tokio::time::timeout(Duration::from_secs(10), grpc_events.next())
        .await
        .expect("a gRPC event within 10 s")
        .expect("the stream stays open")
        .expect("an event");
    match e.event {
        Some(proto::event::Event::Dropped(d)) => {
            assert_eq!(d.hash, evicted.hash().to_string());
            assert_eq!(d.code, "E_DROPPED_EVICTED");
        }
        other => panic!("expected a dropped event, got {other:?}"),
    }

    // Replace-by-fee: the replaced one is dropped with its own code.
    let replacement = paying(0, 0, 20);
    let (s, v) = submit_one(&c, &b, &replacement).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = tx_json(&c, &b, &held[0]).await;
    assert_eq!(v["state"], "dropped", "{v}");
    assert_eq!(v["code"], "E_DROPPED_REPLACED", "{v}");
    let m = next_ws_of(&mut ws, "dropped").await;
    assert_eq!(m["code"], "E_DROPPED_REPLACED", "{m}");
    let mut q = proto::transactions_client::TransactionsClient::new(ch.clone());
    let info = q
        .get_transaction(proto::GetTransactionRequest {
            hash: held[0].hash().to_string(),
            ..Default::default()
        })
        .await
        .expect("GetTransaction answers")
        .into_inner();
    assert_eq!(
        (info.state.as_str(), info.drop_code.as_str()),
        ("dropped", "E_DROPPED_REPLACED")
    );

    // The `mempool` family holds exactly what the mempool holds.
    let core = node.core().clone();
    assert_eq!(core.pipeline.mempool().len(), 4);
    assert_eq!(core.storage.pending_count().expect("count"), 4);
    let metrics = core.metrics.encode();
    assert!(
        metrics
            .contains(r#"aurigraph_node_dropped_transactions_total{code="E_DROPPED_EVICTED"} 1"#),
        "{metrics}"
    );
    drop(core);
    drop(ws);
    drop(grpc_events);
    node.shutdown().await;

    // Across a restart: the four are admitted again and commit (the first round runs at
    // start), the dropped ones stay dropped.
    let node = start(cfg).await;
    let b = base(&node);
    for t in [&held[1], &held[2], &rich, &replacement] {
        wait_committed(&c, &b, &t.hash().to_string()).await;
    }
    for (t, code) in [
        (evicted, "E_DROPPED_EVICTED"),
        (&held[0], "E_DROPPED_REPLACED"),
    ] {
        let (_, v) = tx_json(&c, &b, t).await;
        assert_eq!(
            (v["state"].as_str(), v["code"].as_str()),
            (Some("dropped"), Some(code))
        );
    }
    assert_eq!(node.core().storage.pending_count().expect("count"), 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_behind_a_nonce_gap_expires_as_dropped_and_a_ready_one_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.block.interval_ms = 20;
    cfg.block.mempool_gapped_ttl_ms = 200;
    cfg.storage.sync = false;
    let node = start(cfg).await;
    let (c, b) = (http(), base(&node));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/subscribe?transactions=true",
        node.addr()
    ))
    .await
    .expect("the WebSocket connects");

    // Account 0 never sent nonce 0: its nonce 1 is accepted, behind the gap.
    let gapped = paying(0, 1, 10);
    let ready = paying(1, 0, 10);
    for t in [&gapped, &ready] {
        let (s, v) = submit_one(&c, &b, t).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["accepted"], 1, "{v}");
    }
    wait_committed(&c, &b, &ready.hash().to_string()).await;
    // From pending to dropped, never missing in between.
    let v = poll_until(Duration::from_secs(5), "the gapped one dropped", || async {
        let (s, v) = tx_json(&c, &b, &gapped).await;
        assert_eq!(s, 200, "an acknowledged transaction answered {s}: {v}");
        (v["state"] != "pending").then_some(v)
    })
    .await;
    assert_eq!(v["state"], "dropped", "{v}");
    assert_eq!(v["code"], "E_DROPPED_EXPIRED", "{v}");
    let m = next_ws_of(&mut ws, "dropped").await;
    assert_eq!(m["hash"], gapped.hash().to_string(), "{m}");
    assert_eq!(m["code"], "E_DROPPED_EXPIRED", "{m}");

    let core = node.core().clone();
    assert!(core.pipeline.mempool().is_empty());
    assert_eq!(core.storage.pending_count().expect("count"), 0);
    let metrics = core.metrics.encode();
    assert!(
        metrics
            .contains(r#"aurigraph_node_dropped_transactions_total{code="E_DROPPED_EXPIRED"} 1"#),
        "{metrics}"
    );
    drop(core);
    drop(ws);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mempool_refuses_new_transactions_rather_than_evicting_acknowledged_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = idle_config(dir.path());
    cfg.block.mempool_txs = 4;
    let node = start(cfg).await;
    let (c, b) = (http(), base(&node));
    let held: Vec<_> = (0..4).map(|a| paying(a, 0, 10)).collect();
    for t in &held {
        assert_eq!(submit_one(&c, &b, t).await.0, 200);
    }
    let (s, v) = submit_one(&c, &b, &paying(4, 0, 1_000)).await;
    assert_eq!((s, code(&v)), (429, "E_MEMPOOL_FULL"), "{v}");
    let mut client = proto::transactions_client::TransactionsClient::new(channel(&node).await);
    let r = client
        .submit(proto::SubmitRequest {
            transactions: vec![paying(5, 0, 1_000).encoded().to_vec()],
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert!(!r.results[0].accepted);
    assert_eq!(r.results[0].code, "E_MEMPOOL_FULL");
    for t in &held {
        let (_, v) = tx_json(&c, &b, t).await;
        assert_eq!(v["state"], "pending", "{v}");
    }
    assert_eq!(node.core().storage.pending_count().expect("count"), 4);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_readmits_in_arrival_order_and_records_what_no_longer_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = idle_config(dir.path());
    let node = start(cfg.clone()).await;
    let (c, b) = (http(), base(&node));
    // Ten senders, one transaction each, same fee: arrival order is the only tie-break.
    let order = [5u32, 2, 9, 0, 7, 3, 8, 1, 6, 4];
    let txs: Vec<_> = order.iter().map(|&a| paying(a, 0, 10)).collect();
    for t in &txs {
        assert_eq!(submit_one(&c, &b, t).await.0, 200);
    }
    node.shutdown().await;

    // Back with room for six and blocks every 20 ms: the first six arrivals are admitted
    // again and commit in arrival order; the last four are recorded as dropped.
    let mut cfg2 = cfg.clone();
    cfg2.block.mempool_txs = 6;
    cfg2.block.interval_ms = 20;
    let node = start(cfg2).await;
    let b = base(&node);
    for t in &txs[..6] {
        wait_committed(&c, &b, &t.hash().to_string()).await;
    }
    let (s, block) = get_json(&c, &format!("{b}/v1/blocks/1")).await;
    assert_eq!(s, 200, "{block}");
    let in_block: Vec<String> = block["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| t["hash"].as_str().expect("hash").to_string())
        .collect();
    let arrival: Vec<String> = txs[..6].iter().map(|t| t.hash().to_string()).collect();
    assert_eq!(in_block, arrival, "the first block keeps arrival order");
    for t in &txs[6..] {
        let (_, v) = tx_json(&c, &b, t).await;
        assert_eq!(v["state"], "dropped", "{v}");
        assert_eq!(v["code"], "E_MEMPOOL_FULL", "{v}");
        assert!(
            v["reason"].as_str().unwrap_or("").contains("restart"),
            "{v}"
        );
    }
    assert_eq!(node.core().storage.pending_count().expect("count"), 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_being_committed_is_never_reported_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.block.interval_ms = 2;
    cfg.storage.sync = true;
    let node = start(cfg).await;
    let b = Arc::new(base(&node));
    let c = http();
    let (tx_hashes, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Submitters: 8 senders, 40 transactions each, one per request.
    let mut submitters = Vec::new();
    for a in 0..8u32 {
        let (c, b, tx_hashes) = (c.clone(), b.clone(), tx_hashes.clone());
        submitters.push(tokio::spawn(async move {
            for n in 0..40 {
                let t = transfer(a, n, 63 - a, 1);
                let (s, v) = submit_one(&c, &b, &t).await;
                assert_eq!(s, 200, "{v}");
                let _ = tx_hashes.send(t.hash().to_string());
            }
        }));
    }
    drop(tx_hashes);
    // Watchers: every acknowledged hash is polled until committed; it must never be 404.
    let mut watchers = Vec::new();
    let mut seen = 0usize;
    while let Some(h) = rx.recv().await {
        seen += 1;
        let (c, b) = (c.clone(), b.clone());
        watchers.push(tokio::spawn(async move {
            let url = format!("{b}/v1/transactions/{h}");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (s, v) = get_json(&c, &url).await;
                assert_eq!(s, 200, "an acknowledged transaction answered {s}: {v}");
                match v["state"].as_str() {
                    Some("committed") => return,
                    Some("pending") => {}
                    other => panic!("state {other:?} for an acknowledged transaction: {v}"),
                }
                assert!(Instant::now() < deadline, "{h} never committed");
                tokio::task::yield_now().await;
            }
        }));
    }
    for s in submitters {
        s.await.expect("a submitter panicked");
    }
    for w in watchers {
        w.await.expect("a watcher saw a transaction missing");
    }
    assert_eq!(seen, 320);
    node.shutdown().await;
}

/// Fault injection (test only): a block log that refuses appends — `transient` of them as
/// unavailable, then all of them when `fatal` — and lets the rest through.
struct FaultyLog {
    transient: AtomicU32,
    fatal: bool,
}

impl BlockLog for FaultyLog {
    fn append(&self, height: u64, _txs: &[SignedTransaction]) -> Result<(), BlockLogError> {
        if self.fatal {
            return Err(BlockLogError::OutOfOrder {
                height,
                last: height + 1,
            });
        }
        let left = self.transient.load(Ordering::Acquire);
        if left > 0 {
            self.transient.store(left - 1, Ordering::Release);
            return Err(BlockLogError::Unavailable {
                height,
                reason: "fault injected".into(),
            });
        }
        Ok(())
    }
}

async fn ready_status(c: &reqwest::Client, b: &str) -> u16 {
    c.get(format!("{b}/readyz"))
        .send()
        .await
        .expect("readyz answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_block_is_retried_with_readyz_503_and_commits_once_it_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.block.retry_backoff_max_ms = 400;
    let log = FaultyLog {
        transient: AtomicU32::new(4),
        fatal: false,
    };
    let node = Node::start_with_log(cfg, Box::new(log))
        .await
        .expect("the node starts");
    let (c, b) = (http(), base(&node));
    let t = transfer(0, 0, 1, 5);
    assert_eq!(submit_one(&c, &b, &t).await.0, 200);
    poll_until(
        Duration::from_secs(5),
        "/readyz 503 while retrying",
        || async { (ready_status(&c, &b).await == 503).then_some(()) },
    )
    .await;
    // Reads still answer from the committed view while the block is retried.
    let (s, v) = tx_json(&c, &b, &t).await;
    assert_eq!(s, 200, "{v}");
    wait_committed(&c, &b, &t.hash().to_string()).await;
    assert_eq!(ready_status(&c, &b).await, 200);
    let m = node.core().metrics.encode();
    assert!(
        m.contains(r#"aurigraph_node_block_failures_total{code="E_LOG_UNAVAILABLE"} 4"#),
        "{m}"
    );
    assert!(m.contains("aurigraph_node_production_stalled 0"), "{m}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_block_failure_halts_the_node_with_its_code() {
    for (log, limit, want) in [
        (
            FaultyLog {
                transient: AtomicU32::new(0),
                fatal: true,
            },
            20,
            "E_LOG_ORDER",
        ),
        (
            FaultyLog {
                transient: AtomicU32::new(u32::MAX),
                fatal: false,
            },
            2,
            "3 tries in a row",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        cfg.block.retry_limit = limit;
        cfg.block.retry_backoff_max_ms = 50;
        let node = Node::start_with_log(cfg, Box::new(log))
            .await
            .expect("the node starts");
        let (c, b) = (http(), base(&node));
        assert_eq!(submit_one(&c, &b, &transfer(0, 0, 1, 5)).await.0, 200);
        let msg = tokio::time::timeout(Duration::from_secs(10), node.halted())
            .await
            .expect("the node halts");
        assert!(msg.contains(want), "{msg}");
        assert_eq!(ready_status(&c, &b).await, 503);
        let (s, v) = submit_one(&c, &b, &transfer(1, 0, 2, 5)).await;
        assert_eq!((s, code(&v)), (503, "E_NOT_READY"), "{v}");
        let (s, v) = get_json(&c, &format!("{b}/v1/accounts/{}", addr_hex(0))).await;
        assert_eq!((s, code(&v)), (503, "E_NOT_READY"), "{v}");
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_with_a_code_and_a_closed_one_frees_its_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.api.max_subscribers = 2;
    let node = start(cfg).await;
    let url = format!("ws://{}/v1/subscribe", node.addr());
    let (ws1, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("first subscription");
    let ch = channel(&node).await;
    let mut subs = proto::subscriptions_client::SubscriptionsClient::new(ch.clone());
    let grpc1 = subs
        .subscribe(proto::SubscribeRequest::default())
        .await
        .expect("second subscription")
        .into_inner();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 429);
            let body: Value =
                serde_json::from_slice(r.body().as_deref().unwrap_or(b"")).unwrap_or_default();
            assert_eq!(code(&body), "E_TOO_MANY_SUBSCRIBERS", "{body}");
        }
        other => panic!("a third WebSocket subscription was not refused: {other:?}"),
    }
    let s = subs
        .subscribe(proto::SubscribeRequest::default())
        .await
        .expect_err("a third gRPC subscription is refused");
    assert_eq!(s.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status_code(&s), "E_TOO_MANY_SUBSCRIBERS");
    drop(ws1);
    drop(grpc1);
    poll_until(Duration::from_secs(5), "a freed subscription slot", || {
        let mut subs = subs.clone();
        async move {
            subs.subscribe(proto::SubscribeRequest::default())
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_past_its_deadline_is_refused_having_done_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(idle_config(dir.path())).await;
    let core = node.core().clone();
    let t = transfer(0, 0, 1, 5);
    let late = Instant::now() - Duration::from_millis(1);
    let txs = vec![t.encoded().to_vec()];
    let err = tokio::task::spawn_blocking({
        let core = core.clone();
        move || core.submit_before(Some(late), &txs)
    })
    .await
    .expect("joined")
    .expect_err("refused");
    assert_eq!(err.code, "E_TIMEOUT");
    assert_eq!(core.pipeline.mempool().len(), 0);
    assert_eq!(core.storage.pending_count().expect("count"), 0);
    // The same transaction is then accepted: nothing of the refused call remained.
    let (c, b) = (http(), base(&node));
    assert_eq!(submit_one(&c, &b, &t).await.0, 200);
    drop(core);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_its_buffer_is_disconnected_with_e_lagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.api.subscription_buffer = 4;
    // One transaction per block: 60 transactions are 60 block events.
    cfg.block.min_txs = 1;
    cfg.block.max_txs = 1;
    cfg.block.interval_ms = 5;
    cfg.storage.sync = false;
    let node = start(cfg).await;
    // A client whose HTTP/2 windows are 1 KiB: once a few events are unread the node cannot
    // send more, and the subscription's buffer of 4 fills behind them.
    let ch = tonic::transport::Channel::from_shared(base(&node))
        .expect("uri")
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .expect("gRPC connects");
    let mut stream = proto::subscriptions_client::SubscriptionsClient::new(ch)
        .subscribe(proto::SubscribeRequest {
            blocks: true,
            transactions: false,
        })
        .await
        .expect("Subscribe answers")
        .into_inner();
    let (c, b) = (http(), base(&node));
    let txs: Vec<String> = (0..60).map(|n| hex_of(&transfer(0, n, 1, 1))).collect();
    let (s, v) = post_json(&c, &format!("{b}/v1/transactions"), &json!(txs), None).await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(60)), "{v}");
    poll_until(Duration::from_secs(15), "60 blocks", || async {
        (node.core().head().height >= 60).then_some(())
    })
    .await;
    // Reading now: what was sent before the window closed, then the disconnection.
    let mut received = 0;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(_))) => received += 1,
            Ok(Ok(None)) => panic!("the stream ended without an error after {received} events"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("no disconnection within 10 s ({received} events)"),
        }
    };
    assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
    assert_eq!(status_code(&status), "E_LAGGED");
    assert!(
        received < 60,
        "{received} events arrived: it did not fall behind"
    );
    node.shutdown().await;
}
