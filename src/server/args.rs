//! `defender serve`: flags, logging, the runtime, and signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, DurationError};
use crate::cluster;
use crate::logging::{self, LogFormat};
use crate::server::lease_ledger::{LeaseLedgers, WhenUnreachable};
use crate::server::{Config, DenialEvents, MemoryLimits, PeriodicAudit, Server, TlsSource};
use crate::server::{CustomResourceCounter, ProtectedObjectFinder};
use crate::view::LiveView;

/// Serve AdmissionReviews over HTTPS.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Serving certificate chain (PEM, leaf first); reloaded when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of the serving certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Without --tls-cert, a development CA and certificate are generated here
    /// [default: defender-dev-certs in the system temp directory].
    #[arg(long, value_name = "DIR", conflicts_with = "tls_cert")]
    pub cert_dir: Option<PathBuf>,

    /// Policy file or directory, reloaded when it changes [default: the embedded policies].
    #[arg(long, value_name = "PATH")]
    pub policies: Option<PathBuf>,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogOutput::Human)]
    pub log_format: LogOutput,

    /// How often certificate and policy files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub reload_interval: Duration,

    /// The most one review may take, body upload included. Keep it below the
    /// webhook's timeoutSeconds, so the API server gets an answer, not a timeout.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = positive_duration)]
    pub request_timeout: Duration,

    /// The most memory request bodies may hold at once across all requests,
    /// received or being judged, the trees parsing them builds included
    /// (suffixes Ki, Mi, Gi). Past it, requests are shed with 503. Bodies over
    /// 64 KiB may use seven eighths of it, so the last eighth stays for
    /// ordinary reviews. Keep it about half the container's memory limit.
    #[arg(long, value_name = "BYTES", default_value = "128Mi", value_parser = byte_size)]
    pub max_buffered_bytes: usize,

    /// The most reviews parsed and judged at once; past it, requests are shed with 503.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_reviews_in_flight: u32,

    /// The namespace Defender runs in (the Deployment sets POD_NAMESPACE); it
    /// is protected as a core namespace even if the policies do not list it.
    #[arg(long = "own-namespace", env = "POD_NAMESPACE", value_name = "NS")]
    pub own_namespace: Option<String>,

    /// Require clients (the API server) to present a certificate signed by a
    /// CA in this PEM file; without it any client may connect.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,

    /// Watch the cluster (namespaces, pods, workloads, PVCs, ingresses,
    /// HTTPRoutes) through this kubeconfig. In a Pod the service account is
    /// used without it.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Where cluster-wide budgets (namespace deletions) are counted: `shared`
    /// keeps them in a Lease in --own-namespace so every replica draws on one
    /// allowance (needs cluster access); `local` counts in each replica.
    #[arg(long, value_enum, value_name = "WHERE", default_value_t = BudgetStore::Shared)]
    pub budgets: BudgetStore,

    /// What a shared budget does while its Lease cannot be reached: `deny`
    /// refuses budgeted deletions; `local` counts in this replica meanwhile.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = BudgetUnreachable::Deny)]
    pub budget_unreachable: BudgetUnreachable,

    /// The ValidatingWebhookConfiguration that sends Defender its reviews:
    /// read at start (with cluster access) to warn about anything the
    /// policies judge that it does not send. "" skips the check.
    #[arg(long, value_name = "NAME", default_value = "defender")]
    pub webhook_config_name: String,

    /// Judge every existing namespace, Ingress and Gateway API route this
    /// often, as `defender audit` does, and export the violations per policy
    /// as metric defender_audit_violations (and log them). Needs cluster
    /// access and `list` on the audited kinds. Off when not given.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub audit_interval: Option<Duration>,

    /// On shutdown, how long requests in progress may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "25s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// On SIGTERM, how long to keep serving (with /readyz failing) before
    /// closing the listener, while the Service stops routing here. SIGINT skips it.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
    pub shutdown_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BudgetStore {
    Shared,
    Local,
}

/// `--log-format`: [`LogFormat`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogOutput {
    /// One readable line per event.
    Human,
    /// One JSON object per line, fields at the top level.
    Json,
}

