//! ingress-hosts: no Ingress or Gateway API route may claim traffic for hosts it does not own.
//!
//! A rule host of `*`, a rule without a host, or a catch-all default backend
//! (`spec.defaultBackend`, or `spec.backend` in the v1beta1 Ingress versions)
//! makes the Ingress answer for every hostname that reaches the controller,
//! swallowing other teams' traffic. Wildcards such as `*.example.com` are denied
//! unless allowed by configuration; `*.com` never is; an IP address is not a
//! hostname. Hosts that controllers take from annotations (aliases) follow the
//! same rules. The `spec.hostnames` of HTTPRoutes, GRPCRoutes and TLSRoutes are
//! judged the same way; a route without hostnames takes every host its Gateway
//! listener accepts, as a hostless rule does.
//!
//! An Ingress is read with k8s-openapi's types, as duplicate-hosts and the
//! cluster view read it; one whose spec does not fit them (which the API
//! server would not have stored) is refused rather than half judged.

use k8s_openapi::api::networking::v1::IngressSpec;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::policy::host_annotations::annotation_problems;
pub use crate::policy::hostname::{HostProblem, host_problem};
use crate::policy::{Context, Rule, Spec, Verdict, Violation};
use crate::request::{Operation, Request, Spec as RequestSpec, annotation};
use crate::routing::{self, Hook, Need};
use crate::view::http_route::RouteHostnames;

/// The Gateway API group, served in several versions (`v1`, `v1beta1`,
/// `v1alpha2`, ...); a route is judged whatever the version it arrives in.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The Gateway API route kinds that choose their hosts with `spec.hostnames`
/// (TCPRoute and UDPRoute have none).
const ROUTE_KINDS: [&str; 3] = ["HTTPRoute", "GRPCRoute", "TLSRoute"];

/// The Ingress groups: `networking.k8s.io` (`v1`, formerly `v1beta1`) and the
/// original `extensions/v1beta1`, still found in manifests.
const INGRESS_GROUPS: [&str; 2] = ["networking.k8s.io", "extensions"];

/// An `IngressHosts` document's `spec`, which is also its rule: judging needs nothing more.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressHostsSpec {
    /// Allow `*.example.com` (never `*` or `*.com`).
    #[serde(default)]
    pub allow_wildcard_subdomains: bool,
    /// Allow `spec.defaultBackend` (`spec.backend` in v1beta1), which receives
    /// traffic for every unmatched host.
    #[serde(default)]
    pub allow_default_backend: bool,
}

impl IngressHostsSpec {
    /// Every offending hostname of a route, as `path: what is wrong`.
    fn route_problems(&self, request: &Request) -> Vec<String> {
        let spec = request.object_spec().filter(|spec| !spec.is_null());
        // As for an Ingress: a spec that does not read as one is refused.
        let hostnames = match spec.map(RequestSpec::decode::<RouteHostnames>).transpose() {
            Ok(route) => route.and_then(|route| route.hostnames).unwrap_or_default(),
            Err(error) => return vec![format!("{error}, so the hosts it routes cannot be judged")],
        };
        if hostnames.is_empty() {
            return vec![
                "spec.hostnames is empty, so the route takes every host its Gateway listener accepts".into(),
            ];
        }
        let allow = self.allow_wildcard_subdomains;
        let mut problems = Vec::new();
        for (index, host) in hostnames.iter().enumerate() {
            match host_problem(Some(host), allow) {
                None => {}
                Some(HostProblem::Missing) => {
                    problems.push(format!("spec.hostnames[{index}] is empty, so it matches every host"));
                }
                Some(problem) => problems.push(format!("spec.hostnames[{index}] {host:?} {problem}")),
            }
        }
        problems
    }

