//! deletion-guard: deleting Ingresses, Services, Secrets, ConfigMaps and Pods on purpose only.
//!
//! Each guarded kind is in one of two modes. `protect`: every delete needs the
//! exemption label on the object or its namespace. `bulk`: single deletes pass,
//! but collection deletes and bursts (many deletes by one user in one namespace
//! in a short window, which is what `kubectl delete pods --all` produces) do not.

use std::sync::Arc;

use serde::Deserialize;

use crate::budget::{Budget, Exhausted, Quota};
use crate::clock;
use crate::period::Period;
use crate::policy::{BudgetGauge, Charge, Context, Rule, Spec, Verdict, Violation, continued_budget};
use crate::request::Request;
use crate::routing::kinds::{self, Resource};
use crate::routing::{Hook, Need};
use crate::selector::{Label, LabelSelector};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeletionGuardSpec {
    /// On an object or its namespace, lets its deletion through.
    #[serde(default = "default_exempt_label")]
    pub exempt_label: Label,
    #[serde(default = "default_resources")]
    pub resources: Vec<GuardedResourceSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardedResourceSpec {
    pub kind: String,
    /// API group; optional for the kinds Defender knows.
    #[serde(default)]
    pub group: Option<String>,
    /// The resource name (`certificates`), for kinds Defender does not know
    /// whose plural is not the usual English one: the webhook configuration
    /// routes the kind by it.
    #[serde(default)]
    pub plural: Option<String>,
    pub mode: Mode,
    /// For `bulk`: more than `deletes` by one user in one namespace per `window` are denied.
    #[serde(default)]
    pub burst: Option<BurstSpec>,
    /// Objects matching any of these selectors are not guarded (e.g. Helm's
    /// release Secrets, cert-manager's temporary private keys).
    #[serde(default)]
    pub exempt_selectors: Vec<LabelSelector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Protect,
    Bulk,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    pub deletes: u32,
    pub window: Period,
}

/// The name of every burst budget, as metrics report it.
const BURST: &str = "bulk-deletions";

const DEFAULT_BURST: BurstSpec = BurstSpec { deletes: 5, window: Period::minutes(1) };

fn default_exempt_label() -> Label {
    Label { key: "defender.io/deletion-allowed".to_owned(), value: "true".to_owned() }
}

fn default_resources() -> Vec<GuardedResourceSpec> {
    let guarded = |kind: &str, mode| GuardedResourceSpec {
        kind: kind.to_owned(),
        group: None,
        plural: None,
        mode,
        burst: (mode == Mode::Bulk).then_some(DEFAULT_BURST),
        exempt_selectors: Vec::new(),
    };
    vec![
        guarded("Ingress", Mode::Protect),
        guarded("Service", Mode::Protect),
        guarded("Secret", Mode::Protect),
        guarded("ConfigMap", Mode::Protect),
        guarded("Pod", Mode::Bulk),
    ]
}

impl Default for DeletionGuardSpec {
    fn default() -> Self {
        Self { exempt_label: default_exempt_label(), resources: default_resources() }
    }
}

struct Guarded {
    kind: String,
    group: String,
    /// The kind as webhook rules name it.
    resource: Resource,
    mode: Mode,
    burst: Option<Arc<Budget>>,
    exempt_selectors: Vec<LabelSelector>,
}

impl Guarded {
    /// `Pod`, or `apps/Deployment` for kinds outside the core group.
    fn subject(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}/{}", self.group, self.kind) }
    }
}

pub struct DeletionGuard {
    exempt_label: Label,
    guarded: Vec<Guarded>,
}

