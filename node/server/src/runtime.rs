//! Running a node: open its store, load and check its credentials, start its replica of the
//! federation directory, and serve the exchange, the directory and its replication, with the
//! standard health and reflection services, over mutual TLS, within the node's `[limits]`
//! ([`crate::limits`]): TLS handshakes and calls have deadlines, connections a number of calls
//! open at once and keepalive pings, requests a size by method.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tierlink_client::{MAX_MESSAGE_BYTES, Peers};
use tierlink_core::config::{ConfigError, Credentials, NodeDir};
use tierlink_core::identity::{
    CertError, EncryptionKeys, node_code_of, not_after, pem_to_der, write_private,
};
use tierlink_core::policy::Redactor;
use tierlink_core::signed::{BatchOpener, BatchSigner, BatchVerifier};
use tierlink_proto::v1::audit_server::AuditServer;
use tierlink_proto::v1::backup_server::BackupServer;
use tierlink_proto::v1::directory_server::DirectoryServer;
use tierlink_proto::v1::exchange_server::ExchangeServer;
use tierlink_store::audit::{AnchorBoard, AuditError, AuditLog, anchor_periodically};
use tierlink_store::registry::{Registry, RegistryError};
use tierlink_store::{FORMAT_VERSION, SledStore, StoreError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::admission::AdmissionLayer;
use crate::audit::AuditService;
use crate::backup::service::BackupService;
use crate::cases::Cases;
use crate::cases::service::CaseService;
use crate::cases::store::CaseStore;
use crate::crosscheck::{CrossCheckService, CrossChecks};
use crate::directory::{DirectoryError, DirectoryService, FederationService, Replica};
use crate::exchange::server::ExchangeService;
use crate::gateway::auth::Auth;
use crate::gateway::tls::TlsError;
use crate::gateway::{Gateway, Services};
use crate::limits::{Guesses, RequestLimitLayer, StatusMessageLayer};
use crate::metrics::calls::GrpcMetricsLayer;
use crate::metrics::count_leader_changes;
use crate::metrics::state::{Expiry, NodeState};
use crate::read::{NodeKeys, ReadService};
use crate::webhooks::Webhooks;
use crate::webhooks::deliver::{Receivers, Sender};
use crate::webhooks::service::WebhookService;
use crate::webhooks::store::Hooks;

/// How long a stopping node lets the gateway's answers in progress finish.
const GATEWAY_GRACE: Duration = Duration::from_secs(5);

/// A node that could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The node directory is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored catalogs could not be loaded.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A credential does not fit this node.
    #[error("{0}")]
    Credential(String),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick a free port in node.toml [server] listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gateway's listening address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick a free port in node.toml [gateway] listen")]
    GatewayBind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gateway cannot use the node's TLS certificate and key.
    #[error(transparent)]
    GatewayTls(#[from] TlsError),
    /// The directory replica could not start.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The working-day calendar (`[cases] calendar`) is not usable.
    #[error("the working-day calendar: {0}")]
    Calendar(String),
    /// `[webhooks]` is not usable.
    #[error("{path}: {message}")]
    Webhooks {
        /// The file at fault.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The gRPC server failed.
    #[error("server failed: {0}")]
    Serve(String),
}

/// A node serving in the background.
pub struct RunningNode {
    /// Address it listens on.
    pub addr: SocketAddr,
    /// Address its REST gateway listens on, when it serves one.
    pub gateway_addr: Option<SocketAddr>,
    /// Its replica of the federation directory.
    pub directory: Arc<Replica>,
    /// Its audit log.
    pub audit: Arc<AuditLog>,
    /// Its catalogs and records.
    pub registry: Arc<Registry>,
    /// The cross-check runs it took part in.
    pub cross_checks: Arc<CrossChecks>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RuntimeError>>,
}

impl RunningNode {
    /// Stops serving and waits for the server to wind down. The store closes once the last
    /// handle on it goes: tasks ending as they are dropped let go a moment later.
    pub async fn stop(self) -> Result<(), RuntimeError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| RuntimeError::Serve(e.to_string()))?
    }
}

fn credential_error(what: &str, e: CertError) -> RuntimeError {
    RuntimeError::Credential(format!("{what}: {e}"))
}

/// The node's encryption keys. A node directory made before batches were sealed has none: it
/// gets its first key here, for `tierlink cert rotate` to register a successor in the directory.
fn encryption_keys(dir: &NodeDir) -> Result<EncryptionKeys, RuntimeError> {
    let path = dir.path(&dir.config.files.encryption_key);
    if !path.exists() {
        let keys = EncryptionKeys::generate().map_err(|e| credential_error("encryption key", e))?;
        write_private(&path, &keys.to_text())
            .map_err(|e| RuntimeError::Credential(format!("{}: {e}", path.display())))?;
        tracing::warn!(path = %path.display(), "made this node's first encryption key: register one with `tierlink cert rotate` so that other nodes can seal records to it");
    }
    Ok(dir.encryption_keys()?)
}

