//! delete-protection on the real control plane: a CustomResourceDefinition
//! is not deleted while it still defines objects, and the
//! `delete-protection` labels (Defender's and OpenKruise's) hold any kind.

use std::time::Duration;

use crate::World;
use crate::env::{Check, Defender, Kubectl, wait_until};
use crate::scenarios::create_namespace;

const DEFINITION: &str = "widgets.e2e.example.com";

/// A namespaced, schemaless CRD for Widgets.
fn widget_definition() -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {DEFINITION}}}\n\
         spec:\n  group: e2e.example.com\n  scope: Namespaced\n  \
         names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}\n  versions:\n    \
         - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          \
         type: object\n          x-kubernetes-preserve-unknown-fields: true\n"
    )
}

fn widget(namespace: &str, name: &str, labels: &str) -> String {
    format!(
        "apiVersion: e2e.example.com/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: {namespace}, \
         labels: {{{labels}}}}}\nspec: {{size: 1}}\n"
    )
}

fn widgets_left(k: &Kubectl) -> Result<usize, String> {
    Ok(k.ok(&["get", "widgets", "--all-namespaces", "--no-headers"])?.lines().count())
}

pub fn custom_resource_definition(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let (a, b) = ("e2e-widgets-a", "e2e-widgets-b");
    create_namespace(k, a, &[])?;
    create_namespace(k, b, &["defender.io/skip-delete-confirmation=true"])?;
    k.apply(&widget_definition()).accepted()?;
    let established = wait_until(Duration::from_secs(30), || {
        k.run(&["wait", "--for=condition=Established", "--timeout=5s", &format!("crd/{DEFINITION}")]).code
            == 0
    });
    if !established {
        return Err(format!("{DEFINITION} was not established"));
    }
    // Creating the first objects of a new type can race its discovery.
    let created = wait_until(Duration::from_secs(20), || k.apply(&widget(a, "one", "")).code == 0);
    if !created {
        return Err("the first Widget could not be created".to_owned());
    }
    k.apply(&widget(a, "two", "")).accepted()?;
    k.apply(&widget(b, "three", "defender.io/delete-protection: Always")).accepted()?;
    // A type installed moments ago is looked in too, once discovered (every
    // few seconds): its labelled object holds its namespace.
    let held = format!(
        "namespace \"{b}\" holds 1 object protected against deletion by label \
         defender.io/delete-protection=Always (widget \"{b}/three\")"
    );
    let mut last = String::new();
    let namespace_held = wait_until(Duration::from_secs(20), || {
        last = k.run(&["delete", "namespace", b, "--dry-run=server"]).stderr;
        last.contains(&held)
    });
    if !namespace_held {
        return Err(format!("namespace {b} was not held by its Widget labelled Always: {}", last.trim()));
    }

    k.run(&["delete", "crd", DEFINITION, "--dry-run=server"]).rejected_with(&format!(
        "customresourcedefinition \"{DEFINITION}\" still defines 3 Widgets in 2 namespaces"
    ))?;
    let refused = k.run(&["delete", "crd", DEFINITION]);
    refused.rejected_with(
        "Delete or migrate them first (kubectl get widgets.e2e.example.com --all-namespaces), then delete the \
         definition",
    )?;
    println!("      $ kubectl delete crd {DEFINITION}\n      {}", refused.stderr.trim());
    // Posing as the control plane, which is exempt elsewhere, changes nothing here.
    k.run(&["delete", "crd", DEFINITION, "--as=system:kube-controller-manager", "--as-group=system:masters"])
        .rejected_with("still defines 3 Widgets in 2 namespaces")?;
    if widgets_left(k)? != 3 {
        return Err("a refused CRD deletion lost Widgets".to_owned());
    }

    // Always holds a custom resource until the label comes off.
    k.run(&["delete", "widget", "three", "-n", b]).rejected_with(&format!(
        "widget \"{b}/three\" is protected against deletion by label defender.io/delete-protection=Always"
    ))?;
    k.run(&["label", "widget", "three", "-n", b, "defender.io/delete-protection-"]).accepted()?;
    k.run(&["delete", "widgets", "--all", "-n", a]).accepted()?;
    k.run(&["delete", "widget", "three", "-n", b]).accepted()?;
    if widgets_left(k)? != 0 {
        return Err("the Widgets were not deleted".to_owned());
    }
    k.run(&["delete", "crd", DEFINITION]).accepted()
}

