use serde_json::{Value, json};

use super::*;
use crate::view::bounds::MAX_NAME;

fn pod(namespace: &str, name: &str, secret: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": secret}}]}]}})
}

#[test]
fn manifests_of_the_kinds_it_keeps_are_summarized_and_others_skipped() {
    let mut view = MemoryView::default();
    assert!(view.add_manifest(&pod("prod", "api", "db")).unwrap());
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod"}});
    assert!(!view.add_manifest(&secret).unwrap());
    let job =
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "prod"}});
    assert!(!view.add_manifest(&job).unwrap());
    // A kind is known by its group too: this one is a custom resource, only counted.
    let custom = json!({"apiVersion": "example.com/v1", "kind": "Pod", "metadata": {"name": "x"}});
    assert!(view.add_manifest(&custom).unwrap());
    assert_eq!(view.count::<Parts<Pod>>(), 1);
    assert_eq!(view.users(Referent::Secret, "prod", "db").len(), 1);
}

#[test]
fn a_manifest_without_a_namespace_is_in_default_and_one_without_a_name_is_refused() {
    let mut view = MemoryView::default();
    let mut unplaced = pod("x", "api", "db");
    unplaced["metadata"].as_object_mut().unwrap().remove("namespace");
    view.add_manifest(&unplaced).unwrap();
    assert_eq!(view.users(Referent::Secret, "default", "db").len(), 1);
    let nameless = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}});
    assert_eq!(view.add_manifest(&nameless).unwrap_err(), "pod: metadata.name is missing");
}

#[test]
fn a_malformed_manifest_is_refused_with_the_field() {
    let mut view = MemoryView::default();
    let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
                     "spec": {"replicas": "three"}});
    let error = view.add_manifest(&bad).unwrap_err();
    assert!(error.starts_with("deployment \"web\": spec.replicas:"), "{error}");
}

#[test]
fn a_manifest_is_checked_whole_though_only_its_parts_are_read() {
    let mut view = MemoryView::default();
    let mut bad = pod("prod", "api", "db");
    bad["spec"]["containers"][0]["image"] = json!(5);
    let error = view.add_manifest(&bad).unwrap_err();
    assert!(error.starts_with("pod \"api\": spec.containers[0].image:"), "{error}");
    assert_eq!(view.count::<Parts<Pod>>(), 0);
}

#[test]
fn what_matters_to_no_policy_is_not_kept() {
    let mut view = MemoryView::default();
    let mut finished = pod("prod", "job-1", "db");
    finished["status"] = json!({"phase": "Succeeded"});
    view.add_manifest(&finished).unwrap();
    let idle = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "prod"},
                      "spec": {"replicas": 0}});
    view.add_manifest(&idle).unwrap();
    let unbound = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": "c", "namespace": "prod"}, "status": {"phase": "Pending"}});
    view.add_manifest(&unbound).unwrap();
    assert_eq!(
        (
            view.count::<Parts<Pod>>(),
            view.count::<Parts<Deployment>>(),
            view.count::<Parts<PersistentVolumeClaim>>()
        ),
        (0, 0, 0)
    );
    assert!(view.contents("prod").is_empty());
}

#[test]
fn a_change_replaces_the_summary_and_a_finished_pod_is_forgotten() {
    let mut view = MemoryView::default();
    view.add_manifest(&pod("prod", "api", "db")).unwrap();
    view.add_manifest(&pod("prod", "api", "db-v2")).unwrap();
    assert!(view.users(Referent::Secret, "prod", "db").is_empty());
    let mut finished = pod("prod", "api", "db-v2");
    finished["status"] = json!({"phase": "Failed"});
    view.add_manifest(&finished).unwrap();
    assert_eq!(view.count::<Parts<Pod>>(), 0);
    assert!(view.pods.is_empty(), "an emptied namespace leaves no map behind");
}