/// A node opened and ready to serve: credentials checked, store open, catalogs loaded, directory
/// replica started.
pub struct Node {
    dir: NodeDir,
    credentials: Credentials,
    reads: Arc<ReadService>,
    exchange: Arc<ExchangeService>,
    registry: Arc<Registry>,
    directory: Arc<Replica>,
    audit: Arc<AuditLog>,
    gateway: Option<Gateway>,
    webhooks: Arc<Webhooks>,
    cases: Arc<Cases>,
    cross_checks: Arc<CrossChecks>,
    backups: BackupServer<BackupService>,
}

impl Node {
    /// Opens the node in `dir`. Fails early, with the file at fault, on any unusable credential
    /// or store.
    pub async fn open(dir: NodeDir) -> Result<Self, RuntimeError> {
        let credentials = dir.credentials()?;
        let ca = dir.trusted_ca()?;
        let key = dir.signing_key()?;
        let encryption = encryption_keys(&dir)?;
        let signer = Arc::new(BatchSigner::from(key.clone()));
        let tls_der = pem_to_der(&credentials.tls_cert_pem)
            .map_err(|e| credential_error("TLS certificate", e))?;
        let tls_code =
            node_code_of(&tls_der).map_err(|e| credential_error("TLS certificate", e))?;
        for (what, code) in [
            ("TLS certificate", &tls_code),
            ("signing certificate", signer.code()),
        ] {
            if code != dir.code() {
                return Err(RuntimeError::Credential(format!(
                    "the {what} names node {code}, but {} configures node {}: use this node's own certificates",
                    dir.config_path().display(),
                    dir.code()
                )));
            }
        }
        let store = Arc::new(SledStore::open_with_cache(
            &dir.path(&dir.config.files.data),
            dir.config.store.cache_mb << 20,
        )?);
        store.keep_changes(dir.config.exchange.keep_changes);
        let directory = Arc::new(
            Replica::open(&store, &dir, credentials.clone(), key.clone(), ca.clone()).await?,
        );
        let audit = Arc::new(AuditLog::open(store.keyspace("audit")?)?);
        let hooks = Hooks::new(store.keyspace("webhooks")?);
        let case_store = CaseStore::new(store.keyspace("cases")?);
        let cross_checks = Arc::new(CrossChecks::new(store.keyspace("crosscheck")?));
        let redactor = Redactor::new(dir.hash_key()?);
        let registry = Arc::new(Registry::open(store.clone())?);
        let backups = BackupService::server(store, dir.clone(), key.clone());
        let peers = Arc::new(
            Peers::new(dir.clone(), credentials.clone(), directory.clone())
                .with_blocked(directory.link().blocked().clone()),
        );
        let reads = Arc::new(
            ReadService::new(
                registry.clone(),
                NodeKeys {
                    signer: signer.clone(),
                    encryption: encryption.current().public().clone(),
                },
                peers.clone(),
                audit.clone(),
                redactor,
                dir.principal_files(),
                &dir.config.limits,
            )
            .with_batch_bytes(dir.config.exchange.batch_bytes),
        );
        let metrics = reads.metrics().clone();
        let exchange = Arc::new(ExchangeService::new(
            registry.clone(),
            reads.clone(),
            audit.clone(),
        ));
        let calendar = dir
            .config
            .cases
            .load_calendar(&dir.path(std::path::Path::new("")))
            .map_err(|e| RuntimeError::Calendar(e.to_string()))?;
        let cases = Arc::new(Cases::new(
            key,
            encryption.clone(),
            directory.clone(),
            case_store,
            audit.clone(),
            reads.clone(),
            peers,
            calendar,
            dir.config.cases.clone(),
        ));
        let webhooks = Arc::new(webhooks(
            &dir,
            hooks,
            reads.clone(),
            BatchVerifier::new(ca.clone()).with_members(directory.clone()),
            BatchOpener::new(dir.code().clone(), encryption.clone()),
            signer,
        )?);
        let scrape = Arc::new(metrics.registry(NodeState {
            directory: directory.clone(),
            audit: audit.clone(),
            reads: reads.clone(),
            webhooks: webhooks.clone(),
            store: dir.path(&dir.config.files.data),
            certificates: expiries(&credentials)?,
        }));
        let gateway = match &dir.config.gateway {
            None => None,
            Some(settings) => {
                let addr = settings.listen;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| RuntimeError::GatewayBind { addr, source })?;
                let board: Arc<dyn AnchorBoard> = directory.clone();
                let services = Services {
                    reads: reads.clone(),
                    exchange: exchange.clone(),
                    registry: registry.clone(),
                    directory: DirectoryService::new(directory.clone(), registry.clone()),
                    audit: AuditService::new(audit.clone(), board),
                    verifier: BatchVerifier::new(ca).with_members(directory.clone()),
                    opener: BatchOpener::new(dir.code().clone(), encryption),
                    auth: Auth::new(
                        dir.principal_files(),
                        Guesses::new(dir.config.limits.token_guesses_per_minute),
                    ),
                    writes: tokio::sync::Semaphore::new(settings.writes as usize),
                    cases: cases.clone(),
                    scrape,
                };
                Some(Gateway::new(
                    services,
                    listener,
                    &credentials.tls_cert_pem,
                    &credentials.tls_key_pem,
                    settings.clone(),
                    dir.config.limits.clone(),
                )?)
            }
        };
        Ok(Self {
            dir,
            credentials,
            reads,
            exchange,
            registry,
            directory,
            audit,
            gateway,
            webhooks,
            cases,
            cross_checks,
            backups,
        })
    }

    /// The cross-check runs this node took part in: their mismatches, for the cases that send
    /// them back to the collector.
    pub fn cross_checks(&self) -> &Arc<CrossChecks> {
        &self.cross_checks
    }

    /// The address its REST gateway listens on, when `node.toml` has a `[gateway]`.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().and_then(|g| g.addr().ok())
    }

    /// Its replica of the federation directory.
    pub fn directory(&self) -> &Arc<Replica> {
        &self.directory
    }

    /// Serves on `listener` until `shutdown` completes, and the REST gateway beside it on its own
    /// listener when the node has one; both stop together.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<ExchangeServer<ExchangeService>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tierlink_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| RuntimeError::Serve(e.to_string()))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| RuntimeError::Serve(e.to_string()))?;
        let limits = &self.dir.config.limits;
        let tls = server_tls(&self.credentials).timeout(Duration::from_millis(limits.handshake_ms));
        let addr = listener
            .local_addr()
            .map_err(|e| RuntimeError::Serve(e.to_string()))?;
        tracing::info!(
            node = %self.dir.code(),
            tier = %self.dir.config.node.tier,
            %addr,
            store_format = FORMAT_VERSION,
            "serving tierlink.v1.Exchange, Directory, Audit and Federation over mutual TLS"
        );
        let directory = self.directory.clone();
        let board: Arc<dyn AnchorBoard> = directory.clone();
        let anchoring = anchor_periodically(
            self.audit.clone(),
            Arc::downgrade(&board),
            Duration::from_millis(self.dir.config.directory.audit_anchor_ms.max(100)),
        );
        let retention = crate::retention::compact_periodically(
            self.registry.store().clone(),
            self.audit.clone(),
            self.dir.code().to_string(),
            self.dir.config.store.keep_history_days,
        );
        let leaders = count_leader_changes(directory.clone(), self.reads.metrics().clone());
        let calls = GrpcMetricsLayer::new(self.reads.metrics().clone());
        let admission = AdmissionLayer::new(
            self.dir.code().clone(),
            directory.member().tls_fingerprint.clone(),
            directory.clone(),
        )
        .with_blocked(directory.link().blocked().clone());
        let gateway = self.gateway.map(|gateway| {
            let handle = axum_server::Handle::new();
            match gateway.addr() {
                Ok(addr) => tracing::info!(%addr, "serving the REST gateway over HTTPS"),
                Err(error) => tracing::warn!(%error, "serving the REST gateway, address unknown"),
            }
            (handle.clone(), tokio::spawn(gateway.serve(handle)))
        });
        let stop_gateway = gateway.as_ref().map(|(handle, _)| handle.clone());
        self.webhooks.start()?;
        self.cases.start();
        let cases = self.cases.clone();
        let stop_cases = self.cases.clone();
        let reads = self.reads.clone();
        let webhooks = self.webhooks.clone();
        let stop_webhooks = self.webhooks.clone();
        let relays = self.directory.clone();
        let shutdown = async move {
            shutdown.await;
            // Feeds and relays wait for their next batch as long as they last, and so do the
            // directory's streams to the streets that follow it: ended now, so that the server's
            // wait for open streams ends.
            reads.stop();
            relays.stop_relays();
            // Webhook workers hold the store: they end before it closes.
            webhooks.stop().await;
            cases.stop().await;
            if let Some(handle) = stop_gateway {
                handle.graceful_shutdown(Some(GATEWAY_GRACE));
            }
        };
        let served = Server::builder()
            .tls_config(tls)
            .map_err(|e| RuntimeError::Credential(format!("TLS configuration: {e}")))?
            .timeout(Duration::from_millis(limits.call_ms))
            .max_concurrent_streams(limits.calls_per_connection)
            .http2_keepalive_interval(Some(Duration::from_millis(limits.keepalive_ms)))
            .layer(calls)
            .layer(StatusMessageLayer)
            .layer(admission)
            .layer(RequestLimitLayer::new(limits))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                ExchangeServer::from_arc(self.exchange)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                DirectoryServer::new(DirectoryService::new(
                    directory.clone(),
                    self.registry.clone(),
                ))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(AuditServer::new(AuditService::new(
                self.audit.clone(),
                board,
            )))
            .add_service(self.backups)
            .add_service(FederationService::server(directory.clone()))
            .add_service(WebhookService::server(self.webhooks.clone()))
            .add_service(CaseService::server(self.cases.clone()))
            .add_service(CrossCheckService::server(
                self.reads.clone(),
                self.cross_checks.clone(),
                self.cases.clone(),
            ))
            .serve_with_incoming_shutdown(incoming(listener), shutdown)
            .await
            .map_err(|e| RuntimeError::Serve(e.to_string()));
        anchoring.abort();
        leaders.abort();
        if let Some(retention) = retention {
            retention.abort();
        }
        // Also when gRPC stopped on its own: no worker outlives the store.
        stop_webhooks.stop().await;
        stop_cases.stop().await;
        if let Some((handle, task)) = gateway {
            // Also when gRPC stopped on its own: the gateway does not outlive it.
            handle.graceful_shutdown(Some(GATEWAY_GRACE));
            let gateway_served = task
                .await
                .map_err(|e| RuntimeError::Serve(e.to_string()))
                .and_then(|r| r.map_err(|e| RuntimeError::Serve(format!("gateway: {e}"))));
            if served.is_ok() {
                gateway_served?;
            }
        }
        directory.shutdown().await;
        served
    }

    /// Serves on `listener` in the background.
    pub fn start(self, listener: TcpListener) -> Result<RunningNode, RuntimeError> {
        let addr = listener
            .local_addr()
            .map_err(|e| RuntimeError::Serve(e.to_string()))?;
        let (stop, stopped) = oneshot::channel();
        let gateway_addr = self.gateway_addr();
        let directory = self.directory.clone();
        let audit = self.audit.clone();
        let registry = self.registry.clone();
        let cross_checks = self.cross_checks.clone();
        let task = tokio::spawn(self.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningNode {
            addr,
            gateway_addr,
            directory,
            audit,
            registry,
            cross_checks,
            stop,
            task,
        })
    }
}

