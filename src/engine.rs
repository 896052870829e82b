//! Judges one request against the policy set.
//!
//! The engine judges from (request, policies, budgets, "now", cluster view):
//! the server, the harness and the CLI are thin adapters around it. What the
//! cluster view cannot keep (a definition's objects, a namespace's labelled
//! objects) the server looks up before calling it. The engine evaluates every
//! applicable policy first and spends budgets last, only when the overall
//! answer is "allow" and the request is not a dry run; spending a shared
//! budget is the one step that reaches the API server (its Lease).

use crate::budget::{Refusal, Spent, Unavailable};
use crate::config::PolicySet;
use crate::policy::{Action, Charge, Context, Policy, Verdict, Violation};
use crate::request::Request;
use crate::selector::Label;
use crate::settings::{Settings, Skip};

mod cutoff;
pub use cutoff::Cutoff;

/// One policy's finding on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub policy: String,
    pub action: Action,
    pub violation: Violation,
}

impl Finding {
    /// `defender/<policy>: <reason>. <remedy>`
    pub fn message(&self) -> String {
        format!("defender/{}: {}", self.policy, self.violation.message())
    }
}

/// One policy's judgement of an existing object ([`Engine::audit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited {
    pub policy: String,
    pub action: Action,
    /// `None` when the object passes.
    pub violation: Option<Violation>,
}

/// The engine's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Every policy that found a violation, whatever its action.
    pub findings: Vec<Finding>,
    /// Set when the request was let through without consulting policies.
    pub skipped: Option<Skip>,
    /// A break-glass user was let through despite enforced findings.
    pub break_glass: bool,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.break_glass || !self.findings.iter().any(|f| f.action == Action::Deny)
    }

    /// The message the user reads in kubectl, when the request is denied. If any
    /// denial is absolute, procedural ones are left out: they would suggest a
    /// path that still ends in a denial.
    pub fn denial_message(&self) -> Option<String> {
        if self.allowed() {
            return None;
        }
        let denials: Vec<&Finding> = self.findings.iter().filter(|f| f.action == Action::Deny).collect();
        let any_absolute = denials.iter().any(|f| f.violation.absolute);
        let shown: Vec<String> = denials
            .into_iter()
            .filter(|f| f.violation.absolute || !any_absolute)
            .map(Finding::message)
            .collect();
        Some(shown.join("\n"))
    }

    /// Warnings for the user: warn-mode findings, and what break-glass overrode.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.action == Action::Warn || (self.break_glass && f.action == Action::Deny))
            .map(Finding::message)
            .collect();
        if self.break_glass {
            warnings.insert(
                0,
                "defender: break-glass used; the denials below were overridden and this is audited"
                    .to_owned(),
            );
        }
        warnings
    }

    /// Names of the policies that found something, in evaluation order.
    pub fn fired_policies(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.policy.as_str()).collect()
    }

    /// `allow`, `warn` or `deny`, as logs and metrics label the outcome.
    pub fn verdict(&self) -> &'static str {
        if !self.allowed() {
            "deny"
        } else if self.warnings().is_empty() {
            "allow"
        } else {
            "warn"
        }
    }
}

pub struct Engine {
    settings: Settings,
    policies: Vec<Box<dyn Policy>>,
    namespace_exemptions: Vec<Label>,
}

