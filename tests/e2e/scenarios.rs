//! The scenarios, in the order they run. Namespace deletions share one
//! cluster-wide budget (3 per 10 minutes), so the order matters: the
//! confirmation and teardown scenarios spend two, the budget scenario the third.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::env::{self, Check, wait_until};
use crate::{
    World, audit, chart, coordination, delete_protection, hosts_scale, hosts_scope, server_limits,
    ways_around,
};

type Scenario = fn(&mut World) -> Check;

pub const ALL: &[(&str, Scenario)] = &[
    ("deploy/ renders with kubectl kustomize and passes apply --dry-run=server", deploy_manifests_are_valid),
    ("the Helm chart renders what deploy/ renders (kustomize)", chart::renders_what_deploy_renders),
    ("the Helm chart passes apply --dry-run=server", chart::passes_apply_dry_run),
    (
        "the Helm chart's webhooks, pointed at Defender, deny a namespace and a ConfigMap deletion",
        chart::its_webhooks_deny,
    ),
    (
        "the chart's generated certificate is kept on upgrade; renewing trusts the old and the new CA",
        chart::generated_certificate_is_kept_until_renewed,
    ),
    (
        "Defender answers only clients with a certificate from the cluster CA, as the API server has",
        mutual_tls,
    ),
    ("core namespaces cannot be deleted nor stripped of their label", core_namespaces),
    (
        "deleting a namespace takes a confirmation (kubectl defender confirm-delete) and waits out the cooldown",
        namespace_confirmation,
    ),
    ("a namespace Defender lets go finishes deleting, with everything inside", namespace_teardown_finishes),
    (
        "a namespace labelled Cascading is not deleted while it holds pods, a deployment and a bound PVC",
        cascading_protection,
    ),
    (
        "namespace deletions over budget are rejected with the refill time; dry runs spend nothing",
        namespace_budget,
    ),
    (
        "ingresses, services, secrets and configmaps are deleted only with the exemption label",
        protected_deletes,
    ),
    (
        "a denied deletion leaves one DeletionDenied Event (a Namespace's in default); repeats and dry runs add none",
        coordination::denial_events,
    ),
    ("the namespace exemption label is read from the live cluster", namespace_label_from_cluster),
    ("deleting a Secret a Pod uses is reported, naming the Pod", secret_in_use),
    ("kubectl delete pods --all stops at the burst limit; a deletecollection is rejected", pod_bulk_deletes),
    ("kubectl apply of wildcard and hostless Ingresses gets the configured verdicts", ingress_hosts),
    ("an Ingress for a host and path another namespace serves gets a warning", duplicate_hosts),
    (
        "defender audit finds Ingresses admitted while Defender was down, writes PolicyReports, and forgets them \
         once fixed",
        audit::existing_violations,
    ),
    (
        "Defender stopped: Fail webhooks refuse, Ignore webhooks pass; restarted, it serves again",
        defender_outage,
    ),
    (
        "two replicas share one namespace budget through a Lease: concurrent deletes pass exactly budget times",
        coordination::shared_budget,
    ),
    (
        "two replicas race on the last slot of a shared budget: exactly one is allowed, the other gets the \
         fresh denial",
        coordination::last_slot_race,
    ),
    (
        "the API server goes away: budgeted deletes are refused with the reason, others judged; it comes back",
        coordination::apiserver_outage,
    ),
    (
        "a dangling ownerReference on a core namespace or a protected Secret is refused; the garbage collector \
         cannot delete a core namespace either",
        ways_around::garbage_collector_owner_references,
    ),
    (
        "an Ingress held by a finalizer is judged on update, and released by removing it",
        ways_around::finalizer_held_ingress,
    ),
    (
        "namespaces/status cannot strip the core label nor add an exemption label",
        ways_around::namespace_status_keeps_its_guard,
    ),
    (
        "kubectl delete crd is refused while it defines objects, with the count; emptied, it goes",
        delete_protection::custom_resource_definition,
    ),
    (
        "a Deployment labelled Cascading is not deleted with 2 replicas; scaled to 0, it is",
        delete_protection::cascading_deployment,
    ),
    (
        "the garbage collector cannot delete an object labelled Always whose owner was deleted",
        delete_protection::garbage_collector_and_always,
    ),
    (
        "a namespace labelled policy.kruise.io/delete-protection=Always cannot be deleted",
        delete_protection::open_kruise_namespace,
    ),
    (
        "kubectl delete namespace is refused while it holds a Secret labelled Always; unlabelled, it is not held; \
         a running Cascading Deployment holds it until scaled to zero",
        delete_protection::namespace_holding_always_secret,
    ),
    // Before the latency scenario, which removes the webhook configuration.
    (
        "hosts in Ingress alias annotations follow the host rules; IP addresses are refused",
        hosts_scope::alias_annotations,
    ),
    ("GRPCRoute and TLSRoute hostnames are judged in every served version", hosts_scope::gateway_route_kinds),
    (
        "with 5,000 routes in Defender's view, an Ingress taking all of them gets its duplicate-hosts warning",
        hosts_scale::duplicate_hosts_at_scale,
    ),
    (
        "an Ingress UPDATE whose review is over 8 MiB is judged and denied, not refused as too large",
        server_limits::oversized_ingress_update,
    ),
    ("latency a namespace DELETE gains from Defender", namespace_delete_latency),
];

