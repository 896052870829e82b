//! core-namespaces: the namespaces the cluster runs on cannot be deleted, nor
//! stripped of the label that marks them core.

use serde::Deserialize;

use crate::policy::{Context, Rule, Spec, Verdict, Violation};
use crate::request::{Operation, Request, labels_of};
use crate::routing::{self, Hook, Need};
use crate::selector::{LabelSelector, Labels};

/// A `CoreNamespaces` document's `spec`, which is also its rule: judging needs nothing more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CoreNamespacesSpec {
    /// Namespaces that are core by name.
    #[serde(default = "default_namespaces")]
    pub namespaces: Vec<String>,
    /// Namespaces that are core by label.
    #[serde(default = "default_selector")]
    pub selector: LabelSelector,
}

/// The namespaces Kubernetes itself creates and depends on.
pub const KUBERNETES_NAMESPACES: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "default"];

fn default_namespaces() -> Vec<String> {
    KUBERNETES_NAMESPACES.iter().copied().chain(["defender-system"]).map(String::from).collect()
}

fn default_selector() -> LabelSelector {
    LabelSelector::matching_labels([("defender.io/core".to_owned(), "true".to_owned())].into())
}

impl Default for CoreNamespacesSpec {
    fn default() -> Self {
        Self { namespaces: default_namespaces(), selector: default_selector() }
    }
}

impl CoreNamespacesSpec {
    fn is_listed(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|core| core == namespace)
    }

    fn check_delete(&self, request: &Request, context: &Context) -> Verdict {
        let name = request.name();
        if name.is_empty() {
            return Verdict::Violation(Violation::absolute(
                "deleting all namespaces as one collection is never allowed: it includes the core namespaces",
                "Delete namespaces one at a time, by name",
            ));
        }
        let why = if self.is_listed(name) {
            "is a core namespace".to_owned()
        } else if context.own_namespace == Some(name) {
            "is Defender's own namespace, a core namespace,".to_owned()
        } else if self.selector.matches(request.labels()) {
            format!("is marked core (label {})", self.selector)
        } else {
            return Verdict::Pass;
        };
        Verdict::Violation(Violation::absolute(
            format!("namespace {name:?} {why} and cannot be deleted"),
            context.break_glass_hint(),
        ))
    }

    /// A change (create, update, or a status or finalize subresource
    /// update, which keep metadata changes too) must not strip a core
    /// namespace of its label nor give it a label that disarms a policy.
    fn check_change(&self, request: &Request, context: &Context) -> Verdict {
        let old = labels_of(request.old_object());
        let new = labels_of(request.object());
        let name = request.name();
        if self.selector.matches(old) && !self.selector.matches(new) {
            return Verdict::Violation(Violation::absolute(
                format!(
                    "namespace {name:?} is a core namespace and must keep its label {}; \
                     removing it would let the namespace be deleted",
                    self.selector
                ),
                context.break_glass_hint(),
            ));
        }
        let by_name = self.is_listed(name) || context.own_namespace == Some(name);
        let was_core = by_name || (request.old_object().is_some() && self.selector.matches(old));
        let is_core = by_name || self.selector.matches(new);
        // Refused when added to a core namespace, or carried into core status.
        let added = context
            .namespace_exemptions
            .iter()
            .find(|label| label.is_on(new) && (!label.is_on(old) || !was_core));
        match added {
            Some(label) if is_core => Verdict::Violation(Violation::absolute(
                format!(
                    "namespace {name:?} is a core namespace and cannot carry label {label}: it would turn off \
                     Defender's protection for everything in it"
                ),
                format!(
                    "Label the objects you mean to delete instead (kubectl label <kind> <name> -n {name} {label}). {}",
                    context.break_glass_hint()
                ),
            )),
            _ => Verdict::Pass,
        }
    }
}

impl Spec for CoreNamespacesSpec {
    type Rule = Self;
    const READS: &[&str] = &["metadata.name", "metadata.labels"];

    fn into_rule(self) -> Result<Self, String> {
        Ok(self)
    }
}

impl Rule for CoreNamespacesSpec {
    /// Every write of a namespace, its status and finalize subresources
    /// included: they keep label changes, and the core label is judged.
    fn routes(&self) -> Vec<Need> {
        let namespaces = routing::kinds::resource("", "Namespace", None);
        Need::every(Hook::Namespaces, &namespaces, &[Operation::Create, Operation::Update, Operation::Delete])
    }

    fn marks_core(&self, namespace: &str, labels: &Labels) -> bool {
        self.is_listed(namespace) || self.selector.matches(labels)
    }

    fn applies(&self, request: &Request) -> bool {
        request.is_kind("", "Namespace") && *request.operation() != Operation::Connect
    }

