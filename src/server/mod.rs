//! The HTTPS webhook server: AdmissionReviews in, decisions out.
//!
//! [`Server::bind`] loads the certificate and the policies, starts listening
//! and returns; the server then runs on the current tokio runtime until
//! [`Server::shutdown`]. `defender serve` ([`ServeArgs`]) wraps it with signal
//! handling and logging.

mod args;
mod audit;
mod body;
mod connections;
mod current_engine;
pub mod custom_resources;
mod events;
mod judging;
pub mod lease_ledger;
mod lookups;
mod memory;
mod metrics;
mod overtime;
mod parse_cost;
mod periodic_audit;
mod pieces;
pub mod protected_index;
pub mod protected_objects;
mod reload;
mod resource_types;
mod routes;
mod routing_check;
mod state;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use args::ServeArgs;
pub(crate) use args::positive_duration;
pub use connections::Limits;
pub use events::DenialEvents;
pub use memory::{MemoryLimits, SMALL_BODY_BYTES};
pub use periodic_audit::PeriodicAudit;
pub use routes::MAX_BODY_BYTES;
pub use tls::TlsError;

use crate::certs::{self, CertError, DevCerts};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, ConfigError};
use crate::engine::Engine;
use crate::server::lease_ledger::LeaseLedgers;
use crate::view::{ClusterView, MemoryView};
pub use custom_resources::CustomResourceCounter;
use metrics::{CertRole, Metrics};
pub use protected_objects::ProtectedObjectFinder;
use reload::{CertWatch, PolicyWatch};
use state::{AppState, CurrentEngine};
use tls::CurrentCert;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, watched for changes.
    Files { cert: PathBuf, key: PathBuf },
    /// A development CA and serving certificate, generated into this directory.
    Generate { dir: PathBuf },
}

pub struct Config {
    pub listen: SocketAddr,
    pub tls: TlsSource,
    /// A policy file or directory, watched for changes; `None` for the embedded set.
    pub policies: Option<PathBuf>,
    /// How often certificate and policy files are checked for changes.
    pub reload_interval: Duration,
    /// The most one review may take, body upload included; below the webhook's timeoutSeconds.
    pub request_timeout: Duration,
    pub limits: Limits,
    /// Caps on what requests hold at once; past them, requests are shed with 503.
    pub memory: MemoryLimits,
    /// What Defender knows about the cluster beyond the request.
    pub view: Arc<dyn ClusterView>,
    /// The namespace Defender runs in; core whatever the policies list.
    pub own_namespace: Option<String>,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
    /// Where cluster-wide budgets are shared with the other replicas; `None`
    /// keeps every budget in this process's memory.
    pub shared_budgets: Option<LeaseLedgers>,
    /// Records an Event on each object whose deletion is denied, when set.
    pub events: Option<DenialEvents>,
    /// Counts a definition's custom resources before its deletion is judged;
    /// without it, such deletions are refused.
    pub custom_resources: Option<CustomResourceCounter>,
    /// Finds the objects protected by label in a namespace before its
    /// deletion is judged; without it, the cluster view answers.
    pub protected_objects: Option<ProtectedObjectFinder>,
    /// Audits the existing objects every interval, when set.
    pub audit: Option<PeriodicAudit>,
}

impl Config {
    /// Defaults for everything but the address and the certificate.
    pub fn new(listen: SocketAddr, tls: TlsSource) -> Self {
        Self {
            listen,
            tls,
            policies: None,
            reload_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(4),
            limits: Limits {
                handshake_timeout: Duration::from_secs(10),
                header_read_timeout: Duration::from_secs(10),
                max_connections: 4096,
                shutdown_grace: Duration::from_secs(25),
            },
            memory: MemoryLimits::default(),
            view: Arc::new(MemoryView::default()),
            own_namespace: None,
            client_ca: None,
            shared_budgets: None,
            events: None,
            custom_resources: None,
            protected_objects: None,
            audit: None,
        }
    }
}

