//! The limits for Defender's load benchmark (bench/load.sh): the same TLS and
//! HTTP stack as `defender serve` (rustls through tokio-rustls, axum on hyper,
//! HTTP/1.1 and HTTP/2), answering every review "allowed". By default without
//! reading it; with `--echo-uid`, as the least a correct webhook does: it
//! reads the whole body and answers with the request's uid, parsing nothing
//! else.
//!
//!     cargo run --release --example allow_all -- 127.0.0.1:9443 tls.crt tls.key [--echo-uid]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const ALLOWED: &str =
    r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, cert, key, echo_uid) = match args.as_slice() {
        [_, listen, cert, key] => (listen, cert, key, false),
        [_, listen, cert, key, flag] if flag == "--echo-uid" => (listen, cert, key, true),
        _ => anyhow::bail!("usage: allow_all LISTEN CERT KEY [--echo-uid]"),
    };
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    let router = if echo_uid {
        Router::new().route("/validate", post(move |body: Bytes| async move { (json, allowed_for(&body)) }))
    } else {
        Router::new().route("/validate", post(move || async move { (json, ALLOWED) }))
    };
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = TowerToHyperService::new(router);
            let _ =
                auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

/// The request's uid: all serde reads of the review, skipping the rest.
#[derive(serde::Deserialize)]
struct Review<'a> {
    #[serde(borrow)]
    request: Uid<'a>,
}

#[derive(serde::Deserialize)]
struct Uid<'a> {
    uid: &'a str,
}

/// "Allowed" for the review in `body`, or for no uid when it is not one.
fn allowed_for(body: &[u8]) -> String {
    let uid = serde_json::from_slice::<Review>(body).map(|review| review.request.uid).unwrap_or_default();
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":{},"allowed":true}}}}"#,
        serde_json::Value::from(uid)
    )
}
