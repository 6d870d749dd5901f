//! The node's service code: the one `impl` of [`NodeCore`]. What every API call does, once
//! (the gRPC services and the REST mirror both call these methods, blocking: run them on a
//! blocking thread, and only translate the types), and the accessors the producer, the
//! server and the A/B harness use (head, readiness, subscriptions, waking and stopping the
//! producer).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aurigraph_decision::host::SlotStatus;
use aurigraph_decision::policy::BackendKind;
use aurigraph_decision::rollout::{Mode, PolicyRef, PolicyResolver, StepSchedule};
use aurigraph_decision::{SlotHost, SlotKind};
use aurigraph_ledger::executor::Receipt;
use aurigraph_ledger::state::StateView;
use aurigraph_ledger::tx::{Address, Operation, SignedTransaction, TxHash};
use aurigraph_storage::Head;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::config::NodeRole;
use crate::error::{ApiError, ErrorKind};
use crate::node::{BlockEvent, DroppedEvent, NodeCore};
use aurigraph_ledger::mempool::{Removal, Removed};
use aurigraph_storage::DroppedTx;

/// The result of one submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitItem {
    /// Whether it was accepted into the mempool (and recorded durably).
    pub accepted: bool,
    /// Its hash, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The refusal's stable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The refusal's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptInfo {
    /// Status, snake case (`success`, `insufficient_funds`, `bad_nonce`, ...).
    pub status: String,
    /// Stable code of the status (`OK`, `E_EXEC_*`).
    pub code: String,
    /// Fee charged.
    pub fee_charged: u64,
}

impl From<&Receipt> for ReceiptInfo {
    fn from(r: &Receipt) -> Self {
        Self {
            status: serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            code: r.status.code().to_string(),
            fee_charged: r.fee_charged,
        }
    }
}

/// What a transaction does, in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OperationInfo {
    /// A transfer.
    Transfer {
        /// Recipient (hex).
        to: String,
        /// Amount.
        amount: u64,
    },
    /// A multi-transfer.
    MultiTransfer {
        /// Recipients (hex) and amounts.
        outputs: Vec<(String, u64)>,
    },
}

impl From<&Operation> for OperationInfo {
    fn from(op: &Operation) -> Self {
        match op {
            Operation::Transfer { to, amount } => OperationInfo::Transfer {
                to: to.to_hex(),
                amount: *amount,
            },
            Operation::MultiTransfer { outputs } => OperationInfo::MultiTransfer {
                outputs: outputs.iter().map(|(a, v)| (a.to_hex(), *v)).collect(),
            },
        }
    }
}

/// A transaction and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInfo {
    /// Hash.
    pub hash: String,
    /// `pending`, `committed` or `dropped`.
    pub state: String,
    /// Sender (hex).
    pub sender: String,
    /// Nonce.
    pub nonce: u64,
    /// Fee.
    pub fee: u64,
    /// The operation.
    pub operation: OperationInfo,
    /// Height of its block, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_height: Option<u64>,
    /// Index in its block, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Its receipt, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptInfo>,
    /// Why it was dropped: a stable code (`E_DROPPED_EVICTED`, `E_DROPPED_REPLACED`,
    /// `E_DROPPED_STALE`, or a refusal's code on restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it was dropped, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The head's height when it was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_height: Option<u64>,
    /// The canonical encoding (hex; empty when a dropped record lost it).
    pub encoded: String,
}

impl TxInfo {
    fn of(tx: &SignedTransaction, state: &str) -> Self {
        let t = tx.tx();
        Self {
            hash: tx.hash().to_string(),
            state: state.to_string(),
            sender: t.sender.to_hex(),
            nonce: t.nonce,
            fee: t.fee,
            operation: OperationInfo::from(&t.op),
            block_height: None,
            index: None,
            receipt: None,
            code: None,
            reason: None,
            dropped_height: None,
            encoded: hex::encode(tx.encoded()),
        }
    }

    fn unknown(hash: TxHash, state: &str) -> Self {
        Self {
            hash: hash.to_string(),
            state: state.to_string(),
            sender: String::new(),
            nonce: 0,
            fee: 0,
            operation: OperationInfo::MultiTransfer {
                outputs: Vec::new(),
            },
            block_height: None,
            index: None,
            receipt: None,
            code: None,
            reason: None,
            dropped_height: None,
            encoded: String::new(),
        }
    }
}

/// A transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTxInfo {
    /// Hash.
    pub hash: String,
    /// Sender (hex).
    pub sender: String,
    /// Nonce.
    pub nonce: u64,
    /// Fee.
    pub fee: u64,
    /// Receipt.
    pub receipt: ReceiptInfo,
}

/// A block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Height.
    pub height: u64,
    /// Hash (hex).
    pub hash: String,
    /// Parent hash (hex).
    pub parent_hash: String,
    /// State root after the block (hex).
    pub state_root: String,
    /// Proposer's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Transactions, in block order.
    pub transactions: Vec<BlockTxInfo>,
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Address (hex).
    pub address: String,
    /// Balance.
    pub balance: u64,
    /// Committed next nonce.
    pub nonce: u64,
    /// The nonce a new transaction should carry (pending ones counted).
    pub next_nonce: u64,
}

