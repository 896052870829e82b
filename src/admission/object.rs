//! The objects of an admission request, parsed for what policies read.
//!
//! An object arrives whole, but policies read its type, its metadata and
//! fields such as `spec`. This builds kube's `DynamicObject` in one pass over
//! the body and scans past, without keeping:
//! - `status`: the system's report on the object, not the change being judged;
//! - `metadata.managedFields`: server-side apply's bookkeeping;
//! - the values of core Secrets and ConfigMaps (`data`, `stringData`,
//!   `binaryData`, and kubectl's last-applied annotation, which copies them),
//!   so Defender never holds a Secret's contents and a 1 MB ConfigMap costs a
//!   scan, not a copy.
//!
//! `spec` is kept as its JSON text, one copy and no tree, for policies to
//! decode the parts they read in their own types ([`Spec`]). Everything else
//! a policy might read (any other top-level field, labels, annotations,
//! owner references) is kept as before.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{DynamicObject, TypeMeta};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::request::Spec;

/// The annotation `kubectl apply` stores the whole applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The top-level field kept as its text rather than as a tree.
pub const SPEC: &str = "spec";

/// The top-level fields never kept, whatever the object.
pub const SKIPPED: &[&str] = &["status"];

/// The fields of `metadata` kept (`MetadataSeed` reads each one). The rest,
/// `managedFields` and fields newer than these, are scanned past.
pub const KEPT_METADATA: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// The top-level fields of a core Secret and a core ConfigMap holding its values.
pub const SECRET_VALUES: &[&str] = &["data", "stringData"];
pub const CONFIG_MAP_VALUES: &[&str] = &["data", "binaryData"];

/// The top-level fields holding the values of an `api_version` `kind` object,
/// which Defender never keeps.
pub fn value_fields(api_version: &str, kind: &str) -> &'static [&'static str] {
    match (api_version, kind) {
        ("v1", "Secret") => SECRET_VALUES,
        ("v1", "ConfigMap") => CONFIG_MAP_VALUES,
        _ => &[],
    }
}

/// A request's `object` or `oldObject`, as Defender keeps it: the object
/// without its `spec`, and the spec's text.
pub struct LeanObject {
    pub object: DynamicObject,
    pub spec: Option<Spec>,
}

impl<'de> Deserialize<'de> for LeanObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = LeanObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct DynamicObject")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LeanObject, A::Error> {
        let mut api_version: Option<String> = None;
        let mut kind: Option<String> = None;
        let mut metadata = None;
        let mut spec: Option<Box<RawValue>> = None;
        let mut data = Map::new();
        while let Some(FieldName(name)) = map.next_key()? {
            // The API server sends apiVersion and kind first; in any other
            // order, values kept before the type is known are dropped below.
            let hidden = match (&api_version, &kind) {
                (Some(api_version), Some(kind)) => value_fields(api_version, kind),
                _ => &[],
            };
            match name.as_ref() {
                // Anything but a string leaves the object untyped.
                "apiVersion" => api_version = string(map.next_value()?),
                "kind" => kind = string(map.next_value()?),
                "metadata" if metadata.is_some() => return Err(de::Error::duplicate_field("metadata")),
                "metadata" => {
                    metadata =
                        Some(map.next_value_seed(MetadataSeed { keep_last_applied: hidden.is_empty() })?)
                }
                field if SKIPPED.contains(&field) => drop(map.next_value::<IgnoredAny>()?),
                SPEC => spec = Some(map.next_value()?),
                field if hidden.contains(&field) => drop(map.next_value::<IgnoredAny>()?),
                _ => drop(data.insert(name.into_owned(), map.next_value()?)),
            }
        }
        let mut metadata = metadata.unwrap_or_default();
        let types = match (api_version, kind) {
            (Some(api_version), Some(kind)) => {
                let hidden = value_fields(&api_version, &kind);
                if !hidden.is_empty() {
                    hidden.iter().for_each(|field| drop(data.remove(*field)));
                    if let Some(annotations) = &mut metadata.annotations {
                        annotations.remove(LAST_APPLIED);
                    }
                }
                Some(TypeMeta { api_version, kind })
            }
            _ => None,
        };
        let object = DynamicObject { types, metadata, data: Value::Object(data) };
        Ok(LeanObject { object, spec: spec.map(Spec::new) })
    }
}

