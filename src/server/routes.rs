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

use crate::admission::ReviewResponse;
use crate::clock;
use crate::server::audit;
use crate::server::body::{self, BodyError};
use crate::server::judging::{self, Judgement, Unfinished};
use crate::server::memory::Shed;
use crate::server::metrics::ErrorKind;
use crate::server::state::AppState;

/// The largest AdmissionReview a real API server can send, with room to spare.
///
/// The API server refuses request bodies over 3 MiB (`--max-request-body-bytes`),
/// so an object as a client sends it is at most 3 MiB. It reaches Defender
/// re-encoded by Go's encoding/json, which writes `<`, `>`, `&`, U+2028, U+2029,
/// control characters and invalid UTF-8 as six-byte `\uXXXX` escapes: at most six
/// bytes for each byte received. An UPDATE carries two objects (the new one and
/// the stored one), so 2 × 6 × 3 MiB = 36 MiB. The rest (the review's envelope,
/// defaults the API server fills in, managedFields, whose keys are names
/// Kubernetes restricts to characters the encoder never escapes) fits in the
/// 4 MiB above that. Memory is bounded by the shared buffer cap, not by this.
pub const MAX_BODY_BYTES: usize = 40 * 1024 * 1024;

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
    // The body is read within the deadline, so a client that sends it slowly is cut off too.
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    let mut reservation = state.holdings.buffer();
    let declared = declared_length(request.headers());
    let read = body::read_limited(request.into_body(), declared, MAX_BODY_BYTES, &mut reservation);
    let body = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => return too_large(&state),
        Ok(Err(BodyError::Shed(reason))) => return shed(&state, reason),
        Ok(Err(error)) => {
            state.metrics.error(ErrorKind::BodyRead);
            tracing::debug!("{error}");
            return status(StatusCode::BAD_REQUEST, format!("defender: {error}"));
        }
        Err(_) => return timed_out(&state),
    };
    let slot = match state.holdings.judge() {
        Ok(slot) => slot,
        Err(reason) => return shed(&state, reason),
    };
    let held = judging::Held { reservation, slot };
    match judging::judge(&state, body, held, deadline).await {
        Judgement::Judged { request, decision, review } => {
            let latency = started.elapsed();
            state.metrics.review(&request, &decision, latency);
            audit::decision(&request, &decision, latency);
            if let Some(events) = &state.events {
                events.record(&request, &decision);
            }
            reply(&review)
        }
        Judgement::Unfinished { request, answer, why } => {
            state.metrics.unfinished(answer.verdict);
            match why {
                Unfinished::Deadline => tracing::warn!(
                    uid = %request.inner().uid,
                    verdict = answer.verdict.as_str(),
                    "a review was cut off by the {} request timeout and answered without a decision",
                    clock::human_exact(state.request_timeout)
                ),
                Unfinished::Failed => tracing::error!(
                    uid = %request.inner().uid,
                    verdict = answer.verdict.as_str(),
                    "evaluating a review failed; it was answered without a decision"
                ),
                Unfinished::TooLarge => tracing::warn!(
                    uid = %request.inner().uid,
                    verdict = answer.verdict.as_str(),
                    "a review too large to read within --max-buffered-bytes was answered from its skeleton"
                ),
            }
            reply(&answer.review)
        }
        Judgement::Malformed(error) => {
            state.metrics.error(ErrorKind::MalformedReview);
            tracing::warn!("rejected a body that is not an AdmissionReview: {error}");
            status(StatusCode::BAD_REQUEST, format!("defender: {error}"))
        }
        Judgement::Unjudgeable { error, review } => {
            state.metrics.error(ErrorKind::InvalidReview);
            tracing::warn!("cannot judge an AdmissionReview: {error}");
            reply(&review)
        }
        Judgement::ParseTimedOut => timed_out(&state),
        Judgement::Shed(reason) => shed(&state, reason),
    }
}

/// The AdmissionReview response, already JSON.
fn reply(review: &ReviewResponse) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], review.to_json()).into_response()
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The body did not arrive (or parse) in time: there is no uid to answer for.
fn timed_out(state: &AppState) -> Response {
    state.metrics.error(ErrorKind::Timeout);
    let limit = clock::human_exact(state.request_timeout);
    tracing::warn!("a review did not finish within the {limit} request timeout");
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "defender: the review did not finish within the {limit} request timeout \
             (was the request body sent too slowly?)"
        ),
    )
}

fn too_large(state: &AppState) -> Response {
    state.metrics.error(ErrorKind::BodyTooLarge);
    tracing::warn!("refused a request body over {} MiB", MAX_BODY_BYTES >> 20);
    status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "defender: the request body is over {} MiB; an AdmissionReview from the API server never is \
             (it refuses objects over 3 MiB, and escaping and an UPDATE's two objects stay under this)",
            MAX_BODY_BYTES >> 20
        ),
    )
}

/// A cap on what requests hold at once was reached: shed this one before memory runs out.
fn shed(state: &AppState, reason: Shed) -> Response {
    state.metrics.shed(reason);
    let limits = state.holdings.limits();
    let why = match reason {
        Shed::BufferedBytes => format!(
            "request bodies being received and judged already hold close to the {} MiB cap \
             (--max-buffered-bytes)",
            limits.max_buffered_bytes >> 20
        ),
        Shed::ReviewsInFlight => format!(
            "{} reviews are being judged already (--max-reviews-in-flight)",
            limits.max_reviews_in_flight
        ),
    };
    tracing::warn!("shed a request: {why}");
    status(StatusCode::SERVICE_UNAVAILABLE, format!("defender: overloaded, try again: {why}"))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let unsynced = state.view.unsynced();
    let unlisted = unlisted_budget_records(&state);
    if !state.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n").into_response()
    } else if !unsynced.is_empty() {
        let waiting = format!("not ready: the cluster view has not listed {} yet\n", unsynced.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, waiting).into_response()
    } else if !unlisted.is_empty() {
        let waiting = format!("not ready: the shared budget has not read {} yet\n", unlisted.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, waiting).into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

/// Shared budgets whose watched copy is still empty: until it is filled, dry
/// runs of budgeted deletions would be refused. Only the first listing counts;
/// a watch that breaks later does not make the replica unready (every webhook
/// would then fail for an API server blip).
fn unlisted_budget_records(state: &AppState) -> Vec<String> {
    let engine = state.engine.get();
    let budgets = engine.policies().iter().flat_map(|policy| policy.budgets());
    budgets.filter_map(|gauge| gauge.budget.unlisted_record()).collect()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.set_buffered_bytes(state.holdings.buffered_bytes());
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
