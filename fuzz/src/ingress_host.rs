//! Any host -> the ingress host matcher (`host_problem`) and the
//! ingress-hosts policy that applies it.
//!
//! The first byte picks whether wildcard subdomains are allowed; the rest is
//! the host. Whatever it is: no panic; a `*` passes only as a leading `*.`
//! label over a domain of two or more labels, with wildcards allowed;
//! allowing wildcards lifts only the wildcard problem; an IP address is
//! always one; an Ingress carrying the host (as a rule host, a TLS host or an
//! alias annotation) and a route carrying it as a hostname are denied exactly
//! when the matcher finds a problem that routes traffic.

use std::sync::LazyLock;

use defender::clock::{Clock, SystemClock};
use defender::config::PolicySet;
use defender::engine::Engine;
use defender::policy::hostname::is_ip_address;
use defender::policy::ingress_hosts::{HostProblem, IngressHostsSpec, host_problem};
use defender::policy::{Action, Policy};
use defender::request::Operation;
use defender::settings::Settings;
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use serde_json::{Value, json};

pub fn check(data: &[u8]) {
    let Some((&flags, host)) = data.split_first() else { return };
    // Hosts reach the policy as JSON strings, which are UTF-8.
    let Ok(host) = std::str::from_utf8(host) else { return };
    let allow = flags & 1 == 1;
    let problem = host_problem(Some(host), allow);

    let trimmed = host.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        assert_eq!(problem, Some(HostProblem::Missing));
    }
    if problem.is_none() && trimmed.contains('*') {
        let suffix = trimmed.strip_prefix("*.").expect("an accepted wildcard starts with *.");
        assert!(allow, "{host:?} accepted while wildcards are not allowed");
        assert!(!suffix.contains('*'), "{host:?} accepted with a second '*'");
        assert!(suffix.split('.').filter(|l| !l.is_empty()).count() >= 2, "{host:?} accepted over a TLD");
    }

    let unwildcarded = trimmed.strip_prefix("*.").unwrap_or(trimmed);
    if !trimmed.is_empty() && trimmed != "*" && is_ip_address(unwildcarded) {
        assert_eq!(problem, Some(HostProblem::IpAddress), "{host:?} is an IP address");
    }

    let strict = host_problem(Some(host), false);
    let lenient = host_problem(Some(host), true);
    match strict {
        Some(HostProblem::Wildcard) => assert_eq!(lenient, None, "{host:?}"),
        other => assert_eq!(lenient, other, "allowing wildcards changed {host:?} beyond the wildcard"),
    }

    let engine = if allow { &*LENIENT } else { &*STRICT };
    let ruled = denied(engine, json!({"rules": [{"host": host}]}));
    assert_eq!(ruled, problem.is_some(), "rule host {host:?}: matcher says {problem:?}");
    // An empty TLS host names no certificate and routes nothing.
    let tls = denied(engine, json!({"rules": [{"host": "app.example.com"}], "tls": [{"hosts": [host]}]}));
    let routes = problem.is_some_and(|p| p != HostProblem::Missing);
    assert_eq!(tls, routes, "TLS host {host:?}: matcher says {problem:?}");
    let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
                       "metadata": {"name": "api", "namespace": "shop"}, "spec": {"hostnames": [host]}});
    assert_eq!(
        denied_object(engine, route),
        problem.is_some(),
        "route hostname {host:?}: matcher says {problem:?}"
    );
    // Controllers split alias lists on commas and whitespace; a host without
    // them is one alias.
    if !host.contains(|c: char| c == ',' || c.is_whitespace()) {
        let mut aliased = ingress(json!({"rules": [{"host": "app.example.com"}]}));
        aliased["metadata"]["annotations"] = json!({"konghq.com/host-aliases": host});
        assert_eq!(denied_object(engine, aliased), routes, "alias {host:?}: matcher says {problem:?}");
    }
}

static STRICT: LazyLock<Engine> = LazyLock::new(|| engine(false));
static LENIENT: LazyLock<Engine> = LazyLock::new(|| engine(true));

fn engine(allow_wildcard_subdomains: bool) -> Engine {
    let rule = IngressHostsSpec { allow_wildcard_subdomains, ..Default::default() };
    let policies = vec![Policy::new("ingress-hosts", Action::Deny, rule)];
    Engine::new(PolicySet { settings: Settings::default(), policies })
}

fn ingress(spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
}

/// Whether an Ingress CREATE with this spec is denied.
fn denied(engine: &Engine, spec: Value) -> bool {
    denied_object(engine, ingress(spec))
}

/// Whether a CREATE of this object is denied.
fn denied_object(engine: &Engine, object: Value) -> bool {
    let request = Synthetic { object: Some(object), ..Synthetic::new(Operation::Create) }
        .build()
        .expect("a buildable request");
    let view = MemoryView::default();
    !engine.decide(&request, &engine.context(SystemClock.now(), &view)).allowed()
}
