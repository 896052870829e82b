//! Prometheus metrics: the four golden signals of a webhook (traffic by verdict,
//! latency, errors, saturation) plus the state an operator asks about when
//! something is denied or about to break: budgets left, whether reloads are
//! failing, when the certificates expire, whether the cluster view is listed.
//!
//! The alerts and the dashboard built on these names live in
//! `charts/defender/files/`; a test checks that every name they query is served.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::clock::Clock;
use crate::engine::{Decision, Outcome};
use crate::request::Request;
use crate::routing::operation_name;
use crate::server::current_engine::CurrentEngine;
use crate::server::memory::Shed;
use crate::server::protected_index::ProtectedIndex;
use crate::view::ClusterView;

/// The ways handling a request or a connection can go wrong, as `errors_total` labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The body is not an AdmissionReview at all (HTTP 400).
    MalformedReview,
    /// An AdmissionReview that cannot be judged (wrong version, no request).
    InvalidReview,
    /// The body is over the size limit (HTTP 413).
    BodyTooLarge,
    /// The client stopped sending the body, or it could not be read.
    BodyRead,
    /// The request took longer than the request timeout.
    Timeout,
    /// A TLS handshake failed or did not finish in time.
    TlsHandshake,
    /// Accepting a TCP connection failed (e.g. out of file descriptors).
    Accept,
}

