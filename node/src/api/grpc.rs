//! The gRPC services of package `aurigraph.v1` (tonic), over the same service code as the
//! REST mirror. Admin calls need the metadata entry `authorization: Bearer <token>`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;

use crate::error::{ApiError, CODE_METADATA, ErrorKind};
use crate::node::NodeCore;
use crate::proto;
use crate::service::{self, ModeRequest};

type Core = Arc<NodeCore>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("[E_INTERNAL] the call failed: {e}")))?
        .map_err(|e| e.to_status())
}

fn receipt(r: &service::ReceiptInfo) -> proto::Receipt {
    proto::Receipt {
        status: r.status.clone(),
        code: r.code.clone(),
        fee_charged: r.fee_charged,
    }
}

/// The gRPC router (all four services), with the overload and timeout limits answered as
/// gRPC statuses.
pub fn router(core: Core, slots: Arc<tokio::sync::Semaphore>) -> Router {
    let api = &core.config.api;
    let max_body = api.max_body_bytes;
    // One route per service, as tonic's own router lays them out; unknown paths fall to the
    // REST router's fallback (a gRPC client gets UNIMPLEMENTED from it).
    let routes = Router::new()
        .route_service(
            &path::<proto::query_server::QueryServer<QuerySvc>>(),
            proto::query_server::QueryServer::new(QuerySvc(core.clone())),
        )
        .route_service(
            &path::<proto::subscriptions_server::SubscriptionsServer<SubscriptionsSvc>>(),
            proto::subscriptions_server::SubscriptionsServer::new(SubscriptionsSvc(core.clone())),
        )
        .route_service(
            &path::<proto::admin_server::AdminServer<AdminSvc>>(),
            proto::admin_server::AdminServer::new(AdminSvc(core.clone())),
        );
    let shed = || {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(grpc_overload))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
                slots.clone(),
            ))
    };
    let timeout = Duration::from_millis(api.request_timeout_ms);
    // Submissions are not cut off by the timeout layer: cutting the answer would not stop the
    // admission running on its blocking thread, and a client told E_TIMEOUT could still have
    // its transactions accepted. `submit_before` refuses one that has not started in time.
    let transactions = Router::new()
        .route_service(
            &path::<proto::transactions_server::TransactionsServer<TransactionsSvc>>(),
            proto::transactions_server::TransactionsServer::new(TransactionsSvc(core.clone()))
                // The limit is enforced in `submit` (E_BODY_TOO_LARGE); tonic's own limit,
                // a few times higher, only bounds what is buffered (its OUT_OF_RANGE answer
                // is rewritten by `stable_codes`, though not always seen by the client).
                .max_decoding_message_size(max_body.saturating_mul(4)),
        )
        .layer(axum::middleware::map_response(stable_codes))
        .layer(shed());
    routes
        .layer(axum::middleware::map_response(stable_codes))
        .layer(shed().timeout(timeout))
        .merge(transactions)
}

fn path<S: tonic::server::NamedService>() -> String {
    format!("/{}/{{*rest}}", S::NAME)
}

async fn grpc_overload(err: axum::BoxError) -> axum::response::Response {
    let status = if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            ErrorKind::Overloaded,
            "E_OVERLOADED",
            "the node is serving as many requests as it allows: retry later",
        )
        .to_status()
    } else if err.is::<tower::timeout::error::Elapsed>() {
        with_code(
            Status::deadline_exceeded("[E_TIMEOUT] the request timed out"),
            "E_TIMEOUT",
        )
    } else {
        ApiError::internal("E_INTERNAL", err.to_string()).to_status()
    };
    grpc_response(status)
}

/// A trailers-only gRPC answer carrying `status` (and its metadata). The body must be
/// tonic's empty body, which reports its end at once: with axum's default body the HEADERS
/// frame goes out without END_STREAM and tonic clients lose the custom metadata
/// (`x-aurigraph-code`) of the status.
pub(crate) fn grpc_response(status: Status) -> axum::response::Response {
    let (parts, body) = status.into_http::<tonic::body::Body>().into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::new(body))
}

/// `status` with the stable `code` in its `x-aurigraph-code` metadata.
pub(crate) fn with_code(mut status: Status, code: &'static str) -> Status {
    status.metadata_mut().insert(
        CODE_METADATA,
        tonic::metadata::MetadataValue::from_static(code),
    );
    status
}

