//! One log line per decision, and a loud one when break-glass overrides a denial.

use std::time::Duration;

use crate::engine::Decision;
use crate::request::Request;
use crate::routing::operation_name;

pub fn decision(request: &Request, decision: &Decision, latency: Duration) {
    let policies = decision.fired_policies().join(",");
    tracing::info!(
        uid = request.uid(),
        user = request.username(),
        operation = operation_name(request.operation()),
        kind = request.kind(),
        namespace = request.namespace().unwrap_or(""),
        name = request.name(),
        policies,
        verdict = decision.outcome().as_str(),
        skipped = decision.skipped.map_or("", |skip| skip.as_str()),
        dry_run = request.dry_run(),
        latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3,
        "review"
    );
    if decision.break_glass {
        tracing::warn!(
            uid = request.uid(),
            user = request.username(),
            groups = request.groups().join(","),
            overridden = policies,
            "BREAK-GLASS: {} was let through despite denials, on {}",
            request.username(),
            request.describe()
        );
    }
}
