//! What Defender knows about the cluster beyond the request itself.
//!
//! An AdmissionReview does not carry its namespace's labels, what still runs
//! in a namespace being deleted, which Pods use the Secret being deleted, nor
//! which hosts other namespaces' Ingresses serve. Policies ask a
//! [`ClusterView`]. The harness and the CLI fill a [`MemoryView`] from the
//! objects they declare; `defender serve` keeps a [`LiveView`] fed by watches.
//! Both hold the same trimmed summaries ([`summary`]) and answer through the
//! same code, so offline and live judge alike.

pub mod bounds;
pub mod http_route;
mod live;
mod memory;
pub mod parts;
mod routes;
pub mod summary;

use std::fmt;
use std::sync::Arc;

use crate::custom_resources::{Counted, CustomResourceType};
use crate::protected_objects::Lookup;

pub use live::LiveView;
pub use memory::{MemoryView, Store, Watched};
pub use parts::Parts;
pub use routes::Serving;
pub use summary::{HostPath, NamespaceInfo, Referent, Via};

/// What is said of a declared object whose kind the view does not keep.
pub const NOT_HELD: &str = "the cluster view keeps only Namespaces, Pods, Deployments, StatefulSets, \
                            ReplicaSets, DaemonSets, PersistentVolumeClaims, Ingresses, HTTPRoutes, \
                            CustomResourceDefinitions, custom resources, and objects of any kind with a \
                            label ending in /delete-protection";

pub trait ClusterView: Send + Sync {
    /// `None` when nothing is known about the namespace.
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>>;

    /// What still runs or holds data in `namespace`.
    fn contents(&self, namespace: &str) -> Contents;

    /// Who uses the Secret, ConfigMap or Service `name` in `namespace`:
    /// live Pods, and Ingresses (TLS secrets, backend services), sorted.
    /// Objects whose references the view keeps only in part may use it
    /// unseen: they are listed too, as [`Referrer::truncated`].
    fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer>;

    /// Every route (Ingress rule path, HTTPRoute hostname and path) serving `host`, in any namespace, sorted.
    fn routes_to(&self, host: &str) -> Vec<Route>;

    /// The objects serving exactly `route`'s host and path outside namespace
    /// `outside`: the first `limit` (by kind, namespace and name) and how many
    /// in all. The views holding routes answer from their index, at the cost
    /// of what they return, whatever the cluster holds.
    fn serving(&self, route: &HostPath, outside: &str, limit: usize) -> Serving {
        let serving: Vec<Route> = self
            .routes_to(&route.host)
            .into_iter()
            .filter(|other| other.namespace != outside && other.path == route.path)
            .collect();
        Serving { total: serving.len(), first: serving.into_iter().take(limit).collect() }
    }

    /// The kinds not listed from the cluster yet (readiness waits for none).
    fn unsynced(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Whether the view lists every namespace of a live cluster, so that a
    /// namespace it does not hold does not exist. Offline views (suites,
    /// `defender review`) hold only what was declared.
    fn lists_every_namespace(&self) -> bool {
        false
    }

    /// How many objects of a custom resource type exist. Views that cannot
    /// count them say why; deleting their definition is then refused.
    fn custom_resources(&self, _of: &CustomResourceType) -> Counted {
        Err("this cluster view does not count custom resources".to_owned())
    }

    /// The objects in `namespace` carrying a label under one of `keys`, any
    /// value. Views that cannot tell say why; deleting the namespace is
    /// then refused.
    fn protected_objects(&self, _namespace: &str, _keys: &[&str]) -> Lookup {
        Err("this cluster view does not list objects by label".to_owned())
    }

    /// Whether the Deployment, StatefulSet, ReplicaSet or DaemonSet
    /// `namespace`/`name` asks for pods (replicas > 0, or pods scheduled);
    /// `None` when the view cannot tell.
    fn workload_active(&self, _kind: &str, _namespace: &str, _name: &str) -> Option<bool> {
        None
    }

    /// How many running objects (live pods, workloads asking for pods) name
    /// the object with uid `owner_uid` as an owner with `blockOwnerDeletion`.
    fn dependents(&self, _owner_uid: &str) -> usize {
        0
    }

    /// Whether a pod that has not finished is known as `namespace`/`name`;
    /// `None` when the view does not list pods from a live cluster, so it
    /// can neither confirm nor deny one.
    fn live_pod(&self, _namespace: &str, _name: &str) -> Option<bool> {
        None
    }
}

/// What a namespace DELETE review claims about the namespace that its
/// verdict depends on: annotation and label keys whose values must match.
#[derive(Debug, Default)]
pub struct Claims<'a> {
    pub annotations: Vec<&'a str>,
    pub labels: Vec<&'a str>,
}

