//! duplicate-hosts with a large cluster: 5,000 routes in Defender's live
//! view, and a new Ingress taking every one of them still gets its warning.
//! The Ingress webhook is `Ignore`, so an answer later than its timeout would
//! let the Ingress through silently: the warning is the proof it came in time.
//! Comparing each added route with every route served would be 25 million
//! comparisons; looked up by host and path, it is 5,000 lookups.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::World;
use crate::env::{Check, Kubectl, wait_until};

const NAMESPACE: &str = "e2e-scale";
const INTRUDER: &str = "e2e-scale-intruder";
/// 50 Ingresses of 100 rules: 5,000 routes, each Ingress within what the view keeps whole.
const INGRESSES: usize = 50;
const RULES: usize = 100;

fn host(route: usize) -> String {
    format!("scale-{route:04}.e2e.example.com")
}

/// An Ingress the deletion guard lets go, so the scenario can clean up.
fn ingress(namespace: &str, name: &str, routes: impl Iterator<Item = usize>) -> Value {
    let rules: Vec<Value> = routes
        .map(|route| {
            json!({"host": host(route), "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}})
        })
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": namespace, "labels": {"defender.io/deletion-allowed": "true"}},
           "spec": {"rules": rules}})
}

fn namespace(k: &Kubectl, name: &str) -> Check {
    k.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).to_string())
        .accepted()
}

/// Defender's own time for the intruder's review, from its decision log.
fn defender_latency_ms(log: &str) -> Option<f64> {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|record| record.get("fields").cloned().unwrap_or(record))
        .filter(|fields| {
            fields["namespace"] == INTRUDER && fields["operation"] == "CREATE" && fields["dry_run"] == false
        })
        .find_map(|fields| fields["latency_ms"].as_f64())
}

pub fn duplicate_hosts_at_scale(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    namespace(k, NAMESPACE)?;
    namespace(k, INTRUDER)?;
    let items: Vec<Value> = (0..INGRESSES)
        .map(|i| ingress(NAMESPACE, &format!("web-{i:02}"), i * RULES..(i + 1) * RULES))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let began = Instant::now();
    k.run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(&list.to_string())).accepted()?;
    println!(
        "      {} routes in {INGRESSES} Ingresses created in {:.1}s",
        INGRESSES * RULES,
        began.elapsed().as_secs_f64()
    );

    let taken = INGRESSES * RULES;
    let intruder = ingress(INTRUDER, "web", 0..taken).to_string();
    let warning = format!(
        "Warning: defender/duplicate-hosts: ingress \"{INTRUDER}/web\" would serve hosts and paths another \
         namespace already serves: {}/ (served by ingress \"{NAMESPACE}/web-00\")",
        host(0)
    );
    let counted = format!("and {} more", taken - 5);
    // The last Ingress reaches Defender's view through its watch; dry runs show
    // the verdict without creating anything.
    let last = ingress(INTRUDER, "probe", std::iter::once(INGRESSES * RULES - 1)).to_string();
    let synced = wait_until(Duration::from_secs(60), || {
        k.run_with_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&last))
            .stderr
            .contains("duplicate-hosts")
    });
    if !synced {
        return Err("Defender's view never held the last of the 5,000 routes".to_owned());
    }
    let began = Instant::now();
    let created = k.run_with_stdin(&["create", "-f", "-"], Some(&intruder));
    let elapsed = began.elapsed();
    created.accepted_with_warning(&warning)?;
    created.accepted_with_warning(&counted)?;
    let inside = defender_latency_ms(&world.defender.log_text())
        .map_or_else(|| "not logged".to_owned(), |ms| format!("{ms:.3} ms"));
    println!(
        "      an Ingress taking all {taken} routes judged: kubectl create {:.0} ms in all, inside Defender {inside}",
        elapsed.as_secs_f64() * 1000.0
    );
    // The Ingresses go; the namespaces stay (deleting them would spend the namespace budget).
    k.run(&["delete", "ingress", "--all", "-n", INTRUDER]).accepted()?;
    k.run(&["delete", "ingress", "--all", "-n", NAMESPACE]).accepted()
}
