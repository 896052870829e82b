use serde_json::{Value, json};

use super::*;
use crate::config;
use crate::view::MemoryView;

fn engine() -> Engine {
    Engine::new(config::load_embedded().expect("the embedded policies load"))
}

fn ingress(namespace: &str, name: &str, host: Option<&str>) -> Value {
    let mut rule = json!({"http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}});
    if let Some(host) = host {
        rule["host"] = json!(host);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}")},
           "spec": {"rules": [rule]}})
}

fn namespace(name: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": labels, "annotations": annotations}})
}

fn target(group: &str, resource: &str) -> Target {
    Target { group: group.to_owned(), resource: resource.to_owned(), skip_own_namespace: false }
}

/// Lists `objects` into the view, then judges each, as an audit of a cluster holding them would.
fn audit_of(objects: &[Value]) -> Audit {
    let engine = engine();
    let mut view = MemoryView::default();
    for object in objects {
        view.add_manifest(object).unwrap();
    }
    let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
    let mut auditor = Auditor::new(&engine, &view, now, Some("defender-system"));
    for object in objects {
        let (api_version, kind) = (object["apiVersion"].as_str().unwrap(), object["kind"].as_str().unwrap());
        let target = if kind == "Namespace" {
            target("", "namespaces")
        } else {
            target("networking.k8s.io", "ingresses")
        };
        let mut listed = object.clone();
        // Lists leave out each item's apiVersion and kind.
        listed.as_object_mut().unwrap().remove("kind");
        auditor.judge(&target, api_version, kind, listed);
    }
    auditor.finish()
}

fn outcomes(audit: &Audit, policy: &str) -> Vec<(String, PolicyResult)> {
    audit
        .results
        .iter()
        .filter(|result| result.policy == policy)
        .map(|result| (result.object.clone(), result.result))
        .collect()
}

#[test]
fn the_plan_audits_the_policies_that_judge_creates_and_says_why_not_the_others() {
    let plan = plan(engine().policies());
    let resources: Vec<String> = plan.targets.iter().map(Target::describe).collect();
    assert_eq!(
        resources,
        [
            "namespaces",
            "networking.k8s.io/ingresses",
            "gateway.networking.k8s.io/httproutes",
            "gateway.networking.k8s.io/grpcroutes",
            "gateway.networking.k8s.io/tlsroutes"
        ]
    );
    assert!(
        plan.targets.iter().all(|target| !target.skip_own_namespace),
        "both webhooks send every namespace"
    );
    let audited: Vec<&str> = plan.audited.iter().map(|(policy, _)| policy.as_str()).collect();
    assert_eq!(audited, ["core-namespaces", "ingress-hosts", "duplicate-hosts"]);
    let why = |policy: &str| plan.not_audited.iter().find(|n| n.policy == policy).map(|n| n.why).unwrap();
    assert!(why("namespace-deletion").contains("moment of the change"));
    for deletions_only in ["cascading-protection", "delete-protection", "deletion-guard", "in-use-guard"] {
        assert!(why(deletions_only).contains("deletions and updates only"), "{deletions_only}");
    }
}

#[test]
fn wildcard_and_hostless_ingresses_fail_and_good_ones_pass() {
    let audit = audit_of(&[
        ingress("shop", "catch-all", Some("*")),
        ingress("shop", "hostless", None),
        ingress("shop", "web", Some("shop.example.com")),
    ]);
    assert_eq!(
        outcomes(&audit, "ingress-hosts"),
        [
            ("ingress \"shop/catch-all\"".to_owned(), PolicyResult::Fail),
            ("ingress \"shop/hostless\"".to_owned(), PolicyResult::Fail),
            ("ingress \"shop/web\"".to_owned(), PolicyResult::Pass),
        ]
    );
    let failed = audit.violations().next().unwrap();
    assert!(failed.message.as_deref().unwrap().contains("matches every host"), "{failed:?}");
    assert_eq!(failed.resource.api_version, "networking.k8s.io/v1");
    assert_eq!(failed.resource.kind, "Ingress");
    assert_eq!(failed.resource.namespace.as_deref(), Some("shop"));
    assert_eq!(failed.resource.uid.as_deref(), Some("uid-shop-catch-all"));
    let kinds: Vec<(&str, usize)> = audit.kinds.iter().map(|k| (k.resource.as_str(), k.objects)).collect();
    assert!(kinds.contains(&("networking.k8s.io/ingresses", 3)), "{kinds:?}");
}

#[test]
fn two_namespaces_serving_one_host_both_get_the_duplicate_hosts_warning() {
    let audit = audit_of(&[
        ingress("team-a", "web", Some("shop.example.com")),
        ingress("team-b", "web", Some("shop.example.com")),
        ingress("team-b", "api", Some("api.example.com")),
    ]);
    assert_eq!(
        outcomes(&audit, "duplicate-hosts"),
        [
            ("ingress \"team-a/web\"".to_owned(), PolicyResult::Warn),
            ("ingress \"team-b/web\"".to_owned(), PolicyResult::Warn),
            ("ingress \"team-b/api\"".to_owned(), PolicyResult::Pass),
        ]
    );
    let summary = audit.policies().into_iter().find(|s| s.policy == "duplicate-hosts").unwrap();
    assert_eq!((summary.judged, summary.warn, summary.pass, summary.violations()), (3, 2, 1, 2));
}