/// Whether the cluster view confirms that a DELETE review of a namespace
/// (`stored`, the object the review carries) is about a namespace that
/// exists as shown: same uid, not already being deleted, with the `claims`
/// the review's verdict rests on. Anyone who can reach Defender's port can
/// send a review; one the view contradicts is still judged, but must not
/// spend what real deletions need. A live view holds every namespace, so a
/// review it cannot match (no uid, an unknown name) is not corroborated; an
/// offline view is checked only on what it declares.
pub fn corroborates_namespace(
    view: &dyn ClusterView,
    stored: &kube::core::DynamicObject,
    claims: &Claims,
) -> Result<(), &'static str> {
    let live = view.lists_every_namespace();
    let name = stored.metadata.name.as_deref().unwrap_or_default();
    let Some(known) = view.namespace(name) else {
        return if live { Err("no such namespace") } else { Ok(()) };
    };
    if known.terminating {
        return Err("the namespace is already being deleted");
    }
    match (&known.uid, &stored.metadata.uid) {
        (Some(known), Some(claimed)) if known != claimed => return Err("the namespace has another uid"),
        (_, None) if live => return Err("the review names no uid"),
        _ => {}
    }
    let annotation = |key: &str| crate::request::annotation(Some(stored), key);
    let annotations_differ = claims
        .annotations
        .iter()
        .filter(|key| live || known.annotations.contains_key(**key))
        .any(|key| known.annotations.get(*key).map(String::as_str) != annotation(key));
    let labels = crate::request::labels_of(Some(stored));
    let labels_differ = claims
        .labels
        .iter()
        .filter(|key| live || known.labels.contains_key(**key))
        .any(|key| known.labels.get(*key) != labels.get(*key));
    if annotations_differ || labels_differ {
        return Err("the namespace's annotations or labels differ");
    }
    Ok(())
}

/// What a namespace still holds that its deletion would take with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// Pods not finished (Pending, Running, Unknown).
    pub pods: usize,
    pub deployments: usize,
    pub stateful_sets: usize,
    /// ReplicaSets no Deployment controls.
    pub replica_sets: usize,
    pub daemon_sets: usize,
    pub bound_claims: usize,
}

impl Contents {
    pub fn is_empty(&self) -> bool {
        *self == Contents::default()
    }

    pub fn has_scalable_workloads(&self) -> bool {
        self.deployments + self.stateful_sets + self.replica_sets > 0
    }
}

/// `3 running or pending pods, 1 deployment with replicas > 0, 2 bound PVCs`
impl fmt::Display for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = [
            (self.pods, "running or pending pod", ""),
            (self.deployments, "deployment", " with replicas > 0"),
            (self.stateful_sets, "statefulset", " with replicas > 0"),
            (self.replica_sets, "replicaset", " with replicas > 0"),
            (self.daemon_sets, "daemonset", " with pods scheduled"),
            (self.bound_claims, "bound PVC", ""),
        ];
        let parts: Vec<String> = counts
            .into_iter()
            .filter(|(count, ..)| *count > 0)
            .map(|(count, what, tail)| {
                let plural = if count == 1 { "" } else { "s" };
                format!("{count} {what}{plural}{tail}")
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReferrerKind {
    Pod,
    Ingress,
}

impl ReferrerKind {
    /// Pods name Secrets and ConfigMaps; Ingresses name Secrets (TLS) and Services (backends).
    pub fn may_refer_to(self, referent: Referent) -> bool {
        match self {
            ReferrerKind::Pod => matches!(referent, Referent::Secret | Referent::ConfigMap),
            ReferrerKind::Ingress => matches!(referent, Referent::Secret | Referent::Service),
        }
    }
}

/// An object that uses a Secret, ConfigMap or Service, and how.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Referrer {
    pub kind: ReferrerKind,
    pub namespace: String,
    pub name: String,
    /// How it uses it, as far as the view knows.
    pub via: Vec<Via>,
    /// The object names more than the view keeps ([`bounds::MAX_REFERENCES`]):
    /// it may use it in a way not listed in `via`.
    pub truncated: bool,
}

/// `pod prod/api-7d9 (envFrom, volume)`, and for an object known in part
/// `pod prod/big (perhaps: only its first 100 references are known to Defender)`
impl fmt::Display for Referrer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ReferrerKind::Pod => "pod",
            ReferrerKind::Ingress => "ingress",
        };
        let via: Vec<&str> = self.via.iter().map(|via| via.as_str()).collect();
        let mut how = via.join(", ");
        if self.truncated {
            let known = format!("only its first {} references are known to Defender", bounds::MAX_REFERENCES);
            how = if how.is_empty() { format!("perhaps: {known}") } else { format!("{how}; {known}") };
        }
        write!(f, "{kind} {}/{} ({how})", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Ingress,
    HttpRoute,
}

