//! The engine's view of one admission request.
//!
//! Wraps kube's `AdmissionRequest` and answers the questions every policy asks
//! (which object, whose labels, is this a collection delete) in one place, so
//! the API server's quirks are handled once. An object's `spec` is kept
//! apart from it, as its JSON text ([`Spec`]), for policies to read the parts
//! they need in their own types.

mod spec;

use std::fmt;

use jiff::Timestamp;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
pub use kube::core::admission::Operation;
use serde::Deserialize;

use crate::selector::Labels;
pub use spec::Spec;

static NO_LABELS: Labels = Labels::new();

#[derive(Debug, Clone)]
pub struct Request {
    /// Its objects without their `spec`s, which `specs` holds.
    inner: AdmissionRequest<DynamicObject>,
    specs: Specs,
}

/// The `spec`s of a request's `object` and `oldObject`.
#[derive(Debug, Clone, Default)]
pub struct Specs {
    pub object: Option<Spec>,
    pub old_object: Option<Spec>,
}

/// kube's request, its objects' specs taken out of their `data`.
impl From<AdmissionRequest<DynamicObject>> for Request {
    fn from(mut inner: AdmissionRequest<DynamicObject>) -> Self {
        let specs = Specs {
            object: inner.object.as_mut().and_then(take_spec),
            old_object: inner.old_object.as_mut().and_then(take_spec),
        };
        Self { inner, specs }
    }
}

fn take_spec(object: &mut DynamicObject) -> Option<Spec> {
    let spec = object.data.as_object_mut()?.remove("spec")?;
    let text = serde_json::value::to_raw_value(&spec).expect("a JSON value writes as JSON");
    Some(Spec::new(text))
}

impl Request {
    /// A request whose objects' `data` holds no `spec`: their specs are `specs`.
    pub fn with_specs(inner: AdmissionRequest<DynamicObject>, specs: Specs) -> Self {
        Self { inner, specs }
    }

    /// kube's request, its objects without their specs ([`Request::object_spec`]).
    pub fn inner(&self) -> &AdmissionRequest<DynamicObject> {
        &self.inner
    }

    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    pub fn operation(&self) -> &Operation {
        &self.inner.operation
    }

    pub fn is_delete(&self) -> bool {
        self.inner.operation == Operation::Delete
    }

    /// Whether this is a `group` `kind` object (the version does not matter).
    pub fn is_kind(&self, group: &str, kind: &str) -> bool {
        self.inner.kind.group == group && self.inner.kind.kind == kind
    }

    pub fn kind(&self) -> &str {
        &self.inner.kind.kind
    }

    /// The kind's API group, `""` for the core group.
    pub fn group(&self) -> &str {
        &self.inner.kind.group
    }

