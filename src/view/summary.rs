//! One function per kind that turns the parts of an object the view reads
//! ([`Parts`]) into the little policies need of it. Nothing else is kept:
//! the live view summarizes what its watches deliver, the harness and the
//! unit tests summarize the manifests they declare, so both judge from the
//! same facts.
//!
//! What a summary keeps is bounded ([`bounds`]): strings are capped and so
//! are per-object lists, which then say they were cut.
//!
//! Objects that already carry a deletionTimestamp are on their way out: they
//! hold nothing a namespace deletion would add to the loss, and use nothing
//! whose deletion would hurt them more. Their summaries say so.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::decode;
use crate::selector::Labels;
use crate::view::bounds::{self, MAX_HOST, MAX_NAME, MAX_PATH, MAX_REFERENCES, MAX_ROUTES};
use crate::view::http_route::{HttpRoute, HttpRouteSpec};
use crate::view::parts::pod::{Container, Volume};
use crate::view::parts::{Kind, Parts, Replicas};

/// The facts policies need about one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceInfo {
    #[serde(default)]
    pub labels: Labels,
    /// The namespace has a deletionTimestamp (phase Terminating).
    #[serde(default)]
    pub terminating: bool,
    /// The namespace's uid, when known: what tells a review of this
    /// namespace from a review of an older one of the same name.
    #[serde(default)]
    pub uid: Option<String>,
    /// Defender's own annotations (`defender.io/...`), such as the deletion
    /// confirmation; other annotations are not kept.
    #[serde(default)]
    pub annotations: Labels,
}

/// The annotations a namespace summary keeps: Defender's, and only a few.
const KEPT_ANNOTATION_PREFIX: &str = "defender.io/";
const MAX_KEPT_ANNOTATIONS: usize = 16;
const MAX_KEPT_ANNOTATION_BYTES: usize = 256;

/// A Namespace, from its metadata alone (the live view watches nothing else).
/// Labels past [`bounds::MAX_LABELS`] are not kept; Defender's own come first.
pub fn namespace(metadata: &ObjectMeta) -> NamespaceInfo {
    let (labels, _) = metadata.labels.as_ref().map(bounds::labels).unwrap_or_default();
    let annotations = metadata.annotations.iter().flatten();
    let annotations = annotations
        .filter(|(key, value)| {
            key.starts_with(KEPT_ANNOTATION_PREFIX) && key.len() + value.len() <= MAX_KEPT_ANNOTATION_BYTES
        })
        .take(MAX_KEPT_ANNOTATIONS)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    NamespaceInfo {
        labels,
        terminating: metadata.deletion_timestamp.is_some(),
        uid: metadata.uid.as_deref().map(|uid| bounds::owned(uid, MAX_NAME)),
        annotations,
    }
}

/// The kinds of object that others depend on by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Referent {
    Secret,
    ConfigMap,
    Service,
}

impl Referent {
    pub fn kind(self) -> &'static str {
        match self {
            Referent::Secret => "Secret",
            Referent::ConfigMap => "ConfigMap",
            Referent::Service => "Service",
        }
    }
}

/// How an object refers to a Secret, ConfigMap or Service, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    Env,
    EnvFrom,
    Volume,
    ProjectedVolume,
    ImagePullSecrets,
    Tls,
    Backend,
    DefaultBackend,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Env => "env",
            Via::EnvFrom => "envFrom",
            Via::Volume => "volume",
            Via::ProjectedVolume => "projected volume",
            Via::ImagePullSecrets => "imagePullSecrets",
            Via::Tls => "tls",
            Via::Backend => "backend",
            Via::DefaultBackend => "defaultBackend",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named object another object depends on, and how.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    pub referent: Referent,
    pub name: String,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// Not finished (Pending, Running or Unknown) and not being deleted.
    /// Pending pods count: they are about to run (or would, given a node).
    pub live: bool,
    /// The Secrets and ConfigMaps it uses, each way once, sorted: the first
    /// [`MAX_REFERENCES`].
    pub references: Box<[Reference]>,
    /// It uses more than `references` holds.
    pub references_truncated: bool,
    /// The uids of the owners it keeps from being deleted ([`blocking_owners`]).
    pub blocking_owners: Box<[Box<str>]>,
}

