//! The hostile-review table: one AdmissionReview per way someone with
//! cluster-admin RBAC might try to get past Defender (tests/hostile/*.json),
//! with the verdict Defender must give. `defender review` and the running
//! server are asked the same question and must agree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use defender::certs::DevCerts;
use defender::server::{Config, Server, TlsSource};
use defender::view::MemoryView;
use serde::Deserialize as _;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Allow,
    Deny,
}

/// (file, verdict, a substring of the denial message)
const CASES: &[(&str, Verdict, &str)] = &[
    (
        "gc-owner-reference-on-core-namespace",
        Verdict::Deny,
        "adding an ownerReference to namespace \"payments\" lets the garbage collector delete it",
    ),
    ("gc-owner-reference-on-kube-node-lease", Verdict::Deny, "\"kube-node-lease\" is a core namespace"),
    ("gc-owner-reference-on-unconfirmed-namespace", Verdict::Deny, "has not been confirmed for deletion"),
    ("gc-owner-reference-on-secret", Verdict::Deny, "secret \"shop/db\" is protected against deletion"),
    ("gc-owner-reference-through-service-status", Verdict::Deny, "service \"shop/web\" is protected"),
    ("garbage-collector-deletes-core-namespace", Verdict::Deny, "\"kube-node-lease\" is a core namespace"),
    ("finalizer-held-ingress-updated-to-wildcard", Verdict::Deny, "defender/ingress-hosts"),
    ("finalizer-held-ingress-given-default-backend", Verdict::Deny, "defaultBackend"),
    ("finalizer-removed-from-ingress-being-deleted", Verdict::Allow, ""),
    ("namespace-status-strips-core-label", Verdict::Deny, "must keep its label defender.io/core=true"),
    ("namespace-finalize-backdates-confirmation", Verdict::Deny, "is sooner than the 5m cooldown allows"),
    (
        "core-namespace-given-exemption-label",
        Verdict::Deny,
        "cannot carry label defender.io/deletion-allowed=true",
    ),
    (
        "skip-confirmation-label-added-to-live-namespace",
        Verdict::Deny,
        "cannot be added to the existing namespace",
    ),
    ("kube-system-add-on-deletes-secret", Verdict::Deny, "secret \"shop/db\" is protected against deletion"),
    (
        "grpcroute-with-too-broad-wildcard",
        Verdict::Deny,
        "\"*.com\" is a wildcard over a whole top-level domain",
    ),
    ("tlsroute-v1alpha2-without-hostnames", Verdict::Deny, "tlsroute \"shop/db\" would take traffic"),
    ("ingress-v1beta1-catch-all-backend", Verdict::Deny, "spec.backend receives traffic for every host"),
    (
        "ingress-alias-annotation-wildcard",
        Verdict::Deny,
        "annotation nginx.ingress.kubernetes.io/server-alias host",
    ),
    ("httproute-ip-address-hostname", Verdict::Deny, "is an IP address, and IP addresses are not hostnames"),
    ("gc-owner-reference-repointed-by-api-version", Verdict::Deny, "lets the garbage collector delete it"),
    ("nodes-group-claimed-by-a-user", Verdict::Deny, "secret \"shop/db\" is protected against deletion"),
    ("ingress-updated-in-terminating-namespace", Verdict::Deny, "spec.rules[0] has no host"),
];

/// What the cluster holds for every case (cluster.yaml).
fn cluster() -> PathBuf {
    dir().join("cluster.yaml")
}

/// The server's cluster view, from cluster.yaml.
fn cluster_view() -> MemoryView {
    let text = std::fs::read_to_string(cluster()).unwrap();
    let mut view = MemoryView::default();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object = Value::deserialize(document).unwrap();
        assert!(view.add_manifest(&object).unwrap(), "the view keeps {object}");
    }
    view
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

#[test]
fn every_review_in_the_directory_is_in_the_table() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|(file, ..)| (*file).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

/// What `defender review FILE` answers.
fn reviewed_by_cli(file: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_defender"))
        .arg("review")
        .arg("--cluster")
        .arg(cluster())
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_and_the_server_give_each_hostile_review_its_verdict() {
    let work = tempfile::tempdir().unwrap();
    let certs = DevCerts::generate("defender", "defender-system", 1).unwrap();
    let files = certs.write(&work.path().join("tls")).unwrap();
    let mut config =
        Config::new("127.0.0.1:0".parse().unwrap(), TlsSource::Files { cert: files.cert, key: files.key });
    config.view = Arc::new(cluster_view());
    let server = Server::bind(config).await.unwrap();
    let url = format!("https://127.0.0.1:{}/validate", server.local_addr().port());
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).unwrap())
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (name, verdict, message) in CASES {
        let path = dir().join(format!("{name}.json"));
        let review: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let cli = reviewed_by_cli(&path)["response"].clone();
        let response = client.post(&url).json(&review).send().await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let served = response.json::<Value>().await.unwrap()["response"].clone();
        for (who, answer) in [("defender review", &cli), ("the server", &served)] {
            let allowed = answer["allowed"] == true;
            let text = answer["status"]["message"].as_str().unwrap_or_default();
            if allowed != (*verdict == Verdict::Allow) || !text.contains(message) {
                failures.push(format!("{name}: {who} answered {answer}"));
            }
        }
        if cli["allowed"] != served["allowed"] || cli["auditAnnotations"] != served["auditAnnotations"] {
            failures.push(format!("{name}: defender review and the server disagree:\n  {cli}\n  {served}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