impl ErrorKind {
    const ALL: [ErrorKind; 7] = [
        ErrorKind::MalformedReview,
        ErrorKind::InvalidReview,
        ErrorKind::BodyTooLarge,
        ErrorKind::BodyRead,
        ErrorKind::Timeout,
        ErrorKind::TlsHandshake,
        ErrorKind::Accept,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MalformedReview => "malformed_review",
            ErrorKind::InvalidReview => "invalid_review",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::BodyRead => "body_read",
            ErrorKind::Timeout => "timeout",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::Accept => "accept",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    operation: &'static str,
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    policy: String,
    action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

/// What a certificate is for, as `certificate_expiry_timestamp_seconds` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// The chain served to the API server (`--tls-cert`).
    Serving,
    /// The CAs client certificates must chain to (`--client-ca`).
    ClientCa,
}

impl CertRole {
    fn as_str(self) -> &'static str {
        match self {
            CertRole::Serving => "serving",
            CertRole::ClientCa => "client_ca",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    skipped: Family<SkipLabels, Counter>,
    break_glass: Counter,
    latency: Histogram,
    errors: Family<ErrorLabels, Counter>,
    in_flight: Gauge,
    shed: Family<ShedLabels, Counter>,
    buffered_bytes: Gauge,
    unfinished: Family<VerdictLabels, Counter>,
    policy_reloads: Counter,
    policy_reload_failures: Counter,
    policy_last_reload_successful: Gauge,
    policy_last_reload_success_time: Gauge<f64, AtomicU64>,
    cert_reloads: Counter,
    cert_reload_failures: Counter,
    cert_last_reload_successful: Gauge,
    certificate_expiry: Family<RoleLabels, Gauge>,
    audit_violations: Family<PolicyLabels, Gauge>,
    audit_last_success_time: Gauge<f64, AtomicU64>,
    audit_failures: Counter,
}

impl Metrics {
    /// Registers every metric; budgets are read from `engine`, what the
    /// cluster view has not listed yet from `view`, and the protected-object
    /// index's watches from `index` (none without a cluster), at each scrape.
    pub fn new(
        engine: Arc<CurrentEngine>,
        clock: Arc<dyn Clock>,
        view: Arc<dyn ClusterView>,
        index: Option<Arc<ProtectedIndex>>,
    ) -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            reviews: Family::default(),
            findings: Family::default(),
            skipped: Family::default(),
            break_glass: Counter::default(),
            // 100µs to ~3.3s: reviews take microseconds, the API server gives up at 10s.
            latency: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            errors: Family::default(),
            in_flight: Gauge::default(),
            shed: Family::default(),
            buffered_bytes: Gauge::default(),
            unfinished: Family::default(),
            policy_reloads: Counter::default(),
            policy_reload_failures: Counter::default(),
            policy_last_reload_successful: Gauge::default(),
            policy_last_reload_success_time: Gauge::default(),
            cert_reloads: Counter::default(),
            cert_reload_failures: Counter::default(),
            cert_last_reload_successful: Gauge::default(),
            certificate_expiry: Family::default(),
            audit_violations: Family::default(),
            audit_last_success_time: Gauge::default(),
            audit_failures: Counter::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "defender_reviews",
            "AdmissionReviews answered, by operation and verdict (allow, warn, deny)",
            metrics.reviews.clone(),
        );
        registry.register(
            "defender_policy_findings",
            "Violations found, by policy and the policy's action (deny, warn, dryrun)",
            metrics.findings.clone(),
        );
        registry.register(
            "defender_skipped_reviews",
            "Reviews let through without consulting policies, by reason",
            metrics.skipped.clone(),
        );
        registry.register(
            "defender_break_glass",
            "Denials overridden by a break-glass user",
            metrics.break_glass.clone(),
        );
        registry.register(
            "defender_review_duration_seconds",
            "Time from request received to response ready, body read included",
            metrics.latency.clone(),
        );
        registry.register(
            "defender_errors",
            "Failed requests and connections, by kind",
            metrics.errors.clone(),
        );
        registry.register(
            "defender_in_flight_requests",
            "AdmissionReviews being handled now",
            metrics.in_flight.clone(),
        );
        registry.register(
            "defender_requests_shed",
            "Requests refused with 503 because a memory cap was reached, by reason \
             (buffered_bytes, reviews_in_flight)",
            metrics.shed.clone(),
        );
        registry.register(
            "defender_buffered_bytes",
            "Request-body bytes held now, received or being judged, against --max-buffered-bytes",
            metrics.buffered_bytes.clone(),
        );
        registry.register(
            "defender_reviews_unfinished",
            "Reviews answered without a decision because they ran past the request timeout (or \
             evaluating them failed), by the fallback verdict (deny, warn)",
            metrics.unfinished.clone(),
        );
        registry.register(
            "defender_policy_reloads",
            "Policy sets loaded after a change on disk",
            metrics.policy_reloads.clone(),
        );
        registry.register(
            "defender_policy_reload_failures",
            "Changed policy files that could not be loaded; the last good set stays in force",
            metrics.policy_reload_failures.clone(),
        );
        registry.register(
            "defender_policy_last_reload_successful",
            "1 if the policies on disk are the ones in force, 0 if the last change was refused",
            metrics.policy_last_reload_successful.clone(),
        );
        registry.register(
            "defender_policy_last_reload_success_timestamp_seconds",
            "When the policies in force were loaded (Unix time)",
            metrics.policy_last_reload_success_time.clone(),
        );
        registry.register(
            "defender_cert_reloads",
            "Serving certificates loaded after a change on disk",
            metrics.cert_reloads.clone(),
        );
        registry.register(
            "defender_cert_reload_failures",
            "Changed certificate or key files that were refused; the previous pair keeps serving",
            metrics.cert_reload_failures.clone(),
        );
        registry.register(
            "defender_cert_last_reload_successful",
            "1 if the certificate files on disk are the pair serving, 0 if the last change was refused \
             or the files cannot be read",
            metrics.cert_last_reload_successful.clone(),
        );
        registry.register(
            "defender_certificate_expiry_timestamp_seconds",
            "When a certificate in force stops being valid (Unix time), by role: serving (the earliest \
             notAfter of the served chain), client_ca (the earliest in --client-ca)",
            metrics.certificate_expiry.clone(),
        );
        // Registered with or without --audit-interval, so dashboards and
        // alerts find the names; they stay empty until an audit runs.
        registry.register_collector(Box::new(AlwaysListed {
            name: "defender_audit_violations",
            help: "Existing objects that violate each audited policy (fail or warn), as of the last periodic \
                   audit (serve --audit-interval)",
            family: metrics.audit_violations.clone(),
        }));
        registry.register(
            "defender_audit_last_success_timestamp_seconds",
            "When the last periodic audit finished (Unix time); 0 before the first",
            metrics.audit_last_success_time.clone(),
        );
        registry.register(
            "defender_audit_failures",
            "Periodic audits that could not list the audited objects; the last counts stay",
            metrics.audit_failures.clone(),
        );
        registry.register_collector(Box::new(BudgetCollector { engine, clock }));
        // Every failure series exists from the start at 0, so the first
        // failure is an increase that rate() and the alerts see.
        for kind in ErrorKind::ALL {
            let _ = metrics.errors.get_or_create(&ErrorLabels { kind: kind.as_str() });
        }
        for reason in [Shed::BufferedBytes, Shed::ReviewsInFlight] {
            let _ = metrics.shed.get_or_create(&ShedLabels { reason: reason.as_str() });
        }
        for verdict in [Outcome::Deny, Outcome::Warn] {
            let _ = metrics.unfinished.get_or_create(&VerdictLabels { verdict: verdict.as_str() });
        }
        registry.register_collector(Box::new(ViewCollector { view }));
        registry.register_collector(Box::new(IndexCollector { index }));
        metrics.policies_loaded();
        metrics
    }

