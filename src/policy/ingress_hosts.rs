//! ingress-hosts: no Ingress or HTTPRoute may claim traffic for hosts it does not own.
//!
//! A rule host of `*`, a rule without a host, or a catch-all default backend
//! makes the Ingress answer for every hostname that reaches the controller,
//! swallowing other teams' traffic. Wildcards such as `*.example.com` are denied
//! unless allowed by configuration; `*.com` never is. A Gateway API HTTPRoute's
//! `spec.hostnames` are judged by the same rules; a route without hostnames
//! takes every host its Gateway listener accepts, as a hostless rule does.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::budget::Exhausted;
use crate::policy::core_namespaces::unreachable_charge;
use crate::policy::{Action, Context, Policy, Verdict, Violation};
use crate::request::{Operation, Request};
use crate::view::http_route;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressHostsSpec {
    #[serde(default)]
    pub action: Action,
    /// Allow `*.example.com` (never `*` or `*.com`).
    #[serde(default)]
    pub allow_wildcard_subdomains: bool,
    /// Allow `spec.defaultBackend`, which receives traffic for every unmatched host.
    #[serde(default)]
    pub allow_default_backend: bool,
}

/// What is wrong with one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProblem {
    /// Missing or empty: the rule matches every host.
    Missing,
    /// `*`: matches every host.
    MatchesEverything,
    /// `*.com`: a wildcard over a single-label suffix.
    TooBroad,
    /// `*.example.com` while wildcards are not allowed.
    Wildcard,
    /// A `*` anywhere but a leading `*.` label.
    MisplacedWildcard,
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostProblem::Missing => "matches every host",
            HostProblem::MatchesEverything => "matches every host",
            HostProblem::TooBroad => "is a wildcard over a whole top-level domain",
            HostProblem::Wildcard => "is a wildcard, and wildcard hosts are not allowed here",
            HostProblem::MisplacedWildcard => "has a '*' that is not a leading '*.' label",
        })
    }
}

/// Judges one host. `None` and `""` are a missing host.
pub fn host_problem(host: Option<&str>, allow_wildcard_subdomains: bool) -> Option<HostProblem> {
    let host = host.map(str::trim).unwrap_or_default().trim_end_matches('.');
    if host.is_empty() {
        return Some(HostProblem::Missing);
    }
    if host == "*" {
        return Some(HostProblem::MatchesEverything);
    }
    let Some(suffix) = host.strip_prefix("*.") else {
        return host.contains('*').then_some(HostProblem::MisplacedWildcard);
    };
    if suffix.contains('*') {
        return Some(HostProblem::MisplacedWildcard);
    }
    let labels = suffix.split('.').filter(|label| !label.is_empty()).count();
    if labels < 2 {
        Some(HostProblem::TooBroad)
    } else if !allow_wildcard_subdomains {
        Some(HostProblem::Wildcard)
    } else {
        None
    }
}

pub struct IngressHosts {
    name: String,
    spec: IngressHostsSpec,
}

impl IngressHosts {
    pub fn new(name: impl Into<String>, spec: IngressHostsSpec) -> Self {
        Self { name: name.into(), spec }
    }

    /// Every offending hostname of an HTTPRoute spec, as `path: what is wrong`.
    fn route_problems(&self, spec: &Value) -> Vec<String> {
        let hostnames = array(spec, "hostnames");
        if hostnames.is_empty() {
            return vec![
                "spec.hostnames is empty, so the route takes every host its Gateway listener accepts".into(),
            ];
        }
        let allow = self.spec.allow_wildcard_subdomains;
        let mut problems = Vec::new();
        for (index, host) in hostnames.iter().enumerate() {
            match (host_problem(host.as_str(), allow), host.as_str()) {
                (None, _) => {}
                (Some(HostProblem::Missing), _) => {
                    problems.push(format!("spec.hostnames[{index}] is empty, so it matches every host"));
                }
                (Some(problem), host) => {
                    problems
                        .push(format!("spec.hostnames[{index}] {:?} {problem}", host.unwrap_or_default()));
                }
            }
        }
        problems
    }

