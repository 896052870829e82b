//! Hot reload of the serving certificate and the policies, by polling.
//!
//! Files are compared by content, not by modification time or inotify events:
//! Kubernetes updates Secret and ConfigMap volumes by swapping a `..data`
//! symlink, which changes neither the watched path nor its mtime reliably. A
//! change that does not load is refused: the previous certificate or policy set
//! stays in force, the reason is logged once, and a metric counts it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::config;
use crate::engine::Engine;
use crate::server::connections::stopped;
use crate::server::metrics::Metrics;
use crate::server::state::CurrentEngine;
use crate::server::tls::{self, CurrentCert, TlsError};

/// The bytes of a certificate file and its key file.
type CertPair = (Vec<u8>, Vec<u8>);

/// The certificate and key files behind the serving certificate.
pub struct CertWatch {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<CurrentCert>,
    metrics: Arc<Metrics>,
    seen: Seen<CertPair>,
    /// A certificate and key that did not match, seen once: refused if seen again.
    unmatched: Option<CertPair>,
}

impl CertWatch {
    /// Watches `cert` and `key`, whose contents `loaded` are already serving.
    pub fn new(
        cert: PathBuf,
        key: PathBuf,
        loaded: CertPair,
        current: Arc<CurrentCert>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { cert, key, current, metrics, seen: Seen::new(loaded, CERT_READS), unmatched: None }
    }

    pub fn poll(&mut self) {
        let read = match self.read() {
            Ok(Some(pair)) => Ok(pair),
            // Mid-update: the next poll sees the finished pair.
            Ok(None) => return,
            Err(error) => Err(error),
        };
        let Some(pair) = self.seen.observe(read, &self.metrics) else { return };
        let loaded = match tls::serving_key(&pair.0, &pair.1) {
            // The two files are replaced one after the other: a key that does
            // not match may be half of a rotation. Refuse it only if the next
            // poll still reads the same pair.
            Err(TlsError::Mismatch) if self.unmatched.as_ref() != Some(&pair) => {
                self.unmatched = Some(pair);
                return;
            }
            Ok((key, expiry)) => {
                self.current.replace(key);
                self.metrics.cert_reloaded(expiry);
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                true
            }
            Err(error) => {
                self.metrics.cert_reload_failed();
                tracing::error!(
                    cert = %self.cert.display(),
                    key = %self.key.display(),
                    "refused the changed serving certificate, keeping the one in use: {error}"
                );
                false
            }
        };
        self.unmatched = None;
        self.seen.acted_on(pair, loaded);
    }

    /// Reads the certificate on both sides of the key: if it changed in between,
    /// the files are being replaced and this read is not a pair.
    fn read(&self) -> Result<Option<CertPair>, String> {
        let read = |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let before = read(&self.cert)?;
        let key = read(&self.key)?;
        let after = read(&self.cert)?;
        Ok((before == after).then_some((after, key)))
    }
}

/// The policy file or directory given with `--policies`.
pub struct PolicyWatch {
    path: PathBuf,
    engine: Arc<CurrentEngine>,
    metrics: Arc<Metrics>,
    /// The policy files as `(file, text)` pairs.
    seen: Seen<Vec<(String, String)>>,
}

impl PolicyWatch {
    /// Watches `path`, whose files `loaded` are the policies in force.
    pub fn new(
        path: PathBuf,
        loaded: Vec<(String, String)>,
        engine: Arc<CurrentEngine>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { path, engine, metrics, seen: Seen::new(loaded, POLICY_READS) }
    }

    pub fn poll(&mut self) {
        let read = config::read_path(&self.path).map_err(|error| error.to_string());
        let Some(files) = self.seen.observe(read, &self.metrics) else { return };
        let loaded = match config::from_files(&files, &self.path.display().to_string()) {
            Ok(mut set) => {
                let previous = self.engine.get();
                set.adopt_budgets(previous.policies());
                let count = set.policies.len();
                self.engine.replace(Engine::new(set));
                self.metrics.policy_reloaded();
                tracing::info!(path = %self.path.display(), policies = count, "policies reloaded");
                true
            }
            Err(error) => {
                self.metrics.policy_reload_failed();
                tracing::error!(
                    path = %self.path.display(),
                    "refused the changed policies, keeping the ones in force: {error}"
                );
                false
            }
        };
        self.seen.acted_on(files, loaded);
    }
}

/// What a watch last read from disk.
struct Seen<T> {
    /// The contents last acted on, loaded or refused.
    contents: T,
    /// Whether `contents` are in force (they were loaded, not refused).
    loaded: bool,
    /// The last read error, so a missing file is reported once, not every poll.
    read_error: Option<String>,
    reports: ReadReports,
}

/// What a watch reports of its reads: the error logged when one fails, and
/// the metrics a failed read and a disk back in sync with what is in force move.
struct ReadReports {
    unreadable: &'static str,
    failed: fn(&Metrics),
    in_sync: fn(&Metrics),
}

const CERT_READS: ReadReports = ReadReports {
    unreadable: "cannot read the serving certificate, keeping the one in use",
    failed: Metrics::cert_reload_failed,
    in_sync: Metrics::cert_in_sync,
};

const POLICY_READS: ReadReports = ReadReports {
    unreadable: "cannot read the policies, keeping the ones in force",
    failed: Metrics::policy_reload_failed,
    in_sync: Metrics::policies_in_sync,
};

impl<T: PartialEq> Seen<T> {
    /// Watching from `loaded`, the contents in force.
    fn new(loaded: T, reports: ReadReports) -> Self {
        Self { contents: loaded, loaded: true, read_error: None, reports }
    }

    /// What a poll `read`, if it differs from the contents last acted on.
    /// A read error is reported once until a read succeeds; a read that
    /// succeeds again and finds the contents in force unchanged reports the
    /// disk in sync with them again.
    fn observe(&mut self, read: Result<T, String>, metrics: &Metrics) -> Option<T> {
        let contents = match read {
            Ok(contents) => contents,
            Err(error) => {
                if self.read_error.as_ref() != Some(&error) {
                    tracing::error!("{}: {error}", self.reports.unreadable);
                    (self.reports.failed)(metrics);
                    self.read_error = Some(error);
                }
                return None;
            }
        };
        let recovered = self.read_error.take().is_some();
        if self.contents != contents {
            return Some(contents);
        }
        if recovered && self.loaded {
            (self.reports.in_sync)(metrics);
        }
        None
    }

    /// Records `contents` as acted on: `loaded` into force, or refused.
    fn acted_on(&mut self, contents: T, loaded: bool) {
        self.contents = contents;
        self.loaded = loaded;
    }
}

/// Polls every `interval` until `shutdown` turns true. File reads and policy
/// parsing run on the blocking pool, away from request handling.
pub fn spawn(
    mut cert: CertWatch,
    mut policies: Option<PolicyWatch>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    // A zero period would make the timer panic; a few milliseconds is as fast as is useful.
    let interval = interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await; // The first tick is immediate; everything was just loaded.
        loop {
            tokio::select! {
                () = stopped(&mut shutdown) => return,
                _ = ticker.tick() => {}
            }
            let polled = tokio::task::spawn_blocking(move || {
                cert.poll();
                if let Some(policies) = policies.as_mut() {
                    policies.poll();
                }
                (cert, policies)
            })
            .await;
            match polled {
                Ok(watches) => (cert, policies) = watches,
                Err(error) => {
                    tracing::error!("hot reload stopped: {error}");
                    return;
                }
            }
        }
    })
}