    pub fn sub_resource(&self) -> Option<&str> {
        self.inner.sub_resource.as_deref().filter(|s| !s.is_empty())
    }

    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref().filter(|ns| !ns.is_empty())
    }

    /// The object's name. A collection delete leaves the request's `name`
    /// empty, so the name comes from the object itself.
    pub fn name(&self) -> &str {
        if !self.inner.name.is_empty() {
            return &self.inner.name;
        }
        self.target().and_then(|o| o.metadata.name.as_deref()).unwrap_or("")
    }

    /// A DELETE whose request name is empty came from a deletecollection: the
    /// API server sends one review per item (item in `oldObject`), and older
    /// servers also one review for the whole collection (no `oldObject`).
    pub fn is_collection_delete(&self) -> bool {
        self.is_delete() && self.inner.name.is_empty()
    }

    pub fn object(&self) -> Option<&DynamicObject> {
        self.inner.object.as_ref()
    }

    pub fn old_object(&self) -> Option<&DynamicObject> {
        self.inner.old_object.as_ref()
    }

    /// The `spec` of [`Request::object`].
    pub fn object_spec(&self) -> Option<&Spec> {
        self.specs.object.as_ref()
    }

    /// The `spec` of [`Request::old_object`].
    pub fn old_object_spec(&self) -> Option<&Spec> {
        self.specs.old_object.as_ref()
    }

    /// The object the operation acts on: the stored one for DELETE, the new one otherwise.
    pub fn target(&self) -> Option<&DynamicObject> {
        if self.is_delete() { self.old_object() } else { self.object() }
    }

    /// What identifies the target across repeated reviews of one change: its
    /// uid, else its namespace and name, else (a collection-level review with
    /// no object) this review's own uid.
    pub fn object_identity(&self) -> String {
        let uid = self.target().and_then(|o| o.metadata.uid.as_deref()).filter(|uid| !uid.is_empty());
        match (uid, self.name()) {
            (Some(uid), _) => uid.to_owned(),
            (None, "") => format!("review/{}", self.uid()),
            (None, name) => format!("{}/{name}", self.namespace().unwrap_or_default()),
        }
    }

    /// The target's labels (none when there is no object).
    pub fn labels(&self) -> &Labels {
        labels_of(self.target())
    }

    /// The stored object is already being deleted.
    pub fn deletion_timestamp(&self) -> Option<Timestamp> {
        let stored = self.old_object()?;
        stored.metadata.deletion_timestamp.as_ref().map(|time| time.0)
    }

    /// An UPDATE (of the object or a subresource) that leaves the object
    /// with owner references other than it had: one added, one pointed
    /// elsewhere, or some removed while others stay. The garbage collector
    /// deletes an object whose owners are all gone, so any of these can be a
    /// deletion carried out later by the collector. Removing every owner
    /// reference orphans the object, which never deletes it.
    pub fn changes_owner_references(&self) -> bool {
        if *self.operation() != Operation::Update {
            return false;
        }
        let (Some(new), Some(old)) = (self.object(), self.old_object()) else {
            return false;
        };
        let (mut after, mut before) = (owner_keys(new), owner_keys(old));
        after.sort_unstable();
        before.sort_unstable();
        !after.is_empty() && after != before
    }

    /// The same UPDATE taken as the DELETE it might cause, whatever it changes:
    /// for judging, conservatively, an update whose objects are unknown.
    pub fn as_deletion(&self) -> Option<Request> {
        if *self.operation() != Operation::Update {
            return None;
        }
        let (mut inner, mut specs) = (self.inner.clone(), self.specs.clone());
        inner.operation = Operation::Delete;
        inner.sub_resource = None;
        inner.old_object = inner.object.take();
        specs.old_object = specs.object.take();
        Some(Request { inner, specs })
    }

    /// The DELETE that an owner-reference change amounts to: the object as it
    /// would be stored, deleted by the same user. `None` when the request
    /// does not add or alter owner references.
    pub fn deletion_by_proxy(&self) -> Option<Request> {
        if !self.changes_owner_references() {
            return None;
        }
        self.as_deletion()
    }

    /// An UPDATE of an object on its way out that only removes finalizers:
    /// the last step of its deletion, which must never be blocked.
    pub fn only_removes_finalizers(&self) -> bool {
        if *self.operation() != Operation::Update || self.deletion_timestamp().is_none() {
            return false;
        }
        let (Some(new), Some(old)) = (self.object(), self.old_object()) else {
            return false;
        };
        let kept = new.metadata.finalizers.as_deref().unwrap_or_default();
        let had = old.metadata.finalizers.as_deref().unwrap_or_default();
        let removes_only = kept.len() < had.len() && kept.iter().all(|f| had.contains(f));
        // Specs compare as text: one written differently counts as changed.
        let same_spec = self.specs.object == self.specs.old_object;
        removes_only && same_spec && without_bookkeeping(new) == without_bookkeeping(old)
    }

    pub fn username(&self) -> &str {
        self.inner.user_info.username.as_deref().unwrap_or("")
    }

    pub fn groups(&self) -> &[String] {
        self.inner.user_info.groups.as_deref().unwrap_or(&[])
    }

    pub fn dry_run(&self) -> bool {
        self.inner.dry_run
    }

    /// `secret "prod/db"`, the way denial messages name the object.
    pub fn describe(&self) -> ObjectName<'_> {
        ObjectName(self)
    }

    /// The same request, made to a subresource (`status`, `finalize`).
    pub fn with_sub_resource(mut self, sub_resource: &str) -> Self {
        self.inner.sub_resource = Some(sub_resource.to_owned());
        self
    }
}

