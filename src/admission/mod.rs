//! AdmissionReview (admission.k8s.io/v1) in and out.
//!
//! Parsing checks what the API server promises (apiVersion, kind, a request),
//! so a misconfigured webhook gets a clear error instead of a guess. It reads
//! the review in one pass into kube's `AdmissionRequest`, keeping what policies
//! read and scanning past the rest ([`object`]). Responses are written as
//! kube's `AdmissionResponse` writes them ([`ReviewResponse`]); a denial
//! carries HTTP code 403 and reason `Forbidden`, which kubectl shows as
//! `Error from server (Forbidden)`.

mod kept;
mod object;
mod response;
mod wire;

use kube::core::admission::{AdmissionReview, META_API_VERSION_V1, META_KIND};
use kube::core::{DynamicObject, TypeMeta};
use serde::Deserialize;
use serde_json::Value;

use crate::decode;
use crate::engine::{Decision, Engine};
use crate::policy::Context;
use crate::request::Request;
use object::LeanObject;
pub use response::ReviewResponse;
use wire::WireReview;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("failed to parse AdmissionReview: {0}")]
    Json(String),
    #[error(
        "unsupported AdmissionReview apiVersion {0:?}: Defender speaks {META_API_VERSION_V1} \
         (set admissionReviewVersions: [v1] in the webhook configuration)"
    )]
    ApiVersion(String),
    #[error("expected a document of kind {META_KIND}, got kind {0:?}")]
    Kind(String),
    #[error("the AdmissionReview has no request to judge")]
    MissingRequest,
}

/// Parses an AdmissionReview body as the API server sends it.
pub fn parse_review(body: &[u8]) -> Result<Request, ReviewError> {
    // JSON is UTF-8. The parser skips the fields Defender does not read without
    // checking their bytes, so without this a body that is not JSON could be judged.
    let text = std::str::from_utf8(body)
        .map_err(|error| ReviewError::Json(format!("the body is not UTF-8 text: {error}")))?;
    match serde_json::from_str::<WireReview>(text) {
        Ok(review) => into_request(review),
        Err(error) => Err(explain_body(body, error)),
    }
}

/// Why a body did not parse, in the words of kube's AdmissionReview types:
/// tracking field paths costs several times the parse, so only a failure
/// pays for it. Should kube's types accept what the lean parse refused, the
/// lean parse's own error stands.
fn explain_body(body: &[u8], lean_error: serde_json::Error) -> ReviewError {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match decode::deserialize::<AdmissionReview<DynamicObject>, _>(&mut deserializer, "") {
        Err(error) => envelope_error(body).unwrap_or(ReviewError::Json(error)),
        Ok(_) => ReviewError::Json(deserializer.end().err().unwrap_or(lean_error).to_string()),
    }
}

/// When a body fails to parse, a wrong apiVersion or kind explains it better
/// than the first field that did not fit (v1beta1 reviews differ in shape).
fn envelope_error(body: &[u8]) -> Option<ReviewError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope {
        api_version: Option<String>,
        kind: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    match (envelope.kind, envelope.api_version) {
        (Some(kind), _) if kind != META_KIND => Some(ReviewError::Kind(kind)),
        (_, Some(version)) if version != META_API_VERSION_V1 => Some(ReviewError::ApiVersion(version)),
        _ => None,
    }
}

/// Parses an AdmissionReview that is already a JSON value.
pub fn parse_review_value(value: Value) -> Result<Request, ReviewError> {
    match WireReview::<LeanObject>::deserialize(&value) {
        Ok(review) => into_request(review),
        Err(lean_error) => Err(match decode::deserialize::<AdmissionReview<DynamicObject>, _>(value, "") {
            Err(error) => ReviewError::Json(error),
            Ok(_) => ReviewError::Json(lean_error.to_string()),
        }),
    }
}

/// The review without its objects: uid, kind, resource, operation, names and
/// user, for answering a review too large to judge whole. The objects are
/// scanned past, so this costs a pass over the body and nothing more.
pub fn parse_review_skeleton(body: &[u8]) -> Result<Request, ReviewError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| ReviewError::Json(format!("the body is not UTF-8 text: {error}")))?;
    let review = serde_json::from_str::<WireReview<wire::Skipped>>(text)
        .map_err(|error| ReviewError::Json(error.to_string()))?;
    into_request(review)
}