/// A Pod: its phase and every Secret and ConfigMap it names, in all its
/// containers (init and ephemeral too), volumes and imagePullSecrets.
pub fn pod(pod: &Parts<Pod>) -> PodSummary {
    let phase = pod.status.as_ref().and_then(|status| status.phase.as_deref());
    let live = !matches!(phase, Some("Succeeded" | "Failed")) && !leaving(&pod.metadata);
    let mut references = BTreeSet::new();
    if let Some(spec) = &pod.spec {
        let containers = [&spec.containers, &spec.init_containers, &spec.ephemeral_containers];
        for container in containers.into_iter().flatten().flatten() {
            environment(container, &mut references);
        }
        for volume in spec.volumes.iter().flatten() {
            volume_references(volume, &mut references);
        }
        for secret in spec.image_pull_secrets.iter().flatten() {
            add(&mut references, Referent::Secret, secret.name(), Via::ImagePullSecrets);
        }
    }
    let (references, references_truncated) = bounds::first(references, MAX_REFERENCES);
    PodSummary { live, references, references_truncated, blocking_owners: blocking_owners(&pod.metadata) }
}

/// At most this many owners are kept per object (Kubernetes objects have one
/// controller; more owners are rare).
const MAX_BLOCKING_OWNERS: usize = 4;

/// The uids of the owners this object names with `blockOwnerDeletion`: while
/// it runs, deleting one of them takes it along, which an owner protected
/// against cascading deletion must not allow.
pub fn blocking_owners(metadata: &ObjectMeta) -> Box<[Box<str>]> {
    let owners = metadata.owner_references.iter().flatten();
    owners
        .filter(|owner| owner.block_owner_deletion == Some(true) && !owner.uid.is_empty())
        .take(MAX_BLOCKING_OWNERS)
        .map(|owner| bounds::text(&owner.uid, MAX_NAME).into())
        .collect()
}

fn environment(container: &Container, into: &mut BTreeSet<Reference>) {
    let env = container.env.iter().flatten();
    for source in env.filter_map(|var| var.value_from.as_ref()) {
        if let Some(secret) = &source.secret_key_ref {
            add(into, Referent::Secret, secret.name(), Via::Env);
        }
        if let Some(config_map) = &source.config_map_key_ref {
            add(into, Referent::ConfigMap, config_map.name(), Via::Env);
        }
    }
    for source in container.env_from.iter().flatten() {
        if let Some(secret) = &source.secret_ref {
            add(into, Referent::Secret, secret.name(), Via::EnvFrom);
        }
        if let Some(config_map) = &source.config_map_ref {
            add(into, Referent::ConfigMap, config_map.name(), Via::EnvFrom);
        }
    }
}

fn volume_references(volume: &Volume, into: &mut BTreeSet<Reference>) {
    if let Some(name) = volume.secret.as_ref().and_then(|secret| secret.secret_name.as_deref()) {
        add(into, Referent::Secret, name, Via::Volume);
    }
    if let Some(config_map) = &volume.config_map {
        add(into, Referent::ConfigMap, config_map.name(), Via::Volume);
    }
    let sources = volume.projected.as_ref().and_then(|projected| projected.sources.as_deref());
    for source in sources.unwrap_or_default() {
        if let Some(secret) = &source.secret {
            add(into, Referent::Secret, secret.name(), Via::ProjectedVolume);
        }
        if let Some(config_map) = &source.config_map {
            add(into, Referent::ConfigMap, config_map.name(), Via::ProjectedVolume);
        }
    }
}

/// Already being deleted.
fn leaving(metadata: &ObjectMeta) -> bool {
    metadata.deletion_timestamp.is_some()
}

