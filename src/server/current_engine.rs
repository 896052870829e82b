//! The engine in force, swapped whole when the policies are reloaded.

use std::sync::{Arc, RwLock};

use crate::engine::Engine;
use crate::server::lease_ledger::LeaseLedgers;

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
