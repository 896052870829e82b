//! Which `kind` of policy document builds which rule.
//!
//! Adding a policy kind: write its file in `src/policy/` (a spec type that
//! implements [`Spec`], with the fields it `READS`, its `DEFAULT_ACTION` if
//! not deny, and the [`Rule`](crate::policy::Rule) it builds), declare it
//! with `pub mod` in `policy/mod.rs`, and add one line to [`KINDS`].
//! Loading, `spec.action`, the "expected one of" list in error messages and
//! the build's check that the AdmissionReview parse keeps what the kind
//! reads follow from the table; a test then asks for the kind in README.md's
//! policy reference.

use serde_path_to_error::Segment;
use serde_yaml_ng::Value;

use crate::decode;
use crate::policy::{Action, Policy, Spec};

/// Every policy kind, in the order error messages list them.
pub const KINDS: &[Kind] = &[
    Kind::of::<super::core_namespaces::CoreNamespacesSpec>("CoreNamespaces"),
    Kind::of::<super::namespace_deletion::NamespaceDeletionSpec>("NamespaceDeletion"),
    Kind::of::<super::cascading_protection::CascadingProtectionSpec>("CascadingProtection"),
    Kind::of::<super::delete_protection::DeleteProtectionSpec>("DeleteProtection"),
    Kind::of::<super::deletion_guard::DeletionGuardSpec>("DeletionGuard"),
    Kind::of::<super::in_use_guard::InUseGuardSpec>("InUseGuard"),
    Kind::of::<super::ingress_hosts::IngressHostsSpec>("IngressHosts"),
    Kind::of::<super::duplicate_hosts::DuplicateHostsSpec>("DuplicateHosts"),
];

/// One policy kind: the `kind` its documents name, the object fields its
/// rule reads ([`Spec::READS`]), and how its documents are built.
pub struct Kind {
    pub name: &'static str,
    pub reads: &'static [&'static str],
    build: fn(String, Value) -> Result<Policy, String>,
}

impl Kind {
    const fn of<S: Spec>(name: &'static str) -> Self {
        Self { name, reads: S::READS, build: build::<S> }
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

/// Decodes `spec.action`, which every kind has, then the rest as the kind's
/// spec, and builds the rule.
fn build<S: Spec>(name: String, spec: Value) -> Result<Policy, String> {
    let (action, spec) = take_action(spec)?;
    let spec: S = serde_path_to_error::deserialize(spec).map_err(|error| describe(&error))?;
    let rule = spec.into_rule().map_err(|error| format!("spec.{error}"))?;
    Ok(Policy::new(name, action.unwrap_or(S::DEFAULT_ACTION), rule))
}

/// `spec.action`, if set, and the spec without it.
fn take_action(spec: Value) -> Result<(Option<Action>, Value), String> {
    let Value::Mapping(mut fields) = spec else { return Ok((None, spec)) };
    let action =
        fields.remove("action").map(|action| decode::deserialize(action, "spec.action")).transpose()?;
    Ok((action, Value::Mapping(fields)))
}

/// A decoding error, naming the field. For a field the kind does not know,
/// serde lists the fields of the kind's spec type, which leaves `action`
/// out: it is put back first, where documents and messages have it.
fn describe(error: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> String {
    let described = decode::describe(error, "spec");
    let mut path = error.path().iter();
    let (Some(Segment::Map { key }), None) = (path.next(), path.next()) else { return described };
    let inner = error.inner().to_string();
    let unknown = format!("unknown field `{key}`");
    let Some(expected) = inner.strip_prefix(&format!("{unknown}, ")) else { return described };
    let fields: Vec<String> = std::iter::once("action")
        .chain(expected.split('`').skip(1).step_by(2))
        .map(|field| format!("`{field}`"))
        .collect();
    let list = match fields.as_slice() {
        [one] => one.clone(),
        [first, second] => format!("{first} or {second}"),
        all => format!("one of {}", all.join(", ")),
    };
    let field = described.strip_suffix(&inner).unwrap_or_default();
    format!("{field}{unknown}, expected {list}")
}
