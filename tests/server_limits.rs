//! The server never fails open by accident: every review a real API server
//! can send is judged (size), a review that runs out of time still gets a
//! verdict for its uid (slowness), and clients holding large unfinished bodies
//! are shed with 503 before the server runs out of memory. A real server on
//! 127.0.0.1, in process or as `defender serve`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use defender::certs::DevCerts;
use defender::protected_objects::Lookup;
use defender::server::{Config, MAX_BODY_BYTES, Server, TlsSource};
use defender::view::{ClusterView, Contents, MemoryView, NamespaceInfo, Referent, Referrer, Route};
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
const PATIENCE: Duration = Duration::from_secs(30);

const MIB: usize = 1 << 20;

struct Harness {
    server: Server,
    ca: String,
    _dir: TempDir,
}

impl Harness {
    async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate("defender", "defender-system", 1).unwrap();
        let files = certs.write(&dir.path().join("tls")).unwrap();
        let mut config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            TlsSource::Files { cert: files.cert, key: files.key },
        );
        configure(&mut config);
        let server = Server::bind(config).await.unwrap();
        Self { server, ca: certs.ca_pem, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.server.local_addr().port())
    }

    async fn post(&self, body: Vec<u8>) -> reqwest::Response {
        client(&self.ca).post(self.url("/validate")).body(body).send().await.unwrap()
    }

    async fn review(&self, review: &Value) -> Value {
        let response = self.post(serde_json::to_vec(review).unwrap()).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn metrics(&self) -> String {
        client(&self.ca).get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }

    /// Waits until `series` reads `value`.
    async fn wait_for_metric(&self, series: &str, value: f64) {
        self.wait_until(&format!("{series} reading {value}"), |text| metric(text, series) == Some(value))
            .await;
    }

    /// Waits until the metrics show `what`, as `shown` tells.
    async fn wait_until(&self, what: &str, shown: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.metrics().await;
            if shown(&text) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "never saw {what}:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl ServeProcess {
    /// A field of /proc/PID/status in MiB, e.g. VmRSS (resident now) or VmHWM (the peak).
    fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with(&format!("{field}:"))).unwrap();
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024.0
    }
}

async fn tls_connect(addr: SocketAddr, ca: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::pem::PemObject::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// The namespace deletion budget left, whatever labels name it.
fn namespace_budget_left(text: &str) -> Option<f64> {
    let prefix = r#"defender_budget_remaining{policy="namespace-deletion""#;
    text.lines().find_map(|line| line.strip_prefix(prefix)?.rsplit(' ').next()?.parse().ok())
}

fn admission_review(request: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn delete_namespace(uid: &str, namespace: &Value) -> Value {
    admission_review(json!({
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "name": namespace["metadata"]["name"],
        "operation": "DELETE",
        "userInfo": {"username": "alice", "groups": ["devs"]},
        "object": null,
        "oldObject": namespace,
        "dryRun": false
    }))
}

/// An ordinary namespace, confirmed for deletion long ago. Its label has
/// cascading-protection ask the cluster view what it still holds.
fn confirmed_namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name, "uid": format!("uid-{name}"),
            "labels": {"defender.io/delete-protection": "Cascading"},
            "annotations": {"defender.io/delete-after": "2020-01-01T00:00:00Z"}
        }
    })
}

fn ingress(host: &str, paths: usize, path_len: usize) -> Value {
    let paths: Vec<Value> = (0..paths)
        .map(|index| {
            json!({
                "path": format!("/{index}/{}", "<".repeat(path_len)),
                "pathType": "ImplementationSpecific",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}
            })
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web"},
        "spec": {"rules": [{"host": host, "http": {"paths": paths}}]}
    })
}

fn ingress_review(uid: &str, operation: &str, object: &Value, old_object: &Value) -> Value {
    admission_review(json!({
        "uid": uid,
        "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
        "name": "web", "namespace": "shop",
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["devs"]},
        "object": object,
        "oldObject": old_object,
        "dryRun": false
    }))
}

/// The body as the API server sends it: Go's encoding/json writes `<` as `\u003c`.
fn go_encoded(review: &Value) -> Vec<u8> {
    serde_json::to_string(review).unwrap().replace('<', "\\u003c").into_bytes()
}

