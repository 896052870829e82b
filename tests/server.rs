//! The webhook server over real TLS on 127.0.0.1: reviews, probes, metrics,
//! limits, hot reload and shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use defender::certs::{self, DevCerts};
use defender::server::{Config, Server, TlsSource};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/serve_process.rs"]
mod serve_process;
#[path = "support/wire.rs"]
mod wire;
use serve_process::ServeProcess;
use wire::metric;

fn client(ca: &str) -> reqwest::Client {
    wire::client(ca, PATIENCE)
}

async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    wire::read_until_closed(stream, PATIENCE).await
}

/// A bound on every wait, so a broken server fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(15);

struct Harness {
    server: Server,
    dir: TempDir,
    /// The CA that signed the certificate the server started with.
    ca: String,
}

impl Harness {
    /// A server on 127.0.0.1:0 with a certificate in a temporary directory.
    async fn start(configure: impl FnOnce(&mut Config, &Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate("defender", "defender-system", 1).unwrap();
        let files = certs.write(&dir.path().join("tls")).unwrap();
        let tls = TlsSource::Files { cert: files.cert, key: files.key };
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), tls);
        config.reload_interval = Duration::from_millis(50);
        configure(&mut config, dir.path());
        let server = Server::bind(config).await.unwrap();
        Self { server, dir, ca: certs.ca_pem }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.server.local_addr().port())
    }

    fn client(&self) -> reqwest::Client {
        client(&self.ca)
    }

    async fn review(&self, review: &Value) -> Value {
        let response = self.client().post(self.url("/validate")).json(review).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn metrics(&self) -> String {
        self.client().get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }

    /// Waits until `series` (name and labels, as exposed) has at least `at_least`.
    async fn wait_for_metric(&self, series: &str, at_least: f64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.metrics().await;
            if metric(&text, series).is_some_and(|value| value >= at_least) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{series} never reached {at_least}:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn tls_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("tls").join(name)
    }
}

fn admission_review(request: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn delete_namespace(uid: &str, name: &str) -> Value {
    admission_review(json!({
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "name": name,
        "operation": "DELETE",
        "userInfo": {"username": "alice", "groups": ["devs"]},
        "object": null,
        "oldObject": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        "dryRun": false
    }))
}

fn create_config_map(uid: &str, data: &str) -> Value {
    admission_review(json!({
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "name": "settings",
        "namespace": "prod",
        "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["devs"]},
        "object": {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "prod"},
            "data": {"value": data}
        },
        "oldObject": null,
        "dryRun": false
    }))
}

/// A TLS connection by hand, for requests reqwest cannot send (slow bodies).
async fn tls_connect(
    harness: &Harness,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tls_connect_to(harness.server.local_addr(), &harness.ca, versions).await
}