pub fn cascading_deployment(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-cascading-web";
    create_namespace(k, ns, &[])?;
    k.apply(&cascading_web(ns)).accepted()?;
    k.run(&["delete", "deployment", "web", "-n", ns]).rejected_with(&format!(
        "deployment \"{ns}/web\" asks for 2 replicas, and deleting it would delete its pods: it is protected \
         against cascading deletion by label defender.io/delete-protection=Cascading"
    ))?;
    k.run(&["scale", "deployment", "web", "-n", ns, "--replicas=0"]).accepted()?;
    // The view learns of the scale-down from its watch, within moments.
    let mut last = None;
    let deleted = wait_until(Duration::from_secs(15), || {
        let outcome = k.run(&["delete", "deployment", "web", "-n", ns]);
        let done = outcome.code == 0;
        last = Some(outcome);
        done
    });
    if deleted {
        Ok(())
    } else {
        Err(format!(
            "scaled to zero, the Deployment still could not be deleted: {:?}",
            last.map(|o| o.stderr)
        ))
    }
}

pub fn open_kruise_namespace(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-kruise-always";
    create_namespace(k, ns, &["policy.kruise.io/delete-protection=Always"])?;
    k.run(&["delete", "namespace", ns]).rejected_with(&format!(
        "namespace \"{ns}\" is protected against deletion by label policy.kruise.io/delete-protection=Always"
    ))?;
    let phase = k.ok(&["get", "namespace", ns, "-o", "jsonpath={.status.phase}"])?;
    if phase == "Active" { Ok(()) } else { Err(format!("namespace {ns} is {phase}")) }
}

/// Deleting a namespace would delete an object labelled Always in it (the
/// namespace controller is exempt): refused until the label is removed; and
/// a running Deployment labelled Cascading, until it is scaled to zero.
/// Only dry runs and refusals, so the namespace-deletion budget is not spent.
pub fn namespace_holding_always_secret(world: &mut World) -> Check {
    let (k, defender) = (&world.cluster.kubectl, &world.defender);
    let ns = "e2e-holds-protected";
    create_namespace(k, ns, &["defender.io/skip-delete-confirmation=true"])?;
    // Once the index's watches are current, the label added just below and
    // removed further down reach it before the deletions that follow.
    index_is_current(defender)?;
    let answered = defender.metric(ANSWERED_FROM_MEMORY).unwrap_or_default();
    k.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {ns}\n  \
         labels: {{defender.io/delete-protection: Always}}\nstringData: {{password: hunter2}}\n"
    ))
    .accepted()?;
    let held = format!(
        "namespace \"{ns}\" holds 1 object protected against deletion by label \
         defender.io/delete-protection=Always (secret \"{ns}/db\")"
    );
    k.run(&["delete", "namespace", ns, "--dry-run=server"]).rejected_with(&held)?;
    if defender.metric(ANSWERED_FROM_MEMORY).unwrap_or_default() <= answered {
        return Err("the protected-object index did not answer the namespace deletion's lookup".to_owned());
    }
    let refused = k.run(&["delete", "namespace", ns]);
    refused.rejected_with(&format!("kubectl label secret db -n {ns} defender.io/delete-protection-"))?;
    println!("      $ kubectl delete namespace {ns}\n      {}", refused.stderr.trim());
    let phase = k.ok(&["get", "namespace", ns, "-o", "jsonpath={.status.phase}"])?;
    if phase != "Active" {
        return Err(format!("namespace {ns} is {phase}"));
    }
    k.ok(&["get", "secret", "db", "-n", ns])?;

    k.run(&["label", "secret", "db", "-n", ns, "defender.io/delete-protection-"]).accepted()?;
    // Other policies may still have their say; this rule must not.
    let dry_run = k.run(&["delete", "namespace", ns, "--dry-run=server"]);
    if dry_run.stderr.contains("protected against deletion") {
        return Err(format!(
            "with the label removed, the namespace is still held: {}",
            dry_run.stderr.trim()
        ));
    }
    namespace_holding_running_cascading_deployment(k)
}

