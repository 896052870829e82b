//! delete-protection: any object can be protected against deletion by a
//! label, and a CustomResourceDefinition is never deleted while it still
//! defines custom resources.
//!
//! `defender.io/delete-protection: Always` refuses deleting the object until
//! the label is removed. `Cascading` refuses it while deleting it would take
//! something with it: a namespace its running workloads and bound volumes, a
//! CustomResourceDefinition its custom resources, a Deployment, StatefulSet,
//! ReplicaSet or DaemonSet its pods, any other object the running objects
//! that name it as their owner with `blockOwnerDeletion`. The label
//! OpenKruise uses for the same purpose (`policy.kruise.io/delete-protection`)
//! is honoured too, so protection survives a migration. Removing the label
//! is the way forward, and is refused only on core namespaces.
//!
//! Deleting a namespace would delete what it holds through the namespace
//! controller, an identity no policy holds: so a namespace is not deleted
//! while it holds objects that would refuse their own deletion, labelled
//! `Always` or labelled `Cascading` and still running something
//! ([`protected_contents`]).

use serde::Deserialize;

use crate::custom_resources::{self, CustomResourceType, Described};
use crate::policy::cascading_protection::still_holds;
use crate::policy::{Context, Rule, Spec, Verdict, Violation};
use crate::protected_objects;
use crate::request::{Operation, Request, labels_of};
use crate::routing::{self, Hook, Need, Resource};
use crate::selector::{Label, Labels};
use crate::settings::GARBAGE_COLLECTOR;

mod protected_contents;

/// The label OpenKruise protects objects with, with the same two values.
pub const OPEN_KRUISE_LABEL: &str = "policy.kruise.io/delete-protection";

/// A `DeleteProtection` document's `spec`, which is also its rule: judging needs nothing more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteProtectionSpec {
    /// The label key whose value (`Always` or `Cascading`) protects an object.
    #[serde(default = "default_label")]
    pub label: String,
    /// Also honour OpenKruise's `policy.kruise.io/delete-protection`.
    #[serde(default = "enabled")]
    pub open_kruise_label: bool,
    /// Protect every CustomResourceDefinition as if labelled `Cascading`.
    #[serde(default = "enabled")]
    pub custom_resource_definitions: bool,
    /// On a CustomResourceDefinition protected only by default, lets it go
    /// with its objects.
    #[serde(default = "default_exempt_label")]
    pub exempt_label: Label,
}

fn default_label() -> String {
    "defender.io/delete-protection".to_owned()
}

fn enabled() -> bool {
    true
}

fn default_exempt_label() -> Label {
    Label { key: "defender.io/deletion-allowed".to_owned(), value: "true".to_owned() }
}

impl Default for DeleteProtectionSpec {
    fn default() -> Self {
        Self {
            label: default_label(),
            open_kruise_label: true,
            custom_resource_definitions: true,
            exempt_label: default_exempt_label(),
        }
    }
}

/// What a protection label asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Protection<'a> {
    Always,
    Cascading,
    /// A value that is neither: taken as `Always`, since the label was put
    /// there to protect the object.
    Unrecognised(&'a str),
}

/// Why an object is protected: a label (key and value), or the default for
/// CustomResourceDefinitions.
struct Protected<'a> {
    protection: Protection<'a>,
    label: Option<(&'a str, &'a str)>,
}

impl Protected<'_> {
    /// `it is protected against cascading deletion by label K=Cascading`
    fn why(&self) -> String {
        match self.label {
            Some((key, value)) => {
                format!("it is protected against cascading deletion by label {key}={value}")
            }
            None => "every CustomResourceDefinition is protected while it still defines objects".to_owned(),
        }
    }
}

impl DeleteProtectionSpec {
    /// The protection label keys this policy reads, its own first.
    pub fn label_keys(&self) -> Vec<&str> {
        let mut keys = vec![self.label.as_str()];
        if self.open_kruise_label && self.label != OPEN_KRUISE_LABEL {
            keys.push(OPEN_KRUISE_LABEL);
        }
        keys
    }