/// When the node's TLS certificate and the federation CA's expire, for the metrics.
fn expiries(credentials: &Credentials) -> Result<Vec<Expiry>, RuntimeError> {
    [
        ("node", &credentials.tls_cert_pem),
        ("ca", &credentials.ca_pem),
    ]
    .into_iter()
    .map(|(certificate, pem)| {
        let not_after = pem_to_der(pem)
            .and_then(|der| not_after(&der))
            .map_err(|e| credential_error(certificate, e))?;
        Ok(Expiry {
            certificate,
            not_after,
        })
    })
    .collect()
}

/// The node's webhooks as node.toml's `[webhooks]` configures them.
fn webhooks(
    dir: &NodeDir,
    hooks: Hooks,
    reads: Arc<ReadService>,
    verifier: BatchVerifier,
    opener: BatchOpener,
    signer: Arc<BatchSigner>,
) -> Result<Webhooks, RuntimeError> {
    let settings = &dir.config.webhooks;
    let config = |message: String| RuntimeError::Webhooks {
        path: dir.config_path(),
        message,
    };
    let ca = match &settings.ca {
        None => None,
        Some(file) => {
            let path = dir.path(file);
            Some(
                std::fs::read_to_string(&path).map_err(|e| RuntimeError::Webhooks {
                    path: path.clone(),
                    message: format!("[webhooks] ca: {e}"),
                })?,
            )
        }
    };
    let receivers = Receivers::parse(&settings.receivers).map_err(config)?;
    let sender = Sender::new(settings, ca.as_deref(), signer).map_err(config)?;
    Ok(Webhooks::new(
        hooks, reads, verifier, opener, sender, receivers,
    ))
}

/// Mutual TLS for a node's server: its certificate, and only clients with a certificate from the
/// federation CA.
pub fn server_tls(credentials: &Credentials) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(
            &credentials.tls_cert_pem,
            &credentials.tls_key_pem,
        ))
        .client_ca_root(Certificate::from_pem(&credentials.ca_pem))
}

/// Connections accepted on `listener`, with Nagle's algorithm off: raft and exchange replies are
/// small writes that must not wait for the peer's delayed acknowledgement (up to 40 ms).
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Binds the configured listen address.
pub async fn bind(dir: &NodeDir) -> Result<TcpListener, RuntimeError> {
    let addr = dir.config.server.listen;
    TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind { addr, source })
}
