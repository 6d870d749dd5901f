//! The HTTP side: the JSON mirror of the gRPC API under `/v1`, the `/v1/subscribe`
//! WebSocket, and `/healthz`, `/readyz`, `/metrics`.
//!
//! Every error answer is `{"error": {"code": "E_...", "message": "..."}}` with the status of
//! its kind ([`ApiError::http_status`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tower::ServiceBuilder;

use crate::error::{ApiError, ErrorKind};
use crate::node::NodeCore;
use crate::service::ModeRequest;

type Core = State<Arc<NodeCore>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// Runs blocking service code off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("E_INTERNAL", format!("the call failed: {e}")))?
}

/// The HTTP router.
pub fn router(core: Arc<NodeCore>, slots: Arc<tokio::sync::Semaphore>) -> Router {
    let api = &core.config.api;
    let shed = || {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(overload_error))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
                slots.clone(),
            ))
    };
    let body_limit = api.max_body_bytes;
    // Submissions are not cut off by the timeout layer (see `submit`).
    let submissions = Router::new()
        .route("/v1/transactions", post(submit))
        .layer(shed())
        .layer(DefaultBodyLimit::max(body_limit));
    let v1 = Router::new()
        .route("/v1/transactions/{hash}", get(transaction))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/head", get(head))
        .route("/v1/scaling", get(scaling))
        .route("/v1/cluster", get(cluster))
        .route("/v1/cluster/{action}", post(cluster_action))
        .route("/v1/admin/faults", get(faults).post(inject_fault))
        .route("/v1/policies", get(policies))
        .route("/v1/policies/{slot}", get(policy))
        .route("/v1/policies/{slot}/{action}", post(policy_action))
        .route("/metrics", get(metrics))
        .layer(shed().timeout(Duration::from_millis(api.request_timeout_ms)))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/subscribe", get(subscribe))
        .merge(submissions)
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(core)
}

async fn overload_error(err: BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            ErrorKind::Overloaded,
            "E_OVERLOADED",
            "the node is serving as many requests as it allows: retry later",
        )
    } else if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(ErrorKind::Unavailable, "E_TIMEOUT", "the request timed out")
    } else {
        ApiError::internal("E_INTERNAL", err.to_string())
    }
}

async fn not_found(headers: HeaderMap) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"));
    if grpc {
        crate::api::grpc::grpc_response(crate::api::grpc::with_code(
            tonic::Status::unimplemented("[E_NO_ROUTE] no such gRPC method in aurigraph.v1"),
            "E_NO_ROUTE",
        ))
    } else {
        ApiError::not_found("E_NO_ROUTE", "no such endpoint; the API is under /v1").into_response()
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        "E_METHOD_NOT_ALLOWED",
        "this endpoint does not take that HTTP method",
    )
}

