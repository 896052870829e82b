//! The view's contents: the summary of every object that matters to a
//! policy, by kind, namespace and name, and the answers policies ask for.
//!
//! Filled from manifests by the harness and the unit tests, and from watch
//! events by the live view; a summary is made by the same function either way.
//! Routing kinds are also indexed by host and path ([`RouteIndex`]), and
//! owners by the running objects that keep them from deletion, kept in step
//! on every change. Objects of custom resource types are only counted.
//! Objects of any kind carrying a protection label (`*/delete-protection`)
//! are kept by their labels, for deleting their namespace.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::custom_resources::{self, Counted, CustomResourceType, ObjectCount};
use crate::decode;
use crate::protected_objects::{self, Found, Lookup, ProtectedObject};
use crate::view::bounds::{self, MAX_NAME};
use crate::view::http_route::{self, HttpRoute};
use crate::view::parts::Parts;
use crate::view::routes::{Owner, RouteIndex, Serving};
use crate::view::summary::{
    self, HostPath, IngressSummary, NamespaceInfo, PodSummary, Reference, Referent, RouteSummary,
    VolumeClaimSummary, WorkloadSummary,
};
use crate::view::{ClusterView, Contents, Referrer, ReferrerKind, Route, RouteKind};

/// Summaries of one kind, by namespace (`""` for cluster-scoped objects) and
/// name, both bounded to [`MAX_NAME`].
#[derive(Debug, Clone)]
pub struct Store<S> {
    by_namespace: HashMap<String, HashMap<String, S>>,
}

impl<S> Default for Store<S> {
    fn default() -> Self {
        Self { by_namespace: HashMap::new() }
    }
}

/// A name as the view keeps it.
fn bounded(name: &str) -> Cow<'_, str> {
    bounds::text(name, MAX_NAME)
}

impl<S> Store<S> {
    /// Returns the summary it replaces.
    pub fn insert(&mut self, namespace: &str, name: &str, summary: S) -> Option<S> {
        let (namespace, name) = (bounded(namespace), bounded(name));
        let names = match self.by_namespace.get_mut(namespace.as_ref()) {
            Some(names) => names,
            None => self.by_namespace.entry(namespace.into_owned()).or_default(),
        };
        match names.get_mut(name.as_ref()) {
            Some(kept) => Some(std::mem::replace(kept, summary)),
            None => names.insert(name.into_owned(), summary),
        }
    }

    /// Returns the summary it removes.
    pub fn remove(&mut self, namespace: &str, name: &str) -> Option<S> {
        let (namespace, name) = (bounded(namespace), bounded(name));
        let names = self.by_namespace.get_mut(namespace.as_ref())?;
        let removed = names.remove(name.as_ref());
        if names.is_empty() {
            self.by_namespace.remove(namespace.as_ref());
        }
        removed
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&S> {
        self.by_namespace.get(bounded(namespace).as_ref())?.get(bounded(name).as_ref())
    }

    pub fn in_namespace(&self, namespace: &str) -> impl Iterator<Item = (&str, &S)> {
        let names = self.by_namespace.get(bounded(namespace).as_ref());
        names.into_iter().flatten().map(|(name, summary)| (name.as_str(), summary))
    }

    /// `(namespace, name, summary)` for every object.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &S)> {
        self.by_namespace.iter().flat_map(|(namespace, names)| {
            names.iter().map(move |(name, summary)| (namespace.as_str(), name.as_str(), summary))
        })
    }

    pub fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_namespace.is_empty()
    }
}

/// A kind the view holds: how its objects are summarized, which ones are
/// worth keeping, and where their summaries live.
pub trait Watched: kube::Resource + DeserializeOwned + Sized {
    type Summary: Send + Sync + 'static;
    /// The whole object a declared manifest must be: offline, a manifest is
    /// checked as the API server would take it, though only its parts are read.
    type Declared: DeserializeOwned;
    /// How logs name the kind: `pods`, `deployments`.
    const PLURAL: &'static str;

    fn summarize(&self) -> Self::Summary;

    /// Finished pods, idle workloads and unbound claims matter to no policy.
    fn matters(summary: &Self::Summary) -> bool;

    fn store(view: &MemoryView) -> &Store<Self::Summary>;

    fn store_mut(view: &mut MemoryView) -> &mut Store<Self::Summary>;

