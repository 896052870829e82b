//! What already in the cluster the policies would refuse.
//!
//! The webhook judges changes only: an Ingress admitted before Defender was
//! installed, or while its `Ignore` webhook was unreachable, is never judged.
//! An audit judges every stored object of the kinds the policies judge on
//! CREATE as if it were created now, with the same engine
//! ([`Engine::audit`]) and the same live cluster view as `defender serve`,
//! and reports per policy ([`report`], [`policy_report`]). [`cluster`] lists
//! the objects and writes reports; `defender audit` and the periodic audit
//! of `defender serve --audit-interval` both use it.

pub mod cluster;
pub mod policy_report;
pub mod report;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::engine::Engine;
use crate::policy::{Action, Context, Policy};
use crate::request::{Operation, User};
use crate::synthetic::Synthetic;
use crate::view::ClusterView;

/// Whom the requests an audit judges come from. No policy judges a create
/// by its author, and the engine's audit consults no exemption.
const AUDITOR: &str = "defender:audit";

/// One resource whose objects are audited: `networking.k8s.io` `ingresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub resource: String,
    /// Every webhook that sends its CREATEs leaves Defender's own namespace
    /// out, so objects there are never judged and not audited either.
    pub skip_own_namespace: bool,
}

impl Target {
    /// `networking.k8s.io/ingresses`, `namespaces`
    pub fn describe(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.group, self.resource)
        }
    }
}

/// A policy an audit leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotAudited {
    pub policy: String,
    pub why: &'static str,
}

/// What an audit of a policy set judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// The policies that audit existing objects, in policy-set order.
    pub audited: Vec<(String, Action)>,
    pub not_audited: Vec<NotAudited>,
}

/// The resources whose CREATEs the policies ask to be sent (their routes),
/// for the policies that audit existing objects.
pub fn plan(policies: &[Policy]) -> Plan {
    let mut plan = Plan { targets: Vec::new(), audited: Vec::new(), not_audited: Vec::new() };
    for policy in policies {
        let creates: Vec<_> = policy
            .routes()
            .into_iter()
            .filter(|need| need.subresource.is_none() && need.operations.contains(&Operation::Create))
            .collect();
        let why = if creates.is_empty() {
            Some("it judges deletions and updates only: an object that exists shows none")
        } else if !policy.audits_existing_objects() {
            Some("what it judges on a create depends on the moment of the change, not on the object")
        } else {
            None
        };
        if let Some(why) = why {
            plan.not_audited.push(NotAudited { policy: policy.name().to_owned(), why });
            continue;
        }
        plan.audited.push((policy.name().to_owned(), policy.action()));
        for need in creates {
            let skip = need.hook.excludes_own_namespace();
            match plan.targets.iter_mut().find(|t| t.group == need.group && t.resource == need.resource) {
                // Judged from Defender's namespace if any webhook sends it from there.
                Some(target) => target.skip_own_namespace &= skip,
                None => plan.targets.push(Target {
                    group: need.group,
                    resource: need.resource,
                    skip_own_namespace: skip,
                }),
            }
        }
    }
    plan
}

/// How an object fared against one policy, as policy reports say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyResult {
    /// Violates a policy in `deny` mode: created now, it would be refused.
    Fail,
    /// Violates a policy in `warn` or `dryrun` mode.
    Warn,
    Pass,
}

impl PolicyResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyResult::Fail => "fail",
            PolicyResult::Warn => "warn",
            PolicyResult::Pass => "pass",
        }
    }

    fn of(action: Action, violated: bool) -> Self {
        match (violated, action) {
            (false, _) => PolicyResult::Pass,
            (true, Action::Deny) => PolicyResult::Fail,
            (true, Action::Warn | Action::Dryrun) => PolicyResult::Warn,
        }
    }
}

/// The object a result is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One policy's judgement of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditResult {
    pub policy: String,
    #[serde(serialize_with = "action_name")]
    pub action: Action,
    pub result: PolicyResult,
    /// `ingress "shop/web"`, as denial messages name objects.
    pub object: String,
    pub resource: ObjectRef,
    /// Why it violates the policy and how to fix it; `None` for a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn action_name<S: serde::Serializer>(action: &Action, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(action.as_str())
}

/// Objects an audit does not judge, by why: the webhook would not be sent
/// them, or they are on their way out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftOut {
    /// Objects with a deletionTimestamp.
    pub being_deleted: usize,
    /// Objects inside a namespace being deleted.
    pub in_terminating_namespaces: usize,
    /// Objects in Defender's own namespace, which the webhooks for them leave out.
    pub in_own_namespace: usize,
}

impl LeftOut {
    pub fn total(&self) -> usize {
        self.being_deleted + self.in_terminating_namespaces + self.in_own_namespace
    }
}

/// How many objects of one resource were judged, or that it is not served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindAudited {
    pub resource: String,
    /// `false` when the cluster does not serve it (the Gateway API not installed).
    pub served: bool,
    pub objects: usize,
}

/// One policy's tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    #[serde(serialize_with = "action_name")]
    pub action: Action,
    /// Objects the policy judged.
    pub judged: usize,
    pub fail: usize,
    pub warn: usize,
    pub pass: usize,
}

impl PolicySummary {
    /// Objects that violate the policy, whatever its action.
    pub fn violations(&self) -> usize {
        self.fail + self.warn
    }
}

