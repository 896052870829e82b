use std::sync::Arc;

use serde_json::Value;

use super::*;
use crate::budget::Spent;
use crate::config::{self, PolicySet};
use crate::request::{Operation, User};
use crate::synthetic::Synthetic;
use crate::testing::{Fixture, namespace_with_annotations, object};
use crate::view::NamespaceInfo;

fn engine() -> Engine {
    Engine::new(config::load_embedded().unwrap())
}

fn engine_with(yaml: &str) -> Engine {
    let mut set: PolicySet = config::from_files(&[("t.yaml".into(), yaml.into())], "t.yaml").unwrap();
    set.settings = Settings::default();
    Engine::new(set)
}

fn delete_as(object: Value, username: &str, groups: &[&str]) -> Request {
    let mut synthetic = Synthetic::new(Operation::Delete);
    synthetic.old_object = Some(object);
    synthetic.user =
        User { username: username.into(), groups: groups.iter().map(|g| g.to_string()).collect() };
    synthetic.build().unwrap()
}

fn confirmed_namespace(name: &str) -> Value {
    namespace_with_annotations(name, &[("defender.io/delete-after", "2025-12-31T00:00:00Z")])
}

fn pod(name: &str) -> Value {
    object("v1", "Pod", "prod", name, &[])
}

#[test]
fn denial_message_names_policy_object_reason_and_way_forward() {
    let fixture = Fixture::new();
    let decision =
        engine().decide(&fixture.delete(crate::testing::namespace("kube-system")), &fixture.context());
    assert!(!decision.allowed());
    assert_eq!(
        decision.denial_message().unwrap(),
        "defender/core-namespaces: namespace \"kube-system\" is a core namespace and cannot be deleted. \
         If it truly must happen, a cluster admin in group \"defender:break-glass\" can act as break-glass"
    );
}

#[test]
fn absolute_denials_hide_procedural_ones() {
    let fixture = Fixture::new();
    let decision = engine().decide(&fixture.delete(crate::testing::namespace("default")), &fixture.context());
    assert_eq!(decision.fired_policies(), ["core-namespaces", "namespace-deletion"]);
    let message = decision.denial_message().unwrap();
    assert!(!message.contains("kubectl annotate"), "{message}");
}

#[test]
fn control_plane_identities_are_never_blocked() {
    let fixture = Fixture::new();
    let engine = engine();
    for (user, groups, skip) in [
        ("system:serviceaccount:kube-system:namespace-controller", vec![], Skip::ExemptUser),
        ("system:serviceaccount:kube-system:generic-garbage-collector", vec![], Skip::ExemptUser),
        ("system:kube-controller-manager", vec![], Skip::ExemptUser),
        ("system:node:worker-1", vec!["system:nodes"], Skip::ExemptGroup),
    ] {
        let decision = engine
            .decide(&delete_as(object("v1", "Secret", "prod", "db", &[]), user, &groups), &fixture.context());
        assert!(decision.allowed(), "{user}");
        assert_eq!(decision.skipped, Some(skip), "{user}");
    }
    let other_sa = delete_as(object("v1", "Secret", "prod", "db", &[]), "system:serviceaccount:prod:ci", &[]);
    assert!(!engine.decide(&other_sa, &fixture.context()).allowed());
}

#[test]
fn objects_being_deleted_and_terminating_namespaces_pass() {
    let engine = engine();
    let fixture =
        Fixture::new().with_namespace("gone", NamespaceInfo { terminating: true, ..Default::default() });
    let mut leaving = object("v1", "Secret", "prod", "db", &[]);
    leaving["metadata"]["deletionTimestamp"] = "2025-12-31T23:59:00Z".into();
    assert_eq!(engine.decide(&fixture.delete(leaving), &fixture.context()).skipped, Some(Skip::BeingDeleted));
    let inside = fixture.delete(object("v1", "ConfigMap", "gone", "settings", &[]));
    assert_eq!(engine.decide(&inside, &fixture.context()).skipped, Some(Skip::TerminatingNamespace));
}

