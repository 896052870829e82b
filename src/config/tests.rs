use std::collections::BTreeSet;

use super::*;
use crate::policy::Action;

fn load_text(text: &str) -> Result<PolicySet, ConfigError> {
    from_files(&[("test.yaml".to_owned(), text.to_owned())], "test.yaml")
}

fn error(text: &str) -> String {
    match load_text(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn embedded_policies_load_in_order() {
    let set = load_embedded().unwrap();
    let names: Vec<&str> = set.policies.iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        [
            "core-namespaces",
            "namespace-deletion",
            "cascading-protection",
            "delete-protection",
            "deletion-guard",
            "in-use-guard",
            "ingress-hosts",
            "duplicate-hosts"
        ]
    );
    assert_eq!(set.settings, Settings::default());
}

#[test]
fn embedded_policies_match_the_built_in_defaults() {
    use crate::policy::{core_namespaces, namespace_deletion};
    let core: core_namespaces::CoreNamespacesSpec = spec(document_spec(EMBEDDED[1].1)).unwrap();
    let defaults = core_namespaces::CoreNamespacesSpec::default();
    assert_eq!(core.namespaces, defaults.namespaces);
    assert_eq!(core.selector, defaults.selector);
    let deletion: namespace_deletion::NamespaceDeletionSpec = spec(document_spec(EMBEDDED[2].1)).unwrap();
    let defaults = namespace_deletion::NamespaceDeletionSpec::default();
    assert_eq!(deletion.budget.deletions, defaults.budget.deletions);
    assert_eq!(deletion.budget.window, defaults.budget.window);
    assert_eq!(deletion.confirmation.cooldown, defaults.confirmation.cooldown);
    assert_eq!(deletion.confirmation.exempt_label, defaults.confirmation.exempt_label);
    use crate::policy::{Spec, cascading_protection, duplicate_hosts, in_use_guard};
    let embedded = |file: &str| {
        let (_, text) = EMBEDDED.iter().find(|(name, _)| name.ends_with(file)).unwrap();
        document_spec(text)
    };
    let cascading: cascading_protection::CascadingProtectionSpec =
        spec(embedded("cascading-protection.yaml")).unwrap();
    let defaults = cascading_protection::CascadingProtectionSpec::default();
    assert_eq!((cascading.label, cascading.all_namespaces), (defaults.label, defaults.all_namespaces));
    let in_use: in_use_guard::InUseGuardSpec = spec(embedded("in-use-guard.yaml")).unwrap();
    let defaults = in_use_guard::InUseGuardSpec::default();
    assert_eq!((in_use.kinds, in_use.exempt_label), (defaults.kinds, defaults.exempt_label));
    let set = load_embedded().unwrap();
    let action = |name: &str| set.policies.iter().find(|policy| policy.name() == name).unwrap().action();
    assert_eq!(action("cascading-protection"), cascading_protection::CascadingProtectionSpec::DEFAULT_ACTION);
    assert_eq!(action("in-use-guard"), in_use_guard::InUseGuardSpec::DEFAULT_ACTION);
    assert_eq!(action("duplicate-hosts"), duplicate_hosts::DuplicateHostsSpec::DEFAULT_ACTION);
}

/// A document's spec without `action`, which the registry reads, not the kind's spec type.
fn document_spec(text: &str) -> Value {
    let value: Value = serde_yaml_ng::from_str(text).unwrap();
    let mut spec = value.get("spec").cloned().unwrap();
    spec.as_mapping_mut().unwrap().remove("action");
    spec
}

#[test]
fn several_documents_per_file_and_empty_documents_are_fine() {
    let set = load_text(
        "---
apiVersion: defender.io/v1alpha1
kind: IngressHosts
metadata: {name: hosts}
---
---
apiVersion: defender.io/v1alpha1
kind: CoreNamespaces
metadata: {name: core}
spec: {namespaces: [prod]}
",
    )
    .unwrap();
    assert_eq!(set.policies.len(), 2);
}

#[test]
fn names_the_file_document_and_field_of_an_unknown_spec_field() {
    let message = error(
        "apiVersion: defender.io/v1alpha1
kind: NamespaceDeletion
metadata: {name: ns}
spec:
  budget: {deletions: 3, windw: 10m}
",
    );
    assert!(message.starts_with("test.yaml: document 1 (ns): spec.budget"), "{message}");
    assert!(message.contains("unknown field `windw`"), "{message}");
}

#[test]
fn an_unknown_spec_field_lists_the_action_among_the_expected_fields() {
    let base = "apiVersion: defender.io/v1alpha1\nmetadata: {name: p}\n";
    let expected = |kind: &str| {
        let message = error(&format!("{base}kind: {kind}\nspec: {{actoin: warn}}"));
        let prefix = "test.yaml: document 1 (p): spec.actoin: unknown field `actoin`, expected ";
        message.strip_prefix(prefix).unwrap_or_else(|| panic!("{message}")).to_owned()
    };
    assert_eq!(expected("DuplicateHosts"), "`action`");
    assert_eq!(expected("IngressHosts"), "one of `action`, `allowWildcardSubdomains`, `allowDefaultBackend`");
    let nested = error(&format!("{base}kind: NamespaceDeletion\nspec: {{budget: {{action: warn}}}}"));
    assert!(
        nested.ends_with(
            "spec.budget.action: unknown field `action`, expected one of `enabled`, `deletions`, `window`"
        ),
        "{nested}"
    );
}

#[test]
fn the_action_is_the_documents_or_the_kinds_default() {
    let base = "apiVersion: defender.io/v1alpha1\n";
    let set = load_text(&format!(
        "{base}kind: InUseGuard\nmetadata: {{name: a}}\n---\n{base}kind: InUseGuard\nmetadata: {{name: b}}\nspec: {{action: dryrun}}\n---\n{base}kind: CoreNamespaces\nmetadata: {{name: c}}\n"
    ))
    .unwrap();
    let actions: Vec<Action> = set.policies.iter().map(|policy| policy.action()).collect();
    assert_eq!(actions, [Action::Warn, Action::Dryrun, Action::Deny]);
}

#[test]
fn names_a_field_of_the_wrong_type() {
    let message = error(
        "apiVersion: defender.io/v1alpha1
kind: NamespaceDeletion
metadata: {name: ns}
spec: {budget: {deletions: lots}}
",
    );
    assert!(message.contains("spec.budget.deletions"), "{message}");
}

#[test]
fn rejects_a_bad_duration_a_bad_action_and_a_bad_label() {
    let base = "apiVersion: defender.io/v1alpha1\nmetadata: {name: p}\n";
    let bad_duration =
        error(&format!("{base}kind: NamespaceDeletion\nspec: {{confirmation: {{cooldown: soon}}}}"));
    assert!(
        bad_duration.contains("spec.confirmation.cooldown") && bad_duration.contains("not a duration"),
        "{bad_duration}"
    );
    let bad_action = error(&format!("{base}kind: IngressHosts\nspec: {{action: block}}"));
    assert!(bad_action.contains("spec.action") && bad_action.contains("deny"), "{bad_action}");
    let bad_action = error(&format!("{base}kind: DuplicateHosts\nspec: {{action: [warn]}}"));
    assert!(bad_action.starts_with("test.yaml: document 1 (p): spec.action: "), "{bad_action}");
    let bad_label = error(&format!("{base}kind: DeletionGuard\nspec: {{exemptLabel: yes-please}}"));
    assert!(bad_label.contains("spec.exemptLabel") && bad_label.contains("key=value"), "{bad_label}");
}

#[test]
fn rejects_unknown_envelope_fields_kinds_and_api_versions() {
    let unknown_top =
        error("apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata: {name: a}\nspecs: {}\n");
    assert!(unknown_top.contains("unknown field \"specs\""), "{unknown_top}");
    let kind = error("apiVersion: defender.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: a}\n");
    assert!(kind.contains("not a Defender policy kind"), "{kind}");
    let version = error("apiVersion: kyverno.io/v1\nkind: IngressHosts\nmetadata: {name: a}\n");
    assert!(version.contains("apiVersion: expected defender.io/v1alpha1"), "{version}");
    let no_name = error("apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata: {}\n");
    assert!(no_name.contains("metadata.name: missing"), "{no_name}");
}

#[test]
fn rejects_invalid_yaml_with_its_position() {
    let message = error("apiVersion: defender.io/v1alpha1\nkind: [unclosed\n");
    assert!(message.contains("not valid YAML") && message.contains("line"), "{message}");
}

#[test]
fn rejects_duplicate_names_and_second_settings() {
    let doc = "apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata: {name: same}\n";
    assert!(error(&format!("{doc}---\n{doc}")).contains("used by two documents"));
    let settings =
        |n: &str| format!("apiVersion: defender.io/v1alpha1\nkind: Settings\nmetadata: {{name: {n}}}\n");
    assert!(error(&format!("{}---\n{}", settings("a"), settings("b"))).contains("only one Settings"));
}

#[test]
fn rejects_cross_field_mistakes_with_the_field_path() {
    let message = error(
        "apiVersion: defender.io/v1alpha1\nkind: DeletionGuard\nmetadata: {name: g}\nspec: {resources: [{kind: Widget, mode: protect}]}\n",
    );
    assert!(message.contains("spec.resources[0].group"), "{message}");
    let settings = error(
        "apiVersion: defender.io/v1alpha1\nkind: Settings\nmetadata: {name: s}\nspec: {exemptUsers: ['*:admin']}\n",
    );
    assert!(settings.contains("spec.exemptUsers[0]"), "{settings}");
}

#[test]
fn an_empty_source_is_an_error() {
    assert!(matches!(load_text("# nothing here\n"), Err(ConfigError::Empty(_))));
}

#[test]
fn loads_a_directory_and_skips_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = EMBEDDED.iter().find(|(name, _)| name.ends_with("ingress-hosts.yaml")).unwrap();
    std::fs::write(dir.path().join("hosts.yaml"), hosts.1).unwrap();
    std::fs::write(dir.path().join("README.md"), "# not a policy").unwrap();
    let set = load_path(dir.path()).unwrap();
    assert_eq!(set.policies.len(), 1);
    let missing = load_path(&dir.path().join("missing")).err().unwrap();
    assert!(missing.to_string().contains("failed to read policies"), "{missing}");
}