fn into_request<O: wire::Kept>(review: WireReview<O>) -> Result<Request, ReviewError> {
    if review.kind != META_KIND {
        return Err(ReviewError::Kind(review.kind));
    }
    if review.api_version != META_API_VERSION_V1 {
        return Err(ReviewError::ApiVersion(review.api_version));
    }
    let request = review.request.ok_or(ReviewError::MissingRequest)?;
    let types = TypeMeta { api_version: review.api_version, kind: review.kind };
    Ok(request.into_request(types))
}

/// What the webhook answers for one request body.
pub enum Answer {
    /// A judged review; the response carries the request's uid.
    Judged { request: Box<Request>, decision: Decision, review: ReviewResponse },
    /// Not an AdmissionReview (not JSON, or JSON of another shape): the server
    /// answers HTTP 400, never a verdict.
    Malformed(ReviewError),
    /// An AdmissionReview that cannot be judged: answered without a uid, so the
    /// API server applies the webhook's failurePolicy.
    Unjudgeable { error: ReviewError, review: ReviewResponse },
}

/// One body parsed, judged with budgets committed in memory, and answered:
/// the server's steps without its deadline and its asynchronous commit
/// (`server/judging.rs`), for the fuzz target and tests.
pub fn judge(body: &[u8], engine: &Engine, context: &Context) -> Answer {
    match parse_review(body) {
        Ok(request) => {
            let decision = engine.decide(&request, context);
            let review = respond(&request, &decision);
            Answer::Judged { request: Box::new(request), decision, review }
        }
        Err(error @ ReviewError::Json(_)) => Answer::Malformed(error),
        Err(error) => {
            let review = respond_invalid(&error);
            Answer::Unjudgeable { error, review }
        }
    }
}

/// The AdmissionReview response for a decision.
pub fn respond(request: &Request, decision: &Decision) -> ReviewResponse {
    let mut response = ReviewResponse::allow(request.uid());
    if let Some(message) = decision.denial_message() {
        response = response.deny(403, "Forbidden", message);
    }
    let warnings = decision.warnings();
    if !warnings.is_empty() {
        response = response.warn(warnings);
    }
    // Audit annotations land in the API server's audit log under the webhook's name.
    let fired = decision.fired_policies();
    if !fired.is_empty() {
        response = response.annotate("policies", fired.join(","));
    }
    if decision.break_glass {
        response = response.annotate("break-glass", "true".to_owned());
    }
    response
}

