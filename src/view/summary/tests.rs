use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::view::bounds::{MAX_HOST, MAX_NAME, MAX_PATH, MAX_REFERENCES, MAX_ROUTES};

fn parse<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn reference(referent: Referent, name: &str, via: Via) -> Reference {
    Reference { referent, name: name.to_owned(), via }
}

#[test]
fn a_pod_lists_each_reference_once_per_way_sorted() {
    let summary = pod(&parse(json!({
        "metadata": {"name": "api"},
        "spec": {
            "containers": [
                {"name": "a", "envFrom": [{"secretRef": {"name": "db"}}, {"secretRef": {"name": "db"}}]},
                {"name": "b", "envFrom": [{"secretRef": {"name": "db"}}],
                 "env": [{"name": "X", "value": "plain"}]}
            ],
            "volumes": [{"name": "v", "secret": {"secretName": "db"}}, {"name": "e", "emptyDir": {}}]
        }
    })));
    assert!(summary.live, "a pod without a phase is about to run");
    assert_eq!(
        &summary.references[..],
        [reference(Referent::Secret, "db", Via::EnvFrom), reference(Referent::Secret, "db", Via::Volume)]
    );
}

#[test]
fn finished_pods_are_not_live_and_pending_ones_are() {
    for (phase, live) in
        [("Pending", true), ("Running", true), ("Unknown", true), ("Succeeded", false), ("Failed", false)]
    {
        let summary = pod(&parse(json!({"metadata": {"name": "p"}, "status": {"phase": phase}})));
        assert_eq!(summary.live, live, "{phase}");
    }
}

#[test]
fn objects_being_deleted_hold_nothing_and_use_nothing() {
    let leaving = json!({"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"});
    let running: Parts<Pod> = parse(json!({"metadata": leaving, "status": {"phase": "Running"}}));
    assert!(!pod(&running).live);
    let scaled: Parts<Deployment> = parse(json!({"metadata": leaving, "spec": {"replicas": 3}}));
    assert!(!deployment(&scaled).active);
    let set: Parts<StatefulSet> = parse(json!({"metadata": leaving, "spec": {"replicas": 3}}));
    assert!(!stateful_set(&set).active);
    let replicas: Parts<ReplicaSet> = parse(json!({"metadata": leaving, "spec": {"replicas": 3}}));
    assert!(!replica_set(&replicas).active);
    let daemons: Parts<DaemonSet> =
        parse(json!({"metadata": leaving, "status": {"desiredNumberScheduled": 3}}));
    assert!(!daemon_set(&daemons).active);
    let claim: Parts<PersistentVolumeClaim> =
        parse(json!({"metadata": leaving, "status": {"phase": "Bound"}}));
    assert!(!persistent_volume_claim(&claim).bound);
}

#[test]
fn workloads_ask_for_pods_while_their_replicas_are_above_zero() {
    let deployment_with = |replicas: Value| -> Parts<Deployment> {
        parse(json!({"metadata": {"name": "d"}, "spec": replicas}))
    };
    assert!(deployment(&deployment_with(json!({}))).active, "replicas default to 1");
    assert!(deployment(&deployment_with(json!({"replicas": 2}))).active);
    assert!(!deployment(&deployment_with(json!({"replicas": 0}))).active);
    let set: Parts<StatefulSet> = parse(json!({"metadata": {"name": "s"}, "spec": {"replicas": 0}}));
    assert!(!stateful_set(&set).active);
}

#[test]
fn a_replica_set_controlled_by_a_deployment_is_the_deployments() {
    let owned: Parts<ReplicaSet> = parse(json!({
        "metadata": {"name": "web-7d9", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "1", "controller": true}]},
        "spec": {"replicas": 3}
    }));
    assert!(!replica_set(&owned).active);
    let standalone: Parts<ReplicaSet> = parse(json!({"metadata": {"name": "rs"}, "spec": {"replicas": 3}}));
    assert!(replica_set(&standalone).active);
}

#[test]
fn a_daemon_set_counts_with_pods_scheduled_or_nodes_to_run_on() {
    let with = |status: Value| -> Parts<DaemonSet> {
        parse(json!({"metadata": {"name": "agent"}, "status": status}))
    };
    assert!(!daemon_set(&with(json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0}))).active);
    assert!(daemon_set(&with(json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 3}))).active);
    assert!(daemon_set(&with(json!({"currentNumberScheduled": 1, "desiredNumberScheduled": 0}))).active);
    let fresh: Parts<DaemonSet> = parse(json!({"metadata": {"name": "agent"}}));
    assert!(!daemon_set(&fresh).active);
}

#[test]
fn only_bound_claims_hold_data() {
    let with = |phase: &str| -> Parts<PersistentVolumeClaim> {
        parse(json!({"metadata": {"name": "c"}, "status": {"phase": phase}}))
    };
    assert!(persistent_volume_claim(&with("Bound")).bound);
    assert!(!persistent_volume_claim(&with("Pending")).bound);
    assert!(!persistent_volume_claim(&with("Lost")).bound);
}

#[test]
fn an_ingress_lists_tls_secrets_backends_and_host_paths() {
    let summary = ingress(&parse(json!({
        "metadata": {"name": "web"},
        "spec": {
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}, {"hosts": ["x.example.com"]}],
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [
                {"host": "Web.Example.COM.", "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
                    {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                ]}},
                {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"resource": {"kind": "StorageBucket", "name": "static"}}}]}}
            ]
        }
    })));
    assert_eq!(
        &summary.references[..],
        [
            reference(Referent::Secret, "web-tls", Via::Tls),
            reference(Referent::Service, "api", Via::Backend),
            reference(Referent::Service, "fallback", Via::DefaultBackend),
            reference(Referent::Service, "web", Via::Backend),
        ]
    );
    assert_eq!(
        &summary.routes[..],
        [HostPath::new("web.example.com", Some("/")), HostPath::new("web.example.com", Some("/api"))]
    );
}