#[test]
fn break_glass_allows_with_a_warning_listing_what_it_overrode() {
    let fixture = Fixture::new();
    let request =
        delete_as(crate::testing::namespace("kube-public"), "oncall@example.com", &["defender:break-glass"]);
    let decision = engine().decide(&request, &fixture.context());
    assert!(decision.allowed() && decision.break_glass);
    let warnings = decision.warnings();
    assert!(warnings[0].contains("break-glass used"));
    assert!(warnings.iter().any(|w| w.contains("defender/core-namespaces")));
    assert_eq!(decision.outcome(), Outcome::Warn);
}

#[test]
fn namespace_budget_is_spent_only_when_allowed() {
    let fixture = Fixture::new();
    let engine = engine();
    for name in ["a", "b", "c"] {
        assert!(engine.decide(&fixture.delete(confirmed_namespace(name)), &fixture.context()).allowed());
    }
    let fourth = engine.decide(&fixture.delete(confirmed_namespace("d")), &fixture.context());
    let message = fourth.denial_message().unwrap();
    assert!(message.contains("budget (3 per 10m) is used up"), "{message}");
    assert!(message.contains("2026-01-01T00:10:00Z (in 10m)"), "{message}");
}

#[test]
fn denied_requests_do_not_spend_budget() {
    let fixture = Fixture::new();
    let engine = engine();
    for _ in 0..5 {
        // Unconfirmed: denied by the confirmation step, so nothing is spent.
        assert!(
            !engine.decide(&fixture.delete(crate::testing::namespace("x")), &fixture.context()).allowed()
        );
    }
    for name in ["a", "b", "c"] {
        assert!(
            engine.decide(&fixture.delete(confirmed_namespace(name)), &fixture.context()).allowed(),
            "{name}"
        );
    }
}

#[test]
fn dry_run_requests_never_spend_but_still_tell_the_truth() {
    let fixture = Fixture::new();
    let engine = engine();
    let dry = |name: &str| {
        let mut synthetic = fixture.synthetic_delete(confirmed_namespace(name));
        synthetic.dry_run = true;
        synthetic.build().unwrap()
    };
    for _ in 0..10 {
        assert!(engine.decide(&dry("a"), &fixture.context()).allowed());
    }
    for name in ["a", "b", "c"] {
        assert!(engine.decide(&fixture.delete(confirmed_namespace(name)), &fixture.context()).allowed());
    }
    assert!(!engine.decide(&dry("d"), &fixture.context()).allowed(), "an over-budget dry run is denied too");
}

#[test]
fn pod_bursts_are_denied_after_the_limit_per_user_and_namespace() {
    let fixture = Fixture::new();
    let engine = engine();
    let verdicts: Vec<bool> = (0..8)
        .map(|i| engine.decide(&fixture.delete(pod(&format!("web-{i}"))), &fixture.context()).allowed())
        .collect();
    assert_eq!(verdicts, [true, true, true, true, true, false, false, false]);
    let other_user = delete_as(pod("web-9"), "bob@example.com", &[]);
    assert!(engine.decide(&other_user, &fixture.context()).allowed());
}

#[test]
fn warn_action_allows_with_a_warning() {
    let engine = engine_with(
        "apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata: {name: hosts}\nspec: {action: warn}\n",
    );
    let fixture = Fixture::new();
    let request =
        fixture.create(crate::testing::ingress("web", serde_json::json!({"rules": [{"host": "*"}]})));
    let decision = engine.decide(&request, &fixture.context());
    assert!(decision.allowed());
    assert_eq!(decision.outcome(), Outcome::Warn);
    assert!(decision.warnings()[0].starts_with("defender/hosts: ingress \"prod/web\""));
}

#[test]
fn dryrun_action_allows_silently_but_records() {
    let engine = engine_with(
        "apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata: {name: hosts}\nspec: {action: dryrun}\n",
    );
    let fixture = Fixture::new();
    let request =
        fixture.create(crate::testing::ingress("web", serde_json::json!({"rules": [{"host": "*"}]})));
    let decision = engine.decide(&request, &fixture.context());
    assert!(decision.allowed() && decision.warnings().is_empty());
    assert_eq!(decision.outcome(), Outcome::Allow);
    assert_eq!(decision.fired_policies(), ["hosts"]);
}