/// What one audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub at: Timestamp,
    /// Every result, passes included, in the order objects were judged.
    pub results: Vec<AuditResult>,
    pub kinds: Vec<KindAudited>,
    pub left_out: LeftOut,
    pub audited: Vec<(String, Action)>,
    pub not_audited: Vec<NotAudited>,
    /// Objects that could not be judged, each with why.
    pub unjudgeable: Vec<String>,
}

impl Audit {
    /// Per audited policy, in policy-set order.
    pub fn policies(&self) -> Vec<PolicySummary> {
        let mut summaries: Vec<PolicySummary> = self
            .audited
            .iter()
            .map(|(policy, action)| PolicySummary {
                policy: policy.clone(),
                action: *action,
                judged: 0,
                fail: 0,
                warn: 0,
                pass: 0,
            })
            .collect();
        let at: BTreeMap<&str, usize> =
            self.audited.iter().enumerate().map(|(i, (policy, _))| (policy.as_str(), i)).collect();
        for result in &self.results {
            let Some(&i) = at.get(result.policy.as_str()) else { continue };
            let summary = &mut summaries[i];
            summary.judged += 1;
            match result.result {
                PolicyResult::Fail => summary.fail += 1,
                PolicyResult::Warn => summary.warn += 1,
                PolicyResult::Pass => summary.pass += 1,
            }
        }
        summaries
    }

    /// The results that are violations.
    pub fn violations(&self) -> impl Iterator<Item = &AuditResult> {
        self.results.iter().filter(|result| result.result != PolicyResult::Pass)
    }
}

/// Judges objects one at a time into an [`Audit`], against one engine and
/// cluster view; the caller lists the objects.
pub struct Auditor<'a> {
    engine: &'a Engine,
    context: Context<'a>,
    own_namespace: Option<&'a str>,
    audit: Audit,
}

impl<'a> Auditor<'a> {
    pub fn new(
        engine: &'a Engine,
        view: &'a dyn ClusterView,
        now: Timestamp,
        own_namespace: Option<&'a str>,
    ) -> Self {
        let plan = plan(engine.policies());
        Self {
            engine,
            context: engine.context(now, view).with_own_namespace(own_namespace),
            own_namespace,
            audit: Audit {
                at: now,
                results: Vec::new(),
                kinds: plan
                    .targets
                    .iter()
                    .map(|target| KindAudited { resource: target.describe(), served: true, objects: 0 })
                    .collect(),
                left_out: LeftOut::default(),
                audited: plan.audited,
                not_audited: plan.not_audited,
                unjudgeable: Vec::new(),
            },
        }
    }

    /// Records that the cluster does not serve `target`.
    pub fn not_served(&mut self, target: &Target) {
        if let Some(kind) = self.kind(target) {
            kind.served = false;
        }
    }

    fn kind(&mut self, target: &Target) -> Option<&mut KindAudited> {
        let resource = target.describe();
        self.audit.kinds.iter_mut().find(|kind| kind.resource == resource)
    }

    /// Judges one stored object of `target` (as a list returns it: `apiVersion`
    /// and `kind` are set from the arguments when absent) as a CREATE.
    pub fn judge(&mut self, target: &Target, api_version: &str, kind: &str, mut object: Value) {
        if let Some(fields) = object.as_object_mut() {
            fields.entry("apiVersion").or_insert_with(|| Value::from(api_version));
            fields.entry("kind").or_insert_with(|| Value::from(kind));
        }
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            // Only the API server writes them; no policy reads them.
            metadata.remove("managedFields");
        }
        if object.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            self.audit.left_out.being_deleted += 1;
            return;
        }
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned);
        if let Some(namespace) = &namespace {
            if target.skip_own_namespace && self.own_namespace == Some(namespace.as_str()) {
                self.audit.left_out.in_own_namespace += 1;
                return;
            }
            if self.context.namespace(namespace).is_some_and(|info| info.terminating) {
                self.audit.left_out.in_terminating_namespaces += 1;
                return;
            }
        }
        let mut synthetic = Synthetic::new(Operation::Create);
        synthetic.user = User { username: AUDITOR.to_owned(), groups: Vec::new() };
        synthetic.dry_run = true;
        synthetic.object = Some(object);
        let request = match synthetic.build() {
            Ok(request) => request,
            Err(error) => {
                let name = synthetic.object.as_ref().and_then(|o| o.pointer("/metadata/name"));
                let name = name.and_then(Value::as_str).unwrap_or("(no name)");
                let at = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
                self.audit.unjudgeable.push(format!("{} {at}{name}: {error}", target.describe()));
                return;
            }
        };
        if let Some(kind) = self.kind(target) {
            kind.objects += 1;
        }
        let stored = request.object();
        let resource = ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: request.namespace().filter(|_| !request.is_kind("", "Namespace")).map(str::to_owned),
            name: request.name().to_owned(),
            uid: stored.and_then(|object| object.metadata.uid.clone()),
        };
        let object = request.describe().to_string();
        for audited in self.engine.audit(&request, &self.context) {
            self.audit.results.push(AuditResult {
                result: PolicyResult::of(audited.action, audited.violation.is_some()),
                message: audited.violation.map(|violation| violation.message()),
                policy: audited.policy,
                action: audited.action,
                object: object.clone(),
                resource: resource.clone(),
            });
        }
    }

    pub fn finish(self) -> Audit {
        self.audit
    }
}

#[cfg(test)]
mod tests;
