//! The policy contract and the built-in policies.
//!
//! A policy is a pure judgement of one request: it reads the request and the
//! context and returns a [`Verdict`]. It never spends a budget itself; it asks
//! for a [`Charge`] and the engine spends it only if the whole decision is
//! "allow" and the request is not a dry run.
//!
//! A [`Policy`] is a name, an [`Action`] and a [`Rule`]: the rule is what a
//! kind implements, and [`registry`] says which `kind` builds which rule.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;

use crate::budget::Budget;
use crate::custom_resources::{Counted, CustomResourceType, Prefetched};
use crate::protected_objects::{self, Lookup};
use crate::selector::{Label, Labels};
use crate::view::{ClusterView, NamespaceInfo};

static NO_LABELS: Labels = Labels::new();

mod contract;
pub mod registry;

pub use contract::{Confirmation, Policy, Rule, Spec};

pub mod cascading_protection;
pub mod core_namespaces;
pub mod delete_protection;
pub mod deletion_guard;
pub mod duplicate_hosts;
pub mod host_annotations;
pub mod hostname;
pub mod in_use_guard;
pub mod ingress_hosts;
pub mod namespace_deletion;
pub mod reads;
mod set;

pub use set::PolicySet;

/// What a policy does when it finds a violation. One switch per policy, so a
/// new policy can be rolled out as `dryrun`, then `warn`, then `deny`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Reject the request.
    #[default]
    Deny,
    /// Allow it, and tell the user with a warning.
    Warn,
    /// Allow it silently; only logs and metrics record the violation.
    Dryrun,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Dryrun => "dryrun",
        }
    }
}

/// Everything a policy may consult besides the request.
pub struct Context<'a> {
    pub now: Timestamp,
    /// What the cluster holds beyond the request.
    pub view: &'a dyn ClusterView,
    /// Groups allowed through every policy, named in messages that have no other way out.
    pub break_glass_groups: &'a [String],
    /// The namespace Defender itself runs in, when known: always core.
    pub own_namespace: Option<&'a str>,
    /// Labels that, on a namespace, exempt what it holds from some policy
    /// (collected from the policies' [`Rule::namespace_exemptions`]).
    pub namespace_exemptions: &'a [Label],
    /// The policy set, for what one policy asks of another (is this a core namespace?).
    pub policies: &'a [Policy],
    /// Custom resources counted for this request before judging (the live
    /// view keeps no count of them).
    pub counted: Option<&'a Prefetched>,
    /// The protected objects in the namespace this request deletes, looked
    /// up before judging (the live view does not keep them).
    pub protected: Option<&'a protected_objects::Prefetched>,
}

impl<'a> Context<'a> {
    pub fn with_own_namespace(self, own_namespace: Option<&'a str>) -> Self {
        Self { own_namespace, ..self }
    }

    pub fn with_counted(self, counted: Option<&'a Prefetched>) -> Self {
        Self { counted, ..self }
    }

    pub fn with_protected(self, protected: Option<&'a protected_objects::Prefetched>) -> Self {
        Self { protected, ..self }
    }

    /// The objects in `namespace` carrying a label under one of `keys`:
    /// looked up for this request, or by the view. The
    /// lookup made for this request covers every policy's keys, so it
    /// answers for any of them; callers pick their own keys' labels.
    pub fn protected_objects(&self, namespace: &str, keys: &[&str]) -> Lookup {
        match self.protected {
            Some(prefetched) if prefetched.namespace == namespace => prefetched.lookup.clone(),
            _ => self.view.protected_objects(namespace, keys),
        }
    }

    /// How many objects of `of` exist: counted for this request, or by the view.
    pub fn custom_resources(&self, of: &CustomResourceType) -> Counted {
        match self.counted {
            Some(prefetched) if prefetched.of == *of => prefetched.count.clone(),
            _ => self.view.custom_resources(of),
        }
    }

    pub fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.view.namespace(name)
    }

    /// Whether `name` is a core namespace: Defender's own, or one a policy marks
    /// core (by name, or by the labels the cluster view knows).
    pub fn is_core_namespace(&self, name: &str) -> bool {
        if self.own_namespace == Some(name) {
            return true;
        }
        let info = self.namespace(name);
        let labels = info.as_ref().map(|info| &info.labels).unwrap_or(&NO_LABELS);
        self.policies.iter().any(|policy| policy.marks_core(name, labels))
    }

    /// Whether a policy in the set refuses deleting a namespace with
    /// `labels` while it still holds running workloads.
    pub fn namespace_contents_guarded(&self, labels: &Labels) -> bool {
        self.policies.iter().any(|policy| policy.guards_namespace_contents(labels))
    }

    /// "ask a cluster admin ..." sentence for violations only break-glass can lift.
    pub fn break_glass_hint(&self) -> String {
        match self.break_glass_groups.first() {
            Some(group) => {
                format!("If it truly must happen, a cluster admin in group {group:?} can act as break-glass")
            }
            None => "Only a change to Defender's policy can allow it".to_owned(),
        }
    }
}

/// Why a request breaks a policy, and how to proceed on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong, naming the object: `namespace "kube-system" is a core namespace ...`.
    pub reason: String,
    /// The exact way forward: the label to add, when to retry, who to ask.
    pub remedy: String,
    /// Nothing the user can do lifts it. When an absolute violation is present,
    /// procedural ones (confirm first, wait for the budget) are not shown: they
    /// would send the user down a path that still ends in a denial.
    pub absolute: bool,
}

impl Violation {
    pub fn new(reason: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self { reason: reason.into(), remedy: remedy.into(), absolute: false }
    }

    pub fn absolute(reason: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self { absolute: true, ..Self::new(reason, remedy) }
    }

    /// `reason. remedy`, the sentence users read.
    pub fn message(&self) -> String {
        format!("{}. {}", self.reason, self.remedy)
    }
}

/// A request for one slot of a budget, spent only if the request is allowed.
#[derive(Debug, Clone)]
pub struct Charge {
    pub budget: Arc<Budget>,
    pub key: String,
    /// The object the slot is for: reviews of an object already counted in
    /// the window do not spend again (see [`crate::budget`]).
    pub object: String,
}

#[derive(Debug)]
pub enum Verdict {
    Pass,
    /// Passes if the budget has room.
    Spend(Charge),
    Violation(Violation),
}

/// A budget a policy keeps, as metrics report it.
pub struct BudgetGauge {
    pub name: &'static str,
    /// What the budget counts, unique among the policy's budgets of one name:
    /// `Namespace`, or a guarded kind such as `Pod` or `apps/Deployment`.
    pub subject: String,
    pub budget: Arc<Budget>,
    /// The key to report on, for budgets with a single key (cluster-wide ones).
    pub key: Option<&'static str>,
}

/// The budget among `previous` that a new budget `name`/`subject` with `quota`
/// continues: same name, same subject, same quota. A changed quota starts afresh,
/// since the old spends were counted against a different promise.
pub fn continued_budget(
    previous: &[BudgetGauge],
    name: &str,
    subject: &str,
    quota: crate::budget::Quota,
) -> Option<Arc<Budget>> {
    previous
        .iter()
        .find(|gauge| gauge.name == name && gauge.subject == subject && gauge.budget.quota() == quota)
        .map(|gauge| Arc::clone(&gauge.budget))
}
