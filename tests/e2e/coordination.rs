//! What Defender writes to the cluster, and how it behaves when the cluster
//! is gone: the namespace budget shared by replicas through a Lease, an API
//! server outage, and DeletionDenied Events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::World;
use crate::env::{Check, Defender, wait_until};

/// The replicas' namespace budget; how many deletions one replica makes alone
/// (timed), then how many both are sent at once for the rest of it.
const SHARED_BUDGET: usize = 10;
const SEQUENTIAL: usize = 5;
const CONCURRENT: usize = 16;
const LEASE: &str = "defender-namespace-deletion-namespace-deletions";

/// Two more Defender processes with one shared budget, reviewed directly (the
/// API server calls one URL; here both replicas take deletions at once).
/// The namespaces exist, so the replicas' views corroborate the reviews; one
/// for a namespace that does not exist is judged but spends nothing.
pub fn shared_budget(world: &mut World) -> Check {
    let work = world.cluster.dir.parent().expect("a work directory").join("replicas");
    let policies = write_replica_policies(&work.join("policies"))?;
    let mut names: Vec<String> = (0..SEQUENTIAL).map(|i| format!("e2e-latency-write-{i}")).collect();
    names.extend((0..CONCURRENT).map(|i| format!("e2e-shared-{i}")));
    names.extend(["e2e-outage".to_owned(), "e2e-after-outage".to_owned()]);
    let uids = create_namespaces(&world.cluster.kubectl, &names)?;
    for name in ["a", "b"] {
        let mut replica = Defender::new(&work.join(name), policies.clone(), &world.cluster.dir)?;
        replica.extra_args = vec!["--own-namespace=defender-system".to_owned()];
        replica.start()?;
        world.replicas.push(replica);
    }
    let k = &world.cluster.kubectl;
    let dry_run = world.replicas[0].review(&namespace_delete("e2e-shared-dry-run", "uid-none", true))?;
    expect_allowed(&dry_run, true)?;
    let forged = world.replicas[1].review(&namespace_delete("e2e-shared-forged", "uid-forged", false))?;
    expect_allowed(&forged, true)?;
    if k.run(&["get", "lease", LEASE, "-n", "defender-system"]).code == 0 {
        return Err(
            "a dry run or a review of a namespace that does not exist wrote the budget Lease".to_owned()
        );
    }

    report_latency(&world.replicas[0], &uids)?;

    let replicas = &world.replicas;
    let answers: Vec<Result<Value, String>> = std::thread::scope(|scope| {
        let reviews: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let replica = &replicas[i % replicas.len()];
                let name = format!("e2e-shared-{i}");
                let review = namespace_delete(&name, &uids[&name], false);
                scope.spawn(move || replica.review(&review))
            })
            .collect();
        reviews.into_iter().map(|review| review.join().expect("a review thread")).collect()
    });
    let mut allowed = 0;
    for answer in answers {
        let answer = answer?;
        if answer["allowed"] == true {
            allowed += 1;
        } else if !message(&answer).contains("namespace deletion budget (10 per 10m) is used up") {
            return Err(format!("a deletion was refused for another reason: {answer}"));
        }
    }
    if allowed != SHARED_BUDGET - SEQUENTIAL {
        return Err(format!(
            "{allowed} of {CONCURRENT} concurrent deletions across two replicas were allowed; {} slots of the \
             shared budget were left",
            SHARED_BUDGET - SEQUENTIAL
        ));
    }
    let spends = lease_spends(k, LEASE)?;
    if spends.len() == SHARED_BUDGET {
        Ok(())
    } else {
        Err(format!("the Lease records {} spends, not {SHARED_BUDGET}", spends.len()))
    }
}