fn add(into: &mut BTreeSet<Reference>, referent: Referent, name: &str, via: Via) {
    if !name.is_empty() {
        into.insert(Reference { referent, name: bounds::owned(name, MAX_NAME), via });
    }
}

/// A Deployment, StatefulSet, ReplicaSet or DaemonSet, as namespace deletion sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSummary {
    /// Asks for pods: replicas > 0, or for a DaemonSet, pods scheduled or nodes to schedule them on.
    pub active: bool,
    /// The uids of the owners it keeps from being deleted ([`blocking_owners`]).
    pub blocking_owners: Box<[Box<str>]>,
}

impl WorkloadSummary {
    fn new(active: bool, metadata: &ObjectMeta) -> Self {
        Self { active: active && !leaving(metadata), blocking_owners: blocking_owners(metadata) }
    }
}

/// Replicas default to 1 when a manifest leaves them out, as the API server defaults them.
fn replicas<K: Kind<Spec = Replicas>>(workload: &Parts<K>) -> i32 {
    workload.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1)
}

pub fn deployment(deployment: &Parts<Deployment>) -> WorkloadSummary {
    WorkloadSummary::new(replicas(deployment) > 0, &deployment.metadata)
}

pub fn stateful_set(stateful_set: &Parts<StatefulSet>) -> WorkloadSummary {
    WorkloadSummary::new(replicas(stateful_set) > 0, &stateful_set.metadata)
}

/// A ReplicaSet a Deployment controls is that Deployment's: counting both
/// would report one workload twice.
pub fn replica_set(replica_set: &Parts<ReplicaSet>) -> WorkloadSummary {
    let owned_by_deployment = replica_set
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.controller == Some(true) && owner.kind == "Deployment");
    WorkloadSummary::new(replicas(replica_set) > 0 && !owned_by_deployment, &replica_set.metadata)
}

/// A DaemonSet has no replica count: it counts while it has pods scheduled
/// or nodes to run them on. One that matches no node holds nothing.
pub fn daemon_set(daemon_set: &Parts<DaemonSet>) -> WorkloadSummary {
    let scheduled = daemon_set
        .status
        .as_ref()
        .map(|status| {
            let current = status.current_number_scheduled.unwrap_or_default();
            current.max(status.desired_number_scheduled.unwrap_or_default())
        })
        .unwrap_or(0);
    WorkloadSummary::new(scheduled > 0, &daemon_set.metadata)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeClaimSummary {
    /// Bound to a volume: deleting the claim may delete the data.
    pub bound: bool,
}

pub fn persistent_volume_claim(claim: &Parts<PersistentVolumeClaim>) -> VolumeClaimSummary {
    let phase = claim.status.as_ref().and_then(|status| status.phase.as_deref());
    VolumeClaimSummary { bound: phase == Some("Bound") && !leaving(&claim.metadata) }
}

/// A host and path some route serves. Hosts are compared without case or
/// a trailing dot; a missing path is `/`. Both are bounded ([`MAX_HOST`],
/// [`MAX_PATH`]) alike in requests and in the view, so they still compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPath {
    pub host: String,
    pub path: String,
}

