//! The node's API as the client verbs reach it: for `policy` and `tx`, one blocking HTTP
//! client on the REST mirror, answers turned into `[CODE] message` errors, the admin token;
//! for `load`, `LoadApi`: the calls the load tool makes, over gRPC or REST, one connection
//! each, refusals with their stable codes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use aurigraph_ledger::tx::{Address, TxHash};
use aurigraph_node::proto;

use crate::args::{LoadTransport, NodeArgs, TokenArgs};

pub(crate) struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    pub(crate) fn new(node: &NodeArgs) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: node.node.trim_end_matches('/').to_string(),
        })
    }

    fn answer(&self, r: reqwest::Result<reqwest::blocking::Response>) -> Result<Value> {
        let r = r.with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = r.status();
        let body: Value = r.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("E_HTTP");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        bail!("[{code}] {msg} (HTTP {})", status.as_u16())
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        self.answer(self.http.get(format!("{}{path}", self.base)).send())
    }

    pub(crate) fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.answer(req.send())
    }
}

pub(crate) fn token(t: &TokenArgs) -> Result<&str> {
    t.token.as_deref().context(
        "[E_UNAUTHENTICATED] admin verbs need --token or AURIGRAPH_ADMIN_TOKEN (the node's \
         admin.token, or <data_dir>/admin.token)",
    )
}

/// A refusal of a whole request, or of one transaction in it: the node's stable code
/// (`E_*`) and its message. The client's own failures have codes too: `E_REQUEST` (no
/// answer: connection refused or reset), `E_CLIENT_TIMEOUT` (no answer within the tool's
/// `--request-timeout`), `E_ANSWER` (an answer that does not parse). The node's own
/// `E_TIMEOUT` is an answer: nothing was done.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    /// The stable code.
    pub code: String,
    /// Why.
    pub message: String,
}