#[test]
fn a_warn_mode_budget_warns_when_exhausted_and_never_blocks() {
    let engine = engine_with(
        "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata: {name: nsd}\n\
         spec: {action: warn, budget: {deletions: 1, window: 1m}, confirmation: {enabled: false}}\n",
    );
    let fixture = Fixture::new();
    assert_eq!(
        engine.decide(&fixture.delete(crate::testing::namespace("a")), &fixture.context()).outcome(),
        Outcome::Allow
    );
    let second = engine.decide(&fixture.delete(crate::testing::namespace("b")), &fixture.context());
    assert!(second.allowed());
    assert!(second.warnings()[0].contains("used up"));
}

#[test]
fn a_failed_charge_refunds_the_ones_spent_before_it() {
    // Two guards on pods: the second's budget of 1 runs out first.
    let engine = engine_with(
        "apiVersion: defender.io/v1alpha1\nkind: DeletionGuard\nmetadata: {name: wide}\n\
         spec: {resources: [{kind: Pod, mode: bulk, burst: {deletes: 2, window: 1m}}]}\n---\n\
         apiVersion: defender.io/v1alpha1\nkind: DeletionGuard\nmetadata: {name: narrow}\n\
         spec: {resources: [{kind: Pod, mode: bulk, burst: {deletes: 1, window: 1m}}]}\n",
    );
    let fixture = Fixture::new();
    assert!(engine.decide(&fixture.delete(pod("a")), &fixture.context()).allowed());
    assert!(!engine.decide(&fixture.delete(pod("b")), &fixture.context()).allowed());
    let wide = engine.policies()[0].budgets().remove(0).budget;
    let key = "developer@example.com\u{0}prod\u{0}Pod";
    assert_eq!(wide.remaining(key, fixture.now), 1, "the denied delete's charge on `wide` was refunded");
    let _unused: Option<Arc<NamespaceInfo>> = None;
}

/// A shared budget whose record cannot be reached, counting what it was asked.
#[derive(Debug, Default)]
struct UnreachableLedger {
    checks: std::sync::atomic::AtomicUsize,
    spends: std::sync::atomic::AtomicUsize,
}

impl crate::budget::SharedLedger for UnreachableLedger {
    fn check(&self, _: crate::budget::Quota, _: &str, _: jiff::Timestamp) -> Result<Spent, Refusal> {
        self.checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(Refusal::Unavailable(Unavailable {
            record: "Lease defender-system/budget".into(),
            error: "timeout".into(),
        }))
    }
    fn try_spend<'a>(
        &'a self,
        _: crate::budget::Quota,
        _: &'a str,
        _: jiff::Timestamp,
    ) -> crate::budget::SpendFuture<'a> {
        self.spends.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(Err(Refusal::Unavailable(Unavailable {
            record: "Lease defender-system/budget".into(),
            error: "timeout".into(),
        }))))
    }
    fn refund<'a>(&'a self, _: &'a str, _: jiff::Timestamp) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
    fn remaining(&self, _: crate::budget::Quota, _: jiff::Timestamp) -> u32 {
        0
    }
    fn record(&self) -> String {
        "Lease defender-system/budget".into()
    }
}

