//! Helpers shared by the node's integration tests: a real node on an ephemeral port, signed
//! transfers from the development accounts, real clients (reqwest, tonic) and polling.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use aurigraph_ledger::tx::{Address, Operation, SignedTransaction, Transaction};
use aurigraph_node::config::dev_key;
use aurigraph_node::proto;
use aurigraph_node::{Node, NodeConfig};
use serde_json::Value;
use tonic::transport::Channel;

/// The admin token every test node is started with.
pub const TOKEN: &str = "integration-test-admin-token-0123";

/// The repository's shipped models.
pub const MODELS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

/// A node's configuration for tests: data in `dir/data`, an ephemeral port on loopback, the
/// test token, empty policy folders, a short block interval.
pub fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().expect("address"),
        ..NodeConfig::default()
    };
    c.admin.token = Some(TOKEN.to_string());
    c.policies.models_dir = dir.join("models");
    c.policies.plugins_dir = dir.join("plugins");
    std::fs::create_dir_all(&c.policies.models_dir).expect("models dir");
    std::fs::create_dir_all(&c.policies.plugins_dir).expect("plugins dir");
    c.block.interval_ms = 20;
    c
}

/// Starts a node with `config`.
pub async fn start(config: NodeConfig) -> Node {
    Node::start(config).await.expect("the node starts")
}

/// `http://ADDR` of a node.
pub fn base(node: &Node) -> String {
    format!("http://{}", node.addr())
}

/// A transfer of `amount` from development account `from` to account `to`, fee 10.
pub fn transfer(from: u32, nonce: u64, to: u32, amount: u64) -> SignedTransaction {
    let (key, sender) = dev_key(from);
    Transaction {
        chain_id: 1,
        sender,
        nonce,
        fee: 10,
        op: Operation::Transfer {
            to: dev_key(to).1,
            amount,
        },
    }
    .sign(&key)
}

/// The address of development account `i`, hex.
pub fn addr_hex(i: u32) -> String {
    dev_addr(i).to_hex()
}

/// The address of development account `i`.
pub fn dev_addr(i: u32) -> Address {
    dev_key(i).1
}

/// Hex of a signed transaction, as REST takes it.
pub fn hex_of(tx: &SignedTransaction) -> String {
    hex::encode(tx.encoded())
}

/// An HTTP client (HTTP/1.1) with a generous per-request timeout, so a hang fails a test
/// instead of blocking it.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// GET `url` and its status and JSON body (`Value::Null` when the body is not JSON).
pub async fn get_json(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.expect("GET answers");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POST `body` (raw) to `url` with `content-type: application/json`; status and JSON body.
pub async fn post_raw(
    c: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = c
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.expect("POST answers");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POST a JSON value.
pub async fn post_json(
    c: &reqwest::Client,
    url: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, Value) {
    post_raw(c, url, body.to_string(), token).await
}

/// The stable code of a REST error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// A tonic channel to the node.
pub async fn channel(node: &Node) -> Channel {
    Channel::from_shared(base(node))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .connect()
        .await
        .expect("gRPC connects")
}

/// A gRPC request carrying `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata value"),
    );
    r
}

/// The `x-aurigraph-code` metadata of a gRPC status.
pub fn status_code(s: &tonic::Status) -> String {
    s.metadata()
        .get("x-aurigraph-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Calls `f` until it returns `Some`, every 20 ms, at most `timeout`; panics with `what`
/// when time runs out.
pub async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the transaction `hash` is committed (REST) and returns its JSON.
pub async fn wait_committed(c: &reqwest::Client, base: &str, hash: &str) -> Value {
    let url = format!("{base}/v1/transactions/{hash}");
    poll_until(
        Duration::from_secs(10),
        "the transaction to commit",
        || async {
            let (s, v) = get_json(c, &url).await;
            (s == 200 && v["state"] == "committed").then_some(v)
        },
    )
    .await
}

/// The head height through gRPC (the node still serves).
pub async fn grpc_head(ch: &Channel) -> proto::Head {
    proto::query_client::QueryClient::new(ch.clone())
        .get_head(proto::GetHeadRequest::default())
        .await
        .expect("GetHead answers")
        .into_inner()
}

/// The head through REST; asserts 200.
pub async fn rest_head(c: &reqwest::Client, base: &str) -> Value {
    let (s, v) = get_json(c, &format!("{base}/v1/head")).await;
    assert_eq!(s, 200, "GET /v1/head: {v}");
    v
}