    /// Counts one answered review.
    pub fn review(&self, request: &Request, decision: &Decision, latency: Duration) {
        let labels = ReviewLabels {
            operation: operation_name(request.operation()),
            verdict: decision.outcome().as_str(),
        };
        self.reviews.get_or_create(&labels).inc();
        for finding in &decision.findings {
            let labels = FindingLabels { policy: finding.policy.clone(), action: finding.action.as_str() };
            self.findings.get_or_create(&labels).inc();
        }
        if let Some(skip) = decision.skipped {
            self.skipped.get_or_create(&SkipLabels { reason: skip.as_str() }).inc();
        }
        if decision.break_glass {
            self.break_glass.inc();
        }
        self.latency.observe(latency.as_secs_f64());
    }

    pub fn shed(&self, reason: Shed) {
        self.shed.get_or_create(&ShedLabels { reason: reason.as_str() }).inc();
    }

    pub fn set_buffered_bytes(&self, bytes: usize) {
        self.buffered_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A review answered with the fallback verdict instead of a decision.
    pub fn unfinished(&self, verdict: Outcome) {
        self.unfinished.get_or_create(&VerdictLabels { verdict: verdict.as_str() }).inc();
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors.get_or_create(&ErrorLabels { kind: kind.as_str() }).inc();
    }

    /// Counts a request in flight until the returned guard is dropped, however the handler ends.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// The policies on disk were loaded (at startup or after a change).
    pub fn policies_loaded(&self) {
        self.policy_last_reload_successful.set(1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.policy_last_reload_success_time.set(now.as_secs_f64());
    }

    /// The policies on disk are readable again and are the ones in force.
    pub fn policies_in_sync(&self) {
        self.policy_last_reload_successful.set(1);
    }

    pub fn policy_reloaded(&self) {
        self.policy_reloads.inc();
        self.policies_loaded();
    }

    pub fn policy_reload_failed(&self) {
        self.policy_reload_failures.inc();
        self.policy_last_reload_successful.set(0);
    }

    /// A serving certificate valid until `expires` (Unix seconds) was loaded
    /// (at startup or after a change).
    pub fn serving_cert_loaded(&self, expires: i64) {
        self.cert_last_reload_successful.set(1);
        self.certificate_expires(CertRole::Serving, expires);
    }

    /// The certificate files are readable again and are the pair serving.
    pub fn cert_in_sync(&self) {
        self.cert_last_reload_successful.set(1);
    }

    pub fn cert_reloaded(&self, expires: i64) {
        self.cert_reloads.inc();
        self.serving_cert_loaded(expires);
    }

    pub fn cert_reload_failed(&self) {
        self.cert_reload_failures.inc();
        self.cert_last_reload_successful.set(0);
    }

    /// The certificate in force for `role` is valid until `expires` (Unix seconds).
    pub fn certificate_expires(&self, role: CertRole, expires: i64) {
        self.certificate_expiry.get_or_create(&RoleLabels { role: role.as_str() }).set(expires);
    }

    /// A periodic audit finished: each audited policy's violations replace
    /// the last audit's (a policy no longer audited disappears).
    pub fn audited(&self, policies: &[crate::audit::PolicySummary]) {
        self.audit_violations.clear();
        for summary in policies {
            let labels = PolicyLabels { policy: summary.policy.clone() };
            self.audit_violations
                .get_or_create(&labels)
                .set(i64::try_from(summary.violations()).unwrap_or(i64::MAX));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.audit_last_success_time.set(now.as_secs_f64());
    }

    pub fn audit_failed(&self) {
        self.audit_failures.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A gauge family listed on /metrics even before it has a sample (the
/// registry leaves an empty family out), so dashboards and alerts can rely
/// on its name.
#[derive(Debug)]
struct AlwaysListed {
    name: &'static str,
    help: &'static str,
    family: Family<PolicyLabels, Gauge>,
}

impl Collector for AlwaysListed {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let metric = encoder.encode_descriptor(self.name, self.help, None, self.family.metric_type())?;
        self.family.encode(metric)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    policy: String,
    budget: &'static str,
    subject: String,
}

/// Reads every budget of the policies in force at scrape time, so a policy
/// reload shows up without re-registering anything.
struct BudgetCollector {
    engine: Arc<CurrentEngine>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for BudgetCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetCollector").finish_non_exhaustive()
    }
}

impl Collector for BudgetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let engine = self.engine.get();
        let now = self.clock.now();
        let remaining: Family<BudgetLabels, Gauge> = Family::default();
        for policy in engine.policies() {
            for gauge in policy.budgets() {
                let left = match gauge.key {
                    Some(key) => gauge.budget.remaining(key, now),
                    None => gauge.budget.lowest_remaining(now),
                };
                let labels = BudgetLabels {
                    policy: policy.name().to_owned(),
                    budget: gauge.name,
                    subject: gauge.subject,
                };
                remaining.get_or_create(&labels).set(i64::from(left));
            }
        }
        let metric = encoder.encode_descriptor(
            "defender_budget_remaining",
            "Slots left in each budget now; for per-user budgets, the fewest any user has left",
            None,
            remaining.metric_type(),
        )?;
        remaining.encode(metric)
    }
}

/// Reads at scrape time how many of the cluster view's watches have not listed
/// their kind yet: until they have, the pod is not ready and the policies that
/// consult those kinds cannot judge.
struct ViewCollector {
    view: Arc<dyn ClusterView>,
}

impl fmt::Debug for ViewCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewCollector").finish_non_exhaustive()
    }
}

impl Collector for ViewCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let unsynced: Gauge = Gauge::default();
        unsynced.set(i64::try_from(self.view.unsynced().len()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "defender_cluster_view_unsynced_resources",
            "Kinds the cluster view has not listed from the API server yet (0 once every watch has; \
             /readyz names them)",
            None,
            unsynced.metric_type(),
        )?;
        unsynced.encode(metric)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchStateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    answer: &'static str,
}

/// Reads at scrape time the protected-object index's watches and how its
/// lookups were answered: while a watch is not current, each namespace
/// deletion lists that type from the API server instead of reading memory.
struct IndexCollector {
    index: Option<Arc<ProtectedIndex>>,
}

impl fmt::Debug for IndexCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexCollector").finish_non_exhaustive()
    }
}

