//! cascading-protection: a protected namespace is deleted only once it is empty.
//!
//! Deleting a namespace deletes everything in it. For a namespace labelled
//! `defender.io/delete-protection=Cascading` (or every namespace, by
//! configuration), the deletion is denied while the namespace still holds
//! running or pending Pods, workloads asking for pods, or bound
//! PersistentVolumeClaims: the message counts what is left and says how to
//! empty it. What a namespace holds comes from the cluster view.

use serde::Deserialize;

use crate::policy::{Context, Rule, Spec, Verdict, Violation};
use crate::request::Request;
use crate::routing::{self, Hook, Need};
use crate::selector::{Label, Labels};
use crate::view::Contents;

/// A `CascadingProtection` document's `spec`, which is also its rule: judging needs nothing more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CascadingProtectionSpec {
    /// Namespaces carrying this label are protected.
    #[serde(default = "default_label")]
    pub label: Label,
    /// Protect every namespace, labelled or not.
    #[serde(default)]
    pub all_namespaces: bool,
}

fn default_label() -> Label {
    Label { key: "defender.io/delete-protection".to_owned(), value: "Cascading".to_owned() }
}

impl Default for CascadingProtectionSpec {
    fn default() -> Self {
        Self { label: default_label(), all_namespaces: false }
    }
}

impl CascadingProtectionSpec {
    fn protection(&self) -> String {
        if self.all_namespaces {
            "every namespace is protected against cascading deletion".to_owned()
        } else {
            format!("it is protected against cascading deletion by label {}", self.label)
        }
    }

    /// The way to lift the protection, after emptying the namespace.
    fn lift(&self, namespace: &str, context: &Context) -> String {
        if self.all_namespaces {
            context.break_glass_hint()
        } else {
            format!(
                "If everything in it may go, remove the protection: kubectl label namespace {namespace} {}-",
                self.label.key
            )
        }
    }
}

/// Deleting `namespace` while it holds `contents` is refused: `protection`
/// says why it is protected, `lift` how to lift the protection instead.
pub fn still_holds(namespace: &str, contents: &Contents, protection: &str, lift: &str) -> Violation {
    Violation::new(
        format!(
            "namespace {namespace:?} still holds {contents}, and deleting it would delete them all: {protection}"
        ),
        format!("{}. {lift}", emptying(namespace, contents)),
    )
}

/// The commands that empty the namespace.
fn emptying(namespace: &str, contents: &Contents) -> String {
    let mut steps = Vec::new();
    if contents.has_scalable_workloads() {
        let kinds: Vec<&str> = [
            (contents.deployments, "deployment"),
            (contents.stateful_sets, "statefulset"),
            (contents.replica_sets, "replicaset"),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(_, kind)| kind)
        .collect();
        steps.push(format!(
            "scale its workloads to zero (kubectl scale {} --all --replicas=0 -n {namespace})",
            kinds.join(",")
        ));
    }
    if contents.daemon_sets > 0 {
        steps.push(format!("delete its daemonsets (kubectl delete daemonsets --all -n {namespace})"));
    }
    let mut left = Vec::new();
    if contents.pods > 0 {
        left.push("pods");
    }
    if contents.bound_claims > 0 {
        left.push("PVCs");
    }
    if !left.is_empty() {
        steps.push(format!("delete the {} left", left.join(" and ")));
    }
    format!("Empty it first: {}, then delete the namespace", steps.join(", "))
}

impl Spec for CascadingProtectionSpec {
    type Rule = Self;
    const READS: &[&str] = &["metadata.name", "metadata.labels"];

    fn into_rule(self) -> Result<Self, String> {
        Ok(self)
    }
}

impl Rule for CascadingProtectionSpec {
    fn routes(&self) -> Vec<Need> {
        Need::deletions(Hook::Namespaces, &routing::kinds::resource("", "Namespace", None))
    }

    fn applies(&self, request: &Request) -> bool {
        request.is_kind("", "Namespace") && request.is_delete() && request.sub_resource().is_none()
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        let namespace = request.name();
        // A collection-level review names no namespace; core-namespaces refuses it.
        if namespace.is_empty() {
            return Verdict::Pass;
        }
        if !self.all_namespaces && !self.label.is_on(request.labels()) {
            return Verdict::Pass;
        }
        let contents = context.view.contents(namespace);
        if contents.is_empty() {
            return Verdict::Pass;
        }
        Verdict::Violation(still_holds(
            namespace,
            &contents,
            &self.protection(),
            &self.lift(namespace, context),
        ))
    }