impl DeletionGuard {
    pub fn new(spec: DeletionGuardSpec) -> Result<Self, String> {
        let mut guarded: Vec<Guarded> = Vec::new();
        for (index, resource) in spec.resources.into_iter().enumerate() {
            let at = format!("resources[{index}]");
            if resource.kind.is_empty() || !resource.kind.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "{at}.kind: {:?} is not a Kubernetes kind (e.g. Certificate)",
                    resource.kind
                ));
            }
            if let Some(plural) = &resource.plural
                && !is_resource_name(plural)
            {
                return Err(format!(
                    "{at}.plural: {plural:?} is not a resource name (lowercase letters, digits, '-' or '.', e.g. certificates)"
                ));
            }
            let group = match (&resource.group, kinds::known_group(&resource.kind)) {
                (Some(group), _) => group.clone(),
                (None, Some(group)) => group.to_owned(),
                (None, None) => {
                    return Err(format!(
                        "{at}.group: kind {:?} needs its API group (e.g. group: apps)",
                        resource.kind
                    ));
                }
            };
            if guarded.iter().any(|g| g.kind == resource.kind && g.group == group) {
                return Err(format!("{at}.kind: {:?} is listed twice", resource.kind));
            }
            let burst = match (resource.mode, resource.burst) {
                (Mode::Protect, Some(_)) => return Err(format!("{at}.burst: only applies to mode: bulk")),
                (Mode::Protect, None) => None,
                (Mode::Bulk, burst) => {
                    let burst = burst.unwrap_or(DEFAULT_BURST);
                    if burst.deletes == 0 || burst.window.0.is_zero() {
                        return Err(format!("{at}.burst: deletes and window must be greater than zero"));
                    }
                    Some(Arc::new(Budget::new(Quota { limit: burst.deletes, window: burst.window.0 })))
                }
            };
            guarded.push(Guarded {
                resource: kinds::resource(&group, &resource.kind, resource.plural.as_deref()),
                kind: resource.kind,
                group,
                mode: resource.mode,
                burst,
                exempt_selectors: resource.exempt_selectors,
            });
        }
        Ok(Self { exempt_label: spec.exempt_label, guarded })
    }

    fn guarded(&self, request: &Request) -> Option<&Guarded> {
        self.guarded.iter().find(|g| request.is_kind(&g.group, &g.kind))
    }

    /// The namespace carries the exemption label, and is not a core
    /// namespace (which may never be disarmed, whatever it carries).
    fn namespace_exempt(&self, request: &Request, context: &Context) -> bool {
        let Some(namespace) = request.namespace() else {
            return false;
        };
        let labelled = context.namespace(namespace).is_some_and(|ns| self.exempt_label.is_on(&ns.labels));
        labelled && !context.is_core_namespace(namespace)
    }

    fn object_exempt(&self, request: &Request, guarded: &Guarded) -> bool {
        let labels = request.labels();
        self.exempt_label.is_on(labels) || guarded.exempt_selectors.iter().any(|s| s.matches(labels))
    }

    fn label_object_command(&self, request: &Request) -> String {
        let kind = request.kind().to_lowercase();
        let namespace = request.namespace().map(|ns| format!(" -n {ns}")).unwrap_or_default();
        format!("kubectl label {kind} {}{namespace} {}", request.name(), self.exempt_label)
    }

    fn label_namespace_command(&self, request: &Request) -> String {
        format!(
            "kubectl label namespace {} {}",
            request.namespace().unwrap_or("NAMESPACE"),
            self.exempt_label
        )
    }

    fn protect(&self, request: &Request) -> Violation {
        let object = request.describe();
        if request.old_object().is_none() {
            return Violation::new(
                format!("deleting {object} at once is not allowed: they are protected against deletion"),
                format!(
                    "Delete them by name after labelling each, or label the namespace: {}",
                    self.label_namespace_command(request)
                ),
            );
        }
        let collection = if request.is_collection_delete() { " (part of a collection delete)" } else { "" };
        Violation::new(
            format!("{object} is protected against deletion{collection}"),
            format!(
                "To delete it on purpose, label it first, then delete it again: {}",
                self.label_object_command(request)
            ),
        )
    }

    fn bulk(&self, request: &Request, guarded: &Guarded, context: &Context) -> Verdict {
        if request.is_collection_delete() {
            let plural = &guarded.resource.plural;
            let namespace = request.namespace().unwrap_or("");
            return Verdict::Violation(Violation::new(
                format!(
                    "deleting {plural} as a collection (deletecollection) is not allowed in namespace {namespace:?}"
                ),
                format!(
                    "Delete them by name, or to delete many on purpose label the namespace: {}",
                    self.label_namespace_command(request)
                ),
            ));
        }
        let (namespace, name) = (request.namespace().unwrap_or(""), request.name());
        let is_pod = guarded.group.is_empty() && guarded.kind == "Pod";
        if is_pod && context.view.live_pod(namespace, name) == Some(false) {
            // A finished pod, or a forged review: judged, but it must not use
            // up a user's burst for the deletions that matter.
            tracing::info!(
                namespace,
                pod = name,
                "a pod DELETE the cluster view does not hold spends no burst"
            );
            return Verdict::Pass;
        }
        match &guarded.burst {
            Some(budget) => Verdict::Spend(Charge {
                budget: Arc::clone(budget),
                key: burst_key(request),
                object: request.object_identity(),
            }),
            None => Verdict::Pass,
        }
    }
}

