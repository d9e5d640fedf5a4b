//! The consuming side: connecting to a node over mutual TLS and receiving verified streams.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tierlink_proto::v1::SignedBatch;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::{BatchVerifier, Expected, StreamCheck, VerifiedBatch, VerifyError};
use crate::config::{ConfigError, Credentials, NodeDir};
use crate::identity::NodeCode;

/// Largest message a node sends or accepts: room for a full batch of wide records.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

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
    #[error("{}: {}", code_name(.0.code()), .0.message())]
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
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::NotFound => "not found",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::Unavailable => "unavailable",
        _ => "failed",
    }
}

/// Opens a mutual-TLS channel to `endpoint` with the given node credentials.
pub async fn connect(
    credentials: &Credentials,
    endpoint: &str,
) -> Result<ExchangeClient<Channel>, ClientError> {
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
    let channel = Channel::from_shared(endpoint.to_owned())
        .map_err(|e| bad(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            reason: error_chain(&e),
        })?;
    Ok(ExchangeClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The nodes this node can reach, with one shared channel each.
pub struct Peers {
    dir: NodeDir,
    credentials: Credentials,
    channels: Mutex<HashMap<NodeCode, ExchangeClient<Channel>>>,
}

impl Peers {
    /// Peers of a node directory, reached with its credentials.
    pub fn new(dir: NodeDir, credentials: Credentials) -> Self {
        Self {
            dir,
            credentials,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client for the node `code` (this node itself or a configured peer).
    pub async fn client(&self, code: &NodeCode) -> Result<ExchangeClient<Channel>, ClientError> {
        if let Some(c) = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
        {
            return Ok(c.clone());
        }
        let client = connect(&self.credentials, self.dir.endpoint_of(code)?).await?;
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(code.clone(), client.clone());
        Ok(client)
    }
}

/// What a verified response stream held.
#[derive(Clone, Debug, Default)]
pub struct StreamSummary {
    /// Who signed it.
    pub producer: String,
    /// Who the producer served (the caller, or the relay that asked for it).
    pub consumer: String,
    /// Catalog of the records.
    pub catalog: String,
    /// Request id in every header.
    pub request_id: String,
    /// Item codes of the record values.
    pub columns: Vec<String>,
    /// Items left out as not shared.
    pub withheld: Vec<String>,
    /// Number of batches.
    pub batches: u32,
    /// Number of records.
    pub records: u64,
}

/// Verifies every batch of a response stream and its order and completeness, handing each to
/// `on_batch` as it arrives. Any failure ends the stream with an error.
pub async fn receive(
    mut stream: tonic::Streaming<SignedBatch>,
    verifier: &BatchVerifier,
    expected: Expected,
    mut on_batch: impl FnMut(SignedBatch, VerifiedBatch) -> Result<(), ClientError>,
) -> Result<StreamSummary, ClientError> {
    let mut check = StreamCheck::new(expected);
    let mut summary = StreamSummary::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let fail = |source| ClientError::Verify {
            batch: summary.batches,
            source,
        };
        let verified = verifier.verify(&batch).map_err(fail)?;
        check.accept(&verified.header).map_err(fail)?;
        if summary.batches == 0 {
            let h = &verified.header;
            summary.producer.clone_from(&h.producer);
            summary.consumer.clone_from(&h.consumer);
            summary.catalog.clone_from(&h.catalog);
            summary.request_id.clone_from(&h.request_id);
            summary.columns.clone_from(&h.columns);
            summary.withheld.clone_from(&h.withheld);
        }
        summary.batches += 1;
        summary.records += verified.header.record_count;
        on_batch(batch, verified)?;
    }
    check.finish().map_err(|source| ClientError::Verify {
        batch: summary.batches,
        source,
    })?;
    Ok(summary)
}
