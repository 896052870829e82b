//! The second half of a review: spending the budget slots its decision
//! depends on.
//!
//! [`super::Engine::review`] decides from what the view and the budgets hold
//! when it reads them, changing neither, and returns the charges it wants
//! made; the adapter commits them here, after judging, so judging never
//! waits. A budget in memory spends at once; a shared one spends in its record
//! (the Lease), where another replica may have taken the last slot meanwhile:
//! that charge is then [`Lost`], and [`super::Engine::settle`] says why.

use std::sync::Arc;

use jiff::Timestamp;

use crate::budget::{Refusal, Spent};
use crate::policy::{Action, Charge};

use super::Decision;

/// A judged review: the decision it stands at, and the budget slots still to
/// spend for that decision to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The answer if every charge commits.
    pub decision: Decision,
    /// In the order policies asked for them; empty for a denial or a dry run.
    pub charges: Vec<PendingCharge>,
    /// The moment judged, at which the charges are spent.
    pub now: Timestamp,
}

/// One slot a policy asked for, waiting to be spent.
#[derive(Debug, Clone)]
pub struct PendingCharge {
    pub charge: Charge,
    /// The policy's place in the engine's set, and its name and action.
    pub(super) policy: usize,
    pub policy_name: String,
    pub action: Action,
    /// For the deletion an owner-reference change causes, not the request itself.
    pub by_proxy: bool,
}

impl PartialEq for PendingCharge {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.charge.budget, &other.charge.budget)
            && self.charge.key == other.charge.key
            && self.charge.object == other.charge.object
            && self.policy == other.policy
            && self.policy_name == other.policy_name
            && self.action == other.action
            && self.by_proxy == other.by_proxy
    }
}

impl Eq for PendingCharge {}

/// A charge that did not fit when it was spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Its place in [`Review::charges`].
    pub charge: usize,
    pub refusal: Refusal,
}

impl Review {
    /// A review with nothing left to spend.
    pub(super) fn settled(decision: Decision, now: Timestamp) -> Self {
        Self { decision, charges: Vec::new(), now }
    }

    /// Spends the charges in order. One of an enforcing policy that does not
    /// fit ends the commit and gives back the slots taken before it (the
    /// request is denied, so nothing may stay spent for it); one of a policy
    /// that only warns is reported and the rest go on. Budgets in memory
    /// never make this wait.
    pub async fn commit(&self) -> Vec<Lost> {
        let mut spent: Vec<&Charge> = Vec::new();
        let mut lost = Vec::new();
        for (index, pending) in self.charges.iter().enumerate() {
            let Charge { budget, key, object } = &pending.charge;
            match budget.spend(key, object, self.now).await {
                Ok(Spent::New) => spent.push(&pending.charge),
                Ok(Spent::AlreadyCounted) => {}
                Err(refusal) => {
                    lost.push(Lost { charge: index, refusal });
                    if pending.action == Action::Deny {
                        for charge in spent.drain(..) {
                            charge.budget.give_back(&charge.key, &charge.object, self.now).await;
                        }
                        break;
                    }
                }
            }
        }
        lost
    }
}
