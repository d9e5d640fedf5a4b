//! How to reach a node: one mutual-TLS channel builder ([`channel`]) that every connection uses
//! (the node's administrator's, relays' through [`Peers`], and the raft network's in the node),
//! the clients built on it, receiving verified streams of signed batches and opening the records
//! sealed to the node, and writing records in batches that each fit in a message
//! ([`NodeClient::write_records`]).
//!
//! # Direction
//! Depends on `tierlink-core` and `tierlink-proto` only: no server, no store, no replica. The node
//! (`tierlink-node`), the sandbox and the command build on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod directory;
pub mod faults;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tierlink_core::config::{ConfigError, Credentials, NodeDir};
use tierlink_core::identity::NodeCode;
use tierlink_core::limits::{human_bytes, thousands};
use tierlink_core::members::{MemberList, Members, Standing};
use tierlink_core::read::Read;
use tierlink_core::signed::{
    BatchOpener, BatchVerifier, Expected, StreamCheck, StreamSummary, VerifiedBatch, VerifyError,
};
use tierlink_proto::v1::audit_client::AuditClient;
use tierlink_proto::v1::cases_client::CasesClient;
use tierlink_proto::v1::cross_check_client::CrossCheckClient;
use tierlink_proto::v1::directory_client::DirectoryClient;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tierlink_proto::v1::{
    GetCatalogRequest, ListCatalogsRequest, ListCatalogsResponse, PublishRequest,
    PutCatalogRequest, PutCatalogResponse, PutRecordsRequest, PutRecordsResponse, Row, SignedBatch,
    SourceOffsetRequest,
};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::faults::{Blocked, FAULTS_ENV};

pub use tierlink_core::limits::MAX_MESSAGE_BYTES;
pub use write::{Batching, Oversized, WriteError, Written};

/// Bytes one stream may receive ahead of its reader (HTTP/2 flow control).
const STREAM_WINDOW: u32 = 512 << 10;

/// Bytes one connection may receive ahead of its readers: a stream window for each of the 64
/// reads a producer lets one node hold open (its default `reads_per_caller`). A relay carries all
/// its reads of one producer on one connection; reads whose consumers stopped then fill only
/// their own windows, and the others keep flowing.
const CONNECTION_WINDOW: u32 = 64 * STREAM_WINDOW;

/// A call to another node that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a usable URL.
    #[error("endpoint {endpoint:?} is not valid: {reason}; write it as https://HOST:PORT")]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// No connection could be made.
    #[error(
        "cannot connect to {endpoint}: {reason}. Is the node serving there, and do both sides use certificates from the same federation CA?"
    )]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The node answered with an error.
    #[error("{}", status_text(.0))]
    Status(#[from] tonic::Status),
    /// A received batch failed verification; everything received is to be discarded.
    #[error("batch {batch} failed verification: {source}")]
    Verify {
        /// Position of the batch in the stream, from 0.
        batch: u32,
        /// The failed check.
        source: VerifyError,
    },
    /// The node directory is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A local write failed (e.g. the `--out` file).
    #[error("{0}")]
    Io(String),
    /// The federation directory does not admit the node asked for.
    #[error("{0}")]
    NotAdmitted(String),
    /// The directory refused a change; the reason says why.
    #[error("refused: {0}")]
    Refused(String),
    /// A request too large for one message; it was not sent.
    #[error(
        "the request takes {} ({} bytes), over the {} a message may carry: send less at once",
        human_bytes(*.0 as u64),
        thousands(*.0 as u64),
        human_bytes(MAX_MESSAGE_BYTES as u64)
    )]
    TooLarge(usize),
}

