//! namespace-deletion: a "soft delete" for namespaces.
//!
//! Two brakes against a script gone wrong. A namespace must first be confirmed
//! for deletion (an annotation naming a time at least a cooldown away), and all
//! namespace deletions share one cluster-wide budget.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use crate::budget::{Budget, Exhausted, Quota};
use crate::clock;
use crate::period::Period;
use crate::policy::{
    BudgetGauge, Charge, Confirmation, Context, Rule, Spec, Verdict, Violation, continued_budget,
};
use crate::request::{Operation, Request, annotation};
use crate::routing::{self, Hook, Need};
use crate::selector::Label;

/// The command that sets the confirmation (`defender confirm-delete`, run as
/// a kubectl plugin), named in denials next to the raw `kubectl annotate`.
pub const CONFIRM_COMMAND: &str = "kubectl defender confirm-delete";

/// The single key of the cluster-wide budget.
const CLUSTER: &str = "cluster";
const BUDGET: &str = "namespace-deletions";
const SUBJECT: &str = "Namespace";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceDeletionSpec {
    #[serde(default)]
    pub budget: BudgetSpec,
    #[serde(default)]
    pub confirmation: ConfirmationSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Deletions allowed in any one window.
    #[serde(default = "default_deletions")]
    pub deletions: u32,
    #[serde(default = "default_window")]
    pub window: Period,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfirmationSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Holds the RFC 3339 time after which the namespace may be deleted.
    #[serde(default = "default_annotation")]
    pub annotation: String,
    /// How far in the future that time must be when it is set.
    #[serde(default = "default_cooldown")]
    pub cooldown: Period,
    /// Namespaces with this label skip the confirmation (they still spend budget).
    #[serde(default = "default_exempt_label")]
    pub exempt_label: Option<Label>,
}

fn yes() -> bool {
    true
}
fn default_deletions() -> u32 {
    3
}
fn default_window() -> Period {
    Period::minutes(10)
}
fn default_annotation() -> String {
    "defender.io/delete-after".to_owned()
}
fn default_cooldown() -> Period {
    Period::minutes(5)
}
fn default_exempt_label() -> Option<Label> {
    Some(Label { key: "defender.io/skip-delete-confirmation".to_owned(), value: "true".to_owned() })
}

impl Default for BudgetSpec {
    fn default() -> Self {
        Self { enabled: true, deletions: default_deletions(), window: default_window() }
    }
}

impl Default for ConfirmationSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            annotation: default_annotation(),
            cooldown: default_cooldown(),
            exempt_label: default_exempt_label(),
        }
    }
}

pub struct NamespaceDeletion {
    spec: NamespaceDeletionSpec,
    budget: Option<Arc<Budget>>,
}

impl NamespaceDeletion {
    pub fn new(spec: NamespaceDeletionSpec) -> Result<Self, String> {
        if spec.budget.enabled && spec.budget.deletions == 0 {
            return Err(
                "budget.deletions: must be at least 1 (set budget.enabled: false to turn the budget off)"
                    .into(),
            );
        }
        if spec.budget.enabled && spec.budget.window.0.is_zero() {
            return Err("budget.window: must be longer than zero".into());
        }
        if spec.confirmation.annotation.is_empty() {
            return Err("confirmation.annotation: must not be empty".into());
        }
        let budget = spec.budget.enabled.then(|| {
            Arc::new(Budget::new(Quota { limit: spec.budget.deletions, window: spec.budget.window.0 }))
        });
        Ok(Self { spec, budget })
    }

    fn check_delete(&self, request: &Request, context: &Context) -> Verdict {
        let Some(namespace) = request.old_object() else {
            return Verdict::Violation(Violation::new(
                "deleting namespaces as one collection is not allowed",
                "Delete each namespace by name",
            ));
        };
        let confirmation = &self.spec.confirmation;
        let exempt = confirmation.exempt_label.as_ref().is_some_and(|label| label.is_on(request.labels()));
        if confirmation.enabled && !exempt {
            let value = annotation(Some(namespace), &confirmation.annotation);
            if let Some(violation) = self.confirmation_problem(request.name(), value, context.now) {
                return Verdict::Violation(violation);
            }
        }
        // What the verdict rests on: the confirmation, or the label that skips it.
        let mut claims = crate::view::Claims::default();
        if confirmation.enabled && !exempt {
            claims.annotations.push(&confirmation.annotation);
        }
        if let Some(label) = confirmation.exempt_label.as_ref().filter(|_| exempt) {
            claims.labels.push(&label.key);
        }
        if let Err(why) = crate::view::corroborates_namespace(context.view, namespace, &claims) {
            // Judged, and allowed so far, but not counted: a forged review
            // must not use up the budget real deletions need.
            tracing::warn!(
                namespace = request.name(),
                user = request.username(),
                "a namespace DELETE the cluster view does not corroborate ({why}) spends no budget"
            );
            return Verdict::Pass;
        }
        match &self.budget {
            Some(budget) => Verdict::Spend(Charge {
                budget: Arc::clone(budget),
                key: CLUSTER.to_owned(),
                object: request.object_identity(),
            }),
            None => Verdict::Pass,
        }
    }