/// A resource name as the API server accepts one (a DNS subdomain).
fn is_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// Bursts are counted per user, namespace and kind.
fn burst_key(request: &Request) -> String {
    format!("{}\u{0}{}\u{0}{}", request.username(), request.namespace().unwrap_or(""), request.kind())
}

impl Spec for DeletionGuardSpec {
    type Rule = DeletionGuard;
    const READS: &[&str] = &["metadata.name", "metadata.uid", "metadata.labels"];

    fn into_rule(self) -> Result<DeletionGuard, String> {
        DeletionGuard::new(self)
    }
}

impl Rule for DeletionGuard {
    fn applies(&self, request: &Request) -> bool {
        request.is_delete() && request.sub_resource().is_none() && self.guarded(request).is_some()
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        let Some(guarded) = self.guarded(request) else {
            return Verdict::Pass;
        };
        if self.namespace_exempt(request, context) || self.object_exempt(request, guarded) {
            return Verdict::Pass;
        }
        match guarded.mode {
            Mode::Protect => Verdict::Violation(self.protect(request)),
            Mode::Bulk => self.bulk(request, guarded, context),
        }
    }

    /// Mode protect: the deletions webhook (Fail). Mode bulk: the
    /// pod-deletions webhook (Ignore), for what controllers recreate.
    fn routes(&self) -> Vec<Need> {
        let hook = |mode| match mode {
            Mode::Protect => Hook::Deletions,
            Mode::Bulk => Hook::PodDeletions,
        };
        self.guarded.iter().flat_map(|g| Need::deletions(hook(g.mode), &g.resource)).collect()
    }

    fn namespace_exemptions(&self) -> Vec<Label> {
        vec![self.exempt_label.clone()]
    }

    fn over_budget(&self, request: &Request, exhausted: &Exhausted, context: &Context) -> Option<Violation> {
        let plural = match self.guarded(request) {
            Some(guarded) => guarded.resource.plural.clone(),
            None => kinds::plural(request.kind()),
        };
        let wait = clock::human(clock::until(context.now, exhausted.refills_at));
        Some(Violation::new(
            format!(
                "{} was not deleted: {:?} has reached the limit of {} {plural} deleted in namespace {:?} within {} \
                 (bulk deletion guard)",
                request.describe(),
                request.username(),
                exhausted.quota.limit,
                request.namespace().unwrap_or(""),
                clock::human(exhausted.quota.window),
            ),
            format!(
                "Wait until {} (in {wait}) and continue, or to delete many on purpose label the namespace: {}",
                exhausted.refills_at,
                self.label_namespace_command(request)
            ),
        ))
    }

    fn budgets(&self) -> Vec<BudgetGauge> {
        self.guarded
            .iter()
            .filter_map(|g| {
                let budget = g.burst.as_ref()?;
                Some(BudgetGauge { name: BURST, subject: g.subject(), budget: Arc::clone(budget), key: None })
            })
            .collect()
    }

