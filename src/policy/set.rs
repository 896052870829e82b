//! The policies in force, with the settings they are judged under.

use crate::policy::Policy;
use crate::settings::Settings;

/// Settings plus the policies, in the order they were loaded.
pub struct PolicySet {
    pub settings: Settings,
    pub policies: Vec<Policy>,
}

impl PolicySet {
    /// Carries over the budgets of `previous` (the policies in force) to the
    /// policies of the same name, so a reload does not reset what was spent.
    pub fn adopt_budgets(&mut self, previous: &[Policy]) {
        for policy in &mut self.policies {
            if let Some(old) = previous.iter().find(|old| old.name() == policy.name()) {
                policy.adopt_budgets(&old.budgets());
            }
        }
    }
}