    /// Nothing in a healthy control plane deletes a core namespace: the
    /// garbage collector or namespace controller trying to was sent by
    /// someone (an owner reference, a finalize call).
    fn holds_control_plane(&self, request: &Request) -> bool {
        request.is_delete()
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        match request.operation() {
            Operation::Delete => self.check_delete(request, context),
            _ => self.check_change(request, context),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, assert_contains, namespace, namespace_with_labels};

    fn policy() -> CoreNamespacesSpec {
        CoreNamespacesSpec::default()
    }

    #[test]
    fn rejects_deleting_each_default_core_namespace() {
        let fixture = Fixture::new();
        for name in ["kube-system", "kube-public", "kube-node-lease", "default", "defender-system"] {
            let request = fixture.delete(namespace(name));
            let violation = fixture.violation(&policy(), &request);
            assert!(violation.absolute);
            assert_contains(&violation.reason, &format!("namespace {name:?} is a core namespace"));
        }
    }

    #[test]
    fn rejects_deleting_a_namespace_marked_core_by_label() {
        let fixture = Fixture::new();
        let request = fixture.delete(namespace_with_labels("payments", &[("defender.io/core", "true")]));
        let violation = fixture.violation(&policy(), &request);
        assert_contains(&violation.reason, "label defender.io/core=true");
    }

    #[test]
    fn accepts_deleting_an_ordinary_namespace() {
        let fixture = Fixture::new();
        let request = fixture.delete(namespace("scratch"));
        assert!(matches!(policy().evaluate(&request, &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn rejects_a_collection_delete_item_of_a_core_namespace() {
        let fixture = Fixture::new();
        let request = fixture.delete_collection_item(namespace("kube-system"));
        assert_contains(&fixture.violation(&policy(), &request).reason, "kube-system");
    }

    #[test]
    fn rejects_the_legacy_collection_review_without_an_object() {
        let fixture = Fixture::new();
        let request = fixture.legacy_collection_delete("", "v1", "Namespace", None);
        assert_contains(&fixture.violation(&policy(), &request).reason, "all namespaces");
    }

    #[test]
    fn rejects_removing_the_core_label() {
        let fixture = Fixture::new();
        let old = namespace_with_labels("payments", &[("defender.io/core", "true")]);
        let new = namespace_with_labels("payments", &[("team", "pay")]);
        let violation = fixture.violation(&policy(), &fixture.update(old, new));
        assert_contains(&violation.reason, "must keep its label");
    }

    #[test]
    fn accepts_other_updates_and_adding_the_label() {
        let fixture = Fixture::new();
        let core = namespace_with_labels("payments", &[("defender.io/core", "true")]);
        let relabelled = namespace_with_labels("payments", &[("defender.io/core", "true"), ("team", "pay")]);
        let plain = namespace("payments");
        for (old, new) in [(core.clone(), relabelled), (plain, core)] {
            let request = fixture.update(old, new);
            assert!(matches!(policy().evaluate(&request, &fixture.context()), Verdict::Pass));
        }
    }

    #[test]
    fn core_namespaces_never_carry_a_namespace_exemption_label() {
        let fixture = Fixture::new();
        let exempt = [("defender.io/deletion-allowed", "true")];
        let cases = [
            (namespace("kube-system"), namespace_with_labels("kube-system", &exempt)),
            (
                namespace_with_labels("payments", &[("defender.io/core", "true")]),
                namespace_with_labels("payments", &[("defender.io/core", "true"), exempt[0]]),
            ),
        ];
        for (old, new) in cases {
            let violation = fixture.violation(&policy(), &fixture.update(old, new.clone()));
            assert_contains(&violation.reason, "cannot carry label defender.io/deletion-allowed=true");
            assert!(violation.absolute);
            let mut status = fixture.update(namespace("kube-system"), new.clone());
            status = status.with_sub_resource("status");
            assert!(matches!(policy().evaluate(&status, &fixture.context()), Verdict::Violation(_)));
        }
        let created = namespace_with_labels("payments", &[("defender.io/core", "true"), exempt[0]]);
        assert!(matches!(
            policy().evaluate(&fixture.create(created), &fixture.context()),
            Verdict::Violation(_)
        ));
        let exempt_plain = namespace_with_labels("payments", &exempt);
        let made_core = namespace_with_labels("payments", &[("defender.io/core", "true"), exempt[0]]);
        assert!(matches!(
            policy().evaluate(&fixture.update(exempt_plain, made_core), &fixture.context()),
            Verdict::Violation(_)
        ));
        let labelled_core = namespace_with_labels("kube-system", &exempt);
        let relabelled = namespace_with_labels("kube-system", &[exempt[0], ("team", "platform")]);
        let untouched = fixture.update(labelled_core, relabelled);
        assert!(matches!(policy().evaluate(&untouched, &fixture.context()), Verdict::Pass));
        let ordinary = fixture.update(namespace("scratch"), namespace_with_labels("scratch", &exempt));
        assert!(matches!(policy().evaluate(&ordinary, &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn only_namespace_deletions_hold_the_control_plane() {
        let fixture = Fixture::new();
        assert!(policy().holds_control_plane(&fixture.delete(namespace("kube-system"))));
        assert!(!policy().holds_control_plane(&fixture.update(namespace("a"), namespace("a"))));
    }

    #[test]
    fn does_not_apply_to_other_kinds() {
        let fixture = Fixture::new();
        let configmap = crate::testing::object("v1", "ConfigMap", "kube-system", "default", &[]);
        assert!(!policy().applies(&fixture.delete(configmap)));
    }

    #[test]
    fn names_the_break_glass_group_as_the_way_out() {
        let fixture = Fixture::new();
        let violation = fixture.violation(&policy(), &fixture.delete(namespace("default")));
        assert_contains(&violation.remedy, "defender:break-glass");
    }

    #[test]
    fn defenders_own_namespace_is_core_even_when_unlisted() {
        let fixture = Fixture::new();
        let request = fixture.delete(namespace("guards"));
        let policy = CoreNamespacesSpec::default();
        assert!(matches!(policy.evaluate(&request, &fixture.context()), Verdict::Pass | Verdict::Spend(_)));
        let context = fixture.context().with_own_namespace(Some("guards"));
        let Verdict::Violation(violation) = policy.evaluate(&request, &context) else { panic!("not denied") };
        assert_contains(&violation.reason, "Defender's own namespace");
    }
}