/// The cooldown the e2e policy set uses instead of 5 minutes, so the soft
/// delete can be walked through in real time.
const COOLDOWN_SECONDS: i64 = 10;

/// The embedded defaults, with a short cooldown, subdomain wildcards moved
/// from deny to a separate warn-mode policy.
pub fn write_policies(repo: &Path, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(repo.join("policies")).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let text = text
            .replace("cooldown: 5m", &format!("cooldown: {COOLDOWN_SECONDS}s"))
            .replace("allowWildcardSubdomains: false", "allowWildcardSubdomains: true");
        std::fs::write(dir.join(path.file_name().expect("a file name")), text).map_err(|e| e.to_string())?;
    }
    let warn = "apiVersion: defender.io/v1alpha1\nkind: IngressHosts\nmetadata:\n  name: ingress-wildcards\n\
                spec:\n  action: warn\n  allowWildcardSubdomains: false\n  allowDefaultBackend: true\n";
    std::fs::write(dir.join("ingress-wildcards.yaml"), warn).map_err(|e| e.to_string())?;
    Ok(dir.to_owned())
}

fn deploy_manifests_are_valid(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    // A copy of deploy/ with certificates from `defender certs`, as an operator
    // following deploy/README.md would have, plus an operator's own overlay:
    // the manual-certs install with policies from a ConfigMap.
    let copy = world.cluster.dir.parent().expect("a work directory").join("deploy");
    copy_dir(&world.repo.join("deploy"), &copy)?;
    run(Command::new(env!("CARGO_BIN_EXE_defender"))
        .args(["certs", "--service", "defender", "--namespace", "defender-system", "--out"])
        .arg(copy.join("overlays/manual-certs/certs")))?;
    let custom = copy.join("overlays/custom-policies");
    std::fs::create_dir_all(&custom).map_err(|e| e.to_string())?;
    std::fs::write(
        custom.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../manual-certs]\n\
         components: [../../components/custom-policies]\n",
    )
    .map_err(|e| e.to_string())?;
    for overlay in ["base", "overlays/cert-manager", "overlays/manual-certs", "overlays/custom-policies"] {
        k.ok(&["kustomize", &copy.join(overlay).display().to_string()])?;
    }
    k.ok(&["apply", "-f", &copy.join("base/namespace.yaml").display().to_string()])?;
    for overlay in ["overlays/manual-certs", "overlays/custom-policies"] {
        k.run(&["apply", "--dry-run=server", "-k", &copy.join(overlay).display().to_string()]).accepted()?;
    }
    Ok(())
}

fn mutual_tls(world: &mut World) -> Check {
    // Setup already proved the API server's calls get through (it presents
    // pki/webhook-client.crt through its admission configuration).
    if world.defender.probe("/healthz", false) {
        return Err("Defender answered a client without a certificate".to_owned());
    }
    if world.defender.probe("/healthz", true) {
        Ok(())
    } else {
        Err("a cluster-CA client was refused".to_owned())
    }
}