#[test]
fn a_reload_keeps_what_unchanged_budgets_have_spent() {
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let policies = |namespace_deletions: u32| {
        format!(
            "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata: {{name: ns}}\n\
             spec: {{budget: {{deletions: {namespace_deletions}, window: 10m}}}}\n---\n\
             apiVersion: defender.io/v1alpha1\nkind: DeletionGuard\nmetadata: {{name: guard}}\n\
             spec: {{resources: [{{kind: Pod, mode: bulk, burst: {{deletes: 5, window: 1m}}}},\n\
             {{kind: Deployment, mode: bulk, burst: {{deletes: 5, window: 1m}}}}]}}\n"
        )
    };
    let remaining = |set: &PolicySet| -> Vec<(String, u32)> {
        set.policies
            .iter()
            .flat_map(|p| p.budgets())
            .map(|g| (g.subject.clone(), g.budget.remaining("k", now)))
            .collect()
    };
    let old = load_text(&policies(3)).unwrap();
    for gauge in old.policies.iter().flat_map(|p| p.budgets()) {
        let spends = if gauge.subject == "apps/Deployment" { 1 } else { 2 };
        for object in 0..spends {
            futures::executor::block_on(gauge.budget.spend("k", &format!("object-{object}"), now)).unwrap();
        }
    }

    let mut same = load_text(&policies(3)).unwrap();
    same.adopt_budgets(&old.policies);
    let expected = [("Namespace", 1), ("Pod", 3), ("apps/Deployment", 4)];
    assert_eq!(remaining(&same), expected.map(|(s, n)| (s.to_owned(), n)));
    // Shared, not copied: a spend through either is seen by both.
    futures::executor::block_on(same.policies[0].budgets()[0].budget.spend("k", "another-object", now))
        .unwrap();
    assert_eq!(old.policies[0].budgets()[0].budget.remaining("k", now), 0);

    let mut new_quota = load_text(&policies(4)).unwrap();
    new_quota.adopt_budgets(&old.policies);
    let expected = [("Namespace", 4), ("Pod", 3), ("apps/Deployment", 4)];
    assert_eq!(remaining(&new_quota), expected.map(|(s, n)| (s.to_owned(), n)));
}