impl HostPath {
    pub fn new(host: &str, path: Option<&str>) -> Self {
        let host = bounds::string(host.trim().trim_end_matches('.').to_ascii_lowercase(), MAX_HOST);
        let path = bounds::owned(path.filter(|p| !p.is_empty()).unwrap_or("/"), MAX_PATH);
        Self { host, path }
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.host, self.path)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressSummary {
    /// Secrets named by `spec.tls[].secretName`, and Services its backends
    /// route to: the first [`MAX_REFERENCES`].
    pub references: Box<[Reference]>,
    pub references_truncated: bool,
    /// The hosts and paths its rules serve (rules without a host serve every
    /// host; they are the ingress-hosts policy's concern and not listed): the
    /// first [`MAX_ROUTES`].
    pub routes: Box<[HostPath]>,
    /// It serves more than `routes` holds.
    pub routes_truncated: bool,
}

pub fn ingress(ingress: &Parts<Ingress>) -> IngressSummary {
    let (references, routes) = match &ingress.spec {
        Some(spec) => (ingress_references(spec), ingress_routes(spec)),
        None => Default::default(),
    };
    let (references, references_truncated) = bounds::first(references, MAX_REFERENCES);
    let (routes, routes_truncated) = bounds::first(routes, MAX_ROUTES);
    IngressSummary { references, references_truncated, routes, routes_truncated }
}

fn ingress_references(spec: &IngressSpec) -> BTreeSet<Reference> {
    let mut references = BTreeSet::new();
    for tls in spec.tls.iter().flatten() {
        add(&mut references, Referent::Secret, tls.secret_name.as_deref().unwrap_or(""), Via::Tls);
    }
    if let Some(backend) = &spec.default_backend {
        backend_reference(backend, Via::DefaultBackend, &mut references);
    }
    let paths = spec.rules.iter().flatten().flat_map(|rule| rule.http.iter().flat_map(|http| &http.paths));
    for path in paths {
        backend_reference(&path.backend, Via::Backend, &mut references);
    }
    references
}

/// An Ingress's spec as a request carries it, in k8s-openapi's v1 type, which
/// reads the hosts and paths of every served version alike (the v1beta1
/// versions differ only in their backends, whose fields it skips). An error
/// names the field that does not fit; tracking the path costs several times
/// the parse, so only a failure pays for it.
pub fn ingress_spec(spec: &serde_json::Value) -> Result<IngressSpec, String> {
    IngressSpec::deserialize(spec).map_err(|error| {
        decode::deserialize::<IngressSpec, _>(spec, "spec").err().unwrap_or_else(|| error.to_string())
    })
}

/// Every host and path an Ingress spec serves, however many: what a
/// request adds is judged whole, only the view keeps a bounded summary.
pub fn ingress_routes(spec: &IngressSpec) -> BTreeSet<HostPath> {
    let mut routes = BTreeSet::new();
    for rule in spec.rules.iter().flatten() {
        let Some(host) = rule.host.as_deref().filter(|host| !host.trim().is_empty()) else { continue };
        for path in rule.http.iter().flat_map(|http| &http.paths) {
            routes.insert(HostPath::new(host, path.path.as_deref()));
        }
    }
    routes
}

fn backend_reference(backend: &IngressBackend, via: Via, into: &mut BTreeSet<Reference>) {
    if let Some(service) = &backend.service {
        add(into, Referent::Service, &service.name, via);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSummary {
    /// Every hostname with every path its rules match (a rule without a path
    /// match serves `/`): the first [`MAX_ROUTES`].
    pub routes: Box<[HostPath]>,
    /// It serves more than `routes` holds.
    pub truncated: bool,
}

/// A Gateway API HTTPRoute. A route without hostnames takes its listener's
/// hosts, which the route does not name: it lists no routes.
pub fn http_route(route: &HttpRoute) -> RouteSummary {
    let (routes, truncated) = bounds::first(http_route_routes(&route.spec), MAX_ROUTES);
    RouteSummary { routes, truncated }
}

/// Every host and path an HTTPRoute spec serves, however many (see [`ingress_routes`]).
pub fn http_route_routes(spec: &HttpRouteSpec) -> BTreeSet<HostPath> {
    let mut paths = BTreeSet::new();
    for rule in &spec.rules {
        if rule.matches.is_empty() {
            paths.insert(None);
        }
        for matched in &rule.matches {
            paths.insert(matched.path.as_ref().and_then(|path| path.value.as_deref()));
        }
    }
    if paths.is_empty() {
        paths.insert(None);
    }
    let mut routes = BTreeSet::new();
    for host in spec.hostnames.iter().filter(|host| !host.trim().is_empty()) {
        for path in &paths {
            routes.insert(HostPath::new(host, *path));
        }
    }
    routes
}

#[cfg(test)]
mod tests;
