//! `defender audit`: judges what the cluster already holds, as if each object
//! were created now, and reports what the policies would refuse.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{PolicyArgs, USAGE};
use crate::audit::{Audit, cluster, policy_report, report};
use crate::clock::{self, Clock, SystemClock};
use crate::engine::Engine;
use crate::view::{ClusterView, LiveView};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// Per policy, the objects that violate it and why.
    Text,
    /// The same as one JSON document.
    Json,
    /// wgpolicyk8s.io/v1alpha2 PolicyReports (per namespace) and a ClusterPolicyReport, as YAML.
    Policyreport,
}

const ABOUT: &str = "Judge what the cluster already holds, as if each object were created now";

const LONG_ABOUT: &str = "\
Judge what the cluster already holds, as if each object were created now.

The webhook sees changes only: an Ingress admitted before Defender was
installed, or while its Ignore webhook was unreachable, was never judged.
`defender audit` lists every object of the kinds the policies judge on CREATE
(namespaces, Ingresses, and HTTPRoutes, GRPCRoutes and TLSRoutes where the
Gateway API is installed), judges each with the same engine and the same
live cluster view as `defender serve`, and reports per policy.

Policies that judge only deletions (deletion-guard, delete-protection, ...)
have nothing to audit, and namespace-deletion judges the moment a
confirmation is set, not the namespace: they are listed as not audited.
Budgets are never consulted. Objects being deleted, objects in namespaces
being deleted, and objects the webhook is never sent (Defender's own
namespace, where a webhook leaves it out) are left out and counted.

Exit codes: 0 no violation, 1 at least one violation (fail or warn),
2 the audit could not run or could not judge every object.";

/// Judge existing objects; report per policy.
#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct AuditArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// The cluster to audit [default: KUBECONFIG or ~/.kube/config, as kubectl
    /// reads them; in a Pod, its service account].
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Report format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Also write the policy reports to the cluster (server-side apply, one
    /// PolicyReport `defender-audit` per namespace and a ClusterPolicyReport
    /// `defender-audit`), and delete Defender's reports for namespaces with
    /// nothing judged any more. Needs the wgpolicyk8s.io CRDs.
    #[arg(long)]
    apply: bool,
    /// Defender's namespace: core whatever the policies say, and left out for
    /// the kinds whose webhook never sends it.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS", default_value = "defender-system")]
    own_namespace: String,
    /// How long to wait for the cluster view (namespaces, pods, workloads,
    /// Ingresses, HTTPRoutes) to be listed before judging.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::server::positive_duration)]
    sync_timeout: Duration,
    /// The most results one policy report holds (violations first); the
    /// rest are counted in its summary and annotation defender.io/results-left-out.
    #[arg(long, value_name = "N", default_value_t = policy_report::MAX_RESULTS as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_results_per_report: u32,
}

impl AuditArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let engine = Engine::new(self.policies.load()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (audit, reports) = runtime.block_on(async {
            let client = crate::cluster::client_as_kubectl(self.kubeconfig.as_deref()).await?;
            let view = LiveView::start(client.clone());
            wait_for_sync(&view, self.sync_timeout).await?;
            let audit = cluster::audit(&client, &engine, &view, Some(&self.own_namespace), SystemClock.now())
                .await
                .map_err(anyhow::Error::msg)?;
            let reports = policy_report::reports(&audit, self.max_results_per_report as usize);
            if self.apply {
                let applied = cluster::apply(&client, &reports).await.map_err(anyhow::Error::msg)?;
                eprintln!(
                    "wrote {} policy report{}; deleted {} stale",
                    applied.written,
                    if applied.written == 1 { "" } else { "s" },
                    applied.deleted
                );
            }
            anyhow::Ok((audit, reports))
        })?;
        let out = &mut std::io::stdout().lock();
        match self.output {
            Output::Text => write!(out, "{}", report::text(&audit))?,
            Output::Json => writeln!(out, "{}", report::json(&audit))?,
            Output::Policyreport => {
                for report in &reports {
                    write!(out, "---\n{}", serde_yaml_ng::to_string(report)?)?;
                }
            }
        }
        Ok(exit_code(&audit))
    }
}

/// 2 if some object could not be judged, 1 for any violation, else 0.
fn exit_code(audit: &Audit) -> ExitCode {
    if !audit.unjudgeable.is_empty() {
        ExitCode::from(USAGE)
    } else if audit.violations().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Waits until every watch of the view has listed its kind once.
async fn wait_for_sync(view: &LiveView, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let unsynced = view.unsynced();
        if unsynced.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "the cluster view was not listed within {}: still waiting for {} (can this identity list and \
                 watch them?)",
                clock::human_exact(timeout),
                unsynced.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