fn string(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// `metadata`, read field by field as Kubernetes defines it, minus `managedFields`.
struct MetadataSeed {
    keep_last_applied: bool,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = ObjectMeta;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ObjectMeta, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed {
    type Value = ObjectMeta;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectMeta")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
        let mut meta = ObjectMeta::default();
        while let Some(FieldName(name)) = map.next_key()? {
            match name.as_ref() {
                "annotations" if self.keep_last_applied => meta.annotations = map.next_value()?,
                "annotations" => {
                    meta.annotations = map.next_value::<Option<WithoutLastApplied>>()?.map(|kept| kept.0)
                }
                "creationTimestamp" => meta.creation_timestamp = map.next_value()?,
                "deletionGracePeriodSeconds" => meta.deletion_grace_period_seconds = map.next_value()?,
                "deletionTimestamp" => meta.deletion_timestamp = map.next_value()?,
                "finalizers" => meta.finalizers = map.next_value()?,
                "generateName" => meta.generate_name = map.next_value()?,
                "generation" => meta.generation = map.next_value()?,
                "labels" => meta.labels = map.next_value()?,
                "name" => meta.name = map.next_value()?,
                "namespace" => meta.namespace = map.next_value()?,
                "ownerReferences" => meta.owner_references = map.next_value()?,
                "resourceVersion" => meta.resource_version = map.next_value()?,
                "selfLink" => meta.self_link = map.next_value()?,
                "uid" => meta.uid = map.next_value()?,
                // managedFields, and fields newer than this list.
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(meta)
    }
}

/// Annotations without kubectl's copy of the applied object.
struct WithoutLastApplied(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for WithoutLastApplied {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WithoutLastAppliedVisitor)
    }
}

struct WithoutLastAppliedVisitor;

impl<'de> Visitor<'de> for WithoutLastAppliedVisitor {
    type Value = WithoutLastApplied;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WithoutLastApplied, A::Error> {
        let mut annotations = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == LAST_APPLIED {
                map.next_value::<IgnoredAny>()?;
            } else {
                annotations.insert(key, map.next_value()?);
            }
        }
        Ok(WithoutLastApplied(annotations))
    }
}

/// A field name, borrowed from the body when it holds no escapes.
struct FieldName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FieldNameVisitor)
    }
}

struct FieldNameVisitor;

