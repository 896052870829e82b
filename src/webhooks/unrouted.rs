//! What a policy set needs that a webhook configuration does not send.
//!
//! A need counts as routed only by the webhook of its [`Hook`]'s name: a rule
//! in another webhook may carry another failure policy, or match conditions
//! (delete-protection matches every resource, but sends only labelled objects).

use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration,
};

use super::cel;
use crate::policy::Policy;
use crate::routing::{Hook, Need, operation_name, operation_rank};

/// One line per need of `policies` that `configuration` does not route:
/// `deletion-guard: DELETE, UPDATE of cert-manager.io/certificates ...`.
pub fn unrouted(policies: &[Policy], configuration: &ValidatingWebhookConfiguration) -> Vec<String> {
    let webhooks = configuration.webhooks.as_deref().unwrap_or_default();
    let mut lines = Vec::new();
    for policy in policies {
        for need in policy.routes() {
            let line = match webhooks.iter().find(|webhook| webhook.name == need.hook.name()) {
                None => Some(format!(
                    "{}: {} of {}: no webhook {} in the configuration",
                    policy.name(),
                    operations(&need.operations.iter().collect::<Vec<_>>()),
                    need.describe(),
                    need.hook.name()
                )),
                Some(webhook) => missing(&need, webhook).map(|what| format!("{}: {what}", policy.name())),
            };
            if let Some(line) = line.filter(|line| !lines.contains(line)) {
                lines.push(line);
            }
        }
    }
    lines
}

/// What of `need` the (same-named) `webhook` does not send.
fn missing(need: &Need, webhook: &ValidatingWebhook) -> Option<String> {
    let rules = webhook.rules.as_deref().unwrap_or_default();
    let unsent: Vec<_> = need
        .operations
        .iter()
        .filter(|operation| !rules.iter().any(|rule| routes(rule, need, operation_name(operation))))
        .collect();
    if !unsent.is_empty() {
        return Some(format!(
            "{} of {}: not routed to webhook {}",
            operations(&unsent),
            need.describe(),
            webhook.name
        ));
    }
    let Hook::DeleteProtection { label_keys } = &need.hook else { return None };
    let conditions = webhook.match_conditions.as_deref().unwrap_or_default();
    let unsent: Vec<&String> = label_keys
        .iter()
        .filter(|key| !conditions.iter().any(|c| c.expression.contains(&cel::quote(key))))
        .collect();
    (!unsent.is_empty()).then(|| {
        let keys: Vec<&str> = unsent.iter().map(|key| key.as_str()).collect();
        format!("objects labelled {} are not sent by webhook {}", keys.join(", "), webhook.name)
    })
}

fn operations(operations: &[&kube::core::admission::Operation]) -> String {
    let mut operations = operations.to_vec();
    operations.sort_by_key(|operation| operation_rank(operation));
    operations.iter().map(|operation| operation_name(operation)).collect::<Vec<_>>().join(", ")
}

/// Whether `rule` sends `operation` of `need`'s group and resource path, as
/// the API server matches rules (`*` wildcards; `*/*` every resource and
/// subresource, `pods/*` every subresource of pods).
fn routes(rule: &RuleWithOperations, need: &Need, operation: &str) -> bool {
    let listed = |values: &Option<Vec<String>>, wanted: &str| {
        values.as_deref().unwrap_or_default().iter().any(|value| value == "*" || value == wanted)
    };
    let resources = rule.resources.as_deref().unwrap_or_default();
    listed(&rule.api_groups, &need.group)
        && listed(&rule.operations, operation)
        && resources
            .iter()
            .any(|resource| resource_matches(resource, &need.resource, need.subresource.as_deref()))
}

fn resource_matches(listed: &str, resource: &str, subresource: Option<&str>) -> bool {
    if listed == "*/*" {
        return true;
    }
    let (listed_resource, listed_subresource) = match listed.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource)),
        None => (listed, None),
    };
    let resource_matches = listed_resource == "*" || listed_resource == resource;
    let subresource_matches = match (listed_subresource, subresource) {
        (None, None) => true,
        (Some("*"), Some(_)) => true,
        (Some(listed), Some(wanted)) => listed == wanted,
        _ => false,
    };
    resource_matches && subresource_matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_the_api_server_does() {
        assert!(resource_matches("*", "certificates", None));
        assert!(!resource_matches("*", "certificates", Some("status")));
        assert!(resource_matches("*/*", "certificates", Some("status")));
        assert!(resource_matches("*/*", "certificates", None));
        assert!(resource_matches("pods/*", "pods", Some("status")));
        assert!(!resource_matches("pods/*", "pods", None));
        assert!(resource_matches("*/status", "services", Some("status")));
        assert!(!resource_matches("services", "secrets", None));
        assert!(!resource_matches("services/status", "services", None));
    }
}
