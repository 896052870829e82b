//! CustomResourceDefinitions, as deleting one sees them: which custom
//! resources it defines, and how many of them its deletion would take along.
//!
//! Deleting a CRD deletes every object of its kind, in every namespace, at
//! once. Counting them is the one fact Defender cannot keep in memory for
//! every CRD ahead of time, so it is counted only when a definition is about
//! to go: the server lists the objects (metadata only, bounded) before
//! judging; the harness counts the objects a suite declares.

use std::collections::BTreeSet;
use std::fmt;

use kube::core::{ApiResource, DynamicObject};

use crate::request::Request;

pub const GROUP: &str = "apiextensions.k8s.io";
pub const KIND: &str = "CustomResourceDefinition";

/// How many pages of objects the server lists before it stops counting:
/// the message then says "at least".
pub const MAX_PAGES: usize = 20;
/// Objects per page of the metadata-only list.
pub const PAGE_SIZE: u32 = 500;

/// API groups Kubernetes itself serves whose names look like a custom
/// resource's (a domain name). Every other dotted group is a custom one.
const BUILT_IN_GROUPS: &[&str] = &[
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Custom resources live in groups named like domains (`cert-manager.io`),
/// never in the core group nor in one-word groups (`apps`, `batch`).
pub fn is_custom_group(group: &str) -> bool {
    group.contains('.') && !BUILT_IN_GROUPS.contains(&group)
}

/// How kubectl names a type: `secret`, or `certificates.cert-manager.io`
/// for a custom resource (a kind's name alone may be ambiguous there; the
/// lowercased kind stands in for an unknown plural).
pub fn kubectl_resource(kind: &str, group: &str, plural: Option<&str>) -> String {
    if !is_custom_group(group) {
        return kind.to_lowercase();
    }
    let resource =
        plural.filter(|plural| !plural.is_empty()).map_or_else(|| kind.to_lowercase(), str::to_owned);
    format!("{resource}.{group}")
}

/// The custom resources a definition serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomResourceType {
    /// The definition's own name: `certificates.cert-manager.io`.
    pub definition: String,
    pub group: String,
    pub kind: String,
    /// `certificates`
    pub plural: String,
    /// A version the API server serves, the storage one when it is served.
    pub version: String,
    pub namespaced: bool,
}

impl CustomResourceType {
    /// The type a CustomResourceDefinition object defines; `None` when its
    /// spec lacks what naming the objects needs (a malformed definition
    /// defines nothing that can be listed).
    pub fn of_definition(definition: &DynamicObject) -> Option<Self> {
        Self::of_spec(definition.metadata.name.as_deref(), definition.data.get("spec")?)
    }

    /// The type the definition `name` defines with `spec`.
    fn of_spec(name: Option<&str>, spec: &serde_json::Value) -> Option<Self> {
        let text = |value: Option<&serde_json::Value>| value.and_then(|v| v.as_str()).map(str::to_owned);
        let group = text(spec.get("group"))?;
        let names = spec.get("names")?;
        let kind = text(names.get("kind"))?;
        let plural = text(names.get("plural"))?;
        let versions = spec.get("versions").and_then(|v| v.as_array()).map(Vec::as_slice).unwrap_or_default();
        let served =
            |version: &&serde_json::Value| version.get("served").and_then(|s| s.as_bool()) == Some(true);
        let storage =
            |version: &&serde_json::Value| version.get("storage").and_then(|s| s.as_bool()) == Some(true);
        let version = versions
            .iter()
            .filter(served)
            .find(storage)
            .or_else(|| versions.iter().find(served))
            .or_else(|| versions.first())
            .and_then(|version| text(version.get("name")))?;
        let namespaced = spec.get("scope").and_then(|s| s.as_str()) != Some("Cluster");
        let definition = name.map_or_else(|| format!("{plural}.{group}"), str::to_owned);
        Some(Self { definition, group, kind, plural, version, namespaced })
    }

    /// The definition a request deletes (or, by an owner-reference change,
    /// lets the garbage collector delete).
    pub fn deleted_by(request: &Request) -> Option<Self> {
        if !request.is_kind(GROUP, KIND) {
            return None;
        }
        let (stored, spec) = if request.is_delete() {
            (request.old_object(), request.old_object_spec())
        } else if request.changes_owner_references() {
            (request.object(), request.object_spec())
        } else {
            return None;
        };
        // Read as a tree: definitions are deleted rarely, and their specs are small.
        let spec: serde_json::Value = spec?.decode().ok()?;
        Self::of_spec(stored?.metadata.name.as_deref(), &spec)
    }