#[tokio::test]
async fn a_legal_review_over_8_mib_is_judged_and_one_over_the_bound_gets_413() {
    // Time is not what this is about: a debug build on a busy machine parses slowly.
    let harness = Harness::start(|config| config.request_timeout = PATIENCE).await;
    // Each object holds 1.3 MiB of `<` (under the API server's 3 MiB request
    // limit), six times as much once escaped.
    let old = ingress("shop.example.com", 1300, 1000);
    let new = ingress("*.example.com", 1300, 1000);
    let body = go_encoded(&ingress_review("big-1", "UPDATE", &new, &old));
    assert!(body.len() > 15 * MIB, "{}", body.len());
    let response = harness.post(body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["response"]["uid"], "big-1");
    assert_eq!(answer["response"]["allowed"], false, "{}", answer["response"]["status"]);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("defender/ingress-hosts") && message.contains("*.example.com"), "{message}");

    // Over the bound, with a declared length and without one.
    let response = harness.post(vec![b' '; MAX_BODY_BYTES + 1]).await;
    assert_eq!(response.status(), 413);
    let status: Value = response.json().await.unwrap();
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("over 40 MiB") && message.contains("3 MiB"), "{message}");

    let mut stream = tls_connect(harness.server.local_addr(), &harness.ca).await;
    let head = "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", MIB, " ".repeat(MIB));
    for _ in 0..=MAX_BODY_BYTES / MIB {
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let text = harness.metrics().await;
    assert_eq!(metric(&text, r#"defender_errors_total{kind="body_too_large"}"#), Some(2.0));
    assert_eq!(metric(&text, "defender_buffered_bytes"), Some(0.0), "every reservation is given back");
    harness.server.shutdown().await;
}

/// A cluster view whose lookups wait until the test opens the gate: a review
/// that consults it takes as long as the test says, through the real policies.
struct GatedView {
    inner: MemoryView,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicUsize,
}

impl Gate {
    fn pass(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        // Bounded, so a test that forgets to open the gate still ends.
        drop(self.opened.wait_timeout_while(open, PATIENCE, |open| !*open).unwrap());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl ClusterView for GatedView {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.gate.pass();
        self.inner.namespace(name)
    }

    fn contents(&self, namespace: &str) -> Contents {
        self.gate.pass();
        self.inner.contents(namespace)
    }

    fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer> {
        self.gate.pass();
        self.inner.users(referent, namespace, name)
    }

    fn routes_to(&self, host: &str) -> Vec<Route> {
        self.gate.pass();
        self.inner.routes_to(host)
    }

    fn protected_objects(&self, namespace: &str, keys: &[&str]) -> Lookup {
        self.gate.pass();
        self.inner.protected_objects(namespace, keys)
    }
}

fn gated(manifests: &[Value]) -> (Arc<GatedView>, Arc<Gate>) {
    let mut inner = MemoryView::default();
    for manifest in manifests {
        inner.add_manifest(manifest).unwrap();
    }
    let gate = Arc::new(Gate::default());
    (Arc::new(GatedView { inner, gate: Arc::clone(&gate) }), gate)
}

#[tokio::test]
async fn a_review_cut_off_by_the_timeout_is_denied_for_its_uid_and_spends_nothing_after() {
    let namespace = confirmed_namespace("team-a");
    let (view, gate) = gated(std::slice::from_ref(&namespace));
    let harness = Harness::start(|config| {
        config.request_timeout = Duration::from_millis(500);
        config.view = view;
    })
    .await;
    assert_eq!(namespace_budget_left(&harness.metrics().await), Some(3.0));

    let answer = harness.review(&delete_namespace("slow-1", &namespace)).await;
    let response = &answer["response"];
    assert_eq!(response["uid"], "slow-1");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 503);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("could not finish judging this request within 500ms"), "{message}");
    for named in ["namespace-deletion", "cascading-protection", "nothing was changed; try again"] {
        assert!(message.contains(named), "{message}");
    }
    assert!(gate.waiting.load(Ordering::SeqCst) > 0, "the evaluation is still waiting on the view");
    let text = harness.metrics().await;
    assert_eq!(metric(&text, r#"defender_reviews_unfinished_total{verdict="deny"}"#), Some(1.0));

    // The evaluation goes on after its answer went out, and spends nothing.
    gate.open();
    harness.wait_for_metric("defender_buffered_bytes", 0.0).await;
    assert_eq!(namespace_budget_left(&harness.metrics().await), Some(3.0));

    // Judged in time, the same deletion is allowed and spends.
    let answer = harness.review(&delete_namespace("fast-1", &namespace)).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(namespace_budget_left(&harness.metrics().await), Some(2.0));
    harness.server.shutdown().await;
}

#[tokio::test]
async fn a_review_cut_off_where_only_warnings_apply_is_allowed_with_a_warning() {
    let (view, gate) = gated(&[]);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/duplicate-hosts.yaml");
    let harness = Harness::start(|config| {
        config.request_timeout = Duration::from_millis(500);
        config.view = view;
        config.policies = Some(policy);
    })
    .await;
    let review = ingress_review("slow-2", "CREATE", &ingress("shop.example.com", 1, 1), &Value::Null);
    let answer = harness.review(&review).await;
    gate.open();
    let response = &answer["response"];
    assert_eq!(response["uid"], "slow-2");
    assert_eq!(response["allowed"], true);
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(warning.contains("could not finish judging this request within 500ms"), "{warning}");
    assert!(warning.contains("only warn (duplicate-hosts)"), "{warning}");
    let text = harness.metrics().await;
    assert_eq!(metric(&text, r#"defender_reviews_unfinished_total{verdict="warn"}"#), Some(1.0));
    harness.server.shutdown().await;
}

/// The Deployment's container memory limit, in MiB.
fn deployment_memory_limit_mib() -> f64 {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/deployment.yaml"))
            .unwrap();
    let limits = &manifest[manifest.find("limits:").unwrap()..];
    let line = limits.lines().find(|line| line.trim_start().starts_with("memory:")).unwrap();
    line.split(':').nth(1).unwrap().trim().strip_suffix("Mi").unwrap().parse().unwrap()
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// What became of a client holding an unfinished body.
enum Held {
    /// Its body is buffered and the server waits for the rest.
    Waiting(Box<TlsStream>),
    /// The server answered before the body was complete.
    Answered(String),
}

/// Sends `pieces` pieces of `piece` bytes of a body (with a Content-Length of
/// `declared` bytes, or chunked), then stops without finishing it.
async fn hold_a_body(
    addr: SocketAddr,
    ca: String,
    declared: Option<usize>,
    pieces: usize,
    piece: usize,
) -> Held {
    let stream = tls_connect(addr, &ca).await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = match declared {
        Some(bytes) => {
            format!("POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {bytes}\r\n\r\n")
        }
        None => "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
    };
    let piece = match declared {
        Some(_) => vec![b' '; piece],
        None => format!("{piece:x}\r\n{}\r\n", " ".repeat(piece)).into_bytes(),
    };
    let send = async {
        writer.write_all(head.as_bytes()).await?;
        writer.flush().await?;
        for _ in 0..pieces {
            writer.write_all(&piece).await?;
            writer.flush().await?;
        }
        std::io::Result::Ok(())
    };
    let mut answer = Vec::new();
    let sent = tokio::select! {
        sent = send => sent,
        _ = reader.read_to_end(&mut answer) => Err(std::io::ErrorKind::ConnectionAborted.into()),
    };
    match sent {
        Ok(()) => Held::Waiting(Box::new(reader.unsplit(writer))),
        // Stopped sending: whatever the server answered, if it arrives before a reset.
        Err(_) => {
            let mut stream = reader.unsplit(writer);
            let rest = read_until_closed(&mut stream).await;
            Held::Answered(String::from_utf8_lossy(&answer).into_owned() + &rest)
        }
    }
}

/// Runs the holders to the point where each has sent what it will, and sorts
/// them into those the server waits on and what the others were answered.
async fn settle(mut holders: tokio::task::JoinSet<Held>) -> (Vec<Box<TlsStream>>, Vec<String>) {
    let (mut waiting, mut answers) = (Vec::new(), Vec::new());
    while let Some(held) = holders.join_next().await {
        match held.unwrap() {
            Held::Waiting(stream) => waiting.push(stream),
            Held::Answered(answer) => answers.push(answer),
        }
    }
    (waiting, answers)
}

/// Asserts that small reviews are judged: 200, with a verdict for their uid.
async fn small_reviews_are_judged(harness: &Harness) {
    let kube_system = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}});
    for index in 0..10 {
        let uid = format!("small-{index}");
        let answer = harness.review(&delete_namespace(&uid, &kube_system)).await;
        assert_eq!(answer["response"]["uid"], uid.as_str(), "{answer}");
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
    }
}

/// A declared Content-Length holds nothing until its bytes arrive: clients
/// that declare far more than the whole buffer and send nothing leave it free.
#[tokio::test]
async fn bodies_declared_but_never_sent_hold_nothing_and_reviews_are_judged() {
    let harness = Harness::start(|config| config.request_timeout = PATIENCE).await;
    let addr = harness.server.local_addr();
    let mut holders = tokio::task::JoinSet::new();
    // 224 MiB declared in all, against the default 128 MiB.
    for index in 0..68 {
        let declared = if index < 4 { MAX_BODY_BYTES } else { MIB };
        holders.spawn(hold_a_body(addr, harness.ca.clone(), Some(declared), 0, 0));
    }
    let (waiting, answers) = settle(holders).await;
    assert!(answers.is_empty(), "{answers:?}");
    // Every one of them is being read by the server, and holds nothing.
    harness.wait_for_metric("defender_in_flight_requests", waiting.len() as f64).await;
    assert_eq!(metric(&harness.metrics().await, "defender_buffered_bytes"), Some(0.0));

    small_reviews_are_judged(&harness).await;
    drop(waiting);
    harness.server.shutdown().await;
}

/// Bodies over the small size may use only seven eighths of the buffer, so
/// many clients holding mid-size unfinished bodies leave room for small reviews.
#[tokio::test]
async fn holders_of_many_mid_size_bodies_leave_room_for_small_reviews() {
    // A small cap, so a few hundred holders fill it.
    const CAP: usize = MIB;
    const HOLDERS: usize = 300;
    const SENT: usize = 4 << 10;
    let harness = Harness::start(|config| {
        config.request_timeout = PATIENCE;
        config.memory.max_buffered_bytes = CAP;
    })
    .await;
    let addr = harness.server.local_addr();
    let mut holders = tokio::task::JoinSet::new();
    // Each declares 128 KiB (over the small size) and sends 4 KiB: more
    // than the whole cap in all, in steps small enough to fill it up.
    for _ in 0..HOLDERS {
        holders.spawn(hold_a_body(addr, harness.ca.clone(), Some(128 << 10), 1, SENT));
    }
    let (waiting, answers) = settle(holders).await;
    for answer in answers.iter().filter(|answer| !answer.is_empty()) {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    // Wait until the server has shed some holders and read all the others sent.
    let shed_series = r#"defender_requests_shed_total{reason="buffered_bytes"}"#;
    harness
        .wait_until("every holder shed or read to the end", |text| {
            let shed = metric(text, shed_series).unwrap_or(0.0);
            let reading = metric(text, "defender_in_flight_requests").unwrap_or(0.0);
            let buffered = metric(text, "defender_buffered_bytes").unwrap_or(0.0);
            shed > 0.0 && shed + reading == HOLDERS as f64 && buffered >= reading * SENT as f64
        })
        .await;

    small_reviews_are_judged(&harness).await;
    drop(waiting);
    harness.server.shutdown().await;
}

/// Clients hold many large unfinished bodies; the server sheds what would pass
/// its buffer cap with 503, stays under the Deployment's memory limit, and
/// keeps judging small reviews meanwhile. Prints the memory it measured.
#[tokio::test]
async fn clients_holding_large_unfinished_bodies_are_shed_and_memory_stays_under_the_limit() {
    const CLIENTS: usize = 40;
    let limit = deployment_memory_limit_mib();
    // Long enough that no held body times out while the test runs.
    let server = ServeProcess::start(&["--request-timeout", "60s"]);
    let client = client(&server.ca);
    let kube_system = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}});
    let good = delete_namespace("good-0", &kube_system);
    let answer = client.post(server.url("/validate")).json(&good).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let before = server.memory_mib("VmRSS");

    let mut holders = tokio::task::JoinSet::new();
    for index in 0..CLIENTS {
        // Half declare the largest body there is, half send chunks with no length.
        let (declared, pieces) = if index % 2 == 0 { (Some(MAX_BODY_BYTES / MIB), 24) } else { (None, 12) };
        holders.spawn(hold_a_body(
            server.addr,
            server.ca.clone(),
            declared.map(|mib| mib * MIB),
            pieces,
            MIB,
        ));
    }
    let (waiting, answers) = settle(holders).await;
    let held_rss = server.memory_mib("VmRSS");

    // Small reviews are still judged while the large bodies are held.
    for index in 1..=10 {
        let uid = format!("good-{index}");
        let answer = client.post(server.url("/validate")).json(&delete_namespace(&uid, &kube_system)).send();
        let answer: Value = answer.await.unwrap().json().await.unwrap();
        assert_eq!(answer["response"]["uid"], uid.as_str(), "{answer}");
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
    }

    let text = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let shed = metric(&text, r#"defender_requests_shed_total{reason="buffered_bytes"}"#).unwrap_or(0.0);
    let held_peak = server.memory_mib("VmHWM");
    let held = waiting.len();
    drop(waiting);

    // Then large legal reviews, all at once: long strings of escapes, and
    // many small maps (whose parsed tree is some thirty times the body).
    // Each is judged or shed, never more.
    let mut report = Vec::new();
    for (paths, path_length) in [(1300, 1000), (10_000, 0)] {
        let old = ingress("shop.example.com", paths, path_length);
        let new = ingress("*.example.com", paths, path_length);
        let body = go_encoded(&ingress_review("big", "UPDATE", &new, &old));
        let mut large = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let sent = client.post(server.url("/validate")).body(body.clone()).send();
            large.spawn(async move { sent.await.unwrap().status().as_u16() });
        }
        let mut statuses = Vec::new();
        while let Some(status) = large.join_next().await {
            statuses.push(status.unwrap());
        }
        assert!(statuses.iter().all(|status| [200, 503].contains(status)), "{statuses:?}");
        assert!(statuses.contains(&200), "{statuses:?}");
        let judged = statuses.iter().filter(|status| **status == 200).count();
        report.push(format!(
            "peak {:.1} MiB after 6 concurrent {:.1} MiB reviews with {paths} paths ({judged} judged)",
            server.memory_mib("VmHWM"),
            body.len() as f64 / MIB as f64
        ));
    }
    let peak = server.memory_mib("VmHWM");
    eprintln!(
        "memory: {before:.1} MiB before; {held_rss:.1} MiB with {held} large bodies held and {shed} shed \
         (peak {held_peak:.1} MiB); {}; limit {limit} MiB",
        report.join("; ")
    );
    assert!(held > 0, "no large body was buffered at all");
    assert!(shed > 0.0 && !answers.is_empty(), "nothing was shed:\n{text}");
    for answer in answers.iter().filter(|answer| !answer.is_empty()) {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("--max-buffered-bytes"), "{answer}");
    }
    assert!(answers.iter().any(|answer| !answer.is_empty()), "no shed client read its 503");
    assert!(peak < limit, "the server peaked at {peak:.1} MiB, over the Deployment's {limit} MiB limit");
}

/// A legal review whose parsed objects would need more than the cap ever
/// gives one request is answered from its skeleton, not shed: a 503 would
/// be an "allowed" on the Ignore webhooks, every time it was sent.
#[tokio::test]
async fn a_review_too_large_to_ever_parse_within_the_cap_gets_a_verdict_not_a_503() {
    const CAP: usize = 4 * MIB;
    let harness = Harness::start(|config| {
        config.memory.max_buffered_bytes = CAP;
        config.request_timeout = PATIENCE;
    })
    .await;
    // Thousands of short paths: small as text, many maps once parsed.
    let old = ingress("shop.example.com", 6000, 1);
    let new = ingress("shop.example.com", 6000, 2);
    let body = go_encoded(&ingress_review("too-big-1", "UPDATE", &new, &old));
    assert!(body.len() < CAP, "the body itself fits: {}", body.len());
    let response = harness.post(body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["response"]["uid"], "too-big-1");
    assert_eq!(answer["response"]["allowed"], false, "{}", answer["response"]);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not judge this request") && message.contains("ingress-hosts"),
        "{message}"
    );
}
