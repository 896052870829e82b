//! `defender audit` on the live cluster: Ingresses admitted while Defender
//! was down (its Ingress webhook fails open) are found, and are gone from the
//! report once fixed; `--apply` writes them as PolicyReports, which the API
//! server checks against the wgpolicyk8s.io CRDs.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::World;
use crate::env::{Check, Defender, wait_until};

const NAMESPACE: &str = "e2e-audit";
const OTHER: &str = "e2e-audit-other";
const SHARED_HOST: &str = "shared.audit.e2e.example.com";

fn ingress(namespace: &str, name: &str, host: Option<&str>) -> Value {
    let mut rule = json!({"http": {"paths": [{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}});
    if let Some(host) = host {
        rule["host"] = json!(host);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": namespace}, "spec": {"rules": [rule]}})
}

fn list(items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// `defender audit` with the scenario's cluster and policies: exit code and stdout.
fn audit(world: &World, args: &[&str]) -> Result<(i32, String), String> {
    let output = Command::new(env!("CARGO_BIN_EXE_defender"))
        .arg("audit")
        .arg("--kubeconfig")
        .arg(world.cluster.dir.join("kubeconfig"))
        .arg("--policies")
        .arg(&world.defender.policies)
        .args(args)
        .output()
        .map_err(|e| format!("defender audit: {e}"))?;
    let code = output.status.code().unwrap_or(-1);
    if code == 2 || code < 0 {
        return Err(format!("defender audit exited {code}: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok((code, String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// The audit's JSON report, after checking the exit code says what it holds.
fn audit_json(world: &World) -> Result<Value, String> {
    let (code, stdout) = audit(world, &["--output", "json"])?;
    let report: Value = serde_json::from_str(&stdout).map_err(|e| format!("{e}: {stdout}"))?;
    let violations: u64 = report["policies"]
        .as_array()
        .ok_or("no policies in the report")?
        .iter()
        .map(|policy| policy["fail"].as_u64().unwrap_or(0) + policy["warn"].as_u64().unwrap_or(0))
        .sum();
    if (code == 1) != (violations > 0) {
        return Err(format!("exit code {code} with {violations} violations"));
    }
    Ok(report)
}

/// (policy, result, namespace/name) of each violation in our namespaces, sorted.
fn ours(report: &Value) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = report["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|policy| policy["violations"].as_array().cloned().unwrap_or_default())
        .filter(|v| v["resource"]["namespace"].as_str().is_some_and(|ns| ns.starts_with(NAMESPACE)))
        .map(|v| {
            let at = format!(
                "{}/{}",
                v["resource"]["namespace"].as_str().unwrap_or(""),
                v["resource"]["name"].as_str().unwrap_or("")
            );
            (v["policy"].as_str().unwrap_or("").to_owned(), v["result"].as_str().unwrap_or("").to_owned(), at)
        })
        .collect();
    found.sort();
    found
}

fn policy_report(world: &World, namespace: &str) -> Result<Value, String> {
    let text = world.cluster.kubectl.ok(&[
        "get",
        "policyreport",
        "defender-audit",
        "-n",
        namespace,
        "-o",
        "json",
    ])?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

pub fn existing_violations(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    for namespace in [NAMESPACE, OTHER] {
        k.apply(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}).to_string(),
        )
        .accepted()?;
    }
    let bad = list(vec![
        // The API server itself refuses a bare `*`; a top-level wildcard it admits.
        ingress(NAMESPACE, "catch-all", Some("*.com")),
        ingress(NAMESPACE, "hostless", None),
        ingress(NAMESPACE, "shared", Some(SHARED_HOST)),
        ingress(OTHER, "shared", Some(SHARED_HOST)),
    ]);
    // ingress-hosts.defender.io fails open: while Defender is down these get in unjudged.
    world.defender.stop()?;
    let admitted = k.apply(&bad);
    world.defender.start()?;
    admitted.accepted()?;
    let k = &world.cluster.kubectl;
    // Proof they got in only through the outage: Defender refuses the same now.
    k.apply(&list(vec![ingress(NAMESPACE, "catch-all-again", Some("*.com"))]))
        .rejected_with("defender/ingress-hosts")?;

    periodic_audit_counts_them(world)?;

    let report = audit_json(world)?;
    let expected = [
        ("duplicate-hosts", "warn", "e2e-audit-other/shared"),
        ("duplicate-hosts", "warn", "e2e-audit/shared"),
        ("ingress-hosts", "fail", "e2e-audit/catch-all"),
        ("ingress-hosts", "fail", "e2e-audit/hostless"),
    ];
    let found = ours(&report);
    for (policy, result, at) in expected {
        if !found.iter().any(|f| (f.0.as_str(), f.1.as_str(), f.2.as_str()) == (policy, result, at)) {
            return Err(format!("the audit did not report {policy} {result} {at}; it reported {found:?}"));
        }
    }
    let deletion_guard =
        report["notAudited"].as_array().into_iter().flatten().any(|n| n["policy"] == "deletion-guard");
    if !deletion_guard {
        return Err(format!("deletion-guard is not listed as not audited: {}", report["notAudited"]));
    }

    // Reports in the cluster, checked by the API server against the CRDs.
    let crds = world.repo.join("tests/e2e/fixtures/policyreport-crds.yaml");
    k.ok(&["apply", "-f", &crds.display().to_string()])?;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/policyreports.wgpolicyk8s.io",
        "crd/clusterpolicyreports.wgpolicyk8s.io",
    ])?;
    // Discovery of the new group can lag its Established condition by a moment.
    let mut applied = Err("never ran".to_owned());
    let served = wait_until(Duration::from_secs(20), || {
        applied = audit(world, &["--apply", "--output", "policyreport"]);
        applied.is_ok()
    });
    if !served {
        return Err(format!("defender audit --apply failed: {}", applied.err().unwrap_or_default()));
    }
    let written = policy_report(world, NAMESPACE)?;
    let fails: Vec<&str> = written["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["result"] == "fail" && r["policy"] == "ingress-hosts" && r["source"] == "defender")
        .filter_map(|r| r["resources"][0]["name"].as_str())
        .collect();
    let shared_warned = written["results"].as_array().into_iter().flatten().any(|r| {
        r["result"] == "warn" && r["policy"] == "duplicate-hosts" && r["resources"][0]["name"] == "shared"
    });
    if fails != ["catch-all", "hostless"] || !shared_warned || written["summary"]["fail"] != 2 {
        return Err(format!("unexpected PolicyReport in {NAMESPACE}: {written}"));
    }
    k.ok(&["get", "clusterpolicyreport", "defender-audit"])?;

    // Fixed (updates Defender judges and allows), the audit has nothing left to say about them.
    let fixed = list(vec![
        ingress(NAMESPACE, "catch-all", Some("catch-all.audit.e2e.example.com")),
        ingress(NAMESPACE, "hostless", Some("hostless.audit.e2e.example.com")),
        ingress(OTHER, "shared", Some("other.audit.e2e.example.com")),
    ]);
    k.apply(&fixed).accepted()?;
    let report = audit_json(world)?;
    let left = ours(&report);
    if !left.is_empty() {
        return Err(format!("violations left after the fixes: {left:?}"));
    }
    audit(world, &["--apply"])?;
    let written = policy_report(world, NAMESPACE)?;
    let violations: Vec<&Value> =
        written["results"].as_array().into_iter().flatten().filter(|r| r["result"] != "pass").collect();
    if !violations.is_empty() || written["summary"]["fail"] != 0 || written["summary"]["pass"] == 0 {
        return Err(format!("the PolicyReport in {NAMESPACE} still holds violations: {written}"));
    }
    Ok(())
}

/// `serve --audit-interval`: a second Defender (not registered as a webhook)
/// audits every second and exports what it found per policy.
fn periodic_audit_counts_them(world: &World) -> Check {
    let work = world.cluster.dir.parent().expect("a work directory").join("audit-replica");
    let mut replica = Defender::new(&work, world.defender.policies.clone(), &world.cluster.dir)?;
    replica.extra_args = vec!["--audit-interval=1s".to_owned()];
    replica.start()?;
    let violations = |text: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(r#"defender_audit_violations{policy="ingress-hosts"} "#))
            .and_then(|value| value.trim().parse().ok())
    };
    let mut last = String::new();
    let counted = wait_until(Duration::from_secs(20), || {
        last = replica.get("/metrics").unwrap_or_default();
        violations(&last).is_some_and(|count| count >= 2.0)
    });
    let logged = replica.log_text().contains("periodic audit:");
    replica.stop()?;
    if !counted || !logged {
        let found: Vec<&str> = last.lines().filter(|line| line.starts_with("defender_audit")).collect();
        return Err(format!(
            "the periodic audit did not count the 2 bad Ingresses (logged: {logged}): {found:?}"
        ));
    }
    Ok(())
}
