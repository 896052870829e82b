//! What the request handlers share: the engine in force, metrics, readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::Clock;
use crate::engine::Engine;
use crate::namespaces::NamespaceLookup;
use crate::server::metrics::Metrics;

/// The engine in force. A policy reload swaps it whole; a review in progress
/// keeps the engine it started with.
pub struct CurrentEngine(RwLock<Arc<Engine>>);

impl CurrentEngine {
    pub fn new(engine: Engine) -> Self {
        Self(RwLock::new(Arc::new(engine)))
    }

    pub fn get(&self) -> Arc<Engine> {
        // The lock only guards an Arc swap, which cannot leave it half-written.
        Arc::clone(&self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn replace(&self, engine: Engine) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(engine);
    }
}

pub struct AppState {
    pub engine: Arc<CurrentEngine>,
    pub metrics: Arc<Metrics>,
    pub namespaces: Arc<dyn NamespaceLookup>,
    pub own_namespace: Option<String>,
    pub clock: Arc<dyn Clock>,
    pub request_timeout: Duration,
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
