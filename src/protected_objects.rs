//! Objects protected against deletion by label, as deleting their namespace
//! sees them.
//!
//! An object labelled `defender.io/delete-protection: Always` is not deleted
//! until the label is removed, but deleting its namespace would delete it
//! anyway: the namespace controller that empties the namespace is exempt.
//! So a namespace is not deleted while it holds such objects. Which objects
//! of every kind carry the label is a fact Defender cannot keep in memory,
//! so it is looked up only when a namespace is about to go: the server lists
//! them (metadata only, by label, bounded) before judging; the harness keeps
//! the labelled objects a suite declares.

use std::collections::BTreeMap;

use crate::custom_resources;
use crate::request::Request;

/// How every protection label key ends (`defender.io/delete-protection`,
/// `policy.kruise.io/delete-protection`): offline views keep objects
/// carrying one, whatever the policy's keys.
pub const LABEL_SUFFIX: &str = "/delete-protection";

/// The value that protects an object only while deleting it would take
/// something with it. Every other value (`Always`, or one not understood)
/// protects it until the label is removed.
pub const CASCADING: &str = "Cascading";

/// The kinds (group `apps`) whose deletion takes their pods with them.
pub const WORKLOAD_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"];

/// Objects listed per resource type and label key before the lookup stops:
/// the message then says "at least".
pub const PAGE_SIZE: u32 = 100;

/// One object in a namespace carrying a protection label: it may keep its
/// namespace from being deleted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtectedObject {
    pub kind: String,
    /// `""` for the core group.
    pub group: String,
    /// The resource name (`certificates`), when known: kubectl takes the
    /// lowercased kind too.
    pub plural: Option<String>,
    pub namespace: String,
    pub name: String,
    /// Its labels under the protection keys looked for.
    pub labels: BTreeMap<String, String>,
    /// Its uid, by which running objects name it as their owner; `None`
    /// for an object declared without one.
    pub uid: Option<String>,
}

impl ProtectedObject {
    /// `secret "shop/db"`, the way denial messages name objects.
    pub fn describe(&self) -> String {
        format!("{} \"{}/{}\"", self.kind.to_lowercase(), self.namespace, self.name)
    }

    /// How kubectl names its type: `secret`, or `certificates.cert-manager.io`
    /// for a custom resource (a kind's name alone may be ambiguous there).
    pub fn kubectl_resource(&self) -> String {
        custom_resources::kubectl_resource(&self.kind, &self.group, self.plural.as_deref())
    }

    /// The labels among `keys` that protect it until removed (`Always`, or a
    /// value that is not `Cascading`), in the order of `keys`.
    pub fn protecting_labels<'a>(&'a self, keys: &[&str]) -> Vec<(&'a str, &'a str)> {
        keys.iter()
            .filter_map(|key| self.labels.get_key_value(*key))
            .filter(|(_, value)| *value != CASCADING)
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }

    /// The labels among `keys` that say `Cascading`, in the order of `keys`.
    pub fn cascading_labels<'a>(&'a self, keys: &[&str]) -> Vec<(&'a str, &'a str)> {
        keys.iter()
            .filter_map(|key| self.labels.get_key_value(*key))
            .filter(|(_, value)| *value == CASCADING)
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }

    /// Adds what another copy of this object (found under another key or
    /// group, or read at another moment) says of its labels: for a key both
    /// carry, the value that protects more wins, so a stale copy never
    /// weakens a fresh one.
    pub fn merge_labels(&mut self, labels: BTreeMap<String, String>) {
        for (key, value) in labels {
            match self.labels.get(&key) {
                Some(kept) if kept != CASCADING || value == CASCADING => {}
                _ => {
                    self.labels.insert(key, value);
                }
            }
        }
    }

    /// A Deployment, StatefulSet, ReplicaSet or DaemonSet: deleting it
    /// deletes its pods.
    pub fn is_workload(&self) -> bool {
        self.group == "apps" && WORKLOAD_KINDS.contains(&self.kind.as_str())
    }
}

/// The protected objects found in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Sorted by kind, group and name.
    pub objects: Vec<ProtectedObject>,
    /// The lookup stopped at a bound: there are at least this many.
    pub at_least: bool,
}

/// The outcome of looking: what was found, or why nothing could be.
pub type Lookup = Result<Found, String>;