/// Why the server could not start. Each message is complete on its own (it
/// names the file or address and the reason), so it reads well however it is printed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    GenerateCerts(CertError),
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("cannot use the serving certificate {cert} with key {key}: {error}")]
    Certificate { cert: PathBuf, key: PathBuf, error: TlsError },
    #[error("{0}")]
    Tls(TlsError),
    #[error("cannot use the client CA {path}: {error}")]
    ClientCa { path: PathBuf, error: TlsError },
    #[error("{0}")]
    Policies(ConfigError),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
}

impl From<CertError> for ServerError {
    fn from(error: CertError) -> Self {
        Self::GenerateCerts(error)
    }
}

impl From<TlsError> for ServerError {
    fn from(error: TlsError) -> Self {
        Self::Tls(error)
    }
}

impl From<ConfigError> for ServerError {
    fn from(error: ConfigError) -> Self {
        Self::Policies(error)
    }
}

/// A running server. Dropping it stops it too, without waiting for requests
/// in progress; [`Server::shutdown`] waits.
pub struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<usize>,
    reload: JoinHandle<()>,
}

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Connections still open when the grace period ran out, then closed.
    pub cut_off: usize,
}

impl Server {
    /// Loads the certificate and policies, binds `config.listen` and starts
    /// serving on the current tokio runtime. Fails, without listening, if the
    /// certificate or the policies do not load.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let (cert_path, key_path) = match &config.tls {
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            TlsSource::Generate { dir } => generate_dev_certs(dir)?,
        };
        let cert_pair = (read(&cert_path)?, read(&key_path)?);
        let (certified, cert_expiry) = tls::serving_key(&cert_pair.0, &cert_pair.1).map_err(|error| {
            ServerError::Certificate { cert: cert_path.clone(), key: key_path.clone(), error }
        })?;
        let current_cert = Arc::new(CurrentCert::new(certified));
        let (clients, client_ca_expiry) = match &config.client_ca {
            Some(path) => {
                let pem = read(path)?;
                let client_ca = |error| ServerError::ClientCa { path: path.clone(), error };
                (
                    Some(tls::client_verifier(&pem).map_err(client_ca)?),
                    Some(tls::pem_expiry(&pem).map_err(client_ca)?),
                )
            }
            None => (None, None),
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(Arc::clone(&current_cert), clients)?));

        let (set, policy_files) = match &config.policies {
            Some(path) => {
                let files = config::read_path(path)?;
                (config::from_files(&files, &path.display().to_string())?, Some(files))
            }
            None => (config::load_embedded()?, None),
        };
        let policy_count = set.policies.len();
        let engine = Arc::new(CurrentEngine::new(Engine::new(set), config.shared_budgets));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let index = config.protected_objects.as_ref().map(ProtectedObjectFinder::index);
        let metrics =
            Arc::new(Metrics::new(Arc::clone(&engine), Arc::clone(&clock), Arc::clone(&config.view), index));
        metrics.serving_cert_loaded(cert_expiry);
        if let Some(expiry) = client_ca_expiry {
            metrics.certificate_expires(CertRole::ClientCa, expiry);
        }

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|error| ServerError::Bind { addr: config.listen, error })?;
        let addr = listener.local_addr().map_err(|error| ServerError::Bind { addr: config.listen, error })?;

        let state = Arc::new(AppState {
            engine: Arc::clone(&engine),
            metrics: Arc::clone(&metrics),
            view: config.view,
            own_namespace: config.own_namespace,
            events: config.events,
            custom_resources: config.custom_resources,
            protected_objects: config.protected_objects,
            clock,
            request_timeout: config.request_timeout,
            holdings: memory::Holdings::new(config.memory),
            ready: false.into(),
        });
        // The largest body, and its strings once parsed, must fit for every legal review to be judged.
        if state.holdings.largest_request() < 2 * MAX_BODY_BYTES {
            tracing::warn!(
                "with --max-buffered-bytes {} MiB, the largest reviews an API server can send ({} MiB) are \
                 shed, not judged; {} MiB or more fits them",
                config.memory.max_buffered_bytes >> 20,
                MAX_BODY_BYTES >> 20,
                (2 * MAX_BODY_BYTES * 8 / 7) >> 20
            );
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let cert_watch = CertWatch::new(cert_path, key_path, cert_pair, current_cert, Arc::clone(&metrics));
        let policy_watch = config
            .policies
            .zip(policy_files)
            .map(|(path, files)| PolicyWatch::new(path, files, Arc::clone(&engine), Arc::clone(&metrics)));
        let reload = reload::spawn(cert_watch, policy_watch, config.reload_interval, shutdown_rx.clone());
        // Ends with the server: it only reads, so it is not waited for.
        let _index = state
            .protected_objects
            .clone()
            .map(|finder| tokio::spawn(finder.keep_index(Arc::clone(&state.engine), shutdown_rx.clone())));
        // Ends with the server: it only reads, so it is not waited for.
        let _audit =
            config.audit.map(|audit| periodic_audit::spawn(Arc::clone(&state), audit, shutdown_rx.clone()));
        let accept = tokio::spawn(connections::serve(
            listener,
            acceptor,
            routes::router(Arc::clone(&state)),
            config.limits,
            metrics,
            shutdown_rx,
        ));
        state.set_ready(true);
        tracing::info!(%addr, policies = policy_count, "Defender is serving");
        Ok(Self { addr, state, shutdown, accept, reload })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `/readyz` with 503 from now on while still serving, so the
    /// Service stops sending new connections here before shutdown.
    pub fn begin_drain(&self) {
        self.state.set_ready(false);
    }

    /// Stops accepting connections, lets requests in progress finish within the
    /// grace period, and closes the rest.
    pub async fn shutdown(self) -> Shutdown {
        self.state.set_ready(false);
        // Receivers live in the tasks; if they are gone, there is nothing to stop.
        let _ = self.shutdown.send(true);
        let cut_off = self.accept.await.unwrap_or_else(|error| {
            tracing::error!("the accept loop failed: {error}");
            0
        });
        if let Err(error) = self.reload.await {
            tracing::error!("the reload task failed: {error}");
        }
        Shutdown { cut_off }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|error| ServerError::Read { path: path.to_owned(), error })
}

