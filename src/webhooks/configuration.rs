//! The ValidatingWebhookConfiguration for a policy set.
//!
//! One webhook per [`Hook`] some policy routes to, in a fixed order; its
//! rules merge what the policies need (operations per resource, then one
//! rule per group, versions, scope and operations, in the order the policies
//! first name them). What differs between installs (names, namespace,
//! how the API server reaches Defender) comes from [`Options`].

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use kube::core::admission::Operation;

use super::cel;
use crate::policy::Policy;
use crate::routing::{Hook, Need, Scope, operation_name, operation_rank};
use crate::settings::Settings;

/// What differs between installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The configuration's own name.
    pub name: String,
    /// Defender's namespace: its Service's, and the one the webhooks for
    /// namespaced objects never judge.
    pub namespace: String,
    /// Defender's Service.
    pub service_name: String,
    /// Call Defender here instead of through the Service (out of cluster).
    pub url: Option<String>,
    /// The PEM of the CA that signed Defender's serving certificate.
    pub ca_bundle: Option<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            name: "defender".to_owned(),
            namespace: "defender-system".to_owned(),
            service_name: "defender".to_owned(),
            url: None,
            ca_bundle: None,
        }
    }
}

/// The webhook configuration that sends Defender everything `policies`
/// need, with matchConditions that skip what `settings` exempt.
pub fn configuration(
    policies: &[Policy],
    settings: &Settings,
    options: &Options,
) -> ValidatingWebhookConfiguration {
    let needs = policies.iter().flat_map(|policy| policy.routes());
    let webhooks = plan(needs).into_iter().map(|(hook, rules)| webhook(&hook, rules, settings, options));
    let labels = [("app.kubernetes.io/name", "defender"), ("app.kubernetes.io/component", "webhook")];
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(options.name.clone()),
            labels: Some(
                labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        webhooks: Some(webhooks.collect()),
    }
}

/// The first ValidatingWebhookConfiguration in `text` (YAML or JSON, one
/// document or many, `kind: List` unpacked: kubectl and kustomize output).
pub fn parse(text: &str) -> Result<ValidatingWebhookConfiguration, String> {
    for (index, document) in crate::yaml::documents(text) {
        for (at, object) in crate::yaml::objects(document.map_err(|e| format!("document {index}: {e}"))?) {
            let Ok(object) = object else { continue };
            if object.get("kind").and_then(serde_json::Value::as_str)
                == Some("ValidatingWebhookConfiguration")
            {
                return serde_json::from_value(object).map_err(|e| format!("document {index}{at}: {e}"));
            }
        }
    }
    Err("no ValidatingWebhookConfiguration found".to_owned())
}

/// The operations needed on one resource path, across policies.
struct PathNeed {
    group: String,
    versions: Vec<String>,
    scope: Scope,
    path: String,
    operations: Vec<Operation>,
}

/// The rules of each webhook some need routes to, in webhook order.
pub(super) fn plan(needs: impl IntoIterator<Item = Need>) -> Vec<(Hook, Vec<RuleWithOperations>)> {
    let mut hooks: Vec<(Hook, Vec<PathNeed>)> = Vec::new();
    for need in needs {
        let at = match hooks.iter().position(|(hook, _)| hook.rank() == need.hook.rank()) {
            Some(at) => at,
            None => {
                hooks.push((need.hook.clone(), Vec::new()));
                hooks.len() - 1
            }
        };
        let (hook, paths) = &mut hooks[at];
        merge_label_keys(hook, &need.hook);
        let path = need.path();
        let same = paths.iter_mut().find(|p| {
            p.group == need.group && p.versions == need.versions && p.scope == need.scope && p.path == path
        });
        let operations = match same {
            Some(existing) => &mut existing.operations,
            None => {
                paths.push(PathNeed {
                    group: need.group.clone(),
                    versions: need.versions.clone(),
                    scope: need.scope,
                    path,
                    operations: Vec::new(),
                });
                &mut paths.last_mut().expect("just pushed").operations
            }
        };
        for operation in need.operations {
            if !operations.contains(&operation) {
                operations.push(operation);
            }
        }
    }
    hooks.sort_by_key(|(hook, _)| hook.rank());
    hooks.into_iter().map(|(hook, paths)| (hook, rules(paths))).collect()
}

/// Two policies protecting by different labels: the webhook sends both.
fn merge_label_keys(into: &mut Hook, from: &Hook) {
    if let (Hook::DeleteProtection { label_keys }, Hook::DeleteProtection { label_keys: more }) = (into, from)
    {
        for key in more {
            if !label_keys.contains(key) {
                label_keys.push(key.clone());
            }
        }
    }
}