/// tonic refuses a request it cannot decode before any service code runs: malformed
/// protobuf as INTERNAL, a message over the size limit as OUT_OF_RANGE, both without a
/// stable code. Those answers become the node's refusals: `E_BAD_PROTOBUF` and
/// `E_BODY_TOO_LARGE`, INVALID_ARGUMENT (the client's fault, not the node's); an unknown
/// method of a known service becomes `E_NO_ROUTE` (UNIMPLEMENTED).
async fn stable_codes(resp: axum::response::Response) -> axum::response::Response {
    let headers = resp.headers();
    if headers.contains_key(CODE_METADATA) {
        return resp;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return resp;
    };
    let msg = status.message();
    let err = match status.code() {
        tonic::Code::Internal if msg.starts_with("failed to decode Protobuf message") => {
            ApiError::bad_request(
                "E_BAD_PROTOBUF",
                format!("the request is not a valid protobuf message for this method: {msg}"),
            )
        }
        tonic::Code::OutOfRange if msg.contains("message length too large") => {
            ApiError::new(ErrorKind::TooLarge, "E_BODY_TOO_LARGE", msg.to_string())
        }
        // A method the service does not have (tonic answers it with an empty message).
        tonic::Code::Unimplemented => {
            return grpc_response(with_code(
                Status::unimplemented("[E_NO_ROUTE] no such gRPC method in aurigraph.v1"),
                "E_NO_ROUTE",
            ));
        }
        _ => return resp,
    };
    grpc_response(err.to_status())
}

/// `aurigraph.v1.Transactions`.
#[derive(Debug, Clone)]
pub struct TransactionsSvc(pub Core);

#[tonic::async_trait]
impl proto::transactions_server::Transactions for TransactionsSvc {
    async fn submit(
        &self,
        req: Request<proto::SubmitRequest>,
    ) -> Result<Response<proto::SubmitResponse>, Status> {
        let core = self.0.clone();
        let txs = req.into_inner().transactions;
        let size: usize = txs.iter().map(Vec::len).sum();
        let limit = core.config.api.max_body_bytes;
        if size > limit {
            return Err(ApiError::new(
                ErrorKind::TooLarge,
                "E_BODY_TOO_LARGE",
                format!("{size} bytes of transactions in one request; at most {limit}"),
            )
            .to_status());
        }
        let deadline =
            std::time::Instant::now() + Duration::from_millis(core.config.api.request_timeout_ms);
        let items = blocking(move || core.submit_before(Some(deadline), &txs)).await?;
        let accepted = items.iter().filter(|i| i.accepted).count() as u32;
        Ok(Response::new(proto::SubmitResponse {
            results: items
                .into_iter()
                .map(|i| proto::SubmitResult {
                    accepted: i.accepted,
                    hash: i.hash.unwrap_or_default(),
                    code: i.code.unwrap_or_default(),
                    message: i.message.unwrap_or_default(),
                })
                .collect(),
            accepted,
        }))
    }

    async fn get_transaction(
        &self,
        req: Request<proto::GetTransactionRequest>,
    ) -> Result<Response<proto::TransactionInfo>, Status> {
        let core = self.0.clone();
        let req = req.into_inner();
        read_consistency(&core, req.consistency).await?;
        let hash = req.hash;
        let t = blocking(move || core.transaction(&hash)).await?;
        Ok(Response::new(proto::TransactionInfo {
            hash: t.hash,
            state: t.state,
            sender: t.sender,
            nonce: t.nonce,
            fee: t.fee,
            block_height: t.block_height.unwrap_or(0),
            index: t.index.unwrap_or(0),
            receipt: t.receipt.as_ref().map(receipt),
            encoded: hex::decode(&t.encoded).unwrap_or_default(),
            drop_code: t.code.unwrap_or_default(),
            drop_reason: t.reason.unwrap_or_default(),
            dropped_height: t.dropped_height.unwrap_or(0),
        }))
    }
}

/// `aurigraph.v1.Query`.
#[derive(Debug, Clone)]
pub struct QuerySvc(pub Core);

#[tonic::async_trait]
impl proto::query_server::Query for QuerySvc {
    async fn get_block(
        &self,
        req: Request<proto::GetBlockRequest>,
    ) -> Result<Response<proto::Block>, Status> {
        let core = self.0.clone();
        let req = req.into_inner();
        read_consistency(&core, req.consistency).await?;
        let height = req.height;
        let b = blocking(move || core.block(height)).await?;
        Ok(Response::new(proto::Block {
            height: b.height,
            hash: b.hash,
            parent_hash: b.parent_hash,
            state_root: b.state_root,
            timestamp_ms: b.timestamp_ms,
            transactions: b
                .transactions
                .iter()
                .map(|t| proto::BlockTransaction {
                    hash: t.hash.clone(),
                    sender: t.sender.clone(),
                    nonce: t.nonce,
                    fee: t.fee,
                    receipt: Some(receipt(&t.receipt)),
                })
                .collect(),
        }))
    }

