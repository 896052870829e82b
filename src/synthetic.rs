//! Builds admission requests the way the API server would, from plain objects.
//!
//! The harness (`defender test`), `defender check` and the unit tests all judge
//! manifests rather than captured reviews. Building the AdmissionReview JSON and
//! parsing it through the same path as the server keeps them honest: a request
//! built here has exactly the shape the server would receive.

use serde_json::{Value, json};

use crate::admission::{self, ReviewError};
use crate::request::Request;

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("cannot build an admission request: the object has no {0}")]
    Missing(&'static str),
    /// The review built does not parse as the server would parse it.
    #[error(transparent)]
    Review(#[from] ReviewError),
}

/// Who sends a synthetic request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub groups: Vec<String>,
}

impl Default for User {
    fn default() -> Self {
        Self { username: "developer@example.com".to_owned(), groups: vec!["system:authenticated".to_owned()] }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticOperation {
    Create,
    Update,
    Delete,
    /// One item of a deletecollection: the item as `oldObject`, an empty `name`.
    DeleteCollectionItem,
    /// The collection-level review older API servers sent: empty `name`, no `oldObject`.
    DeleteCollection,
}

/// A request to build: an operation and the object(s) it acts on.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub operation: SyntheticOperation,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub user: User,
    pub dry_run: bool,
    pub sub_resource: Option<String>,
    /// For [`SyntheticOperation::DeleteCollection`], which has no object to read it from.
    pub namespace: Option<String>,
    /// `apiVersion` and `kind` for a collection delete without an object.
    pub api_version_kind: Option<(String, String)>,
    pub uid: String,
}

impl Synthetic {
    pub fn new(operation: SyntheticOperation) -> Self {
        Self {
            operation,
            object: None,
            old_object: None,
            user: User::default(),
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
        let (operation, request_name, options_kind) = match self.operation {
            SyntheticOperation::Create => ("CREATE", name, "CreateOptions"),
            SyntheticOperation::Update => ("UPDATE", name, "UpdateOptions"),
            SyntheticOperation::Delete => ("DELETE", name, "DeleteOptions"),
            SyntheticOperation::DeleteCollectionItem | SyntheticOperation::DeleteCollection => {
                ("DELETE", String::new(), "DeleteOptions")
            }
        };
        let gvk = json!({"group": group, "version": version, "kind": kind});
        let gvr = json!({"group": group, "version": version, "resource": crate::routing::plural(&kind)});
        let mut request = json!({
            "uid": self.uid,
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": request_name,
            "operation": operation,
            "userInfo": {"username": self.user.username, "groups": self.user.groups},
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
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
            let mut synthetic = Synthetic::new(SyntheticOperation::Delete);
            synthetic.old_object = Some(
                json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "ns"}}),
            );
            let review = synthetic.to_review().unwrap();
            assert_eq!(review["request"]["resource"]["resource"], resource);
        }
    }

    #[test]
    fn collection_items_have_an_empty_request_name() {
        let mut synthetic = Synthetic::new(SyntheticOperation::DeleteCollectionItem);
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