impl ClientError {
    /// Whether the call is known not to have been carried out: it was never sent, or the node
    /// refused it. Otherwise (the connection failed in flight, the node failed) it may have been.
    pub fn not_carried_out(&self) -> bool {
        use tonic::Code;
        match self {
            ClientError::Status(s) => matches!(
                s.code(),
                Code::InvalidArgument
                    | Code::NotFound
                    | Code::AlreadyExists
                    | Code::PermissionDenied
                    | Code::FailedPrecondition
                    | Code::OutOfRange
                    | Code::Unauthenticated
                    | Code::ResourceExhausted
                    | Code::Unimplemented
            ),
            ClientError::Endpoint { .. }
            | ClientError::Connect { .. }
            | ClientError::Config(_)
            | ClientError::NotAdmitted(_)
            | ClientError::TooLarge(_) => true,
            ClientError::Verify { .. } | ClientError::Io(_) | ClientError::Refused(_) => false,
        }
    }
}

/// A status as a user reads it: what kind of failure, the node's message, and the transport's
/// cause when there is one (e.g. a TLS alert).
fn status_text(status: &tonic::Status) -> String {
    let kind = match status.code() {
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::NotFound => "not found",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::ResourceExhausted => "resource exhausted",
        tonic::Code::DeadlineExceeded => "deadline exceeded",
        _ => "failed",
    };
    let mut text = format!("{kind}: {}", status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&error_chain(source));
    }
    text
}

/// Opens a mutual-TLS channel to `endpoint` with the given node credentials.
#[allow(clippy::disallowed_methods)] // The one place that builds channels.
pub async fn channel(credentials: &Credentials, endpoint: &str) -> Result<Channel, ClientError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&credentials.ca_pem))
        .identity(Identity::from_pem(
            &credentials.tls_cert_pem,
            &credentials.tls_key_pem,
        ));
    let bad = |reason: String| ClientError::Endpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    Channel::from_shared(endpoint.to_owned())
        .map_err(|e| bad(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect()
        .await
        .map_err(|e| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            reason: error_chain(&e),
        })
}

/// An exchange client over a mutual-TLS channel to `endpoint`.
pub async fn connect(
    credentials: &Credentials,
    endpoint: &str,
) -> Result<ExchangeClient<Channel>, ClientError> {
    Ok(exchange_client(channel(credentials, endpoint).await?))
}