    /// For listing the objects with kube's dynamic API.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: format!("{}/{}", self.group, self.version),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// How messages name many of them: `Certificates`, or the plural
    /// resource name when the kind does not simply take an "s".
    pub fn plural_kind(&self) -> String {
        if self.plural.eq_ignore_ascii_case(&format!("{}s", self.kind)) {
            format!("{}s", self.kind)
        } else {
            self.plural.clone()
        }
    }
}

/// How many objects of one custom resource type exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectCount {
    pub objects: usize,
    /// In how many namespaces (0 for cluster-scoped types).
    pub namespaces: usize,
    /// Counting stopped at a bound: there are at least this many.
    pub at_least: bool,
}

impl ObjectCount {
    /// Counts objects from the namespaces they are in (`""` when cluster-scoped).
    pub fn of<'a>(namespaces: impl IntoIterator<Item = &'a str>, at_least: bool) -> Self {
        let mut seen = BTreeSet::new();
        let mut objects = 0;
        for namespace in namespaces {
            objects += 1;
            if !namespace.is_empty() {
                seen.insert(namespace);
            }
        }
        Self { objects, namespaces: seen.len(), at_least }
    }

    pub fn is_empty(&self) -> bool {
        self.objects == 0
    }
}

/// The outcome of counting a type's objects: the count, or why there is none.
pub type Counted = Result<ObjectCount, String>;

/// A count made before judging, for the one type a request deletes.
#[derive(Debug, Clone)]
pub struct Prefetched {
    pub of: CustomResourceType,
    pub count: Counted,
}

/// `312 Certificates in 41 namespaces`, `at least 10000 Widgets in 3 namespaces`, `1 Backup`
pub struct Described<'a>(pub &'a CustomResourceType, pub &'a ObjectCount);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Described(of, count) = self;
        let at_least = if count.at_least { "at least " } else { "" };
        let kind = if count.objects == 1 { of.kind.clone() } else { of.plural_kind() };
        write!(f, "{at_least}{} {kind}", count.objects)?;
        match count.namespaces {
            0 => Ok(()),
            1 => f.write_str(" in 1 namespace"),
            many => write!(f, " in {many} namespaces"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(versions: serde_json::Value, scope: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "certificates.cert-manager.io"},
            "spec": {"group": "cert-manager.io", "scope": scope,
                     "names": {"kind": "Certificate", "plural": "certificates"},
                     "versions": versions}
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_served_storage_version_and_scope() {
        let versions = json!([
            {"name": "v1alpha2", "served": false, "storage": false},
            {"name": "v1beta1", "served": true, "storage": false},
            {"name": "v1", "served": true, "storage": true}
        ]);
        let of = CustomResourceType::of_definition(&definition(versions, "Namespaced")).unwrap();
        assert_eq!(of.version, "v1");
        assert!(of.namespaced);
        assert_eq!(of.api_resource().api_version, "cert-manager.io/v1");
        let served_only = json!([{"name": "v1beta1", "served": true, "storage": false}]);
        let of = CustomResourceType::of_definition(&definition(served_only, "Cluster")).unwrap();
        assert_eq!((of.version.as_str(), of.namespaced), ("v1beta1", false));
    }

    #[test]
    fn a_definition_without_names_defines_nothing_listable() {
        let broken: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "x.example.com"}, "spec": {"group": "example.com"}
        }))
        .unwrap();
        assert_eq!(CustomResourceType::of_definition(&broken), None);
    }

    #[test]
    fn describes_counts_the_way_people_say_them() {
        let versions = json!([{"name": "v1", "served": true, "storage": true}]);
        let of = CustomResourceType::of_definition(&definition(versions, "Namespaced")).unwrap();
        let count = ObjectCount::of(["a", "b", "a"], false);
        assert_eq!(Described(&of, &count).to_string(), "3 Certificates in 2 namespaces");
        let one = ObjectCount::of(["a"], false);
        assert_eq!(Described(&of, &one).to_string(), "1 Certificate in 1 namespace");
        let many = ObjectCount::of(["", ""], true);
        assert_eq!(Described(&of, &many).to_string(), "at least 2 Certificates");
        let policy = CustomResourceType { kind: "Policy".into(), plural: "policies".into(), ..of };
        assert_eq!(policy.plural_kind(), "policies");
    }
}