    /// What stands between this namespace and its deletion, if anything.
    fn confirmation_problem(&self, name: &str, value: Option<&str>, now: Timestamp) -> Option<Violation> {
        let key = &self.spec.confirmation.annotation;
        let cooldown = self.spec.confirmation.cooldown;
        let confirm = format!(
            "Confirm the deletion first, then delete it after the cooldown: {CONFIRM_COMMAND} {name}, or \
             kubectl annotate namespace {name} {key}={} (any RFC 3339 time at least {cooldown} from now)",
            self.suggested_time(now)
        );
        let Some(value) = value else {
            return Some(Violation::new(
                format!("namespace {name:?} has not been confirmed for deletion"),
                confirm,
            ));
        };
        let Ok(after) = value.parse::<Timestamp>() else {
            return Some(Violation::new(
                format!("namespace {name:?} has annotation {key}={value:?}, which is not an RFC 3339 time"),
                confirm.replace("kubectl annotate", "kubectl annotate --overwrite"),
            ));
        };
        (after > now).then(|| {
            Violation::new(
                format!(
                    "namespace {name:?} is confirmed for deletion only after {after}, {} from now",
                    clock::human(clock::until(now, after))
                ),
                format!("Try again after {after}"),
            )
        })
    }

    /// A time comfortably past the cooldown, on a whole minute, for copy-paste:
    /// the extra minute leaves time to run the command before it is too soon.
    fn suggested_time(&self, now: Timestamp) -> Timestamp {
        let earliest =
            clock::add(now, self.spec.confirmation.cooldown.0.saturating_add(Duration::from_secs(60)));
        let seconds = earliest.as_second();
        let rounded = seconds + (60 - seconds.rem_euclid(60)) % 60;
        Timestamp::from_second(rounded).unwrap_or(earliest)
    }

    /// Setting the confirmation annotation (on create or update) must name a
    /// time at least the cooldown away; otherwise the cooldown means nothing.
    /// Likewise the exemption label may only come with a new namespace: added
    /// to an existing one, it would skip the confirmation in one command.
    fn check_confirmation_change(&self, request: &Request, context: &Context) -> Verdict {
        if let Some(violation) = self.exemption_added(request, context) {
            return Verdict::Violation(violation);
        }
        let key = &self.spec.confirmation.annotation;
        let new = annotation(request.object(), key);
        let old = annotation(request.old_object(), key);
        let Some(value) = new.filter(|new| Some(*new) != old) else {
            return Verdict::Pass;
        };
        let name = request.name();
        let cooldown = self.spec.confirmation.cooldown;
        let earliest = clock::add(context.now, cooldown.0);
        let fix = format!(
            "Use a time at least {cooldown} from now: {CONFIRM_COMMAND} {name}, or \
             kubectl annotate --overwrite namespace {name} {key}={}",
            self.suggested_time(context.now)
        );
        match value.parse::<Timestamp>() {
            Err(_) => Verdict::Violation(Violation::new(
                format!("annotation {key}={value:?} on namespace {name:?} is not an RFC 3339 time"),
                fix,
            )),
            Ok(after) if after < earliest => Verdict::Violation(Violation::new(
                format!(
                    "annotation {key}={value} on namespace {name:?} is sooner than the {cooldown} cooldown allows \
                     (earliest {earliest})"
                ),
                fix,
            )),
            Ok(_) => Verdict::Pass,
        }
    }
}

impl NamespaceDeletion {
    fn exemption_added(&self, request: &Request, context: &Context) -> Option<Violation> {
        let label = self.spec.confirmation.exempt_label.as_ref()?;
        let old = request.old_object()?;
        let was_on = label.is_on(crate::request::labels_of(Some(old)));
        if was_on || !label.is_on(request.labels()) {
            return None;
        }
        let name = request.name();
        let key = &self.spec.confirmation.annotation;
        Some(Violation::new(
            format!(
                "label {label} cannot be added to the existing namespace {name:?}: it would skip the deletion \
                 confirmation; it is for namespaces created with it"
            ),
            format!(
                "To delete the namespace, confirm it: {CONFIRM_COMMAND} {name}, or \
                 kubectl annotate namespace {name} {key}={}",
                self.suggested_time(context.now)
            ),
        ))
    }
}