    /// Every offending field of an Ingress spec, as `path: what is wrong`.
    fn problems(&self, spec: &Value) -> Vec<String> {
        let allow = self.spec.allow_wildcard_subdomains;
        let mut problems = Vec::new();
        for (index, rule) in array(spec, "rules").iter().enumerate() {
            let host = rule.get("host").and_then(Value::as_str);
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
        for (index, tls) in array(spec, "tls").iter().enumerate() {
            for (host_index, host) in array(tls, "hosts").iter().enumerate() {
                let host = host.as_str();
                // An empty TLS host only names no certificate; it routes nothing.
                if let Some(problem) = host_problem(host, allow).filter(|p| *p != HostProblem::Missing) {
                    problems.push(format!(
                        "spec.tls[{index}].hosts[{host_index}] {:?} {problem}",
                        host.unwrap_or_default()
                    ));
                }
            }
        }
        if !self.spec.allow_default_backend && spec.get("defaultBackend").is_some_and(|b| !b.is_null()) {
            problems.push("spec.defaultBackend receives traffic for every host no rule matches".to_owned());
        }
        problems
    }
}

fn is_http_route(request: &Request) -> bool {
    request.is_kind(http_route::GROUP, http_route::KIND)
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

impl Policy for IngressHosts {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self) -> Action {
        self.spec.action
    }

    fn applies(&self, request: &Request) -> bool {
        matches!(request.operation(), Operation::Create | Operation::Update)
            && request.sub_resource().is_none()
            && (request.is_kind("networking.k8s.io", "Ingress")
                || request.is_kind("extensions", "Ingress")
                || is_http_route(request))
    }

    fn evaluate(&self, request: &Request, _: &Context) -> Verdict {
        let spec = request.object().and_then(|o| o.data.get("spec")).unwrap_or(&Value::Null);
        let route = is_http_route(request);
        let problems = if route { self.route_problems(spec) } else { self.problems(spec) };
        if problems.is_empty() {
            return Verdict::Pass;
        }
        let wildcards = if self.spec.allow_wildcard_subdomains {
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

    fn over_budget(&self, _: &Request, _: &Exhausted, _: &Context) -> Violation {
        unreachable_charge(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, ingress};
    use serde_json::json;

    fn policy(allow_wildcard_subdomains: bool) -> IngressHosts {
        IngressHosts::new(
            "ingress-hosts",
            IngressHostsSpec { allow_wildcard_subdomains, ..Default::default() },
        )
    }

    #[test]
    fn host_problem_table() {
        use HostProblem::*;
        let cases = [
            (None, false, Some(Missing)),
            (Some(""), false, Some(Missing)),
            (Some("  "), false, Some(Missing)),
            (Some("*"), true, Some(MatchesEverything)),
            (Some("*."), true, Some(MatchesEverything)),
            (Some("*.com"), true, Some(TooBroad)),
            (Some("*.com."), true, Some(TooBroad)),
            (Some("*.example.com"), false, Some(Wildcard)),
            (Some("*.example.com"), true, None),
            (Some("*.*.example.com"), true, Some(MisplacedWildcard)),
            (Some("foo.*.example.com"), true, Some(MisplacedWildcard)),
            (Some("app.example.com"), false, None),
            (Some("localhost"), false, None),
        ];
        for (host, allow, expected) in cases {
            assert_eq!(host_problem(host, allow), expected, "{host:?} allow={allow}");
        }
    }

    #[test]
    fn rejects_a_star_host_naming_the_rule_index() {
        let fixture = Fixture::new();
        let request =
            fixture.create(ingress("web", json!({"rules": [{"host": "ok.example.com"}, {"host": "*"}]})));
        let violation = fixture.violation(&policy(false), &request);
        assert!(
            violation.reason.contains(r#"spec.rules[1].host "*" matches every host"#),
            "{}",
            violation.reason
        );
        assert!(!violation.reason.contains("rules[0]"));
    }

    #[test]
    fn rejects_a_rule_without_host() {
        let fixture = Fixture::new();
        let request = fixture.create(ingress("web", json!({"rules": [{"http": {"paths": []}}]})));
        let violation = fixture.violation(&policy(true), &request);
        assert!(violation.reason.contains("spec.rules[0] has no host"));
    }

    #[test]
    fn wildcard_subdomains_follow_the_setting() {
        let fixture = Fixture::new();
        let request = fixture.create(ingress("web", json!({"rules": [{"host": "*.example.com"}]})));
        assert!(
            fixture.violation(&policy(false), &request).reason.contains("wildcard hosts are not allowed")
        );
        assert!(matches!(policy(true).evaluate(&request, &fixture.context()), Verdict::Pass));
        let broad = fixture.create(ingress("web", json!({"rules": [{"host": "*.com"}]})));
        assert!(fixture.violation(&policy(true), &broad).reason.contains("top-level domain"));
    }

    #[test]
    fn checks_tls_hosts_too() {
        let fixture = Fixture::new();
        let spec = json!({"rules": [{"host": "a.example.com"}], "tls": [{"hosts": ["a.example.com", "*"], "secretName": "t"}]});
        let violation = fixture.violation(&policy(true), &fixture.create(ingress("web", spec)));
        assert!(violation.reason.contains(r#"spec.tls[0].hosts[1] "*""#), "{}", violation.reason);
    }

    #[test]
    fn rejects_a_catch_all_default_backend_unless_allowed() {
        let fixture = Fixture::new();
        let spec = json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}});
        let request = fixture.create(ingress("web", spec));
        assert!(fixture.violation(&policy(false), &request).reason.contains("spec.defaultBackend"));
        let allowing =
            IngressHosts::new("i", IngressHostsSpec { allow_default_backend: true, ..Default::default() });
        assert!(matches!(allowing.evaluate(&request, &fixture.context()), Verdict::Pass));
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

    fn http_route(hostnames: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"hostnames": hostnames, "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}
        })
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
        assert!(
            fixture.violation(&policy(false), &wildcard).reason.contains("wildcard hosts are not allowed")
        );
        assert!(matches!(policy(true).evaluate(&wildcard, &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn an_http_route_without_hostnames_takes_every_host() {
        let fixture = Fixture::new();
        let mut route = http_route(json!([]));
        route["spec"].as_object_mut().unwrap().remove("hostnames");
        let violation = fixture.violation(&policy(true), &fixture.create(route));
        assert!(violation.reason.contains("spec.hostnames is empty"), "{}", violation.reason);
    }

    #[test]
    fn does_not_apply_to_deletes() {
        let fixture = Fixture::new();
        let request = fixture.delete(ingress("web", json!({"rules": [{"host": "*"}]})));
        assert!(!policy(false).applies(&request));
    }
}
