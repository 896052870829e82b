//! What a policy kind implements (the [`Spec`] its documents decode into,
//! and the [`Rule`] that spec builds), and the named, switched policy the
//! engine runs ([`Policy`]).
//!
//! The bottom of `policy/`: the kinds implement this contract and the
//! registry lists the kinds, so nothing here names a kind.

use serde::de::DeserializeOwned;

use crate::budget::Exhausted;
use crate::period::Period;
use crate::policy::{Action, BudgetGauge, Context, Verdict, Violation};
use crate::request::Request;
use crate::routing::Need;
use crate::selector::{Label, Labels};

/// The `spec` of a policy document: what it deserializes into, and the
/// rule it builds. Every document's `spec.action` is the registry's to
/// read, not the kind's: a spec type has no `action` field. A kind whose
/// rule holds nothing but its settings is its own rule (`type Rule = Self`):
/// `into_rule` checks the spec and returns it.
pub trait Spec: DeserializeOwned {
    type Rule: Rule + 'static;

    /// What the policy does on a violation when its document sets no `spec.action`.
    const DEFAULT_ACTION: Action = Action::Deny;

    /// The fields of a request's objects the rule reads, as dotted paths
    /// from the object's top (`metadata.labels`, `spec.replicas`). The
    /// AdmissionReview parse keeps only part of each object, and the build
    /// fails when a kind reads a field the parse skips. No default: every
    /// kind states what it reads.
    const READS: &[&str];

    /// Checks what deserializing cannot and builds the rule; an error names
    /// the field within the spec (`budget.deletions: must be ...`).
    fn into_rule(self) -> Result<Self::Rule, String>;
}

/// What a namespace deletion must be confirmed with: what `defender
/// confirm-delete` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The annotation that holds the RFC 3339 time after which deletion is allowed.
    pub annotation: String,
    /// How far ahead that time must be when it is set.
    pub cooldown: Period,
}

/// The judgement a policy kind makes. Only [`Rule::applies`] and
/// [`Rule::evaluate`] are required; the rest answer "nothing" by default,
/// so a rule states only what it does.
pub trait Rule: Send + Sync {
    /// A cheap pre-filter on kind and operation.
    fn applies(&self, request: &Request) -> bool;

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict;

    /// Whether this rule judges `request` even from the control plane's
    /// exempt identities: for changes nothing in a healthy control plane
    /// makes, so that an exemption cannot be used as a way around it.
    fn holds_control_plane(&self, _request: &Request) -> bool {
        false
    }

    /// The violation to report when a [`crate::policy::Charge`] from
    /// `evaluate` does not fit. Rules that never ask for one keep the default.
    fn over_budget(
        &self,
        _request: &Request,
        _exhausted: &Exhausted,
        _context: &Context,
    ) -> Option<Violation> {
        None
    }

    /// Whether this rule makes `namespace` (with `labels`) a core namespace.
    fn marks_core(&self, _namespace: &str, _labels: &Labels) -> bool {
        false
    }

    /// Whether this rule refuses deleting a namespace with `labels` while
    /// it still holds running workloads and bound volumes.
    fn guards_namespace_contents(&self, _labels: &Labels) -> bool {
        false
    }