fn core_namespaces(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    // The API server itself refuses to delete these three (its NamespaceLifecycle
    // admission runs before webhooks); Defender guards them should that change.
    for name in ["kube-system", "default"] {
        let outcome = k.run(&["delete", "namespace", name]);
        outcome.rejected_with(&format!("\"{name}\""))?;
        if !(outcome.stderr.contains("defender/core-namespaces")
            || outcome.stderr.contains("may not be deleted"))
        {
            return Err(format!("unexpected rejection: {}", outcome.stderr));
        }
    }
    for name in ["kube-node-lease", "defender-system"] {
        let message = format!(
            "defender/core-namespaces: namespace \"{name}\" is a core namespace and cannot be deleted"
        );
        k.run(&["delete", "namespace", name, "--dry-run=server"]).rejected_with(&message)?;
        k.run(&["delete", "namespace", name]).rejected_with(&message)?;
    }
    create_namespace(k, "e2e-payments", &["defender.io/core=true"])?;
    k.run(&["delete", "namespace", "e2e-payments"])
        .rejected_with("is marked core (label defender.io/core=true)")?;
    k.run(&["label", "namespace", "e2e-payments", "defender.io/core-"]).rejected_with("defender.io/core")?;
    k.run(&["label", "namespace", "e2e-payments", "team=payments"]).accepted()
}

fn namespace_confirmation(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    create_namespace(k, "e2e-soft", &[])?;
    k.run(&["delete", "namespace", "e2e-soft"]).rejected_with(
        "kubectl defender confirm-delete e2e-soft, or kubectl annotate namespace e2e-soft defender.io/delete-after=",
    )?;
    let too_soon = format!("defender.io/delete-after={}", rfc3339_in(2));
    k.run(&["annotate", "namespace", "e2e-soft", &too_soon])
        .rejected_with(&format!("sooner than the {COOLDOWN_SECONDS}s cooldown allows"))?;
    let after = confirm_delete(world, "e2e-soft")?;
    k.run(&["delete", "namespace", "e2e-soft", "--wait=false"])
        .rejected_with("is confirmed for deletion only after")?;
    while jiff::Timestamp::now() <= after {
        std::thread::sleep(Duration::from_millis(250));
    }
    k.run(&["delete", "namespace", "e2e-soft", "--wait=false"]).accepted()
}

/// `defender confirm-delete` refuses a time sooner than the cooldown, judges a
/// dry run without storing it, and, run by kubectl as the kubectl-defender
/// plugin, sets the annotation; returns the time it set.
fn confirm_delete(world: &World, namespace: &str) -> Result<jiff::Timestamp, String> {
    let k = &world.cluster.kubectl;
    let work = world.cluster.dir.parent().expect("a work directory");
    let policies = work.join("policies");
    let policies = policies.to_str().expect("a UTF-8 path");
    let kubeconfig = world.cluster.dir.join("kubeconfig");
    let kubeconfig = kubeconfig.to_str().expect("a UTF-8 path");
    let cli = |extra: &[&str]| {
        let args =
            [&["confirm-delete", namespace, "--policies", policies, "--kubeconfig", kubeconfig], extra];
        env::defender_cli(&args.concat())
    };
    cli(&["--after", "2s"]).rejected_with(&format!(
        "--after 2s is shorter than the {COOLDOWN_SECONDS}s cooldown of policy namespace-deletion"
    ))?;
    let annotation = || {
        k.ok(&[
            "get",
            "namespace",
            namespace,
            "-o",
            r"jsonpath={.metadata.annotations.defender\.io/delete-after}",
        ])
    };
    let dry_run = cli(&["--dry-run"]);
    dry_run.accepted()?;
    if !dry_run.stdout.contains("(server dry run)") || !annotation()?.is_empty() {
        return Err(format!("a dry run changed the namespace or did not say so: {}", dry_run.stdout));
    }
    let plugins = work.join("plugins");
    std::fs::create_dir_all(&plugins).map_err(|e| e.to_string())?;
    let plugin = plugins.join("kubectl-defender");
    if !plugin.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_defender"), &plugin).map_err(|e| e.to_string())?;
    }
    let asked = jiff::Timestamp::now();
    let confirmed =
        k.run_with_plugins(&plugins, &["defender", "confirm-delete", namespace, "--policies", policies]);
    confirmed.accepted()?;
    let set = annotation()?;
    let at: jiff::Timestamp = set.parse().map_err(|e| format!("annotation {set:?}: {e}"))?;
    let earliest = asked + jiff::SignedDuration::from_secs(COOLDOWN_SECONDS);
    let latest = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(COOLDOWN_SECONDS + 10);
    let said = format!("it can be deleted after {set} (in ");
    if at < earliest || at > latest || !confirmed.stdout.contains(&said) {
        return Err(format!(
            "confirm-delete set defender.io/delete-after={set}, expected between {earliest} and {latest}, \
             and to say {said:?}: {}",
            confirmed.stdout
        ));
    }
    Ok(at)
}