/// Reviews on one replica, timed inside Defender (its decision log's
/// latency_ms): Ingress CREATEs, which never touch the Lease; dry-run namespace
/// DELETEs, which read the replica's watched copy of it; and real ones, which
/// write it back (compare-and-swap on the copy's resourceVersion).
/// Spends `SEQUENTIAL` slots of the budget.
fn report_latency(replica: &Defender, uids: &HashMap<String, String>) -> Check {
    let run = |prefix: &str, count: usize, review: &dyn Fn(&str) -> Value, allowed: bool| -> Check {
        (0..count)
            .try_for_each(|i| expect_allowed(&replica.review(&review(&format!("{prefix}-{i}")))?, allowed))
    };
    run("e2e-latency-ingress", 20, &|name| ingress_create("e2e-latency", name, "*.com"), false)?;
    run("e2e-latency-read", 20, &|name| namespace_delete(name, "uid-none", true), true)?;
    run("e2e-latency-write", SEQUENTIAL, &|name| namespace_delete(name, &uids[name], false), true)?;
    let log = replica.log_text();
    let median = |prefix: &str| -> Result<f64, String> {
        let mut samples: Vec<f64> = log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["name"].as_str().is_some_and(|name| name.starts_with(prefix)))
            .filter_map(|line| line["latency_ms"].as_f64())
            .collect();
        samples.sort_by(f64::total_cmp);
        samples.get(samples.len() / 2).copied().ok_or_else(|| format!("no decision logged for {prefix}"))
    };
    println!(
        "      review time inside Defender (debug build), median: Ingress CREATE {:.2} ms; namespace DELETE with \
         the shared Lease: dry run (watched copy) {:.2} ms, real (compare-and-swap write) {:.2} ms",
        median("e2e-latency-ingress")?,
        median("e2e-latency-read")?,
        median("e2e-latency-write")?
    );
    Ok(())
}

