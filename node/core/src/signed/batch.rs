//! The signed batch: sealing a batch's records to the node that asked, signing its header with
//! the producer's key, and checking a batch (and a stream of them) against the federation CA.
//!
//! The producer encrypts the exact encoded records to the registered encryption key of the node
//! that asked (`seal`: an HPKE context per batch, RFC 9180, from which a fresh AES-256-GCM key is
//! exported for the records). Bulk encryption goes through ring's AES-GCM, which TLS already links: with AES instructions it
//! runs at about 7 GB/s here, against about 1 GB/s for the HPKE crate's ChaCha20-Poly1305, which
//! cost a stream close to half its speed. The producer then signs the exact encoded header, which names that node and key and
//! carries a BLAKE3 digest of the ciphertext; one signature covers a whole batch. Checking a
//! batch ([`BatchVerifier`]) needs the CA certificate alone, so a relay or a file holder verifies
//! origin and integrity; reading it ([`BatchOpener`]) needs the asking node's private key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::Signature;
use prost::Message;
use tierlink_proto::v1::{BatchHeader, Record, RecordList, SignedBatch};

use super::seal;
use crate::identity::{
    CertError, EncryptionKeys, KEY_BYTES, NodeCode, NodeKey, Producer, RecipientKey, TrustedCa,
};
use crate::members::Members;

/// Format of the headers this build writes and reads: 2, records sealed to the node that asked
/// (format 1 carried them in clear).
pub const HEADER_FORMAT: u32 = 2;

/// Prefix of every signed message, so a batch signature can never be taken for another protocol's.
const SIGNATURE_CONTEXT: &[u8] = b"tierlink.v1.BatchHeader\0";

