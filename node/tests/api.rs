//! The happy path through the real servers: a node on an ephemeral port, driven through
//! REST (reqwest), gRPC (the tonic generated clients) and the `/v1/subscribe` WebSocket
//! (tokio-tungstenite): submit one and many, look up transactions (pending, then committed
//! with a receipt), blocks, accounts and the head, receive block and transaction events on
//! both streams, and read `/healthz`, `/readyz` and `/metrics`.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use aurigraph_node::proto;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const AMOUNT: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_query_and_subscribe_through_rest_grpc_and_websocket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(config(dir.path())).await;
    let base = base(&node);
    let c = http();
    let ch = channel(&node).await;
    let mut txs = proto::transactions_client::TransactionsClient::new(ch.clone());
    let mut query = proto::query_client::QueryClient::new(ch.clone());

    // Both streams subscribe before anything is submitted.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/subscribe?transactions=true",
        node.addr()
    ))
    .await
    .expect("the WebSocket connects");
    let mut grpc_events = proto::subscriptions_client::SubscriptionsClient::new(ch.clone())
        .subscribe(proto::SubscribeRequest {
            blocks: true,
            transactions: true,
        })
        .await
        .expect("Subscribe answers")
        .into_inner();

    // Health, readiness.
    let r = c
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.expect("body").trim(), "ready");

    let head0 = rest_head(&c, &base).await;
    assert_eq!(head0["height"], 0, "a new node is at the genesis: {head0}");
    assert_eq!(head0["chain_id"], 1);
    let (s, acc0) = get_json(&c, &format!("{base}/v1/accounts/{}", addr_hex(0))).await;
    assert_eq!(s, 200, "{acc0}");
    assert_eq!(acc0["nonce"], 0);
    let bal0 = acc0["balance"].as_u64().expect("balance");
    // A node alone answers a linearizable read from its state; an unknown consistency is refused.
    let (s, lin) = get_json(
        &c,
        &format!(
            "{base}/v1/accounts/{}?consistency=linearizable",
            addr_hex(0)
        ),
    )
    .await;
    assert_eq!((s, &lin), (200, &acc0));
    let (s, v) = get_json(&c, &format!("{base}/v1/head?consistency=strong")).await;
    assert_eq!((s, code(&v)), (400, "E_BAD_CONSISTENCY"), "{v}");
    let (_, acc1) = get_json(&c, &format!("{base}/v1/accounts/{}", addr_hex(1))).await;
    let bal1 = acc1["balance"].as_u64().expect("balance");

    // One through REST: nonce 1 first, so it waits behind the gap and is pending for sure.
    let t1 = transfer(0, 1, 1, AMOUNT);
    let (s, v) = post_json(
        &c,
        &format!("{base}/v1/transactions"),
        &json!(hex_of(&t1)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["results"][0]["hash"], t1.hash().to_string());
    let (s, pending) = get_json(&c, &format!("{base}/v1/transactions/{}", t1.hash())).await;
    assert_eq!(s, 200, "{pending}");
    assert_eq!(pending["state"], "pending", "{pending}");
    assert!(
        pending.get("receipt").is_none(),
        "a pending transaction has no receipt"
    );
    assert_eq!(pending["nonce"], 1);
    assert_eq!(pending["encoded"], hex_of(&t1));
    let g = txs
        .get_transaction(proto::GetTransactionRequest {
            hash: t1.hash().to_string(),
            ..Default::default()
        })
        .await
        .expect("GetTransaction answers")
        .into_inner();
    assert_eq!(g.state, "pending");
    assert_eq!(g.encoded, t1.encoded());

    // One through gRPC fills the gap: both commit.
    let t0 = transfer(0, 0, 1, AMOUNT);
    let r = txs
        .submit(proto::SubmitRequest {
            transactions: vec![t0.encoded().to_vec()],
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert_eq!(r.accepted, 1, "{r:?}");
    assert!(r.results[0].accepted);
    assert_eq!(r.results[0].hash, t0.hash().to_string());

    // Many through REST (a list) and through gRPC.
    let rest_many: Vec<_> = (0..5).map(|n| transfer(2, n, 4, AMOUNT)).collect();
    let (s, v) = post_json(
        &c,
        &format!("{base}/v1/transactions"),
        &json!({"transactions": rest_many.iter().map(hex_of).collect::<Vec<_>>()}),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 5, "{v}");
    for (item, t) in v["results"]
        .as_array()
        .expect("results")
        .iter()
        .zip(&rest_many)
    {
        assert_eq!(item["accepted"], true);
        assert_eq!(item["hash"], t.hash().to_string());
    }
    let grpc_many: Vec<_> = (0..5).map(|n| transfer(3, n, 4, AMOUNT)).collect();
    let r = txs
        .submit(proto::SubmitRequest {
            transactions: grpc_many.iter().map(|t| t.encoded().to_vec()).collect(),
        })
        .await
        .expect("Submit answers")
        .into_inner();
    assert_eq!(r.accepted, 5, "{r:?}");
    for (item, t) in r.results.iter().zip(&grpc_many) {
        assert!(item.accepted, "{item:?}");
        assert_eq!(item.hash, t.hash().to_string());
    }

    // Everything commits, with a receipt.
    let all: Vec<_> = [t1.clone(), t0.clone()]
        .into_iter()
        .chain(rest_many.iter().cloned())
        .chain(grpc_many.iter().cloned())
        .collect();
    let mut heights = HashSet::new();
    for t in &all {
        let v = wait_committed(&c, &base, &t.hash().to_string()).await;
        assert_eq!(v["receipt"]["status"], "success", "{v}");
        assert_eq!(v["receipt"]["code"], "OK", "{v}");
        assert_eq!(v["receipt"]["fee_charged"], 10, "{v}");
        heights.insert(v["block_height"].as_u64().expect("block height"));
    }
    let committed = txs
        .get_transaction(proto::GetTransactionRequest {
            hash: t0.hash().to_string(),
            ..Default::default()
        })
        .await
        .expect("GetTransaction answers")
        .into_inner();
    assert_eq!(committed.state, "committed");
    let receipt = committed
        .receipt
        .expect("a committed transaction has a receipt");
    assert_eq!(receipt.status, "success");
    assert_eq!(receipt.code, "OK");
    let h0 = committed.block_height;
    assert!(h0 >= 1);

    // The block, through both APIs.
    let (s, b) = get_json(&c, &format!("{base}/v1/blocks/{h0}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["height"], h0);
    let hashes: Vec<&str> = b["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .filter_map(|t| t["hash"].as_str())
        .collect();
    assert!(hashes.contains(&t0.hash().to_string().as_str()), "{b}");
    let gb = query
        .get_block(proto::GetBlockRequest {
            height: h0,
            ..Default::default()
        })
        .await
        .expect("GetBlock answers")
        .into_inner();
    assert_eq!(gb.hash, b["hash"].as_str().expect("hash"));
    assert_eq!(gb.state_root, b["state_root"].as_str().expect("root"));
    assert_eq!(gb.transactions.len(), hashes.len());

    // Accounts: balances and nonces moved.
    let (_, acc0) = get_json(&c, &format!("{base}/v1/accounts/{}", addr_hex(0))).await;
    assert_eq!(acc0["nonce"], 2, "{acc0}");
    assert_eq!(acc0["next_nonce"], 2, "{acc0}");
    assert_eq!(
        acc0["balance"].as_u64(),
        Some(bal0 - 2 * (AMOUNT + 10)),
        "{acc0}"
    );
    let ga1 = query
        .get_account(proto::GetAccountRequest {
            address: addr_hex(1),
            ..Default::default()
        })
        .await
        .expect("GetAccount answers")
        .into_inner();
    assert_eq!(ga1.balance, bal1 + 2 * AMOUNT);
    assert_eq!(ga1.nonce, 0);
    let ga4 = query
        .get_account(proto::GetAccountRequest {
            address: addr_hex(4),
            ..Default::default()
        })
        .await
        .expect("GetAccount answers")
        .into_inner();
    assert_eq!(
        ga4.balance,
        bal1 + 10 * AMOUNT,
        "10 transfers reached account 4"
    );

    // The head: both APIs agree, and it is the last block's.
    let head = rest_head(&c, &base).await;
    let gh = grpc_head(&ch).await;
    let top = *heights.iter().max().expect("heights");
    assert!(gh.height >= top, "head {} below block {top}", gh.height);
    assert_eq!(head["height"].as_u64(), Some(gh.height));
    assert_eq!(head["state_root"].as_str(), Some(gh.state_root.as_str()));
    let (_, last) = get_json(&c, &format!("{base}/v1/blocks/{}", gh.height)).await;
    assert_eq!(last["state_root"], head["state_root"]);
    assert_eq!(last["hash"], head["hash"]);

    // Both streams saw the blocks and every transaction.
    let want: HashSet<String> = all.iter().map(|t| t.hash().to_string()).collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen_tx = HashSet::new();
        let mut seen_blocks = HashSet::new();
        while !(want.is_subset(&seen_tx) && heights.is_subset(&seen_blocks)) {
            let e = grpc_events
                .message()
                .await
                .expect("the gRPC stream is healthy")
                .expect("the gRPC stream stays open");
            match e.event.expect("an event") {
                proto::event::Event::Block(b) => {
                    assert!(b.tx_count >= 1);
                    seen_blocks.insert(b.height);
                }
                proto::event::Event::Transaction(t) => {
                    assert_eq!(t.receipt.expect("receipt").code, "OK");
                    seen_tx.insert(t.hash);
                }
                proto::event::Event::Dropped(d) => {
                    panic!("nothing is dropped in this test: {d:?}")
                }
            }
        }
    })
    .await
    .expect("the gRPC stream delivers every block and transaction");
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen_tx = HashSet::new();
        let mut seen_blocks = HashSet::new();
        while !(want.is_subset(&seen_tx) && heights.is_subset(&seen_blocks)) {
            let m = ws
                .next()
                .await
                .expect("the WebSocket stays open")
                .expect("the WebSocket is healthy");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(&text).expect("events are JSON");
            match v["type"].as_str() {
                Some("block") => {
                    assert!(v["tx_count"].as_u64() >= Some(1), "{v}");
                    assert_eq!(v["hash"].as_str().map(str::len), Some(64), "{v}");
                    seen_blocks.insert(v["height"].as_u64().expect("height"));
                }
                Some("transaction") => {
                    assert_eq!(v["receipt"]["code"], "OK", "{v}");
                    seen_tx.insert(v["hash"].as_str().expect("hash").to_string());
                }
                other => panic!("unexpected event type {other:?}: {v}"),
            }
        }
    })
    .await
    .expect("the WebSocket delivers every block and transaction");

    // Metrics: the node's and the engine's families.
    let r = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("body");
    assert!(
        text.contains("aurigraph_node_blocks_total"),
        "no block counter:\n{text}"
    );
    assert!(
        text.contains("aurigraph_policy_"),
        "no policy families:\n{text}"
    );
    // What operators alert on: the process's CPU and memory, each API route's latency.
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert!(
        value("process_cpu_seconds_total").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        value("aurigraph_node_commit_latency_seconds_count").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        value(r#"aurigraph_node_mempool_class_transactions{class="normal"}"#).is_some(),
        "{text}"
    );
    assert!(
        value(r#"aurigraph_rocksdb_bytes{kind="memtable"}"#).is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        value("process_resident_memory_bytes").is_some_and(|v| v > 1e6),
        "{text}"
    );
    assert!(
        value(r#"aurigraph_http_request_duration_seconds_count{method="GET",route="/v1/accounts/{address}",status="200"}"#)
            .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    let blocks_line = text
        .lines()
        .find(|l| l.starts_with("aurigraph_node_blocks_total"))
        .expect("the block counter line");
    let blocks: f64 = blocks_line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(blocks >= heights.len() as f64, "{blocks_line}");

    // Close the clients so the graceful shutdown has no connection to wait for.
    drop((ws, grpc_events, txs, query, ch));
    node.shutdown().await;
}
