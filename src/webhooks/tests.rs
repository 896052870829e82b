use k8s_openapi::api::admissionregistration::v1::{RuleWithOperations, ValidatingWebhook};

use super::*;
use crate::config;
use crate::policy::deletion_guard::DeletionGuardSpec;
use crate::policy::{Action, Context, Policy, Rule, Verdict};
use crate::request::Request;
use crate::routing::{Hook, Need, Resource};
use crate::settings::Settings;

/// A policy that judges nothing and only asks to be sent `0`.
struct Routed(Vec<Need>);

impl Rule for Routed {
    fn applies(&self, _: &Request) -> bool {
        false
    }
    fn evaluate(&self, _: &Request, _: &Context) -> Verdict {
        Verdict::Pass
    }
    fn routes(&self) -> Vec<Need> {
        self.0.clone()
    }
}

fn delete_protection(label_keys: &[&str]) -> Policy {
    let hook = Hook::DeleteProtection { label_keys: label_keys.iter().map(|k| (*k).to_owned()).collect() };
    Policy::new("routed", Action::Deny, Routed(Need::deletions(hook, &Resource::everything())))
}

fn guard(resources: &str) -> Policy {
    let spec: DeletionGuardSpec = serde_yaml_ng::from_str(&format!("resources: {resources}")).unwrap();
    Policy::from_spec("deletion-guard", spec).unwrap()
}

fn generate(policies: &[Policy]) -> Vec<ValidatingWebhook> {
    configuration(policies, &Settings::default(), &Options::default()).webhooks.unwrap()
}

fn webhook<'a>(webhooks: &'a [ValidatingWebhook], hook: &Hook) -> &'a ValidatingWebhook {
    webhooks.iter().find(|w| w.name == hook.name()).unwrap_or_else(|| panic!("no webhook {}", hook.name()))
}

fn names(webhooks: &[ValidatingWebhook]) -> Vec<&str> {
    webhooks.iter().map(|w| w.name.as_str()).collect()
}

fn strings(values: &[&str]) -> Option<Vec<String>> {
    Some(values.iter().map(|v| (*v).to_owned()).collect())
}

fn rule(
    group: &str,
    versions: &str,
    resources: &[&str],
    operations: &[&str],
    scope: &str,
) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: strings(&[group]),
        api_versions: strings(&[versions]),
        operations: strings(operations),
        resources: strings(resources),
        scope: Some(scope.to_owned()),
    }
}

#[test]
fn the_embedded_policies_use_five_webhooks_in_a_fixed_order() {
    let set = config::load_embedded().unwrap();
    let webhooks = generate(&set.policies);
    assert_eq!(
        names(&webhooks),
        [
            "namespaces.defender.io",
            "deletions.defender.io",
            "pod-deletions.defender.io",
            "ingress-hosts.defender.io",
            "delete-protection.defender.io"
        ]
    );
    let failure = |hook: &Hook| webhook(&webhooks, hook).failure_policy.clone().unwrap();
    assert_eq!(failure(&Hook::Namespaces), "Fail");
    assert_eq!(failure(&Hook::Deletions), "Fail");
    assert_eq!(failure(&Hook::PodDeletions), "Ignore");
    assert_eq!(failure(&Hook::IngressHosts), "Ignore");
    assert_eq!(failure(&Hook::DeleteProtection { label_keys: vec![] }), "Fail");
}

#[test]
fn needs_merge_into_one_rule_per_group_and_operations() {
    // Both policies ask for Secrets: one rule lists them once, beside the
    // Services only deletion-guard asks for.
    let in_use = Policy::from_spec(
        "in-use",
        serde_yaml_ng::from_str::<crate::policy::in_use_guard::InUseGuardSpec>("kinds: [Secret]").unwrap(),
    )
    .unwrap();
    let policies = vec![in_use, guard("[{kind: Service, mode: protect}, {kind: Secret, mode: protect}]")];
    let deletions = webhook(&generate(&policies), &Hook::Deletions).rules.clone().unwrap();
    assert_eq!(
        deletions,
        [
            rule("", "v1", &["secrets", "services"], &["UPDATE", "DELETE"], "Namespaced"),
            rule("", "v1", &["services/status"], &["UPDATE"], "Namespaced"),
        ]
    );
}