/// Two replicas with a budget of 2, one slot spent: each is sent a deletion at
/// the same moment. Both judge from a copy that shows one slot free; exactly
/// one write wins, and the other replica answers with the denial the fresh
/// Lease gives. Afterwards a dry run on either replica reads the full budget
/// from its watched copy.
pub fn last_slot_race(world: &mut World) -> Check {
    const POLICY: &str = "last-slot";
    let work = world.cluster.dir.parent().expect("a work directory").join("last-slot");
    let dir = work.join("policies");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let policy = format!(
        "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata:\n  name: {POLICY}\nspec:\n  \
         budget: {{deletions: 2, window: 10m}}\n  confirmation: {{enabled: false}}\n"
    );
    std::fs::write(dir.join("policies.yaml"), policy).map_err(|e| e.to_string())?;
    let names: Vec<String> = (0..3).map(|i| format!("e2e-last-slot-{i}")).collect();
    let uids = create_namespaces(&world.cluster.kubectl, &names)?;
    let mut replicas = Vec::new();
    for name in ["c", "d"] {
        let mut replica = Defender::new(&work.join(name), dir.clone(), &world.cluster.dir)?;
        replica.extra_args = vec!["--own-namespace=defender-system".to_owned()];
        replica.start()?;
        replicas.push(replica);
    }
    expect_allowed(&replicas[0].review(&namespace_delete(&names[0], &uids[&names[0]], false))?, true)?;

    let barrier = std::sync::Barrier::new(2);
    let answers: Vec<Result<Value, String>> = std::thread::scope(|scope| {
        let racers: Vec<_> = (1..3)
            .map(|i| {
                let (replica, barrier) = (&replicas[i - 1], &barrier);
                let review = namespace_delete(&names[i], &uids[&names[i]], false);
                scope.spawn(move || {
                    barrier.wait();
                    replica.review(&review)
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().expect("a review thread")).collect()
    });
    let answers = answers.into_iter().collect::<Result<Vec<Value>, String>>()?;
    let allowed = answers.iter().filter(|answer| answer["allowed"] == true).count();
    if allowed != 1 {
        return Err(format!("{allowed} of 2 replicas racing on the last slot were allowed: {answers:?}"));
    }
    let loser = answers.iter().position(|answer| answer["allowed"] == false).unwrap_or_default();
    let used_up = "namespace deletion budget (2 per 10m) is used up";
    if !message(&answers[loser]).contains(used_up) {
        return Err(format!("the replica that lost the race did not say the budget is used up: {answers:?}"));
    }
    let lease = format!("defender-{POLICY}-namespace-deletions");
    let spends = lease_spends(&world.cluster.kubectl, &lease)?;
    if spends.len() != 2 {
        return Err(format!("the Lease records {} spends, not 2", spends.len()));
    }
    // Each replica's watched copy catches up with the write it did not make.
    let lost = &names[loser + 1];
    for replica in &replicas {
        let mut last = Value::Null;
        let caught_up = wait_until(Duration::from_secs(10), || {
            last = replica.review(&namespace_delete(lost, &uids[lost], true)).unwrap_or_default();
            message(&last).contains(used_up)
        });
        if !caught_up {
            return Err(format!("a dry run did not see the full budget from the watched Lease: {last}"));
        }
    }
    Ok(())
}

/// The API server stops: budgeted deletions are refused with the reason,
/// other reviews are still judged; it comes back and the Lease is read again.
pub fn apiserver_outage(world: &mut World) -> Check {
    let replica = world.replicas.first().ok_or("the shared-budget scenario started no replicas")?;
    let uid =
        |name: &str| world.cluster.kubectl.ok(&["get", "namespace", name, "-o", "jsonpath={.metadata.uid}"]);
    let (outage_uid, after_uid) = (uid("e2e-outage")?, uid("e2e-after-outage")?);
    world.cluster.stop_apiserver()?;
    let during = (|| -> Check {
        let answer = replica.review(&namespace_delete("e2e-outage", &outage_uid, false))?;
        expect_allowed(&answer, false)?;
        if !message(&answer).contains(&format!("Lease defender-system/{LEASE} cannot be reached")) {
            return Err(format!("the refusal does not say the budget is unreachable: {answer}"));
        }
        let wildcard = replica.review(&ingress_create("e2e-outage", "web", "*.com"))?;
        expect_allowed(&wildcard, false)?;
        if message(&wildcard).contains("defender/ingress-hosts") {
            Ok(())
        } else {
            Err(format!("an Ingress review was not judged during the outage: {wildcard}"))
        }
    })();
    world.cluster.start_apiserver()?;
    during?;
    // Back: the Lease is read again, and it still holds this window's spends.
    let mut last = Value::Null;
    let reread = wait_until(Duration::from_secs(30), || {
        last = replica.review(&namespace_delete("e2e-after-outage", &after_uid, false)).unwrap_or_default();
        message(&last).contains("is used up")
    });
    if reread { Ok(()) } else { Err(format!("after the outage the budget was not read again: {last}")) }
}

/// A denied deletion leaves one Warning Event on the object; repeats within a
/// minute and dry runs add none.
pub fn denial_events(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let (ns, secret) = ("e2e-guard", "db");
    let uid = k.ok(&["get", "secret", secret, "-n", ns, "-o", "jsonpath={.metadata.uid}"])?;
    for _ in 0..3 {
        k.run(&["delete", "secret", secret, "-n", ns]).rejected_with("defender/deletion-guard")?;
    }
    k.run(&["delete", "configmap", "settings", "-n", ns, "--dry-run=server"])
        .rejected_with("defender/deletion-guard")?;
    let events = || -> Vec<Value> {
        let listed = k.run(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]).stdout;
        let listed: Value = serde_json::from_str(&listed).unwrap_or_default();
        listed["items"].as_array().cloned().unwrap_or_default()
    };
    let for_secret = |events: &[Value]| -> Vec<Value> {
        events.iter().filter(|e| e["regarding"]["uid"] == uid.as_str()).cloned().collect()
    };
    if !wait_until(Duration::from_secs(20), || !for_secret(&events()).is_empty()) {
        return Err(format!("no Event was recorded for secret {ns}/{secret} (uid {uid})"));
    }
    let all = events();
    let recorded = for_secret(&all);
    let event = &recorded[0];
    if recorded.len() != 1 || !event["series"].is_null() {
        return Err(format!("three denials within a minute were recorded more than once: {recorded:?}"));
    }
    if event["reason"] != "DeletionDenied"
        || event["type"] != "Warning"
        || !event["note"].as_str().unwrap_or_default().contains("defender/deletion-guard")
    {
        return Err(format!("unexpected event: {event}"));
    }
    let settings_uid = k.ok(&["get", "configmap", "settings", "-n", ns, "-o", "jsonpath={.metadata.uid}"])?;
    if all.iter().any(|e| e["regarding"]["uid"] == settings_uid.as_str()) {
        return Err("a dry-run denial recorded an Event".to_owned());
    }
    namespace_denial_event(world)
}

/// A Namespace is cluster-scoped, though the API server names it as its own
/// namespace in the review: its denial is recorded in `default`, regarding
/// the Namespace.
fn namespace_denial_event(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let uid = k.ok(&["get", "namespace", "kube-node-lease", "-o", "jsonpath={.metadata.uid}"])?;
    k.run(&["delete", "namespace", "kube-node-lease"]).rejected_with("defender/core-namespaces")?;
    let recorded = || -> bool {
        let listed = k.run(&["get", "events.events.k8s.io", "-n", "default", "-o", "json"]).stdout;
        let listed: Value = serde_json::from_str(&listed).unwrap_or_default();
        listed["items"].as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["regarding"]["uid"] == uid.as_str()
                    && e["regarding"]["kind"] == "Namespace"
                    && e["reason"] == "DeletionDenied"
            })
        })
    };
    if !wait_until(Duration::from_secs(20), recorded) {
        return Err(format!("no DeletionDenied Event in default for namespace kube-node-lease (uid {uid})"));
    }
    Ok(())
}