    /// Label keys that protect an object of any kind against deletion until
    /// removed: a namespace holding such an object is not deleted, and the
    /// server looks the objects up by these keys before judging.
    fn protection_label_keys(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Labels that, on a namespace, turn this rule off for what the
    /// namespace holds. Core namespaces may never carry them.
    fn namespace_exemptions(&self) -> Vec<Label> {
        Vec::new()
    }

    /// The requests the API server must send Defender for this rule to see
    /// what it judges. The webhook configuration is generated from these
    /// (`defender webhook-config`), and `defender check` and `defender serve`
    /// warn when a configuration leaves one out: a request no webhook rule
    /// matches never reaches Defender.
    fn routes(&self) -> Vec<Need> {
        Vec::new()
    }

    /// Whether judging an object already stored, as if it were created now,
    /// says something true of that object (`defender audit`). Rules whose
    /// CREATE check is about the moment of the change (a time that must lie a
    /// cooldown ahead of now) say no: an object confirmed long ago would be
    /// reported for being confirmed. Rules that judge only deletions and
    /// updates never apply to a CREATE, so they need not say.
    fn audits_existing_objects(&self) -> bool {
        true
    }

    /// The confirmation this rule wants on a namespace before it may be
    /// deleted, if any (`defender confirm-delete` sets it).
    fn deletion_confirmation(&self) -> Option<Confirmation> {
        None
    }

    /// The budgets this rule keeps, for metrics.
    fn budgets(&self) -> Vec<BudgetGauge> {
        Vec::new()
    }

    /// Shares the budgets of this rule's previous version (`previous` is its
    /// [`Rule::budgets`]) wherever [`crate::policy::continued_budget`] finds one, so reloading
    /// the policies does not hand out a fresh allowance.
    fn adopt_budgets(&mut self, _previous: &[BudgetGauge]) {}
}

/// One policy of the set: a [`Rule`] under the `metadata.name` denial
/// messages show, with the [`Action`] taken when it finds a violation.
/// Everything else is the rule's answer.
pub struct Policy {
    name: String,
    action: Action,
    rule: Box<dyn Rule>,
}

impl Policy {
    pub fn new(name: impl Into<String>, action: Action, rule: impl Rule + 'static) -> Self {
        Self { name: name.into(), action, rule: Box::new(rule) }
    }

    /// The policy `name` with the rule `spec` builds, and the kind's default action.
    pub fn from_spec<S: Spec>(name: impl Into<String>, spec: S) -> Result<Self, String> {
        Ok(Self::new(name, S::DEFAULT_ACTION, spec.into_rule()?))
    }

    /// The policy's `metadata.name`, as denial messages show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn action(&self) -> Action {
        self.action
    }

    /// See [`Rule::applies`].
    pub fn applies(&self, request: &Request) -> bool {
        self.rule.applies(request)
    }

    /// See [`Rule::evaluate`].
    pub fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        self.rule.evaluate(request, context)
    }

    /// See [`Rule::holds_control_plane`].
    pub fn holds_control_plane(&self, request: &Request) -> bool {
        self.rule.holds_control_plane(request)
    }

    /// The rule's over-budget violation. A charge from a rule that has none
    /// to give is a defect in Defender: it denies with a real violation
    /// rather than a panic, so the mistake is loud instead of a crash.
    pub fn over_budget(&self, request: &Request, exhausted: &Exhausted, context: &Context) -> Violation {
        self.rule.over_budget(request, exhausted, context).unwrap_or_else(|| {
            Violation::new(
                format!("policy {:?} reported an internal budget error", self.name),
                "Report this to the cluster admins",
            )
        })
    }

    /// See [`Rule::marks_core`].
    pub fn marks_core(&self, namespace: &str, labels: &Labels) -> bool {
        self.rule.marks_core(namespace, labels)
    }

    /// See [`Rule::guards_namespace_contents`].
    pub fn guards_namespace_contents(&self, labels: &Labels) -> bool {
        self.rule.guards_namespace_contents(labels)
    }

    /// See [`Rule::protection_label_keys`].
    pub fn protection_label_keys(&self) -> Vec<&str> {
        self.rule.protection_label_keys()
    }

    /// See [`Rule::namespace_exemptions`].
    pub fn namespace_exemptions(&self) -> Vec<Label> {
        self.rule.namespace_exemptions()
    }

    /// See [`Rule::routes`].
    pub fn routes(&self) -> Vec<Need> {
        self.rule.routes()
    }

    /// See [`Rule::audits_existing_objects`].
    pub fn audits_existing_objects(&self) -> bool {
        self.rule.audits_existing_objects()
    }

    /// See [`Rule::deletion_confirmation`].
    pub fn deletion_confirmation(&self) -> Option<Confirmation> {
        self.rule.deletion_confirmation()
    }

    /// See [`Rule::budgets`].
    pub fn budgets(&self) -> Vec<BudgetGauge> {
        self.rule.budgets()
    }

    /// See [`Rule::adopt_budgets`].
    pub fn adopt_budgets(&mut self, previous: &[BudgetGauge]) {
        self.rule.adopt_budgets(previous)
    }
}