fn generate_dev_certs(dir: &Path) -> Result<(PathBuf, PathBuf), ServerError> {
    let (cert, key) = (dir.join(certs::TLS_CERT), dir.join(certs::TLS_KEY));
    let (cert, key, how) = if reusable_dev_certs(&cert, &key) {
        (cert, key, "serving the development certificate generated earlier")
    } else {
        let files = DevCerts::generate(certs::DEFAULT_SERVICE, certs::DEFAULT_NAMESPACE, DEV_CERT_DAYS)?
            .write(dir)?;
        (files.cert, files.key, "generated a development CA and serving certificate")
    };
    tracing::info!(
        dir = %dir.display(),
        "no --tls-cert given: {how} in {} (ca.crt, tls.crt, tls.key; the webhook caBundle is in ca-bundle.b64)",
        dir.display()
    );
    Ok((cert, key))
}

/// How long generated development certificates are valid.
const DEV_CERT_DAYS: u32 = 365;

/// A development pair from an earlier start is kept, so the CA a developer
/// already trusts (curl --cacert, a webhook caBundle) stays valid across
/// restarts: if it still loads as a matching pair and was written well within
/// its validity.
fn reusable_dev_certs(cert: &Path, key: &Path) -> bool {
    let fresh = std::fs::metadata(cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|written| written.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(u64::from(DEV_CERT_DAYS - 30) * 24 * 60 * 60));
    fresh
        && matches!((std::fs::read(cert), std::fs::read(key)), (Ok(cert), Ok(key)) if tls::certified_key(&cert, &key).is_ok())
}
