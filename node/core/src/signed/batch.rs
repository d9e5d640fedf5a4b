//! The signed batch: sealing a header and records with the producer's key, and checking a batch
//! (and a stream of them) against the federation CA.
//!
//! The producer signs the exact encoded header, which carries a BLAKE3 digest of the exact encoded
//! records; one signature covers a whole batch. Consumers check the bytes they received, so a
//! relay that passes batches through unchanged adds nothing they must trust.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::Signature;
use prost::Message;
use tierlink_proto::v1::{BatchHeader, Record, RecordList, SignedBatch};

use crate::identity::{CertError, NodeCode, NodeKey, Producer, TrustedCa};
use crate::members::Members;

/// Format of the headers this build writes and reads.
pub const HEADER_FORMAT: u32 = 1;

/// Prefix of every signed message, so a batch signature can never be taken for another protocol's.
const SIGNATURE_CONTEXT: &[u8] = b"tierlink.v1.BatchHeader\0";

/// A batch that failed a check. The message says which check.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The producer's certificate is missing, unreadable or not from the federation CA.
    #[error("producer certificate rejected: {0}")]
    Certificate(#[from] CertError),
    /// The signature does not match the header.
    #[error("signature check failed: the header was altered, or {0} did not sign it")]
    Signature(NodeCode),
    /// The header bytes do not decode.
    #[error("header is unreadable: {0}")]
    Header(String),
    /// The header's format is not one this build reads.
    #[error(
        "header format {0} is not supported by this build (reads {HEADER_FORMAT}): upgrade Tierlink"
    )]
    Format(u32),
    /// Certificate and header disagree about who produced the batch.
    #[error(
        "header claims producer {header}, but the batch is signed with {certificate}'s certificate"
    )]
    ProducerMismatch {
        /// Producer named in the certificate.
        certificate: NodeCode,
        /// Producer named in the header.
        header: String,
    },
    /// The records do not match the signed digest.
    #[error("records digest mismatch: the records were altered after {0} signed the batch")]
    Digest(NodeCode),
    /// The records do not decode or are not as many as declared.
    #[error("records are malformed: {0}")]
    Records(String),
    /// A valid batch that is not the one expected here (wrong producer, catalog, request or order).
    #[error("unexpected batch: {0}")]
    Unexpected(String),
    /// The federation directory does not admit the producer: suspended or pending, or registered
    /// with another key than the one that signed.
    #[error("the federation directory refuses this producer: {0}")]
    NotAdmitted(String),
}

/// Seals batches with a node's Ed25519 key.
pub struct BatchSigner {
    key: NodeKey,
}

impl From<NodeKey> for BatchSigner {
    fn from(key: NodeKey) -> Self {
        Self { key }
    }
}

impl BatchSigner {
    /// Loads the signing key and its certificate, checking that the CA issued the certificate for
    /// this very key.
    pub fn new(key_pem: &str, cert_pem: &str, ca: &TrustedCa) -> Result<Self, CertError> {
        NodeKey::load(key_pem, cert_pem, ca).map(Self::from)
    }

    /// The node this signer speaks for.
    pub fn code(&self) -> &NodeCode {
        self.key.code()
    }

    /// The key it signs with.
    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    /// Fills in format, producer and digest, and signs the header.
    pub fn seal(&self, mut header: BatchHeader, records: Vec<u8>) -> SignedBatch {
        header.format = HEADER_FORMAT;
        header.producer = self.code().to_string();
        header.records_digest = blake3::hash(&records).as_bytes().to_vec();
        let header = header.encode_to_vec();
        let signature = self.key.sign(SIGNATURE_CONTEXT, &header).to_vec();
        SignedBatch {
            header,
            records,
            signature,
            producer_certificate: self.key.certificate().to_vec(),
        }
    }
}

fn signed_message(header: &[u8]) -> Vec<u8> {
    [SIGNATURE_CONTEXT, header].concat()
}

/// A batch whose signature, digest and record count checked out.
#[derive(Debug)]
pub struct VerifiedBatch {
    /// The signed header.
    pub header: BatchHeader,
    /// The records.
    pub records: Vec<Record>,
}

