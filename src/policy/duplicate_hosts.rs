//! duplicate-hosts: one host and path, one namespace.
//!
//! When Ingresses (or Gateway API HTTPRoutes) in two namespaces serve the
//! same host and path, the controller picks one of them, and traffic moves
//! between teams unannounced. An Ingress or HTTPRoute that would serve a
//! host and path another namespace already serves is reported. Only routes
//! the request adds are judged, so an update does not trip over a conflict
//! that was already there. What other namespaces serve comes from the
//! cluster view, asked once per host and path the request adds: a review
//! costs what the request holds, however many routes the cluster serves.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::policy::{Action, Context, Rule, Spec, Verdict, Violation};
use crate::request::{Operation, Request, Spec as RequestSpec};
use crate::routing::{self, Hook, Need};
use crate::view::bounds::MAX_ROUTES;
use crate::view::http_route::{self, HttpRouteSpec};
use crate::view::{HostPath, Route, summary};

/// How many conflicts a message names; the rest are counted.
const NAMED: usize = 5;

/// Nothing to set: a policy of this kind has only the action every policy has,
/// and the spec is also its rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateHostsSpec {}

/// The kinds that route traffic by host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Router {
    Ingress,
    HttpRoute,
}

fn router(request: &Request) -> Option<Router> {
    if request.is_kind("networking.k8s.io", "Ingress") || request.is_kind("extensions", "Ingress") {
        Some(Router::Ingress)
    } else if request.is_kind(http_route::GROUP, http_route::KIND) {
        Some(Router::HttpRoute)
    } else {
        None
    }
}

/// Every host and path a spec routes, as the view summarizes them but
/// without its cap: a request is judged whole. A spec that does not parse
/// routes nothing: the API server has validated it. Only the spec is read,
/// decoded straight from the request's JSON text into the type that routes
/// (the Ingress spec once for this policy and ingress-hosts together).
fn routes(router: Router, spec: Option<&RequestSpec>) -> BTreeSet<HostPath> {
    let Some(spec) = spec else { return BTreeSet::new() };
    let routes = match router {
        Router::Ingress => spec.ingress().ok().map(summary::ingress_routes),
        Router::HttpRoute => {
            spec.decode::<HttpRouteSpec>().ok().map(|spec| summary::http_route_routes(&spec))
        }
    };
    routes.unwrap_or_default()
}

/// The routes the request adds that other namespaces already serve.
struct Conflicts {
    /// The first [`NAMED`], each with one object serving it.
    named: Vec<(HostPath, Route)>,
    /// How many (route added, object serving it) pairs in all.
    total: usize,
}

impl DuplicateHostsSpec {
    /// Each route the request adds, with the other namespaces' objects already serving it.
    fn conflicts(&self, request: &Request, router: Router, context: &Context) -> Conflicts {
        let namespace = request.namespace().unwrap_or_default();
        let before = routes(router, request.old_object_spec());
        let mut conflicts = Conflicts { named: Vec::new(), total: 0 };
        for added in routes(router, request.object_spec()).difference(&before) {
            let serving = context.view.serving(added, namespace, NAMED - conflicts.named.len());
            conflicts.total += serving.total;
            conflicts.named.extend(serving.first.into_iter().map(|route| (added.clone(), route)));
        }
        conflicts
    }
}

/// `shop.example.com/ (served by ingress "shop/web")`, saying when the view
/// knows only part of what that object serves.
fn describe(route: &HostPath, other: &Route) -> String {
    let partial = if other.truncated {
        format!("; only its first {MAX_ROUTES} routes are known to Defender")
    } else {
        String::new()
    };
    format!("{route} (served by {}{partial})", other.describe())
}

impl Spec for DuplicateHostsSpec {
    type Rule = Self;
    const DEFAULT_ACTION: Action = Action::Warn;
    const READS: &[&str] = &["spec.rules", "spec.hostnames"];

    fn into_rule(self) -> Result<Self, String> {
        Ok(self)
    }
}

impl Rule for DuplicateHostsSpec {
    fn routes(&self) -> Vec<Need> {
        let writes = [Operation::Create, Operation::Update];
        [("networking.k8s.io", "Ingress"), (http_route::GROUP, http_route::KIND)]
            .into_iter()
            .map(|(group, kind)| {
                Need::new(Hook::IngressHosts, &routing::kinds::resource(group, kind, None), &writes)
            })
            .collect()
    }