    /// Every offending field of an Ingress, as `path: what is wrong`.
    fn ingress_problems(&self, request: &Request) -> Vec<String> {
        let object = request.object();
        let spec = request.object_spec().filter(|spec| !spec.is_null());
        let allow = self.allow_wildcard_subdomains;
        let mut problems = Vec::new();
        // A spec that does not read as one cannot be shown to route only its
        // own hosts: it is refused, whatever else it holds.
        let none = IngressSpec::default();
        let typed = match spec.map(RequestSpec::ingress).transpose() {
            Ok(typed) => typed.unwrap_or(&none),
            Err(error) => {
                problems.push(format!("{error}, so the hosts it routes cannot be judged"));
                &none
            }
        };
        for (index, rule) in typed.rules.iter().flatten().enumerate() {
            let host = rule.host.as_deref();
            match (host_problem(host, allow), host) {
                (None, _) => {}
                (Some(HostProblem::Missing), _) => {
                    problems.push(format!("spec.rules[{index}] has no host, so it matches every host"));
                }
                (Some(problem), host) => {
                    problems
                        .push(format!("spec.rules[{index}].host {:?} {problem}", host.unwrap_or_default()));
                }
            }
        }
        for (index, tls) in typed.tls.iter().flatten().enumerate() {
            for (host_index, host) in tls.hosts.iter().flatten().enumerate() {
                // An empty TLS host only names no certificate; it routes nothing.
                if let Some(problem) = host_problem(Some(host), allow).filter(|p| *p != HostProblem::Missing)
                {
                    problems.push(format!("spec.tls[{index}].hosts[{host_index}] {host:?} {problem}"));
                }
            }
        }
        for found in annotation_problems(|key| annotation(object, key), allow) {
            problems.push(format!("annotation {} host {:?} {}", found.annotation, found.host, found.problem));
        }
        if !self.allow_default_backend {
            if typed.default_backend.is_some() {
                problems.push(catch_all("defaultBackend"));
            }
            // The v1beta1 versions' name for it, which the v1 type does not read.
            let backend = spec.and_then(|spec| spec.field::<Option<IgnoredAny>>("backend"));
            if backend.flatten().is_some() {
                problems.push(catch_all("backend"));
            }
        }
        problems
    }
}

fn catch_all(field: &str) -> String {
    format!("spec.{field} receives traffic for every host no rule matches")
}

fn is_route(request: &Request) -> bool {
    ROUTE_KINDS.iter().any(|kind| request.is_kind(GATEWAY_GROUP, kind))
}

fn is_ingress(request: &Request) -> bool {
    INGRESS_GROUPS.iter().any(|group| request.is_kind(group, "Ingress"))
}

impl Spec for IngressHostsSpec {
    type Rule = Self;
    /// An Ingress's rules, TLS hosts and catch-all backends; a route's hostnames.
    const READS: &[&str] = &[
        "metadata.annotations",
        "spec.rules",
        "spec.tls",
        "spec.defaultBackend",
        "spec.backend",
        "spec.hostnames",
    ];

    fn into_rule(self) -> Result<Self, String> {
        Ok(self)
    }
}

impl Rule for IngressHostsSpec {
    /// Creates and updates of Ingresses and of every route kind; not their
    /// status, which ingress controllers write and which holds no hosts.
    fn routes(&self) -> Vec<Need> {
        let writes = [Operation::Create, Operation::Update];
        let ingresses = routing::kinds::resource("networking.k8s.io", "Ingress", None);
        let mut needs = vec![Need::new(Hook::IngressHosts, &ingresses, &writes)];
        for kind in ROUTE_KINDS {
            let routes = routing::kinds::resource(GATEWAY_GROUP, kind, None);
            needs.push(Need::new(Hook::IngressHosts, &routes, &writes));
        }
        needs
    }

    fn applies(&self, request: &Request) -> bool {
        matches!(request.operation(), Operation::Create | Operation::Update)
            && request.sub_resource().is_none()
            && (is_ingress(request) || is_route(request))
    }

