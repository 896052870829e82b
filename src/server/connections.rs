//! The accept loop: TLS handshakes, HTTP/1.1 and HTTP/2 connections, limits on
//! slow and idle clients, and draining on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::server::metrics::{ErrorKind, Metrics};

/// How long a client may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the TLS handshake, from TCP accept.
    pub handshake_timeout: Duration,
    /// For an HTTP/1.1 request's headers; also closes idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// Open connections, handshaking ones included. At the cap, new ones wait in
    /// the listen backlog until one closes.
    pub max_connections: usize,
    /// How long shutdown waits for open requests to finish.
    pub shutdown_grace: Duration,
}

/// Serves until `shutdown` turns true, then stops accepting, lets open requests
/// finish for up to the grace period, and returns how many connections were
/// still open when it ran out.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> usize {
    let http = Arc::new(http_builder(limits));
    let service = TowerToHyperService::new(router);
    let mut connections = JoinSet::new();
    let max_connections = limits.max_connections.max(1);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = ended && error.is_panic() {
                    tracing::error!("a connection task panicked: {error}");
                }
            }
            accepted = listener.accept(), if connections.len() < max_connections => match accepted {
                Ok((tcp, peer)) => {
                    let connection = Connection {
                        acceptor: acceptor.clone(),
                        http: Arc::clone(&http),
                        service: service.clone(),
                        metrics: Arc::clone(&metrics),
                        shutdown: shutdown.clone(),
                        handshake_timeout: limits.handshake_timeout,
                    };
                    connections.spawn(connection.run(tcp, peer));
                }
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    metrics.error(ErrorKind::Accept);
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(connections = open, "stopped accepting; waiting for open requests to finish");
    }
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => 0,
        Err(_) => {
            let left = connections.len();
            connections.abort_all();
            left
        }
    }
}

fn http_builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    // Pings find peers that vanished without closing; the API server keeps
    // HTTP/2 connections open between reviews, so idle ones stay.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

struct Connection {
    acceptor: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    service: TowerToHyperService<Router>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    handshake_timeout: Duration,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream, peer: SocketAddr) {
        // Reviews are small request/response pairs: don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let handshake = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp));
        let tls = tokio::select! {
            () = stopped(&mut self.shutdown) => return,
            handshake = handshake => match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    self.metrics.error(ErrorKind::TlsHandshake);
                    tracing::debug!(%peer, "TLS handshake failed: {error}");
                    return;
                }
                Err(_) => {
                    self.metrics.error(ErrorKind::TlsHandshake);
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            },
        };
        let connection = self.http.serve_connection(TokioIo::new(tls), self.service);
        tokio::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            () = stopped(&mut self.shutdown) => {
                // Finish the request in progress, then close (HTTP/2: GOAWAY).
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = ended {
            tracing::debug!(%peer, "connection closed with an error: {error}");
        }
    }
}

/// Resolves once shutdown is asked for (or the sender is gone, which means the same).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is not Send.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
