//! Builds admission requests the way the API server would, from plain objects.
//!
//! The harness (`defender test`), `defender check` and the unit tests all judge
//! manifests rather than captured reviews. Building the AdmissionReview JSON and
//! parsing it through the same path as the server keeps them honest: a request
//! built here has exactly the shape the server would receive.

use serde_json::{Value, json};

use crate::admission::{self, ReviewError};
use crate::request::{Operation, Request, User};
use crate::routing::operation_name;

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("cannot build an admission request: the object has no {0}")]
    Missing(&'static str),
    /// The review built does not parse as the server would parse it.
    #[error(transparent)]
    Review(#[from] ReviewError),
}

/// A request to build: an operation and the object(s) it acts on.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub operation: Operation,
    /// A DELETE that is part of a deletecollection, which leaves the
    /// request's `name` empty: one item (the item as `old_object`), or the
    /// collection-level review older API servers sent (no `old_object`).
    pub collection: bool,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub user: User,
    pub dry_run: bool,
    pub sub_resource: Option<String>,
    /// For a collection-level DELETE, which has no object to read it from.
    pub namespace: Option<String>,
    /// `apiVersion` and `kind` for a collection delete without an object.
    pub api_version_kind: Option<(String, String)>,
    pub uid: String,
}

impl Synthetic {
    /// A request from an ordinary authenticated user, `developer@example.com`.
    pub fn new(operation: Operation) -> Self {
        Self {
            operation,
            collection: false,
            object: None,
            old_object: None,
            user: User {
                username: "developer@example.com".to_owned(),
                groups: vec!["system:authenticated".to_owned()],
            },
            dry_run: false,
            sub_resource: None,
            namespace: None,
            api_version_kind: None,
            uid: "00000000-0000-0000-0000-000000000000".to_owned(),
        }
    }

    /// The AdmissionReview the API server would send.
    pub fn to_review(&self) -> Result<Value, SyntheticError> {
        let described = self.object.as_ref().or(self.old_object.as_ref());
        let (api_version, kind) = match (described, &self.api_version_kind) {
            (Some(object), _) => (
                string_at(object, "apiVersion").ok_or(SyntheticError::Missing("apiVersion"))?,
                string_at(object, "kind").ok_or(SyntheticError::Missing("kind"))?,
            ),
            (None, Some((api_version, kind))) => (api_version.clone(), kind.clone()),
            (None, None) => return Err(SyntheticError::Missing("object")),
        };
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (String::new(), api_version.clone()),
        };
        let name = described.and_then(|o| o.pointer("/metadata/name")).and_then(Value::as_str);
        let name = name.unwrap_or_default().to_owned();
        let namespace = if kind == "Namespace" {
            // The API server files a namespace's own requests under its name.
            Some(name.clone())
        } else {
            described
                .and_then(|o| o.pointer("/metadata/namespace"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| self.namespace.clone())
        };
        let request_name = if self.collection { String::new() } else { name };
        let options_kind = match self.operation {
            Operation::Create => Some("CreateOptions"),
            Operation::Update => Some("UpdateOptions"),
            Operation::Delete => Some("DeleteOptions"),
            Operation::Connect => None,
        };
        let gvk = json!({"group": group, "version": version, "kind": kind});
        let gvr = json!({"group": group, "version": version, "resource": crate::routing::plural(&kind)});
        let mut request = json!({
            "uid": self.uid,
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": request_name,
            "operation": operation_name(&self.operation),
            "userInfo": {"username": self.user.username, "groups": self.user.groups},
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": options_kind.map(|kind| json!({"apiVersion": "meta.k8s.io/v1", "kind": kind})),
        });
        if let Some(namespace) = namespace {
            request["namespace"] = json!(namespace);
        }
        if let Some(sub_resource) = &self.sub_resource {
            request["subResource"] = json!(sub_resource);
        }
        Ok(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
    }

    pub fn build(&self) -> Result<Request, SyntheticError> {
        let review = self.to_review()?;
        Ok(admission::parse_review_value(review)?)
    }
}

fn string_at(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_resource_as_the_api_server_does() {
        for (api_version, kind, resource) in
            [("v1", "Endpoints", "endpoints"), ("networking.k8s.io/v1", "Ingress", "ingresses")]
        {
            let mut synthetic = Synthetic::new(Operation::Delete);
            synthetic.old_object = Some(
                json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "ns"}}),
            );
            let review = synthetic.to_review().unwrap();
            assert_eq!(review["request"]["resource"]["resource"], resource);
        }
    }

    #[test]
    fn collection_items_have_an_empty_request_name() {
        let mut synthetic = Synthetic::new(Operation::Delete);
        synthetic.collection = true;
        synthetic.old_object =
            Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}));
        let review = synthetic.to_review().unwrap();
        assert_eq!(review["request"]["name"], "");
        assert_eq!(review["request"]["namespace"], "ns");
        assert_eq!(review["request"]["object"], Value::Null);
        let request = synthetic.build().unwrap();
        assert!(request.is_collection_delete());
        assert_eq!(request.name(), "p");
    }
}