    /// The protection `labels` ask for. `Always` (or a value not understood)
    /// under either key wins over `Cascading`.
    fn labelled<'a>(&self, labels: &'a Labels) -> Option<Protected<'a>> {
        let found = self.label_keys().into_iter().filter_map(|key| labels.get_key_value(key));
        let mut strongest: Option<Protected<'a>> = None;
        for (key, value) in found {
            let protection = match value.as_str() {
                "Always" => Protection::Always,
                protected_objects::CASCADING => Protection::Cascading,
                other => Protection::Unrecognised(other),
            };
            let label = Some((key.as_str(), value.as_str()));
            if strongest.as_ref().is_none_or(|s| s.protection == Protection::Cascading) {
                strongest = Some(Protected { protection, label });
            }
        }
        strongest
    }

    fn protected<'a>(&self, request: &'a Request) -> Option<Protected<'a>> {
        if let Some(labelled) = self.labelled(request.labels()) {
            return Some(labelled);
        }
        let by_default = self.custom_resource_definitions
            && request.is_kind(custom_resources::GROUP, custom_resources::KIND)
            && !self.exempt_label.is_on(request.labels());
        by_default.then_some(Protected { protection: Protection::Cascading, label: None })
    }

    fn always(&self, request: &Request, key: &str, value: &str, protection: &Protection) -> Violation {
        let meaning = match protection {
            Protection::Unrecognised(_) => " (a value other than Always or Cascading is taken as Always)",
            _ => "",
        };
        Violation::new(
            format!("{} is protected against deletion by label {key}={value}{meaning}", request.describe()),
            format!(
                "If it must go, remove the protection first, then delete it: {}",
                unlabel_command(request, key)
            ),
        )
    }

    fn cascading(&self, request: &Request, protected: &Protected, context: &Context) -> Verdict {
        let lift = match protected.label {
            Some((key, _)) => {
                format!("If all of it may go, remove the protection: {}", unlabel_command(request, key))
            }
            None => format!(
                "If they may all go with it, label it: {}",
                label_command(request, &self.exempt_label.to_string())
            ),
        };
        if request.is_kind("", "Namespace") {
            return self.namespace(request, protected, &lift, context);
        }
        if let Some(definition) = CustomResourceType::deleted_by(request) {
            return self.definition(request, &definition, protected, &lift, context);
        }
        if request.inner().kind.group == "apps" {
            return self.workload(request, protected, &lift, context);
        }
        let uid = request.old_object().and_then(|o| o.metadata.uid.as_deref()).unwrap_or_default();
        match context.view.dependents(uid) {
            0 => Verdict::Pass,
            count => Verdict::Violation(Violation::new(
                format!(
                    "{} still has {count} running {} that name it as their owner, and deleting it would \
                     delete them: {}",
                    request.describe(),
                    if count == 1 { "object" } else { "objects" },
                    protected.why()
                ),
                format!("Delete or scale them down first, then delete it. {lift}"),
            )),
        }
    }

    fn namespace(&self, request: &Request, protected: &Protected, lift: &str, context: &Context) -> Verdict {
        let namespace = request.name();
        // cascading-protection already judges it (one message, not two).
        if namespace.is_empty() || context.namespace_contents_guarded(request.labels()) {
            return Verdict::Pass;
        }
        let contents = context.view.contents(namespace);
        if contents.is_empty() {
            return Verdict::Pass;
        }
        Verdict::Violation(still_holds(namespace, &contents, &protected.why(), lift))
    }

    fn definition(
        &self,
        request: &Request,
        definition: &CustomResourceType,
        protected: &Protected,
        lift: &str,
        context: &Context,
    ) -> Verdict {
        let listing = format!("kubectl get {}.{} --all-namespaces", definition.plural, definition.group);
        match context.custom_resources(definition) {
            Ok(count) if count.is_empty() => Verdict::Pass,
            Ok(count) => Verdict::Violation(Violation::new(
                format!(
                    "{} still defines {}, and deleting it would delete them all: {}",
                    request.describe(),
                    Described(definition, &count),
                    protected.why()
                ),
                format!("Delete or migrate them first ({listing}), then delete the definition. {lift}"),
            )),
            Err(reason) => Verdict::Violation(Violation::new(
                format!(
                    "{} may still define {}, and deleting it would delete them all: Defender could not count \
                     them ({reason})",
                    request.describe(),
                    definition.plural_kind()
                ),
                format!("Nothing was deleted. Check what is left ({listing}) and try again. {lift}"),
            )),
        }
    }

    fn workload(&self, request: &Request, protected: &Protected, lift: &str, context: &Context) -> Verdict {
        let (kind, namespace, name) =
            (request.kind(), request.namespace().unwrap_or_default(), request.name());
        let replicas = request
            .old_object_spec()
            .and_then(|spec| spec.field::<serde_json::Value>("replicas"))
            .and_then(|replicas| replicas.as_i64());
        let (asks, scale) = match kind {
            "Deployment" | "StatefulSet" | "ReplicaSet" => {
                // The API server defaults replicas to 1.
                let replicas = replicas.unwrap_or(1);
                let active =
                    replicas > 0 || context.view.workload_active(kind, namespace, name) == Some(true);
                let scale = format!(
                    "Scale it to zero first (kubectl scale {} {name} -n {namespace} --replicas=0), then delete it",
                    kind.to_lowercase()
                );
                (active.then(|| format!("asks for {} replicas", replicas.max(1))), scale)
            }
            "DaemonSet" => {
                // Its pods are known only from its status, which the view keeps.
                let active = context.view.workload_active(kind, namespace, name) != Some(false);
                let scale =
                    "Stop its pods first (give it a nodeSelector no node matches), then delete it".to_owned();
                (active.then(|| "may have pods scheduled".to_owned()), scale)
            }
            _ => return Verdict::Pass,
        };
        match asks {
            None => Verdict::Pass,
            Some(asks) => Verdict::Violation(Violation::new(
                format!(
                    "{} {asks}, and deleting it would delete its pods: {}",
                    request.describe(),
                    protected.why()
                ),
                format!("{scale}. {lift}"),
            )),
        }
    }

    /// Deleting a namespace that holds objects that would refuse their own deletion.
    fn holds_protected(&self, request: &Request, context: &Context) -> Option<Violation> {
        let namespace = protected_objects::deleted_namespace(request)?;
        let keys = self.label_keys();
        let lookup = context.protected_objects(namespace, &keys);
        protected_contents::violation(namespace, &keys, lookup, context.view)
    }

    /// Taking the protection label off a core namespace: refused, the one
    /// case where removing the label is not the way forward.
    fn check_unlabel(&self, request: &Request, context: &Context) -> Verdict {
        let (before, after) = (labels_of(request.old_object()), labels_of(request.object()));
        let removed = self
            .label_keys()
            .into_iter()
            .find(|key| before.get(*key).is_some_and(|v| after.get(*key) != Some(v)));
        match removed {
            Some(key) if context.is_core_namespace(request.name()) => {
                Verdict::Violation(Violation::absolute(
                    format!(
                        "namespace {:?} is a core namespace: its delete-protection label {key} cannot be removed or changed",
                        request.name()
                    ),
                    context.break_glass_hint(),
                ))
            }
            _ => Verdict::Pass,
        }
    }
}

