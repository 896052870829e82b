//! The CEL expressions of the webhooks' matchConditions.
//!
//! A condition that fails to evaluate applies the webhook's failurePolicy
//! (with Fail: the request is refused), so every field access is guarded by
//! a null check or `has()`. The layout (line breaks, indentation) is the one
//! deploy/base/validatingwebhookconfiguration.yaml folds to, so the generated
//! configuration and the committed one compare equal.

use crate::settings::{NODE_USER_PREFIX, NODES_GROUP, Settings};

/// Only owner-reference changes among updates leave the API server: the
/// garbage collector deletes an object whose owners are gone, so such an
/// update is a deletion by proxy.
pub const UPDATES_ONLY_WHEN_OWNER_REFERENCES_CHANGE: &str = "request.operation != 'UPDATE' || \
     (has(object.metadata.ownerReferences)\n    && (!has(oldObject.metadata.ownerReferences)\n        || \
     object.metadata.ownerReferences != oldObject.metadata.ownerReferences))";

/// `text` as a CEL string literal.
pub fn quote(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

/// True for requests from anyone but the control plane identities the
/// settings exempt; `None` when they exempt no one.
pub fn not_the_control_plane(settings: &Settings) -> Option<String> {
    let mut exempt = Vec::new();
    let (prefixes, users): (Vec<&String>, Vec<&String>) =
        settings.exempt_users.iter().partition(|user| user.ends_with('*'));
    if !users.is_empty() {
        let listed: Vec<String> = users.iter().map(|user| format!("  {}", quote(user))).collect();
        exempt.push(format!("request.userInfo.username in [\n{}\n]", listed.join(",\n")));
    }
    for prefix in prefixes {
        let prefix = prefix.trim_end_matches('*');
        exempt.push(format!("request.userInfo.username.startsWith({})", quote(prefix)));
    }
    for group in &settings.exempt_groups {
        // Kubelets are users named system:node:*; one that only claims the group is judged.
        exempt.push(if group == NODES_GROUP {
            format!(
                "({} in request.userInfo.groups\n    && request.userInfo.username.startsWith({}))",
                quote(group),
                quote(NODE_USER_PREFIX)
            )
        } else {
            format!("{} in request.userInfo.groups", quote(group))
        });
    }
    (!exempt.is_empty()).then(|| format!("!({})", exempt.join(" || ")))
}

/// [`not_the_control_plane`], except that deleting an object not yet being
/// deleted is sent whoever asks: nothing in a healthy control plane deletes
/// a live namespace, and the protections that hold the control plane
/// (`Policy::holds_control_plane`) must see the garbage collector's deletions.
pub fn not_the_control_plane_unless_deleting_a_live_object(settings: &Settings) -> Option<String> {
    not_the_control_plane(settings).map(|others| {
        format!(
            "(request.operation == 'DELETE' && oldObject != null\n && \
             !has(oldObject.metadata.deletionTimestamp))\n|| {others}"
        )
    })
}

/// The requests the delete-protection webhook sends: any CustomResourceDefinition,
/// and any object that carries (or carried) one of `label_keys`. Namespaces
/// are left out: the namespaces webhook already sends every namespace request.
pub fn protected(label_keys: &[String]) -> String {
    let mut protected = vec![
        "(request.resource.group == 'apiextensions.k8s.io'\n     && request.resource.resource == \
              'customresourcedefinitions')"
            .to_owned(),
    ];
    if !label_keys.is_empty() {
        for object in ["oldObject", "object"] {
            let carried: Vec<String> =
                label_keys.iter().map(|key| format!("{} in {object}.metadata.labels", quote(key))).collect();
            protected.push(format!(
                "({object} != null && has({object}.metadata) && has({object}.metadata.labels)\n        && ({}))",
                carried.join("\n            || ")
            ));
        }
    }
    format!(
        "!(request.resource.group == '' && request.resource.resource == 'namespaces') && ({})",
        protected.join("\n    || ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_what_would_end_the_literal() {
        assert_eq!(quote("system:kube-scheduler"), "'system:kube-scheduler'");
        assert_eq!(quote("it's\\"), "'it\\'s\\\\'");
    }

    #[test]
    fn the_control_plane_condition_names_users_prefixes_and_groups() {
        let settings = Settings {
            exempt_users: vec!["system:kube-scheduler".into(), "system:serviceaccount:ops:*".into()],
            exempt_groups: vec!["system:nodes".into(), "ops:robots".into()],
            ..Settings::default()
        };
        let expression = not_the_control_plane(&settings).unwrap();
        assert!(expression.starts_with("!(request.userInfo.username in [\n  'system:kube-scheduler'\n]"));
        assert!(
            expression.contains(" || request.userInfo.username.startsWith('system:serviceaccount:ops:')")
        );
        assert!(expression.contains("'system:nodes' in request.userInfo.groups"));
        assert!(expression.contains("startsWith('system:node:')"));
        assert!(expression.ends_with(" || 'ops:robots' in request.userInfo.groups)"));
    }

    #[test]
    fn no_exemptions_make_no_condition() {
        let settings = Settings { exempt_users: vec![], exempt_groups: vec![], ..Settings::default() };
        assert_eq!(not_the_control_plane(&settings), None);
        assert_eq!(not_the_control_plane_unless_deleting_a_live_object(&settings), None);
    }

    #[test]
    fn protection_reads_labels_only_after_checking_they_are_there() {
        let expression = protected(&["defender.io/delete-protection".into()]);
        for object in ["oldObject", "object"] {
            let guard =
                format!("{object} != null && has({object}.metadata) && has({object}.metadata.labels)");
            let read = format!("'defender.io/delete-protection' in {object}.metadata.labels");
            let (guarded, read_at) = (expression.find(&guard).unwrap(), expression.find(&read).unwrap());
            assert!(guarded < read_at, "{expression}");
        }
        assert!(expression.contains("'customresourcedefinitions'"));
        assert!(
            expression
                .starts_with("!(request.resource.group == '' && request.resource.resource == 'namespaces')")
        );
        assert!(!protected(&[]).contains("metadata.labels"));
    }
}