fn namespace_teardown_finishes(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-teardown";
    create_namespace(k, ns, &["defender.io/skip-delete-confirmation=true"])?;
    k.apply(&workloads(ns, 2)).accepted()?;
    k.run(&["delete", "namespace", ns, "--wait=false"]).accepted()?;
    let gone =
        wait_until(Duration::from_secs(90), || k.run(&["get", "namespace", ns]).stderr.contains("NotFound"));
    if gone {
        Ok(())
    } else {
        let left = k.run(&["get", "namespace", ns, "-o", "jsonpath={.status}"]).stdout;
        Err(format!("namespace {ns} still exists after 90s: {left}"))
    }
}

fn cascading_protection(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-cascading";
    create_namespace(
        k,
        ns,
        &["defender.io/delete-protection=Cascading", "defender.io/skip-delete-confirmation=true"],
    )?;
    // No scheduler or kubelet here: the pods stay Pending, and Pending counts.
    // No deployment controller either: the Deployment asks for pods but gets none.
    k.apply(&pods(ns, 2)).accepted()?;
    k.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  replicas: 2\n  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
         spec: {{containers: [{{name: web, image: registry.example.com/web:1}}]}}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, namespace: {ns}}}\n\
         spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
    ))
    .accepted()?;
    // No volume controller binds it: mark it Bound as the binder would.
    k.ok(&[
        "patch",
        "pvc",
        "data",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bound"}}"#,
    ])?;
    let counted = format!(
        "defender/cascading-protection: namespace \"{ns}\" still holds 2 running or pending pods, \
         1 deployment with replicas > 0, 1 bound PVC"
    );
    let seen = wait_until(Duration::from_secs(20), || {
        k.run(&["delete", "namespace", ns, "--dry-run=server"]).stderr.contains(&counted)
    });
    if !seen {
        return k.run(&["delete", "namespace", ns, "--dry-run=server"]).rejected_with(&counted);
    }
    let outcome = k.run(&["delete", "namespace", ns, "--wait=false"]);
    outcome.rejected_with(&counted)?;
    outcome.rejected_with(&format!("kubectl label namespace {ns} defender.io/delete-protection-"))?;
    println!("      $ kubectl delete namespace {ns}\n      {}", outcome.stderr.trim());
    k.ok(&["get", "namespace", ns])?;
    // Emptied (scaled down, pods deleted, the claim on its way out), it is no longer held back.
    k.ok(&["scale", "deployment", "web", "-n", ns, "--replicas=0"])?;
    k.ok(&["delete", "pods", "--all", "-n", ns, "--wait=false"])?;
    k.ok(&["delete", "pvc", "data", "-n", ns, "--wait=false"])?;
    let released = wait_until(Duration::from_secs(20), || {
        let outcome = k.run(&["delete", "namespace", ns, "--dry-run=server"]);
        !outcome.stderr.contains("cascading-protection")
            && (outcome.code == 0 || outcome.stderr.contains("defender/"))
    });
    if released {
        Ok(())
    } else {
        let outcome = k.run(&["delete", "namespace", ns, "--dry-run=server"]);
        Err(format!("the emptied namespace is still held back: {}", outcome.stderr.trim()))
    }
}