    fn applies(&self, request: &Request) -> bool {
        matches!(request.operation(), Operation::Create | Operation::Update)
            && request.sub_resource().is_none()
            && router(request).is_some()
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        let Some(router) = router(request) else { return Verdict::Pass };
        let conflicts = self.conflicts(request, router, context);
        if conflicts.total == 0 {
            return Verdict::Pass;
        }
        let mut named: Vec<String> =
            conflicts.named.iter().map(|(route, other)| describe(route, other)).collect();
        if conflicts.total > named.len() {
            let more = conflicts.total - named.len();
            let last = format!("{} and {more} more", named.pop().unwrap_or_default());
            named.push(last);
        }
        Verdict::Violation(Violation::new(
            format!(
                "{} would serve hosts and paths another namespace already serves: {}",
                request.describe(),
                named.join(", ")
            ),
            "Two namespaces serving one host and path split its traffic unpredictably. Use a host or path your \
             team owns, or agree with the other namespace's owners which of you serves it",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, assert_contains};
    use serde_json::{Value, json};

    fn policy() -> DuplicateHostsSpec {
        DuplicateHostsSpec {}
    }

    fn ingress(namespace: &str, name: &str, host: &str, paths: &[&str]) -> Value {
        let paths: Vec<Value> = paths
            .iter()
            .map(|path| {
                json!({"path": path, "pathType": "Prefix",
                       "backend": {"service": {"name": "web", "port": {"number": 80}}}})
            })
            .collect();
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"rules": [{"host": host, "http": {"paths": paths}}]}})
    }

    fn http_route(namespace: &str, name: &str, hostnames: &[&str], path: Option<&str>) -> Value {
        let matches = match path {
            Some(path) => json!([{"path": {"type": "PathPrefix", "value": path}}]),
            None => json!([]),
        };
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"hostnames": hostnames, "rules": [{"matches": matches}]}})
    }

    #[test]
    fn an_ingress_for_a_host_and_path_another_namespace_serves_is_reported() {
        let fixture = Fixture::new().with_objects(&[
            ingress("shop", "web", "shop.example.com", &["/", "/api"]),
            ingress("blog", "web", "blog.example.com", &["/"]),
        ]);
        let request = fixture.create(ingress("intruder", "web", "Shop.Example.com.", &["/api", "/other"]));
        let violation = fixture.violation(&policy(), &request);
        assert_eq!(
            violation.reason,
            "ingress \"intruder/web\" would serve hosts and paths another namespace already serves: \
             shop.example.com/api (served by ingress \"shop/web\")"
        );
        assert_contains(&violation.remedy, "split its traffic unpredictably");
    }

    #[test]
    fn the_same_namespace_other_paths_and_other_hosts_pass() {
        let fixture = Fixture::new().with_objects(&[ingress("shop", "web", "shop.example.com", &["/"])]);
        let context = fixture.context();
        for object in [
            ingress("shop", "web-2", "shop.example.com", &["/"]),
            ingress("blog", "web", "shop.example.com", &["/blog"]),
            ingress("blog", "web", "blog.example.com", &["/"]),
        ] {
            assert!(matches!(policy().evaluate(&fixture.create(object), &context), Verdict::Pass));
        }
    }

    #[test]
    fn an_update_is_judged_on_the_routes_it_adds() {
        let fixture = Fixture::new().with_objects(&[ingress("shop", "web", "shop.example.com", &["/"])]);
        let old = ingress("blog", "web", "shop.example.com", &["/"]);
        let unchanged = ingress("blog", "web", "shop.example.com", &["/", "/blog"]);
        assert!(matches!(
            policy().evaluate(&fixture.update(old.clone(), unchanged), &fixture.context()),
            Verdict::Pass
        ));
        let moved = ingress("blog", "web", "shop.example.com", &["/"]);
        let before = ingress("blog", "web", "blog.example.com", &["/"]);
        assert_contains(
            &fixture.violation(&policy(), &fixture.update(before, moved)).reason,
            "shop.example.com/",
        );
    }

    #[test]
    fn http_route_hostnames_conflict_with_ingresses_and_each_other() {
        let fixture = Fixture::new().with_objects(&[
            ingress("shop", "web", "shop.example.com", &["/"]),
            http_route("team-b", "api", &["api.example.com"], Some("/v1")),
        ]);
        let route =
            fixture.create(http_route("team-c", "both", &["shop.example.com", "api.example.com"], None));
        let violation = fixture.violation(&policy(), &route);
        assert_contains(&violation.reason, "httproute \"team-c/both\" would serve");
        assert_contains(&violation.reason, "shop.example.com/ (served by ingress \"shop/web\")");
        let v1 = fixture.create(http_route("team-c", "v1", &["api.example.com"], Some("/v1")));
        assert_contains(
            &fixture.violation(&policy(), &v1).reason,
            "api.example.com/v1 (served by httproute \"team-b/api\")",
        );
        let ingress_on_route = fixture.create(ingress("team-d", "api", "api.example.com", &["/v1"]));
        assert_contains(&fixture.violation(&policy(), &ingress_on_route).reason, "httproute \"team-b/api\"");
    }

    #[test]
    fn names_five_conflicts_and_counts_the_rest() {
        let taken: Vec<Value> =
            (1..=7).map(|i| ingress(&format!("team-{i}"), "web", "shop.example.com", &["/"])).collect();
        let fixture = Fixture::new().with_objects(&taken);
        let violation =
            fixture.violation(&policy(), &fixture.create(ingress("late", "web", "shop.example.com", &["/"])));
        assert!(
            violation.reason.ends_with("(served by ingress \"team-5/web\") and 2 more"),
            "{}",
            violation.reason
        );
    }

    fn paths(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("/p{i:04}")).collect()
    }

    #[test]
    fn a_request_is_judged_on_all_its_routes_however_many() {
        let fixture = Fixture::new().with_objects(&[ingress("shop", "web", "shop.example.com", &["/p0150"])]);
        let many = paths(MAX_ROUTES * 2);
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let request = fixture.create(ingress("intruder", "web", "shop.example.com", &many));
        assert_contains(&fixture.violation(&policy(), &request).reason, "shop.example.com/p0150");
    }

    #[test]
    fn a_conflict_with_an_object_the_view_keeps_in_part_says_so() {
        let many = paths(MAX_ROUTES + 1);
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let fixture = Fixture::new().with_objects(&[ingress("shop", "big", "shop.example.com", &many)]);
        let request = fixture.create(ingress("intruder", "web", "shop.example.com", &["/p0000"]));
        assert_eq!(
            fixture.violation(&policy(), &request).reason,
            format!(
                "ingress \"intruder/web\" would serve hosts and paths another namespace already serves: \
                 shop.example.com/p0000 (served by ingress \"shop/big\"; only its first {MAX_ROUTES} routes are \
                 known to Defender)"
            )
        );
        // Past the cap, the view does not know the route.
        let past = fixture.create(ingress("intruder", "web", "shop.example.com", &["/p0100"]));
        assert!(matches!(policy().evaluate(&past, &fixture.context()), Verdict::Pass));
    }

    #[test]
    fn conflicts_over_several_added_routes_are_named_in_order_and_counted() {
        let taken: Vec<Value> = (1..=3)
            .map(|i| ingress(&format!("team-{i}"), "web", "shop.example.com", &["/a", "/b", "/c"]))
            .collect();
        let fixture = Fixture::new().with_objects(&taken);
        let request = fixture.create(ingress("late", "web", "shop.example.com", &["/a", "/b", "/c"]));
        let reason = fixture.violation(&policy(), &request).reason;
        assert!(
            reason.ends_with(
                "shop.example.com/a (served by ingress \"team-1/web\"), shop.example.com/a (served by ingress \
                 \"team-2/web\"), shop.example.com/a (served by ingress \"team-3/web\"), shop.example.com/b \
                 (served by ingress \"team-1/web\"), shop.example.com/b (served by ingress \"team-2/web\") and 4 more"
            ),
            "{reason}"
        );
    }

    #[test]
    fn applies_to_ingress_and_httproute_writes_only() {
        let fixture = Fixture::new();
        let object = ingress("shop", "web", "shop.example.com", &["/"]);
        assert!(policy().applies(&fixture.create(object.clone())));
        assert!(policy().applies(&fixture.create(http_route("shop", "web", &["a.example.com"], None))));
        assert!(!policy().applies(&fixture.delete(object)));
        assert!(!policy().applies(&fixture.create(crate::testing::namespace("shop"))));
    }
}