    fn adopt_budgets(&mut self, previous: &[BudgetGauge]) {
        for guarded in &mut self.guarded {
            let subject = guarded.subject();
            if let Some(budget) = &mut guarded.burst
                && let Some(old) = continued_budget(previous, BURST, &subject, budget.quota())
            {
                *budget = old;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, assert_contains, object};
    use crate::view::NamespaceInfo;

    fn policy() -> DeletionGuard {
        DeletionGuard::new(DeletionGuardSpec::default()).unwrap()
    }

    #[test]
    fn rejects_deleting_each_protected_kind_without_the_label() {
        let fixture = Fixture::new();
        for (api_version, kind) in
            [("networking.k8s.io/v1", "Ingress"), ("v1", "Service"), ("v1", "Secret"), ("v1", "ConfigMap")]
        {
            let request = fixture.delete(object(api_version, kind, "prod", "web", &[]));
            let violation = fixture.violation(&policy(), &request);
            let lower = kind.to_lowercase();
            assert_eq!(violation.reason, format!("{lower} \"prod/web\" is protected against deletion"));
            assert_contains(
                &violation.remedy,
                &format!("kubectl label {lower} web -n prod defender.io/deletion-allowed=true"),
            );
        }
    }

    #[test]
    fn accepts_deleting_a_labelled_object() {
        let fixture = Fixture::new();
        let secret = object("v1", "Secret", "prod", "db", &[("defender.io/deletion-allowed", "true")]);
        assert!(matches!(policy().evaluate(&fixture.delete(secret), &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn accepts_deleting_in_a_labelled_namespace() {
        let fixture = Fixture::new().with_namespace(
            "sandbox",
            NamespaceInfo {
                labels: [("defender.io/deletion-allowed".into(), "true".into())].into(),
                ..NamespaceInfo::default()
            },
        );
        let configmap = object("v1", "ConfigMap", "sandbox", "settings", &[]);
        assert!(matches!(policy().evaluate(&fixture.delete(configmap), &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn the_label_value_must_match_exactly() {
        let fixture = Fixture::new();
        let secret = object("v1", "Secret", "prod", "db", &[("defender.io/deletion-allowed", "yes")]);
        assert!(matches!(
            policy().evaluate(&fixture.delete(secret), &fixture.context()),
            Verdict::Violation(_)
        ));
    }

    #[test]
    fn rejects_protected_items_of_a_collection_delete() {
        let fixture = Fixture::new();
        let request = fixture.delete_collection_item(object("v1", "Secret", "prod", "db", &[]));
        assert_contains(&fixture.violation(&policy(), &request).reason, "part of a collection delete");
        let legacy = fixture.legacy_collection_delete("", "v1", "Secret", Some("prod"));
        assert_contains(
            &fixture.violation(&policy(), &legacy).reason,
            "all secret objects in namespace \"prod\"",
        );
    }

    #[test]
    fn bulk_mode_charges_single_deletes_per_user_and_namespace() {
        let fixture = Fixture::new();
        let request = fixture.delete(object("v1", "Pod", "prod", "web-1", &[]));
        let Verdict::Spend(charge) = policy().evaluate(&request, &fixture.context()) else {
            panic!("a single pod delete should ask for the burst budget");
        };
        assert_eq!(charge.key, "developer@example.com\u{0}prod\u{0}Pod");
        assert_eq!(charge.budget.quota(), Quota { limit: 5, window: std::time::Duration::from_secs(60) });
    }

    #[test]
    fn bulk_mode_rejects_a_deletecollection_unless_the_namespace_is_labelled() {
        let fixture = Fixture::new();
        let request = fixture.delete_collection_item(object("v1", "Pod", "prod", "web-1", &[]));
        let violation = fixture.violation(&policy(), &request);
        assert_contains(&violation.reason, "deleting pods as a collection");
        assert_contains(&violation.remedy, "kubectl label namespace prod defender.io/deletion-allowed=true");

        let labelled = Fixture::new().with_namespace(
            "prod",
            NamespaceInfo {
                labels: [("defender.io/deletion-allowed".into(), "true".into())].into(),
                ..NamespaceInfo::default()
            },
        );
        assert!(matches!(policy().evaluate(&request, &labelled.context()), Verdict::Pass));
    }

    #[test]
    fn exempt_selector_lets_matching_objects_through() {
        let spec: DeletionGuardSpec = serde_yaml_ng::from_str(
            "resources: [{kind: Secret, mode: protect, exemptSelectors: [{matchLabels: {owner: helm}}]}]",
        )
        .unwrap();
        let guard = DeletionGuard::new(spec).unwrap();
        let fixture = Fixture::new();
        let release = object("v1", "Secret", "prod", "sh.helm.release.v1.web.v3", &[("owner", "helm")]);
        assert!(matches!(guard.evaluate(&fixture.delete(release), &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn does_not_apply_to_creates_other_kinds_or_subresources() {
        let fixture = Fixture::new();
        assert!(!policy().applies(&fixture.create(object("v1", "Secret", "prod", "db", &[]))));
        assert!(!policy().applies(&fixture.delete(object("apps/v1", "Deployment", "prod", "web", &[]))));
        let mut eviction = fixture.synthetic_delete(object("v1", "Pod", "prod", "web-1", &[]));
        eviction.sub_resource = Some("eviction".into());
        assert!(!policy().applies(&eviction.build().unwrap()));
    }

    #[test]
    fn rejects_unusable_resource_settings() {
        let parse = |yaml: &str| DeletionGuard::new(serde_yaml_ng::from_str(yaml).unwrap()).err().unwrap();
        assert!(parse("resources: [{kind: Widget, mode: protect}]").contains("needs its API group"));
        assert!(
            parse("resources: [{kind: Pod, mode: protect, burst: {deletes: 1, window: 1m}}]")
                .contains("only applies to mode: bulk")
        );
        assert!(
            parse("resources: [{kind: Pod, mode: bulk, burst: {deletes: 0, window: 1m}}]")
                .contains("greater than zero")
        );
        assert!(
            parse("resources: [{kind: Pod, mode: bulk}, {kind: Pod, mode: protect}]")
                .contains("listed twice")
        );
    }

    #[test]
    fn rejects_a_kind_or_plural_no_webhook_rule_could_name() {
        let parse = |yaml: &str| DeletionGuard::new(serde_yaml_ng::from_str(yaml).unwrap()).err().unwrap();
        let plural = parse("resources: [{kind: Widget, group: example.com, plural: Widgets, mode: protect}]");
        assert!(plural.starts_with("resources[0].plural: \"Widgets\" is not a resource name"), "{plural}");
        let kind = parse("resources: [{kind: 'Widget/x', group: example.com, mode: protect}]");
        assert!(kind.starts_with("resources[0].kind:"), "{kind}");
        assert!(parse("resources: [{kind: '', mode: protect}]").starts_with("resources[0].kind:"));
    }

    #[test]
    fn messages_name_the_kind_by_its_resource_name() {
        let fixture = Fixture::new();
        let spec = serde_yaml_ng::from_str(
            "resources: [{kind: Endpoints, mode: bulk}, {kind: Octopus, group: example.com, plural: octopodes, mode: bulk}]",
        )
        .unwrap();
        let guard = DeletionGuard::new(spec).unwrap();
        for (api_version, kind, plural) in
            [("v1", "Endpoints", "endpoints"), ("example.com/v1", "Octopus", "octopodes")]
        {
            let request = fixture.delete_collection_item(object(api_version, kind, "prod", "x", &[]));
            let violation = fixture.violation(&guard, &request);
            assert!(
                violation.reason.starts_with(&format!("deleting {plural} as a collection")),
                "{}",
                violation.reason
            );
        }
    }

    #[test]
    fn guards_any_kind_given_its_group() {
        let spec: DeletionGuardSpec =
            serde_yaml_ng::from_str("resources: [{kind: Widget, group: example.com, mode: protect}]")
                .unwrap();
        let guard = DeletionGuard::new(spec).unwrap();
        let fixture = Fixture::new();
        assert!(guard.applies(&fixture.delete(object("example.com/v1", "Widget", "prod", "w", &[]))));
    }
}
