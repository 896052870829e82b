//! An object's `spec`, kept as the JSON text it arrived in.
//!
//! Policies read a few fields of a spec, each in its own type: decoding that
//! type straight from the text costs one pass and no tree. The Ingress spec,
//! which two policies read, is decoded once per object.

use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use k8s_openapi::api::networking::v1::IngressSpec;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::decode;

/// The JSON text of a `spec`, and the Ingress spec read from it once asked for.
#[derive(Clone)]
pub struct Spec {
    text: Box<RawValue>,
    ingress: OnceLock<Result<IngressSpec, String>>,
}

impl Spec {
    pub fn new(text: Box<RawValue>) -> Self {
        Self { text, ingress: OnceLock::new() }
    }

    /// The spec's text as it arrived (without surrounding whitespace).
    pub fn text(&self) -> &str {
        self.text.get()
    }

    /// `spec: null`, which says no more than a missing spec.
    pub fn is_null(&self) -> bool {
        self.text() == "null"
    }

    /// The spec read as a `T`, as it reads from the spec's JSON tree (the
    /// tree is built only when the text does not read as a `T` directly,
    /// where a repeated field may still read); an error names the field
    /// that does not fit (`spec.rules[0].host: invalid type: ...`).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(self.text()).or_else(|_| {
            let tree: Value = serde_json::from_str(self.text()).map_err(|error| error.to_string())?;
            decode::deserialize(&tree, "spec")
        })
    }

    /// The spec's field `name` read as a `T`, as it reads from the spec's
    /// tree: `None` when the spec is no map, has no such field, or the field
    /// does not read as a `T`. Only that field's value is decoded.
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let mut deserializer = serde_json::Deserializer::from_str(self.text());
        let field = FieldVisitor { name, read: PhantomData };
        deserializer.deserialize_map(field).ok().flatten()
    }

    /// The spec read as an Ingress's, in k8s-openapi's v1 type, which reads
    /// the hosts and paths of every served version alike.
    pub fn ingress(&self) -> Result<&IngressSpec, &str> {
        self.ingress.get_or_init(|| self.decode()).as_ref().map_err(String::as_str)
    }
}

/// One field of a map, the last if it is repeated (as the map's tree keeps it).
struct FieldVisitor<'n, T> {
    name: &'n str,
    read: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for FieldVisitor<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(named) = map.next_key_seed(IsNamed(self.name))? {
            if named {
                found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A field name, read only to tell whether it is the one wanted.
struct IsNamed<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for IsNamed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for IsNamed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Spec").field(&self.text()).finish()
    }
}

impl PartialEq for Spec {
    /// The same text: a spec written differently counts as another.
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Spec {
        Spec::new(RawValue::from_string(text.to_owned()).unwrap())
    }

    #[test]
    fn decodes_the_type_a_policy_reads_naming_a_field_that_does_not_fit() {
        let ingress = spec(r#"{"rules": [{"host": "shop.example.com"}], "ingressClassName": "nginx"}"#);
        let typed = ingress.ingress().unwrap();
        assert_eq!(typed.rules.as_ref().unwrap()[0].host.as_deref(), Some("shop.example.com"));
        assert!(std::ptr::eq(typed, ingress.ingress().unwrap()), "decoded once");
        let broken = spec(r#"{"rules": [{"host": 5}]}"#);
        assert_eq!(
            broken.ingress().unwrap_err(),
            "spec.rules[0].host: invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn reads_a_repeated_field_as_its_tree_does() {
        let repeated = spec(r#"{"rules": [{"host": "*"}], "rules": [{"host": "shop.example.com"}]}"#);
        let typed = repeated.ingress().unwrap();
        assert_eq!(typed.rules.as_ref().unwrap()[0].host.as_deref(), Some("shop.example.com"));
        assert!(spec("null").is_null() && !spec("{}").is_null());
    }

    #[test]
    fn reads_one_field_as_the_tree_holds_it() {
        let deployment = spec(r#"{"replicas": 1, "template": {"spec": {"replicas": 7}}, "replicas": 3}"#);
        assert_eq!(deployment.field::<Value>("replicas"), Some(Value::from(3)));
        assert_eq!(deployment.field::<Value>("selector"), None);
        for not_a_map in ["[3]", "3", "null", r#""replicas""#] {
            assert_eq!(spec(not_a_map).field::<Value>("replicas"), None, "{not_a_map}");
        }
        let backend = spec(r#"{"backend": null}"#).field::<Option<IgnoredAny>>("backend");
        assert!(backend.is_some_and(|backend| backend.is_none()));
    }
}