async fn tls_connect_to(
    addr: SocketAddr,
    ca: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(ca.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

fn request_head(length: usize) -> String {
    format!(
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn denies_deleting_kube_system_and_allows_an_ordinary_change() {
    let harness = Harness::start(|_, _| {}).await;

    let denied = harness.review(&delete_namespace("d-1", "kube-system")).await;
    assert_eq!(denied["response"]["uid"], "d-1");
    assert_eq!(denied["response"]["allowed"], false);
    assert_eq!(denied["response"]["status"]["code"], 403);
    let message = denied["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("core-namespaces") && message.contains("kube-system"), "{message}");

    let allowed = harness.review(&create_config_map("a-1", "x")).await;
    assert_eq!(allowed["response"]["uid"], "a-1");
    assert_eq!(allowed["response"]["allowed"], true);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn probes_and_metrics_report_the_server_and_its_reviews() {
    let harness = Harness::start(|_, _| {}).await;
    let client = harness.client();
    let health = client.get(harness.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    assert_eq!(client.get(harness.url("/readyz")).send().await.unwrap().status(), 200);

    let denials = r#"defender_reviews_total{operation="DELETE",verdict="deny"}"#;
    let findings = r#"defender_policy_findings_total{policy="core-namespaces",action="deny"}"#;
    let before = harness.metrics().await;
    assert_eq!(metric(&before, denials), None);
    assert_eq!(metric(&before, "defender_review_duration_seconds_count"), Some(0.0));
    let budget = r#"defender_budget_remaining{policy="namespace-deletion",budget="namespace-deletions",subject="Namespace"}"#;
    assert_eq!(metric(&before, budget), Some(3.0));
    assert_eq!(metric(&before, "defender_in_flight_requests"), Some(0.0));
    assert_eq!(metric(&before, "defender_policy_last_reload_successful"), Some(1.0));
    // The audit families are there without --audit-interval, with no samples yet.
    for family in ["defender_audit_violations", "defender_audit_last_success_timestamp_seconds"] {
        assert!(before.contains(&format!("# TYPE {family} gauge")), "{family} missing:\n{before}");
    }
    assert!(before.contains("# TYPE defender_audit_failures counter"), "{before}");

    harness.review(&delete_namespace("m-1", "kube-system")).await;
    let after = harness.metrics().await;
    assert_eq!(metric(&after, denials), Some(1.0));
    assert_eq!(metric(&after, findings), Some(1.0));
    assert_eq!(metric(&after, "defender_review_duration_seconds_count"), Some(1.0));
    // A denied deletion spends no budget.
    assert_eq!(metric(&after, budget), Some(3.0));

    let response = client.get(harness.url("/metrics")).send().await.unwrap();
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");

    // Draining: not ready for new traffic, still alive and still answering.
    harness.server.begin_drain();
    assert_eq!(client.get(harness.url("/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(client.get(harness.url("/healthz")).send().await.unwrap().status(), 200);
    let late = harness.review(&delete_namespace("m-2", "kube-system")).await;
    assert_eq!(late["response"]["allowed"], false);
    harness.server.shutdown().await;
}

/// Until every watch of the cluster view has listed its kind, Defender is not
/// ready, and says which kinds it waits for. Here no API server answers.
#[tokio::test]
async fn readiness_waits_for_the_cluster_view_and_names_what_it_waits_for() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client =
        kube::Client::try_from(kube::Config::new(format!("http://{nobody}").parse().unwrap())).unwrap();
    let harness =
        Harness::start(|config, _| config.view = Arc::new(defender::view::LiveView::start(client))).await;
    let response = harness.client().get(harness.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("not ready: the cluster view has not listed namespaces, pods, deployments,"),
        "{text}"
    );
    // Reviews are still answered, from what the view knows (nothing yet).
    let denied = harness.review(&delete_namespace("r-1", "kube-system")).await;
    assert_eq!(denied["response"]["allowed"], false);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn a_malformed_body_is_a_400_and_the_server_keeps_answering() {
    let harness = Harness::start(|_, _| {}).await;
    let client = harness.client();
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}"#,
    ] {
        let response = client.post(harness.url("/validate")).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["kind"], "Status");
        assert!(status["message"].as_str().unwrap().contains("AdmissionReview"), "{status}");
    }

    // Parsed, but not something Defender can judge: an answer without a uid,
    // which the API server treats per the webhook's failurePolicy.
    let mut old_version = delete_namespace("v-1", "prod");
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let answer = harness.review(&old_version).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["uid"], "");
    assert!(answer["response"]["status"]["message"].as_str().unwrap().contains("admissionReviewVersions"));

    let still = harness.review(&delete_namespace("k-1", "kube-system")).await;
    assert_eq!(still["response"]["allowed"], false);
    let text = harness.metrics().await;
    assert_eq!(metric(&text, r#"defender_errors_total{kind="malformed_review"}"#), Some(4.0));
    assert_eq!(metric(&text, r#"defender_errors_total{kind="invalid_review"}"#), Some(1.0));
    harness.server.shutdown().await;
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_spoken() {
    let harness = Harness::start(|_, _| {}).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut stream = tls_connect(&harness, &[version]).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        assert!(read_until_closed(&mut stream).await.starts_with("HTTP/1.1 200"));
    }

    // A TLS 1.1 ClientHello (no supported_versions extension), written by hand
    // because no client here speaks 1.1.
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend([0x5a; 32]); // random
    hello.push(0); // no session id
    hello.extend([0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x13]); // ECDHE-ECDSA-AES128-GCM, ECDHE-RSA-AES128-CBC
    hello.extend([0x01, 0x00]); // null compression
    hello.extend([0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]); // signature_algorithms
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    let mut tcp = TcpStream::connect(harness.server.local_addr()).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut alert = [0u8; 7];
    tokio::time::timeout(PATIENCE, tcp.read_exact(&mut alert)).await.unwrap().unwrap();
    assert_eq!(alert[0], 0x15, "expected an alert record, got {alert:?}");
    assert_eq!(alert[5..], [2, 70], "expected a fatal protocol_version alert, got {alert:?}");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_and_a_bad_one_is_refused() {
    let harness = Harness::start(|_, _| {}).await;
    let first = harness.client();
    first.get(harness.url("/healthz")).send().await.unwrap();
    // The certificate is valid for a day; a minute covers the time the test takes.
    let serving_expiry = r#"defender_certificate_expiry_timestamp_seconds{role="serving"}"#;
    let in_a_day =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() + 86_400.0;
    let expiry = metric(&harness.metrics().await, serving_expiry).expect("the serving certificate's expiry");
    assert!((expiry - in_a_day).abs() < 60.0, "expires at {expiry}, a day from now is {in_a_day}");
    assert_eq!(
        metric(
            &harness.metrics().await,
            r#"defender_certificate_expiry_timestamp_seconds{role="client_ca"}"#
        ),
        None
    );
    let rotated = DevCerts::generate("defender", "defender-system", 1).unwrap();
    let second = client(&rotated.ca_pem);
    assert!(second.get(harness.url("/healthz")).send().await.is_err(), "not trusted before the rotation");

    rotated.write(&harness.dir.path().join("tls")).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while second.get(harness.url("/healthz")).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the rotated certificate was never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first.get(harness.url("/healthz")).send().await.is_err(), "the old certificate is gone");
    let metrics =
        || async { second.get(harness.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    assert_eq!(metric(&metrics().await, "defender_cert_reloads_total"), Some(1.0));
    assert_eq!(metric(&metrics().await, "defender_cert_last_reload_successful"), Some(1.0));
    let rotated_expiry = metric(&metrics().await, serving_expiry).expect("the rotated certificate's expiry");
    assert!((rotated_expiry - in_a_day).abs() < 60.0, "expires at {rotated_expiry}");

    // Garbage, then a key that belongs to another certificate: both refused.
    std::fs::write(harness.tls_path(certs::TLS_CERT), "garbage").unwrap();
    let other = DevCerts::generate("defender", "defender-system", 1).unwrap();
    for failures in [1.0, 2.0] {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while metric(&metrics().await, "defender_cert_reload_failures_total") != Some(failures) {
            assert!(tokio::time::Instant::now() < deadline, "refusal {failures} never counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let health = second.get(harness.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "the last good certificate keeps serving");
        assert_eq!(metric(&metrics().await, "defender_cert_last_reload_successful"), Some(0.0));
        std::fs::write(harness.tls_path(certs::TLS_CERT), &other.cert_pem).unwrap();
    }
    assert_eq!(metric(&metrics().await, "defender_cert_reloads_total"), Some(1.0));
    // The refused files leave the expiry of the certificate still serving.
    assert_eq!(metric(&metrics().await, serving_expiry), Some(rotated_expiry));
    harness.server.shutdown().await;
}

/// A Kubernetes Secret volume: the files are symlinks through `..data`, and
/// an update swaps `..data` to a new timestamped directory in one rename.
struct SecretVolume {
    root: PathBuf,
}

impl SecretVolume {
    fn new(root: PathBuf, certs: &DevCerts) -> Self {
        std::fs::create_dir_all(&root).unwrap();
        let volume = Self { root };
        volume.publish("..2026_01_01_00_00_00.1", certs);
        for name in [certs::TLS_CERT, certs::TLS_KEY] {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.root.join(name)).unwrap();
        }
        volume
    }

    /// Writes `certs` into a new version directory and points `..data` at it.
    fn publish(&self, version: &str, certs: &DevCerts) {
        certs.write(&self.root.join(version)).unwrap();
        let staged = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(version, &staged).unwrap();
        std::fs::rename(&staged, self.root.join("..data")).unwrap();
    }
}

#[tokio::test]
async fn a_secret_volume_update_rotates_the_certificate_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let first = DevCerts::generate("defender", "defender-system", 1).unwrap();
    let volume = SecretVolume::new(dir.path().join("tls"), &first);
    let tls =
        TlsSource::Files { cert: volume.root.join(certs::TLS_CERT), key: volume.root.join(certs::TLS_KEY) };
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), tls);
    config.reload_interval = Duration::from_millis(20);
    let server = Server::bind(config).await.unwrap();
    let url = format!("https://127.0.0.1:{}/healthz", server.local_addr().port());

    let rotated = DevCerts::generate("defender", "defender-system", 1).unwrap();
    let either = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(first.ca_pem.as_bytes()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(rotated.ca_pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let only_rotated = client(&rotated.ca_pem);
    // Requests keep flowing through the swap, and a while after it (at least
    // 20 in all, however slow a busy machine makes each handshake); none may fail.
    let rotation_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flowing = {
        let (either, url, rotation_seen) = (either.clone(), url.clone(), Arc::clone(&rotation_seen));
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0, 0);
            let give_up = tokio::time::Instant::now() + PATIENCE;
            while (sent < 20 || !rotation_seen.load(std::sync::atomic::Ordering::Acquire))
                && tokio::time::Instant::now() < give_up
            {
                sent += 1;
                if !either.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                    failed += 1;
                }
            }
            (sent, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    volume.publish("..2026_01_02_00_00_00.2", &rotated);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while only_rotated.get(&url).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the swapped certificate was never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rotation_seen.store(true, std::sync::atomic::Ordering::Release);
    let (sent, failed) = flowing.await.unwrap();
    assert!(sent >= 20, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed during the rotation");
    assert!(client(&first.ca_pem).get(&url).send().await.is_err(), "the old certificate is gone");
    server.shutdown().await;
}

/// A CA and a client certificate it signed, as the API server's admission
/// kubeconfig would present: `(ca_pem, client_cert_pem + client_key_pem)`.
fn client_identity() -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["kube-apiserver".to_owned()]).unwrap();
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = client.signed_by(&key, &Issuer::from_params(&ca, &ca_key)).unwrap();
    (ca_cert.pem(), format!("{}{}", cert.pem(), key.serialize_pem()))
}

#[tokio::test]
async fn with_a_client_ca_only_clients_holding_its_certificates_are_served() {
    let (client_ca, identity) = client_identity();
    let harness = Harness::start(|config, dir| {
        let path = dir.join("client-ca.crt");
        std::fs::write(&path, &client_ca).unwrap();
        config.client_ca = Some(path);
    })
    .await;
    assert!(harness.client().get(harness.url("/healthz")).send().await.is_err(), "no certificate, no answer");
    let (_, stranger) = client_identity();
    let presenting = |identity: &str| {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(harness.ca.as_bytes()).unwrap())
            .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
            .timeout(PATIENCE)
            .build()
            .unwrap()
    };
    for (identity, expected) in [(&stranger, false), (&identity, true)] {
        let client = presenting(identity);
        let answered = client.get(harness.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200);
        assert_eq!(
            answered,
            expected,
            "a certificate from {} CA",
            if expected { "the configured" } else { "another" }
        );
    }
    // The CA's expiry is exposed for the alerts: rcgen's default notAfter, 4096-01-01.
    let text = presenting(&identity).get(harness.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let client_ca_expiry = r#"defender_certificate_expiry_timestamp_seconds{role="client_ca"}"#;
    assert_eq!(metric(&text, client_ca_expiry), Some(67_090_118_400.0), "{text}");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn an_unusable_client_ca_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::generate("defender", "defender-system", 1).unwrap();
    let files = certs.write(&dir.path().join("tls")).unwrap();
    let mut config =
        Config::new("127.0.0.1:0".parse().unwrap(), TlsSource::Files { cert: files.cert, key: files.key });
    let path = dir.path().join("client-ca.crt");
    std::fs::write(&path, "not a certificate").unwrap();
    config.client_ca = Some(path);
    let error = Server::bind(config).await.err().expect("startup refused");
    assert!(error.to_string().contains("cannot use the client CA"), "{error}");
}

const CORE: &str = "apiVersion: defender.io/v1alpha1\nkind: CoreNamespaces\nmetadata: {name: core}\n\
                    spec: {action: deny, namespaces: [kube-system]}\n";

#[tokio::test]
async fn a_bad_policy_change_keeps_the_last_good_set() {
    let harness = Harness::start(|config, dir| {
        let policies = dir.join("policies");
        std::fs::create_dir(&policies).unwrap();
        std::fs::write(policies.join("core.yaml"), CORE).unwrap();
        config.policies = Some(policies);
    })
    .await;
    let policy_file = harness.dir.path().join("policies/core.yaml");
    let denied = harness.review(&delete_namespace("p-1", "kube-system")).await;
    assert_eq!(denied["response"]["allowed"], false);

    // A typo must not turn the protection off.
    std::fs::write(&policy_file, CORE.replace("action: deny", "acton: warn")).unwrap();
    harness.wait_for_metric("defender_policy_reload_failures_total", 1.0).await;
    let text = harness.metrics().await;
    assert_eq!(metric(&text, "defender_policy_last_reload_successful"), Some(0.0));
    let still = harness.review(&delete_namespace("p-2", "kube-system")).await;
    assert_eq!(still["response"]["allowed"], false, "the last good set stays in force");

    std::fs::write(&policy_file, CORE.replace("action: deny", "action: warn")).unwrap();
    harness.wait_for_metric("defender_policy_reloads_total", 1.0).await;
    let text = harness.metrics().await;
    assert_eq!(metric(&text, "defender_policy_last_reload_successful"), Some(1.0));
    let warned = harness.review(&delete_namespace("p-3", "kube-system")).await;
    assert_eq!(warned["response"]["allowed"], true);
    let warnings = warned["response"]["warnings"].to_string();
    assert!(warnings.contains("defender/core"), "{warnings}");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_the_review_in_flight() {
    let harness = Harness::start(|_, _| {}).await;
    let body = serde_json::to_vec(&delete_namespace("s-1", "kube-system")).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tls_connect(&harness, &[&rustls::version::TLS13]).await.unwrap();
    stream.write_all(request_head(body.len()).as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream.flush().await.unwrap();
    harness.wait_for_metric("defender_in_flight_requests", 1.0).await;

    let addr = harness.server.local_addr();
    let shutdown = tokio::spawn(harness.server.shutdown());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stream.write_all(rest).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""uid":"s-1""#) && answer.contains(r#""allowed":false"#), "{answer}");
    let outcome = tokio::time::timeout(PATIENCE, shutdown).await.unwrap().unwrap();
    assert_eq!(outcome.cut_off, 0);
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_times_out_with_503() {
    let harness = Harness::start(|config, _| config.request_timeout = Duration::from_millis(300)).await;
    let mut stream = tls_connect(&harness, &[&rustls::version::TLS13]).await.unwrap();
    stream.write_all(request_head(100).as_bytes()).await.unwrap();
    stream.write_all(b"{\"apiVersion\"").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("request timeout"), "{answer}");
    harness.wait_for_metric(r#"defender_errors_total{kind="timeout"}"#, 1.0).await;
    harness.server.shutdown().await;
}

#[tokio::test]
async fn silent_clients_are_disconnected() {
    let harness = Harness::start(|config, _| {
        config.limits.handshake_timeout = Duration::from_millis(200);
        config.limits.header_read_timeout = Duration::from_millis(200);
    })
    .await;
    // Connected, but never starts the TLS handshake.
    let mut tcp = TcpStream::connect(harness.server.local_addr()).await.unwrap();
    assert_eq!(read_until_closed(&mut tcp).await, "");
    harness.wait_for_metric(r#"defender_errors_total{kind="tls_handshake"}"#, 1.0).await;

    // Finished the handshake, then sends half a request line.
    let mut stream = tls_connect(&harness, &[&rustls::version::TLS13]).await.unwrap();
    stream.write_all(b"GET /healthz HT").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    harness.server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let harness = Harness::start(|config, _| config.limits.max_connections = 1).await;
    // Holds the only slot: connected, handshake not started.
    let holder = TcpStream::connect(harness.server.local_addr()).await.unwrap();
    let waiting =
        tokio::time::timeout(Duration::from_secs(1), harness.client().get(harness.url("/healthz")).send());
    assert!(!matches!(waiting.await, Ok(Ok(_))), "a second connection was served while the cap was reached");

    drop(holder);
    let health = harness.client().get(harness.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    harness.server.shutdown().await;
}

#[tokio::test]
async fn without_a_certificate_a_development_one_is_generated_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("dev-certs");
    let tls = TlsSource::Generate { dir: cert_dir.clone() };
    let server = Server::bind(Config::new("127.0.0.1:0".parse().unwrap(), tls)).await.unwrap();
    let ca = std::fs::read_to_string(cert_dir.join(certs::CA_CERT)).unwrap();
    for name in [certs::TLS_CERT, certs::TLS_KEY, certs::CA_BUNDLE] {
        assert!(cert_dir.join(name).is_file(), "{name} was not written");
    }
    let url = format!("https://127.0.0.1:{}/readyz", server.local_addr().port());
    let ready = client(&ca).get(url).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    server.shutdown().await;

    // A restart keeps the CA the client already trusts; a broken pair is replaced.
    let tls = TlsSource::Generate { dir: cert_dir.clone() };
    let again = Server::bind(Config::new("127.0.0.1:0".parse().unwrap(), tls)).await.unwrap();
    let url = format!("https://127.0.0.1:{}/healthz", again.local_addr().port());
    assert_eq!(client(&ca).get(url).send().await.unwrap().status(), 200);
    again.shutdown().await;
    std::fs::write(cert_dir.join(certs::TLS_KEY), "broken").unwrap();
    let tls = TlsSource::Generate { dir: cert_dir.clone() };
    let regenerated = Server::bind(Config::new("127.0.0.1:0".parse().unwrap(), tls)).await.unwrap();
    assert_ne!(std::fs::read_to_string(cert_dir.join(certs::CA_CERT)).unwrap(), ca, "a new CA was made");
    regenerated.shutdown().await;
}

#[tokio::test]
async fn a_bad_certificate_or_policy_set_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let one = DevCerts::generate("a", "b", 1).unwrap().write(&dir.path().join("one")).unwrap();
    let two = DevCerts::generate("a", "b", 1).unwrap().write(&dir.path().join("two")).unwrap();
    let mismatched = TlsSource::Files { cert: one.cert.clone(), key: two.key };
    let error = Server::bind(Config::new("127.0.0.1:0".parse().unwrap(), mismatched)).await.err().unwrap();
    assert!(error.to_string().contains("does not belong"), "{error}");

    let bad_policies = dir.path().join("bad.yaml");
    std::fs::write(&bad_policies, "kind: Nonsense\n").unwrap();
    let mut config =
        Config::new("127.0.0.1:0".parse().unwrap(), TlsSource::Files { cert: one.cert, key: one.key });
    config.policies = Some(bad_policies);
    let error = Server::bind(config).await.err().unwrap();
    assert!(error.to_string().contains("bad.yaml"), "{error}");
}

#[tokio::test]
async fn the_api_servers_http2_is_spoken() {
    let harness = Harness::start(|_, _| {}).await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(harness.ca.as_bytes()).unwrap())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    for uid in ["h2-1", "h2-2"] {
        let response =
            client.post(harness.url("/validate")).json(&delete_namespace(uid, "kube-system")).send();
        let response = response.await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        let review: Value = response.json().await.unwrap();
        assert_eq!(review["response"]["uid"], uid);
        assert_eq!(review["response"]["allowed"], false);
    }
    harness.server.shutdown().await;
}

/// Hostile requests: each gets a clear status or a well-formed answer, and the
/// next ordinary review is still judged.
#[tokio::test]
async fn hostile_requests_get_clear_answers_and_the_server_keeps_judging() {
    let harness = Harness::start(|_, _| {}).await;
    let client = harness.client();
    let mut long_name = delete_namespace("u-1", "x");
    let name = "ü名".repeat(20_000);
    long_name["request"]["name"] = json!(name);
    long_name["request"]["oldObject"]["metadata"]["name"] = json!(name);
    let mut no_uid = delete_namespace("u-2", "prod");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("nested 100,000 deep", "[".repeat(100_000).into_bytes(), 400),
        ("nested objects", "{\"a\":".repeat(50_000).into_bytes(), 400),
        ("a string of NULs", vec![0; 4096], 400),
        ("invalid UTF-8", vec![0xff, 0xfe, b'{', 0xc3], 400),
        ("no uid", serde_json::to_vec(&no_uid).unwrap(), 400),
        ("a 120 KB unicode name", serde_json::to_vec(&long_name).unwrap(), 200),
    ];
    for (what, body, status) in cases {
        let response = client.post(harness.url("/validate")).body(body).send().await.unwrap();
        assert_eq!(response.status(), status, "{what}");
        let answer: Value = response.json().await.unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        if status == 200 {
            assert_eq!(answer["response"]["uid"], "u-1", "{what}");
        }
        let still = harness.review(&delete_namespace("k-1", "kube-system")).await;
        assert_eq!(still["response"]["allowed"], false, "after {what}");
    }

    // HTTP/1.0, one request per connection.
    let body = serde_json::to_string(&delete_namespace("h-1", "kube-system")).unwrap();
    let mut stream = tls_connect(&harness, &[&rustls::version::TLS13]).await.unwrap();
    let request = format!(
        "POST /validate HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"allowed\":false"), "{answer}");
    harness.server.shutdown().await;
}

impl ServeProcess {
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    async fn wait_for_metric(&self, series: &str, at_least: f64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let response = client(&self.ca).get(self.url("/metrics")).send().await.unwrap();
            let text = response.text().await.unwrap();
            if metric(&text, series).is_some_and(|value| value >= at_least) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{series} never reached {at_least}:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, once the process has exited.
    async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "still running:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// SIGTERM with reviews in flight (bodies half sent, as over a slow link) and
/// idle keep-alive connections: /readyz fails while the listener stays open for
/// --shutdown-delay, then the listener closes, every review in flight is
/// answered with its verdict, and the process exits 0 well within the grace.
#[tokio::test]
async fn sigterm_under_load_answers_every_review_in_flight_then_exits_cleanly() {
    const IN_FLIGHT: usize = 48;
    let mut server = ServeProcess::start(&[
        "--shutdown-delay",
        "3s",
        "--shutdown-grace",
        "60s",
        "--request-timeout",
        "60s",
    ]);
    let mut pending = Vec::new();
    for index in 0..IN_FLIGHT {
        let uid = format!("t-{index}");
        let (review, allowed) = match index % 2 {
            0 => (delete_namespace(&uid, "kube-system"), false),
            _ => (create_config_map(&uid, "x"), true),
        };
        let body = serde_json::to_vec(&review).unwrap();
        let mut stream = tls_connect_to(server.addr, &server.ca, &[&rustls::version::TLS13]).await.unwrap();
        stream.write_all(request_head(body.len()).as_bytes()).await.unwrap();
        stream.write_all(&body[..body.len() / 2]).await.unwrap();
        stream.flush().await.unwrap();
        pending.push((uid, allowed, body, stream));
    }
    // An HTTP/2 connection the API server would keep open between reviews.
    let idle = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca.as_bytes()).unwrap())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let answered = idle.post(server.url("/validate")).json(&delete_namespace("i-1", "kube-system")).send();
    assert_eq!(answered.await.unwrap().version(), reqwest::Version::HTTP_2);
    server.wait_for_metric("defender_in_flight_requests", IN_FLIGHT as f64).await;

    server.signal("-TERM");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ready = client(&server.ca).get(server.url("/readyz")).send().await;
        let status = ready.expect("the listener closed before /readyz reported draining").status();
        if status == 503 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz never reported draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The listener is closed: now the rest of every body, a little at a time.
    let mut finishing = tokio::task::JoinSet::new();
    for (uid, allowed, body, mut stream) in pending {
        finishing.spawn(async move {
            for piece in body[body.len() / 2..].chunks(body.len() / 8 + 1) {
                let sent = async { stream.write_all(piece).await.and(stream.flush().await) };
                sent.await.unwrap_or_else(|error| panic!("{uid} was cut off mid-body: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (uid, allowed, read_until_closed(&mut stream).await)
        });
    }
    let mut judged = 0;
    while let Some(finished) = finishing.join_next().await {
        let (uid, allowed, answer) = finished.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{uid}: {answer}");
        assert!(answer.contains(&format!(r#""uid":"{uid}""#)), "{uid}: {answer}");
        assert!(answer.contains(&format!(r#""allowed":{allowed}"#)), "{uid}: {answer}");
        judged += 1;
    }
    assert_eq!(judged, IN_FLIGHT);

    let status = server.exited().await;
    let log = server.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("shut down cleanly") && !log.contains("still busy"), "{log}");
    drop(idle);
}