impl Spec for NamespaceDeletionSpec {
    type Rule = NamespaceDeletion;
    const READS: &[&str] =
        &["metadata.name", "metadata.labels", "metadata.annotations", "metadata.deletionTimestamp"];

    fn into_rule(self) -> Result<NamespaceDeletion, String> {
        NamespaceDeletion::new(self)
    }
}

impl Rule for NamespaceDeletion {
    /// Namespace deletions; with confirmation, every write too (the
    /// confirmation annotation is judged when it is set).
    fn routes(&self) -> Vec<Need> {
        let namespaces = routing::kinds::resource("", "Namespace", None);
        if self.spec.confirmation.enabled {
            Need::every(
                Hook::Namespaces,
                &namespaces,
                &[Operation::Create, Operation::Update, Operation::Delete],
            )
        } else {
            Need::deletions(Hook::Namespaces, &namespaces)
        }
    }

    /// On a create it judges the confirmation time against now: a namespace
    /// confirmed yesterday is no violation today.
    fn audits_existing_objects(&self) -> bool {
        false
    }

    fn deletion_confirmation(&self) -> Option<Confirmation> {
        let confirmation = &self.spec.confirmation;
        confirmation.enabled.then(|| Confirmation {
            annotation: confirmation.annotation.clone(),
            cooldown: confirmation.cooldown,
        })
    }

    fn applies(&self, request: &Request) -> bool {
        if !request.is_kind("", "Namespace") {
            return false;
        }
        // Updates through namespaces/status and namespaces/finalize keep
        // metadata changes too, so they are judged like any update.
        match request.operation() {
            Operation::Delete => request.sub_resource().is_none(),
            Operation::Create | Operation::Update => self.spec.confirmation.enabled,
            Operation::Connect => false,
        }
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        match request.operation() {
            Operation::Delete => self.check_delete(request, context),
            _ => self.check_confirmation_change(request, context),
        }
    }

    fn over_budget(&self, request: &Request, exhausted: &Exhausted, context: &Context) -> Option<Violation> {
        let wait = clock::human(clock::until(context.now, exhausted.refills_at));
        Some(Violation::new(
            format!(
                "namespace {:?} was not deleted: the cluster-wide namespace deletion budget ({}) is used up",
                request.name(),
                exhausted.quota
            ),
            format!(
                "The next deletion is possible at {} (in {wait}). {}",
                exhausted.refills_at,
                context.break_glass_hint()
            ),
        ))
    }

    fn budgets(&self) -> Vec<BudgetGauge> {
        self.budget
            .iter()
            .map(|budget| BudgetGauge {
                name: BUDGET,
                subject: SUBJECT.to_owned(),
                budget: Arc::clone(budget),
                key: Some(CLUSTER),
            })
            .collect()
    }