/// `GET /v1/cluster`: this replica's view of the cluster, or `{"enabled": false}` for a node
/// running alone.
async fn cluster(State(core): Core) -> Response {
    match core.cluster_status() {
        Some(s) => Json(json!({
            "enabled": true,
            "id": s.id,
            "role": core.config.cluster.role.as_str(),
            "leader": s.leader,
            "term": s.term,
            "state": s.state,
            "last_applied": s.last_applied,
            "last_log": s.last_log,
            "height": core.head().height,
            "state_root": core.head().state_root.to_string(),
            "members": s.members.iter().map(|(id, addr)| json!({"id": id, "url": format!("http://{addr}")})).collect::<Vec<_>>(),
            "stopped": s.stopped,
            "leader_health": core.leader_health().map(|h| json!({
                "probability": h.probability,
                "answered_by": h.answered_by,
                "self_scored": h.self_scored,
                "handovers": h.handovers,
                "last_handover": h.last_handover,
                "ticks": h.ticks,
                "features": h.features,
                "rtt_p99_ms": h.rtt_p99_ms,
                "typical_rtt_p99_ms": h.typical_rtt_p99_ms,
                "timing": h.timing,
                "derived_timing": h.derived_timing,
            })),
        }))
        .into_response(),
        None => Json(json!({"enabled": false})).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ClusterBody {
    id: Option<u64>,
    addr: Option<String>,
}

/// Checks the admin bearer token of a request's `authorization` header.
fn check_admin(core: &NodeCore, headers: &HeaderMap) -> Result<(), ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    core.check_admin(auth)
}

/// `POST /v1/cluster/{learner|promote|remove|transfer}` (admin): `{"id", "addr"}` for a new
/// learner, `{"id"}` for the others. Answered by the leader (`E_NOT_LEADER` elsewhere).
async fn cluster_action(
    State(core): Core,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    check_admin(&core, &headers)?;
    let bytes = body_bytes(body)?;
    let b: ClusterBody = parse_json(&bytes)?;
    let id =
        b.id.ok_or_else(|| ApiError::bad_request("E_MISSING_FIELD", "the field `id` is required"))?;
    let change = match action.as_str() {
        "learner" => {
            let addr = b.addr.ok_or_else(|| {
                ApiError::bad_request("E_MISSING_FIELD", "`learner` needs the field `addr`")
            })?;
            crate::service::ClusterChange::AddLearner { id, addr }
        }
        "promote" => crate::service::ClusterChange::Promote(id),
        "remove" => crate::service::ClusterChange::Remove(id),
        "transfer" => crate::service::ClusterChange::Transfer(id),
        other => {
            return Err(ApiError::not_found(
                "E_UNKNOWN_ACTION",
                format!("no cluster action `{other}`: learner, promote, remove, transfer"),
            ));
        }
    };
    core.change_cluster(change).await?;
    Ok(cluster(State(core)).await)
}

/// `GET /v1/admin/faults` (admin): the injected faults active (tests and chaos runs only).
async fn faults(State(core): Core, headers: HeaderMap) -> Result<Response, ApiError> {
    check_admin(&core, &headers)?;
    let active = core.active_faults()?;
    Ok(Json(json!({ "active": active })).into_response())
}

/// `POST /v1/admin/faults` (admin): injects a fault into this node, `{"kind": ...}` (see
/// [`crate::faults`]); tests and chaos runs only.
async fn inject_fault(
    State(core): Core,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    check_admin(&core, &headers)?;
    core.active_faults()?;
    let bytes = body_bytes(body)?;
    let spec: crate::faults::FaultSpec = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("E_BAD_FAULT", format!("not a fault: {e}")))?;
    let active = core.inject_fault(spec)?;
    Ok(Json(json!({ "active": active })).into_response())
}

async fn readyz(State(core): Core) -> Response {
    if core.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(core): Core) -> Response {
    core.refresh_scrape_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        core.metrics.encode(),
    )
        .into_response()
}

/// The body of `POST /v1/transactions`: one hex string, a list of them, or
/// `{"transactions": [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SubmitBody {
    One(String),
    Many(Vec<String>),
    Wrapped { transactions: Vec<String> },
}

fn body_bytes(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorKind::TooLarge, "E_BODY_TOO_LARGE", e.body_text())
        } else {
            ApiError::bad_request("E_BAD_BODY", e.body_text())
        }
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("E_BAD_JSON", format!("malformed JSON body: {e}")))
}

async fn submit(
    State(core): Core,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let parsed: SubmitBody = parse_json(&bytes)?;
    let (single, hexes) = match parsed {
        SubmitBody::One(h) => (true, vec![h]),
        SubmitBody::Many(v) | SubmitBody::Wrapped { transactions: v } => (false, v),
    };
    let mut txs = Vec::with_capacity(hexes.len());
    for (i, h) in hexes.iter().enumerate() {
        txs.push(hex::decode(h.trim()).map_err(|e| {
            ApiError::bad_request("E_BAD_HEX", format!("transaction {i} is not hex: {e}"))
        })?);
    }
    // Not cut off by a timeout layer: a submission that has started runs to its answer (the
    // admission on the blocking thread would not stop), and one that cannot start within
    // `api.request_timeout_ms` is refused with E_TIMEOUT having done nothing.
    let deadline =
        std::time::Instant::now() + Duration::from_millis(core.config.api.request_timeout_ms);
    let items = blocking(move || core.submit_before(Some(deadline), &txs)).await?;
    if single
        && let Some(item) = items.first()
        && !item.accepted
    {
        // One transaction refused: the refusal is the answer.
        let code = item.code.clone().unwrap_or_default();
        let kind = match code.as_str() {
            "E_MEMPOOL_FULL" | "E_SENDER_LIMIT" => ErrorKind::Overloaded,
            "E_COMMIT_PENDING" => ErrorKind::Unavailable,
            _ => ErrorKind::BadRequest,
        };
        return Err(ApiError::new(
            kind,
            code,
            item.message.clone().unwrap_or_default(),
        ));
    }
    let accepted = items.iter().filter(|i| i.accepted).count();
    Ok(Json(json!({"accepted": accepted, "results": items})).into_response())
}