#[test]
fn an_unreachable_shared_budget_fails_closed_and_dry_runs_only_ask() {
    let engine = engine_with(
        "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata: {name: nsd}\n\
         spec: {budget: {deletions: 3, window: 10m}, confirmation: {enabled: false}}\n",
    );
    let ledger = Arc::new(UnreachableLedger::default());
    engine.policies()[0].budgets()[0].budget.share_through(ledger.clone());
    let fixture = Fixture::new();

    let decision = engine.decide(&fixture.delete(crate::testing::namespace("team-a")), &fixture.context());
    assert_eq!(
        decision.denial_message().unwrap(),
        "defender/nsd: the budget this deletion must fit in is shared by every Defender replica, and Lease \
         defender-system/budget cannot be reached (timeout). Nothing was deleted. Try again once the API server \
         answers; Defender refuses budgeted deletions while it cannot count them"
    );
    let mut synthetic = fixture.synthetic_delete(crate::testing::namespace("team-b"));
    synthetic.dry_run = true;
    let dry_run = synthetic.build().unwrap();
    assert!(!engine.decide(&dry_run, &fixture.context()).allowed());
    assert_eq!(ledger.spends.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(ledger.checks.load(std::sync::atomic::Ordering::SeqCst), 1, "a dry run only checks");
}

fn with_owner(mut object: Value, uid: &str) -> Value {
    object["metadata"]["ownerReferences"] =
        serde_json::json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": uid}]);
    object
}

fn being_deleted(mut object: Value) -> Value {
    object["metadata"]["deletionTimestamp"] = "2025-12-31T23:59:00Z".into();
    object
}

#[test]
fn a_dangling_owner_reference_is_judged_as_the_deletion_it_causes() {
    let fixture = Fixture::new();
    let engine = engine();
    let core = crate::testing::namespace_with_labels("payments", &[("defender.io/core", "true")]);
    let decision = engine.decide(&fixture.update(core.clone(), with_owner(core, "1")), &fixture.context());
    let message = decision.denial_message().unwrap();
    assert!(
        message.contains(
            "adding an ownerReference to namespace \"payments\" lets the garbage collector delete it"
        ),
        "{message}"
    );
    assert!(message.contains("is marked core"), "{message}");

    let secret = object("v1", "Secret", "prod", "db", &[]);
    let decision =
        engine.decide(&fixture.update(secret.clone(), with_owner(secret, "1")), &fixture.context());
    let message = decision.denial_message().unwrap();
    assert!(message.contains("secret \"prod/db\" is protected against deletion"), "{message}");

    let plain = crate::testing::namespace("scratch");
    let decision = engine.decide(&fixture.update(plain.clone(), with_owner(plain, "1")), &fixture.context());
    assert!(decision.denial_message().unwrap().contains("has not been confirmed for deletion"));
}

#[test]
fn owner_references_that_change_nothing_or_are_removed_are_not_deletions() {
    let fixture = Fixture::new();
    let engine = engine();
    let owned = with_owner(object("v1", "Secret", "prod", "db", &[]), "1");
    let mut relabelled = owned.clone();
    relabelled["metadata"]["labels"] = serde_json::json!({"team": "shop"});
    assert!(engine.decide(&fixture.update(owned.clone(), relabelled), &fixture.context()).allowed());
    let orphaned = object("v1", "Secret", "prod", "db", &[]);
    assert!(engine.decide(&fixture.update(owned.clone(), orphaned), &fixture.context()).allowed());
    let moved = with_owner(object("v1", "Secret", "prod", "db", &[]), "2");
    assert!(!engine.decide(&fixture.update(owned, moved), &fixture.context()).allowed());
    let exempt = object("v1", "Secret", "prod", "db", &[("defender.io/deletion-allowed", "true")]);
    let owned_exempt = with_owner(exempt.clone(), "1");
    assert!(engine.decide(&fixture.update(exempt, owned_exempt), &fixture.context()).allowed());
}

#[test]
fn an_owner_reference_added_through_a_subresource_is_judged_too() {
    let fixture = Fixture::new();
    let service = object("v1", "Service", "prod", "web", &[]);
    let request = fixture.update(service.clone(), with_owner(service, "1")).with_sub_resource("status");
    assert!(!engine().decide(&request, &fixture.context()).allowed());
}

#[test]
fn objects_being_deleted_are_judged_on_update_unless_only_finalizers_go() {
    let fixture = Fixture::new();
    let engine = engine();
    let mut held = being_deleted(crate::testing::ingress(
        "web",
        serde_json::json!({"rules": [{"host": "a.example.com"}]}),
    ));
    held["metadata"]["finalizers"] = serde_json::json!(["example.com/hold"]);
    let mut wildcard = held.clone();
    wildcard["spec"]["rules"][0]["host"] = "*.example.com".into();
    let decision = engine.decide(&fixture.update(held.clone(), wildcard), &fixture.context());
    assert!(!decision.allowed(), "{decision:?}");
    let mut released = held.clone();
    released["metadata"]["finalizers"] = serde_json::json!([]);
    let decision = engine.decide(&fixture.update(held, released), &fixture.context());
    assert_eq!(decision.skipped, Some(Skip::FinishingTeardown));
}

#[test]
fn updates_in_a_terminating_namespace_are_judged() {
    let fixture =
        Fixture::new().with_namespace("prod", NamespaceInfo { terminating: true, ..Default::default() });
    let ingress = crate::testing::ingress("web", serde_json::json!({"rules": [{"host": "a.example.com"}]}));
    let mut hostless = ingress.clone();
    hostless["spec"]["rules"][0] = serde_json::json!({});
    assert!(!engine().decide(&fixture.update(ingress, hostless), &fixture.context()).allowed());
}

#[test]
fn control_plane_identities_cannot_delete_a_live_core_namespace() {
    let fixture = Fixture::new();
    let engine = engine();
    let gc = "system:serviceaccount:kube-system:generic-garbage-collector";
    let decision =
        engine.decide(&delete_as(crate::testing::namespace("kube-node-lease"), gc, &[]), &fixture.context());
    assert!(!decision.allowed());
    assert_eq!(decision.fired_policies(), ["core-namespaces"]);
    let terminating = being_deleted(crate::testing::namespace("kube-node-lease"));
    let controller = "system:serviceaccount:kube-system:namespace-controller";
    assert!(engine.decide(&delete_as(terminating, controller, &[]), &fixture.context()).allowed());
    let addon = "system:serviceaccount:kube-system:coredns";
    assert!(
        !engine
            .decide(&delete_as(object("v1", "Secret", "prod", "db", &[]), addon, &[]), &fixture.context())
            .allowed()
    );
}

/// A view that lists a live cluster's namespaces: what it does not hold does not exist.
struct ListedNamespaces(crate::view::MemoryView);

impl crate::view::ClusterView for ListedNamespaces {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.0.namespace(name)
    }
    fn contents(&self, namespace: &str) -> crate::view::Contents {
        self.0.contents(namespace)
    }
    fn users(
        &self,
        referent: crate::view::Referent,
        namespace: &str,
        name: &str,
    ) -> Vec<crate::view::Referrer> {
        self.0.users(referent, namespace, name)
    }
    fn routes_to(&self, host: &str) -> Vec<crate::view::Route> {
        self.0.routes_to(host)
    }
    fn lists_every_namespace(&self) -> bool {
        true
    }
    fn live_pod(&self, namespace: &str, name: &str) -> Option<bool> {
        Some(self.0.has_live_pod(namespace, name))
    }
    fn protected_objects(&self, namespace: &str, keys: &[&str]) -> crate::protected_objects::Lookup {
        self.0.protected_objects(namespace, keys)
    }
}