fn namespace_budget(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    for ns in ["e2e-budget-1", "e2e-budget-2"] {
        create_namespace(k, ns, &["defender.io/skip-delete-confirmation=true"])?;
    }
    // Dry runs are judged but spend nothing: five of them leave the third
    // deletion of this run (two were spent above) available.
    for _ in 0..5 {
        k.run(&["delete", "namespace", "e2e-budget-1", "--dry-run=server"]).accepted()?;
    }
    k.run(&["delete", "namespace", "e2e-budget-1", "--wait=false"]).accepted()?;
    let outcome = k.run(&["delete", "namespace", "e2e-budget-2", "--wait=false"]);
    outcome.rejected_with("the cluster-wide namespace deletion budget (3 per 10m) is used up")?;
    outcome.rejected_with("The next deletion is possible at")
}

fn protected_deletes(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-guard";
    create_namespace(k, ns, &[])?;
    k.apply(&workloads(ns, 0)).accepted()?;
    for (kind, name) in [("ingress", "web"), ("service", "web"), ("secret", "db"), ("configmap", "settings")]
    {
        k.run(&["delete", kind, name, "-n", ns]).rejected_with(&format!(
            "defender/deletion-guard: {kind} \"{ns}/{name}\" is protected against deletion. To delete it on purpose, \
             label it first, then delete it again: kubectl label {kind} {name} -n {ns} defender.io/deletion-allowed=true"
        ))?;
        k.run(&["label", kind, name, "-n", ns, "defender.io/deletion-allowed=true"]).accepted()?;
        k.run(&["delete", kind, name, "-n", ns]).accepted()?;
    }
    // Recreated for the outage scenario.
    k.apply(&workloads(ns, 0)).accepted()
}

fn namespace_label_from_cluster(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-sandbox";
    create_namespace(k, ns, &[])?;
    k.apply(&workloads(ns, 2)).accepted()?;
    k.run(&["delete", "secret", "db", "-n", ns]).rejected_with("is protected against deletion")?;
    // A label added now reaches Defender through its namespace watch.
    k.run(&["label", "namespace", ns, "defender.io/deletion-allowed=true"]).accepted()?;
    let exempt =
        wait_until(Duration::from_secs(20), || k.run(&["delete", "secret", "db", "-n", ns]).code == 0);
    if !exempt {
        return Err(
            "deleting a Secret in a namespace labelled defender.io/deletion-allowed=true is still denied"
                .into(),
        );
    }
    k.run(&["delete", "configmap", "settings", "-n", ns]).accepted()?;
    // With the label on the namespace, a deletecollection of its pods is allowed too.
    k.run(&["delete", "--raw", &format!("/api/v1/namespaces/{ns}/pods")]).accepted()
}

fn secret_in_use(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-in-use";
    create_namespace(k, ns, &[])?;
    k.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {ns}}}\nstringData: {{password: x}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: api, namespace: {ns}}}\nspec:\n  containers:\n    - name: api\n      \
         image: registry.example.com/api:1\n      envFrom: [{{secretRef: {{name: db}}}}]\n"
    ))
    .accepted()?;
    let warning = format!(
        "Warning: defender/in-use-guard: secret \"{ns}/db\" is in use by pod {ns}/api (envFrom); without it,"
    );
    // Protected by deletion-guard, and the in-use warning comes with the denial.
    let reported = wait_until(Duration::from_secs(20), || {
        let outcome = k.run(&["delete", "secret", "db", "-n", ns]);
        outcome.rejected_with("defender/deletion-guard").is_ok() && outcome.stderr.contains(&warning)
    });
    if !reported {
        let outcome = k.run(&["delete", "secret", "db", "-n", ns]);
        return Err(format!("no in-use warning with the denial: {}", outcome.stderr.trim()));
    }
    // Deletions allowed in the namespace: the delete goes through, with the warning.
    k.ok(&["label", "namespace", ns, "defender.io/deletion-allowed=true"])?;
    let mut last = None;
    wait_until(Duration::from_secs(20), || {
        let outcome = k.run(&["delete", "secret", "db", "-n", ns]);
        let deleted = outcome.code == 0;
        last = Some(outcome);
        deleted
    });
    let outcome = last.ok_or("kubectl never ran")?;
    outcome.accepted_with_warning(&warning)?;
    println!("      $ kubectl delete secret db -n {ns}\n      {}", outcome.stderr.trim());
    Ok(())
}