#[test]
fn an_http_route_serves_every_hostname_at_every_path_it_matches() {
    let route = |spec: Value| -> HttpRoute { parse(json!({"metadata": {"name": "r"}, "spec": spec})) };
    let summary = http_route(&route(json!({
        "hostnames": ["a.example.com", "B.example.com"],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}, {"headers": [{"name": "x", "value": "y"}]}]},
            {"backendRefs": [{"name": "web"}]}
        ]
    })));
    let routes: Vec<String> = summary.routes.iter().map(HostPath::to_string).collect();
    assert_eq!(routes, ["a.example.com/", "a.example.com/v1", "b.example.com/", "b.example.com/v1"]);
    assert!(http_route(&route(json!({"rules": [{}]}))).routes.is_empty(), "no hostnames: the listener's");
    assert_eq!(http_route(&route(json!({"hostnames": ["a.example.com"]}))).routes.len(), 1);
}

#[test]
fn a_namespace_is_its_labels_and_whether_it_is_terminating() {
    let metadata: ObjectMeta = parse(json!({
        "name": "shop", "labels": {"team": "shop"}, "deletionTimestamp": "2026-01-01T00:00:00Z"
    }));
    let info = namespace(&metadata);
    assert_eq!(info.labels.get("team").map(String::as_str), Some("shop"));
    assert!(info.terminating);
}

fn ingress_with_paths(host: &str, paths: usize) -> Parts<Ingress> {
    let paths: Vec<Value> = (0..paths)
        .map(|i| {
            json!({"path": format!("/p{i:04}"), "pathType": "Prefix",
                   "backend": {"service": {"name": format!("svc-{i:04}"), "port": {"number": 80}}}})
        })
        .collect();
    parse(json!({"metadata": {"name": "big"}, "spec": {"rules": [{"host": host, "http": {"paths": paths}}]}}))
}

#[test]
fn an_ingress_keeps_its_first_routes_and_references_and_says_it_was_cut() {
    let big = ingress_with_paths("big.example.com", MAX_ROUTES + 50);
    let summary = ingress(&big);
    assert_eq!(summary.routes.len(), MAX_ROUTES);
    assert_eq!(summary.routes[0], HostPath::new("big.example.com", Some("/p0000")));
    assert!(summary.routes_truncated);
    assert_eq!(summary.references.len(), MAX_REFERENCES);
    assert!(summary.references_truncated);
    let spec = big.spec.as_ref().unwrap();
    assert_eq!(ingress_routes(spec).len(), MAX_ROUTES + 50, "a request's routes are all judged");
    let small = ingress(&ingress_with_paths("small.example.com", 3));
    assert!(!small.routes_truncated && !small.references_truncated);
}

#[test]
fn an_http_route_keeps_its_first_routes_of_every_hostname_and_path() {
    let hostnames: Vec<String> = (0..16).map(|i| format!("h{i:02}.example.com")).collect();
    let matches: Vec<Value> =
        (0..64).map(|i| json!({"path": {"type": "PathPrefix", "value": format!("/m{i:02}")}})).collect();
    let route: HttpRoute = parse(json!({"metadata": {"name": "r"},
        "spec": {"hostnames": hostnames, "rules": [{"matches": matches}]}}));
    assert_eq!(http_route_routes(&route.spec).len(), 16 * 64);
    let summary = http_route(&route);
    assert_eq!((summary.routes.len(), summary.truncated), (MAX_ROUTES, true));
}

#[test]
fn a_pod_keeps_its_first_references_and_says_it_was_cut() {
    let env: Vec<Value> = (0..MAX_REFERENCES + 1)
        .map(|i| json!({"name": format!("V{i}"), "valueFrom": {"secretKeyRef": {"name": format!("s-{i:04}"), "key": "k"}}}))
        .collect();
    let summary =
        pod(&parse(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "env": env}]}})));
    assert_eq!(summary.references.len(), MAX_REFERENCES);
    assert!(summary.references_truncated);
    assert_eq!(summary.references[0], reference(Referent::Secret, "s-0000", Via::Env));
}

#[test]
fn hosts_paths_and_names_are_bounded_alike_everywhere() {
    let long_host = format!("{}.example.com", "a".repeat(400));
    let long_path = format!("/{}", "p".repeat(5000));
    let route = HostPath::new(&long_host, Some(&long_path));
    assert!(route.host.len() <= MAX_HOST && route.path.len() <= MAX_PATH);
    assert_eq!(
        route,
        HostPath::new(&long_host.to_uppercase(), Some(&long_path)),
        "still compared without case"
    );
    let summary = pod(&parse(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "s".repeat(1000)}}]}]}})));
    assert!(summary.references[0].name.len() <= MAX_NAME);
}

#[test]
fn a_namespace_keeps_a_bounded_number_of_labels_defenders_own_first() {
    let mut labels: serde_json::Map<String, Value> =
        (0..200).map(|i| (format!("team-{i:03}"), Value::from("x"))).collect();
    labels.insert("defender.io/deletion-allowed".into(), "true".into());
    let metadata: ObjectMeta = parse(json!({"name": "shop", "labels": labels}));
    let info = namespace(&metadata);
    assert_eq!(info.labels.len(), crate::view::bounds::MAX_LABELS);
    assert_eq!(info.labels.get("defender.io/deletion-allowed").map(String::as_str), Some("true"));
}