    async fn get_account(
        &self,
        req: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let core = self.0.clone();
        let req = req.into_inner();
        read_consistency(&core, req.consistency).await?;
        let address = req.address;
        let a = blocking(move || core.account(&address)).await?;
        Ok(Response::new(proto::Account {
            address: a.address,
            balance: a.balance,
            nonce: a.nonce,
            next_nonce: a.next_nonce,
        }))
    }

    async fn get_head(
        &self,
        req: Request<proto::GetHeadRequest>,
    ) -> Result<Response<proto::Head>, Status> {
        read_consistency(&self.0, req.into_inner().consistency).await?;
        let h = self.0.head_info();
        Ok(Response::new(proto::Head {
            height: h.height,
            hash: h.hash,
            state_root: h.state_root,
            chain_id: h.chain_id,
        }))
    }
}

/// Waits, for a read with `CONSISTENCY_LINEARIZABLE`, until this node's state may answer it
/// (see [`NodeCore::linearize`]); an unknown value is `E_BAD_CONSISTENCY`.
async fn read_consistency(core: &NodeCore, consistency: i32) -> Result<(), Status> {
    let ready = match proto::Consistency::try_from(consistency) {
        Ok(proto::Consistency::Local) => Ok(()),
        Ok(proto::Consistency::Linearizable) => core.linearize().await,
        Err(_) => Err(ApiError::bad_request(
            "E_BAD_CONSISTENCY",
            format!("consistency {consistency}: CONSISTENCY_LOCAL or CONSISTENCY_LINEARIZABLE"),
        )),
    };
    ready.map_err(|e| e.to_status())
}

/// `aurigraph.v1.Subscriptions`.
#[derive(Debug, Clone)]
pub struct SubscriptionsSvc(pub Core);

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;

/// One gRPC subscription's state: its receivers, what is queued to send, and its slot.
struct Subscription {
    blocks_rx: tokio::sync::broadcast::Receiver<Arc<crate::node::BlockEvent>>,
    drops_rx: tokio::sync::broadcast::Receiver<Arc<Vec<crate::node::DroppedEvent>>>,
    queue: std::collections::VecDeque<proto::Event>,
    done: bool,
    _permit: service::SubscriberPermit,
}

/// The status that ends a subscription that fell behind (`E_LAGGED`, DATA_LOSS).
fn lagged(n: u64, what: &str) -> Status {
    with_code(
        Status::data_loss(format!(
            "[E_LAGGED] the subscriber fell {n} {what} behind and was disconnected; subscribe again"
        )),
        "E_LAGGED",
    )
}