fn pod_bulk_deletes(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-pods";
    create_namespace(k, ns, &[])?;
    k.apply(&pods(ns, 8)).accepted()?;
    let outcome = k.run(&["delete", "pods", "--all", "-n", ns, "--wait=false"]);
    outcome.rejected_with("has reached the limit of 5 pods deleted in namespace \"e2e-pods\" within 1m")?;
    let left = k.ok(&["get", "pods", "-n", ns, "-o", "name"])?.lines().count();
    if left != 3 {
        return Err(format!("expected 5 of 8 pods deleted and 3 left, {left} are left"));
    }
    let ns = "e2e-pods-collection";
    create_namespace(k, ns, &[])?;
    k.apply(&pods(ns, 2)).accepted()?;
    k.run(&["delete", "--raw", &format!("/api/v1/namespaces/{ns}/pods")])
        .rejected_with("defender/deletion-guard: deleting pods as a collection (deletecollection)")?;
    let left = k.ok(&["get", "pods", "-n", ns, "-o", "name"])?.lines().count();
    if left != 2 { Err(format!("the deletecollection removed pods: {left} of 2 left")) } else { Ok(()) }
}

fn ingress_hosts(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-web";
    create_namespace(k, ns, &[])?;
    // The API server's own validation refuses a bare "*" before any webhook runs.
    k.apply(&ingress(ns, "catch-all", Some("*")))
        .rejected_with("spec.rules[0].host: Invalid value: \"*\"")?;
    let hostless = k.apply(&ingress(ns, "hostless", None));
    hostless.rejected_with("spec.rules[0] has no host, so it matches every host")?;
    println!("      $ kubectl apply -f hostless-ingress.yaml\n      {}", hostless.stderr.trim());
    k.apply(&ingress(ns, "too-broad", Some("*.com"))).rejected_with("\"*.com\"")?;
    // Configured as a warning (a warn-mode policy): kubectl prints `Warning:`.
    k.apply(&ingress(ns, "wildcard", Some("*.shop.example.com")))
        .accepted_with_warning("Warning: defender/ingress-wildcards:")?;
    k.apply(&ingress(ns, "shop", Some("shop.example.com"))).accepted()
}

fn duplicate_hosts(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let host = "hosts.e2e.example.com";
    create_namespace(k, "e2e-hosts-a", &[])?;
    create_namespace(k, "e2e-hosts-b", &[])?;
    k.apply(&ingress("e2e-hosts-a", "web", Some(host))).accepted()?;
    let warning = format!(
        "Warning: defender/duplicate-hosts: ingress \"e2e-hosts-b/web\" would serve hosts and paths another \
         namespace already serves: {host}/ (served by ingress \"e2e-hosts-a/web\")"
    );
    // The first Ingress reaches Defender's view through its watch; a dry run
    // shows the verdict without creating the second one.
    let warned = wait_until(Duration::from_secs(20), || {
        let outcome = k.run_with_stdin(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&ingress("e2e-hosts-b", "web", Some(host))),
        );
        outcome.accepted_with_warning(&warning).is_ok()
    });
    if !warned {
        return k.apply(&ingress("e2e-hosts-b", "web", Some(host))).accepted_with_warning(&warning);
    }
    k.apply(&ingress("e2e-hosts-b", "web", Some(host))).accepted_with_warning(&warning)?;
    // This control plane has no Gateway API: Defender says so once and does not wait for it.
    let log = world.defender.log_text();
    if log.contains("does not serve gateway.networking.k8s.io HTTPRoute") {
        Ok(())
    } else {
        Err("Defender's log does not say that HTTPRoutes are not served".to_owned())
    }
}

fn defender_outage(world: &mut World) -> Check {
    world.defender.stop()?;
    let k = &world.cluster.kubectl;
    // deletions.defender.io has failurePolicy Fail, pod-deletions Ignore.
    k.run(&["delete", "secret", "db", "-n", "e2e-guard"]).rejected_with("failed calling webhook")?;
    k.run(&["delete", "namespace", "e2e-budget-2", "--wait=false"])
        .rejected_with("failed calling webhook")?;
    k.run(&["delete", "pod", "pod-0", "-n", "e2e-pods-collection", "--wait=false"]).accepted()?;
    world.defender.start()?;
    let k = &world.cluster.kubectl;
    let serving = wait_until(Duration::from_secs(20), || {
        k.run(&["delete", "secret", "db", "-n", "e2e-guard"]).stderr.contains("defender/deletion-guard")
    });
    if serving { Ok(()) } else { Err("Defender did not judge requests again after the restart".to_owned()) }
}

