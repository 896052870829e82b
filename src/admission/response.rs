//! The AdmissionReview a webhook answers with, written straight to JSON.
//!
//! It writes what kube's `AdmissionResponse::into_review()` writes, field for
//! field and with the same omissions, from borrowed parts: no
//! `serde_json::Value` and no copy of the messages is built on the way.

use std::collections::BTreeMap;

use kube::core::admission::{META_API_VERSION_V1, META_KIND};
use serde::{Serialize, Serializer};

/// The answer to one AdmissionReview: allowed or not, why, warnings, and
/// the audit annotations the API server files under the webhook's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewResponse {
    uid: String,
    allowed: bool,
    failure: Option<Failure>,
    warnings: Option<Vec<String>>,
    audit_annotations: BTreeMap<&'static str, String>,
}

/// Why a request was not allowed, as a Kubernetes `Status` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    /// The HTTP code it suggests; 0 leaves it out.
    code: u16,
    message: String,
    /// `Forbidden`, kubectl's `Error from server (Forbidden)`.
    reason: &'static str,
}

impl ReviewResponse {
    /// Allows the request with this uid, until told otherwise.
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            failure: None,
            warnings: None,
            audit_annotations: BTreeMap::new(),
        }
    }

    /// The answer to a review that cannot be judged: no uid, so the API
    /// server takes it as a webhook error and applies the failurePolicy.
    pub fn invalid(message: String) -> Self {
        Self::allow("").deny(0, "InvalidRequest", message)
    }

    /// Refuses the request; `code` is the HTTP code the status suggests.
    pub fn deny(mut self, code: u16, reason: &'static str, message: String) -> Self {
        self.allowed = false;
        self.failure = Some(Failure { code, message, reason });
        self
    }

    /// The warnings kubectl prints, even none.
    pub fn warn(mut self, warnings: Vec<String>) -> Self {
        self.warnings = Some(warnings);
        self
    }

    pub fn annotate(mut self, key: &'static str, value: String) -> Self {
        self.audit_annotations.insert(key, value);
        self
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The HTTP code a denial suggests, 0 when allowed.
    pub fn code(&self) -> u16 {
        self.failure.as_ref().map_or(0, |failure| failure.code)
    }

    /// The denial's message, `""` when allowed.
    pub fn message(&self) -> &str {
        self.failure.as_ref().map_or("", |failure| &failure.message)
    }

    pub fn warnings(&self) -> &[String] {
        self.warnings.as_deref().unwrap_or_default()
    }

    /// The whole AdmissionReview, as the server sends it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers always serialize")
    }
}

/// The review around the response, as kube's `AdmissionReview` writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

/// kube's `AdmissionResponse`, without the patch a validating webhook never sends.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    status: Status<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: &'a BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

/// kube's `Status`: an allowed request's is empty (`{}`).
#[derive(Serialize, Default)]
struct Status<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    code: u16,
    #[serde(skip_serializing_if = "is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    reason: &'static str,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

fn is_empty(text: &&str) -> bool {
    text.is_empty()
}

