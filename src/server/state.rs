//! What the request handlers share: the engine in force, metrics, readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::clock::Clock;
pub use crate::server::current_engine::CurrentEngine;
use crate::server::custom_resources::CustomResourceCounter;
use crate::server::events::DenialEvents;
use crate::server::memory::Holdings;
use crate::server::metrics::Metrics;
use crate::server::protected_objects::ProtectedObjectFinder;
use crate::view::ClusterView;

pub struct AppState {
    pub engine: Arc<CurrentEngine>,
    pub metrics: Arc<Metrics>,
    pub view: Arc<dyn ClusterView>,
    pub own_namespace: Option<String>,
    pub events: Option<DenialEvents>,
    pub custom_resources: Option<CustomResourceCounter>,
    pub protected_objects: Option<ProtectedObjectFinder>,
    pub clock: Arc<dyn Clock>,
    pub request_timeout: Duration,
    /// What requests hold against the memory caps.
    pub holdings: Arc<Holdings>,
    /// Certificates and policies are loaded and the server is not draining.
    pub ready: AtomicBool,
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}