#[test]
fn merge_keys_load_as_if_spelled_out() {
    let anchored = "apiVersion: defender.io/v1alpha1
kind: DeletionGuard
metadata: {name: guard}
spec:
  resources:
    - &protected
      kind: Secret
      mode: protect
      exemptSelectors: [{matchLabels: {owner: helm}}]
    - <<: *protected
      kind: ConfigMap
    - {<<: *protected, kind: Service, exemptSelectors: []}
";
    let spelled = "apiVersion: defender.io/v1alpha1
kind: DeletionGuard
metadata: {name: guard}
spec:
  resources:
    - kind: Secret
      mode: protect
      exemptSelectors: [{matchLabels: {owner: helm}}]
    - kind: ConfigMap
      mode: protect
      exemptSelectors: [{matchLabels: {owner: helm}}]
    - kind: Service
      mode: protect
      exemptSelectors: []
";
    // The spec each document hands to its policy, read as `from_files` reads it.
    let spec_of = |text: &str| {
        let [(_, document)] = yaml::yaml_documents(text).try_into().unwrap();
        let spec: crate::policy::deletion_guard::DeletionGuardSpec =
            spec(Document::parse(document.unwrap()).unwrap().spec).unwrap();
        format!("{spec:?}")
    };
    assert_eq!(spec_of(anchored), spec_of(spelled));
    let names = |text: &str| -> Vec<String> {
        load_text(text).unwrap().policies.iter().map(|p| p.name().to_owned()).collect()
    };
    assert_eq!(names(anchored), names(spelled));
}