#[test]
fn replace_keeps_exactly_the_listed_objects() {
    let mut view = MemoryView::default();
    view.add_manifest(&pod("prod", "gone", "db")).unwrap();
    let kept: Parts<Pod> = serde_json::from_value(pod("prod", "kept", "db")).unwrap();
    view.replace::<Parts<Pod>>(vec![("prod".into(), "kept".into(), kept.summarize())]);
    let users: Vec<String> = view.users(Referent::Secret, "prod", "db").into_iter().map(|u| u.name).collect();
    assert_eq!(users, ["kept"]);
}

#[test]
fn declared_namespaces_and_namespace_manifests_say_the_same() {
    let mut view = MemoryView::default();
    view.set_namespace(
        "a",
        NamespaceInfo {
            labels: [("team".into(), "x".into())].into(),
            terminating: true,
            ..Default::default()
        },
    );
    view.add_manifest(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "b", "labels": {"team": "x"}, "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"finalizers": ["kubernetes"]}}))
        .unwrap();
    assert_eq!(view.namespace("a"), view.namespace("b"));
    assert_eq!(view.namespace("c"), None);
}

#[test]
fn routes_to_finds_ingress_and_http_route_hosts_in_every_namespace() {
    let mut view = MemoryView::default();
    view.add_manifest(&json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
    .unwrap();
    view.add_manifest(&json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "HTTPRoute",
        "metadata": {"name": "api", "namespace": "team-b"}, "spec": {"hostnames": ["SHOP.example.com"]}}))
        .unwrap();
    let routes = view.routes_to("shop.example.com.");
    let found: Vec<String> = routes.iter().map(|r| format!("{} {}", r.describe(), r.path)).collect();
    assert_eq!(found, ["ingress \"shop/web\" /", "httproute \"team-b/api\" /"]);
    assert!(view.routes_to("other.example.com").is_empty());
}

fn ingress(namespace: &str, name: &str, host: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
}

fn served_by(view: &MemoryView, host: &str) -> Vec<String> {
    view.routes_to(host).iter().map(|route| route.describe()).collect()
}

#[test]
fn the_host_index_follows_changes_deletions_and_relistings() {
    let mut view = MemoryView::default();
    view.add_manifest(&ingress("shop", "web", "a.example.com")).unwrap();
    view.add_manifest(&ingress("blog", "web", "a.example.com")).unwrap();
    assert_eq!(served_by(&view, "a.example.com"), ["ingress \"blog/web\"", "ingress \"shop/web\""]);
    // A changed host moves the route.
    view.add_manifest(&ingress("shop", "web", "b.example.com")).unwrap();
    assert_eq!(served_by(&view, "a.example.com"), ["ingress \"blog/web\""]);
    assert_eq!(served_by(&view, "b.example.com"), ["ingress \"shop/web\""]);
    let blog: Parts<Ingress> = serde_json::from_value(ingress("blog", "web", "a.example.com")).unwrap();
    view.delete(&blog);
    assert!(served_by(&view, "a.example.com").is_empty());
    let listed: Parts<Ingress> = serde_json::from_value(ingress("new", "web", "c.example.com")).unwrap();
    view.replace::<Parts<Ingress>>(vec![("new".into(), "web".into(), listed.summarize())]);
    assert!(served_by(&view, "b.example.com").is_empty(), "a relisting forgets what it does not list");
    assert_eq!(served_by(&view, "c.example.com"), ["ingress \"new/web\""]);
    assert_eq!(view.indexes.routes.len(), 1);
}

#[test]
fn serving_skips_the_asking_namespace_and_counts_the_rest() {
    let mut view = MemoryView::default();
    for namespace in ["a", "b", "c", "own"] {
        view.add_manifest(&ingress(namespace, "web", "shop.example.com")).unwrap();
    }
    let serving = view.serving(&HostPath::new("shop.example.com", None), "own", 2);
    let names: Vec<String> = serving.first.iter().map(Route::describe).collect();
    assert_eq!(
        (names, serving.total),
        (vec!["ingress \"a/web\"".to_owned(), "ingress \"b/web\"".to_owned()], 3)
    );
}

