//! An audit as `wgpolicyk8s.io/v1alpha2` policy reports: one `PolicyReport`
//! per namespace for its objects, one `ClusterPolicyReport` for
//! cluster-scoped objects (namespaces), the format Policy Reporter, Kyverno
//! and other tools read.
//!
//! A report is one object in etcd, so each is bounded: at most
//! `max_results` results and [`MAX_RESULT_BYTES`] of them, violations first
//! (fail, then warn, then pass). The summary counts every result, those left
//! out included, and the annotation [`LEFT_OUT`] says how many were left out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Audit, AuditResult, PolicyResult};
use crate::policy::Action;

pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
pub const GROUP: &str = "wgpolicyk8s.io";
pub const VERSION: &str = "v1alpha2";
/// Every report Defender writes has this name, in each namespace and for the cluster.
pub const NAME: &str = "defender-audit";
/// The results a report holds by default.
pub const MAX_RESULTS: usize = 1000;
/// What the results of one report may take, encoded: well below etcd's
/// 1.5 MiB object limit, whatever the messages hold.
pub const MAX_RESULT_BYTES: usize = 1 << 20;
/// How many results were left out of a report to keep it bounded.
pub const LEFT_OUT: &str = "defender.io/results-left-out";
/// The label that marks Defender's reports, so stale ones can be found.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "defender");
/// The `source` of every result.
pub const SOURCE: &str = "defender";

/// The reports for `audit`: a `ClusterPolicyReport` if cluster-scoped
/// objects were judged, then one `PolicyReport` per namespace with judged
/// objects, by namespace name.
pub fn reports(audit: &Audit, max_results: usize) -> Vec<Value> {
    let mut scopes: BTreeMap<Option<&str>, Vec<&AuditResult>> = BTreeMap::new();
    for result in &audit.results {
        scopes.entry(result.resource.namespace.as_deref()).or_default().push(result);
    }
    scopes.into_iter().map(|(namespace, results)| report(audit, namespace, results, max_results)).collect()
}

fn report(
    audit: &Audit,
    namespace: Option<&str>,
    mut results: Vec<&AuditResult>,
    max_results: usize,
) -> Value {
    let summary = json!({
        "pass": count(&results, PolicyResult::Pass),
        "fail": count(&results, PolicyResult::Fail),
        "warn": count(&results, PolicyResult::Warn),
        "error": 0,
        "skip": 0,
    });
    // Violations first, so bounding drops passes before anything that needs fixing.
    results.sort_by(|a, b| (a.result, &a.resource, &a.policy).cmp(&(b.result, &b.resource, &b.policy)));
    let total = results.len();
    let mut kept = Vec::new();
    let mut bytes = 0;
    for result in results {
        let entry = entry(audit, result);
        let size = entry.to_string().len();
        if kept.len() == max_results || bytes + size > MAX_RESULT_BYTES {
            break;
        }
        bytes += size;
        kept.push(entry);
    }
    let left_out = total - kept.len();
    let mut metadata = json!({
        "name": NAME,
        "labels": {MANAGED_BY.0: MANAGED_BY.1},
        "annotations": {LEFT_OUT: left_out.to_string()},
    });
    let kind = match namespace {
        Some(namespace) => {
            metadata["namespace"] = json!(namespace);
            "PolicyReport"
        }
        None => "ClusterPolicyReport",
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "summary": summary,
        "results": kept,
    })
}

fn count(results: &[&AuditResult], outcome: PolicyResult) -> usize {
    results.iter().filter(|result| result.result == outcome).count()
}

fn entry(audit: &Audit, result: &AuditResult) -> Value {
    let severity = match result.action {
        Action::Deny => "high",
        Action::Warn => "medium",
        Action::Dryrun => "low",
    };
    let mut entry = json!({
        "source": SOURCE,
        "policy": result.policy,
        // Each Defender policy is one rule.
        "rule": result.policy,
        "category": "Defender",
        "severity": severity,
        "result": result.result.as_str(),
        "scored": true,
        "timestamp": {"seconds": audit.at.as_second(), "nanos": 0},
        "resources": [result.resource],
        "properties": {"action": result.action.as_str(), "judgedAs": "CREATE"},
    });
    if let Some(message) = &result.message {
        entry["message"] = json!(message);
    }
    entry
}
