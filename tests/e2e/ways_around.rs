//! Routes past a protection that do not say "delete", tried as someone with
//! cluster-admin RBAC would: owner references the garbage collector acts on,
//! updates of objects held by finalizers, and subresources that keep
//! metadata changes.

use std::time::Duration;

use crate::World;
use crate::env::{Check, Kubectl, wait_until};
use crate::scenarios::{create_namespace, ingress};

/// How long the garbage collector is given to act on an owner reference.
const GARBAGE_COLLECTOR_GRACE: Duration = Duration::from_secs(30);

/// A merge patch naming an owner that does not exist.
fn dangling_owner(api_version: &str, kind: &str) -> String {
    format!(
        r#"{{"metadata":{{"ownerReferences":[{{"apiVersion":"{api_version}","kind":"{kind}","name":"gone","uid":"6f1b0c0e-0000-4000-8000-00000000dead"}}]}}}}"#
    )
}

/// Break-glass, as an on-call admin would use it.
const BREAK_GLASS: [&str; 3] =
    ["--as=oncall@example.com", "--as-group=system:masters", "--as-group=defender:break-glass"];

fn exists_and_not_terminating(k: &Kubectl, args: &[&str]) -> Check {
    let mut get = args.to_vec();
    get.extend(["-o", "jsonpath={.metadata.uid}/{.metadata.deletionTimestamp}"]);
    let shown = k.ok(&get)?;
    if shown.ends_with('/') { Ok(()) } else { Err(format!("{args:?} is being deleted: {shown}")) }
}

pub fn garbage_collector_owner_references(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let (core, ns) = ("e2e-gc-core", "e2e-gc");
    create_namespace(k, core, &["defender.io/core=true"])?;
    create_namespace(k, ns, &[])?;
    k.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {ns}}}\nstringData: {{password: x}}\n"
    ))
    .accepted()?;
    // A cluster-scoped dependent can only be collected for a cluster-scoped owner.
    let namespace_owner = dangling_owner("v1", "Node");
    k.run(&["patch", "namespace", core, "--type=merge", "-p", &namespace_owner]).rejected_with(&format!(
        "adding an ownerReference to namespace \"{core}\" lets the garbage collector delete it"
    ))?;
    k.run(&["patch", "secret", "db", "-n", ns, "--type=merge", "-p", &dangling_owner("v1", "ConfigMap")])
        .rejected_with(&format!(
            "adding an ownerReference to secret \"{ns}/db\" lets the garbage collector delete it"
        ))?;
    // Defence in depth: break-glass can add the owner reference, but the
    // garbage collector's own DELETE of a core namespace is still refused.
    let mut forced = vec!["patch", "namespace", core, "--type=merge", "-p", &namespace_owner];
    forced.extend(BREAK_GLASS);
    k.run(&forced).accepted_with_warning("break-glass used")?;
    std::thread::sleep(GARBAGE_COLLECTOR_GRACE);
    exists_and_not_terminating(k, &["get", "namespace", core])?;
    exists_and_not_terminating(k, &["get", "secret", "db", "-n", ns])?;
    let refused = wait_until(Duration::from_secs(10), || {
        world.defender.log_text().lines().any(|line| {
            line.contains("system:serviceaccount:kube-system:generic-garbage-collector")
                && line.contains(&format!("\"name\":\"{core}\""))
                && line.contains("\"verdict\":\"deny\"")
        })
    });
    // Removing an owner reference is not a deletion: it passes.
    k.run(&[
        "patch",
        "namespace",
        core,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
    ])
    .accepted()?;
    if !refused {
        return Err("Defender never saw the garbage collector's DELETE of the core namespace".to_owned());
    }
    Ok(())
}

pub fn finalizer_held_ingress(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-held";
    create_namespace(k, ns, &[])?;
    let held = ingress(ns, "held", Some("held.example.com"))
        .replace("metadata: {name: held, namespace: e2e-held}", &format!(
            "metadata: {{name: held, namespace: {ns}, finalizers: [example.com/hold], labels: {{defender.io/deletion-allowed: \"true\"}}}}"
        ));
    k.apply(&held).accepted()?;
    k.run(&["delete", "ingress", "held", "-n", ns, "--wait=false"]).accepted()?;
    // (The e2e policy set only warns about subdomain wildcards.)
    let hostless = r#"[{"op":"remove","path":"/spec/rules/0/host"}]"#;
    k.run(&["patch", "ingress", "held", "-n", ns, "--type=json", "-p", hostless])
        .rejected_with("defender/ingress-hosts")?;
    let catch_all = r#"{"spec":{"defaultBackend":{"service":{"name":"web","port":{"number":80}}}}}"#;
    k.run(&["patch", "ingress", "held", "-n", ns, "--type=merge", "-p", catch_all])
        .rejected_with("defender/ingress-hosts")?;
    // Removing the finalizer finishes the deletion.
    k.run(&[
        "patch",
        "ingress",
        "held",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .accepted()?;
    if wait_until(Duration::from_secs(15), || k.run(&["get", "ingress", "held", "-n", ns]).code != 0) {
        Ok(())
    } else {
        Err("the Ingress was not deleted once its finalizer was removed".to_owned())
    }
}

pub fn namespace_status_keeps_its_guard(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let core = "e2e-status-core";
    create_namespace(k, core, &["defender.io/core=true"])?;
    let strip = r#"{"metadata":{"labels":{"defender.io/core":null}}}"#;
    k.run(&["patch", "namespace", core, "--subresource=status", "--type=merge", "-p", strip])
        .rejected_with("must keep its label defender.io/core=true")?;
    let exempt = r#"{"metadata":{"labels":{"defender.io/deletion-allowed":"true"}}}"#;
    k.run(&["patch", "namespace", "kube-system", "--subresource=status", "--type=merge", "-p", exempt])
        .rejected_with("cannot carry label defender.io/deletion-allowed=true")?;
    let labels = k.ok(&["get", "namespace", core, "-o", "jsonpath={.metadata.labels}"])?;
    if labels.contains("defender.io/core") {
        Ok(())
    } else {
        Err(format!("the core label is gone: {labels}"))
    }
}