impl Refusal {
    fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A refusal without an answer from the node: the request may or may not have been
    /// served.
    pub(crate) fn unanswered(&self) -> bool {
        matches!(
            self.code.as_str(),
            "E_REQUEST" | "E_CLIENT_TIMEOUT" | "E_ANSWER"
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}

/// The code at the start of a message written `[E_CODE] reason`.
fn code_in(message: &str) -> Option<&str> {
    let rest = message.strip_prefix('[')?;
    let code = rest.split(']').next()?;
    (code.starts_with("E_") && code.len() < 64).then_some(code)
}

/// An account's figures as `aurigraph load` needs them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccountFigures {
    /// Balance.
    pub balance: u64,
    /// Committed next nonce.
    pub nonce: u64,
    /// The nonce a new transaction should carry (pending ones counted).
    pub next_nonce: u64,
}

/// One transaction of a block.
#[derive(Clone, Debug)]
pub(crate) struct BlockTx {
    /// Its hash.
    pub hash: TxHash,
    /// Its sender.
    pub sender: Address,
    /// Its nonce.
    pub nonce: u64,
    /// Its receipt's code (`OK`, `E_EXEC_*`).
    pub code: String,
}

/// A block as `aurigraph load` reads it.
#[derive(Clone, Debug)]
pub(crate) struct BlockTxs {
    /// Proposer's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Its transactions, in block order.
    pub txs: Vec<BlockTx>,
}

/// What `aurigraph load` asks of a node, over gRPC or REST: one connection, blocking calls.
pub(crate) trait LoadApi: Send {
    /// Submits encoded transactions in one request: per transaction `None` (accepted) or
    /// its refusal's code, in input order.
    fn submit(&mut self, txs: Vec<Vec<u8>>) -> Result<Vec<Option<String>>, Refusal>;
    /// The head's height and the chain id.
    fn head(&mut self) -> Result<(u64, u32), Refusal>;
    /// The block at `height`.
    fn block(&mut self, height: u64) -> Result<BlockTxs, Refusal>;
    /// The blocks at `heights`, in that order (asked at once where the transport allows).
    fn blocks(&mut self, heights: &[u64]) -> Vec<Result<BlockTxs, Refusal>> {
        heights.iter().map(|h| self.block(*h)).collect()
    }
    /// An account.
    fn account(&mut self, address: &Address) -> Result<AccountFigures, Refusal>;
}

/// Opens one connection to the node at `url` (its HTTP address; gRPC is served on the same
/// one). `timeout` bounds every call.
pub(crate) fn connect_load(
    transport: LoadTransport,
    url: &str,
    timeout: Duration,
) -> Result<Box<dyn LoadApi>> {
    let url = url.trim_end_matches('/');
    Ok(match transport {
        LoadTransport::Rest => Box::new(RestApi::new(url, timeout)?),
        LoadTransport::Grpc => Box::new(GrpcApi::connect(url, timeout)?),
    })
}

/// The REST side of [`LoadApi`]: the JSON mirror under `/v1`, HTTP/1.1 keep-alive.
struct RestApi {
    http: reqwest::blocking::Client,
    base: String,
}

#[derive(serde::Deserialize)]
struct RestSubmitItem {
    accepted: bool,
    #[serde(default)]
    code: Option<String>,
}

#[derive(serde::Deserialize)]
struct RestSubmit {
    results: Vec<RestSubmitItem>,
}

#[derive(serde::Deserialize)]
struct RestHead {
    height: u64,
    chain_id: u32,
}

#[derive(serde::Deserialize)]
struct RestReceipt {
    code: String,
}

#[derive(serde::Deserialize)]
struct RestBlockTx {
    hash: String,
    sender: String,
    nonce: u64,
    receipt: RestReceipt,
}

#[derive(serde::Deserialize)]
struct RestBlock {
    timestamp_ms: u64,
    transactions: Vec<RestBlockTx>,
}

#[derive(serde::Deserialize)]
struct RestAccount {
    balance: u64,
    nonce: u64,
    next_nonce: u64,
}

#[derive(serde::Deserialize)]
struct RestError {
    error: RestErrorBody,
}

#[derive(serde::Deserialize)]
struct RestErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

impl RestApi {
    fn new(base: &str, timeout: Duration) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            base: base.to_string(),
        })
    }

    fn answer<T: serde::de::DeserializeOwned>(
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<T, Refusal> {
        let r = r.map_err(|e| {
            let code = if e.is_timeout() {
                "E_CLIENT_TIMEOUT"
            } else {
                "E_REQUEST"
            };
            Refusal::new(code, format!("no answer: {e}"))
        })?;
        let status = r.status();
        let bytes = r
            .bytes()
            .map_err(|e| Refusal::new("E_REQUEST", format!("the answer broke off: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Refusal::new("E_ANSWER", format!("unexpected answer: {e}")));
        }
        Err(match serde_json::from_slice::<RestError>(&bytes) {
            Ok(e) => Refusal::new(e.error.code, e.error.message),
            Err(_) => Refusal::new("E_HTTP", format!("HTTP {}", status.as_u16())),
        })
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Refusal> {
        Self::answer(self.http.get(format!("{}{path}", self.base)).send())
    }
}

fn parse_block_tx(hash: &str, sender: &str, nonce: u64, code: String) -> Result<BlockTx, Refusal> {
    let hash = TxHash::from_hex(hash)
        .ok_or_else(|| Refusal::new("E_ANSWER", format!("a block holds the hash `{hash}`")))?;
    let sender = Address::from_hex(sender)
        .ok_or_else(|| Refusal::new("E_ANSWER", format!("a block holds the sender `{sender}`")))?;
    Ok(BlockTx {
        hash,
        sender,
        nonce,
        code,
    })
}

impl LoadApi for RestApi {
    fn submit(&mut self, txs: Vec<Vec<u8>>) -> Result<Vec<Option<String>>, Refusal> {
        // {"transactions": ["hex", ...]}, written directly.
        let mut body =
            String::with_capacity(24 + txs.iter().map(|t| 2 * t.len() + 3).sum::<usize>());
        body.push_str("{\"transactions\":[");
        for (i, t) in txs.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push('"');
            body.push_str(&hex::encode(t));
            body.push('"');
        }
        body.push_str("]}");
        let r: RestSubmit = Self::answer(
            self.http
                .post(format!("{}/v1/transactions", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send(),
        )?;
        Ok(r.results
            .into_iter()
            .map(|i| (!i.accepted).then(|| i.code.unwrap_or_else(|| "E_REFUSED".into())))
            .collect())
    }

    fn head(&mut self) -> Result<(u64, u32), Refusal> {
        let h: RestHead = self.get("/v1/head")?;
        Ok((h.height, h.chain_id))
    }

    fn block(&mut self, height: u64) -> Result<BlockTxs, Refusal> {
        let b: RestBlock = self.get(&format!("/v1/blocks/{height}"))?;
        Ok(BlockTxs {
            timestamp_ms: b.timestamp_ms,
            txs: b
                .transactions
                .into_iter()
                .map(|t| parse_block_tx(&t.hash, &t.sender, t.nonce, t.receipt.code))
                .collect::<Result<_, _>>()?,
        })
    }

    fn account(&mut self, address: &Address) -> Result<AccountFigures, Refusal> {
        let a: RestAccount = self.get(&format!("/v1/accounts/{}", address.to_hex()))?;
        Ok(AccountFigures {
            balance: a.balance,
            nonce: a.nonce,
            next_nonce: a.next_nonce,
        })
    }
}

/// A gRPC call's outcome under a timeout as the answer's message, or the status as a
/// [`Refusal`] (its code from the `x-aurigraph-code` metadata, else from the message).
macro_rules! grpc_answer {
    ($outcome:expr) => {{
        match $outcome {
            Err(_) => Err(Refusal::new("E_CLIENT_TIMEOUT", "no answer in time")),
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => {
                let message = status.message().to_string();
                let code = status
                    .metadata()
                    .get(aurigraph_node::error::CODE_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .or_else(|| code_in(&message).map(str::to_string))
                    .unwrap_or_else(|| {
                        // Not the node's service code: the transport's (no answer), or
                        // the gRPC status itself.
                        let kind = format!("{:?}", status.code());
                        if kind == "Unavailable" || kind == "Cancelled" {
                            "E_REQUEST".to_string()
                        } else {
                            format!("E_GRPC_{}", kind.to_uppercase())
                        }
                    });
                Err(Refusal::new(code, message))
            }
        }
    }};
}

/// One blocking call on a gRPC client, on the runtime `$rt`, within `$timeout`.
macro_rules! grpc_call {
    ($rt:expr, $timeout:expr, $call:expr) => {{ grpc_answer!($rt.block_on(async { tokio::time::timeout($timeout, $call).await })) }};
}

/// Most block reads in flight at once on one gRPC connection.
const BLOCKS_AT_ONCE: usize = 32;

type Call<A, R> = Box<dyn FnMut(A) -> Result<R, Refusal> + Send>;

/// Several calls at once: one outcome per argument, in order.
type Reads<A, R> = Box<dyn FnMut(Vec<A>) -> Vec<Result<R, Refusal>> + Send>;

/// The gRPC side of [`LoadApi`] (`aurigraph.v1` Transactions and Query on one HTTP/2
/// connection each), driven by a runtime of its own: each call blocks its thread. The
/// generated clients are kept inside the calls' closures.
struct GrpcApi {
    submit: Call<Vec<Vec<u8>>, proto::SubmitResponse>,
    head: Call<(), proto::Head>,
    block: Call<u64, proto::Block>,
    blocks: Reads<u64, proto::Block>,
    account: Call<String, proto::Account>,
}

impl GrpcApi {
    fn connect(url: &str, timeout: Duration) -> Result<Self> {
        let rt = std::sync::Arc::new(
            // One worker thread of its own, so the HTTP/2 connection's task keeps running
            // between calls: on a current-thread runtime, driven only inside each call, every
            // answer arrived about 40 ms late.
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?,
        );
        let (txs, query) = rt
            .block_on(async {
                let connect = async {
                    let t =
                        proto::transactions_client::TransactionsClient::connect(url.to_string())
                            .await?;
                    let q = proto::query_client::QueryClient::connect(url.to_string()).await?;
                    Ok::<_, anyhow::Error>((t, q))
                };
                tokio::time::timeout(timeout, connect)
                    .await
                    .unwrap_or_else(|_| bail!("no connection within {timeout:?}"))
            })
            .with_context(|| format!("[E_REQUEST] cannot reach the node's gRPC API at {url}"))?;
        // A block of the largest configurable size still decodes.
        let query = query.max_decoding_message_size(256 << 20);
        let submit = {
            let (rt, mut c) = (rt.clone(), txs);
            Box::new(move |t: Vec<Vec<u8>>| {
                grpc_call!(
                    rt,
                    timeout,
                    c.submit(proto::SubmitRequest { transactions: t })
                )
            })
        };
        let head = {
            let (rt, mut c) = (rt.clone(), query.clone());
            Box::new(move |()| {
                grpc_call!(rt, timeout, c.get_head(proto::GetHeadRequest::default()))
            })
        };
        let block = {
            let (rt, mut c) = (rt.clone(), query.clone());
            Box::new(move |height: u64| {
                grpc_call!(
                    rt,
                    timeout,
                    c.get_block(proto::GetBlockRequest {
                        height,
                        ..Default::default()
                    })
                )
            })
        };
        // Several reads at once on the connection: an answer of the node's gRPC side can wait
        // tens of milliseconds for the client's acknowledgement (the server does not set
        // TCP_NODELAY), and concurrent reads share that wait.
        let blocks = {
            let (rt, c) = (rt.clone(), query.clone());
            Box::new(move |heights: Vec<u64>| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    let n = heights.len();
                    for (i, height) in heights.into_iter().enumerate() {
                        let mut c = c.clone();
                        set.spawn(async move {
                            let call = c.get_block(proto::GetBlockRequest {
                                height,
                                ..Default::default()
                            });
                            (i, grpc_answer!(tokio::time::timeout(timeout, call).await))
                        });
                    }
                    let mut out: Vec<Result<proto::Block, Refusal>> = (0..n)
                        .map(|_| Err(Refusal::new("E_REQUEST", "the read did not finish")))
                        .collect();
                    while let Some(done) = set.join_next().await {
                        if let Ok((i, r)) = done
                            && let Some(slot) = out.get_mut(i)
                        {
                            *slot = r;
                        }
                    }
                    out
                })
            })
        };
        let account = {
            let (rt, mut c) = (rt, query);
            Box::new(move |address: String| {
                grpc_call!(
                    rt,
                    timeout,
                    c.get_account(proto::GetAccountRequest {
                        address,
                        ..Default::default()
                    })
                )
            })
        };
        Ok(Self {
            submit,
            head,
            block,
            blocks,
            account,
        })
    }
}

fn grpc_block(b: proto::Block) -> Result<BlockTxs, Refusal> {
    Ok(BlockTxs {
        timestamp_ms: b.timestamp_ms,
        txs: b
            .transactions
            .into_iter()
            .map(|t| {
                let code = t.receipt.map(|r| r.code).unwrap_or_default();
                parse_block_tx(&t.hash, &t.sender, t.nonce, code)
            })
            .collect::<Result<_, _>>()?,
    })
}

impl LoadApi for GrpcApi {
    fn submit(&mut self, txs: Vec<Vec<u8>>) -> Result<Vec<Option<String>>, Refusal> {
        let r = (self.submit)(txs)?;
        Ok(r.results
            .into_iter()
            .map(|i| {
                (!i.accepted).then(|| {
                    if i.code.is_empty() {
                        "E_REFUSED".to_string()
                    } else {
                        i.code
                    }
                })
            })
            .collect())
    }

    fn head(&mut self) -> Result<(u64, u32), Refusal> {
        let h = (self.head)(())?;
        Ok((h.height, h.chain_id))
    }

    fn block(&mut self, height: u64) -> Result<BlockTxs, Refusal> {
        grpc_block((self.block)(height)?)
    }

    fn blocks(&mut self, heights: &[u64]) -> Vec<Result<BlockTxs, Refusal>> {
        let mut out = Vec::with_capacity(heights.len());
        for chunk in heights.chunks(BLOCKS_AT_ONCE) {
            out.extend(
                (self.blocks)(chunk.to_vec())
                    .into_iter()
                    .map(|r| r.and_then(grpc_block)),
            );
        }
        out
    }

    fn account(&mut self, address: &Address) -> Result<AccountFigures, Refusal> {
        let a = (self.account)(address.to_hex())?;
        Ok(AccountFigures {
            balance: a.balance,
            nonce: a.nonce,
            next_nonce: a.next_nonce,
        })
    }
}
