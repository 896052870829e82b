//! Parsing and judging one review off the async runtime, against the deadline,
//! then committing its budget charges on the runtime.
//!
//! The body is parsed and judged on a blocking thread, so a slow evaluation
//! never stalls the runtime and the deadline can always fire. Once the review
//! is parsed its uid is known, so a review cut off by the deadline is answered
//! with a verdict ([`overtime`]) instead of an error the API server would read
//! as "allowed" for an `Ignore` webhook. Judging spends nothing: a review that
//! finished in time commits its charges here, asynchronously (a shared budget
//! by compare-and-swap on its Lease), and a charge that lost the race to
//! another replica turns into the denial the fresh state gives.

use std::sync::Arc;

use axum::body::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::admission::{self, ReviewError, ReviewResponse};
use crate::engine::{Decision, Engine, Review};
use crate::request::Request;
use crate::server::memory::{BufferReservation, JudgingSlot, Shed};
use crate::server::overtime::{self, Overtime};
use crate::server::parse_cost;
use crate::server::state::AppState;
use crate::server::{custom_resources, protected_objects};

/// How one review ended.
pub enum Judgement {
    /// Judged in time; the response carries the request's uid.
    Judged { request: Arc<Request>, decision: Decision, review: ReviewResponse },
    /// Parsed, but cut off by the deadline (or its evaluation failed): answered
    /// for its uid without a decision.
    Unfinished { request: Arc<Request>, answer: Overtime, why: Unfinished },
    /// Not an AdmissionReview at all: HTTP 400.
    Malformed(ReviewError),
    /// An AdmissionReview that cannot be judged, answered without a uid.
    Unjudgeable { error: ReviewError, review: ReviewResponse },
    /// Not even parsed by the deadline: no uid to answer for.
    ParseTimedOut,
    /// Parsing it would pass a memory cap.
    Shed(Shed),
}