#[test]
fn namespace_deletions_the_view_does_not_corroborate_spend_no_budget() {
    let fixture = Fixture::new();
    let engine = engine();
    let mut view = crate::view::MemoryView::default();
    let confirmed = |uid: &str| {
        let mut namespace = confirmed_namespace("real");
        namespace["metadata"]["uid"] = uid.into();
        namespace
    };
    view.add_manifest(&confirmed("uid-1")).unwrap();
    let view = ListedNamespaces(view);
    let context = Context { view: &view, ..fixture.context() };
    // Forged reviews: a namespace that does not exist, another uid. Judged
    // (and allowed), but the budget of 3 stays whole.
    for _ in 0..3 {
        assert!(engine.decide(&fixture.delete(confirmed_namespace("ghost")), &context).allowed());
        assert!(engine.decide(&fixture.delete(confirmed("uid-2")), &context).allowed());
    }
    let budget = &engine.policies().iter().find(|p| p.name() == "namespace-deletion").unwrap().budgets()[0];
    assert_eq!(budget.budget.remaining("cluster", fixture.now), 3);
    assert!(engine.decide(&fixture.delete(confirmed("uid-1")), &context).allowed());
    assert_eq!(budget.budget.remaining("cluster", fixture.now), 2);
}

#[test]
fn a_core_namespace_carrying_the_exemption_label_is_not_disarmed() {
    let exempt = [("defender.io/deletion-allowed".to_owned(), "true".to_owned())];
    let fixture = Fixture::new()
        .with_namespace("kube-system", NamespaceInfo { labels: exempt.clone().into(), ..Default::default() })
        .with_namespace("sandbox", NamespaceInfo { labels: exempt.into(), ..Default::default() });
    let engine = engine();
    let context = engine.context(fixture.now, &fixture.view);
    let in_core = fixture.delete(object("v1", "Secret", "kube-system", "bootstrap", &[]));
    assert!(!engine.decide(&in_core, &context).allowed());
    let in_sandbox = fixture.delete(object("v1", "Secret", "sandbox", "scratch", &[]));
    assert!(engine.decide(&in_sandbox, &context).allowed());
}