/// A cases client on `channel`, taking messages up to [`MAX_MESSAGE_BYTES`] both ways (a
/// delivery carries a case's whole chain).
pub fn cases_client(channel: Channel) -> CasesClient<Channel> {
    CasesClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// An exchange client on `channel`, taking messages up to [`MAX_MESSAGE_BYTES`] both ways.
fn exchange_client(channel: Channel) -> ExchangeClient<Channel> {
    ExchangeClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// An error with its sources, `outer: inner: …`: transport errors' own messages say little
/// ("error sending request", "transport error") without what caused them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The nodes this node can reach, with one shared channel each: the directory's active members,
/// and the peers node.toml configures.
pub struct Peers {
    dir: NodeDir,
    credentials: Credentials,
    members: Arc<dyn Members>,
    channels: Mutex<HashMap<NodeCode, Channel>>,
    blocked: Blocked,
}

impl Peers {
    /// Peers of a node directory, reached with its credentials, found through `members`.
    pub fn new(dir: NodeDir, credentials: Credentials, members: Arc<dyn Members>) -> Self {
        Self {
            dir,
            credentials,
            members,
            channels: Mutex::new(HashMap::new()),
            blocked: Blocked::default(),
        }
    }

    /// The same peers, those `blocked` lists unreachable (the partition fault hook).
    pub fn with_blocked(self, blocked: Blocked) -> Self {
        Self { blocked, ..self }
    }

    /// The federation's members as the directory knows them.
    pub fn members(&self) -> &Arc<dyn Members> {
        &self.members
    }

    /// Where `code` is reached: itself, an active member of the directory, or a configured peer.
    fn endpoint(&self, code: &NodeCode) -> Result<String, ClientError> {
        if code != self.dir.code()
            && let Some(standing) = self.members.standing(code)
        {
            standing.admit(code).map_err(ClientError::NotAdmitted)?;
            return Ok(standing.endpoint);
        }
        Ok(self.dir.endpoint_of(code)?.to_owned())
    }

    /// The channel to the node `code` (this node itself, a member, or a configured peer), one
    /// per node, shared by every service's client.
    pub async fn channel(&self, code: &NodeCode) -> Result<Channel, ClientError> {
        let endpoint = self.endpoint(code)?;
        if self.blocked.blocks(code) {
            return Err(ClientError::Connect {
                endpoint,
                reason: format!("{code} is blocked by the fault hook ({FAULTS_ENV})"),
            });
        }
        if let Some(c) = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
        {
            return Ok(c.clone());
        }
        let channel = channel(&self.credentials, &endpoint).await?;
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(code.clone(), channel.clone());
        Ok(channel)
    }

    /// An exchange client for the node `code`, on its [`Peers::channel`].
    pub async fn client(&self, code: &NodeCode) -> Result<ExchangeClient<Channel>, ClientError> {
        Ok(exchange_client(self.channel(code).await?))
    }
}

/// Verifies every batch of a response stream and its order and completeness, and opens it with
/// `opener` (the node it was sealed to), handing each to `on_batch` as it arrives. Any failure
/// ends the stream with an error.
pub async fn receive(
    stream: tonic::Streaming<SignedBatch>,
    verifier: &BatchVerifier,
    opener: &BatchOpener,
    expected: Expected,
    mut on_batch: impl FnMut(SignedBatch, VerifiedBatch) -> Result<(), ClientError>,
) -> Result<StreamSummary, ClientError> {
    let mut batches = Batches::new(stream, verifier, opener, expected);
    while let Some((batch, verified)) = batches.next().await? {
        on_batch(batch, verified)?;
    }
    batches.finish()
}

/// A read's batches as they arrive, each verified and opened, for a consumer that awaits
/// between them (a connector writing each batch to a database before it takes the next).
pub struct Batches<'c> {
    stream: tonic::Streaming<SignedBatch>,
    verifier: &'c BatchVerifier,
    opener: &'c BatchOpener,
    check: StreamCheck,
}

impl<'c> Batches<'c> {
    /// The batches of `stream`, checked as [`receive`] checks them.
    pub fn new(
        stream: tonic::Streaming<SignedBatch>,
        verifier: &'c BatchVerifier,
        opener: &'c BatchOpener,
        expected: Expected,
    ) -> Self {
        Self {
            stream,
            verifier,
            opener,
            check: StreamCheck::new(expected),
        }
    }

    /// The next batch, verified and opened; `None` when the stream has ended.
    ///
    /// # Errors
    /// The stream's error status, or a batch that fails verification.
    pub async fn next(&mut self) -> Result<Option<(SignedBatch, VerifiedBatch)>, ClientError> {
        let Some(batch) = self.stream.next().await else {
            return Ok(None);
        };
        let batch = batch?;
        let n = self.check.batches();
        let verified = self
            .check
            .open(self.verifier, self.opener, &batch)
            .map_err(|source| ClientError::Verify { batch: n, source })?;
        Ok(Some((batch, verified)))
    }

    /// Checks that the ended stream was whole (its last batch marked last).
    pub fn finish(self) -> Result<StreamSummary, ClientError> {
        let batches = self.check.batches();
        self.check.finish().map_err(|source| ClientError::Verify {
            batch: batches,
            source,
        })
    }
}

/// Sends `read` as the RPC of its kind (`Query` or `History`); the answer is a stream of signed
/// batches, not yet verified.
pub async fn send(
    mut client: ExchangeClient<Channel>,
    read: Read,
) -> Result<tonic::Streaming<SignedBatch>, ClientError> {
    Ok(match read {
        Read::Query(q) => client.query(q).await?.into_inner(),
        Read::History(h) => client.history(h).await?.into_inner(),
        Read::Subscribe(s) => client.subscribe(s).await?.into_inner(),
    })
}

/// A node's own client: acts with the node's certificate, as its administrator's CLI does. It
/// finds other nodes, and checks producers, through the members of its node's directory replica,
/// and opens what is sealed to the node with the node's encryption keys.
pub struct NodeClient {
    dir: NodeDir,
    peers: Peers,
    verifier: BatchVerifier,
    opener: BatchOpener,
    members: Arc<MemberList>,
    members_loaded: tokio::sync::OnceCell<()>,
}

impl NodeClient {
    /// A client for the node in `dir`.
    pub fn open(dir: NodeDir) -> Result<Self, ClientError> {
        let credentials = dir.credentials()?;
        let members = Arc::new(MemberList::default());
        let verifier = BatchVerifier::new(dir.trusted_ca()?).with_members(members.clone());
        let opener = BatchOpener::new(dir.code().clone(), dir.encryption_keys()?);
        Ok(Self {
            peers: Peers::new(dir.clone(), credentials, members.clone()),
            dir,
            verifier,
            opener,
            members,
            members_loaded: tokio::sync::OnceCell::new(),
        })
    }

    /// Reads the directory's members from this node's replica, once. A node that cannot be
    /// reached leaves the list empty (producers are then judged by their certificates alone); a
    /// node that refuses this node directory's certificate is an error, naming why.
    async fn load_members(&self) -> Result<(), ClientError> {
        self.members_loaded
            .get_or_try_init(|| async {
                let Ok(mut client) = self.directory().await else {
                    return Ok(());
                };
                let request = tierlink_proto::v1::ReadRequest {
                    linearizable: false,
                };
                let members = match client.members(request).await {
                    Ok(read) => read.into_inner().members,
                    Err(s) if s.code() == tonic::Code::PermissionDenied => {
                        return Err(ClientError::Status(s));
                    }
                    Err(_) => Vec::new(),
                };
                self.members.replace(
                    members
                        .into_iter()
                        .filter_map(|m| Some((m.code.parse().ok()?, Standing::from(m))))
                        .collect(),
                );
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// A `tierlink.v1.Directory` client to this node, with its certificate.
    pub async fn directory(&self) -> Result<DirectoryClient<Channel>, ClientError> {
        directory::connect(&self.peers.credentials, &self.dir.config.server.endpoint).await
    }

    /// A `tierlink.v1.Audit` client to this node, with its certificate: the node's own
    /// administrator's.
    pub async fn audit(&self) -> Result<AuditClient<Channel>, ClientError> {
        let channel = channel(&self.peers.credentials, &self.dir.config.server.endpoint).await?;
        Ok(AuditClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Has this node take a backup (`tierlink.v1.Backup`, with its certificate: the node's own
    /// administrator's) and writes the archive to `out`: to `out.partial` first, renamed to
    /// `out` once the node has sent it whole, so that `out` is never a part of a backup. The file
    /// is its owner's alone (0600): a plain archive holds records in clear. Returns the
    /// archive's signed manifest.
    pub async fn take_backup(
        &self,
        request: tierlink_proto::v1::TakeBackupRequest,
        out: &std::path::Path,
    ) -> Result<tierlink_core::signed::backup::Manifest, ClientError> {
        use tokio::io::AsyncWriteExt;
        let channel = channel(&self.peers.credentials, &self.dir.config.server.endpoint).await?;
        let mut client = tierlink_proto::v1::backup_client::BackupClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut stream = client.take(request).await?.into_inner();
        let partial = out.with_extension("partial");
        let io = |e: std::io::Error| ClientError::Io(format!("{}: {e}", partial.display()));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = tokio::io::BufWriter::new(options.open(&partial).await.map_err(io)?);
        let mut manifest = None;
        let written = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                file.write_all(&chunk.data).await.map_err(io)?;
                if !chunk.manifest_json.is_empty() {
                    manifest = Some(serde_json::from_str(&chunk.manifest_json).map_err(|e| {
                        ClientError::Io(format!("the node sent a manifest that does not read: {e}"))
                    })?);
                }
            }
            file.flush().await.map_err(io)?;
            file.get_ref().sync_all().await.map_err(io)?;
            manifest.ok_or_else(|| {
                ClientError::Io(
                    "the node ended the backup before sending it whole: take it again".into(),
                )
            })
        }
        .await;
        match written {
            Ok(manifest) => {
                tokio::fs::rename(&partial, out)
                    .await
                    .map_err(|e| ClientError::Io(format!("{}: {e}", out.display())))?;
                Ok(manifest)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// A `tierlink.v1.Cases` client to this node, with its certificate: for its principals'
    /// moves, its case lists and its figures.
    pub async fn cases(&self) -> Result<CasesClient<Channel>, ClientError> {
        let channel = channel(&self.peers.credentials, &self.dir.config.server.endpoint).await?;
        Ok(cases_client(channel))
    }

    /// A `tierlink.v1.CrossCheck` client to this node, with its certificate: the node's own
    /// administrator's, who starts runs and reads them.
    pub async fn crosscheck(&self) -> Result<CrossCheckClient<Channel>, ClientError> {
        let channel = channel(&self.peers.credentials, &self.dir.config.server.endpoint).await?;
        Ok(CrossCheckClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Publishes this node's catalogs `codes` in the federation directory, in one signed change:
    /// the node publishes each entry's shared view from its own registry. Returns the
    /// directory revision after the change; a refused change is an error with the reason.
    pub async fn publish(&self, codes: &[&str]) -> Result<u64, ClientError> {
        let mut client = self.directory().await?;
        let request = PublishRequest {
            codes: codes.iter().map(|c| c.to_string()).collect(),
        };
        let mut revision = 0;
        for result in client.publish(request).await?.into_inner().results {
            if !result.applied {
                return Err(ClientError::Refused(result.reason));
            }
            revision = result.revision;
        }
        Ok(revision)
    }

    /// The node this client acts as.
    pub fn code(&self) -> &NodeCode {
        self.dir.code()
    }

    /// The verifier, trusting the node's federation CA.
    pub fn verifier(&self) -> &BatchVerifier {
        &self.verifier
    }

    /// The opener of what is sealed to this node, with its encryption keys.
    pub fn opener(&self) -> &BatchOpener {
        &self.opener
    }

    /// A connection to `node`: this node, or one of its peers.
    pub async fn connect(&self, node: &NodeCode) -> Result<ExchangeClient<Channel>, ClientError> {
        self.load_members().await?;
        self.peers.client(node).await
    }

    /// Publishes a catalog entry on this node.
    pub async fn put_catalog(
        &self,
        catalog_json: String,
    ) -> Result<PutCatalogResponse, ClientError> {
        let mut client = self.connect(self.code()).await?;
        Ok(client
            .put_catalog(PutCatalogRequest { catalog_json })
            .await?
            .into_inner())
    }

    /// Writes rows of values under `columns` to a catalog of this node, all or none, in one
    /// request: refused with [`ClientError::TooLarge`], unsent, when it would not fit in a
    /// message (see [`NodeClient::write_records`] to write in batches).
    pub async fn put_records(
        &self,
        catalog: &str,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    ) -> Result<PutRecordsResponse, ClientError> {
        let rows = rows.into_iter().map(|values| Row { values }).collect();
        self.write(PutRecordsRequest {
            catalog: catalog.to_owned(),
            columns,
            rows,
            ..PutRecordsRequest::default()
        })
        .await
    }

    /// Sends one write to this node, all or none: rows, deletions and a source mark as the
    /// request carries them. Refused with [`ClientError::TooLarge`], unsent, when it would not
    /// fit in a message.
    pub async fn write(
        &self,
        request: PutRecordsRequest,
    ) -> Result<PutRecordsResponse, ClientError> {
        let bytes = request.encoded_len();
        if bytes > MAX_MESSAGE_BYTES {
            return Err(ClientError::TooLarge(bytes));
        }
        let mut client = self.connect(self.code()).await?;
        Ok(client.put_records(request).await?.into_inner())
    }

    /// The offset this node stored for connector source `source` of `catalog`; empty when no
    /// write has marked it.
    pub async fn source_offset(&self, catalog: &str, source: &str) -> Result<String, ClientError> {
        let mut client = self.connect(self.code()).await?;
        let request = SourceOffsetRequest {
            catalog: catalog.to_owned(),
            source: source.to_owned(),
        };
        Ok(client.source_offset(request).await?.into_inner().offset)
    }

    /// A connection for a read of `target` (this node when empty): to `via` if given, else to the
    /// target itself. Returns the connection and the target's code.
    async fn route(
        &self,
        via: Option<&NodeCode>,
        target: &str,
    ) -> Result<(ExchangeClient<Channel>, NodeCode), ClientError> {
        let target = self.target(target)?;
        Ok((self.connect(via.unwrap_or(&target)).await?, target))
    }

    /// Lists the catalogs of `target` (this node when empty), through `via` if given.
    pub async fn list_catalogs(
        &self,
        via: Option<&NodeCode>,
        target: &str,
    ) -> Result<ListCatalogsResponse, ClientError> {
        let (mut client, target) = self.route(via, target).await?;
        Ok(client
            .list_catalogs(ListCatalogsRequest {
                target: target.to_string(),
            })
            .await?
            .into_inner())
    }

    /// One catalog entry of `target` as JSON, through `via` if given.
    pub async fn get_catalog(
        &self,
        via: Option<&NodeCode>,
        target: &str,
        code: &str,
    ) -> Result<String, ClientError> {
        let (mut client, target) = self.route(via, target).await?;
        let request = GetCatalogRequest {
            code: code.to_owned(),
            target: target.to_string(),
        };
        Ok(client.get_catalog(request).await?.into_inner().catalog_json)
    }

    /// Runs a read of `read.scope.target` (this node when empty), verifying every batch as the
    /// target's and opening it with this node's keys. A principal's read (with a credential)
    /// goes to this node, which vouches for the principal and relays through `via` when given;
    /// the node's own read asks `via` (the target itself when `None`).
    pub async fn read(
        &self,
        via: Option<&NodeCode>,
        read: impl Into<Read>,
        mut on_batch: impl FnMut(SignedBatch, VerifiedBatch) -> Result<(), ClientError>,
    ) -> Result<StreamSummary, ClientError> {
        let mut batches = self.batches(via, read).await?;
        while let Some((batch, verified)) = batches.next().await? {
            on_batch(batch, verified)?;
        }
        batches.finish()
    }

    /// Starts a read as [`NodeClient::read`] does, giving its batches one at a time.
    pub async fn batches(
        &self,
        via: Option<&NodeCode>,
        read: impl Into<Read>,
    ) -> Result<Batches<'_>, ClientError> {
        let mut read = read.into();
        let scope = read.scope_mut();
        let code = self.target(&scope.target)?;
        let client = if scope.credential.is_some() {
            scope.via = via.map(ToString::to_string).unwrap_or_default();
            self.connect(self.code()).await?
        } else {
            self.connect(via.unwrap_or(&code)).await?
        };
        scope.target = code.to_string();
        let expected = Expected {
            producer: Some(code.to_string()),
            catalog: Some(scope.catalog.clone()),
            request_id: None,
        };
        let stream = send(client, read).await?;
        Ok(Batches::new(stream, &self.verifier, &self.opener, expected))
    }

    fn target(&self, target: &str) -> Result<NodeCode, ClientError> {
        if target.is_empty() {
            return Ok(self.code().clone());
        }
        target.parse().map_err(
            |e: tierlink_core::identity::UnitError| ClientError::Endpoint {
                endpoint: target.to_owned(),
                reason: e.to_string(),
            },
        )
    }
}
