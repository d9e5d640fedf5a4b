//! The gateway's HTTPS listener: rustls (ring) with the node's TLS certificate, server
//! authentication only (HTTP clients hold no federation certificate; they trust the CA), HTTP/2
//! and HTTP/1.1 by ALPN, and axum-server's accept loop with the node's handshake deadline and
//! calls per connection, and the gateway's connections per source and in all.

use std::future::{Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tierlink_core::config::{GatewaySettings, LimitSettings};
use tokio::net::TcpStream;

use crate::limits::{Admitted, Connections};

/// The node's TLS certificate or key that the gateway cannot use.
#[derive(Debug, thiserror::Error)]
#[error("the gateway cannot use the node's TLS certificate and key: {0}")]
pub struct TlsError(String);

/// A server configuration presenting `cert_pem` (with any chain after it) and `key_pem`.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let bad = |e: &dyn std::fmt::Display| TlsError(e.to_string());
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Admits a TCP connection while its source, and the listener, are within their limits;
/// otherwise closes it before the TLS handshake.
#[derive(Clone, Debug)]
pub struct Admit(pub Connections);

impl<S> Accept<TcpStream, S> for Admit {
    type Stream = Admitted<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let admitted = stream.peer_addr().and_then(|peer| {
            self.0.admit(peer.ip()).map_err(|crowded| {
                tracing::warn!(%peer, reason = %crowded, "gateway connection closed");
                io::Error::other(crowded)
            })
        });
        ready(admitted.map(|permit| (Admitted::new(stream, permit), service)))
    }
}

/// Serves `app` on `listener` over TLS until `handle` shuts it down, within the node's `limits`
/// and the gateway's `settings`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: &LimitSettings,
    settings: &GatewaySettings,
    handle: axum_server::Handle<SocketAddr>,
    app: axum::Router,
) -> std::io::Result<()> {
    let admit = Admit(Connections::new(
        settings.connections_per_source,
        settings.connections,
    ));
    let handshake = Duration::from_millis(limits.handshake_ms);
    let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls))
        .handshake_timeout(handshake)
        .acceptor(admit);
    // A connection that sends no first request (HTTP/2 included) is closed at the handshake
    // deadline after its handshake.
    let mut server = axum_server::Server::from_listener(listener)
        .acceptor(acceptor)
        .first_request_timeout(handshake)
        .handle(handle);
    // A client that never finishes its request headers is dropped at the handshake deadline:
    // hyper keeps no timer of its own unless given one.
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(handshake);
    server
        .http_builder()
        .http2()
        .max_concurrent_streams(limits.calls_per_connection)
        .keep_alive_interval(Duration::from_millis(limits.keepalive_ms));
    server
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