#[test]
fn a_custom_resource_in_the_deletion_guard_is_routed_by_its_plural_at_any_version() {
    let policies = vec![guard("[{kind: Certificate, group: cert-manager.io, mode: protect}]")];
    let webhooks = generate(&policies);
    assert_eq!(names(&webhooks), ["deletions.defender.io"]);
    assert_eq!(
        webhooks[0].rules.clone().unwrap(),
        [
            rule("cert-manager.io", "*", &["certificates"], &["UPDATE", "DELETE"], "*"),
            rule("cert-manager.io", "*", &["certificates/status"], &["UPDATE"], "*"),
        ]
    );
}

#[test]
fn a_custom_resource_in_bulk_mode_goes_where_pods_go() {
    let policies = vec![guard(
        "[{kind: Pod, mode: bulk}, {kind: Widget, group: example.com, plural: widgetz, mode: bulk}]",
    )];
    let webhooks = generate(&policies);
    assert_eq!(names(&webhooks), ["pod-deletions.defender.io"]);
    let resources: Vec<String> =
        webhooks[0].rules.iter().flatten().flat_map(|r| r.resources.clone().unwrap()).collect();
    assert_eq!(resources, ["pods", "pods/status", "widgetz", "widgetz/status"]);
    assert_eq!(webhooks[0].failure_policy.as_deref(), Some("Ignore"));
}

#[test]
fn a_webhook_no_policy_routes_to_is_left_out() {
    assert!(generate(&[]).is_empty());
    let only_pods = generate(&[guard("[{kind: Pod, mode: bulk}]")]);
    assert_eq!(names(&only_pods), ["pod-deletions.defender.io"]);
    let mut set = config::load_embedded().unwrap();
    set.policies.retain(|policy| policy.name() != "delete-protection");
    assert!(!names(&generate(&set.policies)).contains(&"delete-protection.defender.io"));
}

#[test]
fn delete_protection_matches_everything_and_sends_only_labelled_objects_and_crds() {
    let webhooks = generate(&[delete_protection(&["defender.io/delete-protection"])]);
    assert_eq!(names(&webhooks), ["delete-protection.defender.io"]);
    let hook = &webhooks[0];
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(
        hook.rules.clone().unwrap(),
        [rule("*", "*", &["*"], &["UPDATE", "DELETE"], "*"), rule("*", "*", &["*/status"], &["UPDATE"], "*")]
    );
    let excluded = hook.namespace_selector.as_ref().unwrap().match_expressions.as_ref().unwrap();
    assert_eq!(excluded[0].values.as_deref(), Some(&["defender-system".to_owned()][..]));
    let conditions = hook.match_conditions.as_ref().unwrap();
    let condition_names: Vec<&str> = conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        condition_names,
        [
            "protected",
            "updates-only-when-owner-references-change",
            "not-the-control-plane-unless-deleting-a-live-object"
        ]
    );
    assert!(
        conditions[0].expression.contains("'defender.io/delete-protection' in oldObject.metadata.labels")
    );
}

#[test]
fn two_delete_protection_policies_send_the_labels_of_both() {
    let webhooks = generate(&[
        delete_protection(&["defender.io/delete-protection"]),
        delete_protection(&["policy.kruise.io/delete-protection", "defender.io/delete-protection"]),
    ]);
    assert_eq!(webhooks.len(), 1);
    let protected = &webhooks[0].match_conditions.as_ref().unwrap()[0].expression;
    assert_eq!(protected.matches("'defender.io/delete-protection' in").count(), 2, "{protected}");
    assert_eq!(protected.matches("'policy.kruise.io/delete-protection' in").count(), 2, "{protected}");
}