#[test]
fn long_names_are_kept_bounded_and_still_found() {
    let mut view = MemoryView::default();
    let (namespace, name) = ("n".repeat(400), "w".repeat(400));
    view.add_manifest(&ingress(&namespace, &name, "long.example.com")).unwrap();
    let routes = view.routes_to("long.example.com");
    assert!(routes[0].namespace.len() <= MAX_NAME && routes[0].name.len() <= MAX_NAME);
    let other = "w".repeat(399) + "x";
    view.add_manifest(&ingress(&namespace, &other, "long.example.com")).unwrap();
    assert_eq!(view.count::<Parts<Ingress>>(), 2, "names with one beginning stay apart");
    let gone: Parts<Ingress> =
        serde_json::from_value(ingress(&namespace, &name, "long.example.com")).unwrap();
    view.delete(&gone);
    assert_eq!(view.routes_to("long.example.com").len(), 1);
}

#[test]
fn an_object_known_in_part_is_listed_as_a_possible_user() {
    let mut view = MemoryView::default();
    let env: Vec<Value> = (0..bounds::MAX_REFERENCES + 1)
        .map(|i| json!({"name": format!("V{i}"), "valueFrom": {"secretKeyRef": {"name": format!("s-{i:04}"), "key": "k"}}}))
        .collect();
    view.add_manifest(
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "prod"},
        "spec": {"containers": [{"name": "a", "env": env}]}}),
    )
    .unwrap();
    view.add_manifest(&pod("prod", "small", "db")).unwrap();
    let users = |referent, name| -> Vec<String> {
        view.users(referent, "prod", name).iter().map(ToString::to_string).collect()
    };
    // The last Secret it names is past what the view keeps.
    assert_eq!(
        users(Referent::Secret, "s-0100"),
        ["pod prod/big (perhaps: only its first 100 references are known to Defender)"]
    );
    assert_eq!(
        users(Referent::Secret, "s-0000"),
        ["pod prod/big (env; only its first 100 references are known to Defender)"]
    );
    assert_eq!(users(Referent::Secret, "db").len(), 2);
    assert!(users(Referent::Service, "web").is_empty(), "pods do not name Services");
}

#[test]
fn objects_of_any_kind_are_kept_by_their_protection_labels() {
    let mut view = MemoryView::default();
    let labelled = |kind: &str, name: &str, value: &str| {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "shop",
               "labels": {"defender.io/delete-protection": value, "app": "web"}}})
    };
    assert!(view.add_manifest(&labelled("Secret", "db", "Always")).unwrap());
    assert!(view.add_manifest(&labelled("ConfigMap", "db", "Cascading")).unwrap());
    assert!(view.add_manifest(&pod("shop", "api", "db")).unwrap());
    let unlabelled =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain", "namespace": "shop"}});
    assert!(!view.add_manifest(&unlabelled).unwrap());
    let found = view.protected_objects("shop", &["defender.io/delete-protection"]).unwrap();
    let named: Vec<String> = found.objects.iter().map(|object| object.describe()).collect();
    // Cascading too: whether it holds the namespace is the policy's judgement.
    assert_eq!(named, ["configmap \"shop/db\"", "secret \"shop/db\""]);
    assert_eq!(found.objects[0].labels.len(), 1, "only protection labels are kept");
    assert!(
        view.protected_objects("shop", &["policy.kruise.io/delete-protection"]).unwrap().objects.is_empty()
    );
    assert!(view.protected_objects("blog", &["defender.io/delete-protection"]).unwrap().objects.is_empty());
    // Declared again without the label, it no longer counts.
    view.add_manifest(&labelled("Secret", "db", "Always")).unwrap();
    let unlabelled_db =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}});
    assert!(!view.add_manifest(&unlabelled_db).unwrap());
    let found = view.protected_objects("shop", &["defender.io/delete-protection"]).unwrap();
    assert_eq!(found.objects.iter().map(|object| object.kind.as_str()).collect::<Vec<_>>(), ["ConfigMap"]);
}

