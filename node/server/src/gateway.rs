//! The REST/JSON gateway: HTTPS for the systems that will never speak gRPC. It is an adapter,
//! like [`crate::exchange::server`]: every read goes through the one [`ReadService`] (decision,
//! plan, sealing, audit), catalogs, explanations and the audit come from the gRPC services
//! called in process, and records are written through the same exchange service as `PutRecords`.
//!
//! Callers present an API token (`Authorization: Bearer tlk_…`) of a principal of this node; the
//! gateway reads as the node itself on the principal's behalf, exactly as the command line's
//! `--as` does: a credential carrying the principal, its role, its purpose and the token, which
//! the read service checks and vouches for. Batches come back sealed to this node; the gateway
//! opens and verifies them for JSON answers, and passes them on unopened to a client that asks
//! for the signed batches themselves (`Accept: application/x-tierlink-batches`, the batch file
//! format `tierlink verify` checks).
//!
//! It listens on its own address (`node.toml [gateway] listen`) with the node's TLS certificate
//! and asks for no client certificate; clients trust the federation CA certificate.
//!
//! # Layout
//! - [`auth`]: API tokens to a principal and its scope; role and purpose headers; failed guesses
//!   limited per source address.
//! - [`problem`]: errors as RFC 9457 problem documents, one stable type per kind, each with a
//!   page at its type.
//! - [`catalogs`]: this node's catalogs (list, get) and the directory's search.
//! - [`records`]: writes, queries (JSON pages with a cursor, NDJSON, signed batches) and one
//!   key's history.
//! - [`imports`]: upload of whole export files (CSV, JSON lines), checked as the command line's
//!   import checks them.
//! - [`explain`]: what a read would be decided as, for the caller's principal.
//! - [`audit`]: the node's audit log, for its administrator's tokens.
//! - [`metrics`]: `/metrics`, the node's metrics for Prometheus, with no token.
//! - [`openapi`]: the OpenAPI 3.1 document generated from the handlers, and the reference page.
//! - [`edge`]: every request's deadline, and the unread rest of a body drained after an early
//!   answer.
//! - [`tls`]: the HTTPS listener and its accept loop.

pub mod audit;
pub mod auth;
pub mod cases;
pub mod catalogs;
pub mod edge;
pub mod explain;
pub mod imports;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod records;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tierlink_core::config::{GatewaySettings, LimitSettings};
use tierlink_core::identity::NodeCode;
use tierlink_core::signed::{BatchOpener, BatchVerifier};
use tierlink_store::registry::Registry;

use crate::admission::Caller;
use crate::audit::AuditService;
use crate::directory::DirectoryService;
use crate::exchange::server::ExchangeService;
use crate::read::ReadService;

/// What every handler reaches: the node's services, and what checks and opens its batches.
pub struct Services {
    /// The read service, the one path records leave by.
    pub reads: Arc<ReadService>,
    /// The exchange service, called in process for catalogs and record writes.
    pub exchange: Arc<ExchangeService>,
    /// The node's catalogs, whose record checks an import applies.
    pub registry: Arc<Registry>,
    /// The directory service, for the catalog search and explanations.
    pub directory: DirectoryService,
    /// The audit service.
    pub audit: AuditService,
    /// Checks batches against the federation CA and the directory's members.
    pub verifier: BatchVerifier,
    /// Opens the batches sealed to this node.
    pub opener: BatchOpener,
    /// Who presents which token.
    pub auth: auth::Auth,
    /// Writes read and checked at once (`[gateway] writes`).
    pub writes: tokio::sync::Semaphore,
    /// The node's cases.
    pub cases: Arc<crate::cases::Cases>,
    /// The node's metrics registry, encoded at `/metrics`.
    pub scrape: Arc<prometheus_client::registry::Registry>,
}

impl Services {
    pub(crate) fn me(&self) -> &NodeCode {
        self.reads.me()
    }

    /// The node itself as the caller of its own services: the gateway acts for it.
    fn as_node(&self) -> Caller {
        Caller {
            node: self.me().clone(),
            is_self: true,
            is_member: true,
        }
    }

    /// A place among the writes read and checked at once, held until dropped: a write's body is
    /// held whole while it arrives and is checked, so a few at a time keep them together within
    /// the node's memory. Read the body only once holding one.
    pub fn write_place(&self) -> Result<tokio::sync::SemaphorePermit<'_>, problem::Problem> {
        /// Seconds a refused writer waits before it sends again.
        const RETRY_SECONDS: u64 = 5;
        self.writes.try_acquire().map_err(|_| {
            problem::Problem::new(
                problem::Kind::TooManyWrites,
                "this node is reading and checking as many writes as it takes at once: send it again in a few seconds",
            )
            .retry_after(RETRY_SECONDS)
        })
    }

    /// Audits `writer`'s write to `catalog` as refused for `problem`, which it returns: every
    /// refusal between the token's check and the store (a body that is not JSON, a wrong media
    /// type, an unknown charset, no such catalog) is kept as the store's own are.
    pub async fn refused_write(
        &self,
        writer: &str,
        catalog: &str,
        problem: problem::Problem,
    ) -> problem::Problem {
        let audited = self
            .exchange
            .audit_refused_write(writer, catalog, problem.detail.clone());
        if let Err(e) = audited.await {
            tracing::error!(error = %e, "cannot audit a refused write");
        }
        problem
    }

    /// A request to one of the node's gRPC services, called in process for `caller`.
    fn request<T>(caller: Caller, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(caller);
        request
    }
}

/// The state handlers share.
pub type State = Arc<Services>;

/// A gateway ready to serve: its services, its bound listener and its TLS configuration.
pub struct Gateway {
    services: State,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    settings: GatewaySettings,
    limits: LimitSettings,
}

impl Gateway {
    /// A gateway over `services` on `listener`, presenting the node's TLS certificate and key
    /// (PEM), within `settings` (bodies, connections) and the node's `limits` (handshake time,
    /// calls per connection).
    pub fn new(
        services: Services,
        listener: tokio::net::TcpListener,
        cert_pem: &str,
        key_pem: &str,
        settings: GatewaySettings,
        limits: LimitSettings,
    ) -> Result<Self, tls::TlsError> {
        Ok(Self {
            services: Arc::new(services),
            listener,
            tls: tls::server_config(cert_pem, key_pem)?,
            settings,
            limits,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `handle` is told to shut down.
    pub async fn serve(self, handle: axum_server::Handle<SocketAddr>) -> std::io::Result<()> {
        let app = openapi::router(self.services, &self.settings);
        tls::serve(
            self.listener,
            self.tls,
            &self.limits,
            &self.settings,
            handle,
            app,
        )
        .await
    }
}
