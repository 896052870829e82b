//! An audit as people read it (text) and as programs read it (JSON).

use std::fmt::Write as _;

use serde::Serialize;

use super::{Audit, AuditResult, KindAudited, LeftOut, NotAudited, PolicyResult, PolicySummary};

/// The text report: what was judged, then each policy with the objects that
/// violate it, then what was left out and why.
pub fn text(audit: &Audit) -> String {
    let mut out = String::new();
    let judged: usize = audit.kinds.iter().map(|kind| kind.objects).sum();
    let served: Vec<String> = audit
        .kinds
        .iter()
        .filter(|kind| kind.served)
        .map(|kind| format!("{} {}", kind.objects, kind.resource))
        .collect();
    let _ = writeln!(out, "Judged {judged} existing objects as if created now: {}", served.join(", "));
    let unserved: Vec<&str> =
        audit.kinds.iter().filter(|kind| !kind.served).map(|kind| kind.resource.as_str()).collect();
    if !unserved.is_empty() {
        let _ = writeln!(out, "Not served by this cluster: {}", unserved.join(", "));
    }
    for summary in audit.policies() {
        let _ = writeln!(
            out,
            "\n{} ({}): {} of {} objects violate it",
            summary.policy,
            summary.action.as_str(),
            summary.violations(),
            summary.judged
        );
        for result in audit.violations().filter(|result| result.policy == summary.policy) {
            let _ = writeln!(out, "  {:<5} {}", result.result.as_str(), result.object);
            let message = result.message.as_deref().unwrap_or_default();
            for line in message.lines() {
                let _ = writeln!(out, "        defender/{}: {line}", result.policy);
            }
        }
    }
    if !audit.not_audited.is_empty() {
        let _ = writeln!(out, "\nNot audited:");
        for NotAudited { policy, why } in &audit.not_audited {
            let _ = writeln!(out, "  {policy}: {why}");
        }
    }
    if audit.left_out.total() > 0 {
        let _ = writeln!(out, "\nLeft out: {}", left_out(&audit.left_out).join(", "));
    }
    if !audit.unjudgeable.is_empty() {
        let _ = writeln!(out, "\nCould not be judged:");
        for line in &audit.unjudgeable {
            let _ = writeln!(out, "  error {line}");
        }
    }
    let (fail, warn) = tally(audit);
    let _ = writeln!(out, "\n{fail} fail, {warn} warn");
    out
}

fn left_out(left_out: &LeftOut) -> Vec<String> {
    let counts = [
        (left_out.being_deleted, "being deleted"),
        (left_out.in_terminating_namespaces, "in namespaces being deleted"),
        (left_out.in_own_namespace, "in Defender's own namespace, which the webhook never sends"),
    ];
    counts
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, why)| format!("{count} object{} {why}", if count == 1 { "" } else { "s" }))
        .collect()
}

/// Violations with outcome fail, and with outcome warn.
pub fn tally(audit: &Audit) -> (usize, usize) {
    let count = |outcome| audit.results.iter().filter(|result| result.result == outcome).count();
    (count(PolicyResult::Fail), count(PolicyResult::Warn))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Json<'a> {
    /// When the audit ran (RFC 3339).
    time: String,
    policies: Vec<PolicyJson<'a>>,
    kinds: &'a [KindAudited],
    left_out: &'a LeftOut,
    not_audited: &'a [NotAudited],
    unjudgeable: &'a [String],
}

#[derive(Serialize)]
struct PolicyJson<'a> {
    #[serde(flatten)]
    summary: PolicySummary,
    /// The violations; passes are only counted.
    violations: Vec<&'a AuditResult>,
}

/// The JSON report: every policy's tally and violations, what was judged and left out.
pub fn json(audit: &Audit) -> String {
    let policies = audit
        .policies()
        .into_iter()
        .map(|summary| {
            let violations = audit.violations().filter(|result| result.policy == summary.policy).collect();
            PolicyJson { summary, violations }
        })
        .collect();
    let report = Json {
        time: audit.at.to_string(),
        policies,
        kinds: &audit.kinds,
        left_out: &audit.left_out,
        not_audited: &audit.not_audited,
        unjudgeable: &audit.unjudgeable,
    };
    // Plain data with string keys: serializing it cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default()
}