#[test]
fn a_core_namespace_carrying_an_exemption_label_fails_and_an_old_confirmation_is_no_violation() {
    let audit = audit_of(&[
        namespace("kube-system", json!({"defender.io/deletion-allowed": "true"}), json!({})),
        namespace("payments", json!({"defender.io/core": "true"}), json!({})),
        // Confirmed for deletion long ago: namespace-deletion is not audited.
        namespace("old", json!({}), json!({"defender.io/delete-after": "2020-01-01T00:00:00Z"})),
    ]);
    assert_eq!(
        outcomes(&audit, "core-namespaces"),
        [
            ("namespace \"kube-system\"".to_owned(), PolicyResult::Fail),
            ("namespace \"payments\"".to_owned(), PolicyResult::Pass),
            ("namespace \"old\"".to_owned(), PolicyResult::Pass),
        ]
    );
    assert!(audit.results.iter().all(|result| result.policy != "namespace-deletion"));
    let namespace = &audit.violations().next().unwrap().resource;
    assert_eq!(namespace.namespace, None, "a namespace is cluster-scoped");
}

#[test]
fn objects_on_their_way_out_and_where_the_webhook_never_looks_are_left_out_and_counted() {
    let engine = engine();
    let mut view = MemoryView::default();
    let mut terminating = namespace("leaving", json!({}), json!({}));
    terminating["metadata"]["deletionTimestamp"] = json!("2026-06-01T11:00:00Z");
    view.add_manifest(&terminating).unwrap();
    let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
    let mut auditor = Auditor::new(&engine, &view, now, Some("defender-system"));
    let ingresses = target("networking.k8s.io", "ingresses");
    auditor.judge(&ingresses, "networking.k8s.io/v1", "Ingress", ingress("leaving", "web", Some("*")));
    let mut deleted = ingress("shop", "old", Some("*"));
    deleted["metadata"]["deletionTimestamp"] = json!("2026-06-01T11:59:00Z");
    auditor.judge(&ingresses, "networking.k8s.io/v1", "Ingress", deleted);
    // A kind whose webhook leaves Defender's namespace out.
    let guarded = Target { skip_own_namespace: true, ..ingresses.clone() };
    auditor.judge(&guarded, "networking.k8s.io/v1", "Ingress", ingress("defender-system", "x", Some("*")));
    // The same object where the webhook does look.
    auditor.judge(&ingresses, "networking.k8s.io/v1", "Ingress", ingress("defender-system", "y", Some("*")));
    let audit = auditor.finish();
    assert_eq!(
        audit.left_out,
        LeftOut { being_deleted: 1, in_terminating_namespaces: 1, in_own_namespace: 1 }
    );
    let judged: Vec<&str> = audit.results.iter().map(|result| result.object.as_str()).collect();
    assert!(judged.iter().all(|object| *object == "ingress \"defender-system/y\""), "{judged:?}");
    let text = report::text(&audit);
    assert!(text.contains("Left out: 1 object being deleted, 1 object in namespaces being deleted, 1 object in Defender's own namespace"), "{text}");
}

#[test]
fn an_object_that_cannot_be_judged_is_reported_with_why() {
    let engine = engine();
    let view = MemoryView::default();
    let mut auditor = Auditor::new(&engine, &view, Timestamp::UNIX_EPOCH, None);
    let broken = json!({"metadata": {"name": "x", "namespace": "shop"}, "spec": "not an object"});
    auditor.judge(&target("networking.k8s.io", "ingresses"), "networking.k8s.io/v1", "Ingress", broken);
    let audit = auditor.finish();
    // Either judged (the policies read what they can) or named as unjudgeable: never lost silently.
    assert!(!audit.results.is_empty() || audit.unjudgeable.iter().any(|line| line.contains("shop/x")));
}

#[test]
fn the_text_report_names_each_violation_under_its_policy_and_what_was_not_audited() {
    let audit =
        audit_of(&[ingress("shop", "catch-all", Some("*")), ingress("shop", "web", Some("a.example.com"))]);
    let text = report::text(&audit);
    assert!(
        text.starts_with(
            "Judged 2 existing objects as if created now: 0 namespaces, 2 networking.k8s.io/ingresses"
        ),
        "{text}"
    );
    assert!(text.contains("\ningress-hosts (deny): 1 of 2 objects violate it\n  fail  ingress \"shop/catch-all\"\n        defender/ingress-hosts: "), "{text}");
    assert!(text.contains("\ncore-namespaces (deny): 0 of 0 objects violate it\n"), "{text}");
    assert!(
        text.contains("  namespace-deletion: what it judges on a create depends on the moment"),
        "{text}"
    );
    assert!(text.ends_with("\n1 fail, 0 warn\n"), "{text}");
    assert!(!text.contains("shop/web"), "passes are counted, not listed: {text}");
}