/// The head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// Height.
    pub height: u64,
    /// Hash (hex).
    pub hash: String,
    /// State root (hex).
    pub state_root: String,
    /// Chain id.
    pub chain_id: u32,
}

/// A slot's mode as an operator asks for it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ModeRequest {
    /// Baseline only.
    Off,
    /// Candidate in shadow.
    Shadow,
    /// Candidate on a canary share, percent.
    Canary(f64),
}

/// Parses a slot name (`E_UNKNOWN_SLOT`).
pub fn parse_slot(s: &str) -> Result<SlotKind, ApiError> {
    s.parse::<SlotKind>().map_err(|_| {
        ApiError::bad_request(
            "E_UNKNOWN_SLOT",
            format!(
                "unknown slot `{s}`; slots: {}",
                SlotKind::ALL.map(|k| k.as_str()).join(", ")
            ),
        )
    })
}

/// Parses a transaction hash (`E_BAD_HASH`).
pub fn parse_hash(s: &str) -> Result<TxHash, ApiError> {
    TxHash::from_hex(s)
        .ok_or_else(|| ApiError::bad_request("E_BAD_HASH", "a hash is 64 hex characters"))
}

/// Parses an address (`E_BAD_ADDRESS`).
pub fn parse_address(s: &str) -> Result<Address, ApiError> {
    Address::from_hex(s)
        .ok_or_else(|| ApiError::bad_request("E_BAD_ADDRESS", "an address is 64 hex characters"))
}

/// Parses a backend name for `load` (`E_BAD_BACKEND`).
pub fn parse_backend(s: &str) -> Result<BackendKind, ApiError> {
    match s {
        "onnx" => Ok(BackendKind::Onnx),
        "wasm" => Ok(BackendKind::Wasm),
        other => Err(ApiError::bad_request(
            "E_BAD_BACKEND",
            format!("backend `{other}`: expected `onnx` or `wasm`"),
        )),
    }
}

/// A change of a cluster an operator asks for (`POST /v1/cluster/{action}`).
#[derive(Clone, Debug)]
pub enum ClusterChange {
    /// Add a learner at `addr` (a node started with `[cluster]`, this `id`, not bootstrapping).
    AddLearner {
        /// Its id.
        id: u64,
        /// `host:port` of its API.
        addr: String,
    },
    /// Make a learner a voter.
    Promote(u64),
    /// Remove a replica.
    Remove(u64),
    /// Hand leadership over to a voter.
    Transfer(u64),
}

/// An open subscription's slot; released (and the gauge lowered) when dropped.
#[derive(Debug)]
pub struct SubscriberPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: crate::metrics::NodeMetrics,
}

impl Drop for SubscriberPermit {
    fn drop(&mut self) {
        self.metrics.subscribers(-1);
    }
}

/// The dropped event of a transaction that left the mempool uncommitted (evicted, replaced,
/// stale or expired); `None` for one removed as committed or skipped (it is in a block).
pub(crate) fn dropped_event(r: &Removed, height: u64) -> Option<DroppedEvent> {
    let (code, reason) = match r.reason {
        Removal::Evicted => (
            "E_DROPPED_EVICTED",
            "evicted from the full mempool by a transaction of a better priority class or fee"
                .to_string(),
        ),
        Removal::Replaced => (
            "E_DROPPED_REPLACED",
            format!(
                "replaced by a higher-fee transaction of the same sender and nonce {}",
                r.nonce
            ),
        ),
        Removal::Stale => (
            "E_DROPPED_STALE",
            format!(
                "nonce {} of its sender was used by another committed transaction",
                r.nonce
            ),
        ),
        Removal::Expired => (
            "E_DROPPED_EXPIRED",
            format!(
                "nonce {} of its sender stayed behind a nonce gap past block.mempool_gapped_ttl_ms",
                r.nonce
            ),
        ),
        Removal::Committed | Removal::Skipped => return None,
    };
    Some(DroppedEvent {
        hash: r.hash,
        code: code.to_string(),
        reason,
        height,
    })
}

