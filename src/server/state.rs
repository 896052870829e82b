//! What the request handlers share: the engine in force, metrics, readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::Clock;
use crate::engine::Engine;
use crate::lease_ledger::LeaseLedgers;
use crate::server::custom_resources::CustomResourceCounter;
use crate::server::events::DenialEvents;
use crate::server::memory::Holdings;
use crate::server::metrics::Metrics;
use crate::view::ClusterView;

/// The engine in force. A policy reload swaps it whole; a review in progress
/// keeps the engine it started with.
pub struct CurrentEngine {
    engine: RwLock<Arc<Engine>>,
    /// Where cluster-wide budgets are shared across replicas, when they are.
    shared_budgets: Option<LeaseLedgers>,
}

impl CurrentEngine {
    pub fn new(engine: Engine, shared_budgets: Option<LeaseLedgers>) -> Self {
        if let Some(ledgers) = &shared_budgets {
            ledgers.share(&engine);
        }
        Self { engine: RwLock::new(Arc::new(engine)), shared_budgets }
    }

    pub fn get(&self) -> Arc<Engine> {
        // The lock only guards an Arc swap, which cannot leave it half-written.
        Arc::clone(&self.engine.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Swaps in `engine`, its new budgets shared like the ones before them.
    pub fn replace(&self, engine: Engine) {
        if let Some(ledgers) = &self.shared_budgets {
            ledgers.share(&engine);
        }
        *self.engine.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(engine);
    }
}

pub struct AppState {
    pub engine: Arc<CurrentEngine>,
    pub metrics: Arc<Metrics>,
    pub view: Arc<dyn ClusterView>,
    pub own_namespace: Option<String>,
    pub events: Option<DenialEvents>,
    pub custom_resources: Option<CustomResourceCounter>,
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