/// One rule per group, versions, scope and set of operations.
fn rules(paths: Vec<PathNeed>) -> Vec<RuleWithOperations> {
    let mut rules: Vec<RuleWithOperations> = Vec::new();
    for mut path in paths {
        path.operations.sort_by_key(operation_rank);
        let operations: Vec<String> =
            path.operations.iter().map(|op| operation_name(op).to_owned()).collect();
        let groups = vec![path.group];
        let scope = path.scope.as_str().to_owned();
        let same = rules.iter_mut().find(|rule| {
            rule.api_groups.as_ref() == Some(&groups)
                && rule.api_versions.as_ref() == Some(&path.versions)
                && rule.scope.as_deref() == Some(scope.as_str())
                && rule.operations.as_ref() == Some(&operations)
        });
        match same {
            Some(rule) => rule.resources.get_or_insert_with(Vec::new).push(path.path),
            None => rules.push(RuleWithOperations {
                api_groups: Some(groups),
                api_versions: Some(path.versions),
                operations: Some(operations),
                resources: Some(vec![path.path]),
                scope: Some(scope),
            }),
        }
    }
    rules
}

fn webhook(
    hook: &Hook,
    rules: Vec<RuleWithOperations>,
    settings: &Settings,
    options: &Options,
) -> ValidatingWebhook {
    let failure_policy = match hook {
        Hook::Namespaces | Hook::Deletions | Hook::DeleteProtection { .. } => "Fail",
        Hook::PodDeletions | Hook::IngressHosts => "Ignore",
    };
    ValidatingWebhook {
        name: hook.name().to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        side_effects: "NoneOnDryRun".to_owned(),
        timeout_seconds: Some(5),
        failure_policy: Some(failure_policy.to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        client_config: client_config(options),
        rules: Some(rules),
        // For a Namespace object the selector matches its own labels: the
        // namespaces webhook must see Defender's own namespace too.
        namespace_selector: Some(if hook.excludes_own_namespace() {
            not_in_namespace(&options.namespace)
        } else {
            LabelSelector::default()
        }),
        object_selector: Some(LabelSelector::default()),
        match_conditions: Some(match_conditions(hook, settings)).filter(|conditions| !conditions.is_empty()),
    }
}

fn client_config(options: &Options) -> WebhookClientConfig {
    let service = ServiceReference {
        name: options.service_name.clone(),
        namespace: options.namespace.clone(),
        path: Some("/validate".to_owned()),
        port: Some(443),
    };
    WebhookClientConfig {
        ca_bundle: options.ca_bundle.clone().map(ByteString),
        service: options.url.is_none().then_some(service),
        url: options.url.clone(),
    }
}

/// Every namespace but `namespace` (the API server sets kubernetes.io/metadata.name on each).
fn not_in_namespace(namespace: &str) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(vec![namespace.to_owned()]),
        }]),
        match_labels: None,
    }
}

fn match_conditions(hook: &Hook, settings: &Settings) -> Vec<MatchCondition> {
    let condition = |name: &str, expression: String| MatchCondition { name: name.to_owned(), expression };
    let owner_references = || {
        condition(
            "updates-only-when-owner-references-change",
            cel::UPDATES_ONLY_WHEN_OWNER_REFERENCES_CHANGE.to_owned(),
        )
    };
    let control_plane = cel::not_the_control_plane(settings).map(|e| condition("not-the-control-plane", e));
    let mut conditions = Vec::new();
    match hook {
        Hook::Namespaces => {
            let unless_live = cel::not_the_control_plane_unless_deleting_a_live_object(settings);
            conditions.extend(
                unless_live.map(|e| condition("not-the-control-plane-unless-deleting-a-live-namespace", e)),
            );
        }
        Hook::Deletions | Hook::PodDeletions => {
            conditions.push(owner_references());
            conditions.extend(control_plane);
        }
        Hook::IngressHosts => conditions.extend(control_plane),
        Hook::DeleteProtection { label_keys } => {
            conditions.push(condition("protected", cel::protected(label_keys)));
            conditions.push(owner_references());
            // The garbage collector deleting a protected object, or anyone a
            // definition, is judged (DeleteProtection holds the control plane there).
            let unless_live = cel::not_the_control_plane_unless_deleting_a_live_object(settings);
            conditions.extend(
                unless_live.map(|e| condition("not-the-control-plane-unless-deleting-a-live-object", e)),
            );
        }
    }
    conditions
}