#[test]
fn options_place_defender_and_its_exclusion() {
    let set = config::load_embedded().unwrap();
    let options = Options {
        name: "guard".into(),
        namespace: "security".into(),
        service_name: "webhook".into(),
        ..Options::default()
    };
    let generated = configuration(&set.policies, &set.settings, &options);
    assert_eq!(generated.metadata.name.as_deref(), Some("guard"));
    for hook in generated.webhooks.as_ref().unwrap() {
        let service = hook.client_config.service.as_ref().unwrap();
        assert_eq!((service.name.as_str(), service.namespace.as_str()), ("webhook", "security"));
        let excluded =
            hook.namespace_selector.as_ref().unwrap().match_expressions.clone().unwrap_or_default();
        for requirement in excluded {
            assert_eq!(requirement.values, Some(vec!["security".to_owned()]));
        }
    }

    let outside = Options {
        url: Some("https://127.0.0.1:8443/validate".into()),
        ca_bundle: Some(b"PEM".to_vec()),
        ..options
    };
    let generated = configuration(&set.policies, &set.settings, &outside);
    for hook in generated.webhooks.as_ref().unwrap() {
        assert_eq!(hook.client_config.service, None);
        assert_eq!(hook.client_config.url.as_deref(), Some("https://127.0.0.1:8443/validate"));
        assert_eq!(hook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()), Some(&b"PEM"[..]));
    }
}

#[test]
fn without_exempt_identities_no_condition_names_the_control_plane() {
    let settings = Settings { exempt_users: vec![], exempt_groups: vec![], ..Settings::default() };
    let set = config::load_embedded().unwrap();
    let generated = configuration(&set.policies, &settings, &Options::default());
    for hook in generated.webhooks.unwrap() {
        let conditions = hook.match_conditions.unwrap_or_default();
        assert!(conditions.iter().all(|c| !c.expression.contains("userInfo")), "{}", hook.name);
    }
}

#[test]
fn unrouted_finds_a_kind_the_configuration_does_not_send() {
    let set = config::load_embedded().unwrap();
    let deployed = configuration(&set.policies, &set.settings, &Options::default());
    assert_eq!(unrouted(&set.policies, &deployed), Vec::<String>::new());

    let policies = vec![guard(
        "[{kind: Secret, mode: protect}, {kind: Certificate, group: cert-manager.io, mode: protect}]",
    )];
    let missing = unrouted(&policies, &deployed);
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(
        missing[0].starts_with("deletion-guard: UPDATE, DELETE of cert-manager.io/certificates"),
        "{missing:?}"
    );
    assert!(missing[0].contains("deletions.defender.io"), "{missing:?}");
    assert!(
        missing[1].starts_with("deletion-guard: UPDATE of cert-manager.io/certificates/status"),
        "{missing:?}"
    );

    let regenerated = configuration(&policies, &set.settings, &Options::default());
    assert_eq!(unrouted(&policies, &regenerated), Vec::<String>::new());
}

#[test]
fn unrouted_names_a_missing_webhook_and_unsent_labels() {
    let set = config::load_embedded().unwrap();
    let deployed = configuration(&[guard("[{kind: Pod, mode: bulk}]")], &set.settings, &Options::default());
    let protection = vec![delete_protection(&["defender.io/delete-protection"])];
    let missing = unrouted(&protection, &deployed);
    assert_eq!(
        missing,
        [
            "routed: UPDATE, DELETE of */*: no webhook delete-protection.defender.io in the configuration",
            "routed: UPDATE of */*/status: no webhook delete-protection.defender.io in the configuration"
        ]
    );

    let older = configuration(&protection, &set.settings, &Options::default());
    let more_labels = vec![delete_protection(&["defender.io/delete-protection", "example.com/keep"])];
    assert_eq!(
        unrouted(&more_labels, &older),
        ["routed: objects labelled example.com/keep are not sent by webhook delete-protection.defender.io"]
    );
}

#[test]
fn a_rule_in_another_webhook_does_not_count() {
    let set = config::load_embedded().unwrap();
    let mut deployed = configuration(&set.policies, &set.settings, &Options::default());
    // Pods moved to the Fail webhook: a different failure policy than the policy asked for.
    let webhooks = deployed.webhooks.as_mut().unwrap();
    let pods = webhooks.iter().position(|w| w.name == Hook::PodDeletions.name()).unwrap();
    let rules = webhooks.remove(pods).rules.unwrap();
    webhooks
        .iter_mut()
        .find(|w| w.name == Hook::Deletions.name())
        .unwrap()
        .rules
        .as_mut()
        .unwrap()
        .extend(rules);
    let missing = unrouted(&set.policies, &deployed);
    assert!(
        missing.iter().any(|line| line.contains("pods") && line.contains("pod-deletions.defender.io")),
        "{missing:?}"
    );
}
