//! `defender serve --audit-interval`: the audit `defender audit` runs, every
//! interval, with the engine in force and the server's own cluster view. Its
//! results go to metrics (`defender_audit_violations{policy}`) and the log;
//! it writes no reports, so it needs no permission beyond `list` on the
//! audited kinds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::audit::{Audit, cluster};
use crate::server::state::AppState;

/// Violations named in the log per audit; `defender audit` lists them all.
const LOGGED: usize = 20;

/// What a periodic audit needs beyond the server's state.
#[derive(Clone)]
pub struct PeriodicAudit {
    pub client: kube::Client,
    pub interval: Duration,
}

/// Audits once the cluster view has synced, then every interval, until shutdown.
pub fn spawn(
    state: Arc<AppState>,
    audit: PeriodicAudit,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Judged against a view still listing, objects would pass that should not.
        while !state.view.unsynced().is_empty() {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let mut ticks = tokio::time::interval(audit.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                _ = ticks.tick() => {}
            }
            run_once(&state, &audit.client).await;
        }
    })
}

async fn run_once(state: &AppState, client: &kube::Client) {
    let engine = state.engine.get();
    let now = state.clock.now();
    match cluster::audit(client, &engine, state.view.as_ref(), state.own_namespace.as_deref(), now).await {
        Ok(audit) => {
            state.metrics.audited(&audit.policies());
            log(&audit);
        }
        Err(error) => {
            state.metrics.audit_failed();
            tracing::warn!(%error, "periodic audit failed; the metrics keep the last audit's counts");
        }
    }
}

fn log(audit: &Audit) {
    let judged: usize = audit.kinds.iter().map(|kind| kind.objects).sum();
    let counts: Vec<String> = audit
        .policies()
        .iter()
        .map(|summary| format!("{}={}", summary.policy, summary.violations()))
        .collect();
    let violations = audit.violations().count();
    tracing::info!(
        objects = judged,
        violations,
        left_out = audit.left_out.total(),
        "periodic audit: {judged} existing objects judged as if created now; violations by policy: {}",
        counts.join(", ")
    );
    for result in audit.violations().take(LOGGED) {
        tracing::warn!(
            policy = %result.policy,
            result = result.result.as_str(),
            object = %result.object,
            "existing object violates a policy: {}",
            result.message.as_deref().unwrap_or_default()
        );
    }
    if violations > LOGGED {
        tracing::warn!("and {} more violations: `defender audit` lists them all", violations - LOGGED);
    }
    for line in &audit.unjudgeable {
        tracing::warn!("periodic audit could not judge {line}");
    }
}
