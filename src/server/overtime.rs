//! The answer for a review that ran out of time (or failed) while being judged.
//!
//! The API server treats an error from an `Ignore` webhook as "allowed", so a
//! review cut off by the request timeout still gets a verdict for its uid:
//! denied if a policy that applies to it would deny, allowed with a warning if
//! the ones that apply only warn or record. A change that lets the garbage
//! collector delete the object is judged as that deletion too, so the policies
//! that apply to the deletion count as applying to it.

use crate::admission::ReviewResponse;
use crate::engine::{Engine, Outcome};
use crate::policy::Action;
use crate::request::Request;

/// What a review cut off by the deadline is answered with.
pub struct Overtime {
    pub review: ReviewResponse,
    /// Deny or warn.
    pub verdict: Outcome,
}

/// `what_happened` completes "Defender ...", e.g. "could not finish judging this request within 4s".
pub fn answer(engine: &Engine, request: &Request, what_happened: &str) -> Overtime {
    // A review without its objects (too large to read) cannot show whether
    // it changes owner references: it is taken to, so it fails closed.
    let skeleton = request.object().is_none() && request.old_object().is_none();
    let proxy = if skeleton { request.as_deletion() } else { request.deletion_by_proxy() };
    let applying: Vec<_> = engine
        .policies()
        .iter()
        .filter(|policy| policy.applies(request) || proxy.as_ref().is_some_and(|p| policy.applies(p)))
        .collect();
    let enforcing: Vec<&str> =
        applying.iter().filter(|p| p.action() == Action::Deny).map(|p| p.name()).collect();
    let mut response = ReviewResponse::allow(request.uid());
    let mut warnings = Vec::new();
    let verdict = if enforcing.is_empty() {
        let named: Vec<&str> = applying.iter().map(|p| p.name()).collect();
        warnings.push(format!(
            "Defender {what_happened}; it was let through because {}",
            if named.is_empty() {
                "no policy applies to it".to_owned()
            } else {
                format!("the policies that apply to it only warn ({})", named.join(", "))
            }
        ));
        Outcome::Warn
    } else {
        let message = format!(
            "Defender {what_happened} (policies that apply: {}); nothing was changed; try again",
            enforcing.join(", ")
        );
        if engine.settings().is_break_glass(request) {
            warnings
                .push(format!("defender: break-glass used; this was overridden and is audited: {message}"));
            response = response.annotate("break-glass", "true".to_owned());
            Outcome::Warn
        } else {
            response = response.deny(503, "ServiceUnavailable", message);
            Outcome::Deny
        }
    };
    let review = response.warn(warnings).annotate("unfinished", what_happened.to_owned());
    Overtime { review, verdict }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::testing::{Fixture, namespace, object};

    fn engine() -> Engine {
        Engine::new(config::load_embedded().unwrap())
    }

    #[test]
    fn a_request_a_denying_policy_applies_to_is_denied_naming_the_policies() {
        let request = Fixture::new().delete(namespace("shop"));
        let answer = answer(&engine(), &request, "could not finish judging this request within 4s");
        assert_eq!(answer.verdict, Outcome::Deny);
        let response = answer.review;
        assert!(!response.allowed());
        assert_eq!(response.uid(), request.inner().uid);
        assert_eq!(response.code(), 503);
        let message = response.message();
        assert!(message.starts_with("Defender could not finish judging this request within 4s"), "{message}");
        assert!(message.contains("core-namespaces") && message.contains("namespace-deletion"), "{message}");
        assert!(message.ends_with("nothing was changed; try again"), "{message}");
    }

    #[test]
    fn an_owner_reference_added_to_a_guarded_object_is_denied_as_its_deletion() {
        let fixture = Fixture::new();
        let secret = object("v1", "Secret", "prod", "db", &[]);
        let mut owned = secret.clone();
        owned["metadata"]["ownerReferences"] =
            serde_json::json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "1"}]);
        let request = fixture.update(secret.clone(), owned);
        let denied = answer(&engine(), &request, "could not finish judging this request within 4s");
        assert_eq!(denied.verdict, Outcome::Deny);
        let response = denied.review;
        assert!(!response.allowed());
        assert!(response.message().contains("deletion-guard"), "{}", response.message());

        // The same update without the owner reference is no deletion.
        let mut relabelled = secret.clone();
        relabelled["metadata"]["labels"] = serde_json::json!({"tier": "db"});
        let let_through =
            answer(&engine(), &fixture.update(secret, relabelled), "failed while judging this request");
        assert_eq!(let_through.verdict, Outcome::Warn);
    }

    #[test]
    fn a_request_no_denying_policy_applies_to_is_allowed_with_a_warning() {
        let request = Fixture::new().create(object("v1", "ConfigMap", "shop", "settings", &[]));
        let answer = answer(&engine(), &request, "failed while judging this request");
        assert_eq!(answer.verdict, Outcome::Warn);
        let response = answer.review;
        assert!(response.allowed());
        let warnings = response.warnings();
        assert!(
            warnings[0].contains("failed while judging this request; it was let through"),
            "{warnings:?}"
        );
    }

    #[test]
    fn an_update_known_only_by_its_skeleton_is_taken_as_the_deletion_it_might_be() {
        let review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u", "name": "db", "namespace": "shop", "operation": "UPDATE",
                "kind": {"group": "", "version": "v1", "kind": "Secret"},
                "resource": {"group": "", "version": "v1", "resource": "secrets"},
                "userInfo": {"username": "alice"},
                "object": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}},
                "oldObject": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}}
            }
        });
        let skeleton = crate::admission::parse_review_skeleton(review.to_string().as_bytes()).unwrap();
        let answer = answer(&engine(), &skeleton, "could not judge this request");
        assert_eq!(answer.verdict, Outcome::Deny);
        assert!(answer.review.message().contains("deletion-guard"));
    }
}
