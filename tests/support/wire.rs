//! Talking to a server under test: an HTTPS client that trusts only its CA,
//! reading a raw connection to its end, and reading one metric.

// Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::AsyncReadExt;

/// A client that trusts only `ca`, and opens a new connection per request.
pub fn client(ca: &str, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Everything the server sends until it closes the connection (or resets it).
pub async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin), patience: Duration) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(patience, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the server never closed the connection; got so far: {received:?}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// The value of one exposed series, e.g. `defender_reviews_total{operation="DELETE",verdict="deny"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