impl<'de> Visitor<'de> for FieldNameVisitor {
    type Value = FieldName<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(FieldName(Cow::Borrowed(name)))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(FieldName(Cow::Owned(name.to_owned())))
    }

    fn visit_string<E: de::Error>(self, name: String) -> Result<Self::Value, E> {
        Ok(FieldName(Cow::Owned(name)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lean(text: &str) -> LeanObject {
        serde_json::from_str::<LeanObject>(text).unwrap()
    }

    fn parse(text: &str) -> DynamicObject {
        lean(text).object
    }

    fn fields(object: &DynamicObject) -> Vec<&str> {
        object.data.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn keeps_type_metadata_and_spec_and_skips_status_and_managed_fields() {
        let LeanObject { object, spec } = lean(
            r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "shop", "uid": "5a1c", "labels": {"app": "web"},
                  "annotations": {"note": "x"}, "deletionTimestamp": "2026-01-01T00:00:00Z",
                  "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "9"}],
                  "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}], "future": [1]},
                "spec": {"rules": [{"host": "shop.example.com"}]}, "status": {"loadBalancer": {}}, "extra": 1}"#,
        );
        let types = object.types.as_ref().unwrap();
        assert_eq!((types.api_version.as_str(), types.kind.as_str()), ("networking.k8s.io/v1", "Ingress"));
        assert_eq!(object.metadata.name.as_deref(), Some("web"));
        assert_eq!(object.metadata.uid.as_deref(), Some("5a1c"));
        assert_eq!(object.metadata.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(object.metadata.annotations.as_ref().unwrap()["note"], "x");
        assert!(object.metadata.deletion_timestamp.is_some());
        assert_eq!(object.metadata.owner_references.as_ref().unwrap()[0].name, "web");
        assert_eq!(object.metadata.managed_fields, None);
        assert_eq!(spec.unwrap().text(), r#"{"rules": [{"host": "shop.example.com"}]}"#);
        assert_eq!(fields(&object), ["extra"]);
    }

    #[test]
    fn keeps_no_trace_of_secret_or_config_map_values() {
        for (kind, hidden) in [("Secret", ["data", "stringData"]), ("ConfigMap", ["data", "binaryData"])] {
            let marker = "s3cr3t-value";
            let text = format!(
                r#"{{"kind": "{kind}", "apiVersion": "v1",
                    "metadata": {{"name": "db", "annotations": {{"note": "kept", "{LAST_APPLIED}": "{{\"data\":\"{marker}\"}}"}}}},
                    "{}": {{"password": "{marker}"}}, "{}": {{"token": "{marker}"}}, "type": "Opaque", "immutable": true}}"#,
                hidden[0], hidden[1]
            );
            let object = parse(&text);
            assert!(!format!("{object:?}").contains(marker), "{kind}: {object:?}");
            assert_eq!(fields(&object), ["immutable", "type"], "{kind}");
            let annotations = object.metadata.annotations.as_ref().unwrap();
            assert_eq!(annotations.keys().collect::<Vec<_>>(), ["note"], "{kind}");
        }
    }

    #[test]
    fn drops_secret_values_whatever_the_field_order() {
        let object = parse(
            r#"{"data": {"password": "c2VjcmV0"}, "metadata": {"name": "db", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "kind": "Secret", "stringData": {"token": "t"}, "apiVersion": "v1"}"#,
        );
        assert_eq!(fields(&object), Vec::<&str>::new());
        assert_eq!(object.metadata.annotations, Some(BTreeMap::new()));
    }

    #[test]
    fn keeps_the_data_of_kinds_that_only_share_a_name_with_core_ones() {
        let object = parse(r#"{"apiVersion": "example.com/v1", "kind": "Secret", "data": {"a": "b"}}"#);
        assert_eq!(object.data["data"]["a"], "b");
    }

    #[test]
    fn reads_objects_of_any_shape() {
        let object = parse(r#"{"stdin": true, "command": ["sh"]}"#);
        assert_eq!(object.types, None);
        assert_eq!(object.metadata, ObjectMeta::default());
        assert_eq!(fields(&object), ["command", "stdin"]);
        let untyped = lean(r#"{"apiVersion": 1, "kind": "Pod", "spec": {}}"#);
        assert_eq!(untyped.object.types, None);
        assert_eq!(fields(&untyped.object), Vec::<&str>::new());
        assert_eq!(untyped.spec.unwrap().text(), "{}");
    }

    #[test]
    fn keeps_each_metadata_field_it_says_it_keeps_and_no_other() {
        let sample = |field: &str| match field {
            "annotations" | "labels" => json!({"a": "b"}),
            "creationTimestamp" | "deletionTimestamp" => json!("2026-01-01T00:00:00Z"),
            "deletionGracePeriodSeconds" | "generation" => json!(5),
            "finalizers" => json!(["f"]),
            "ownerReferences" => json!([{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "1"}]),
            _ => json!("x"),
        };
        for field in KEPT_METADATA {
            let text = json!({"metadata": {*field: sample(field)}}).to_string();
            let kept = serde_json::to_value(parse(&text).metadata).unwrap();
            assert_eq!(kept[*field], sample(field), "{field}");
        }
        let managed = json!({"metadata": {"managedFields": [{"manager": "kubectl"}]}}).to_string();
        assert_eq!(parse(&managed).metadata, ObjectMeta::default());
    }

    #[test]
    fn refuses_what_is_not_an_object_or_has_broken_metadata() {
        for text in [
            "[]",
            "5",
            r#"{"metadata": null}"#,
            r#"{"metadata": []}"#,
            r#"{"metadata": {}, "metadata": {}}"#,
            r#"{"metadata": {"labels": {"a": 1}}}"#,
            r#"{"metadata": {"name": 5}}"#,
            r#"{"status": {"a": }}"#,
        ] {
            assert!(serde_json::from_str::<LeanObject>(text).is_err(), "{text}");
        }
    }
}