/// Checks batches against the federation CA, remembering producers already proven, and against
/// the federation directory's members when it has them.
pub struct BatchVerifier {
    ca: TrustedCa,
    producers: Mutex<HashMap<Vec<u8>, Producer>>,
    members: Option<Arc<dyn Members>>,
}

impl BatchVerifier {
    /// A verifier trusting `ca`.
    pub fn new(ca: TrustedCa) -> Self {
        Self {
            ca,
            producers: Mutex::new(HashMap::new()),
            members: None,
        }
    }

    /// Also requires the producer to be an active member of the directory (once it has members)
    /// and to have signed with the key registered for it when the batch was made.
    pub fn with_members(mut self, members: Arc<dyn Members>) -> Self {
        self.members = Some(members);
        self
    }

    fn admit(&self, producer: &Producer, created_micros: i64) -> Result<(), VerifyError> {
        let Some(members) = &self.members else {
            return Ok(());
        };
        let Some(standing) = members.standing(&producer.code) else {
            if members.is_formed() {
                return Err(VerifyError::NotAdmitted(format!(
                    "{} is not a member of the federation directory, so no key of its is registered",
                    producer.code
                )));
            }
            return Ok(());
        };
        standing
            .admit(&producer.code)
            .map_err(VerifyError::NotAdmitted)?;
        if !standing.signed_with(&hex::encode(producer.key.as_bytes()), created_micros) {
            return Err(VerifyError::NotAdmitted(format!(
                "{} signed with a key other than the one registered for it when the batch was made",
                producer.code
            )));
        }
        Ok(())
    }

    fn producer(&self, certificate: &[u8]) -> Result<Producer, CertError> {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = producers.get(certificate) {
            return Ok(p.clone());
        }
        let p = self.ca.verify_producer(certificate)?;
        producers.insert(certificate.to_vec(), p.clone());
        Ok(p)
    }

    /// Checks one batch on its own: certificate, signature, header, digest and record count.
    pub fn verify(&self, batch: &SignedBatch) -> Result<VerifiedBatch, VerifyError> {
        let producer = self.producer(&batch.producer_certificate)?;
        let signature = Signature::from_slice(&batch.signature)
            .map_err(|_| VerifyError::Signature(producer.code.clone()))?;
        producer
            .key
            .verify_strict(&signed_message(&batch.header), &signature)
            .map_err(|_| VerifyError::Signature(producer.code.clone()))?;
        let header = BatchHeader::decode(batch.header.as_slice())
            .map_err(|e| VerifyError::Header(e.to_string()))?;
        self.admit(&producer, header.created_at_micros)?;
        if header.format != HEADER_FORMAT {
            return Err(VerifyError::Format(header.format));
        }
        if header.producer != producer.code.as_str() {
            return Err(VerifyError::ProducerMismatch {
                certificate: producer.code,
                header: header.producer,
            });
        }
        if blake3::hash(&batch.records).as_bytes().as_slice() != header.records_digest {
            return Err(VerifyError::Digest(producer.code));
        }
        let records = RecordList::decode(batch.records.as_slice())
            .map_err(|e| VerifyError::Records(e.to_string()))?
            .records;
        if records.len() as u64 != header.record_count {
            return Err(VerifyError::Records(format!(
                "header declares {} records, the batch holds {}",
                header.record_count,
                records.len()
            )));
        }
        if !header.manifest.is_empty() {
            let sent = header
                .manifest
                .iter()
                .filter(|m| m.action != "withhold")
                .map(|m| &m.item);
            if !sent.eq(header.columns.iter()) {
                return Err(VerifyError::Header(
                    "the redaction manifest does not match the columns sent".into(),
                ));
            }
        }
        if let Some(r) = records
            .iter()
            .find(|r| r.values.len() != header.columns.len())
        {
            return Err(VerifyError::Records(format!(
                "record {:?} has {} values for {} columns",
                r.key,
                r.values.len(),
                header.columns.len()
            )));
        }
        Ok(VerifiedBatch { header, records })
    }
}

/// What a consumer expects of a response stream; unset fields are learned from the first batch.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Node that must have produced every batch.
    pub producer: Option<String>,
    /// Catalog every batch must be of.
    pub catalog: Option<String>,
    /// Request id every batch must carry.
    pub request_id: Option<String>,
}

