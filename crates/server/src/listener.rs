//! The HTTP listener: accepts connections and serves the router on each, within the
//! limits a node reachable by others needs (axum's `serve` has none of them):
//!
//! - at most `max_connections` connections at once; beyond that, accepting waits (the
//!   kernel's backlog holds newcomers) instead of the node running out of file
//!   descriptors;
//! - a request head must arrive whole within `header_read_timeout`: a client that
//!   trickles its headers (slowloris), or a keep-alive connection idle between requests
//!   for that long, is closed;
//! - graceful shutdown: stop accepting, let each connection finish the request it is
//!   serving, then close it;
//! - with [`Tls`], HTTPS only: the handshake, too, must finish within
//!   `header_read_timeout`.
//!
//! Request bodies have their own timeout (`http.body_read_timeout`, a layer of the
//! router). Each request carries the peer's address as [`ConnectInfo`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::tls::Tls;

/// Connection limits (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown`
/// completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    // Said once per spell of being full.
    let mut full = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                full = false;
                p
            }
            Err(_) => {
                if !full {
                    full = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait (http.max_connections)"
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => p.map_err(io::Error::other)?,
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, and go on.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(axum::body::Body::new)
            },
        );
        let closed = closed.clone();
        let tls = tls.as_ref().map(|t| t.acceptor());
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(TokioIo::new(stream), service, limits, closed, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(TokioIo::new(stream), service, limits, closed, peer)
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection until it ends, or until `closed` says the node is stopping
/// (then the request in flight finishes first).
async fn serve_connection<I, S>(
    io: I,
    service: S,
    limits: Limits,
    mut closed: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = async { closed.wait_for(|c| *c).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The peer of a request served by [`serve`].
pub fn peer_of(req: &axum::http::request::Parts) -> Option<SocketAddr> {
    req.extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a)
}
