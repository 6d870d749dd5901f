//! The node's API on one address: gRPC (package `aurigraph.v1`, HTTP/2) and HTTP/1.1 JSON
//! (`/v1` mirror, `/v1/subscribe` WebSocket, `/healthz`, `/readyz`, `/metrics`), one axum
//! router. Both call [`crate::service`]; limits come from tower layers:
//!
//! - a request body above `api.max_body_bytes`: 413 `E_BODY_TOO_LARGE` / INVALID_ARGUMENT;
//! - more than `api.max_concurrent_requests` requests at once: refused at once, 429
//!   `E_OVERLOADED` / RESOURCE_EXHAUSTED (load shedding, no queue that grows);
//! - a request slower than `api.request_timeout_ms`: 503 `E_TIMEOUT` over HTTP / DEADLINE_EXCEEDED
//!   over gRPC. Submissions are the exception: the timeout layer does not cut them off (that
//!   would not stop the admission running on its blocking thread); one that cannot start
//!   within the timeout is refused with `E_TIMEOUT` having done nothing, and one that started
//!   runs to its answer;
//! - more than `api.max_subscribers` subscriptions: `E_TOO_MANY_SUBSCRIBERS`.

pub mod grpc;
pub mod rest;

use std::sync::Arc;

use axum::Router;

use crate::node::NodeCore;

/// The whole API router. One semaphore bounds the requests in service across every route
/// and both protocols (`api.max_concurrent_requests`).
pub fn router(core: Arc<NodeCore>) -> Router {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        core.config.api.max_concurrent_requests,
    ));
    let grpc = grpc::router(core.clone(), slots.clone());
    let metrics = core.metrics.clone();
    rest::router(core, slots)
        .merge(grpc)
        .layer(axum::middleware::from_fn(move |req, next| {
            timed(metrics.clone(), req, next)
        }))
}

/// Observes each request's duration (to the response's head) in
/// `aurigraph_http_request_duration_seconds{method, route, status}`.
async fn timed(
    metrics: crate::metrics::NodeMetrics,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    metrics.http_request(
        crate::metrics::HttpLabels {
            method,
            route,
            status: response.status().as_u16().to_string(),
        },
        started.elapsed(),
    );
    response
}
