//! Secret contents never leave Defender: not in its logs, its metrics or the
//! messages it returns, even when the Secret's deletion is denied.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

const MARKER: &str = "s3cr3t-marker-7f2b9c";

#[tokio::test]
async fn secret_data_appears_in_no_log_line_metric_or_response() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Command::new(env!("CARGO_BIN_EXE_defender"))
        .args(["serve", "--log-format=json", &format!("--listen=127.0.0.1:{port}")])
        .arg(format!("--cert-dir={}", dir.path().display()))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ca = dir.path().join("ca.crt");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ca.exists() {
        assert!(std::time::Instant::now() < deadline, "no certificate was generated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop", "annotations": {"note": MARKER}},
        "data": {"password": MARKER}, "stringData": {"token": MARKER}
    });
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "6c1d", "kind": {"group": "", "version": "v1", "kind": "Secret"},
        "resource": {"group": "", "version": "v1", "resource": "secrets"},
        "name": "db", "namespace": "shop", "operation": "DELETE",
        "userInfo": {"username": "alice"}, "object": null, "oldObject": secret, "dryRun": false
    }});
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = client.post(format!("{base}/validate")).json(&review).send().await {
            answered = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = answered.expect("Defender answered");
    assert!(response.contains("\"allowed\":false"), "{response}");
    // A body that fails to parse must not be echoed either.
    let broken = format!(
        "{{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", \"request\": {{\"uid\": 1, \"x\": \"{MARKER}\"}}}}"
    );
    let error =
        client.post(format!("{base}/validate")).body(broken).send().await.unwrap().text().await.unwrap();
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    // Waiting off the runtime, so the client's connections close as they would.
    let output = tokio::task::spawn_blocking(move || server.wait_with_output()).await.unwrap().unwrap();
    let logs =
        String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("\"verdict\":\"deny\""), "the decision was logged:\n{logs}");
    for (place, text) in
        [("response", &response), ("error response", &error), ("metrics", &metrics), ("logs", &logs)]
    {
        assert!(!text.contains(MARKER), "the Secret's contents leaked into the {place}:\n{text}");
    }
}