impl From<LogOutput> for LogFormat {
    fn from(choice: LogOutput) -> Self {
        match choice {
            LogOutput::Human => LogFormat::Human,
            LogOutput::Json => LogFormat::Json,
        }
    }
}

/// `--budget-unreachable`: [`WhenUnreachable`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BudgetUnreachable {
    Deny,
    Local,
}

impl From<BudgetUnreachable> for WhenUnreachable {
    fn from(choice: BudgetUnreachable) -> Self {
        match choice {
            BudgetUnreachable::Deny => WhenUnreachable::Deny,
            BudgetUnreachable::Local => WhenUnreachable::Local,
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    clock::parse_duration(text).map_err(|error| match error {
        DurationError::Malformed(why) => format!("{why} (examples: 500ms, 10s, 1m)"),
        DurationError::TooLong => "too long".to_owned(),
    })
}

/// A byte count: digits, optionally followed by Ki, Mi or Gi.
fn byte_size(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => return Err(format!("unknown unit {unit:?} (examples: 1048576, 512Ki, 96Mi, 1Gi)")),
    };
    let count: usize = digits.parse().map_err(|_| "expected a number of bytes, e.g. 96Mi".to_owned())?;
    match count.checked_mul(1 << shift) {
        Some(0) => Err("must be more than zero".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err("too large".to_owned()),
    }
}

pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        zero if zero.is_zero() => Err("must be longer than zero".to_owned()),
        positive => Ok(positive),
    }
}

