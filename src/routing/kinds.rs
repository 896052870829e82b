//! Kinds as webhook rules name them: API group, resource plural, scope,
//! versions and the subresources that keep metadata changes.
//!
//! The kinds Defender knows are listed; any other kind is a custom resource.
//! Every kind is pluralised by kube-rs (lowercase, English plural, with the
//! API server's exceptions such as `endpoints`), unless the policy gives a
//! custom resource's plural itself.

use kube::core::{ApiResource, GroupVersionKind};

use super::Scope;

/// A resource as a webhook rule names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub plural: String,
    pub scope: Scope,
    /// `v1` for built-in kinds; `*` for custom resources and Gateway API
    /// routes, which are served in whatever versions their CRD lists.
    pub versions: Vec<String>,
    /// Subresources whose updates can change the object's metadata (labels,
    /// owner references): `status`, and `finalize` for namespaces.
    pub subresources: Vec<String>,
}

impl Resource {
    /// Every resource of every group, at any version and in both scopes
    /// (`*`), and their `status` subresources, which some kinds let change
    /// metadata (owner references) through.
    pub fn everything() -> Self {
        Self {
            group: "*".to_owned(),
            plural: "*".to_owned(),
            scope: Scope::Any,
            versions: vec!["*".to_owned()],
            subresources: vec!["status".to_owned()],
        }
    }
}

struct Known {
    kind: &'static str,
    group: &'static str,
    scope: Scope,
    /// Served by the API server itself, at v1 (else a CRD, any version).
    built_in: bool,
    subresources: &'static [&'static str],
}

const fn known(
    kind: &'static str,
    group: &'static str,
    scope: Scope,
    subresources: &'static [&'static str],
) -> Known {
    Known { kind, group, scope, built_in: true, subresources }
}

const fn route(kind: &'static str) -> Known {
    Known { kind, group: GATEWAY_GROUP, scope: Scope::Namespaced, built_in: false, subresources: &["status"] }
}

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

const STATUS: &[&str] = &["status"];
const NONE: &[&str] = &[];

/// The kinds Defender knows, so configurations can name just the kind.
const KNOWN: &[Known] = &[
    known("Namespace", "", Scope::Cluster, &["status", "finalize"]),
    known("Pod", "", Scope::Namespaced, STATUS),
    known("Service", "", Scope::Namespaced, STATUS),
    known("Secret", "", Scope::Namespaced, NONE),
    known("ConfigMap", "", Scope::Namespaced, NONE),
    known("PersistentVolumeClaim", "", Scope::Namespaced, STATUS),
    known("ServiceAccount", "", Scope::Namespaced, NONE),
    known("Endpoints", "", Scope::Namespaced, NONE),
    known("Ingress", "networking.k8s.io", Scope::Namespaced, STATUS),
    known("IngressClass", "networking.k8s.io", Scope::Cluster, NONE),
    known("NetworkPolicy", "networking.k8s.io", Scope::Namespaced, NONE),
    known("Deployment", "apps", Scope::Namespaced, STATUS),
    known("StatefulSet", "apps", Scope::Namespaced, STATUS),
    known("DaemonSet", "apps", Scope::Namespaced, STATUS),
    known("ReplicaSet", "apps", Scope::Namespaced, STATUS),
    known("Job", "batch", Scope::Namespaced, STATUS),
    known("CronJob", "batch", Scope::Namespaced, STATUS),
    route("HTTPRoute"),
    route("GRPCRoute"),
    route("TLSRoute"),
];

fn find(group: Option<&str>, kind: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|known| known.kind == kind && group.is_none_or(|group| group == known.group))
}

/// The API group of a kind Defender knows: `apps` for `Deployment`.
pub fn known_group(kind: &str) -> Option<&'static str> {
    find(None, kind).map(|known| known.group)
}

/// The resource name of `kind` as kube-rs pluralises it: `ingresses`,
/// `networkpolicies`, `endpoints`, `certificates`. The group does not change it.
pub fn plural(kind: &str) -> String {
    // kube-rs's pluraliser looks at the last two letters.
    if kind.chars().count() < 2 {
        return format!("{}s", kind.to_lowercase());
    }
    ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", kind)).plural
}

/// `kind` in `group` as webhook rules name it. `plural` overrides the
/// guessed resource name of a custom resource (irregular plurals).
pub fn resource(group: &str, kind: &str, plural: Option<&str>) -> Resource {
    match find(Some(group), kind) {
        Some(known) => Resource {
            group: known.group.to_owned(),
            plural: plural.map_or_else(|| self::plural(kind), str::to_owned),
            scope: known.scope,
            versions: vec![if known.built_in { "v1" } else { "*" }.to_owned()],
            subresources: known.subresources.iter().map(|s| (*s).to_owned()).collect(),
        },
        None => Resource {
            group: group.to_owned(),
            plural: plural.map_or_else(|| self::plural(kind), str::to_owned),
            // Defender cannot tell a custom resource's scope; "*" matches both.
            scope: Scope::Any,
            versions: vec!["*".to_owned()],
            // A rule for a status subresource the CRD does not enable matches nothing.
            subresources: vec!["status".to_owned()],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_use_the_api_servers_resource_names() {
        for (group, kind, plural) in [
            ("networking.k8s.io", "Ingress", "ingresses"),
            ("", "Service", "services"),
            ("", "Endpoints", "endpoints"),
            ("networking.k8s.io", "NetworkPolicy", "networkpolicies"),
            ("", "Namespace", "namespaces"),
            ("apps", "Deployment", "deployments"),
            (GATEWAY_GROUP, "HTTPRoute", "httproutes"),
        ] {
            assert_eq!(resource(group, kind, None).plural, plural, "{kind}");
            assert_eq!(super::plural(kind), plural, "{kind}");
        }
    }

    #[test]
    fn other_kinds_are_pluralised_as_kube_guesses() {
        assert_eq!(plural("Certificate"), "certificates");
        assert_eq!(plural("ClusterIssuer"), "clusterissuers");
        assert_eq!(plural("Policy"), "policies");
        assert_eq!(plural("Gateway"), "gateways");
        assert_eq!(plural("Mesh"), "meshes");
        assert_eq!(plural("Y"), "ys");
    }

    #[test]
    fn plurals_a_plain_s_gets_wrong_come_out_right() {
        for (kind, plural) in [
            ("Endpoints", "endpoints"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(super::plural(kind), plural);
        }
    }

    #[test]
    fn a_known_kind_in_another_group_is_a_custom_resource() {
        let foreign = resource("example.com", "Service", None);
        assert_eq!((foreign.group.as_str(), foreign.plural.as_str()), ("example.com", "services"));
        assert_eq!(foreign.versions, ["*"]);
        assert_eq!(foreign.scope, Scope::Any);
    }

    #[test]
    fn built_in_kinds_are_routed_at_v1_and_custom_resources_at_any_version() {
        let secret = resource("", "Secret", None);
        assert_eq!(secret.versions, ["v1"]);
        assert!(secret.subresources.is_empty(), "Secrets have no status subresource");
        assert_eq!(resource("", "Namespace", None).subresources, ["status", "finalize"]);
        let certificate = resource("cert-manager.io", "Certificate", None);
        assert_eq!(certificate.plural, "certificates");
        assert_eq!(certificate.versions, ["*"]);
        assert_eq!(resource(GATEWAY_GROUP, "GRPCRoute", None).versions, ["*"]);
    }

    #[test]
    fn an_explicit_plural_wins() {
        assert_eq!(resource("example.com", "Octopus", Some("octopodes")).plural, "octopodes");
    }
}