    /// For kinds that route traffic by host: the routes a summary serves, as
    /// the [`RouteIndex`] records them. A new routing kind (another Gateway
    /// API route) needs a [`RouteKind`], a summary and this.
    fn routing(_summary: &Self::Summary) -> Option<Routing<'_>> {
        None
    }

    /// For kinds whose objects keep their owners from being deleted while
    /// they run: those owners' uids, as the dependents index records them.
    fn blocking_owners(_summary: &Self::Summary) -> &[Box<str>] {
        &[]
    }
}

/// The routes one summary serves.
pub struct Routing<'a> {
    pub kind: RouteKind,
    pub routes: &'a [HostPath],
    /// It serves more than `routes` holds.
    pub truncated: bool,
}

impl Routing<'_> {
    fn owner<'a>(&'a self, namespace: &'a str, name: &'a str) -> Owner<'a> {
        Owner { kind: self.kind, namespace, name, routes: self.routes, truncated: self.truncated }
    }
}

macro_rules! watched {
    ($kind:ty as $declared:ty, $plural:literal, $field:ident: $summary:ty = $summarize:expr, $matters:expr
     $(, routing: $routing:expr)? $(, owners: $owners:expr)?) => {
        impl Watched for $kind {
            type Summary = $summary;
            type Declared = $declared;
            const PLURAL: &'static str = $plural;

            fn summarize(&self) -> $summary {
                $summarize(self)
            }

            fn matters(summary: &$summary) -> bool {
                $matters(summary)
            }

            $(
                fn routing(summary: &$summary) -> Option<Routing<'_>> {
                    Some($routing(summary))
                }
            )?

            $(
                fn blocking_owners(summary: &$summary) -> &[Box<str>] {
                    $owners(summary)
                }
            )?

            fn store(view: &MemoryView) -> &Store<$summary> {
                &view.$field
            }

            fn store_mut(view: &mut MemoryView) -> &mut Store<$summary> {
                &mut view.$field
            }
        }
    };
}

watched!(PartialObjectMeta<Namespace> as PartialObjectMeta<Namespace>, "namespaces",
    namespaces: Arc<NamespaceInfo> = namespace, always);
watched!(Parts<Pod> as Pod, "pods", pods: PodSummary = summary::pod, live, owners: pod_owners);
watched!(Parts<Deployment> as Deployment, "deployments", deployments: WorkloadSummary = summary::deployment,
    active, owners: workload_owners);
watched!(Parts<StatefulSet> as StatefulSet, "statefulsets", stateful_sets: WorkloadSummary =
    summary::stateful_set, active, owners: workload_owners);
watched!(Parts<ReplicaSet> as ReplicaSet, "replicasets", replica_sets: WorkloadSummary = summary::replica_set,
    active, owners: workload_owners);
watched!(Parts<DaemonSet> as DaemonSet, "daemonsets", daemon_sets: WorkloadSummary = summary::daemon_set,
    active, owners: workload_owners);
watched!(Parts<PersistentVolumeClaim> as PersistentVolumeClaim, "persistentvolumeclaims",
    claims: VolumeClaimSummary = summary::persistent_volume_claim, bound);
watched!(Parts<Ingress> as Ingress, "ingresses", ingresses: IngressSummary = summary::ingress, always,
    routing: ingress_routing);
watched!(HttpRoute as http_route::Declared, "httproutes", http_routes: RouteSummary = summary::http_route, always,
    routing: http_route_routing);

fn pod_owners(pod: &PodSummary) -> &[Box<str>] {
    &pod.blocking_owners
}

fn workload_owners(workload: &WorkloadSummary) -> &[Box<str>] {
    &workload.blocking_owners
}

fn ingress_routing(summary: &IngressSummary) -> Routing<'_> {
    Routing { kind: RouteKind::Ingress, routes: &summary.routes, truncated: summary.routes_truncated }
}

fn http_route_routing(summary: &RouteSummary) -> Routing<'_> {
    Routing { kind: RouteKind::HttpRoute, routes: &summary.routes, truncated: summary.truncated }
}

/// Namespaces are watched metadata-only; policies ask for them shared.
fn namespace(namespace: &PartialObjectMeta<Namespace>) -> Arc<NamespaceInfo> {
    Arc::new(summary::namespace(&namespace.metadata))
}

fn always<S>(_: &S) -> bool {
    true
}

fn live(pod: &PodSummary) -> bool {
    pod.live
}

fn active(workload: &WorkloadSummary) -> bool {
    workload.active
}

fn bound(claim: &VolumeClaimSummary) -> bool {
    claim.bound
}

/// The namespace and name an object is kept under.
pub fn key<K: kube::Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