#[test]
fn the_json_report_holds_each_policys_tally_and_violations() {
    let audit =
        audit_of(&[ingress("shop", "catch-all", Some("*")), ingress("shop", "web", Some("a.example.com"))]);
    let report: Value = serde_json::from_str(&report::json(&audit)).unwrap();
    assert_eq!(report["time"], "2026-06-01T12:00:00Z");
    let hosts =
        report["policies"].as_array().unwrap().iter().find(|p| p["policy"] == "ingress-hosts").unwrap();
    assert_eq!(
        (hosts["action"].as_str(), hosts["judged"].as_u64(), hosts["fail"].as_u64()),
        (Some("deny"), Some(2), Some(1))
    );
    assert_eq!(hosts["pass"], 1);
    let violations = hosts["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0]["result"], "fail");
    assert_eq!(violations[0]["resource"]["name"], "catch-all");
    assert!(violations[0]["message"].as_str().unwrap().contains("matches every host"));
    assert_eq!(report["leftOut"]["beingDeleted"], 0);
    assert!(report["notAudited"].as_array().unwrap().iter().any(|n| n["policy"] == "deletion-guard"));
}

#[test]
fn policy_reports_are_per_namespace_with_a_cluster_report_for_namespaces() {
    let audit = audit_of(&[
        namespace("kube-system", json!({"defender.io/deletion-allowed": "true"}), json!({})),
        ingress("shop", "catch-all", Some("*")),
        ingress("blog", "web", Some("blog.example.com")),
    ]);
    let reports = policy_report::reports(&audit, policy_report::MAX_RESULTS);
    let scopes: Vec<(&str, Option<&str>)> = reports
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r.pointer("/metadata/namespace").and_then(Value::as_str)))
        .collect();
    assert_eq!(
        scopes,
        [("ClusterPolicyReport", None), ("PolicyReport", Some("blog")), ("PolicyReport", Some("shop"))]
    );
    let shop = &reports[2];
    assert_eq!(shop["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(shop["metadata"]["name"], "defender-audit");
    assert_eq!(shop["metadata"]["labels"]["app.kubernetes.io/managed-by"], "defender");
    assert_eq!(shop["metadata"]["annotations"]["defender.io/results-left-out"], "0");
    assert_eq!(shop["summary"], json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}));
    let first = &shop["results"][0];
    assert_eq!(
        (first["policy"].as_str(), first["rule"].as_str()),
        (Some("ingress-hosts"), Some("ingress-hosts"))
    );
    assert_eq!((first["result"].as_str(), first["source"].as_str()), (Some("fail"), Some("defender")));
    assert_eq!(first["severity"], "high");
    assert_eq!(first["timestamp"], json!({"seconds": 1780315200, "nanos": 0}));
    assert_eq!(
        first["resources"][0],
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "namespace": "shop", "name": "catch-all", "uid": "uid-shop-catch-all"})
    );
    assert!(first["message"].as_str().unwrap().contains("matches every host"));
    assert!(shop["results"][1].get("message").is_none(), "a pass has no message");
    let cluster = &reports[0];
    assert_eq!(cluster["results"][0]["resources"][0]["kind"], "Namespace");
    assert!(cluster["results"][0]["resources"][0].get("namespace").is_none());
}

#[test]
fn a_report_is_bounded_by_count_violations_first_and_says_how_many_were_left_out() {
    let mut objects = Vec::new();
    for i in 0..4 {
        objects.push(ingress("shop", &format!("good-{i}"), Some(&format!("h{i}.example.com"))));
    }
    objects.push(ingress("shop", "catch-all", Some("*")));
    objects.push(ingress("shop", "hostless", None));
    let audit = audit_of(&objects);
    let reports = policy_report::reports(&audit, 3);
    let shop = &reports[0];
    let results = shop["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let kept: Vec<&str> = results.iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(kept, ["fail", "fail", "pass"], "violations are kept before passes");
    // Two policies judge each of the 6 Ingresses: 12 results, 3 kept.
    assert_eq!(shop["summary"]["fail"], 2);
    assert_eq!(shop["summary"]["pass"], 10);
    assert_eq!(shop["metadata"]["annotations"]["defender.io/results-left-out"], "9");
}

#[test]
fn a_report_is_bounded_in_bytes_whatever_the_messages_hold() {
    let mut audit = audit_of(&[ingress("shop", "catch-all", Some("*"))]);
    let template = audit.results.iter().find(|r| r.result == PolicyResult::Fail).unwrap().clone();
    audit.results = (0..8)
        .map(|i| AuditResult {
            message: Some("x".repeat(300_000)),
            resource: ObjectRef { name: format!("big-{i}"), ..template.resource.clone() },
            ..template.clone()
        })
        .collect();
    let reports = policy_report::reports(&audit, policy_report::MAX_RESULTS);
    let report = &reports[0];
    assert_eq!(report["results"].as_array().unwrap().len(), 3);
    assert!(report.to_string().len() < policy_report::MAX_RESULT_BYTES + 4096);
    assert_eq!(report["metadata"]["annotations"]["defender.io/results-left-out"], "5");
    assert_eq!(report["summary"]["fail"], 8);
}