impl Serialize for ReviewResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let status = match &self.failure {
            Some(failure) => Status {
                status: Some("Failure"),
                code: failure.code,
                message: &failure.message,
                reason: failure.reason,
            },
            None => Status::default(),
        };
        let response = Response {
            uid: &self.uid,
            allowed: self.allowed,
            status,
            audit_annotations: &self.audit_annotations,
            warnings: self.warnings.as_deref(),
        };
        Review { api_version: META_API_VERSION_V1, kind: META_KIND, response }.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use kube::core::admission::{AdmissionResponse, AdmissionReview};
    use kube::core::{DynamicObject, Status};
    use serde_json::{Value, json};

    use super::*;
    use crate::admission::{ReviewError, respond, respond_invalid};
    use crate::config;
    use crate::engine::{Decision, Engine};
    use crate::request::Request;
    use crate::testing::{Fixture, ingress, namespace, object};

    /// The response as kube's builder made it before [`ReviewResponse`].
    fn kube_respond(request: &Request, decision: &Decision) -> AdmissionReview<DynamicObject> {
        let mut response = AdmissionResponse::from(request.inner());
        if let Some(message) = decision.denial_message() {
            response.allowed = false;
            response.result = Status::failure(&message, "Forbidden").with_code(403);
        }
        let warnings = decision.warnings();
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        let fired = decision.fired_policies();
        if !fired.is_empty() {
            response.audit_annotations.insert("policies".to_owned(), fired.join(","));
        }
        if decision.break_glass {
            response.audit_annotations.insert("break-glass".to_owned(), "true".to_owned());
        }
        response.into_review()
    }

    /// Everything a review says, its type fields included.
    fn as_value(review: &AdmissionReview<DynamicObject>) -> Value {
        json!({"types": review.types, "review": review})
    }

    /// `ours` written and read back with kube's types says exactly what `kube's` says.
    fn assert_same(ours: &ReviewResponse, kube: &AdmissionReview<DynamicObject>) {
        let read: AdmissionReview<DynamicObject> = serde_json::from_slice(&ours.to_json()).unwrap();
        assert_eq!(as_value(&read), as_value(kube));
        // And as JSON: a field kube reads back as a default (a missing code,
        // no warnings) must be missing from ours too.
        let (ours, kube): (Value, Value) =
            (serde_json::from_slice(&ours.to_json()).unwrap(), serde_json::to_value(kube).unwrap());
        assert_eq!(ours, kube);
    }

    fn judged(fixture: &Fixture, request: &Request) -> Decision {
        let engine = Engine::new(config::load_embedded().unwrap());
        engine.decide(request, &fixture.context())
    }

    #[test]
    fn allowed_denied_warned_and_break_glass_answers_read_as_kube_wrote_them() {
        let rules = json!({"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/",
            "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]});
        let fixture = Fixture::new().with_objects(&[ingress("taken", rules.clone())]);
        let mut mine = ingress("web", rules);
        mine["metadata"]["namespace"] = "other".into();
        let mut break_glass = fixture.synthetic_delete(namespace("kube-public"));
        break_glass.user.groups = vec!["defender:break-glass".to_owned()];
        let cases = [
            ("allowed", fixture.create(object("v1", "ConfigMap", "shop", "settings", &[]))),
            ("denied", fixture.delete(namespace("kube-system"))),
            ("warned", fixture.create(mine)),
            ("break-glass", break_glass.build().unwrap()),
        ];
        for (case, request) in cases {
            let decision = judged(&fixture, &request);
            match case {
                "allowed" => assert!(decision.allowed() && decision.findings.is_empty()),
                "denied" => assert!(!decision.allowed()),
                "warned" => assert!(decision.allowed() && !decision.warnings().is_empty(), "{decision:?}"),
                _ => assert!(decision.allowed() && decision.break_glass),
            }
            let ours = respond(&request, &decision);
            assert_eq!((ours.uid(), ours.allowed()), (request.uid(), decision.allowed()), "{case}");
            assert_same(&ours, &kube_respond(&request, &decision));
        }
    }

    #[test]
    fn an_answer_without_a_uid_reads_as_kube_wrote_it() {
        let error = ReviewError::MissingRequest;
        let kube = AdmissionResponse::invalid(format!("defender: {error}")).into_review();
        assert_same(&respond_invalid(&error), &kube);
    }

    /// The shapes of the server's answers to reviews it could not finish.
    #[test]
    fn overtime_answers_read_as_kube_wrote_them() {
        let request = Fixture::new().delete(namespace("shop"));
        let what = "could not finish judging this request within 4s";
        let denied = ReviewResponse::allow(request.uid())
            .deny(503, "ServiceUnavailable", "Defender could not finish".to_owned())
            .warn(Vec::new())
            .annotate("unfinished", what.to_owned());
        let mut kube = AdmissionResponse::from(request.inner());
        kube.allowed = false;
        kube.result = Status::failure("Defender could not finish", "ServiceUnavailable").with_code(503);
        kube.warnings = Some(Vec::new());
        kube.audit_annotations.insert("unfinished".to_owned(), what.to_owned());
        assert_same(&denied, &kube.into_review());

        let overridden = ReviewResponse::allow(request.uid())
            .annotate("break-glass", "true".to_owned())
            .warn(vec!["break-glass used".to_owned()])
            .annotate("unfinished", what.to_owned());
        let mut kube = AdmissionResponse::from(request.inner());
        kube.warnings = Some(vec!["break-glass used".to_owned()]);
        kube.audit_annotations.insert("break-glass".to_owned(), "true".to_owned());
        kube.audit_annotations.insert("unfinished".to_owned(), what.to_owned());
        assert_same(&overridden, &kube.into_review());
    }

    #[test]
    fn writes_the_fields_in_kubes_order() {
        let denied = ReviewResponse::allow("u").deny(403, "Forbidden", "no".to_owned());
        assert_eq!(
            String::from_utf8(denied.to_json()).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":false,"status":{"status":"Failure","code":403,"message":"no","reason":"Forbidden"}}}"#
        );
        assert_eq!(
            String::from_utf8(ReviewResponse::allow("u").to_json()).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":true,"status":{}}}"#
        );
    }
}