impl Engine {
    pub fn new(set: PolicySet) -> Self {
        let mut namespace_exemptions: Vec<Label> =
            set.policies.iter().flat_map(|policy| policy.namespace_exemptions()).collect();
        namespace_exemptions.dedup();
        Self { settings: set.settings, policies: set.policies, namespace_exemptions }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn policies(&self) -> &[Box<dyn Policy>] {
        &self.policies
    }

    /// Every policy's [`Policy::protection_label_keys`], each once.
    pub fn protection_label_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for key in self.policies.iter().flat_map(|policy| policy.protection_label_keys()) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// A context for `now` over a cluster view, carrying the engine's settings.
    pub fn context<'a>(
        &'a self,
        now: jiff::Timestamp,
        view: &'a dyn crate::view::ClusterView,
    ) -> Context<'a> {
        Context {
            now,
            view,
            break_glass_groups: &self.settings.break_glass_groups,
            own_namespace: None,
            namespace_exemptions: &self.namespace_exemptions,
            policies: &self.policies,
            counted: None,
            protected: None,
        }
    }

    pub fn review(&self, request: &Request, context: &Context) -> Decision {
        self.review_unless_cut_off(request, context, &Cutoff::new())
    }

    /// [`Engine::review`] for a caller that may stop waiting: once `cutoff` is
    /// cut off, no budget is spent, and the decision returned is not to be sent.
    pub fn review_unless_cut_off(&self, request: &Request, context: &Context, cutoff: &Cutoff) -> Decision {
        if let Some(skip) = self.teardown(request, context) {
            return Decision { skipped: Some(skip), ..Decision::default() };
        }
        // The control plane's own identities pass, except where a policy
        // holds them too (deleting a core namespace: nothing in a healthy
        // control plane does, so one that tries was sent by someone).
        let exempt = self.settings.exempt_identity(request);
        // A change that lets the garbage collector delete the object is
        // judged as the deletion it causes, unless that deletion would pass
        // as teardown.
        let proxy = request.deletion_by_proxy().filter(|proxy| self.teardown(proxy, context).is_none());
        let mut judgement = Judgement::default();
        self.judge(request, None, context, exempt.is_some(), &mut judgement);
        if let Some(proxy) = &proxy {
            self.judge(proxy, Some(request), context, exempt.is_some(), &mut judgement);
        }
        let Judgement { mut findings, charges } = judgement;
        if exempt.is_some() && findings.is_empty() {
            return Decision { skipped: exempt, ..Decision::default() };
        }
        if exempt.is_none() && !findings.iter().any(|f| f.action == Action::Deny) && cutoff.begin_spending() {
            self.spend(context, charges, &mut findings);
        }
        let mut decision = Decision { findings, ..Decision::default() };
        if !decision.allowed() && self.settings.is_break_glass(request) {
            decision.break_glass = true;
        }
        decision
    }

    /// Judges an object already stored, presented as `request` (a CREATE), as
    /// `defender audit` does: every policy that audits existing objects and
    /// applies to it says pass or why not. Nothing else of a review takes
    /// part: no identity is exempt or breaks glass (the object's author is
    /// not known), and no budget is consulted, since a budget limits how
    /// fast things change, not what exists.
    pub fn audit(&self, request: &Request, context: &Context) -> Vec<Audited> {
        self.policies
            .iter()
            .filter(|policy| policy.audits_existing_objects() && policy.applies(request))
            .map(|policy| {
                let violation = match policy.evaluate(request, context) {
                    Verdict::Violation(violation) => Some(violation),
                    Verdict::Pass | Verdict::Spend(_) => None,
                };
                Audited { policy: policy.name().to_owned(), action: policy.action(), violation }
            })
            .collect()
    }

    /// Evaluates every policy that applies to `request` (only those that hold
    /// the control plane too, for an exempt identity). `proxy_for` is the
    /// update a deletion by proxy stands for: findings say so.
    fn judge<'a>(
        &'a self,
        request: &'a Request,
        proxy_for: Option<&'a Request>,
        context: &Context,
        exempt: bool,
        judgement: &mut Judgement<'a>,
    ) {
        let applicable = self
            .policies
            .iter()
            .filter(|p| p.applies(request) && (!exempt || p.holds_control_plane(request)));
        for policy in applicable {
            match policy.evaluate(request, context) {
                Verdict::Pass => {}
                Verdict::Spend(charge) => {
                    judgement.charges.push(Pending { policy: policy.as_ref(), charge, request, proxy_for })
                }
                Verdict::Violation(violation) => {
                    let violation = match proxy_for {
                        Some(update) => by_proxy(update, violation),
                        None => violation,
                    };
                    judgement.findings.push(finding(policy.as_ref(), violation));
                }
            }
        }
    }

    /// Requests that finish what was already decided: deleting an object on
    /// its way out, removing its finalizers, deleting inside a namespace
    /// that is being deleted.
    fn teardown(&self, request: &Request, context: &Context) -> Option<Skip> {
        if let Some(skip) = self.settings.teardown(request) {
            return Some(skip);
        }
        let terminating = self.settings.allow_in_terminating_namespaces
            && request.is_delete()
            && !request.is_kind("", "Namespace")
            && request.namespace().and_then(|ns| context.namespace(ns)).is_some_and(|ns| ns.terminating);
        terminating.then_some(Skip::TerminatingNamespace)
    }

    /// Spends every charge, or none: if one does not fit, the ones already spent
    /// are refunded. Dry runs only check that each would fit.
    fn spend(&self, context: &Context, charges: Vec<Pending>, findings: &mut Vec<Finding>) {
        let mut spent: Vec<&Charge> = Vec::new();
        for Pending { policy, charge, request, proxy_for } in &charges {
            let fits = if request.dry_run() {
                charge.budget.check(&charge.key, &charge.object, context.now)
            } else {
                charge.budget.try_spend(&charge.key, &charge.object, context.now)
            };
            match fits {
                Ok(Spent::New) if !request.dry_run() => spent.push(charge),
                Ok(_) => {}
                Err(refusal) => {
                    let violation = match refusal {
                        Refusal::Exhausted(exhausted) => policy.over_budget(request, &exhausted, context),
                        Refusal::Unavailable(unavailable) => unreachable_budget(&unavailable),
                    };
                    let violation = match proxy_for {
                        Some(update) => by_proxy(update, violation),
                        None => violation,
                    };
                    findings.push(finding(*policy, violation));
                    if policy.action() == Action::Deny {
                        for charge in spent.drain(..) {
                            charge.budget.refund(&charge.key, &charge.object, context.now);
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// What the policies found, and the budget slots they ask for.
#[derive(Default)]
struct Judgement<'a> {
    findings: Vec<Finding>,
    charges: Vec<Pending<'a>>,
}

/// A charge waiting for the final decision, with the request it is for.
struct Pending<'a> {
    policy: &'a dyn Policy,
    charge: Charge,
    request: &'a Request,
    /// For a deletion by proxy: the update that causes it.
    proxy_for: Option<&'a Request>,
}

/// A finding on the deletion an owner-reference change causes, said as such.
fn by_proxy(update: &Request, violation: Violation) -> Violation {
    let object = update.describe();
    Violation {
        reason: format!(
            "adding an ownerReference to {object} lets the garbage collector delete it, so the change is \
             judged as that deletion: {}",
            violation.reason
        ),
        ..violation
    }
}

/// A shared budget that cannot be read fails closed: allowing would let
/// replicas together exceed it.
fn unreachable_budget(unavailable: &Unavailable) -> Violation {
    Violation::new(
        format!(
            "the budget this deletion must fit in is shared by every Defender replica, and {unavailable}"
        ),
        "Nothing was deleted. Try again once the API server answers; Defender refuses budgeted deletions \
         while it cannot count them",
    )
}

fn finding(policy: &dyn Policy, violation: Violation) -> Finding {
    Finding { policy: policy.name().to_owned(), action: policy.action(), violation }
}

#[cfg(test)]
mod tests;
