//! Which `kind` of policy document builds which rule.
//!
//! Adding a policy kind: write its file in `src/policy/` (a spec type that
//! implements [`Spec`], and the [`Rule`](crate::policy::Rule) it builds), declare it with
//! `pub mod` in `policy/mod.rs`, and add one line to [`KINDS`]. Loading and
//! the "expected one of" list in error messages follow from the table; a
//! test then asks for the kind in README.md's policy reference.

use serde_yaml_ng::Value;

use crate::decode;
use crate::policy::cascading_protection::CascadingProtectionSpec;
use crate::policy::core_namespaces::CoreNamespacesSpec;
use crate::policy::delete_protection::DeleteProtectionSpec;
use crate::policy::deletion_guard::DeletionGuardSpec;
use crate::policy::duplicate_hosts::DuplicateHostsSpec;
use crate::policy::in_use_guard::InUseGuardSpec;
use crate::policy::ingress_hosts::IngressHostsSpec;
use crate::policy::namespace_deletion::NamespaceDeletionSpec;
use crate::policy::{Policy, Spec};

/// Every policy kind, in the order error messages list them.
pub const KINDS: &[Kind] = &[
    Kind::of::<CoreNamespacesSpec>("CoreNamespaces"),
    Kind::of::<NamespaceDeletionSpec>("NamespaceDeletion"),
    Kind::of::<CascadingProtectionSpec>("CascadingProtection"),
    Kind::of::<DeleteProtectionSpec>("DeleteProtection"),
    Kind::of::<DeletionGuardSpec>("DeletionGuard"),
    Kind::of::<InUseGuardSpec>("InUseGuard"),
    Kind::of::<IngressHostsSpec>("IngressHosts"),
    Kind::of::<DuplicateHostsSpec>("DuplicateHosts"),
];

/// One policy kind: the `kind` its documents name, and how they are built.
pub struct Kind {
    pub name: &'static str,
    build: fn(String, Value) -> Result<Policy, String>,
}

impl Kind {
    const fn of<S: Spec>(name: &'static str) -> Self {
        Self { name, build: build::<S> }
    }

    /// Builds the policy `name` from a document's `spec`; an error names
    /// the field (`spec.budget.deletions: ...`).
    pub fn build(&self, name: String, spec: Value) -> Result<Policy, String> {
        (self.build)(name, spec)
    }
}

/// The kind whose documents name `kind`.
pub fn find(kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|known| known.name == kind)
}

fn build<S: Spec>(name: String, spec: Value) -> Result<Policy, String> {
    let spec: S = decode::deserialize(spec, "spec")?;
    Policy::from_spec(name, spec).map_err(|error| format!("spec.{error}"))
}