/// What identifies an owner reference: the owner's uid, apiVersion, kind and
/// name (the garbage collector looks the owner up by all four).
fn owner_keys(object: &DynamicObject) -> Vec<(&str, &str, &str, &str)> {
    let owners = object.metadata.owner_references.as_deref().unwrap_or_default();
    owners
        .iter()
        .map(|o| (o.uid.as_str(), o.api_version.as_str(), o.kind.as_str(), o.name.as_str()))
        .collect()
}

/// The object without what the API server and finalizer removal change on
/// their own, for comparing an update's before and after.
fn without_bookkeeping(object: &DynamicObject) -> DynamicObject {
    let mut object = object.clone();
    let metadata = &mut object.metadata;
    metadata.finalizers = None;
    metadata.resource_version = None;
    metadata.generation = None;
    metadata.managed_fields = None;
    object
}

/// Who sends a request, as a test suite's `userInfo` names them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

pub fn labels_of(object: Option<&DynamicObject>) -> &Labels {
    object.and_then(|o| o.metadata.labels.as_ref()).unwrap_or(&NO_LABELS)
}

pub fn annotation<'a>(object: Option<&'a DynamicObject>, key: &str) -> Option<&'a str> {
    object?.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Display form of the object a request is about.
pub struct ObjectName<'a>(&'a Request);

impl fmt::Display for ObjectName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = self.0;
        let kind = request.kind().to_lowercase();
        match (request.namespace(), request.name()) {
            (_, "") => match request.namespace() {
                Some(ns) => write!(f, "all {kind} objects in namespace {ns:?}"),
                None => write!(f, "all {kind} objects"),
            },
            (Some(ns), name) if !request.is_kind("", "Namespace") => {
                write!(f, "{kind} \"{ns}/{name}\"")
            }
            (_, name) => write!(f, "{kind} {name:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::synthetic::Synthetic;
    use crate::testing::{Fixture, ingress};

    use super::*;

    /// An Ingress held by a finalizer on its way out.
    fn held() -> serde_json::Value {
        let mut held = ingress("web", json!({"rules": [{"host": "a.example.com"}]}));
        held["metadata"]["deletionTimestamp"] = "2025-12-31T23:59:00Z".into();
        held["metadata"]["finalizers"] = json!(["example.com/hold"]);
        held
    }

    #[test]
    fn removing_finalizers_is_all_an_update_does_only_with_the_same_spec_text() {
        let fixture = Fixture::new();
        let mut released = held();
        released["metadata"]["finalizers"] = json!([]);
        assert!(fixture.update(held(), released.clone()).only_removes_finalizers());

        let mut respecified = released.clone();
        respecified["spec"]["rules"][0]["host"] = "*.example.com".into();
        assert!(!fixture.update(held(), respecified).only_removes_finalizers());

        // The same spec written differently counts as changed: judged, not let through.
        let mut synthetic = Synthetic::new(Operation::Update);
        (synthetic.old_object, synthetic.object) = (Some(held()), Some(released));
        let body = synthetic.to_review().unwrap().to_string();
        assert_eq!(
            body.find(r#""object":"#).map(|at| at < body.find(r#""oldObject":"#).unwrap()),
            Some(true)
        );
        let rewritten = body.replacen(r#""spec":{"rules""#, r#""spec":{ "rules""#, 1);
        let request = crate::admission::parse_review(rewritten.as_bytes()).unwrap();
        assert_ne!(request.object_spec(), request.old_object_spec());
        assert!(!request.only_removes_finalizers());
    }
}
