//! The view's contents: the summary of every object that matters to a
//! policy, by kind, namespace and name, and the answers policies ask for.
//!
//! Filled from manifests by the harness and the unit tests, and from watch
//! events by the live view; a summary is made by the same function either way.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::view::http_route::{self, HttpRoute};
use crate::view::summary::{
    self, HostPath, IngressSummary, NamespaceInfo, PodSummary, Reference, Referent, RouteSummary,
    VolumeClaimSummary, WorkloadSummary,
};
use crate::view::{ClusterView, Contents, Route, RouteKind, User, UserKind};

/// Summaries of one kind, by namespace (`""` for cluster-scoped objects) and name.
#[derive(Debug, Clone)]
pub struct Store<S> {
    by_namespace: HashMap<String, HashMap<String, S>>,
}

impl<S> Default for Store<S> {
    fn default() -> Self {
        Self { by_namespace: HashMap::new() }
    }
}

impl<S> Store<S> {
    pub fn insert(&mut self, namespace: &str, name: &str, summary: S) {
        let names = match self.by_namespace.get_mut(namespace) {
            Some(names) => names,
            None => self.by_namespace.entry(namespace.to_owned()).or_default(),
        };
        match names.get_mut(name) {
            Some(kept) => *kept = summary,
            None => {
                names.insert(name.to_owned(), summary);
            }
        }
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        if let Some(names) = self.by_namespace.get_mut(namespace) {
            names.remove(name);
            if names.is_empty() {
                self.by_namespace.remove(namespace);
            }
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&S> {
        self.by_namespace.get(namespace)?.get(name)
    }

    pub fn in_namespace(&self, namespace: &str) -> impl Iterator<Item = (&str, &S)> {
        self.by_namespace.get(namespace).into_iter().flatten().map(|(name, summary)| (name.as_str(), summary))
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
pub trait Watched: kube::Resource + Sized {
    type Summary: Send + Sync + 'static;
    /// How logs name the kind: `pods`, `deployments`.
    const PLURAL: &'static str;

    fn summarize(&self) -> Self::Summary;

    /// Finished pods, idle workloads and unbound claims matter to no policy.
    fn matters(summary: &Self::Summary) -> bool;

    fn store(view: &MemoryView) -> &Store<Self::Summary>;

    fn store_mut(view: &mut MemoryView) -> &mut Store<Self::Summary>;
}

macro_rules! watched {
    ($kind:ty, $plural:literal, $field:ident: $summary:ty = $summarize:expr, $matters:expr) => {
        impl Watched for $kind {
            type Summary = $summary;
            const PLURAL: &'static str = $plural;

            fn summarize(&self) -> $summary {
                $summarize(self)
            }

            fn matters(summary: &$summary) -> bool {
                $matters(summary)
            }

            fn store(view: &MemoryView) -> &Store<$summary> {
                &view.$field
            }

            fn store_mut(view: &mut MemoryView) -> &mut Store<$summary> {
                &mut view.$field
            }
        }
    };
}

watched!(PartialObjectMeta<Namespace>, "namespaces", namespaces: Arc<NamespaceInfo> = namespace, always);
watched!(Pod, "pods", pods: PodSummary = summary::pod, live);
watched!(Deployment, "deployments", deployments: WorkloadSummary = summary::deployment, active);
watched!(StatefulSet, "statefulsets", stateful_sets: WorkloadSummary = summary::stateful_set, active);
watched!(ReplicaSet, "replicasets", replica_sets: WorkloadSummary = summary::replica_set, active);
watched!(DaemonSet, "daemonsets", daemon_sets: WorkloadSummary = summary::daemon_set, active);
watched!(PersistentVolumeClaim, "persistentvolumeclaims", claims: VolumeClaimSummary =
    summary::persistent_volume_claim, bound);
watched!(Ingress, "ingresses", ingresses: IngressSummary = summary::ingress, always);
watched!(HttpRoute, "httproutes", http_routes: RouteSummary = summary::http_route, always);

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
}

impl MemoryView {
    /// Records an object as it now is (added or changed).
    pub fn apply<K: Watched>(&mut self, object: &K) {
        let (namespace, name) = key(object);
        self.put::<K>(&namespace, &name, object.summarize());
    }

    pub fn put<K: Watched>(&mut self, namespace: &str, name: &str, summary: K::Summary) {
        let store = K::store_mut(self);
        if K::matters(&summary) {
            store.insert(namespace, name, summary);
        } else {
            store.remove(namespace, name);
        }
    }

    pub fn delete<K: Watched>(&mut self, object: &K) {
        let (namespace, name) = key(object);
        K::store_mut(self).remove(&namespace, &name);
    }

    /// Replaces everything known of kind `K` (a watch listed it afresh).
    pub fn replace<K: Watched>(&mut self, summaries: Vec<(String, String, K::Summary)>) {
        let mut store = Store::default();
        for (namespace, name, summary) in summaries {
            if K::matters(&summary) {
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
    pub fn set_namespace(&mut self, name: &str, info: NamespaceInfo) {
        self.namespaces.insert("", name, Arc::new(info));
    }

    /// Adds one manifest, summarized as a watch would deliver it. Returns
    /// false for kinds the view does not hold (Secrets, Services, ...).
    /// Namespaced objects without a namespace are in `default`, as kubectl puts them.
    pub fn add_manifest(&mut self, manifest: &Value) -> Result<bool, String> {
        let api_version = manifest.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or_default();
        match (group, kind) {
            ("", "Namespace") => self.add::<PartialObjectMeta<Namespace>>(manifest, false)?,
            ("", "Pod") => self.add::<Pod>(manifest, true)?,
            ("", "PersistentVolumeClaim") => self.add::<PersistentVolumeClaim>(manifest, true)?,
            ("apps", "Deployment") => self.add::<Deployment>(manifest, true)?,
            ("apps", "StatefulSet") => self.add::<StatefulSet>(manifest, true)?,
            ("apps", "ReplicaSet") => self.add::<ReplicaSet>(manifest, true)?,
            ("apps", "DaemonSet") => self.add::<DaemonSet>(manifest, true)?,
            ("networking.k8s.io", "Ingress") => self.add::<Ingress>(manifest, true)?,
            (http_route::GROUP, http_route::KIND) => self.add::<HttpRoute>(manifest, true)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn add<K: Watched + DeserializeOwned>(
        &mut self,
        manifest: &Value,
        namespaced: bool,
    ) -> Result<(), String> {
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
        let object: K = serde_path_to_error::deserialize(manifest)
            .map_err(|error| format!("{label}: {}: {}", error.path(), error.inner()))?;
        self.apply(&object);
        Ok(())
    }

    fn users_of(&self, referent: Referent, namespace: &str, name: &str) -> Vec<User> {
        let mut users = Vec::new();
        let pods = self.pods.in_namespace(namespace).map(|(pod, s)| (UserKind::Pod, pod, &s.references[..]));
        let ingresses = self
            .ingresses
            .in_namespace(namespace)
            .map(|(ingress, s)| (UserKind::Ingress, ingress, &s.references[..]));
        for (kind, user, references) in pods.chain(ingresses) {
            let via: Vec<_> = matching(references, referent, name).map(|reference| reference.via).collect();
            if !via.is_empty() {
                users.push(User { kind, namespace: namespace.to_owned(), name: user.to_owned(), via });
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

    fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<User> {
        self.users_of(referent, namespace, name)
    }

    fn routes_to(&self, host: &str) -> Vec<Route> {
        let host = HostPath::new(host, None).host;
        let ingresses = self.ingresses.iter().map(|(ns, name, s)| (RouteKind::Ingress, ns, name, &s.routes));
        let http_routes =
            self.http_routes.iter().map(|(ns, name, s)| (RouteKind::HttpRoute, ns, name, &s.routes));
        let mut routes: Vec<Route> = ingresses
            .chain(http_routes)
            .flat_map(|(kind, namespace, name, routes)| {
                routes.iter().filter(|route| route.host == host).map(move |route| Route {
                    kind,
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    path: route.path.clone(),
                })
            })
            .collect();
        routes.sort();
        routes
    }
}

#[cfg(test)]
mod tests;