/// Why a body yielded no request to judge.
enum Unparsed {
    Review(ReviewError),
    Shed(Shed),
    /// Its parsed tree alone would pass what the cap ever gives one request:
    /// shedding it would fail it open on every try. Its skeleton (no
    /// objects) is answered instead.
    NeverFits(Arc<Request>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    Deadline,
    /// Too large to parse within the memory cap, ever: judged on its skeleton.
    TooLarge,
    /// Evaluation panicked: a bug, answered like a timeout rather than an error.
    Failed,
}

/// What the blocking thread holds while it works: the body's buffer bytes
/// stay reserved until the parsed review is dropped too.
pub struct Held {
    pub reservation: BufferReservation,
    pub slot: JudgingSlot,
}

pub async fn judge(state: &Arc<AppState>, body: Bytes, held: Held, deadline: Instant) -> Judgement {
    let engine = state.engine.get();
    let (parsed_tx, parsed_rx) = oneshot::channel();
    let task = {
        let (state, engine) = (Arc::clone(state), Arc::clone(&engine));
        tokio::task::spawn_blocking(move || parse_and_judge(&state, &engine, body, held, parsed_tx))
    };
    let request = match tokio::time::timeout_at(deadline, parsed_rx).await {
        Err(_) => return Judgement::ParseTimedOut,
        // The parse panicked before it could answer.
        Ok(Err(_)) => {
            let error = "parsing the body failed (an internal error, logged)".to_owned();
            return Judgement::Malformed(ReviewError::Json(error));
        }
        Ok(Ok(Err(Unparsed::Shed(shed)))) => return Judgement::Shed(shed),
        Ok(Ok(Err(Unparsed::NeverFits(request)))) => {
            return unfinished(state, &engine, request, Unfinished::TooLarge);
        }
        Ok(Ok(Err(Unparsed::Review(error @ ReviewError::Json(_))))) => return Judgement::Malformed(error),
        Ok(Ok(Err(Unparsed::Review(error)))) => {
            let review = admission::respond_invalid(&error);
            return Judgement::Unjudgeable { error, review };
        }
        Ok(Ok(Ok(request))) => request,
    };
    // Judging spends nothing, so an answer without it is the whole truth.
    let finished = match tokio::time::timeout_at(deadline, task).await {
        Ok(finished) => finished,
        Err(_) => return unfinished(state, &engine, request, Unfinished::Deadline),
    };
    let Ok(Some(reviewed)) = finished else {
        return unfinished(state, &engine, request, Unfinished::Failed);
    };
    // Once spending starts, its outcome is the answer: the shared budget's
    // own deadline (below the request's) bounds the wait.
    let decision = commit(state, &engine, &request, reviewed).await;
    let review = admission::respond(&request, &decision);
    Judgement::Judged { request, decision, review }
}

/// Spends what `reviewed` asks for, and settles the decision on the outcome.
async fn commit(state: &AppState, engine: &Engine, request: &Request, reviewed: Review) -> Decision {
    if reviewed.charges.is_empty() {
        return reviewed.decision;
    }
    let lost = reviewed.commit().await;
    // What settling a lost charge reads: the moment judged, and the view.
    let context =
        engine.context(reviewed.now, state.view.as_ref()).with_own_namespace(state.own_namespace.as_deref());
    engine.settle(request, &context, reviewed, lost)
}

/// A review answered without a decision ([`overtime`]), saying why.
fn unfinished(state: &AppState, engine: &Engine, request: Arc<Request>, why: Unfinished) -> Judgement {
    let what_happened = match why {
        Unfinished::Deadline => format!(
            "could not finish judging this request within {}",
            crate::clock::human_exact(state.request_timeout)
        ),
        Unfinished::Failed => "failed while judging this request (an internal error, logged)".to_owned(),
        Unfinished::TooLarge => {
            "could not judge this request: its objects would take more memory to read than \
                                 --max-buffered-bytes allows one review"
                .to_owned()
        }
    };
    let answer = overtime::answer(engine, &request, &what_happened);
    Judgement::Unfinished { request, answer, why }
}

type Parsed = Result<Arc<Request>, Unparsed>;

/// The blocking half: charges the cap for the parse, parses, tells the
/// waiter, then judges. The reservation and the slot are given
/// back only at the end, however long after the deadline: until then the
/// parsed review holds the memory, and the evaluation a slot.
fn parse_and_judge(
    state: &AppState,
    engine: &Engine,
    body: Bytes,
    held: Held,
    parsed: oneshot::Sender<Parsed>,
) -> Option<Review> {
    let Held { mut reservation, slot: _slot } = held;
    // The body stays held while its tree is built, so both are charged.
    let parsed_size = reservation.bytes() + parse_cost::estimate(&body);
    if let Err(shed) = reservation.reserve_up_to(parsed_size) {
        let unparsed = if parsed_size > state.holdings.largest_request() {
            match admission::parse_review_skeleton(&body) {
                Ok(request) => Unparsed::NeverFits(Arc::new(request)),
                Err(_) => Unparsed::Shed(shed),
            }
        } else {
            Unparsed::Shed(shed)
        };
        // The receiver is gone only if the deadline passed: nobody to tell.
        let _ = parsed.send(Err(unparsed));
        return None;
    }
    let request = match admission::parse_review(&body) {
        Ok(request) => Arc::new(request),
        Err(error) => {
            let _ = parsed.send(Err(Unparsed::Review(error)));
            return None;
        }
    };
    drop(body);
    if parsed.send(Ok(Arc::clone(&request))).is_err() {
        // Nobody waits for it any more: the deadline passed while parsing.
        return None;
    }
    // What the engine needs that the view does not keep, looked up now so
    // that judging does no I/O.
    let counted = custom_resources::prefetch(state.custom_resources.as_ref(), &request);
    let protected = protected_objects::prefetch(state.protected_objects.as_ref(), engine, &request);
    let context = engine
        .context(state.clock.now(), state.view.as_ref())
        .with_own_namespace(state.own_namespace.as_deref())
        .with_counted(counted.as_ref())
        .with_protected(protected.as_ref());
    Some(engine.review(&request, &context))
}