/// `?consistency=local|linearizable` of a read (default `local`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ReadQuery {
    consistency: Option<String>,
}

/// Waits, when the read asks for `consistency=linearizable`, until this node's state may
/// answer it (see [`NodeCore::linearize`]). `E_BAD_CONSISTENCY` for another value.
async fn read_consistency(core: &NodeCore, q: &ReadQuery) -> Result<(), ApiError> {
    match q.consistency.as_deref() {
        None | Some("local") => Ok(()),
        Some("linearizable") => core.linearize().await,
        Some(other) => Err(ApiError::bad_request(
            "E_BAD_CONSISTENCY",
            format!("consistency `{other}`: local or linearizable"),
        )),
    }
}

async fn transaction(
    State(core): Core,
    Path(hash): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    read_consistency(&core, &q).await?;
    let info = blocking(move || core.transaction(&hash)).await?;
    Ok(Json(info).into_response())
}

async fn block(
    State(core): Core,
    Path(height): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request("E_BAD_HEIGHT", format!("`{height}` is not a height"))
    })?;
    read_consistency(&core, &q).await?;
    let info = blocking(move || core.block(height)).await?;
    Ok(Json(info).into_response())
}

async fn account(
    State(core): Core,
    Path(address): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    read_consistency(&core, &q).await?;
    let info = blocking(move || core.account(&address)).await?;
    Ok(Json(info).into_response())
}

async fn head(State(core): Core, Query(q): Query<ReadQuery>) -> Result<Response, ApiError> {
    read_consistency(&core, &q).await?;
    Ok(Json(core.head_info()).into_response())
}

/// `GET /v1/scaling`: the last scaling advice (200 with the reason `no_forecast` before the
/// first `demand` forecast); see [`crate::scaling`].
async fn scaling(State(core): Core) -> Response {
    let status = core.scaling.lock().status();
    Json(status).into_response()
}

async fn policies(State(core): Core) -> Response {
    let mut slots = serde_json::to_value(core.slots()).unwrap_or_default();
    for s in slots.as_array_mut().into_iter().flatten() {
        let name = s["slot"].as_str().unwrap_or_default().to_string();
        if let Ok(view) = core.retrain_view(&name) {
            s["retrain"] = serde_json::to_value(view).unwrap_or_default();
        }
    }
    Json(json!({"slots": slots})).into_response()
}

/// One slot's state, with its retrain state (the closed loop) under `retrain`.
async fn policy(State(core): Core, Path(slot): Path<String>) -> Result<Response, ApiError> {
    let mut v = serde_json::to_value(core.slot_status(&slot)?).unwrap_or_default();
    v["retrain"] = serde_json::to_value(core.retrain_view(&slot)?).unwrap_or_default();
    Ok(Json(v).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ActionBody {
    backend: Option<String>,
    name: Option<String>,
    version: Option<String>,
    percent: Option<f64>,
    percents: Option<Vec<f64>>,
    min_decisions: Option<u64>,
    reason: Option<String>,
}

fn required<'a>(v: &'a Option<String>, field: &str, action: &str) -> Result<&'a str, ApiError> {
    v.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "E_MISSING_FIELD",
            format!("`{action}` needs the field `{field}`"),
        )
    })
}