impl RouteKind {
    /// How messages name the kind: `ingress`, `httproute`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Ingress => "ingress",
            RouteKind::HttpRoute => "httproute",
        }
    }
}

/// One object serving a host at a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    pub path: String,
    /// The object serves more routes than the view keeps ([`bounds::MAX_ROUTES`]).
    pub truncated: bool,
}

impl Route {
    /// `ingress "other/web"`, `httproute "other/web"`
    pub fn describe(&self) -> String {
        format!("{} \"{}/{}\"", self.kind.as_str(), self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_name_what_is_left_with_plurals() {
        let contents = Contents { pods: 3, deployments: 1, bound_claims: 2, ..Contents::default() };
        assert_eq!(
            contents.to_string(),
            "3 running or pending pods, 1 deployment with replicas > 0, 2 bound PVCs"
        );
        let contents = Contents { pods: 1, stateful_sets: 2, daemon_sets: 1, ..Contents::default() };
        assert_eq!(
            contents.to_string(),
            "1 running or pending pod, 2 statefulsets with replicas > 0, 1 daemonset with pods scheduled"
        );
        assert!(Contents::default().is_empty());
        assert!(!contents.is_empty());
    }

    /// A view that answers routes only by host, as a view without an index would.
    struct ByHost(MemoryView);

    impl ClusterView for ByHost {
        fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
            self.0.namespace(name)
        }

        fn contents(&self, namespace: &str) -> Contents {
            self.0.contents(namespace)
        }

        fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer> {
            self.0.users(referent, namespace, name)
        }

        fn routes_to(&self, host: &str) -> Vec<Route> {
            self.0.routes_to(host)
        }
    }

    #[test]
    fn serving_from_routes_by_host_answers_as_the_index_does() {
        let mut view = MemoryView::default();
        for (namespace, name, path) in [
            ("a", "web", "/"),
            ("b", "web", "/"),
            ("b", "api", "/v1"),
            ("own", "web", "/"),
            ("c", "web", "/"),
        ] {
            view.add_manifest(&serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": path,
                    "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
                .unwrap();
        }
        let by_host = ByHost(view.clone());
        for (path, limit) in [(None, 2), (None, 0), (Some("/v1"), 5), (Some("/none"), 5)] {
            let route = HostPath::new("shop.example.com", path);
            assert_eq!(by_host.serving(&route, "own", limit), view.serving(&route, "own", limit), "{route}");
        }
        assert_eq!(view.serving(&HostPath::new("shop.example.com", None), "own", 2).total, 3);
    }

    #[test]
    fn a_user_names_every_way_it_uses_the_object() {
        let user = Referrer {
            kind: ReferrerKind::Pod,
            namespace: "prod".into(),
            name: "api-7d9".into(),
            via: vec![Via::EnvFrom, Via::Volume],
            truncated: false,
        };
        assert_eq!(user.to_string(), "pod prod/api-7d9 (envFrom, volume)");
        let partial = Referrer { truncated: true, ..user.clone() };
        assert_eq!(
            partial.to_string(),
            "pod prod/api-7d9 (envFrom, volume; only its first 100 references are known to Defender)"
        );
        let unseen = Referrer { via: Vec::new(), ..partial };
        assert_eq!(
            unseen.to_string(),
            "pod prod/api-7d9 (perhaps: only its first 100 references are known to Defender)"
        );
    }
}
