//! Any body -> parse, evaluate, respond (`admission::judge`, the server's steps)
//! with the embedded policies.
//!
//! Whatever arrives: no panic; only UTF-8 text (as JSON must be) is judged; a
//! judged review answers with the uid the body sent and the engine's verdict;
//! a body that cannot be judged is never allowed; every response serializes
//! to the AdmissionReview the API server reads, saying what it says.

use std::sync::LazyLock;

use defender::admission::{self, Answer, ReviewResponse};
use defender::clock::{Clock, SystemClock};
use defender::config;
use defender::engine::Engine;
use defender::view::MemoryView;
use serde_json::Value;

/// One engine for the whole run, as in the server: budgets carry over between inputs.
static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(config::load_embedded().expect("the embedded policies load")));

pub fn check(body: &[u8]) {
    let view = MemoryView::default();
    let context = ENGINE.context(SystemClock.now(), &view);
    match admission::judge(body, &ENGINE, &context) {
        Answer::Judged { request, decision, review } => {
            assert_eq!(review.uid(), request.uid(), "the response answers another request");
            assert_eq!(review.allowed(), decision.allowed(), "the response contradicts the decision");
            if !review.allowed() {
                assert!(!review.message().is_empty(), "a denial without a message");
            }
            assert!(std::str::from_utf8(body).is_ok(), "judged a body that is not UTF-8, so not JSON");
            let sent: Sent = serde_json::from_slice(body).expect("a judged body has a request uid");
            assert_eq!(sent.request.uid, review.uid(), "the response's uid is not the one the body sent");
            let answered = serialized(&review);
            assert_eq!(answered["response"]["uid"].as_str(), Some(request.uid()));
            assert_eq!(answered["response"]["allowed"].as_bool(), Some(review.allowed()));
            let message = answered["response"]["status"]["message"].as_str().unwrap_or_default();
            assert_eq!(message, review.message(), "the response's message is not the decision's");
        }
        Answer::Malformed(error) => {
            assert!(!error.to_string().is_empty(), "a parse error without a message");
        }
        Answer::Unjudgeable { error, review } => {
            let answered = serialized(&review);
            assert_eq!(answered["response"]["allowed"].as_bool(), Some(false), "{error} was allowed");
            assert_eq!(answered["response"]["uid"].as_str(), Some(""), "{error} answered with a uid");
        }
    }
}

/// Only the uid of a review, read on its own.
#[derive(serde::Deserialize)]
struct Sent {
    request: SentRequest,
}

#[derive(serde::Deserialize)]
struct SentRequest {
    uid: String,
}

/// The review as the server sends it, read back as the API server would.
fn serialized(review: &ReviewResponse) -> Value {
    let answered: Value = serde_json::from_slice(&review.to_json()).expect("a response is JSON");
    assert_eq!(answered["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answered["kind"], "AdmissionReview");
    answered
}