/// Threads that parse and judge reviews (and poll the files hot reload
/// watches). That work only computes, so a few threads a core keep every
/// core busy; more only add memory (about 1 MB a thread, in the allocator's
/// per-thread pages). Waiting on the API server holds no thread.
const BLOCKING_THREADS: usize = 8;

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let _flush = logging::init(self.log_format.into())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
        runtime.block_on(self.serve())
    }

    /// The server configuration these flags describe.
    pub fn config(&self) -> Config {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert: cert.clone(), key: key.clone() },
            _ => TlsSource::Generate {
                dir: self.cert_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("defender-dev-certs")),
            },
        };
        let mut config = Config::new(self.listen, tls);
        config.policies = self.policies.clone();
        config.reload_interval = self.reload_interval;
        config.request_timeout = self.request_timeout;
        config.own_namespace = self.own_namespace.clone().filter(|ns| !ns.is_empty());
        config.client_ca = self.client_ca.clone();
        config.limits.shutdown_grace = self.shutdown_grace;
        config.memory = MemoryLimits {
            max_buffered_bytes: self.max_buffered_bytes,
            max_reviews_in_flight: self.max_reviews_in_flight as usize,
        };
        config
    }

    /// `--kubeconfig`, else the Pod's service account when running in a
    /// cluster, else none: Defender then judges from the request alone.
    async fn cluster_client(&self) -> anyhow::Result<Option<kube::Client>> {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        if self.kubeconfig.is_none() && !in_cluster {
            tracing::info!(
                "no --kubeconfig and not in a cluster: requests are judged alone, and the policies that \
                 consult the cluster (namespace labels, cascading-protection, in-use-guard, duplicate-hosts) \
                 see an empty one"
            );
            return Ok(None);
        }
        let client = cluster::client(self.kubeconfig.as_deref()).await?;
        tracing::info!(
            "watching namespaces, pods, workloads, PVCs, ingresses and HTTPRoutes for the cluster view"
        );
        Ok(Some(client))
    }

    /// Leases for the cluster-wide budgets, if they are to be shared and
    /// Defender knows its namespace to keep them in.
    fn shared_budgets(&self, client: &kube::Client, own_namespace: Option<&str>) -> Option<LeaseLedgers> {
        if self.budgets == BudgetStore::Local {
            return None;
        }
        let Some(namespace) = own_namespace else {
            tracing::warn!(
                "budgets are counted per replica: shared budgets need --own-namespace (or POD_NAMESPACE) \
                 to keep their Lease in"
            );
            return None;
        };
        // Half the request timeout leaves time to answer after a slow API server.
        let deadline = self.request_timeout / 2;
        Some(LeaseLedgers::new(client.clone(), namespace, deadline, self.budget_unreachable.into()))
    }

    async fn serve(self) -> anyhow::Result<ExitCode> {
        // Listen for signals before serving, so an early SIGTERM still shuts down cleanly.
        let mut signals = Signals::new()?;
        let mut config = self.config();
        if let Some(client) = self.cluster_client().await? {
            config.shared_budgets = self.shared_budgets(&client, config.own_namespace.as_deref());
            // With client certificates required, every review comes from the API
            // server; without, an event waits for the API server to confirm the object.
            let authenticated = self.client_ca.is_some();
            config.events = Some(DenialEvents::start(client.clone(), instance_name(), authenticated));
            if !self.webhook_config_name.is_empty() {
                let (name, policies) = (self.webhook_config_name.clone(), self.policies.clone());
                tokio::spawn(super::routing_check::warn_unrouted(client.clone(), name, policies));
            }
            // Half the request timeout leaves time to answer after a slow list.
            config.custom_resources =
                Some(CustomResourceCounter::new(client.clone(), self.request_timeout / 2));
            config.protected_objects =
                Some(ProtectedObjectFinder::new(client.clone(), self.request_timeout / 2));
            config.audit =
                self.audit_interval.map(|interval| PeriodicAudit { client: client.clone(), interval });
            config.view = Arc::new(LiveView::start(client));
        } else {
            if self.budgets == BudgetStore::Shared {
                tracing::info!("no cluster access: budgets are counted in this process only");
            }
            if self.audit_interval.is_some() {
                tracing::warn!(
                    "--audit-interval needs cluster access (--kubeconfig, or a Pod): no audit runs"
                );
            }
        }
        let server = Server::bind(config).await?;
        let terminated = signals.wait().await;
        if terminated && !self.shutdown_delay.is_zero() {
            tracing::info!(
                "SIGTERM: draining for {} before closing the listener",
                clock::human_exact(self.shutdown_delay)
            );
            server.begin_drain();
            tokio::time::sleep(self.shutdown_delay).await;
        }
        tracing::info!("shutting down: finishing requests in progress");
        let outcome = server.shutdown().await;
        if outcome.cut_off > 0 {
            tracing::warn!(
                connections = outcome.cut_off,
                "closed connections still busy after the {} shutdown grace",
                clock::human_exact(self.shutdown_grace)
            );
        } else {
            tracing::info!("shut down cleanly");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// This replica's name in the events it records: the pod's name in a cluster.
fn instance_name() -> String {
    ["POD_NAME", "HOSTNAME"]
        .into_iter()
        .find_map(|variable| std::env::var(variable).ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "defender".to_owned())
}

/// SIGTERM (how Kubernetes stops a pod) and SIGINT (Ctrl-C).
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())
                    .map_err(|e| anyhow::anyhow!("cannot listen for SIGTERM: {e}"))?,
                interrupt: signal(SignalKind::interrupt())
                    .map_err(|e| anyhow::anyhow!("cannot listen for SIGINT: {e}"))?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for either; true for SIGTERM.
    async fn wait(&mut self) -> bool {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => true,
                _ = self.interrupt.recv() => false,
            }
        }
        #[cfg(not(unix))]
        {
            // Without a handler there is no clean way to stop: wait forever.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{byte_size, duration, positive_duration};

    #[test]
    fn byte_sizes_take_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(byte_size("1024"), Ok(1024));
        assert_eq!(byte_size("512Ki"), Ok(512 << 10));
        assert_eq!(byte_size("64Mi"), Ok(64 << 20));
        assert_eq!(byte_size("1Gi"), Ok(1 << 30));
        for bad in ["", "Mi", "64MB", "0", "-1", "1.5Gi"] {
            assert!(byte_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_written_as_people_write_them() {
        for (text, millis) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("1m", 60_000),
            ("10m", 600_000),
            ("1h", 3_600_000),
            ("2h30m", 9_000_000),
        ] {
            assert_eq!(positive_duration(text), Ok(Duration::from_millis(millis)), "{text}");
        }
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert_eq!(positive_duration("0s"), Err("must be longer than zero".to_owned()));
        let soon = duration("soon").unwrap_err();
        assert!(
            soon.contains("expected duration to start with a unit value")
                && soon.ends_with("(examples: 500ms, 10s, 1m)"),
            "{soon}"
        );
    }
}
