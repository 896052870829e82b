//! What Defender knows about namespaces beyond the request itself.
//!
//! An AdmissionReview for a Secret does not carry its namespace's labels or
//! whether that namespace is being deleted. Policies ask a [`NamespaceLookup`]:
//! the harness fills one from a suite's declarations; in a cluster it is backed
//! by a live view.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::selector::Labels;

/// The facts policies need about one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceInfo {
    #[serde(default)]
    pub labels: Labels,
    /// The namespace has a deletionTimestamp (phase Terminating).
    #[serde(default)]
    pub terminating: bool,
}

pub trait NamespaceLookup: Send + Sync {
    /// `None` when nothing is known about the namespace.
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>>;

    /// Whether the view reflects the cluster yet (readiness waits for it).
    fn synced(&self) -> bool {
        true
    }
}

/// A fixed set of namespaces, as declared by a test suite (or none at all).
#[derive(Debug, Clone, Default)]
pub struct StaticNamespaces(pub HashMap<String, Arc<NamespaceInfo>>);

impl NamespaceLookup for StaticNamespaces {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.0.get(name).cloned()
    }
}