/// Releases the in-flight count of a submission when it ends, however it ends.
struct Inflight<'a> {
    core: &'a NodeCore,
    n: usize,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.core.inflight_txs.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl NodeCore {
    /// The head.
    pub fn head(&self) -> Head {
        *self.head.read()
    }

    /// Whether the node serves (storage healthy, production running).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Asks the producer to run a round now (a full block is waiting, or a cluster's leader
    /// has transactions to propose).
    pub fn wake_producer(&self) {
        self.wake.1.notify_one();
    }

    /// Subscribes to committed blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BlockEvent>> {
        self.events.subscribe()
    }

    /// Subscribes to acknowledged transactions dropped from the mempool.
    pub fn subscribe_dropped(&self) -> broadcast::Receiver<Arc<Vec<DroppedEvent>>> {
        self.drops.subscribe()
    }

    /// A subscription slot (`api.max_subscribers`), held as long as the subscription is
    /// open; `E_TOO_MANY_SUBSCRIBERS` when every slot is taken.
    pub fn subscriber_permit(&self) -> Result<SubscriberPermit, ApiError> {
        let permit = self.subscribers.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorKind::Overloaded,
                "E_TOO_MANY_SUBSCRIBERS",
                format!(
                    "{} subscriptions are open, the most this node serves: retry later",
                    self.config.api.max_subscribers
                ),
            )
        })?;
        self.metrics.subscribers(1);
        Ok(SubscriberPermit {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }

    /// Halts with the fatal error of block production, `[CODE] message`, once it happens.
    pub fn halted(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.halt.subscribe()
    }

    /// The committed view for a read: refused with `E_NOT_READY` while block production is
    /// halted or retrying (the state may then be ahead of the head).
    fn committed_view(&self) -> Result<parking_lot::RwLockReadGuard<'_, ()>, ApiError> {
        let view = self.view.read();
        if self.halt.borrow().is_some() {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "E_NOT_READY",
                "block production halted: the node serves no reads",
            ));
        }
        Ok(view)
    }

    /// Writes the decisions recorded since the last block (between blocks: under the
    /// head's height). A failure is logged: telemetry never stops the node.
    pub fn flush_telemetry(&self) {
        if let Some(t) = &self.telemetry
            && t.pending() > 0
        {
            let w = t.flush_write(self.head().height);
            if let Err(e) = self.storage.write_telemetry(&w) {
                tracing::warn!(error = %e, "telemetry not written");
            }
        }
    }

    /// Stops block production (the thread finishes its round).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.ready.store(false, Ordering::Release);
        let _guard = self.wake.0.lock();
        self.wake.1.notify_all();
    }

    fn check_ready(&self) -> Result<(), ApiError> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Unavailable,
                "E_NOT_READY",
                "the node is not serving (starting, stopping, or its storage failed)",
            ))
        }
    }

    /// Submits encoded transactions: admission, a durable record of what passed it, then the
    /// mempool, before answering. One item per input, in input order.
    pub fn submit(&self, txs: &[Vec<u8>]) -> Result<Vec<SubmitItem>, ApiError> {
        self.submit_before(None, txs)
    }

    /// [`submit`](Self::submit), refused with `E_TIMEOUT` (and nothing done) when it starts
    /// after `deadline`. Once started it runs to its answer, so a client told `E_TIMEOUT`
    /// knows none of its transactions was accepted, and a client told "accepted" was told
    /// the truth.
    pub fn submit_before(
        &self,
        deadline: Option<std::time::Instant>,
        txs: &[Vec<u8>],
    ) -> Result<Vec<SubmitItem>, ApiError> {
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            self.metrics.submission("E_TIMEOUT", txs.len() as u64);
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "E_TIMEOUT",
                "the submission waited longer than api.request_timeout_ms to start: none of \
                 its transactions was admitted",
            ));
        }
        self.check_ready()?;
        if self.config.cluster.enabled() && self.config.cluster.role == NodeRole::Slim {
            self.metrics
                .submission("E_SLIM_READ_ONLY", txs.len() as u64);
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "E_SLIM_READ_ONLY",
                "this replica is a slim node: it serves reads only; submit to a validator or \
                 business node (GET /v1/cluster lists them)",
            ));
        }
        if let Some(answer) = self.forward_to_leader(txs)? {
            return Ok(answer);
        }
        let api = &self.config.api;
        if txs.is_empty() {
            return Err(ApiError::bad_request(
                "E_EMPTY",
                "no transaction in the request",
            ));
        }
        if txs.len() > api.max_txs_per_request {
            return Err(ApiError::bad_request(
                "E_TOO_MANY_TXS",
                format!(
                    "{} transactions in one request; at most {}",
                    txs.len(),
                    api.max_txs_per_request
                ),
            ));
        }
        let before = self.inflight_txs.fetch_add(txs.len(), Ordering::AcqRel);
        let _inflight = Inflight {
            core: self,
            n: txs.len(),
        };
        if before + txs.len() > api.max_inflight_txs {
            self.metrics.submission("E_OVERLOADED", txs.len() as u64);
            return Err(ApiError::new(
                ErrorKind::Overloaded,
                "E_OVERLOADED",
                format!(
                    "{before} transactions are being admitted; at most {} at once: retry later",
                    api.max_inflight_txs
                ),
            ));
        }
        // In a cluster the answer waits for the commit: subscribe before anything can commit.
        let mut commits = self
            .cluster
            .get()
            .map(|_| (self.subscribe(), self.subscribe_dropped()));
        // Admission first, then the durable record, then the mempool: a transaction is never
        // in the mempool (and so never in a block) before it is on disk, and a failed write
        // leaves nothing behind.
        let outcome = self
            .pipeline
            .submit_with(txs, |admitted| {
                let first = self
                    .pending_seq
                    .fetch_add(admitted.len() as u64, Ordering::Relaxed);
                let rows: Vec<(TxHash, u64, &[u8])> = admitted
                    .iter()
                    .zip(first..)
                    .map(|(a, seq)| (a.tx.hash(), seq, a.tx.encoded()))
                    .collect();
                self.storage.put_pending(&rows)
            })
            .map_err(|e| {
                tracing::error!(code = e.code(), error = %e, "submissions not recorded: none accepted");
                ApiError::new(
                    ErrorKind::Unavailable,
                    e.code(),
                    format!("the transactions could not be recorded, none was accepted: {e}"),
                )
            })?;
        let height = self.head().height;
        let dropped: Vec<DroppedEvent> = outcome
            .removed
            .iter()
            .filter_map(|r| dropped_event(r, height))
            .collect();
        if let Err(e) = self.settle(&outcome.refused_after_record, dropped) {
            // What stays in the `mempool` family is settled on restart.
            tracing::error!(code = e.code(), error = %e, "evicted or refused transactions not settled on disk");
        }
        let results = outcome.results;
        let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
        self.accepted_total.fetch_add(accepted, Ordering::Relaxed);
        if accepted > 0 {
            self.metrics.submission("accepted", accepted);
        }
        // A cluster's leader proposes what is ready at once; a node alone waits for a full
        // block or the interval.
        if accepted > 0
            && (self.cluster.get().is_some()
                || self.pipeline.mempool().ready_len() >= self.config.block.max_txs)
        {
            self.wake_producer();
        }
        let mut results = results;
        if let Some((blocks, drops)) = commits.as_mut() {
            self.wait_committed(&mut results, blocks, drops);
        }
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(h) => SubmitItem {
                    accepted: true,
                    hash: Some(h.to_string()),
                    code: None,
                    message: None,
                },
                Err(refused) => {
                    self.metrics.submission(refused.code, 1);
                    SubmitItem {
                        accepted: false,
                        hash: None,
                        code: Some(refused.code.to_string()),
                        message: Some(refused.reason),
                    }
                }
            })
            .collect())
    }

    /// A replica of a cluster answers "accepted" once a transaction is committed, so an
    /// acknowledged transaction is on a quorum: waits (the request timeout, from now) for the accepted ones to be committed or dropped. One dropped
    /// meanwhile becomes a refusal with its drop code; one still pending at the deadline
    /// becomes `E_COMMIT_PENDING` (it may still commit: its hash answers).
    fn wait_committed(
        &self,
        results: &mut [aurigraph_ledger::pipeline::Submitted],
        blocks: &mut broadcast::Receiver<Arc<BlockEvent>>,
        drops: &mut broadcast::Receiver<Arc<Vec<DroppedEvent>>>,
    ) {
        use std::collections::HashMap;
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let mut waiting: HashMap<TxHash, usize> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|h| (*h, i)))
            .collect();
        let timeout = std::time::Duration::from_millis(self.config.api.request_timeout_ms);
        let until = std::time::Instant::now() + timeout;
        while !waiting.is_empty() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let event = cluster.rt.block_on(async {
                tokio::time::timeout(left, async {
                    tokio::select! {
                        b = blocks.recv() => Ok(b),
                        d = drops.recv() => Err(d),
                    }
                })
                .await
            });
            match event {
                Err(_) => break,
                Ok(Ok(Ok(block))) => {
                    for r in &block.receipts {
                        waiting.remove(&r.tx_hash);
                    }
                }
                Ok(Err(Ok(dropped))) => {
                    for d in dropped.iter() {
                        if let Some(i) = waiting.remove(&d.hash) {
                            results[i] = Err(aurigraph_ledger::pipeline::Refused {
                                code: "E_DROPPED",
                                reason: format!("[{}] {}", d.code, d.reason),
                            });
                        }
                    }
                }
                // Fell behind or closed: ask the index for what is left.
                Ok(Ok(Err(_))) | Ok(Err(Err(_))) => {
                    waiting.retain(|h, _| !matches!(self.storage.tx_location(h), Ok(Some(_))));
                    if blocks.is_empty() && drops.is_empty() {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
        }
        for (_, i) in waiting {
            results[i] = Err(aurigraph_ledger::pipeline::Refused {
                code: "E_COMMIT_PENDING",
                reason: "accepted by the leader but not committed within api.request_timeout_ms: \
                         it may still commit or be dropped; its hash answers which"
                    .to_string(),
            });
        }
    }

    /// Settles recorded submissions that will not commit: `forget` leave the `mempool`
    /// family (never acknowledged), `dropped` leave it with a `dropped` record, are counted
    /// by code and announced to subscribers.
    pub(crate) fn settle(
        &self,
        forget: &[TxHash],
        dropped: Vec<DroppedEvent>,
    ) -> Result<(), aurigraph_storage::StorageError> {
        if forget.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let records: Vec<(TxHash, DroppedTx)> = dropped
            .iter()
            .map(|d| {
                (
                    d.hash,
                    DroppedTx {
                        code: d.code.clone(),
                        reason: d.reason.clone(),
                        height: d.height,
                        tx: String::new(),
                    },
                )
            })
            .collect();
        self.storage.settle_pending(forget, &records)?;
        for d in &dropped {
            self.metrics.dropped(&d.code);
            tracing::info!(tx = %d.hash, code = %d.code, reason = %d.reason, "acknowledged transaction dropped");
        }
        if !dropped.is_empty() {
            // No subscriber is not an error.
            let _ = self.drops.send(Arc::new(dropped));
        }
        Ok(())
    }

    /// A transaction: committed (with its receipt), pending, or dropped (with its code).
    /// Answered from the committed view: a transaction being committed is pending until the
    /// head that holds it is visible.
    pub fn transaction(&self, hash: &str) -> Result<TxInfo, ApiError> {
        let hash = parse_hash(hash)?;
        let _view = self.committed_view()?;
        if let Some(loc) = self.storage.tx_location(&hash)? {
            let block = self.storage.block(loc.height)?.ok_or_else(|| {
                ApiError::internal(
                    "E_STORAGE_CORRUPT",
                    format!("block {} is missing", loc.height),
                )
            })?;
            let i = loc.index as usize;
            let (Some(tx), Some(r)) = (block.txs.get(i), block.receipts.get(i)) else {
                return Err(ApiError::internal(
                    "E_STORAGE_CORRUPT",
                    format!("block {} has no transaction {i}", loc.height),
                ));
            };
            let mut info = TxInfo::of(tx, "committed");
            info.block_height = Some(loc.height);
            info.index = Some(loc.index);
            info.receipt = Some(ReceiptInfo::from(r));
            return Ok(info);
        }
        if let Some(t) = self.pipeline.mempool().get(&hash) {
            return Ok(TxInfo::of(&t.tx, "pending"));
        }
        if let Some(d) = self.storage.dropped(&hash)? {
            let tx = hex::decode(&d.tx)
                .ok()
                .and_then(|b| SignedTransaction::decode(&b).ok());
            let mut info = match tx {
                Some(tx) => TxInfo::of(&tx, "dropped"),
                None => TxInfo::unknown(hash, "dropped"),
            };
            info.dropped_height = Some(d.height);
            info.code = Some(d.code);
            info.reason = Some(d.reason);
            return Ok(info);
        }
        Err(ApiError::not_found(
            "E_TX_NOT_FOUND",
            format!("no transaction {hash} is pending or committed"),
        ))
    }

    /// The block at `height` (0: the genesis has no stored block).
    pub fn block(&self, height: u64) -> Result<BlockInfo, ApiError> {
        let _view = self.committed_view()?;
        let b = self.storage.block(height)?.ok_or_else(|| {
            ApiError::not_found(
                "E_BLOCK_NOT_FOUND",
                format!("no block at height {height} (head {})", self.head().height),
            )
        })?;
        Ok(BlockInfo {
            height: b.header.height,
            hash: hex::encode(b.hash()),
            parent_hash: hex::encode(b.header.parent),
            state_root: b.header.state_root.to_string(),
            timestamp_ms: b.header.timestamp_ms,
            transactions: b
                .txs
                .iter()
                .zip(&b.receipts)
                .map(|(t, r)| BlockTxInfo {
                    hash: t.hash().to_string(),
                    sender: t.tx().sender.to_hex(),
                    nonce: t.tx().nonce,
                    fee: t.tx().fee,
                    receipt: ReceiptInfo::from(r),
                })
                .collect(),
        })
    }

    /// An account (an unknown address is an empty account).
    pub fn account(&self, address: &str) -> Result<AccountInfo, ApiError> {
        let addr = parse_address(address)?;
        let _view = self.committed_view()?;
        let acc = self.pipeline.state().account(&addr);
        Ok(AccountInfo {
            address: addr.to_hex(),
            balance: acc.balance,
            nonce: acc.nonce,
            next_nonce: self.pipeline.mempool().pending_nonce(&addr, acc.nonce),
        })
    }

    /// The head.
    pub fn head_info(&self) -> HeadInfo {
        let _view = self.view.read();
        let h = self.head();
        HeadInfo {
            height: h.height,
            hash: hex::encode(h.hash),
            state_root: h.state_root.to_string(),
            chain_id: self.pipeline.state().chain_id(),
        }
    }

    fn host(&self, slot: &str) -> Result<(SlotKind, &SlotHost), ApiError> {
        let s = parse_slot(slot)?;
        let host = self
            .hosts
            .get(&s)
            .ok_or_else(|| ApiError::internal("E_INTERNAL", format!("no host for {s}")))?;
        Ok((s, host))
    }

    /// Every slot's state.
    pub fn slots(&self) -> Vec<SlotStatus> {
        self.hosts.values().map(|h| h.status()).collect()
    }

    /// One slot's state.
    pub fn slot_status(&self, slot: &str) -> Result<SlotStatus, ApiError> {
        Ok(self.host(slot)?.1.status())
    }

    /// Loads a registered model or plugin version as the slot's candidate.
    pub fn load(
        &self,
        slot: &str,
        backend: &str,
        name: &str,
        version: &str,
    ) -> Result<SlotStatus, ApiError> {
        let (kind, host) = self.host(slot)?;
        let backend = parse_backend(backend)?;
        let r = PolicyRef {
            backend,
            name: name.to_string(),
            version: version.to_string(),
        };
        let policy = self.registries.resolve(kind, &r).map_err(|e| {
            ApiError::not_found(
                "E_POLICY_NOT_FOUND",
                format!("{backend} {name}@{version} for {kind}: {e}"),
            )
        })?;
        host.load_candidate(policy)
            .map_err(|e| ApiError::from_engine(&e))?;
        Ok(host.status())
    }

    /// Sets a slot's mode.
    pub fn set_mode(&self, slot: &str, mode: ModeRequest) -> Result<SlotStatus, ApiError> {
        let (_, host) = self.host(slot)?;
        let mode = match mode {
            ModeRequest::Off => Mode::Off,
            ModeRequest::Shadow => Mode::Shadow,
            ModeRequest::Canary(p) => Mode::canary_percent(p).ok_or_else(|| {
                ApiError::bad_request("E_BAD_PERCENT", format!("canary {p}%: expected 0 to 100"))
            })?,
        };
        host.set_mode(mode).map_err(|e| ApiError::from_engine(&e))?;
        Ok(host.status())
    }

    /// Starts a step schedule on a slot.
    pub fn set_schedule(
        &self,
        slot: &str,
        percents: &[f64],
        min_decisions: u64,
    ) -> Result<SlotStatus, ApiError> {
        let (_, host) = self.host(slot)?;
        let schedule = StepSchedule::from_percents(percents, min_decisions)
            .map_err(|e| ApiError::bad_request("E_BAD_SCHEDULE", e.to_string()))?;
        host.start_schedule(schedule)
            .map_err(|e| ApiError::from_engine(&e))?;
        Ok(host.status())
    }

    /// Promotes the candidate to baseline.
    pub fn promote(&self, slot: &str) -> Result<SlotStatus, ApiError> {
        let (_, host) = self.host(slot)?;
        host.promote().map_err(|e| ApiError::from_engine(&e))?;
        Ok(host.status())
    }

    /// Starts retraining `slot`'s model in the background (the closed loop, see
    /// [`crate::retrain`]): 409 `E_RETRAIN_RUNNING` while one runs.
    pub fn train(&self, slot: &str) -> Result<crate::retrain::RetrainView, ApiError> {
        let (kind, _) = self.host(slot)?;
        self.retrain.start(self, kind, "admin")
    }

    /// `slot`'s retrain state.
    pub fn retrain_view(&self, slot: &str) -> Result<crate::retrain::RetrainView, ApiError> {
        let (kind, _) = self.host(slot)?;
        Ok(self.retrain.view(kind))
    }

    /// Rolls the candidate back.
    pub fn rollback(&self, slot: &str, reason: &str) -> Result<SlotStatus, ApiError> {
        let (_, host) = self.host(slot)?;
        let reason = if reason.is_empty() {
            "operator"
        } else {
            reason
        };
        host.rollback(reason)
            .map_err(|e| ApiError::from_engine(&e))?;
        Ok(host.status())
    }

    /// What the `leader_health` monitor last published (`None` off a cluster).
    pub fn leader_health(&self) -> Option<crate::health::HealthView> {
        self.cluster.get().map(|c| c.health.view())
    }

    /// The injector, or `E_FAULTS_DISABLED` when the node runs without `[faults] enabled` on
    /// a cluster replica.
    fn injector(&self) -> Result<&std::sync::Arc<crate::faults::FaultInjector>, ApiError> {
        self.faults.as_ref().ok_or_else(|| {
            ApiError::new(
                crate::error::ErrorKind::Conflict,
                "E_FAULTS_DISABLED",
                "fault injection is off: it needs `[faults] enabled = true` on a cluster replica (tests and chaos runs only)",
            )
        })
    }

    /// The injected faults now active (`E_FAULTS_DISABLED` when injection is off).
    pub fn active_faults(&self) -> Result<Vec<crate::faults::ActiveFault>, ApiError> {
        Ok(self.injector()?.active())
    }

    /// Injects `spec` into this node (tests and chaos runs only; see [`crate::faults`]).
    pub fn inject_fault(
        &self,
        spec: crate::faults::FaultSpec,
    ) -> Result<Vec<crate::faults::ActiveFault>, ApiError> {
        let injector = self.injector()?;
        let cluster = self.cluster.get().ok_or_else(|| {
            ApiError::new(
                crate::error::ErrorKind::Unavailable,
                "E_NOT_READY",
                "the replica has not started yet",
            )
        })?;
        let me = self.config.cluster.node_id;
        let peers: Vec<u64> = aurigraph_consensus::replica::status(&cluster.raft)
            .members
            .iter()
            .map(|m| m.0)
            .chain(self.config.cluster.members.iter().map(|m| m.id))
            .filter(|id| *id != me)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        injector
            .apply(spec, peers, &cluster.rt)
            .map_err(|e| ApiError::bad_request("E_BAD_FAULT", e))
    }

    /// This replica's status, or `None` when the node runs alone.
    pub fn cluster_status(&self) -> Option<aurigraph_consensus::replica::ReplicaStatus> {
        self.cluster
            .get()
            .map(|c| aurigraph_consensus::replica::status(&c.raft))
    }

    /// Figures read when Prometheus scrapes rather than when they change: the process's CPU
    /// and memory, the replica's contact with its quorum (a cut-off leader's metrics stop
    /// changing, so its age is computed now), telemetry pruned.
    pub fn refresh_scrape_metrics(&self) {
        self.metrics.refresh_process();
        self.metrics.refresh_storage(
            &self.pipeline.mempool().stats(),
            self.storage.rocksdb_figures(),
        );
        match self.cluster_status() {
            Some(s) => {
                let max = match self.config.cluster.election_max_ms {
                    0 => 1_000,
                    v => v,
                };
                self.metrics.raft_quorum(&s, max);
            }
            None => self.metrics.raft_alone(),
        }
        if let Some(t) = &self.telemetry {
            self.metrics.telemetry_pruned_total(t.pruned_total());
        }
    }

    /// The gRPC channel to the leader at `addr`, cached while the leader stays the same.
    fn leader_channel(
        &self,
        c: &crate::node::cluster::Cluster,
        addr: &str,
    ) -> Result<tonic::transport::Channel, ApiError> {
        let mut cached = c.leader_channel.lock();
        if let Some((a, ch)) = cached.as_ref()
            && a == addr
        {
            return Ok(ch.clone());
        }
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ApiError::internal("E_FORWARD", format!("leader address {addr}: {e}")))?
            .timeout(std::time::Duration::from_millis(
                self.config.api.request_timeout_ms.saturating_mul(2),
            ))
            .connect_lazy();
        *cached = Some((addr.to_string(), ch.clone()));
        Ok(ch)
    }

    /// Makes the next read of this node linearizable (`consistency=linearizable`). A node
    /// alone: nothing to do. The leader: it confirms its leadership with a quorum (ReadIndex)
    /// and waits until it applied everything committed before. A follower or learner: it asks
    /// the leader for its head the same way (a linearizable `GetHead`), then waits until its
    /// own head reaches that height. Codes: `E_NOT_LEADER` (no leader known),
    /// `E_READ_TIMEOUT` (not caught up within `api.request_timeout_ms`), `E_RAFT`,
    /// `E_FORWARD`.
    pub async fn linearize(&self) -> Result<(), ApiError> {
        let Some(c) = self.cluster.get() else {
            return Ok(());
        };
        let unavailable =
            |code: &'static str, m: String| ApiError::new(ErrorKind::Unavailable, code, m);
        if aurigraph_consensus::replica::is_leader(&c.raft) {
            return aurigraph_consensus::replica::ensure_linearizable(&c.raft)
                .await
                .map_err(|e| unavailable(e.code(), e.to_string()));
        }
        let s = aurigraph_consensus::replica::status(&c.raft);
        let Some(addr) = s
            .leader
            .filter(|l| *l != s.id)
            .and_then(|l| s.members.iter().find(|m| m.0 == l))
            .map(|m| m.1.clone())
        else {
            return Err(unavailable(
                "E_NOT_LEADER",
                "no leader is known to confirm a linearizable read: retry later".into(),
            ));
        };
        let channel = self.leader_channel(c, &addr)?;
        let head = crate::proto::query_client::QueryClient::new(channel)
            .get_head(crate::proto::GetHeadRequest {
                consistency: crate::proto::Consistency::Linearizable as i32,
            })
            .await
            .map_err(|status| {
                let code = status
                    .metadata()
                    .get(crate::error::CODE_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("E_FORWARD")
                    .to_string();
                ApiError::new(
                    ErrorKind::Unavailable,
                    code,
                    format!(
                        "the leader at {addr} did not confirm the read: {}",
                        status.message()
                    ),
                )
            })?
            .into_inner();
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.config.api.request_timeout_ms);
        while self.head().height < head.height {
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(
                    "E_READ_TIMEOUT",
                    format!(
                        "this replica is at height {}, the leader's read index is {}: it did not \
                         catch up within api.request_timeout_ms",
                        self.head().height,
                        head.height
                    ),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// On a follower of a cluster: the submission forwarded to the leader over gRPC, and the
    /// leader's answer (`Some`). `None` on the leader or a node alone. `E_NOT_LEADER` when no
    /// leader is known; `E_FORWARD` when the leader does not answer.
    pub(crate) fn forward_to_leader(
        &self,
        txs: &[Vec<u8>],
    ) -> Result<Option<Vec<SubmitItem>>, ApiError> {
        let Some(c) = self.cluster.get() else {
            return Ok(None);
        };
        if aurigraph_consensus::replica::is_leader(&c.raft) {
            return Ok(None);
        }
        let mut s = aurigraph_consensus::replica::status(&c.raft);
        // No leader known yet (an election, a replica that just joined), or this replica
        // believes it leads but no quorum confirmed it yet (just elected, or restarted with an
        // old term's vote): wait briefly for a confirmed leader rather than refuse at once,
        // take the submission, or forward it to itself.
        let mut waited = 0;
        while (s.leader.is_none() || s.leader == Some(s.id)) && waited < 40 {
            std::thread::sleep(std::time::Duration::from_millis(25));
            waited += 1;
            if aurigraph_consensus::replica::is_leader(&c.raft) {
                return Ok(None);
            }
            s = aurigraph_consensus::replica::status(&c.raft);
        }
        if s.leader == Some(s.id) {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "E_NOT_LEADER",
                "this replica's leadership is not confirmed by a quorum: retry",
            ));
        }
        let Some(addr) = s
            .leader
            .and_then(|l| s.members.iter().find(|m| m.0 == l))
            .map(|m| m.1.clone())
        else {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "E_NOT_LEADER",
                "this node is not the cluster's leader and knows of none yet: retry later",
            ));
        };
        let channel = self.leader_channel(c, &addr)?;
        let request = crate::proto::SubmitRequest {
            transactions: txs.to_vec(),
        };
        let answer = c.rt.block_on(async move {
            crate::proto::transactions_client::TransactionsClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20)
                .submit(request)
                .await
        });
        match answer {
            Ok(r) => Ok(Some(
                r.into_inner()
                    .results
                    .into_iter()
                    .map(|i| SubmitItem {
                        accepted: i.accepted,
                        hash: (!i.hash.is_empty()).then_some(i.hash),
                        code: (!i.code.is_empty()).then_some(i.code),
                        message: (!i.message.is_empty()).then_some(i.message),
                    })
                    .collect(),
            )),
            Err(status) => {
                let code = status
                    .metadata()
                    .get(crate::error::CODE_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("E_FORWARD")
                    .to_string();
                Err(ApiError::new(
                    ErrorKind::Unavailable,
                    code,
                    format!(
                        "forwarded to the leader at {addr}, which answered: {}",
                        status.message()
                    ),
                ))
            }
        }
    }

    /// Applies an operator's change to the cluster, through this node's replica (the leader:
    /// `E_NOT_LEADER` elsewhere). `E_NO_CLUSTER` on a node running alone.
    pub async fn change_cluster(&self, change: ClusterChange) -> Result<(), ApiError> {
        use aurigraph_consensus::replica::{self, MembershipChange, ReplicaError};
        let Some(c) = self.cluster.get() else {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "E_NO_CLUSTER",
                "this node runs alone: it has no cluster to change",
            ));
        };
        let result = match change {
            ClusterChange::AddLearner { id, addr } => {
                replica::change_membership(&c.raft, MembershipChange::AddLearner { id, addr }).await
            }
            ClusterChange::Promote(id) => {
                replica::change_membership(&c.raft, MembershipChange::Promote(id)).await
            }
            ClusterChange::Remove(id) => {
                replica::change_membership(&c.raft, MembershipChange::Remove(id)).await
            }
            ClusterChange::Transfer(id) => replica::transfer_leader(&c.raft, id).await,
        };
        result.map_err(|e| match e {
            ReplicaError::NotLeader { .. } => {
                ApiError::new(ErrorKind::Unavailable, "E_NOT_LEADER", e.to_string())
            }
            other => ApiError::new(ErrorKind::Conflict, other.code(), other.to_string()),
        })
    }

    /// Stops this node's replica (its Raft tasks), if it has one.
    pub(crate) async fn stop_replica(&self) {
        if let Some(c) = self.cluster.get()
            && let Err(e) = c.raft.shutdown().await
        {
            tracing::warn!(error = %e, "replica did not stop cleanly");
        }
    }

    /// Checks an admin bearer token (constant time in the token's length).
    pub fn check_admin(&self, header: Option<&str>) -> Result<(), ApiError> {
        let Some(h) = header else {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "E_UNAUTHENTICATED",
                "admin calls need `authorization: Bearer <token>`",
            ));
        };
        let given = h.strip_prefix("Bearer ").unwrap_or("").trim().as_bytes();
        let want = self.admin_token.as_bytes();
        let same = given.len() == want.len()
            && given
                .iter()
                .zip(want)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Unauthorized,
                "E_UNAUTHENTICATED",
                "the admin token is wrong",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurigraph_ledger::executor::TxStatus;

    #[test]
    fn names_and_values_are_parsed_or_refused_with_their_codes() {
        let h = "ab".repeat(32);
        assert_eq!(parse_hash(&h).map(|x| x.to_string()).ok(), Some(h.clone()));
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(parse_hash(bad).unwrap_err().code, "E_BAD_HASH", "{bad}");
            assert_eq!(
                parse_address(bad).unwrap_err().code,
                "E_BAD_ADDRESS",
                "{bad}"
            );
        }
        assert!(parse_address(&h).is_ok());
        assert_eq!(parse_backend("onnx").ok(), Some(BackendKind::Onnx));
        assert_eq!(parse_backend("wasm").ok(), Some(BackendKind::Wasm));
        let e = parse_backend("static").unwrap_err();
        assert_eq!(
            (e.code.as_ref(), e.kind),
            ("E_BAD_BACKEND", ErrorKind::BadRequest)
        );
        for s in SlotKind::ALL {
            assert_eq!(parse_slot(s.as_str()).ok(), Some(s));
        }
        assert_eq!(parse_slot("sorting").unwrap_err().code, "E_UNKNOWN_SLOT");
    }

    #[test]
    fn only_what_leaves_uncommitted_is_a_dropped_event_with_its_code() {
        let removed = |reason| Removed {
            hash: TxHash([3; 32]),
            sender: Address([4; 32]),
            nonce: 7,
            reason,
        };
        for (reason, code) in [
            (Removal::Evicted, "E_DROPPED_EVICTED"),
            (Removal::Replaced, "E_DROPPED_REPLACED"),
            (Removal::Stale, "E_DROPPED_STALE"),
            (Removal::Expired, "E_DROPPED_EXPIRED"),
        ] {
            let e = dropped_event(&removed(reason), 12).expect("a dropped event");
            assert_eq!((e.code.as_str(), e.height), (code, 12));
            assert_eq!(e.hash, TxHash([3; 32]));
        }
        assert!(
            dropped_event(&removed(Removal::Replaced), 0)
                .is_some_and(|e| e.reason.contains("nonce 7"))
        );
        // Committed and skipped transactions are in a block: no dropped event.
        assert!(dropped_event(&removed(Removal::Committed), 1).is_none());
        assert!(dropped_event(&removed(Removal::Skipped), 1).is_none());
    }

    #[test]
    fn a_receipt_shows_its_status_in_snake_case_and_its_code() {
        let r = Receipt {
            tx_hash: TxHash([1; 32]),
            status: TxStatus::Success,
            fee_charged: 10,
        };
        let info = ReceiptInfo::from(&r);
        assert_eq!(
            (info.status.as_str(), info.code.as_str(), info.fee_charged),
            ("success", "OK", 10)
        );
    }
}