/// How kubectl names the request's kind: `deployment`, or
/// `certificates.cert-manager.io` for a custom resource.
fn kubectl_resource(request: &Request) -> String {
    let resource = &request.inner().resource;
    custom_resources::kubectl_resource(request.kind(), &resource.group, Some(&resource.resource))
}

/// `kubectl label deployment web -n prod LABEL`
fn label_command(request: &Request, label: &str) -> String {
    // A review of a Namespace names it as its own namespace: not a flag kubectl needs.
    let namespace = request
        .namespace()
        .filter(|_| !request.is_kind("", "Namespace"))
        .map(|ns| format!(" -n {ns}"))
        .unwrap_or_default();
    format!("kubectl label {} {}{namespace} {label}", kubectl_resource(request), request.name())
}

/// `kubectl label deployment web -n prod KEY-`
fn unlabel_command(request: &Request, key: &str) -> String {
    label_command(request, &format!("{key}-"))
}

impl Spec for DeleteProtectionSpec {
    type Rule = Self;
    const READS: &[&str] = &["metadata.uid", "metadata.labels", "spec.replicas"];

    fn into_rule(self) -> Result<Self, String> {
        if self.label.is_empty() {
            return Err("label: must name a label key".to_owned());
        }
        Ok(self)
    }
}

impl Rule for DeleteProtectionSpec {
    /// Deletions of anything (the delete-protection webhook sends only
    /// CustomResourceDefinitions and objects carrying one of the labels), and
    /// namespace deletions and updates (the namespaces webhook sends them all).
    fn routes(&self) -> Vec<Need> {
        let label_keys = self.label_keys().into_iter().map(str::to_owned).collect();
        let mut needs = Need::deletions(Hook::DeleteProtection { label_keys }, &Resource::everything());
        let namespaces = routing::kinds::resource("", "Namespace", None);
        needs.extend(Need::every(Hook::Namespaces, &namespaces, &[Operation::Update, Operation::Delete]));
        needs
    }

    /// Nothing in a healthy control plane deletes a CustomResourceDefinition;
    /// and the garbage collector deleting a labelled object (its owner was
    /// deleted, or given a dangling reference) is the way around the label.
    /// Other controllers deleting what they manage (pods of a labelled
    /// template) pass as before.
    fn holds_control_plane(&self, request: &Request) -> bool {
        let definition = request.is_kind(custom_resources::GROUP, custom_resources::KIND);
        let collected = request.username() == GARBAGE_COLLECTOR && self.labelled(request.labels()).is_some();
        request.is_delete() && (definition || collected)
    }

    fn applies(&self, request: &Request) -> bool {
        let namespace_update = *request.operation() == Operation::Update && request.is_kind("", "Namespace");
        (request.is_delete() && request.sub_resource().is_none()) || namespace_update
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        if !request.is_delete() {
            return self.check_unlabel(request, context);
        }
        let own = match self.protected(request) {
            None => Verdict::Pass,
            Some(protected) => match (&protected.protection, protected.label) {
                (Protection::Cascading, _) => self.cascading(request, &protected, context),
                (protection, Some((key, value))) => {
                    Verdict::Violation(self.always(request, key, value, protection))
                }
                (_, None) => Verdict::Pass,
            },
        };
        match (own, self.holds_protected(request, context)) {
            (Verdict::Violation(own), Some(held)) => Verdict::Violation(Violation::new(
                format!("{}; and {}", own.reason, held.reason),
                format!("{}. {}", own.remedy, held.remedy),
            )),
            (_, Some(held)) => Verdict::Violation(held),
            (own, None) => own,
        }
    }

    fn protection_label_keys(&self) -> Vec<&str> {
        self.label_keys()
    }
}

#[cfg(test)]
mod tests;