/// A lookup made before judging, for the one namespace a request deletes.
#[derive(Debug, Clone)]
pub struct Prefetched {
    pub namespace: String,
    pub lookup: Lookup,
}

/// The namespace a request deletes (or, by an owner-reference change, lets
/// the garbage collector delete), unless it is already being deleted: its
/// deletion is then only being finished.
pub fn deleted_namespace(request: &Request) -> Option<&str> {
    if !request.is_kind("", "Namespace") {
        return None;
    }
    let deletes = request.is_delete() || request.changes_owner_references();
    let name = request.name();
    (deletes && request.deletion_timestamp().is_none() && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(group: &str, kind: &str, labels: &[(&str, &str)]) -> ProtectedObject {
        ProtectedObject {
            kind: kind.to_owned(),
            group: group.to_owned(),
            plural: None,
            namespace: "shop".to_owned(),
            name: "web".to_owned(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            uid: None,
        }
    }

    #[test]
    fn names_objects_the_way_kubectl_takes_them() {
        let secret = object("", "Secret", &[]);
        assert_eq!(
            (secret.describe().as_str(), secret.kubectl_resource().as_str()),
            ("secret \"shop/web\"", "secret")
        );
        let deployment = object("apps", "Deployment", &[]);
        assert_eq!(deployment.kubectl_resource(), "deployment");
        let certificate = object("cert-manager.io", "Certificate", &[]);
        assert_eq!(certificate.kubectl_resource(), "certificate.cert-manager.io");
        let listed = ProtectedObject { plural: Some("certificates".to_owned()), ..certificate };
        assert_eq!(listed.kubectl_resource(), "certificates.cert-manager.io");
        assert!(deployment.is_workload() && !listed.is_workload());
        assert!(!object("example.com", "Deployment", &[]).is_workload());
    }

    #[test]
    fn only_a_namespace_not_already_on_its_way_out_is_looked_in() {
        use crate::testing::{Fixture, namespace};
        let fixture = Fixture::new();
        assert_eq!(deleted_namespace(&fixture.delete(namespace("shop"))), Some("shop"));
        let mut terminating = namespace("shop");
        terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        assert_eq!(deleted_namespace(&fixture.delete(terminating)), None);
        let secret = crate::testing::object("v1", "Secret", "shop", "db", &[]);
        assert_eq!(deleted_namespace(&fixture.delete(secret)), None);
        let relabelled = crate::testing::namespace_with_labels("shop", &[("team", "web")]);
        assert_eq!(deleted_namespace(&fixture.update(namespace("shop"), relabelled)), None);
    }

    #[test]
    fn copies_of_one_object_merge_to_the_labels_that_protect_most() {
        let (defender, kruise) = ("defender.io/delete-protection", "policy.kruise.io/delete-protection");
        let mut object = object("", "Secret", &[(defender, "Cascading")]);
        object.merge_labels([(kruise.to_owned(), "Always".to_owned())].into());
        object.merge_labels([(defender.to_owned(), "Always".to_owned())].into());
        assert_eq!(object.protecting_labels(&[defender, kruise]), [(defender, "Always"), (kruise, "Always")]);
        object.merge_labels([(defender.to_owned(), "Cascading".to_owned())].into());
        assert_eq!(object.labels[defender], "Always");
    }

    #[test]
    fn every_value_but_cascading_protects_until_removed() {
        let keys = ["defender.io/delete-protection", "policy.kruise.io/delete-protection"];
        let both = object(
            "",
            "Secret",
            &[("policy.kruise.io/delete-protection", "Always"), ("defender.io/delete-protection", "always")],
        );
        assert_eq!(
            both.protecting_labels(&keys),
            [("defender.io/delete-protection", "always"), ("policy.kruise.io/delete-protection", "Always")]
        );
        assert!(both.cascading_labels(&keys).is_empty());
        let cascading = object("", "Secret", &[("defender.io/delete-protection", "Cascading")]);
        assert!(cascading.protecting_labels(&keys).is_empty());
        assert_eq!(cascading.cascading_labels(&keys), [("defender.io/delete-protection", "Cascading")]);
        let other_key = object("", "Secret", &[("example.com/delete-protection", "Always")]);
        assert!(other_key.protecting_labels(&keys).is_empty());
    }
}