    fn adopt_budgets(&mut self, previous: &[BudgetGauge]) {
        if let Some(budget) = &mut self.budget
            && let Some(old) = continued_budget(previous, BUDGET, SUBJECT, budget.quota())
        {
            *budget = old;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        Fixture, assert_contains, namespace, namespace_with_annotations, namespace_with_labels,
    };

    fn policy() -> NamespaceDeletion {
        NamespaceDeletion::new(NamespaceDeletionSpec::default()).unwrap()
    }

    fn confirmed(name: &str) -> serde_json::Value {
        namespace_with_annotations(name, &[("defender.io/delete-after", "2026-01-01T00:00:00Z")])
    }

    #[test]
    fn rejects_an_unconfirmed_deletion_with_the_annotate_command() {
        let fixture = Fixture::new();
        let violation = fixture.violation(&policy(), &fixture.delete(namespace("scratch")));
        assert_contains(&violation.reason, "has not been confirmed");
        // Fixture time is 2026-01-01T00:00:00Z: cooldown 5m + 1m, on the minute.
        assert_contains(
            &violation.remedy,
            "kubectl annotate namespace scratch defender.io/delete-after=2026-01-01T00:06:00Z",
        );
    }

    #[test]
    fn the_unconfirmed_denial_names_the_confirm_delete_command() {
        let fixture = Fixture::new();
        let violation = fixture.violation(&policy(), &fixture.delete(namespace("scratch")));
        assert_contains(
            &violation.remedy,
            "kubectl defender confirm-delete scratch, or kubectl annotate namespace",
        );
    }

    #[test]
    fn names_the_confirmation_it_asks_for_unless_turned_off() {
        let confirmation = policy().deletion_confirmation().unwrap();
        assert_eq!(confirmation.annotation, "defender.io/delete-after");
        assert_eq!(confirmation.cooldown, Period::minutes(5));
        let mut spec = NamespaceDeletionSpec::default();
        spec.confirmation.enabled = false;
        assert_eq!(NamespaceDeletion::new(spec).unwrap().deletion_confirmation(), None);
    }

    #[test]
    fn rejects_a_deletion_before_the_confirmed_time() {
        let fixture = Fixture::new();
        let ns =
            namespace_with_annotations("scratch", &[("defender.io/delete-after", "2026-01-01T00:03:00Z")]);
        let violation = fixture.violation(&policy(), &fixture.delete(ns));
        assert_contains(&violation.reason, "only after 2026-01-01T00:03:00Z, 3m from now");
    }

    #[test]
    fn rejects_an_unparseable_confirmation() {
        let fixture = Fixture::new();
        let ns = namespace_with_annotations("scratch", &[("defender.io/delete-after", "tomorrow")]);
        let violation = fixture.violation(&policy(), &fixture.delete(ns));
        assert_contains(&violation.reason, "not an RFC 3339 time");
        assert_contains(&violation.remedy, "--overwrite");
    }

    #[test]
    fn a_confirmed_deletion_asks_to_spend_the_cluster_budget() {
        let fixture = Fixture::new();
        let verdict = policy().evaluate(&fixture.delete(confirmed("scratch")), &fixture.context());
        assert!(matches!(verdict, Verdict::Spend(Charge { ref key, .. }) if key == CLUSTER));
    }

    #[test]
    fn the_exemption_label_skips_confirmation_but_not_the_budget() {
        let fixture = Fixture::new();
        let ns = namespace_with_labels("ci-1234", &[("defender.io/skip-delete-confirmation", "true")]);
        let verdict = policy().evaluate(&fixture.delete(ns), &fixture.context());
        assert!(matches!(verdict, Verdict::Spend(_)));
    }

    #[test]
    fn rejects_setting_the_annotation_sooner_than_the_cooldown() {
        let fixture = Fixture::new();
        let old = namespace("scratch");
        let new =
            namespace_with_annotations("scratch", &[("defender.io/delete-after", "2026-01-01T00:04:59Z")]);
        let violation = fixture.violation(&policy(), &fixture.update(old, new));
        assert_contains(&violation.reason, "sooner than the 5m cooldown");
        let created =
            namespace_with_annotations("fresh", &[("defender.io/delete-after", "2025-01-01T00:00:00Z")]);
        assert_contains(&fixture.violation(&policy(), &fixture.create(created)).reason, "sooner");
    }

    #[test]
    fn accepts_setting_the_annotation_at_or_past_the_cooldown() {
        let fixture = Fixture::new();
        let new =
            namespace_with_annotations("scratch", &[("defender.io/delete-after", "2026-01-01T00:05:00Z")]);
        let verdict = policy().evaluate(&fixture.update(namespace("scratch"), new), &fixture.context());
        assert!(matches!(verdict, Verdict::Pass));
    }

    #[test]
    fn an_unchanged_old_confirmation_does_not_block_other_updates() {
        let fixture = Fixture::new();
        let verdict = policy().evaluate(&fixture.update(confirmed("a"), confirmed("a")), &fixture.context());
        assert!(matches!(verdict, Verdict::Pass));
    }

    #[test]
    fn over_budget_names_the_refill_time() {
        let fixture = Fixture::new();
        let request = fixture.delete(confirmed("scratch"));
        let exhausted = Exhausted {
            quota: Quota { limit: 3, window: Duration::from_secs(600) },
            refills_at: "2026-01-01T00:04:12Z".parse().unwrap(),
        };
        let violation = policy().over_budget(&request, &exhausted, &fixture.context()).unwrap();
        assert_contains(&violation.reason, "budget (3 per 10m) is used up");
        assert_contains(&violation.remedy, "at 2026-01-01T00:04:12Z (in 4m 12s)");
    }

    #[test]
    fn rejects_invalid_settings() {
        let mut spec = NamespaceDeletionSpec::default();
        spec.budget.deletions = 0;
        assert!(NamespaceDeletion::new(spec).err().unwrap().contains("budget.deletions"));
    }

    #[test]
    fn turned_off_parts_do_not_apply() {
        let mut spec = NamespaceDeletionSpec::default();
        spec.confirmation.enabled = false;
        spec.budget.enabled = false;
        let policy = NamespaceDeletion::new(spec).unwrap();
        let fixture = Fixture::new();
        assert!(!policy.applies(&fixture.create(namespace("x"))));
        assert!(matches!(
            policy.evaluate(&fixture.delete(namespace("x")), &fixture.context()),
            Verdict::Pass
        ));
    }
}
