//! Secret contents never leave Defender: not in its logs, its metrics or the
//! messages it returns, even when the Secret's deletion is denied.

use std::time::Duration;

use serde_json::json;

#[path = "support/serve_process.rs"]
mod serve_process;
#[path = "support/wire.rs"]
mod wire;

use serve_process::ServeProcess;

const MARKER: &str = "s3cr3t-marker-7f2b9c";

#[tokio::test]
async fn secret_data_appears_in_no_log_line_metric_or_response() {
    // Debug level: whatever Defender logs at any level must stay clean.
    let server = ServeProcess::start_with_env(&[], &[("RUST_LOG", "debug")]);
    let client = wire::client(&server.ca, Duration::from_secs(10));
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
    let response =
        client.post(server.url("/validate")).json(&review).send().await.unwrap().text().await.unwrap();
    assert!(response.contains("\"allowed\":false"), "{response}");
    // A body that fails to parse must not be echoed either.
    let broken = format!(
        "{{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", \"request\": {{\"uid\": 1, \"x\": \"{MARKER}\"}}}}"
    );
    let error = client.post(server.url("/validate")).body(broken).send().await.unwrap().text().await.unwrap();
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    // Stopped off the runtime, so the client's connections close as they would.
    let logs = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    assert!(logs.contains("\"verdict\":\"deny\""), "the decision was logged:\n{logs}");
    for (place, text) in
        [("response", &response), ("error response", &error), ("metrics", &metrics), ("logs", &logs)]
    {
        assert!(!text.contains(MARKER), "the Secret's contents leaked into the {place}:\n{text}");
    }
}
