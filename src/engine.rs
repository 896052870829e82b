//! Judges one request against the policy set.
//!
//! [`Engine::review`] reads only what it is given (request, policies, "now",
//! the live cluster view and the budgets, as they stand when it reads them):
//! it returns the decision and the budget slots that decision still has to
//! spend, and does no I/O.
//! The server, the harness and the CLI are thin adapters around it. What the
//! cluster view cannot keep (a definition's objects, a namespace's labelled
//! objects) the server looks up before calling it. Spending comes last, only
//! when the overall answer is "allow" and the request is not a dry run: the
//! adapter commits the charges ([`Review::commit`]; a shared budget by
//! compare-and-swap on its Lease, the one step that may wait on the API
//! server) and [`Engine::settle`] turns a charge that lost into the denial the
//! fresh state gives.

use crate::budget::{Refusal, Unavailable};
use crate::policy::{Action, Charge, Context, Policy, PolicySet, Verdict, Violation};
use crate::request::Request;
use crate::selector::Label;
use crate::settings::{Settings, Skip};

mod commit;
mod outcome;
pub use commit::{Lost, PendingCharge, Review};
pub use outcome::Outcome;

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

    /// Denied, allowed with warnings, or allowed.
    pub fn outcome(&self) -> Outcome {
        if !self.allowed() {
            Outcome::Deny
        } else if self.warnings().is_empty() {
            Outcome::Allow
        } else {
            Outcome::Warn
        }
    }
}

pub struct Engine {
    settings: Settings,
    policies: Vec<Policy>,
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

    pub fn policies(&self) -> &[Policy] {
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

    /// Judges `request` from what `context` holds now: the policies' findings,
    /// and the budget slots the decision still has to spend to hold. A pure
    /// function of its inputs: it reads budgets (a shared one from its copy in
    /// memory) but changes nothing and waits on nothing. A dry run's charges
    /// are only checked here; a real request's are left for
    /// [`Review::commit`], then [`Engine::settle`].
    pub fn review(&self, request: &Request, context: &Context) -> Review {
        let now = context.now;
        if let Some(skip) = self.teardown(request, context) {
            return Review::settled(Decision { skipped: Some(skip), ..Decision::default() }, now);
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
            return Review::settled(Decision { skipped: exempt, ..Decision::default() }, now);
        }
        let mut pending = Vec::new();
        if exempt.is_none() && !findings.iter().any(|f| f.action == Action::Deny) {
            if request.dry_run() {
                check(context, &charges, &mut findings);
            } else {
                pending = charges.into_iter().map(Pending::into_charge).collect();
            }
        }
        let decision = self.with_break_glass(request, Decision { findings, ..Decision::default() });
        Review { decision, charges: pending, now }
    }

    /// The decision once [`Review::commit`] is done: each charge that did not
    /// fit adds the finding its policy gives for it, said from the state the
    /// commit found. Pure, like [`Engine::review`]; `request` and `context` are
    /// the ones reviewed (the context need not hold the lookups made for it).
    pub fn settle(&self, request: &Request, context: &Context, review: Review, lost: Vec<Lost>) -> Decision {
        let Review { mut decision, charges, .. } = review;
        if lost.is_empty() {
            return decision;
        }
        let proxy = request.deletion_by_proxy();
        for Lost { charge, refusal } in lost {
            let Some(pending) = charges.get(charge) else { continue };
            let judged = match (&proxy, pending.by_proxy) {
                (Some(proxy), true) => proxy,
                _ => request,
            };
            let violation = match (refusal, self.policies.get(pending.policy)) {
                (Refusal::Exhausted(exhausted), Some(policy)) if policy.name() == pending.policy_name => {
                    policy.over_budget(judged, &exhausted, context)
                }
                (Refusal::Exhausted(exhausted), _) => Violation::new(
                    format!("the budget {} is used up", exhausted.quota),
                    format!("The next slot opens at {}", exhausted.refills_at),
                ),
                (Refusal::Unavailable(unavailable), _) => unreachable_budget(&unavailable),
            };
            let violation = if pending.by_proxy { by_proxy(request, violation) } else { violation };
            decision.findings.push(Finding {
                policy: pending.policy_name.clone(),
                action: pending.action,
                violation,
            });
        }
        self.with_break_glass(request, decision)
    }

    /// [`Engine::review`], its charges committed in memory, then
    /// [`Engine::settle`]: the whole answer, for callers whose budgets are
    /// all in this process (the `defender test` harness, the CLI). A shared
    /// budget would make this wait on its record.
    pub fn decide(&self, request: &Request, context: &Context) -> Decision {
        let review = self.review(request, context);
        let lost = futures::executor::block_on(review.commit());
        self.settle(request, context, review, lost)
    }

    /// A denied request from a break-glass user passes, and says so.
    fn with_break_glass(&self, request: &Request, mut decision: Decision) -> Decision {
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
            .enumerate()
            .filter(|(_, p)| p.applies(request) && (!exempt || p.holds_control_plane(request)));
        for (index, policy) in applicable {
            match policy.evaluate(request, context) {
                Verdict::Pass => {}
                Verdict::Spend(charge) => {
                    judgement.charges.push(Pending { policy, index, charge, request, proxy_for })
                }
                Verdict::Violation(violation) => {
                    let violation = match proxy_for {
                        Some(update) => by_proxy(update, violation),
                        None => violation,
                    };
                    judgement.findings.push(finding(policy, violation));
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
}

/// What the policies found, and the budget slots they ask for.
#[derive(Default)]
struct Judgement<'a> {
    findings: Vec<Finding>,
    charges: Vec<Pending<'a>>,
}

/// A charge a policy asked for while judging, with the request it is for.
struct Pending<'a> {
    policy: &'a Policy,
    /// The policy's place in the engine's set.
    index: usize,
    charge: Charge,
    request: &'a Request,
    /// For a deletion by proxy: the update that causes it.
    proxy_for: Option<&'a Request>,
}

impl Pending<'_> {
    fn into_charge(self) -> PendingCharge {
        PendingCharge {
            policy: self.index,
            policy_name: self.policy.name().to_owned(),
            action: self.policy.action(),
            by_proxy: self.proxy_for.is_some(),
            charge: self.charge,
        }
    }
}

/// A dry run's charges, checked against the budgets as they stand (nothing
/// is spent): each that would not fit is a finding; one of an enforcing
/// policy settles the answer, so the rest are not checked.
fn check(context: &Context, charges: &[Pending], findings: &mut Vec<Finding>) {
    for Pending { policy, charge, request, proxy_for, .. } in charges {
        let Err(refusal) = charge.budget.check(&charge.key, &charge.object, context.now) else { continue };
        let violation = match refusal {
            Refusal::Exhausted(exhausted) => policy.over_budget(request, &exhausted, context),
            Refusal::Unavailable(unavailable) => unreachable_budget(&unavailable),
        };
        let violation = match proxy_for {
            Some(update) => by_proxy(update, violation),
            None => violation,
        };
        findings.push(finding(policy, violation));
        if policy.action() == Action::Deny {
            return;
        }
    }
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

fn finding(policy: &Policy, violation: Violation) -> Finding {
    Finding { policy: policy.name().to_owned(), action: policy.action(), violation }
}

#[cfg(test)]
mod tests;
