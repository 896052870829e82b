//! The AdmissionReview as it arrives, deserialized in one pass.
//!
//! These mirror kube's `AdmissionReview` and `AdmissionRequest` field for
//! field, with the same defaults, but without serde's `flatten`, which
//! buffers the whole document before building it, and with objects parsed
//! by [`LeanObject`]. The result is kube's `AdmissionRequest`, its objects'
//! specs kept beside it as text ([`Specs`]).

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::{DynamicObject, GroupVersionKind, GroupVersionResource, TypeMeta};
use serde::Deserialize;

use super::object::LeanObject;
use crate::request::{Request, Spec, Specs};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireReview<O = LeanObject> {
    pub api_version: String,
    pub kind: String,
    pub request: Option<WireRequest<O>>,
    /// Never sent to a webhook, but read as kube's types read it, so the same
    /// documents are accepted.
    #[serde(default, rename = "response")]
    _response: Option<AdmissionResponse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRequest<O = LeanObject> {
    uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    request_kind: Option<GroupVersionKind>,
    #[serde(default)]
    request_resource: Option<GroupVersionResource>,
    #[serde(default)]
    request_sub_resource: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    user_info: UserInfo,
    object: Option<O>,
    old_object: Option<O>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    options: Option<RawExtension>,
}

/// An object scanned past without keeping anything: the skeleton of a
/// review (who, what, which operation) costs no memory for its objects.
pub struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Skipped)
    }
}

/// What an object field becomes in kube's request, and its spec.
pub trait Kept {
    fn kept(self) -> (Option<DynamicObject>, Option<Spec>);
}

impl Kept for LeanObject {
    fn kept(self) -> (Option<DynamicObject>, Option<Spec>) {
        (Some(self.object), self.spec)
    }
}

impl Kept for Skipped {
    fn kept(self) -> (Option<DynamicObject>, Option<Spec>) {
        (None, None)
    }
}

impl<O: Kept> WireRequest<O> {
    /// kube's request, carrying the review's `types` as kube's conversion does.
    pub fn into_request(self, types: TypeMeta) -> Request {
        let (object, object_spec) = self.object.map(Kept::kept).unwrap_or_default();
        let (old_object, old_object_spec) = self.old_object.map(Kept::kept).unwrap_or_default();
        let inner = AdmissionRequest {
            types,
            uid: self.uid,
            kind: self.kind,
            resource: self.resource,
            sub_resource: self.sub_resource,
            request_kind: self.request_kind,
            request_resource: self.request_resource,
            request_sub_resource: self.request_sub_resource,
            name: self.name,
            namespace: self.namespace,
            operation: self.operation,
            user_info: self.user_info,
            object,
            old_object,
            dry_run: self.dry_run,
            options: self.options,
        };
        Request::with_specs(inner, Specs { object: object_spec, old_object: old_object_spec })
    }
}