impl Collector for IndexCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.index.as_ref().map(|index| index.stats()).unwrap_or_default();
        let watches: Family<WatchStateLabels, Gauge> = Family::default();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, pairs) in [
            ("current", stats.current),
            ("not_current", stats.not_current),
            ("too_many", stats.too_many),
            ("forbidden", stats.forbidden),
        ] {
            watches.get_or_create(&WatchStateLabels { state }).set(count(pairs));
        }
        let metric = encoder.encode_descriptor(
            "defender_protected_index_watches",
            "Watches of the objects carrying a protection label, one per namespaced resource type and label \
             key, by state: a namespace deletion lists the types whose watch is not current (not listed yet, \
             lost or silent), has too many labelled objects to keep, or is forbidden",
            None,
            watches.metric_type(),
        )?;
        watches.encode(metric)?;
        let lookups: Family<AnswerLabels, Counter> = Family::default();
        lookups.get_or_create(&AnswerLabels { answer: "memory" }).inc_by(stats.answered);
        lookups.get_or_create(&AnswerLabels { answer: "listed" }).inc_by(stats.listed);
        let metric = encoder.encode_descriptor(
            "defender_protected_index_lookups",
            "Resource types looked in for protected objects before a namespace deletion was judged, by \
             whether the index answered from memory or the type was listed from the API server",
            None,
            lookups.metric_type(),
        )?;
        lookups.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::engine::Engine;
    use crate::view::{Contents, MemoryView, NamespaceInfo, Referent, Referrer, Route};

    /// An empty view still waiting for the kinds it names.
    struct Listing(&'static [&'static str]);

    impl ClusterView for Listing {
        fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
            MemoryView::default().namespace(name)
        }
        fn contents(&self, namespace: &str) -> Contents {
            MemoryView::default().contents(namespace)
        }
        fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer> {
            MemoryView::default().users(referent, namespace, name)
        }
        fn routes_to(&self, host: &str) -> Vec<Route> {
            MemoryView::default().routes_to(host)
        }
        fn unsynced(&self) -> Vec<&'static str> {
            self.0.to_vec()
        }
    }

    fn metrics(view: Arc<dyn ClusterView>) -> Metrics {
        let engine = Engine::new(crate::config::load_embedded().unwrap());
        Metrics::new(Arc::new(CurrentEngine::new(engine, None)), Arc::new(SystemClock), view, None)
    }

    /// The value of `series` (name and labels, as exposed), if it is there.
    fn value(metrics: &Metrics, series: &str) -> Option<f64> {
        let text = metrics.encode().unwrap();
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn certificate_expiry_is_exposed_by_role_and_follows_reloads() {
        let metrics = metrics(Arc::new(MemoryView::default()));
        let serving = "defender_certificate_expiry_timestamp_seconds{role=\"serving\"}";
        let client_ca = "defender_certificate_expiry_timestamp_seconds{role=\"client_ca\"}";
        assert_eq!(value(&metrics, serving), None, "no certificate loaded yet");
        metrics.serving_cert_loaded(1_900_000_000);
        metrics.certificate_expires(CertRole::ClientCa, 2_000_000_000);
        assert_eq!(value(&metrics, serving), Some(1_900_000_000.0));
        assert_eq!(value(&metrics, client_ca), Some(2_000_000_000.0));
        metrics.cert_reloaded(1_950_000_000);
        assert_eq!(value(&metrics, serving), Some(1_950_000_000.0));
        assert_eq!(value(&metrics, "defender_cert_reloads_total"), Some(1.0));
        // A refused change leaves the expiry of the certificate still serving.
        metrics.cert_reload_failed();
        assert_eq!(value(&metrics, serving), Some(1_950_000_000.0));
        assert_eq!(value(&metrics, client_ca), Some(2_000_000_000.0));
    }

    #[test]
    fn the_certificate_reload_gauge_drops_on_a_refusal_and_recovers() {
        let metrics = metrics(Arc::new(MemoryView::default()));
        let gauge = "defender_cert_last_reload_successful";
        metrics.serving_cert_loaded(1_900_000_000);
        assert_eq!(value(&metrics, gauge), Some(1.0));
        metrics.cert_reload_failed();
        assert_eq!(value(&metrics, gauge), Some(0.0));
        assert_eq!(value(&metrics, "defender_cert_reload_failures_total"), Some(1.0));
        metrics.cert_in_sync();
        assert_eq!(value(&metrics, gauge), Some(1.0));
        metrics.cert_reload_failed();
        metrics.cert_reloaded(1_950_000_000);
        assert_eq!(value(&metrics, gauge), Some(1.0));
    }

    #[test]
    fn failure_series_start_at_zero() {
        let metrics = metrics(Arc::new(MemoryView::default()));
        for kind in ErrorKind::ALL {
            let series = format!("defender_errors_total{{kind=\"{}\"}}", kind.as_str());
            assert_eq!(value(&metrics, &series), Some(0.0), "{series}");
        }
        assert_eq!(value(&metrics, "defender_requests_shed_total{reason=\"reviews_in_flight\"}"), Some(0.0));
        assert_eq!(value(&metrics, "defender_reviews_unfinished_total{verdict=\"deny\"}"), Some(0.0));
        metrics.error(ErrorKind::Timeout);
        assert_eq!(value(&metrics, "defender_errors_total{kind=\"timeout\"}"), Some(1.0));
    }

    #[test]
    fn unsynced_kinds_of_the_cluster_view_are_counted_at_scrape_time() {
        let gauge = "defender_cluster_view_unsynced_resources";
        assert_eq!(value(&metrics(Arc::new(Listing(&["pods", "ingresses"]))), gauge), Some(2.0));
        assert_eq!(value(&metrics(Arc::new(Listing(&[]))), gauge), Some(0.0));
    }
}
