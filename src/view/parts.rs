//! Each watched kind as the view reads it: [`Parts`] deserializes straight
//! from the API server's JSON into the fields its summary needs and nothing
//! else. serde skips every other field (managedFields, annotations, images,
//! probes, status conditions, ...) without allocating for it, so a watch
//! holds a few hundred bytes per object in flight instead of the whole
//! object, whatever the object holds.
//!
//! `Parts<Pod>` is watched as Pods are: its API resource is the kind's own.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

pub mod metadata;
pub mod pod;

/// A Kubernetes kind as the view reads it: which parts of its spec and
/// status ([`IgnoredAny`] for none).
pub trait Kind: k8s_openapi::Resource + Clone + Debug + Send + Sync + 'static {
    type Spec: DeserializeOwned + Clone + Debug + Send + Sync;
    type Status: DeserializeOwned + Clone + Debug + Send + Sync;
}

/// The parts of an object of kind `K` the view reads. Of the metadata, only
/// what [`metadata::kept`] keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "")]
pub struct Parts<K: Kind> {
    #[serde(default, deserialize_with = "metadata::kept")]
    pub metadata: ObjectMeta,
    pub spec: Option<K::Spec>,
    pub status: Option<K::Status>,
}

impl<K: Kind> k8s_openapi::Resource for Parts<K> {
    const API_VERSION: &'static str = K::API_VERSION;
    const GROUP: &'static str = K::GROUP;
    const KIND: &'static str = K::KIND;
    const VERSION: &'static str = K::VERSION;
    const URL_PATH_SEGMENT: &'static str = K::URL_PATH_SEGMENT;
    type Scope = K::Scope;
}

impl<K: Kind> k8s_openapi::Metadata for Parts<K> {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Kind for Pod {
    type Spec = pod::Spec;
    type Status = Phase;
}

impl Kind for Deployment {
    type Spec = Replicas;
    type Status = IgnoredAny;
}

impl Kind for StatefulSet {
    type Spec = Replicas;
    type Status = IgnoredAny;
}

impl Kind for ReplicaSet {
    type Spec = Replicas;
    type Status = IgnoredAny;
}

impl Kind for DaemonSet {
    type Spec = IgnoredAny;
    type Status = Scheduled;
}

impl Kind for PersistentVolumeClaim {
    type Spec = IgnoredAny;
    type Status = Phase;
}

/// An Ingress's spec is small and read as requests carry it
/// ([`crate::view::summary::ingress_routes`]), so the view reads it whole.
impl Kind for Ingress {
    type Spec = IngressSpec;
    type Status = IgnoredAny;
}

/// `status.phase` of a Pod or a PersistentVolumeClaim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Phase {
    pub phase: Option<String>,
}

/// `spec.replicas` of a Deployment, StatefulSet or ReplicaSet.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Replicas {
    pub replicas: Option<i32>,
}

/// How many nodes a DaemonSet runs on, or should.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scheduled {
    pub current_number_scheduled: Option<i32>,
    pub desired_number_scheduled: Option<i32>,
}

#[cfg(test)]
mod tests;