#[test]
fn pointing_an_owner_reference_at_another_api_version_is_a_deletion_too() {
    let fixture = Fixture::new();
    let owned = with_owner(object("v1", "Secret", "prod", "db", &[]), "1");
    let mut repointed = owned.clone();
    repointed["metadata"]["ownerReferences"][0]["apiVersion"] = "evil.example.com/v1".into();
    assert!(!engine().decide(&fixture.update(owned, repointed), &fixture.context()).allowed());
}

#[test]
fn removing_one_owner_of_two_is_judged_removing_all_is_not() {
    let fixture = Fixture::new();
    let mut two = with_owner(object("v1", "Secret", "prod", "db", &[]), "1");
    two["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "2"}));
    let one = with_owner(object("v1", "Secret", "prod", "db", &[]), "1");
    assert!(!engine().decide(&fixture.update(two.clone(), one), &fixture.context()).allowed());
    let none = object("v1", "Secret", "prod", "db", &[]);
    assert!(engine().decide(&fixture.update(two, none), &fixture.context()).allowed());
}

#[test]
fn the_nodes_group_exempts_node_users_only() {
    let fixture = Fixture::new();
    let secret = || object("v1", "Secret", "prod", "db", &[]);
    let node = delete_as(secret(), "system:node:worker-1", &["system:nodes"]);
    assert_eq!(engine().decide(&node, &fixture.context()).skipped, Some(Skip::ExemptGroup));
    let pretender = delete_as(secret(), "alice", &["system:masters", "system:nodes"]);
    assert!(!engine().decide(&pretender, &fixture.context()).allowed());
}

#[test]
fn a_live_view_does_not_corroborate_a_review_without_a_uid_or_with_a_claimed_label() {
    let fixture = Fixture::new();
    let engine = engine();
    let mut view = crate::view::MemoryView::default();
    let mut real = crate::testing::namespace("real");
    real["metadata"]["uid"] = "uid-1".into();
    view.add_manifest(&real).unwrap();
    let view = ListedNamespaces(view);
    let context = Context { view: &view, ..fixture.context() };
    let no_uid = confirmed_namespace("real");
    let claims_skip = {
        let mut namespace = crate::testing::namespace_with_labels(
            "real",
            &[("defender.io/skip-delete-confirmation", "true")],
        );
        namespace["metadata"]["uid"] = "uid-1".into();
        namespace
    };
    for _ in 0..3 {
        assert!(engine.decide(&fixture.delete(no_uid.clone()), &context).allowed());
        assert!(engine.decide(&fixture.delete(claims_skip.clone()), &context).allowed());
    }
    let budget = &engine.policies().iter().find(|p| p.name() == "namespace-deletion").unwrap().budgets()[0];
    assert_eq!(budget.budget.remaining("cluster", fixture.now), 3);
}

#[test]
fn pod_deletions_the_view_does_not_hold_spend_no_burst() {
    let fixture = Fixture::new();
    let engine = engine();
    let mut view = crate::view::MemoryView::default();
    for i in 0..6 {
        view.add_manifest(&pod(&format!("real-{i}"))).unwrap();
    }
    let view = ListedNamespaces(view);
    let context = Context { view: &view, ..fixture.context() };
    // Forged (or finished) pods: judged and allowed, but alice's burst of 5 stays whole.
    for i in 0..10 {
        let forged = delete_as(pod(&format!("ghost-{i}")), "alice", &[]);
        assert!(engine.decide(&forged, &context).allowed());
    }
    for i in 0..5 {
        assert!(engine.decide(&delete_as(pod(&format!("real-{i}")), "alice", &[]), &context).allowed());
    }
    assert!(!engine.decide(&delete_as(pod("real-5"), "alice", &[]), &context).allowed());
}

#[test]
fn the_garbage_collector_cannot_delete_a_labelled_object_nor_anyone_a_definition_with_objects() {
    let always = &[("defender.io/delete-protection", "Always")];
    let fixture = Fixture::new().with_objects(&[object("example.com/v1", "Widget", "prod", "w", &[])]);
    let engine = engine();
    let gc = crate::settings::GARBAGE_COLLECTOR;
    let collected = engine
        .decide(&delete_as(object("v1", "ConfigMap", "prod", "c", always), gc, &[]), &fixture.context());
    assert!(!collected.allowed());
    assert_eq!(collected.fired_policies(), ["delete-protection"]);
    // Controllers deleting the pods they manage pass, labelled or not.
    let controller = "system:serviceaccount:kube-system:replicaset-controller";
    let pod = object("v1", "Pod", "prod", "web-1", always);
    assert!(engine.decide(&delete_as(pod, controller, &[]), &fixture.context()).allowed());
    let definition = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}
    });
    let impersonated = delete_as(definition, "system:kube-controller-manager", &[]);
    assert!(!engine.decide(&impersonated, &fixture.context()).allowed());
}