async fn policy_action(
    State(core): Core,
    Path((slot, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    check_admin(&core, &headers)?;
    if action == "train" {
        // The closed loop: trains in a child process, answers at once with what started.
        let started = blocking(move || core.train(&slot)).await?;
        return Ok((axum::http::StatusCode::ACCEPTED, Json(started)).into_response());
    }
    let bytes = body_bytes(body)?;
    let b: ActionBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        parse_json(&bytes)?
    };
    let status = blocking(move || match action.as_str() {
        "load" => core.load(
            &slot,
            b.backend.as_deref().unwrap_or("onnx"),
            required(&b.name, "name", "load")?,
            required(&b.version, "version", "load")?,
        ),
        "shadow" => core.set_mode(&slot, ModeRequest::Shadow),
        "off" => core.set_mode(&slot, ModeRequest::Off),
        "canary" => {
            let p = b.percent.ok_or_else(|| {
                ApiError::bad_request("E_MISSING_FIELD", "`canary` needs the field `percent`")
            })?;
            core.set_mode(&slot, ModeRequest::Canary(p))
        }
        "schedule" => {
            let p = b.percents.clone().ok_or_else(|| {
                ApiError::bad_request("E_MISSING_FIELD", "`schedule` needs the field `percents`")
            })?;
            core.set_schedule(&slot, &p, b.min_decisions.unwrap_or(200))
        }
        "promote" => core.promote(&slot),
        "rollback" => core.rollback(&slot, b.reason.as_deref().unwrap_or("operator")),
        other => Err(ApiError::not_found(
            "E_UNKNOWN_ACTION",
            format!(
                "unknown action `{other}`; actions: load, shadow, off, canary, schedule, \
                 promote, rollback, train"
            ),
        )),
    })
    .await?;
    Ok(Json(status).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SubscribeQuery {
    transactions: bool,
}

async fn subscribe(
    State(core): Core,
    Query(q): Query<SubscribeQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let permit = core.subscriber_permit()?;
    // Subscribe before the upgrade answers, so a client that submits once its handshake
    // completes sees the block of that transaction.
    let rx = core.subscribe();
    let drops = core.subscribe_dropped();
    let send_timeout = Duration::from_millis(core.config.api.request_timeout_ms);
    Ok(ws.on_upgrade(move |socket| async move {
        stream_events(rx, drops, socket, q.transactions, send_timeout).await;
        drop(permit);
    }))
}

/// Why a subscription is closed by the node: a JSON `error` message, then a close frame with
/// code 1008 (policy) and the stable code as its reason.
async fn close_with(socket: &mut WebSocket, code: &str, message: String) {
    let m = json!({"type": "error", "code": code, "message": message});
    let _ = socket.send(Message::Text(m.to_string().into())).await;
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1008,
            reason: code.to_string().into(),
        })))
        .await;
}

async fn stream_events(
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::node::BlockEvent>>,
    mut drops: tokio::sync::broadcast::Receiver<Arc<Vec<crate::node::DroppedEvent>>>,
    mut socket: WebSocket,
    transactions: bool,
    send_timeout: Duration,
) {
    loop {
        let msgs = tokio::select! {
            ev = rx.recv() => match ev {
                Ok(b) => {
                    let mut v = vec![json!({
                        "type": "block",
                        "height": b.height,
                        "hash": hex::encode(b.hash),
                        "state_root": b.state_root.to_string(),
                        "tx_count": b.receipts.len(),
                    })];
                    if transactions {
                        v.extend(b.receipts.iter().map(|r| json!({
                            "type": "transaction",
                            "hash": r.tx_hash.to_string(),
                            "block_height": b.height,
                            "receipt": crate::service::ReceiptInfo::from(r),
                        })));
                    }
                    v
                }
                Err(RecvError::Lagged(n)) => {
                    // Its buffer (the channel's capacity) is bounded: a subscriber that
                    // fell behind lost events and is disconnected.
                    let msg = format!("the subscriber fell {n} blocks behind and was disconnected; subscribe again");
                    close_with(&mut socket, "E_LAGGED", msg).await;
                    return;
                }
                Err(RecvError::Closed) => break,
            },
            d = drops.recv(), if transactions => match d {
                Ok(d) => d.iter().map(|e| json!({
                    "type": "dropped",
                    "hash": e.hash.to_string(),
                    "code": e.code,
                    "reason": e.reason,
                    "height": e.height,
                })).collect(),
                Err(RecvError::Lagged(n)) => {
                    let msg = format!("the subscriber fell {n} drop announcements behind and was disconnected; subscribe again");
                    close_with(&mut socket, "E_LAGGED", msg).await;
                    return;
                }
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
        };
        for m in msgs {
            // A client that does not read is disconnected rather than holding the stream.
            match tokio::time::timeout(
                send_timeout,
                socket.send(Message::Text(m.to_string().into())),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
}