#[test]
fn a_merge_key_that_names_no_mapping_is_invalid_yaml() {
    let message = error(
        "apiVersion: defender.io/v1alpha1
kind: IngressHosts
metadata: {name: hosts}
spec: {<<: 5}
",
    );
    assert!(message.starts_with("test.yaml: document 1: not valid YAML"), "{message}");
}

#[test]
fn an_unknown_kind_is_answered_with_every_kind_the_registry_knows() {
    let kind = error("apiVersion: defender.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: a}\n");
    let expected = "expected one of CoreNamespaces, NamespaceDeletion, CascadingProtection, DeleteProtection, \
                    DeletionGuard, InUseGuard, IngressHosts, DuplicateHosts, Settings)";
    assert!(kind.ends_with(expected), "{kind}");
}

/// README.md names every document kind twice, in "Policy configuration"'s
/// `Kinds:` sentence and as a heading of "Policy reference": both must list
/// exactly the kinds the loader accepts.
#[test]
fn the_readme_documents_exactly_the_known_kinds() {
    let readme = include_str!("../../README.md");
    let section = |title: &str| {
        let start = readme.split(&format!("\n## {title}\n")).nth(1).unwrap_or_else(|| panic!("no {title}"));
        start.split("\n## ").next().unwrap().to_owned()
    };
    let known: BTreeSet<&str> = kinds().into_iter().collect();
    let configuration = section("Policy configuration");
    let sentence = configuration.split("Kinds: ").nth(1).and_then(|rest| rest.split(';').next()).unwrap();
    let listed: BTreeSet<&str> = sentence.split(',').map(|kind| kind.trim().trim_matches('`')).collect();
    assert_eq!(listed, known, "the Kinds: sentence of Policy configuration");
    let reference = section("Policy reference");
    let headings: BTreeSet<&str> =
        reference.lines().filter_map(|line| line.strip_prefix("**`")?.split("`**").next()).collect();
    assert_eq!(headings, known, "the headings of Policy reference");
}
