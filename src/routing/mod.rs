//! What the API server must send Defender: the webhooks requests go to, and
//! the requests ([`Need`]) each policy states it must be sent
//! ([`crate::policy::Policy::routes`]). [`crate::webhooks`] builds the
//! ValidatingWebhookConfiguration from them.
//!
//! Requests go to one of five webhooks, because the failure policy and the
//! namespace selector must differ between them (see the comment at the top
//! of deploy/base/validatingwebhookconfiguration.yaml).

pub mod kinds;

use kube::core::admission::Operation;

pub use kinds::{Resource, plural};

/// One of Defender's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// Every request for a namespace, Defender's own included. Fail: an
    /// outage must not let a core namespace be deleted.
    Namespaces,
    /// Deletions of what no controller recreates (Services, Secrets, ...).
    /// Fail; never Defender's own namespace.
    Deletions,
    /// Deletions judged in bulk (pods, and custom resources in mode bulk):
    /// what controllers recreate. Ignore; never Defender's own namespace.
    PodDeletions,
    /// Writes of Ingresses and Gateway API routes. Ignore: every team's deploy
    /// touches them.
    IngressHosts,
    /// DELETEs of any object carrying one of `label_keys`, and of
    /// CustomResourceDefinitions. Fail; never Defender's own namespace. Its
    /// rules match everything, and a matchCondition keeps every request for an
    /// unlabelled object inside the API server.
    DeleteProtection { label_keys: Vec<String> },
}

impl Hook {
    /// The webhook's name in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Hook::Namespaces => "namespaces.defender.io",
            Hook::Deletions => "deletions.defender.io",
            Hook::PodDeletions => "pod-deletions.defender.io",
            Hook::IngressHosts => "ingress-hosts.defender.io",
            Hook::DeleteProtection { .. } => "delete-protection.defender.io",
        }
    }

    /// Whether the webhook never sends requests for objects in Defender's
    /// own namespace (its namespaceSelector leaves it out), so that Defender
    /// can always be repaired. The namespaces webhook sends every namespace:
    /// for a Namespace object the selector matches its own labels.
    pub fn excludes_own_namespace(&self) -> bool {
        match self {
            Hook::Namespaces | Hook::IngressHosts => false,
            Hook::Deletions | Hook::PodDeletions | Hook::DeleteProtection { .. } => true,
        }
    }

    /// Where the webhook stands in the configuration.
    pub fn rank(&self) -> usize {
        match self {
            Hook::Namespaces => 0,
            Hook::Deletions => 1,
            Hook::PodDeletions => 2,
            Hook::IngressHosts => 3,
            Hook::DeleteProtection { .. } => 4,
        }
    }
}

/// Which objects a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Cluster,
    Namespaced,
    /// Both (`*`).
    Any,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Cluster => "Cluster",
            Scope::Namespaced => "Namespaced",
            Scope::Any => "*",
        }
    }
}

/// Requests one policy must be sent: `operations` on one resource (or one
/// of its subresources) of one API group, through one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub hook: Hook,
    /// API group (`""` for the core group), or `*`.
    pub group: String,
    /// `v1` for built-in kinds; `*` for custom resources.
    pub versions: Vec<String>,
    /// Resource plural (`ingresses`), or `*`.
    pub resource: String,
    /// `status`, `finalize`; `None` for the resource itself.
    pub subresource: Option<String>,
    pub operations: Vec<Operation>,
    pub scope: Scope,
}

impl Need {
    /// `operations` on `resource` itself.
    pub fn new(hook: Hook, resource: &Resource, operations: &[Operation]) -> Self {
        Self {
            hook,
            group: resource.group.clone(),
            versions: resource.versions.clone(),
            resource: resource.plural.clone(),
            subresource: None,
            operations: operations.to_vec(),
            scope: resource.scope,
        }
    }

    /// The same need for `subresource` instead.
    pub fn of_subresource(self, subresource: &str) -> Self {
        Self { subresource: Some(subresource.to_owned()), ..self }
    }

    /// What judging the deletion of `resource` takes: its DELETEs, and the
    /// UPDATEs, of the object and of the subresources that keep metadata
    /// changes, that may change its owner references (a deletion by proxy:
    /// the engine judges them as the deletion they cause).
    pub fn deletions(hook: Hook, resource: &Resource) -> Vec<Self> {
        let mut needs = vec![Self::new(hook.clone(), resource, &[Operation::Delete, Operation::Update])];
        for subresource in &resource.subresources {
            needs.push(Self::new(hook.clone(), resource, &[Operation::Update]).of_subresource(subresource));
        }
        needs
    }

    /// Every request of `operations` on `resource` and on the subresources that
    /// keep metadata changes.
    pub fn every(hook: Hook, resource: &Resource, operations: &[Operation]) -> Vec<Self> {
        let whole = Self::new(hook, resource, operations);
        let mut needs = vec![whole.clone()];
        needs.extend(resource.subresources.iter().map(|sub| whole.clone().of_subresource(sub)));
        needs
    }

    /// `networking.k8s.io/ingresses`, `namespaces/status`: the resource as
    /// messages name it.
    pub fn describe(&self) -> String {
        let group = if self.group.is_empty() { String::new() } else { format!("{}/", self.group) };
        format!("{group}{}", self.path())
    }

    /// The resource as a rule lists it: `pods`, `pods/status`.
    pub fn path(&self) -> String {
        match &self.subresource {
            Some(subresource) => format!("{}/{subresource}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// The order the API server defines operations in; rules list them so.
pub fn operation_rank(operation: &Operation) -> usize {
    match operation {
        Operation::Create => 0,
        Operation::Update => 1,
        Operation::Delete => 2,
        Operation::Connect => 3,
    }
}

/// The operation as the API server spells it: for rules, suites, logs and metrics.
pub fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