/// Median API server time for a dry-run namespace DELETE (judged by the
/// webhook, changes nothing), with Defender registered and then without.
fn namespace_delete_latency(world: &mut World) -> Check {
    const SAMPLES: usize = 60;
    let k = &world.cluster.kubectl;
    create_namespace(k, "e2e-latency", &["defender.io/skip-delete-confirmation=true"])?;
    let url = format!("{}/api/v1/namespaces/e2e-latency?dryRun=All", world.cluster.url());
    let curl_args = world.cluster.admin_curl_args();
    let sample = || -> Result<f64, String> {
        let output = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "DELETE"])
            .args(&curl_args)
            .arg(&url)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        match text.split_once(' ') {
            Some(("200", seconds)) => seconds.parse::<f64>().map_err(|e| e.to_string()),
            _ => Err(format!("dry-run DELETE failed: {text} {}", String::from_utf8_lossy(&output.stderr))),
        }
    };
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2] * 1000.0
    };
    let mut with = (0..SAMPLES).map(|_| sample()).collect::<Result<Vec<_>, _>>()?;
    k.ok(&["delete", "validatingwebhookconfiguration", "defender"])?;
    // Wait until the API server no longer calls Defender.
    let unregistered = wait_until(Duration::from_secs(30), || {
        k.run(&["delete", "namespace", "kube-node-lease", "--dry-run=server"]).code == 0
    });
    if !unregistered {
        return Err(
            "the API server kept calling Defender after its webhook configuration was deleted".to_owned()
        );
    }
    let mut without = (0..SAMPLES).map(|_| sample()).collect::<Result<Vec<_>, _>>()?;
    let (with, without) = (median(&mut with), median(&mut without));
    println!(
        "      namespace DELETE (dry run), median of {SAMPLES}: {with:.2} ms with Defender, {without:.2} ms without \
         (+{:.2} ms)",
        with - without
    );
    Ok(())
}

pub fn create_namespace(k: &crate::env::Kubectl, name: &str, labels: &[&str]) -> Check {
    let labels: String = labels
        .iter()
        .filter_map(|label| label.split_once('='))
        .map(|(key, value)| format!("\n    {key}: \"{value}\""))
        .collect();
    let labels = if labels.is_empty() { String::new() } else { format!("\n  labels:{labels}") };
    k.apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}{labels}\n")).accepted()?;
    // Pods need the namespace's default ServiceAccount, made by a controller.
    if wait_until(Duration::from_secs(30), || {
        k.run(&["get", "serviceaccount", "default", "-n", name]).code == 0
    }) {
        Ok(())
    } else {
        Err(format!("namespace {name} got no default ServiceAccount"))
    }
}

fn workloads(ns: &str, pod_count: usize) -> String {
    let mut manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {ns}}}\nstringData: {{password: x}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{mode: e2e}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec: {{ports: [{{port: 80}}], selector: {{app: web}}}}\n---\n{}",
        ingress(ns, "web", Some("web.example.com"))
    );
    if pod_count > 0 {
        manifest.push_str("---\n");
        manifest.push_str(&pods(ns, pod_count));
    }
    manifest
}

fn pods(ns: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{i}, namespace: {ns}, labels: {{app: web}}}}\n\
                 spec: {{containers: [{{name: app, image: registry.example.com/app:1}}]}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

pub fn ingress(ns: &str, name: &str, host: Option<&str>) -> String {
    let host = host.map(|h| format!("host: \"{h}\"\n      ")).unwrap_or_default();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  rules:\n    - \
         {host}http:\n        paths:\n          - path: /\n            pathType: Prefix\n            \
         backend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
    )
}

fn rfc3339_in(seconds: i64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    jiff::Timestamp::from_second(at.as_second()).expect("a valid time").to_string()
}

fn copy_dir(from: &Path, to: &Path) -> Check {
    run(Command::new("cp").arg("-r").arg(from).arg(to))
}

fn run(command: &mut Command) -> Check {
    match command.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr))),
        Err(error) => Err(format!("{command:?}: {error}")),
    }
}
