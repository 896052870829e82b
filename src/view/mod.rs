//! What Defender knows about the cluster beyond the request itself.
//!
//! An AdmissionReview does not carry its namespace's labels, what still runs
//! in a namespace being deleted, which Pods use the Secret being deleted, nor
//! which hosts other namespaces' Ingresses serve. Policies ask a
//! [`ClusterView`]. The harness and the CLI fill a [`MemoryView`] from the
//! objects they declare; `defender serve` keeps a [`LiveView`] fed by watches.
//! Both hold the same trimmed summaries ([`summary`]) and answer through the
//! same code, so offline and live judge alike.

pub mod http_route;
mod live;
mod memory;
pub mod summary;

use std::fmt;
use std::sync::Arc;

pub use live::LiveView;
pub use memory::{MemoryView, Store, Watched};
pub use summary::{HostPath, NamespaceInfo, Referent, Via};

/// What is said of a declared object whose kind the view does not keep.
pub const NOT_HELD: &str = "the cluster view keeps only Namespaces, Pods, Deployments, StatefulSets, \
                            ReplicaSets, DaemonSets, PersistentVolumeClaims, Ingresses and HTTPRoutes";

pub trait ClusterView: Send + Sync {
    /// `None` when nothing is known about the namespace.
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>>;

    /// What still runs or holds data in `namespace`.
    fn contents(&self, namespace: &str) -> Contents;

    /// Who uses the Secret, ConfigMap or Service `name` in `namespace`:
    /// live Pods, and Ingresses (TLS secrets, backend services), sorted.
    fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<User>;

    /// Every route (Ingress rule path, HTTPRoute hostname and path) serving `host`, in any namespace.
    fn routes_to(&self, host: &str) -> Vec<Route>;

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
}

/// Whether the cluster view confirms that a DELETE review of a namespace
/// (`stored`, the object the review carries) is about a namespace that
/// exists as shown: same uid, not already being deleted, carrying the
/// `required` annotations with the same values. Anyone who can reach
/// Defender's port can send a review; one the view contradicts is still
/// judged, but must not spend what real deletions need.
pub fn corroborates_namespace(
    view: &dyn ClusterView,
    stored: &kube::core::DynamicObject,
    required: &[&str],
) -> Result<(), &'static str> {
    let name = stored.metadata.name.as_deref().unwrap_or_default();
    let Some(known) = view.namespace(name) else {
        return if view.lists_every_namespace() { Err("no such namespace") } else { Ok(()) };
    };
    if known.terminating {
        return Err("the namespace is already being deleted");
    }
    if let (Some(known), Some(claimed)) = (&known.uid, &stored.metadata.uid)
        && known != claimed
    {
        return Err("the namespace has another uid");
    }
    let claimed = |key: &str| crate::request::annotation(Some(stored), key);
    let differs = |key: &&str| known.annotations.get(*key).map(String::as_str) != claimed(key);
    // An offline view is checked only on what it declares.
    if required
        .iter()
        .filter(|key| view.lists_every_namespace() || known.annotations.contains_key(**key))
        .any(differs)
    {
        return Err("the namespace's annotations differ");
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
pub enum UserKind {
    Pod,
    Ingress,
}

/// An object that uses a Secret, ConfigMap or Service, and how.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct User {
    pub kind: UserKind,
    pub namespace: String,
    pub name: String,
    pub via: Vec<Via>,
}

/// `pod prod/api-7d9 (envFrom, volume)`
impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            UserKind::Pod => "pod",
            UserKind::Ingress => "ingress",
        };
        let via: Vec<&str> = self.via.iter().map(|via| via.as_str()).collect();
        write!(f, "{kind} {}/{} ({})", self.namespace, self.name, via.join(", "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Ingress,
    HttpRoute,
}

/// One object serving a host at a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl Route {
    /// `ingress "other/web"`, `httproute "other/web"`
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            RouteKind::Ingress => "ingress",
            RouteKind::HttpRoute => "httproute",
        };
        format!("{kind} \"{}/{}\"", self.namespace, self.name)
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

    #[test]
    fn a_user_names_every_way_it_uses_the_object() {
        let user = User {
            kind: UserKind::Pod,
            namespace: "prod".into(),
            name: "api-7d9".into(),
            via: vec![Via::EnvFrom, Via::Volume],
        };
        assert_eq!(user.to_string(), "pod prod/api-7d9 (envFrom, volume)");
    }
}