const ANSWERED_FROM_MEMORY: &str = r#"defender_protected_index_lookups_total{answer="memory"}"#;

/// Waits until every watch of the protected-object index has listed its
/// type and is watching it.
fn index_is_current(defender: &Defender) -> Check {
    let state =
        |state: &str| defender.metric(&format!(r#"defender_protected_index_watches{{state="{state}"}}"#));
    let current = wait_until(Duration::from_secs(30), || {
        state("current").is_some_and(|n| n > 0.0) && state("not_current") == Some(0.0)
    });
    if current {
        Ok(())
    } else {
        Err(format!(
            "the protected-object index's watches are not current: {:?} current, {:?} not",
            state("current"),
            state("not_current")
        ))
    }
}

/// A Deployment labelled Cascading with replicas holds its namespace as it
/// holds its own deletion; scaled to zero, it no longer does. Dry runs only.
fn namespace_holding_running_cascading_deployment(k: &Kubectl) -> Check {
    let ns = "e2e-holds-cascading";
    create_namespace(k, ns, &["defender.io/skip-delete-confirmation=true"])?;
    k.apply(&cascading_web(ns)).accepted()?;
    let held = format!("(deployment \"{ns}/web\" (Cascading: asks for pods))");
    // The view learns of the Deployment from its watch, within moments.
    let mut last = None;
    let refused = wait_until(Duration::from_secs(15), || {
        let outcome = k.run(&["delete", "namespace", ns, "--dry-run=server"]);
        let done = outcome.code != 0 && outcome.stderr.contains(&held);
        last = Some(outcome);
        done
    });
    if !refused {
        return Err(format!(
            "a namespace holding a running Cascading Deployment was not held: {:?}",
            last.map(|o| o.stderr)
        ));
    }
    k.run(&["delete", "namespace", ns, "--dry-run=server"])
        .rejected_with(&format!("kubectl scale deployment web -n {ns} --replicas=0"))?;
    k.run(&["scale", "deployment", "web", "-n", ns, "--replicas=0"]).accepted()?;
    let released = wait_until(Duration::from_secs(15), || {
        let outcome = k.run(&["delete", "namespace", ns, "--dry-run=server"]);
        let done = !outcome.stderr.contains(&held);
        last = Some(outcome);
        done
    });
    if released {
        Ok(())
    } else {
        Err(format!("scaled to zero, the Deployment still holds its namespace: {:?}", last.map(|o| o.stderr)))
    }
}

/// The garbage collector deletes what lost its owner; an object labelled
/// Always stays all the same.
pub fn garbage_collector_and_always(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-always-owned";
    create_namespace(k, ns, &[])?;
    k.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: owner, namespace: {ns}, \
         labels: {{defender.io/deletion-allowed: \"true\"}}}}\n"
    ))
    .accepted()?;
    let uid = k.ok(&["get", "configmap", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}"])?;
    k.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: {ns}\n  \
         labels: {{defender.io/delete-protection: Always}}\n  \
         ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}]\n"
    ))
    .accepted()?;
    k.run(&["delete", "configmap", "owner", "-n", ns]).accepted()?;
    let refused = wait_until(Duration::from_secs(30), || {
        world.defender.log_text().lines().any(|line| {
            line.contains("generic-garbage-collector")
                && line.contains("\"name\":\"kept\"")
                && line.contains("\"verdict\":\"deny\"")
        })
    });
    k.ok(&["get", "configmap", "kept", "-n", ns])?;
    if refused {
        Ok(())
    } else {
        Err("Defender never saw the garbage collector's DELETE of the labelled ConfigMap".to_owned())
    }
}

/// Deployment `web` in `ns`, labelled Cascading, asking for 2 replicas.
fn cascading_web(ns: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\n  \
         labels: {{defender.io/delete-protection: Cascading}}\nspec:\n  replicas: 2\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
         spec: {{containers: [{{name: web, image: registry.example/web:1}}]}}\n"
    )
}
