//! Parsing and judging one review off the async runtime, against the deadline,
//! then committing its budget charges on the runtime.
//!
//! The body is parsed and judged on a blocking thread, so a slow evaluation
//! never stalls the runtime and the deadline can always fire. A review that
//! needs the API server first (a namespace or a definition deleted) is handed
//! back after parsing: its lookups run on the runtime, holding no thread,
//! and it is judged on a blocking thread again. A namespace whose protected
//! objects the index holds whole is judged at once instead. Once the review
//! is parsed its uid is known, so a review cut off by the deadline is answered
//! with a verdict ([`overtime`]) instead of an error the API server would read
//! as "allowed" for an `Ignore` webhook. Judging spends nothing: a review that
//! finished in time commits its charges here, asynchronously (a shared budget
//! by compare-and-swap on its Lease), and a charge that lost the race to
//! another replica turns into the denial the fresh state gives.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
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

/// What the blocking half hands back.
enum Parsed {
    /// Judged at once: it needed nothing from the API server.
    Judged(Arc<Request>, Review),
    /// To judge once the lookups it needs are made.
    NeedsLookups(Arc<Request>, Held),
}

/// Why a body yielded no review to commit.
enum Unparsed {
    Review(ReviewError),
    Shed(Shed),
    /// Its parsed tree alone would pass what the cap ever gives one request:
    /// shedding it would fail it open on every try. Its skeleton (no
    /// objects) is answered instead.
    NeverFits(Arc<Request>),
    /// Parsed only once the deadline had passed: not judged.
    Late(Arc<Request>),
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
    // The parsed request, published without waking this task: one wake-up
    // per review (the blocking task's end) instead of two. Should the
    // deadline pass first, it says whether there is a uid to answer for.
    let parsed = Arc::new(OnceLock::new());
    let task = {
        let (state, engine, parsed) = (Arc::clone(state), Arc::clone(&engine), Arc::clone(&parsed));
        tokio::task::spawn_blocking(move || parse_and_judge(&state, &engine, body, held, &parsed, deadline))
    };
    let finished = match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(finished)) => finished,
        Err(_) => {
            return match parsed.get() {
                Some(request) => unfinished(state, &engine, Arc::clone(request), Unfinished::Deadline),
                None => Judgement::ParseTimedOut,
            };
        }
        // A panic, while parsing or while judging.
        Ok(Err(_)) => {
            return match parsed.get() {
                Some(request) => unfinished(state, &engine, Arc::clone(request), Unfinished::Failed),
                None => {
                    let error = "parsing the body failed (an internal error, logged)".to_owned();
                    Judgement::Malformed(ReviewError::Json(error))
                }
            };
        }
    };
    let (request, reviewed) = match finished {
        Ok(Parsed::Judged(request, reviewed)) => (request, reviewed),
        Ok(Parsed::NeedsLookups(request, held)) => {
            let judging = look_up_and_judge(state, &engine, Arc::clone(&request), held);
            match tokio::time::timeout_at(deadline, judging).await {
                Ok(Some(reviewed)) => (request, reviewed),
                Ok(None) => return unfinished(state, &engine, request, Unfinished::Failed),
                Err(_) => return unfinished(state, &engine, request, Unfinished::Deadline),
            }
        }
        Err(Unparsed::Shed(shed)) => return Judgement::Shed(shed),
        Err(Unparsed::NeverFits(request)) => {
            return unfinished(state, &engine, request, Unfinished::TooLarge);
        }
        Err(Unparsed::Review(error @ ReviewError::Json(_))) => return Judgement::Malformed(error),
        Err(Unparsed::Review(error)) => {
            let review = admission::respond_invalid(&error);
            return Judgement::Unjudgeable { error, review };
        }
        // Parsed just as the deadline passed, so not judged: cut off.
        Err(Unparsed::Late(request)) => return unfinished(state, &engine, request, Unfinished::Deadline),
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

/// The blocking half: charges the cap for the parse, parses, publishes the
/// request for the waiter, then judges it unless it needs lookups first. The
/// reservation and the slot are given back only once it is judged, however
/// long after the deadline: until then the parsed review holds the memory,
/// and the evaluation a slot.
fn parse_and_judge(
    state: &AppState,
    engine: &Engine,
    body: Bytes,
    held: Held,
    parsed: &OnceLock<Arc<Request>>,
    deadline: Instant,
) -> Result<Parsed, Unparsed> {
    let Held { mut reservation, slot } = held;
    // The body stays held while its tree is built, so both are charged.
    let parsed_size = reservation.bytes() + parse_cost::estimate(&body);
    if let Err(shed) = reservation.reserve_up_to(parsed_size) {
        if parsed_size > state.holdings.largest_request() {
            if let Ok(request) = admission::parse_review_skeleton(&body) {
                return Err(Unparsed::NeverFits(Arc::new(request)));
            }
        }
        return Err(Unparsed::Shed(shed));
    }
    let request = Arc::new(admission::parse_review(&body).map_err(Unparsed::Review)?);
    drop(body);
    let _ = parsed.set(Arc::clone(&request));
    if Instant::now() >= deadline {
        // The waiter has answered, or is about to: judging would be wasted.
        return Err(Unparsed::Late(request));
    }
    // A namespace's protected objects come from memory when the index has
    // every type current: no hand-off to the runtime and back.
    let protected =
        protected_objects::prefetch_from_index(state.protected_objects.as_ref(), engine, &request);
    if protected.is_none() && needs_lookups(&request) {
        return Ok(Parsed::NeedsLookups(request, Held { reservation, slot }));
    }
    let reviewed = review(state, engine, &request, None, protected.as_ref());
    drop((reservation, slot));
    Ok(Parsed::Judged(request, reviewed))
}

/// Whether judging `request` needs the API server first: what the engine
/// needs and the view does not keep (a definition's objects, a namespace's
/// protected objects).
fn needs_lookups(request: &Request) -> bool {
    crate::custom_resources::CustomResourceType::deleted_by(request).is_some()
        || crate::protected_objects::deleted_namespace(request).is_some()
}

/// Makes the lookups `request` needs on the runtime, so a slow API server
/// holds no thread, then judges it on a blocking thread. `None` if judging
/// panicked.
async fn look_up_and_judge(
    state: &Arc<AppState>,
    engine: &Arc<Engine>,
    request: Arc<Request>,
    held: Held,
) -> Option<Review> {
    let counted = custom_resources::prefetch(state.custom_resources.as_ref(), &request).await;
    let protected = protected_objects::prefetch(state.protected_objects.as_ref(), engine, &request).await;
    let (state, engine) = (Arc::clone(state), Arc::clone(engine));
    let judging = move || {
        let reviewed = review(&state, &engine, &request, counted.as_ref(), protected.as_ref());
        drop(held);
        reviewed
    };
    tokio::task::spawn_blocking(judging).await.ok()
}

/// Judges `request` with what was looked up for it, changing nothing.
fn review(
    state: &AppState,
    engine: &Engine,
    request: &Request,
    counted: Option<&crate::custom_resources::Prefetched>,
    protected: Option<&crate::protected_objects::Prefetched>,
) -> Review {
    let context = engine
        .context(state.clock.now(), state.view.as_ref())
        .with_own_namespace(state.own_namespace.as_deref())
        .with_counted(counted)
        .with_protected(protected);
    engine.review(request, &context)
}