#[test]
fn protection_labelled_objects_keep_their_uid() {
    let mut view = MemoryView::default();
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate",
        "namespace": "shop", "uid": "job-uid", "labels": {"defender.io/delete-protection": "Cascading"}}});
    view.add_manifest(&job).unwrap();
    let found = view.protected_objects("shop", &["defender.io/delete-protection"]).unwrap();
    assert_eq!(found.objects[0].uid.as_deref(), Some("job-uid"));
}

#[test]
fn a_declared_idle_workload_is_known_not_to_ask_for_pods() {
    let mut view = MemoryView::default();
    let deployment = |name: &str, replicas: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": "shop"}, "spec": {"replicas": replicas}})
    };
    view.add_manifest(&deployment("web", 2)).unwrap();
    view.add_manifest(&deployment("idle", 0)).unwrap();
    assert_eq!(view.workload_active("Deployment", "shop", "web"), Some(true));
    assert_eq!(view.workload_active("Deployment", "shop", "idle"), Some(false));
    // Offline, one not declared may exist all the same.
    assert_eq!(view.workload_active("Deployment", "shop", "api"), None);
    assert_eq!(view.workload_active("StatefulSet", "shop", "idle"), None);
}

fn owned_pod(name: &str, owner: &str, phase: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "prod", "ownerReferences": [
               {"apiVersion": "batch/v1", "kind": "Job", "name": "job", "uid": owner, "blockOwnerDeletion": true},
               {"apiVersion": "v1", "kind": "ConfigMap", "name": "loose", "uid": "loose-uid"}]},
           "status": {"phase": phase}})
}

#[test]
fn the_dependents_index_follows_changes_deletions_and_relistings() {
    let mut view = MemoryView::default();
    view.add_manifest(&owned_pod("a", "job-uid", "Running")).unwrap();
    view.add_manifest(&owned_pod("b", "job-uid", "Pending")).unwrap();
    assert_eq!(view.dependents("job-uid"), 2);
    // Only owners named with blockOwnerDeletion are held back.
    assert_eq!(view.dependents("loose-uid"), 0);
    // A pod that finished no longer holds its owner.
    view.add_manifest(&owned_pod("b", "job-uid", "Succeeded")).unwrap();
    assert_eq!(view.dependents("job-uid"), 1);
    let pod: Parts<Pod> = serde_json::from_value(owned_pod("a", "job-uid", "Running")).unwrap();
    view.delete(&pod);
    assert_eq!(view.dependents("job-uid"), 0);
    assert!(view.indexes.dependents.is_empty(), "counts that reach zero are dropped");
    let listed = vec![("prod".to_owned(), "c".to_owned(), pod.summarize())];
    view.replace::<Parts<Pod>>(listed.clone());
    view.replace::<Parts<Pod>>(listed);
    assert_eq!(view.dependents("job-uid"), 1, "a relisting replaces, it does not add");
}

#[test]
fn custom_resources_are_counted_by_group_and_kind() {
    let mut view = MemoryView::default();
    for (api_version, namespace, name) in
        [("cert-manager.io/v1", "a", "x"), ("cert-manager.io/v1", "b", "y"), ("example.com/v1", "a", "z")]
    {
        let manifest = json!({"apiVersion": api_version, "kind": "Certificate",
                              "metadata": {"name": name, "namespace": namespace}});
        assert!(view.add_manifest(&manifest).unwrap());
    }
    let of = CustomResourceType {
        definition: "certificates.cert-manager.io".into(),
        group: "cert-manager.io".into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
        version: "v1".into(),
        namespaced: true,
    };
    assert_eq!(view.custom_resources(&of), Ok(ObjectCount { objects: 2, namespaces: 2, at_least: false }));
    let unnamed = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {}});
    assert!(view.add_manifest(&unnamed).is_err());
}