/// Prefix of the HPKE info of sealed records, so they open for no other use of the key.
const RECORDS_CONTEXT: &[u8] = b"tierlink.v1.SealedRecords\0";

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
    /// The batch is sealed to another node: only that node's key opens it.
    #[error(
        "the records are sealed to node {sealed_to}, not to {opener}: only {sealed_to}'s encryption key opens them (open with its node directory)"
    )]
    SealedToAnother {
        /// The node the batch is sealed to.
        sealed_to: String,
        /// The node that tried to open it.
        opener: NodeCode,
    },
    /// The batch is sealed to a key of this node that it no longer holds.
    #[error(
        "the records are sealed to {node}'s encryption key {key}, which this node directory does not hold: restore the key file (encryption.key) that had it"
    )]
    KeyNotHeld {
        /// The node the batch is sealed to.
        node: NodeCode,
        /// The public key it names, hex.
        key: String,
    },
    /// The sealed records do not open with the key they name.
    #[error(
        "the records do not open with {0}'s key: they were sealed for another batch or another key"
    )]
    Open(NodeCode),
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

    /// Seals `records` (an encoded `RecordList`) to `to`, fills in who they are sealed to, and
    /// signs the batch ([`BatchSigner::sign`]).
    pub fn seal(&self, mut header: BatchHeader, records: Vec<u8>, to: &Recipient) -> SignedBatch {
        header.producer = self.code().to_string();
        header.sealed_to = to.node.to_string();
        header.recipient_key = to.key.as_bytes().to_vec();
        let (encapsulated, sealed) = seal::seal(&to.key, &info(&header), records);
        header.encapsulated_key = encapsulated;
        self.sign(header, sealed)
    }

    /// Fills in format, producer and digest of `records` as given, and signs the header. The
    /// records of every batch a node sends are sealed first ([`BatchSigner::seal`]).
    pub fn sign(&self, mut header: BatchHeader, records: Vec<u8>) -> SignedBatch {
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

/// The HPKE info of a batch's sealed records: producer, recipient, request id and sequence,
/// each length-prefixed, so that records cut from one batch open in no other.
fn info(header: &BatchHeader) -> Vec<u8> {
    let mut info = RECORDS_CONTEXT.to_vec();
    for part in [&header.producer, &header.sealed_to, &header.request_id] {
        info.extend_from_slice(&(part.len() as u32).to_be_bytes());
        info.extend_from_slice(part.as_bytes());
    }
    info.extend_from_slice(&header.sequence.to_be_bytes());
    info
}

/// The node a batch is sealed to and its registered encryption key.
#[derive(Clone, Debug)]
pub struct Recipient {
    /// The node that asked.
    pub node: NodeCode,
    /// Its encryption key, as the directory registers it.
    pub key: RecipientKey,
}

/// A batch whose signature and digest checked out and whose records opened, in the number and
/// shape the header declares.
#[derive(Debug)]
pub struct VerifiedBatch {
    /// The signed header.
    pub header: BatchHeader,
    /// The records.
    pub records: Vec<Record>,
}

impl VerifiedBatch {
    /// Each record as a JSON object: `_key`, and when sent (not with keys hashed) `_version` and
    /// `_updated_at` (RFC 3339, UTC); `_deleted: true` for a deletion; then each column's value
    /// by item code, empty values left out. The shape of `tierlink records query` lines and of
    /// the gateway's JSON records.
    pub fn json_records(&self) -> impl Iterator<Item = serde_json::Map<String, serde_json::Value>> {
        self.records.iter().map(|record| {
            let mut object = serde_json::Map::new();
            object.insert("_key".into(), record.key.clone().into());
            if record.version > 0 {
                object.insert("_version".into(), record.version.into());
                let at = chrono::DateTime::from_timestamp_micros(record.updated_at_micros)
                    .unwrap_or_default();
                object.insert("_updated_at".into(), at.to_rfc3339().into());
            }
            if record.deleted {
                object.insert("_deleted".into(), true.into());
            }
            for (column, value) in self.header.columns.iter().zip(&record.values) {
                if !value.is_empty() {
                    object.insert(column.clone(), value.clone().into());
                }
            }
            object
        })
    }
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

    /// Checks one batch on its own, without opening it: certificate, signature, header, the
    /// directory's admission of the producer, and the digest of the sealed records. Returns the
    /// signed header.
    pub fn verify(&self, batch: &SignedBatch) -> Result<BatchHeader, VerifyError> {
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
        if header.sealed_to.is_empty()
            || header.recipient_key.len() != KEY_BYTES
            || header.encapsulated_key.len() != KEY_BYTES
        {
            return Err(VerifyError::Header(
                "the header does not say who the records are sealed to".into(),
            ));
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
        Ok(header)
    }
}

/// Opens the batches sealed to one node, with the encryption keys it holds (current and
/// retired).
pub struct BatchOpener {
    node: NodeCode,
    keys: EncryptionKeys,
}

impl BatchOpener {
    /// An opener for `node` holding `keys`.
    pub fn new(node: NodeCode, keys: EncryptionKeys) -> Self {
        Self { node, keys }
    }

    /// The node whose batches it opens.
    pub fn node(&self) -> &NodeCode {
        &self.node
    }

    /// Verifies a batch with `verifier`, then opens its records: decrypts them with the key the
    /// header names, decodes them, and checks their count and columns against the header.
    pub fn open(
        &self,
        verifier: &BatchVerifier,
        batch: &SignedBatch,
    ) -> Result<VerifiedBatch, VerifyError> {
        let header = verifier.verify(batch)?;
        let records = self.open_verified(&header, batch)?;
        Ok(VerifiedBatch { header, records })
    }

    /// Opens the records of a batch whose `header` its verifier returned.
    fn open_verified(
        &self,
        header: &BatchHeader,
        batch: &SignedBatch,
    ) -> Result<Vec<Record>, VerifyError> {
        if header.sealed_to != self.node.as_str() {
            return Err(VerifyError::SealedToAnother {
                sealed_to: header.sealed_to.clone(),
                opener: self.node.clone(),
            });
        }
        let key = self
            .keys
            .find(&header.recipient_key)
            .ok_or_else(|| VerifyError::KeyNotHeld {
                node: self.node.clone(),
                key: hex::encode(&header.recipient_key),
            })?;
        let plain = seal::open(
            key,
            &header.encapsulated_key,
            &info(header),
            batch.records.clone(),
        )
        .ok_or_else(|| VerifyError::Open(self.node.clone()))?;
        let records = RecordList::decode(&*plain)
            .map_err(|e| VerifyError::Records(e.to_string()))?
            .records;
        if records.len() as u64 != header.record_count {
            return Err(VerifyError::Records(format!(
                "header declares {} records, the batch holds {}",
                header.record_count,
                records.len()
            )));
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
        Ok(records)
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
    /// Who the producer served: the node that asked (the principal's node, or the node reading
    /// its own records).
    pub consumer: String,
    /// The node whose encryption key opens the records.
    pub sealed_to: String,
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

    /// Verifies the next batch of the stream, without opening it, and accepts it.
    pub fn verify(
        &mut self,
        verifier: &BatchVerifier,
        batch: &SignedBatch,
    ) -> Result<BatchHeader, VerifyError> {
        let header = verifier.verify(batch)?;
        self.accept(&header)?;
        Ok(header)
    }

    /// Verifies and opens the next batch of the stream, and accepts it.
    pub fn open(
        &mut self,
        verifier: &BatchVerifier,
        opener: &BatchOpener,
        batch: &SignedBatch,
    ) -> Result<VerifiedBatch, VerifyError> {
        let opened = opener.open(verifier, batch)?;
        self.accept(&opened.header)?;
        Ok(opened)
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
            s.sealed_to.clone_from(&header.sealed_to);
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
