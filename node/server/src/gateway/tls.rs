//! The gateway's HTTPS listener: rustls (ring) with the node's TLS certificate, server
//! authentication only (HTTP clients hold no federation certificate; they trust the CA), HTTP/2
//! and HTTP/1.1 by ALPN, and axum-server's accept loop with the node's handshake deadline and
//! calls per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tierlink_core::config::LimitSettings;

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

/// Serves `app` on `listener` over TLS until `handle` shuts it down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: &LimitSettings,
    handle: axum_server::Handle<SocketAddr>,
    app: axum::Router,
) -> std::io::Result<()> {
    let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls))
        .handshake_timeout(Duration::from_millis(limits.handshake_ms));
    let mut server = axum_server::Server::from_listener(listener)
        .acceptor(acceptor)
        .handle(handle);
    // A client that never finishes its request headers is dropped at the handshake deadline:
    // hyper keeps no timer of its own unless given one.
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.handshake_ms));
    server
        .http_builder()
        .http2()
        .max_concurrent_streams(limits.calls_per_connection)
        .keep_alive_interval(Duration::from_millis(limits.keepalive_ms));
    server
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