#[derive(Debug, Clone, Default)]
pub struct MemoryView {
    namespaces: Store<Arc<NamespaceInfo>>,
    pods: Store<PodSummary>,
    deployments: Store<WorkloadSummary>,
    stateful_sets: Store<WorkloadSummary>,
    replica_sets: Store<WorkloadSummary>,
    daemon_sets: Store<WorkloadSummary>,
    claims: Store<VolumeClaimSummary>,
    ingresses: Store<IngressSummary>,
    http_routes: Store<RouteSummary>,
    /// Objects of custom resource types, by `group/kind`: only counted.
    custom_resources: HashMap<String, Store<()>>,
    /// Declared objects of any kind with a protection label, by namespace.
    protection_labelled: HashMap<String, Vec<ProtectedObject>>,
    /// Workloads declared as manifests (`Kind/namespace/name`), idle ones
    /// included: offline, one declared idle is known not to ask for pods.
    declared_workloads: HashSet<String>,
    indexes: Indexes,
}

/// What the view looks up across kinds.
#[derive(Debug, Clone, Default)]
struct Indexes {
    /// Who serves each host and path, over every routing kind.
    routes: RouteIndex,
    /// How many running objects keep each owner (by uid) from being deleted.
    dependents: HashMap<Box<str>, u32>,
}

impl Indexes {
    fn add<K: Watched>(&mut self, namespace: &str, name: &str, summary: &K::Summary) {
        if let Some(routing) = K::routing(summary) {
            self.routes.add(&routing.owner(namespace, name));
        }
        for owner in K::blocking_owners(summary) {
            *self.dependents.entry(owner.clone()).or_default() += 1;
        }
    }

    fn remove<K: Watched>(&mut self, namespace: &str, name: &str, summary: &K::Summary) {
        if let Some(routing) = K::routing(summary) {
            self.routes.remove(&routing.owner(namespace, name));
        }
        for owner in K::blocking_owners(summary) {
            if let Some(count) = self.dependents.get_mut(owner) {
                *count -= 1;
                if *count == 0 {
                    self.dependents.remove(owner);
                }
            }
        }
    }
}

impl MemoryView {
    /// Records an object as it now is (added or changed).
    pub fn apply<K: Watched>(&mut self, object: &K) {
        let (namespace, name) = key(object);
        self.put::<K>(&namespace, &name, object.summarize());
    }

    pub fn put<K: Watched>(&mut self, namespace: &str, name: &str, summary: K::Summary) {
        let (namespace, name) = (bounded(namespace), bounded(name));
        if let Some(old) = K::store_mut(self).remove(&namespace, &name) {
            self.indexes.remove::<K>(&namespace, &name, &old);
        }
        if K::matters(&summary) {
            self.indexes.add::<K>(&namespace, &name, &summary);
            K::store_mut(self).insert(&namespace, &name, summary);
        }
    }

    pub fn delete<K: Watched>(&mut self, object: &K) {
        let (namespace, name) = key(object);
        let (namespace, name) = (bounded(&namespace), bounded(&name));
        if let Some(old) = K::store_mut(self).remove(&namespace, &name) {
            self.indexes.remove::<K>(&namespace, &name, &old);
        }
    }

    /// Replaces everything known of kind `K` (a watch listed it afresh).
    pub fn replace<K: Watched>(&mut self, summaries: Vec<(String, String, K::Summary)>) {
        let old = std::mem::take(K::store_mut(self));
        for (namespace, name, summary) in old.iter() {
            self.indexes.remove::<K>(namespace, name, summary);
        }
        let mut store = Store::default();
        for (namespace, name, summary) in summaries {
            if K::matters(&summary) {
                let (namespace, name) = (bounded(&namespace), bounded(&name));
                self.indexes.add::<K>(&namespace, &name, &summary);
                store.insert(&namespace, &name, summary);
            }
        }
        *K::store_mut(self) = store;
    }

    /// How many objects of kind `K` are kept.
    pub fn count<K: Watched>(&self) -> usize {
        K::store(self).len()
    }

    /// Declares a namespace's state directly, as test suites do.
    /// A pod that has not finished is held as `namespace`/`name`.
    pub fn has_live_pod(&self, namespace: &str, name: &str) -> bool {
        self.pods.get(namespace, name).is_some()
    }

    /// Whether the Deployment, StatefulSet, ReplicaSet or DaemonSet
    /// `namespace`/`name` is held as asking for pods.
    pub fn holds_active_workload(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let store = match kind {
            "Deployment" => &self.deployments,
            "StatefulSet" => &self.stateful_sets,
            "ReplicaSet" => &self.replica_sets,
            "DaemonSet" => &self.daemon_sets,
            _ => return false,
        };
        store.get(namespace, name).is_some()
    }