    fn evaluate(&self, request: &Request, _: &Context) -> Verdict {
        let route = is_route(request);
        let problems = if route { self.route_problems(request) } else { self.ingress_problems(request) };
        if problems.is_empty() {
            return Verdict::Pass;
        }
        let wildcards = if self.allow_wildcard_subdomains {
            " (a wildcard such as *.example.com is allowed)"
        } else {
            ""
        };
        let remedy = if route {
            format!("Give the route hostnames your team owns, e.g. hostnames: [app.example.com]{wildcards}")
        } else {
            format!("Give every rule a host your team owns, e.g. host: app.example.com{wildcards}")
        };
        Verdict::Violation(Violation::new(
            format!(
                "{} would take traffic meant for other hosts: {}",
                request.describe(),
                problems.join("; ")
            ),
            remedy,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, assert_contains, ingress};
    use serde_json::{Value, json};

    fn policy(allow_wildcard_subdomains: bool) -> IngressHostsSpec {
        IngressHostsSpec { allow_wildcard_subdomains, ..Default::default() }
    }

    #[test]
    fn rejects_a_star_host_naming_the_rule_index() {
        let fixture = Fixture::new();
        let request =
            fixture.create(ingress("web", json!({"rules": [{"host": "ok.example.com"}, {"host": "*"}]})));
        let violation = fixture.violation(&policy(false), &request);
        assert_contains(&violation.reason, r#"spec.rules[1].host "*" matches every host"#);
        assert!(!violation.reason.contains("rules[0]"));
    }

    #[test]
    fn rejects_a_rule_without_host() {
        let fixture = Fixture::new();
        let request = fixture.create(ingress("web", json!({"rules": [{"http": {"paths": []}}]})));
        let violation = fixture.violation(&policy(true), &request);
        assert_contains(&violation.reason, "spec.rules[0] has no host");
    }

    #[test]
    fn wildcard_subdomains_follow_the_setting() {
        let fixture = Fixture::new();
        let request = fixture.create(ingress("web", json!({"rules": [{"host": "*.example.com"}]})));
        assert_contains(
            &fixture.violation(&policy(false), &request).reason,
            "wildcard hosts are not allowed",
        );
        assert!(matches!(policy(true).evaluate(&request, &fixture.context()), Verdict::Pass));
        let broad = fixture.create(ingress("web", json!({"rules": [{"host": "*.com"}]})));
        assert_contains(&fixture.violation(&policy(true), &broad).reason, "top-level domain");
    }

    #[test]
    fn checks_tls_hosts_too() {
        let fixture = Fixture::new();
        let spec = json!({"rules": [{"host": "a.example.com"}], "tls": [{"hosts": ["a.example.com", "*"], "secretName": "t"}]});
        let violation = fixture.violation(&policy(true), &fixture.create(ingress("web", spec)));
        assert_contains(&violation.reason, r#"spec.tls[0].hosts[1] "*""#);
    }

    #[test]
    fn rejects_a_catch_all_default_backend_unless_allowed() {
        let fixture = Fixture::new();
        let spec = json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}});
        let request = fixture.create(ingress("web", spec));
        assert_contains(&fixture.violation(&policy(false), &request).reason, "spec.defaultBackend");
        let allowing = IngressHostsSpec { allow_default_backend: true, ..Default::default() };
        assert!(matches!(allowing.evaluate(&request, &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn judges_the_legacy_catch_all_backend_in_both_v1beta1_groups() {
        let fixture = Fixture::new();
        let allowing = IngressHostsSpec { allow_default_backend: true, ..Default::default() };
        for api_version in ["extensions/v1beta1", "networking.k8s.io/v1beta1"] {
            let mut legacy = ingress(
                "web",
                json!({
                    "backend": {"serviceName": "web", "servicePort": 80},
                    "rules": [{"host": "shop.example.com", "http": {"paths": [{"backend": {"serviceName": "web", "servicePort": 80}}]}}]
                }),
            );
            legacy["apiVersion"] = json!(api_version);
            let request = fixture.create(legacy);
            let violation = fixture.violation(&policy(false), &request);
            assert_eq!(
                violation.reason,
                "ingress \"prod/web\" would take traffic meant for other hosts: spec.backend receives traffic \
                 for every host no rule matches",
                "{api_version}"
            );
            assert!(
                matches!(allowing.evaluate(&request, &fixture.context()), Verdict::Pass),
                "{api_version}"
            );
            let mut wildcard = ingress("web", json!({"rules": [{"host": "*.example.com"}]}));
            wildcard["apiVersion"] = json!(api_version);
            let violation = fixture.violation(&policy(false), &fixture.create(wildcard));
            assert!(violation.reason.contains(r#"spec.rules[0].host "*.example.com""#), "{api_version}");
        }
    }

    fn annotated_ingress(annotations: Value) -> Value {
        let mut object = ingress("web", json!({"rules": [{"host": "shop.example.com"}]}));
        object["metadata"]["annotations"] = annotations;
        object
    }

    #[test]
    fn hosts_from_controller_annotations_follow_the_host_rules() {
        let fixture = Fixture::new();
        let aliased = annotated_ingress(json!({
            "nginx.ingress.kubernetes.io/server-alias": "www.shop.example.com, *.example.com",
            "konghq.com/host-aliases": "192.0.2.1"
        }));
        let violation = fixture.violation(&policy(false), &fixture.create(aliased));
        assert_eq!(
            violation.reason,
            "ingress \"prod/web\" would take traffic meant for other hosts: annotation \
             nginx.ingress.kubernetes.io/server-alias host \"*.example.com\" is a wildcard, and wildcard hosts are \
             not allowed here; annotation konghq.com/host-aliases host \"192.0.2.1\" is an IP address, and IP \
             addresses are not hostnames: use a DNS name that resolves to it"
        );
        let concrete =
            annotated_ingress(json!({"nginx.ingress.kubernetes.io/server-alias": "www.shop.example.com"}));
        assert!(matches!(
            policy(false).evaluate(&fixture.create(concrete.clone()), &fixture.context()),
            Verdict::Pass
        ));
        let regex = annotated_ingress(json!({"haproxy-ingress.github.io/server-alias-regex": "^.*$"}));
        let update = fixture.update(concrete, regex);
        let violation = fixture.violation(&policy(true), &update);
        assert_contains(&violation.reason, "is a regular expression, which can match any host");
    }

    #[test]
    fn accepts_ordinary_hosts_and_checks_updates() {
        let fixture = Fixture::new();
        let good = ingress("web", json!({"rules": [{"host": "app.example.com"}]}));
        let bad = ingress("web", json!({"rules": [{"host": "*"}]}));
        assert!(matches!(
            policy(false).evaluate(&fixture.create(good.clone()), &fixture.context()),
            Verdict::Pass
        ));
        assert!(policy(false).applies(&fixture.update(good.clone(), bad.clone())));
        fixture.violation(&policy(false), &fixture.update(good, bad));
    }

    fn route(api_version: &str, kind: &str, hostnames: Value) -> Value {
        json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"hostnames": hostnames, "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}
        })
    }

    fn http_route(hostnames: Value) -> Value {
        route("gateway.networking.k8s.io/v1", "HTTPRoute", hostnames)
    }

    /// Every route kind with hostnames, in every version it has been served in.
    const ROUTE_VERSIONS: [(&str, &str); 8] = [
        ("HTTPRoute", "v1"),
        ("HTTPRoute", "v1beta1"),
        ("HTTPRoute", "v1alpha2"),
        ("GRPCRoute", "v1"),
        ("GRPCRoute", "v1alpha2"),
        ("TLSRoute", "v1"),
        ("TLSRoute", "v1alpha3"),
        ("TLSRoute", "v1alpha2"),
    ];

    #[test]
    fn judges_every_route_kind_in_every_version() {
        let fixture = Fixture::new();
        for (kind, version) in ROUTE_VERSIONS {
            let api_version = format!("gateway.networking.k8s.io/{version}");
            let good = fixture.create(route(&api_version, kind, json!(["app.example.com"])));
            assert!(policy(false).applies(&good), "{kind} {version}");
            assert!(
                matches!(policy(false).evaluate(&good, &fixture.context()), Verdict::Pass),
                "{kind} {version}"
            );
            let star = fixture.create(route(&api_version, kind, json!(["app.example.com", "*"])));
            let violation = fixture.violation(&policy(true), &star);
            assert_eq!(
                violation.reason,
                format!(
                    "{} \"prod/web\" would take traffic meant for other hosts: spec.hostnames[1] \"*\" matches every host",
                    kind.to_lowercase()
                )
            );
            let mut hostless = route(&api_version, kind, json!([]));
            hostless["spec"].as_object_mut().unwrap().remove("hostnames");
            let violation = fixture.violation(&policy(true), &fixture.create(hostless));
            assert!(
                violation.reason.contains("spec.hostnames is empty"),
                "{kind} {version}: {}",
                violation.reason
            );
        }
    }

    #[test]
    fn other_gateway_api_kinds_and_groups_are_not_judged() {
        let fixture = Fixture::new();
        for (api_version, kind) in [
            ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
            ("gateway.networking.k8s.io/v1", "Gateway"),
            ("example.com/v1", "HTTPRoute"),
        ] {
            assert!(!policy(false).applies(&fixture.create(route(api_version, kind, json!([])))), "{kind}");
        }
    }

    #[test]
    fn ip_addresses_are_denied_as_hosts_and_hostnames() {
        let fixture = Fixture::new();
        let ingress = fixture.create(ingress("web", json!({"rules": [{"host": "203.0.113.7"}]})));
        let violation = fixture.violation(&policy(true), &ingress);
        assert_contains(
            &violation.reason,
            r#"spec.rules[0].host "203.0.113.7" is an IP address, and IP addresses are not hostnames: use a DNS name that resolves to it"#,
        );
        let grpc = fixture.create(route("gateway.networking.k8s.io/v1", "GRPCRoute", json!(["2001:db8::1"])));
        let violation = fixture.violation(&policy(true), &grpc);
        assert_contains(&violation.reason, r#"spec.hostnames[0] "2001:db8::1" is an IP address"#);
    }

    #[test]
    fn judges_http_route_hostnames_by_the_same_rules() {
        let fixture = Fixture::new();
        let good = fixture.create(http_route(json!(["app.example.com"])));
        assert!(policy(false).applies(&good));
        assert!(matches!(policy(false).evaluate(&good, &fixture.context()), Verdict::Pass));
        let broad = fixture.create(http_route(json!(["app.example.com", "*.com"])));
        let violation = fixture.violation(&policy(true), &broad);
        assert_eq!(
            violation.reason,
            "httproute \"prod/web\" would take traffic meant for other hosts: spec.hostnames[1] \"*.com\" is a \
             wildcard over a whole top-level domain"
        );
        assert!(
            violation.remedy.starts_with("Give the route hostnames your team owns"),
            "{}",
            violation.remedy
        );
        let wildcard = fixture.create(http_route(json!(["*.example.com"])));
        assert_contains(
            &fixture.violation(&policy(false), &wildcard).reason,
            "wildcard hosts are not allowed",
        );
        assert!(matches!(policy(true).evaluate(&wildcard, &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn an_http_route_without_hostnames_takes_every_host() {
        let fixture = Fixture::new();
        let mut route = http_route(json!([]));
        route["spec"].as_object_mut().unwrap().remove("hostnames");
        let violation = fixture.violation(&policy(true), &fixture.create(route));
        assert_contains(&violation.reason, "spec.hostnames is empty");
    }

    #[test]
    fn a_route_spec_that_does_not_read_as_one_is_refused_naming_the_field() {
        let fixture = Fixture::new();
        for (hostnames, field) in [
            (
                json!(["app.example.com", 5]),
                "spec.hostnames[1]: invalid type: integer `5`, expected a string",
            ),
            (json!([null]), "spec.hostnames[0]: invalid type: null, expected a string"),
            (
                json!("app.example.com"),
                "spec.hostnames: invalid type: string \"app.example.com\", expected a sequence",
            ),
        ] {
            let violation = fixture.violation(&policy(true), &fixture.create(http_route(hostnames)));
            assert_eq!(
                violation.reason,
                format!(
                    "httproute \"prod/web\" would take traffic meant for other hosts: {field}, so the hosts \
                     it routes cannot be judged"
                )
            );
        }
    }

    #[test]
    fn a_spec_that_does_not_read_as_an_ingress_spec_is_refused() {
        let fixture = Fixture::new();
        let allowing = IngressHostsSpec { allow_wildcard_subdomains: true, allow_default_backend: true };
        for (spec, field) in [
            (
                json!({"rules": [{"host": 5}]}),
                "spec.rules[0].host: invalid type: integer `5`, expected a string",
            ),
            (json!({"rules": {"host": "*"}}), "spec.rules: invalid type: map, expected a sequence"),
            (
                json!({"tls": [{"hosts": [null]}]}),
                "spec.tls[0].hosts[0]: invalid type: null, expected a string",
            ),
            (json!("*"), "spec: invalid type: string \"*\", expected IngressSpec"),
        ] {
            let violation = fixture.violation(&allowing, &fixture.create(ingress("web", spec)));
            assert_eq!(
                violation.reason,
                format!(
                    "ingress \"prod/web\" would take traffic meant for other hosts: {field}, so the hosts it \
                     routes cannot be judged"
                )
            );
        }
        let unreadable = ingress("web", json!({"rules": [{"host": "*"}], "ingressClassName": 7}));
        let annotated = annotated_ingress(json!({"konghq.com/host-aliases": "*"}));
        let mut both = annotated.clone();
        both["spec"] = unreadable["spec"].clone();
        let violation = fixture.violation(&allowing, &fixture.create(both));
        assert_contains(&violation.reason, "spec.ingressClassName: invalid type");
        assert_contains(&violation.reason, r#"annotation konghq.com/host-aliases host "*""#);
    }

    #[test]
    fn an_ingress_without_a_spec_is_judged_on_its_annotations() {
        let fixture = Fixture::new();
        let mut bare = annotated_ingress(json!({"konghq.com/host-aliases": "*"}));
        bare.as_object_mut().unwrap().remove("spec");
        let violation = fixture.violation(&policy(true), &fixture.create(bare.clone()));
        assert!(
            violation.reason.ends_with(r#"annotation konghq.com/host-aliases host "*" matches every host"#)
        );
        bare["metadata"].as_object_mut().unwrap().remove("annotations");
        assert!(matches!(policy(false).evaluate(&fixture.create(bare), &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn does_not_apply_to_deletes() {
        let fixture = Fixture::new();
        let request = fixture.delete(ingress("web", json!({"rules": [{"host": "*"}]})));
        assert!(!policy(false).applies(&request));
    }
}