fn one_deletion_per_minute() -> Engine {
    engine_with(
        "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata: {name: nsd}\n\
         spec: {budget: {deletions: 1, window: 1m}, confirmation: {enabled: false}}\n",
    )
}

#[test]
fn review_is_a_pure_function_of_its_inputs() {
    let engine = one_deletion_per_minute();
    let fixture = Fixture::new();
    let request = fixture.delete(crate::testing::namespace("team-a"));
    let first = engine.review(&request, &fixture.context());
    let second = engine.review(&request, &fixture.context());
    assert_eq!(first, second, "same inputs, same decision and charges");
    assert!(first.decision.allowed());
    assert_eq!(first.charges.len(), 1, "the deletion asks for one slot of the budget");
    let budget = &engine.policies()[0].budgets()[0];
    assert_eq!(budget.budget.remaining("cluster", fixture.now), 1, "reviewing spent nothing");
}

#[test]
fn a_charge_that_loses_the_last_slot_is_answered_with_the_fresh_denial() {
    let engine = one_deletion_per_minute();
    let fixture = Fixture::new();
    let first = fixture.delete(crate::testing::namespace("team-a"));
    let second = fixture.delete(crate::testing::namespace("team-b"));
    // Both judged while the slot is free, as two replicas would.
    let first_review = engine.review(&first, &fixture.context());
    let second_review = engine.review(&second, &fixture.context());
    assert!(first_review.decision.allowed() && second_review.decision.allowed());

    let won = futures::executor::block_on(first_review.commit());
    assert!(won.is_empty());
    assert!(engine.settle(&first, &fixture.context(), first_review, won).allowed());

    let lost = futures::executor::block_on(second_review.commit());
    assert_eq!(lost.len(), 1);
    let decision = engine.settle(&second, &fixture.context(), second_review, lost);
    assert!(!decision.allowed());
    let message = decision.denial_message().unwrap();
    assert!(message.contains("\"team-b\" was not deleted"), "{message}");
    assert!(message.contains("budget (1 per 1m) is used up"), "{message}");
}

#[test]
fn dry_runs_and_denials_leave_nothing_to_commit() {
    let engine = one_deletion_per_minute();
    let fixture = Fixture::new();
    let mut synthetic = fixture.synthetic_delete(crate::testing::namespace("team-a"));
    synthetic.dry_run = true;
    let dry_run = engine.review(&synthetic.build().unwrap(), &fixture.context());
    assert!(dry_run.decision.allowed() && dry_run.charges.is_empty());
    let core =
        self::engine().review(&fixture.delete(crate::testing::namespace("kube-system")), &fixture.context());
    assert!(!core.decision.allowed() && core.charges.is_empty());
}