/// The response for a review that parsed but cannot be judged. It carries no
/// uid, so the API server treats it as a webhook error and applies the
/// webhook's failurePolicy.
pub fn respond_invalid(error: &ReviewError) -> ReviewResponse {
    ReviewResponse::invalid(format!("defender: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELETE_SECRET: &str = r#"{
      "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
      "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Secret"},
        "resource": {"group": "", "version": "v1", "resource": "secrets"},
        "name": "db", "namespace": "prod", "operation": "DELETE",
        "userInfo": {"username": "alice", "groups": ["devs"], "extra": {"scopes": ["a"]}},
        "object": null,
        "oldObject": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod"}},
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
      }
    }"#;

    #[test]
    fn parses_a_delete_with_old_object_and_null_object() {
        let request = parse_review(DELETE_SECRET.as_bytes()).unwrap();
        assert!(request.is_delete());
        assert!(request.object().is_none());
        assert_eq!(request.name(), "db");
        assert_eq!(request.username(), "alice");
        assert!(!request.is_collection_delete());
    }

    #[test]
    fn the_skeleton_keeps_who_what_and_which_operation_but_no_object() {
        let skeleton = parse_review_skeleton(DELETE_SECRET.as_bytes()).unwrap();
        let whole = parse_review(DELETE_SECRET.as_bytes()).unwrap();
        assert_eq!(skeleton.uid(), whole.uid());
        assert_eq!((skeleton.kind(), skeleton.name(), skeleton.namespace()), ("Secret", "db", Some("prod")));
        assert_eq!((skeleton.username(), skeleton.operation()), ("alice", whole.operation()));
        assert!(skeleton.old_object().is_none() && skeleton.object().is_none());
        assert!(parse_review_skeleton(b"{\"kind\": 1}").is_err());
    }

    #[test]
    fn keeps_every_request_field_kube_defines() {
        let body = DELETE_SECRET
            .replace(r#""dryRun": false,"#, r#""subResource": "status", "requestSubResource": "status","#);
        let request = parse_review(body.as_bytes()).unwrap();
        let inner = request.inner();
        assert_eq!(
            (inner.types.api_version.as_str(), inner.types.kind.as_str()),
            (META_API_VERSION_V1, META_KIND)
        );
        assert_eq!(inner.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(inner.resource.resource, "secrets");
        assert_eq!(request.sub_resource(), Some("status"));
        assert_eq!(inner.request_sub_resource.as_deref(), Some("status"));
        assert!(!request.dry_run(), "a missing dryRun is false");
        assert_eq!(inner.user_info.extra.as_ref().unwrap()["scopes"], ["a"]);
        assert_eq!(inner.options.as_ref().unwrap().0["propagationPolicy"], "Background");
        assert_eq!(request.namespace(), Some("prod"));
    }

    #[test]
    fn a_secret_review_keeps_no_trace_of_the_secret_values() {
        let marker = "s3cr3t-marker";
        let old_object = format!(
            r#""oldObject": {{"apiVersion": "v1", "kind": "Secret", "metadata": {{"name": "db", "namespace": "prod",
                "labels": {{"tier": "db"}}, "managedFields": [{{"manager": "kubectl", "fieldsV1": {{"f:data": {{}}}}}}]}},
                "data": {{"password": "{marker}"}}, "stringData": {{"token": "{marker}"}}, "type": "Opaque"}}"#
        );
        let body = DELETE_SECRET.replace(
            r#""oldObject": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod"}}"#,
            &old_object,
        );
        let request = parse_review(body.as_bytes()).unwrap();
        assert!(!format!("{request:?}").contains(marker), "{request:?}");
        let stored = request.old_object().unwrap();
        assert_eq!(stored.metadata.managed_fields, None);
        assert_eq!(request.labels()["tier"], "db");
        assert_eq!(stored.data["type"], "Opaque");
    }

    #[test]
    fn a_value_review_parses_like_a_body() {
        let value: Value = serde_json::from_str(DELETE_SECRET).unwrap();
        let request = parse_review_value(value).unwrap();
        assert_eq!(request.name(), "db");
        assert!(request.is_delete());
    }

    #[test]
    fn names_the_object_field_that_does_not_fit() {
        let body = DELETE_SECRET.replace(r#""object": null"#, r#""object": [1]"#);
        let error = parse_review(body.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("request.object"), "{error}");
        let value: Value = serde_json::from_str(&body).unwrap();
        let error = parse_review_value(value).unwrap_err();
        assert!(error.to_string().contains("request.object"), "{error}");
    }

    #[test]
    fn rejects_malformed_json() {
        let error = parse_review(b"{not json").unwrap_err();
        assert!(matches!(error, ReviewError::Json(_)), "{error}");
    }

    #[test]
    fn rejects_a_document_that_is_not_an_admission_review() {
        let error = parse_review(br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {}}"#).unwrap_err();
        assert!(error.to_string().contains("AdmissionReview"), "{error}");
    }

    #[test]
    fn rejects_the_v1beta1_api_version_with_a_hint() {
        let body = DELETE_SECRET.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
        let error = parse_review(body.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("admissionReviewVersions"), "{error}");
    }

    #[test]
    fn explains_a_v1beta1_review_by_its_api_version_not_its_shape() {
        let body = br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}"#;
        let error = parse_review(body).unwrap_err();
        assert!(error.to_string().contains("admissionReviewVersions"), "{error}");
    }

    #[test]
    fn rejects_a_review_without_request() {
        let body = r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#;
        assert!(matches!(parse_review(body.as_bytes()), Err(ReviewError::MissingRequest)));
    }

    #[test]
    fn names_the_field_that_has_the_wrong_type() {
        let body = DELETE_SECRET.replace(r#""dryRun": false"#, r#""dryRun": "yes""#);
        let error = parse_review(body.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("request.dryRun"), "{error}");
    }

    #[test]
    fn rejects_bytes_that_are_not_utf8_even_in_a_field_it_ignores() {
        let mut body = DELETE_SECRET.replace(r#""dryRun""#, r#""unknown": "XX", "dryRun""#).into_bytes();
        let at = body.windows(2).position(|pair| pair == b"XX").unwrap();
        body[at] = 0xff;
        let error = parse_review(&body).unwrap_err();
        assert!(matches!(&error, ReviewError::Json(m) if m.contains("not UTF-8")), "{error}");
    }

    #[test]
    fn rejects_trailing_garbage() {
        let body = format!("{DELETE_SECRET} extra");
        assert!(parse_review(body.as_bytes()).is_err());
    }
}