#[tonic::async_trait]
impl proto::subscriptions_server::Subscriptions for SubscriptionsSvc {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        req: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = req.into_inner();
        let (blocks, txs) = if !r.blocks && !r.transactions {
            (true, false)
        } else {
            (r.blocks, r.transactions)
        };
        let permit = self.0.subscriber_permit().map_err(|e| e.to_status())?;
        let state = Subscription {
            blocks_rx: self.0.subscribe(),
            drops_rx: self.0.subscribe_dropped(),
            queue: std::collections::VecDeque::new(),
            done: false,
            _permit: permit,
        };
        let stream = futures_util::stream::unfold(state, move |mut st| async move {
            loop {
                if let Some(e) = st.queue.pop_front() {
                    return Some((Ok(e), st));
                }
                if st.done {
                    return None;
                }
                tokio::select! {
                    b = st.blocks_rx.recv() => match b {
                        Ok(b) => {
                            if blocks {
                                st.queue.push_back(proto::Event {
                                    event: Some(proto::event::Event::Block(proto::BlockEvent {
                                        height: b.height,
                                        hash: hex::encode(b.hash),
                                        state_root: b.state_root.to_string(),
                                        tx_count: b.receipts.len() as u32,
                                    })),
                                });
                            }
                            if txs {
                                for r in &b.receipts {
                                    let info = service::ReceiptInfo::from(r);
                                    st.queue.push_back(proto::Event {
                                        event: Some(proto::event::Event::Transaction(
                                            proto::TransactionEvent {
                                                hash: r.tx_hash.to_string(),
                                                block_height: b.height,
                                                receipt: Some(receipt(&info)),
                                            },
                                        )),
                                    });
                                }
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            // A subscriber that cannot keep up is disconnected: its buffer
                            // (the channel's capacity) is bounded and events were lost.
                            st.done = true;
                            return Some((Err(lagged(n, "blocks")), st));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    d = st.drops_rx.recv(), if txs => match d {
                        Ok(d) => {
                            for e in d.iter() {
                                st.queue.push_back(proto::Event {
                                    event: Some(proto::event::Event::Dropped(proto::DroppedEvent {
                                        hash: e.hash.to_string(),
                                        code: e.code.clone(),
                                        reason: e.reason.clone(),
                                        height: e.height,
                                    })),
                                });
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            st.done = true;
                            return Some((Err(lagged(n, "drop announcements")), st));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// `aurigraph.v1.Admin`.
#[derive(Debug, Clone)]
pub struct AdminSvc(pub Core);

impl AdminSvc {
    fn auth<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let h = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.0.check_admin(h).map_err(|e| e.to_status())
    }
}

fn slot_state(s: &aurigraph_decision::host::SlotStatus) -> proto::SlotState {
    proto::SlotState {
        slot: s.slot.to_string(),
        mode: s.mode.to_string(),
        baseline: s.baseline.to_string(),
        candidate: s
            .candidate
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        baseline_decisions: s.baseline_totals.decisions,
        baseline_fallbacks: s.baseline_totals.fallbacks,
        candidate_decisions: s.candidate_totals.decisions,
        candidate_fallbacks: s.candidate_totals.fallbacks,
        circuit_open: s.circuit_open,
        last_rollback: s.last_rollback.clone().unwrap_or_default(),
        detail_json: serde_json::to_string(s).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminSvc {
    async fn list_slots(
        &self,
        req: Request<proto::ListSlotsRequest>,
    ) -> Result<Response<proto::ListSlotsResponse>, Status> {
        self.auth(&req)?;
        Ok(Response::new(proto::ListSlotsResponse {
            slots: self.0.slots().iter().map(slot_state).collect(),
        }))
    }

    async fn status(
        &self,
        req: Request<proto::SlotRequest>,
    ) -> Result<Response<proto::SlotState>, Status> {
        self.auth(&req)?;
        let s = self
            .0
            .slot_status(&req.into_inner().slot)
            .map_err(|e| e.to_status())?;
        Ok(Response::new(slot_state(&s)))
    }

    async fn load(
        &self,
        req: Request<proto::LoadRequest>,
    ) -> Result<Response<proto::SlotState>, Status> {
        self.auth(&req)?;
        let core = self.0.clone();
        let r = req.into_inner();
        let backend = if r.backend.is_empty() {
            "onnx".to_string()
        } else {
            r.backend
        };
        let s = blocking(move || core.load(&r.slot, &backend, &r.name, &r.version)).await?;
        Ok(Response::new(slot_state(&s)))
    }

    async fn set_mode(
        &self,
        req: Request<proto::SetModeRequest>,
    ) -> Result<Response<proto::SlotState>, Status> {
        self.auth(&req)?;
        let r = req.into_inner();
        let mode = match r.mode.as_str() {
            "off" => ModeRequest::Off,
            "shadow" => ModeRequest::Shadow,
            "canary" => ModeRequest::Canary(r.percent),
            other => {
                return Err(ApiError::bad_request(
                    "E_BAD_MODE",
                    format!("mode `{other}`: expected off, shadow or canary"),
                )
                .to_status());
            }
        };
        let s = self.0.set_mode(&r.slot, mode).map_err(|e| e.to_status())?;
        Ok(Response::new(slot_state(&s)))
    }

    async fn set_schedule(
        &self,
        req: Request<proto::SetScheduleRequest>,
    ) -> Result<Response<proto::SlotState>, Status> {
        self.auth(&req)?;
        let r = req.into_inner();
        let s = self
            .0
            .set_schedule(&r.slot, &r.percents, r.min_decisions)
            .map_err(|e| e.to_status())?;
        Ok(Response::new(slot_state(&s)))
    }

    async fn promote(
        &self,
        req: Request<proto::SlotRequest>,
    ) -> Result<Response<proto::SlotState>, Status> {
        self.auth(&req)?;
        let s = self
            .0
            .promote(&req.into_inner().slot)
            .map_err(|e| e.to_status())?;
        Ok(Response::new(slot_state(&s)))
    }

    async fn rollback(
        &self,
        req: Request<proto::RollbackRequest>,
    ) -> Result<Response<proto::SlotState>, Status> {
        self.auth(&req)?;
        let r = req.into_inner();
        let s = self
            .0
            .rollback(&r.slot, &r.reason)
            .map_err(|e| e.to_status())?;
        Ok(Response::new(slot_state(&s)))
    }
}