    /// Records an object of a custom resource type, to be counted.
    pub fn add_custom_resource(&mut self, group: &str, kind: &str, namespace: &str, name: &str) {
        let store = self.custom_resources.entry(format!("{group}/{kind}")).or_default();
        store.insert(&bounded(namespace), &bounded(name), ());
    }

    pub fn set_namespace(&mut self, name: &str, info: NamespaceInfo) {
        self.namespaces.insert("", name, Arc::new(info));
    }

    /// Adds one manifest, summarized as a watch would deliver it. Returns
    /// false for what the view does not hold: objects of other kinds
    /// (Secrets, Services, ...) unless they carry a protection label.
    /// Namespaced objects without a namespace are in `default`, as kubectl puts them.
    pub fn add_manifest(&mut self, manifest: &Value) -> Result<bool, String> {
        let api_version = manifest.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or_default();
        let labelled = self.add_protection_labelled(group, kind, manifest);
        match (group, kind) {
            ("", "Namespace") => self.add::<PartialObjectMeta<Namespace>>(manifest, false)?,
            ("", "Pod") => self.add::<Parts<Pod>>(manifest, true)?,
            ("", "PersistentVolumeClaim") => self.add::<Parts<PersistentVolumeClaim>>(manifest, true)?,
            ("apps", "Deployment") => self.add_workload::<Parts<Deployment>>(manifest)?,
            ("apps", "StatefulSet") => self.add_workload::<Parts<StatefulSet>>(manifest)?,
            ("apps", "ReplicaSet") => self.add_workload::<Parts<ReplicaSet>>(manifest)?,
            ("apps", "DaemonSet") => self.add_workload::<Parts<DaemonSet>>(manifest)?,
            ("networking.k8s.io", "Ingress") => self.add::<Parts<Ingress>>(manifest, true)?,
            (http_route::GROUP, http_route::KIND) => self.add::<HttpRoute>(manifest, true)?,
            // Definitions are judged from the request; their objects are counted.
            (custom_resources::GROUP, custom_resources::KIND) => {}
            (group, kind) if custom_resources::is_custom_group(group) && !kind.is_empty() => {
                let name = manifest.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    return Err(format!("{}: metadata.name is missing", kind.to_lowercase()));
                }
                let namespace = manifest.pointer("/metadata/namespace").and_then(Value::as_str);
                self.add_custom_resource(group, kind, namespace.unwrap_or_default(), name);
            }
            _ => return Ok(labelled),
        }
        Ok(true)
    }

    /// Keeps `manifest` by its protection labels, if it has any and a
    /// namespace (an object declared without one is taken as cluster-scoped:
    /// no namespace's deletion takes it); declared again without them, it
    /// is no longer kept. Returns whether it is kept.
    fn add_protection_labelled(&mut self, group: &str, kind: &str, manifest: &Value) -> bool {
        let text = |pointer: &str| manifest.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        let (namespace, name) = (text("/metadata/namespace"), text("/metadata/name"));
        if kind.is_empty() || namespace.is_empty() || name.is_empty() {
            return false;
        }
        let labels: BTreeMap<String, String> = manifest
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.ends_with(protected_objects::LABEL_SUFFIX))
            .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
            .collect();
        let held = self.protection_labelled.entry(namespace.to_owned()).or_default();
        held.retain(|other| {
            (other.group.as_str(), other.kind.as_str(), other.name.as_str()) != (group, kind, name)
        });
        if labels.is_empty() {
            return false;
        }
        held.push(ProtectedObject {
            kind: kind.to_owned(),
            group: group.to_owned(),
            plural: None,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels,
            uid: Some(text("/metadata/uid")).filter(|uid| !uid.is_empty()).map(str::to_owned),
        });
        true
    }

    /// Adds a workload manifest and remembers it was declared.
    fn add_workload<K: Watched>(&mut self, manifest: &Value) -> Result<(), String> {
        self.add::<K>(manifest, true)?;
        let text = |pointer: &str| manifest.pointer(pointer).and_then(Value::as_str);
        let namespace = text("/metadata/namespace").unwrap_or("default");
        let (kind, name) = (text("/kind").unwrap_or_default(), text("/metadata/name").unwrap_or_default());
        self.declared_workloads.insert(format!("{kind}/{}/{}", bounded(namespace), bounded(name)));
        Ok(())
    }

    fn add<K: Watched>(&mut self, manifest: &Value, namespaced: bool) -> Result<(), String> {
        let mut manifest = manifest.clone();
        let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        let name = manifest.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err(format!("{kind}: metadata.name is missing"));
        }
        let label = format!("{kind} {name:?}");
        if namespaced
            && manifest.pointer("/metadata/namespace").is_none()
            && let Some(metadata) = manifest.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.insert("namespace".to_owned(), Value::String("default".to_owned()));
        }
        let refused = |error| format!("{label}: {error}");
        decode::deserialize::<K::Declared, _>(&manifest, "").map_err(refused)?;
        let object: K = decode::deserialize(manifest, "").map_err(refused)?;
        self.apply(&object);
        Ok(())
    }

    fn users_of(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer> {
        let mut users = Vec::new();
        let pods = self
            .pods
            .in_namespace(namespace)
            .map(|(pod, s)| (ReferrerKind::Pod, pod, &s.references[..], s.references_truncated));
        let ingresses = self
            .ingresses
            .in_namespace(namespace)
            .map(|(ingress, s)| (ReferrerKind::Ingress, ingress, &s.references[..], s.references_truncated));
        let name = bounds::text(name, MAX_NAME);
        for (kind, user, references, truncated) in pods.chain(ingresses) {
            let via: Vec<_> = matching(references, referent, &name).map(|reference| reference.via).collect();
            // What the view does not keep of an object may name it: say so rather than miss it.
            let truncated = truncated && kind.may_refer_to(referent);
            if !via.is_empty() || truncated {
                let (namespace, name) = (namespace.to_owned(), user.to_owned());
                users.push(Referrer { kind, namespace, name, via, truncated });
            }
        }
        users.sort();
        users
    }
}