/// Checks that the batches of one response stream belong together, arrive in order, and end with
/// the producer's last batch: a dropped, repeated, reordered or cut-off batch is caught.
#[derive(Debug)]
pub struct StreamCheck {
    expected: Expected,
    finished: bool,
    summary: StreamSummary,
}

/// What a verified response stream held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Who signed it.
    pub producer: String,
    /// Who the producer served: the caller, or the relay that asked on its behalf.
    pub consumer: String,
    /// Catalog of the records.
    pub catalog: String,
    /// "query" or "history".
    pub kind: String,
    /// Request id in every header.
    pub request_id: String,
    /// Item codes of the record values.
    pub columns: Vec<String>,
    /// Items left out: not shared, or withheld by the policy.
    pub withheld: Vec<String>,
    /// The principal who asked, `NAME@UNIT`; empty for a node's own read.
    pub principal: String,
    /// The grant the producer decided under.
    pub grant: String,
    /// Items sent masked or hashed, as `ITEM=ACTION`, from the redaction manifest.
    pub redacted: Vec<String>,
    /// Number of batches.
    pub batches: u32,
    /// Number of records.
    pub records: u64,
}

impl StreamCheck {
    /// Starts checking a stream.
    pub fn new(expected: Expected) -> Self {
        Self {
            expected,
            finished: false,
            summary: StreamSummary::default(),
        }
    }

    /// Batches accepted so far.
    pub fn batches(&self) -> u32 {
        self.summary.batches
    }

    /// Verifies the next batch of the stream and accepts it.
    pub fn verify(
        &mut self,
        verifier: &BatchVerifier,
        batch: &SignedBatch,
    ) -> Result<VerifiedBatch, VerifyError> {
        let verified = verifier.verify(batch)?;
        self.accept(&verified.header)?;
        Ok(verified)
    }

    /// Accepts the next verified header.
    pub fn accept(&mut self, header: &BatchHeader) -> Result<(), VerifyError> {
        if self.finished {
            return Err(VerifyError::Unexpected(format!(
                "batch {} arrived after the batch marked last",
                header.sequence
            )));
        }
        for (what, want, got) in [
            ("producer", &mut self.expected.producer, &header.producer),
            ("catalog", &mut self.expected.catalog, &header.catalog),
            (
                "request id",
                &mut self.expected.request_id,
                &header.request_id,
            ),
        ] {
            match want {
                Some(w) if w != got => {
                    return Err(VerifyError::Unexpected(format!(
                        "{what} is {got:?}, expected {w:?}"
                    )));
                }
                Some(_) => {}
                None => *want = Some(got.clone()),
            }
        }
        let s = &mut self.summary;
        if header.sequence != s.batches {
            return Err(VerifyError::Unexpected(format!(
                "batch {} arrived where batch {} was due: a batch is missing, repeated or out of order",
                header.sequence, s.batches
            )));
        }
        if s.batches == 0 {
            s.producer.clone_from(&header.producer);
            s.consumer.clone_from(&header.consumer);
            s.catalog.clone_from(&header.catalog);
            s.kind.clone_from(&header.kind);
            s.request_id.clone_from(&header.request_id);
            s.columns.clone_from(&header.columns);
            s.withheld.clone_from(&header.withheld);
            s.principal.clone_from(&header.principal);
            s.grant.clone_from(&header.grant);
            s.redacted = header
                .manifest
                .iter()
                .filter(|m| m.action != "clear" && m.action != "withhold")
                .map(|m| format!("{}={}", m.item, m.action))
                .collect();
        }
        s.batches += 1;
        s.records += header.record_count;
        self.finished = header.last;
        Ok(())
    }

    /// Confirms the stream ended with its last batch, and says what it held.
    pub fn finish(self) -> Result<StreamSummary, VerifyError> {
        if self.finished {
            Ok(self.summary)
        } else {
            Err(VerifyError::Unexpected(format!(
                "the stream ended after {} batches without the producer's last batch: the response was cut off",
                self.summary.batches
            )))
        }
    }
}

#[cfg(test)]
mod tests;
