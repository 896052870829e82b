//! HTTP routes: `POST /validate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Errors are answered with a Kubernetes `Status` object: the API server shows
//! its message when a webhook call fails, so the operator reads why.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use crate::admission::{self, Answer};
use crate::server::audit;
use crate::server::body::{self, BodyError};
use crate::server::metrics::ErrorKind;
use crate::server::state::AppState;

/// Above the API server's ~3 MiB object limit, with room for an UPDATE's old and
/// new object in one review.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn validate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let _in_flight = state.metrics.in_flight();
    // The body is read inside the timeout, so a client that sends it slowly is cut off too.
    match tokio::time::timeout(state.request_timeout, review(&state, request, started)).await {
        Ok(response) => response,
        Err(_) => {
            state.metrics.error(ErrorKind::Timeout);
            let limit = humantime::format_duration(state.request_timeout);
            tracing::warn!("a review did not finish within the {limit} request timeout");
            status(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "defender: the review did not finish within the {limit} request timeout \
                     (was the request body sent too slowly?)"
                ),
            )
        }
    }
}

async fn review(state: &AppState, request: Request, started: Instant) -> Response {
    let declared = declared_length(request.headers());
    let body = match body::read_limited(request.into_body(), declared, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(state),
        Err(error) => {
            state.metrics.error(ErrorKind::BodyRead);
            tracing::debug!("{error}");
            return status(StatusCode::BAD_REQUEST, format!("defender: {error}"));
        }
    };
    let engine = state.engine.get();
    let context = engine
        .context(state.clock.now(), state.view.as_ref())
        .with_own_namespace(state.own_namespace.as_deref());
    match admission::judge(&body, &engine, &context) {
        Answer::Judged { request, decision, review } => {
            let latency = started.elapsed();
            state.metrics.review(&request, &decision, latency);
            audit::decision(&request, &decision, latency);
            if let Some(events) = &state.events {
                events.record(&request, &decision);
            }
            Json(review).into_response()
        }
        Answer::Malformed(error) => {
            state.metrics.error(ErrorKind::MalformedReview);
            tracing::warn!("rejected a body that is not an AdmissionReview: {error}");
            status(StatusCode::BAD_REQUEST, format!("defender: {error}"))
        }
        Answer::Unjudgeable { error, review } => {
            state.metrics.error(ErrorKind::InvalidReview);
            tracing::warn!("cannot judge an AdmissionReview: {error}");
            Json(review).into_response()
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large(state: &AppState) -> Response {
    state.metrics.error(ErrorKind::BodyTooLarge);
    tracing::warn!("refused a request body over {} MiB", MAX_BODY_BYTES >> 20);
    status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "defender: the request body is over {} MiB; an AdmissionReview from the API server never is \
             (it caps objects near 3 MiB)",
            MAX_BODY_BYTES >> 20
        ),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let unsynced = state.view.unsynced();
    if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n").into_response()
    } else if !unsynced.is_empty() {
        let waiting = format!("not ready: the cluster view has not listed {} yet\n", unsynced.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, waiting).into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => {
            let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        Err(error) => {
            tracing::error!("cannot encode metrics: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    status(
        StatusCode::NOT_FOUND,
        format!("defender: no route for {method} {}; the webhook path is POST /validate", uri.path()),
    )
}

/// A `metav1.Status` failure, the error body Kubernetes clients know how to read.
fn status(code: StatusCode, message: String) -> Response {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}