/// The spends a budget Lease in defender-system records.
fn lease_spends(k: &crate::env::Kubectl, lease: &str) -> Result<Vec<Value>, String> {
    let spends = k.ok(&[
        "get",
        "lease",
        lease,
        "-n",
        "defender-system",
        "-o",
        "jsonpath={.metadata.annotations.defender\\.io/budget-spends}",
    ])?;
    serde_json::from_str(&spends).map_err(|e| format!("{e}: {spends}"))
}

fn write_replica_policies(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let policies = format!(
        "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata:\n  name: namespace-deletion\nspec:\n  \
         budget: {{deletions: {SHARED_BUDGET}, window: 10m}}\n  confirmation: {{enabled: false}}\n---\n\
         apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata:\n  name: ingress-hosts\nspec: {{}}\n"
    );
    std::fs::write(dir.join("policies.yaml"), policies).map_err(|e| e.to_string())?;
    Ok(dir.to_owned())
}

/// Creates `names` and returns their uids by name.
fn create_namespaces(k: &crate::env::Kubectl, names: &[String]) -> Result<HashMap<String, String>, String> {
    let items: Vec<Value> = names
        .iter()
        .map(|name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .collect();
    k.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()).accepted()?;
    names
        .iter()
        .map(|name| Ok((name.clone(), k.ok(&["get", "namespace", name, "-o", "jsonpath={.metadata.uid}"])?)))
        .collect()
}

fn namespace_delete(name: &str, uid: &str, dry_run: bool) -> Value {
    review(
        json!({"group": "", "version": "v1", "kind": "Namespace"}),
        json!({"group": "", "version": "v1", "resource": "namespaces"}),
        name,
        None,
        "DELETE",
        json!({"oldObject": {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uid}}, "dryRun": dry_run}),
    )
}

fn ingress_create(ns: &str, name: &str, host: &str) -> Value {
    review(
        json!({"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}),
        json!({"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"}),
        name,
        Some(ns),
        "CREATE",
        json!({"object": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"rules": [{"host": host}]}}}),
    )
}

fn review(
    kind: Value,
    resource: Value,
    name: &str,
    namespace: Option<&str>,
    operation: &str,
    extra: Value,
) -> Value {
    let mut request = json!({
        "uid": format!("e2e-{name}-{}", jiff::Timestamp::now().as_nanosecond()),
        "kind": kind,
        "resource": resource,
        "name": name,
        "operation": operation,
        "userInfo": {"username": "e2e-operator", "groups": ["system:authenticated"]},
    });
    if let Some(namespace) = namespace {
        request["namespace"] = json!(namespace);
    }
    for (key, value) in extra.as_object().expect("an object") {
        request[key] = value.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn expect_allowed(answer: &Value, allowed: bool) -> Check {
    if answer["allowed"] == allowed { Ok(()) } else { Err(format!("expected allowed={allowed}: {answer}")) }
}

fn message(answer: &Value) -> String {
    answer["status"]["message"].as_str().unwrap_or_default().to_owned()
}