    fn guards_namespace_contents(&self, labels: &Labels) -> bool {
        self.all_namespaces || self.label.is_on(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, assert_contains, namespace, namespace_with_labels};
    use serde_json::json;

    const PROTECTED: &[(&str, &str)] = &[("defender.io/delete-protection", "Cascading")];

    fn policy() -> CascadingProtectionSpec {
        CascadingProtectionSpec::default()
    }

    fn pod(name: &str, phase: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
               "spec": {"containers": [{"name": "app"}]}, "status": {"phase": phase}})
    }

    fn workload(kind: &str, name: &str, replicas: i32) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "shop"},
               "spec": {"replicas": replicas}})
    }

    fn claim(name: &str, phase: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "shop"},
               "status": {"phase": phase}})
    }

    #[test]
    fn denies_deleting_a_labelled_namespace_that_holds_pods_workloads_and_volumes_with_counts() {
        let fixture = Fixture::new().with_objects(&[
            pod("web-1", "Running"),
            pod("web-2", "Pending"),
            pod("web-3", "Running"),
            pod("job-1", "Succeeded"),
            workload("Deployment", "web", 3),
            workload("Deployment", "idle", 0),
            claim("data-0", "Bound"),
            claim("data-1", "Bound"),
            claim("pending", "Pending"),
        ]);
        let violation =
            fixture.violation(&policy(), &fixture.delete(namespace_with_labels("shop", PROTECTED)));
        assert_eq!(
            violation.reason,
            "namespace \"shop\" still holds 3 running or pending pods, 1 deployment with replicas > 0, \
             2 bound PVCs, and deleting it would delete them all: it is protected against cascading deletion \
             by label defender.io/delete-protection=Cascading"
        );
        assert_eq!(
            violation.remedy,
            "Empty it first: scale its workloads to zero (kubectl scale deployment --all --replicas=0 -n shop), \
             delete the pods and PVCs left, then delete the namespace. If everything in it may go, remove the \
             protection: kubectl label namespace shop defender.io/delete-protection-"
        );
    }

    #[test]
    fn each_workload_kind_counts_and_is_scaled_or_deleted_by_name() {
        let mut daemon_set = workload("DaemonSet", "agent", 0);
        daemon_set["status"] = json!({"currentNumberScheduled": 2, "desiredNumberScheduled": 2});
        let fixture = Fixture::new().with_objects(&[
            workload("StatefulSet", "db", 1),
            workload("ReplicaSet", "standalone", 2),
            daemon_set,
        ]);
        let violation =
            fixture.violation(&policy(), &fixture.delete(namespace_with_labels("shop", PROTECTED)));
        assert_contains(
            &violation.reason,
            "1 statefulset with replicas > 0, 1 replicaset with replicas > 0, 1 daemonset with pods scheduled",
        );
        assert_contains(&violation.remedy, "kubectl scale statefulset,replicaset --all --replicas=0 -n shop");
        assert_contains(&violation.remedy, "kubectl delete daemonsets --all -n shop");
    }

    #[test]
    fn an_empty_namespace_an_unlabelled_one_and_other_namespaces_contents_pass() {
        let fixture = Fixture::new().with_objects(&[pod("web-1", "Running")]);
        let context = fixture.context();
        let empty = fixture.delete(namespace_with_labels("empty", PROTECTED));
        assert!(matches!(policy().evaluate(&empty, &context), Verdict::Pass));
        let unlabelled = fixture.delete(namespace("shop"));
        assert!(matches!(policy().evaluate(&unlabelled, &context), Verdict::Pass));
        let other_value =
            fixture.delete(namespace_with_labels("shop", &[("defender.io/delete-protection", "None")]));
        assert!(matches!(policy().evaluate(&other_value, &context), Verdict::Pass));
    }

    #[test]
    fn all_namespaces_protects_unlabelled_ones_and_names_break_glass_as_the_way_out() {
        let fixture = Fixture::new().with_objects(&[pod("web-1", "Running")]);
        let policy = CascadingProtectionSpec { all_namespaces: true, ..CascadingProtectionSpec::default() };
        let violation = fixture.violation(&policy, &fixture.delete(namespace("shop")));
        assert!(violation.reason.ends_with("every namespace is protected against cascading deletion"));
        assert_contains(&violation.remedy, "delete the pods left");
        assert_contains(&violation.remedy, "defender:break-glass");
    }

    #[test]
    fn applies_to_namespace_deletes_only() {
        let fixture = Fixture::new();
        assert!(!policy().applies(&fixture.create(namespace_with_labels("shop", PROTECTED))));
        assert!(!policy().applies(&fixture.delete(crate::testing::object("v1", "Pod", "shop", "web", &[]))));
        let legacy = fixture.legacy_collection_delete("", "v1", "Namespace", None);
        assert!(matches!(policy().evaluate(&legacy, &fixture.context()), Verdict::Pass));
    }
}
