//! The part of a Gateway API HTTPRoute (gateway.networking.k8s.io) Defender
//! reads: hostnames and path matches. The Gateway API is a CRD, not part of
//! Kubernetes' own types; the version served is found at start (discovery),
//! so the resource's type information is an [`ApiResource`].

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, NamespaceResourceScope};
use serde::Deserialize;

use crate::view::parts;

pub const GROUP: &str = "gateway.networking.k8s.io";
pub const KIND: &str = "HTTPRoute";

/// Of the metadata, only what [`parts::metadata::kept`] keeps.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpRoute {
    #[serde(default, deserialize_with = "parts::metadata::kept")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

/// An HTTPRoute as a declared manifest must be: metadata checked whole, as
/// every kind's is.
#[derive(Deserialize)]
pub struct Declared {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

/// The hostnames of any Gateway API route's spec (HTTPRoute, GRPCRoute,
/// TLSRoute); `null` or absent is none.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteHostnames {
    #[serde(default)]
    pub hostnames: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpRouteRule {
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpRouteMatch {
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpPathMatch {
    #[serde(default)]
    pub value: Option<String>,
}

impl kube::Resource for HttpRoute {
    type DynamicType = ApiResource;
    type Scope = NamespaceResourceScope;

    fn kind(resource: &ApiResource) -> Cow<'_, str> {
        resource.kind.as_str().into()
    }

    fn group(resource: &ApiResource) -> Cow<'_, str> {
        resource.group.as_str().into()
    }

    fn version(resource: &ApiResource) -> Cow<'_, str> {
        resource.version.as_str().into()
    }

    fn api_version(resource: &ApiResource) -> Cow<'_, str> {
        resource.api_version.as_str().into()
    }

    fn plural(resource: &ApiResource) -> Cow<'_, str> {
        resource.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