/// The references to `referent` `name` (they are sorted, so they are adjacent).
fn matching<'a>(
    references: &'a [Reference],
    referent: Referent,
    name: &'a str,
) -> impl Iterator<Item = &'a Reference> {
    let start = references.partition_point(|r| (r.referent, r.name.as_str()) < (referent, name));
    references[start..].iter().take_while(move |r| r.referent == referent && r.name == name)
}

impl ClusterView for MemoryView {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.namespaces.get("", name).cloned()
    }

    fn contents(&self, namespace: &str) -> Contents {
        let count = |store: &Store<WorkloadSummary>| store.in_namespace(namespace).count();
        Contents {
            pods: self.pods.in_namespace(namespace).count(),
            deployments: count(&self.deployments),
            stateful_sets: count(&self.stateful_sets),
            replica_sets: count(&self.replica_sets),
            daemon_sets: count(&self.daemon_sets),
            bound_claims: self.claims.in_namespace(namespace).count(),
        }
    }

    fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer> {
        self.users_of(referent, namespace, name)
    }

    fn routes_to(&self, host: &str) -> Vec<Route> {
        self.indexes.routes.to_host(&HostPath::new(host, None).host)
    }

    fn serving(&self, route: &HostPath, outside: &str, limit: usize) -> Serving {
        self.indexes.routes.serving(route, outside, limit)
    }

    fn custom_resources(&self, of: &CustomResourceType) -> Counted {
        let key = format!("{}/{}", of.group, of.kind);
        let held = self.custom_resources.get(&key);
        let namespaces = held.into_iter().flat_map(|store| store.iter().map(|(namespace, ..)| namespace));
        Ok(ObjectCount::of(namespaces, false))
    }

    fn protected_objects(&self, namespace: &str, keys: &[&str]) -> Lookup {
        let held = self.protection_labelled.get(namespace).into_iter().flatten();
        let mut objects: Vec<ProtectedObject> =
            held.filter(|object| keys.iter().any(|key| object.labels.contains_key(*key))).cloned().collect();
        objects.sort();
        Ok(Found { objects, at_least: false })
    }

    fn workload_active(&self, kind: &str, namespace: &str, name: &str) -> Option<bool> {
        // Offline, a workload not declared may still exist: only one
        // declared is known to be idle.
        if self.holds_active_workload(kind, namespace, name) {
            return Some(true);
        }
        let declared = format!("{kind}/{}/{}", bounded(namespace), bounded(name));
        self.declared_workloads.contains(&declared).then_some(false)
    }

    fn dependents(&self, owner_uid: &str) -> usize {
        self.indexes.dependents.get(owner_uid).map_or(0, |count| *count as usize)
    }
}

#[cfg(test)]
mod tests;
