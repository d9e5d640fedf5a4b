//! Backup archives: a node's store and configuration in one file, signed by the node so that it
//! verifies with the federation CA alone, and optionally sealed to a recipient's X25519 key.
//!
//! # Plain archive
//! All lengths big-endian:
//!
//! ```text
//! "TIERLINK-BACKUP1"                      16 bytes
//! manifest length (u32), manifest         JSON (Manifest)
//! certificate length (u32), certificate   the node's signing certificate, DER
//! signature                               64 bytes, Ed25519 (RFC 8032)
//! parts                                   each part's bytes, in the manifest's order
//! ```
//!
//! The signature covers `"tierlink.v1 backup manifest\0"` followed by the manifest's bytes as
//! stored, and the manifest names the node, the code that took the backup, the store format,
//! the time, and each part's name, length and SHA-256 (FIPS 180-4): one signature covers every
//! byte of the archive. The certificate must be issued by the federation CA for the node the
//! manifest names (its validity at restore time is not required: a backup outlives
//! certificates).
//!
//! # Sealed archive
//! `--encrypt-to` seals the whole plain archive to an X25519 public key with HPKE (RFC 9180,
//! base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / export-only, as batches are sealed), whose
//! context exports one AES-256-GCM key (§5.3), and encrypts the plain archive under it in chunks
//! of 1 MiB after the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
//! Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015): chunk `i`'s
//! nonce is four zero bytes, `i` (u64) and a last-chunk flag byte, so chunks cannot be dropped,
//! reordered or cut off at the end without failing to open.
//!
//! ```text
//! "TIERLINK-SEALED1"                      16 bytes
//! recipient public key                    32 bytes (X25519)
//! encapsulated key                        32 bytes
//! chunks                                  each: length (u32), ciphertext and 16-byte tag
//! ```
//!
//! The HPKE `info` is `"tierlink.v1 backup"` followed by the recipient's public key.

use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::Signature;
use hpke::aead::ExportOnlyAead;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{
    CertError, EncryptionKeys, Kem, NodeCode, NodeKey, RecipientKey, TrustedCa, rng,
};

/// The first bytes of a plain archive.
pub const PLAIN_MAGIC: &[u8; 16] = b"TIERLINK-BACKUP1";
/// The first bytes of a sealed archive.
pub const SEALED_MAGIC: &[u8; 16] = b"TIERLINK-SEALED1";
/// The archive format [`Manifest::archive_format`] this code writes and reads.
pub const ARCHIVE_FORMAT: u32 = 1;
/// The domain-separation prefix of a manifest's signature.
const SIGN_CONTEXT: &[u8] = b"tierlink.v1 backup manifest\0";
/// The HPKE `info` prefix of a sealed archive.
const SEAL_INFO: &[u8] = b"tierlink.v1 backup";
/// The exporter context of a sealed archive's AES key.
const KEY_CONTEXT: &[u8] = b"tierlink.v1 backup key";
/// Plain bytes per sealed chunk.
const CHUNK: usize = 1 << 20;
/// Longest manifest or certificate read: far beyond any real one, short of a memory hazard.
const MAX_HEADER_PIECE: u32 = 16 << 20;

/// What a backup holds, signed by the node that took it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`ARCHIVE_FORMAT`].
    pub archive_format: u32,
    /// The node backed up.
    pub node: NodeCode,
    /// The version of Tierlink that took it.
    pub tierlink: String,
    /// The format of the store in the `store` part.
    pub store_format: u32,
    /// When the store was dumped, RFC 3339 (UTC).
    pub taken_at: String,
    /// How long writes to the store waited while it was dumped, microseconds.
    pub writes_waited_micros: u64,
    /// Whether the node's private keys are among the parts.
    pub with_keys: bool,
    /// The parts, in the order their bytes follow the header.
    pub parts: Vec<Part>,
}

/// One part of an archive: the store's dump (`store`), or a file of the node directory
/// (`files/` and its path there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Its name.
    pub name: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl Part {
    /// A part holding the file at `path`, hashed now.
    pub fn of_file(name: String, path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let bytes = std::io::copy(&mut file, &mut hasher)?;
        Ok(Self {
            name,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not start as an archive does.
    #[error(
        "this is not a Tierlink backup (it does not start with TIERLINK-BACKUP1 or TIERLINK-SEALED1): give the file `tierlink backup` wrote"
    )]
    NotAnArchive,
    /// A sealed archive and no key.
    #[error(
        "the backup is encrypted to the key {0}: give --key FILE, the file holding its private key"
    )]
    Sealed(String),
    /// A sealed archive and another key.
    #[error(
        "the backup is encrypted to the key {0}, which the key file given does not hold: give the file holding that key's private key"
    )]
    WrongKey(String),
    /// A sealed chunk does not open.
    #[error(
        "the encrypted backup was altered (its chunk {0} does not open under its key): use an intact copy"
    )]
    Altered(u64),
    /// The bytes end before the archive does.
    #[error("the backup ends early ({0}): it was cut short in copying; copy it again")]
    CutShort(String),
    /// Bytes follow the archive's end.
    #[error("bytes follow the end of the backup: it was altered; use an intact copy")]
    Trailing,
    /// The manifest is not readable.
    #[error("the backup's manifest is unreadable ({0}): use an intact copy")]
    Manifest(String),
    /// An archive format this code does not read.
    #[error(
        "the backup is in archive format {found}, this build reads format {ARCHIVE_FORMAT}: restore it with the Tierlink version that took it, or a newer one"
    )]
    ArchiveFormat {
        /// The format found.
        found: u32,
    },
    /// The signing certificate is not the CA's, or names another node.
    #[error("the backup's signing certificate is not usable: {0}")]
    Signer(String),
    /// The signature does not verify.
    #[error(
        "the backup's signature does not verify under {0}'s signing certificate: its manifest was altered after the node signed it; use an intact copy"
    )]
    Signature(NodeCode),
    /// A part's bytes differ from what the manifest says.
    #[error(
        "part {0} of the backup was altered: its SHA-256 differs from the signed manifest's; use an intact copy"
    )]
    Part(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(std::io::Error),
}

/// An I/O error is the archive's refusal when it carries one (a sealed chunk that does not open,
/// a part cut short: they travel through readers as I/O errors), and otherwise the archive cut
/// short at an unexpected end, or the I/O error itself.
impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        let (kind, message) = (e.kind(), e.to_string());
        match e.into_inner().map(|inner| inner.downcast::<BackupError>()) {
            Some(Ok(refused)) => *refused,
            Some(Err(other)) => BackupError::Io(std::io::Error::new(kind, other)),
            None if kind == std::io::ErrorKind::UnexpectedEof => BackupError::CutShort(message),
            None => BackupError::Io(std::io::Error::new(kind, message)),
        }
    }
}

fn read_piece(input: &mut dyn Read) -> Result<Vec<u8>, BackupError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_HEADER_PIECE {
        return Err(BackupError::Manifest(format!(
            "a header piece of {len} bytes"
        )));
    }
    let mut piece = vec![0u8; len as usize];
    input.read_exact(&mut piece)?;
    Ok(piece)
}

fn write_piece(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Writes a plain archive to `out`: the manifest signed by `key`, then each part's bytes from
/// `parts`, which must give them in the manifest's order with the lengths it states.
pub fn write_archive(
    out: &mut dyn Write,
    manifest: &Manifest,
    key: &NodeKey,
    parts: &mut dyn FnMut(&Part, &mut dyn Write) -> std::io::Result<u64>,
) -> std::io::Result<()> {
    let manifest_bytes = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    out.write_all(PLAIN_MAGIC)?;
    write_piece(out, &manifest_bytes)?;
    write_piece(out, key.certificate())?;
    out.write_all(&key.sign(SIGN_CONTEXT, &manifest_bytes))?;
    for part in &manifest.parts {
        let written = parts(part, out)?;
        if written != part.bytes {
            return Err(std::io::Error::other(format!(
                "part {} changed while the backup was written ({written} bytes, not {}): take the backup again",
                part.name, part.bytes
            )));
        }
    }
    out.flush()
}

/// The AES-256-GCM key of a sealed archive, exported from its HPKE context.
fn archive_key(export: impl FnOnce(&mut [u8]) -> Result<(), hpke::HpkeError>) -> LessSafeKey {
    let mut key = [0u8; 32];
    export(&mut key).expect("a 32-byte key is within HKDF-SHA256's export limit");
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("32 bytes make an AES-256 key"))
}

fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..12 - 1].copy_from_slice(&index.to_be_bytes()[1..]);
    nonce[11] = u8::from(last);
    // Index bytes 4..11 hold the low 7 bytes of the index: 2^56 chunks of 1 MiB, beyond any
    // archive.
    Nonce::assume_unique_for_key(nonce)
}

fn seal_info(to: &RecipientKey) -> Vec<u8> {
    [SEAL_INFO, to.as_bytes()].concat()
}

/// Seals what is written to it to a recipient, chunk by chunk, into the inner writer; call
/// [`SealingWriter::finish`] to write the last chunk.
pub struct SealingWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    buffer: Vec<u8>,
    index: u64,
}

impl<W: Write> SealingWriter<W> {
    /// Starts a sealed archive to `to` in `inner`.
    pub fn new(mut inner: W, to: &RecipientKey) -> std::io::Result<Self> {
        let (encapsulated, context) = hpke::setup_sender::<ExportOnlyAead, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            to.hpke(),
            &seal_info(to),
            &mut rng(),
        )
        .expect("encapsulating to a checked X25519 key succeeds");
        inner.write_all(SEALED_MAGIC)?;
        inner.write_all(to.as_bytes())?;
        inner.write_all(&encapsulated.to_bytes())?;
        Ok(Self {
            inner,
            key: archive_key(|out| context.export(KEY_CONTEXT, out)),
            buffer: Vec::with_capacity(CHUNK),
            index: 0,
        })
    }

    fn seal_chunk(&mut self, last: bool) -> std::io::Result<()> {
        let mut chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.key
            .seal_in_place_append_tag(chunk_nonce(self.index, last), Aad::empty(), &mut chunk)
            .map_err(|_| std::io::Error::other("a chunk is within AES-GCM's limit"))?;
        write_piece(&mut self.inner, &chunk)?;
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.seal_chunk(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.buffer.len() == CHUNK {
            self.seal_chunk(false)?;
        }
        let n = buf.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a sealed archive's chunks as they are read.
struct OpeningReader<R: Read> {
    inner: R,
    key: LessSafeKey,
    plain: Vec<u8>,
    at: usize,
    index: u64,
    ended: bool,
}

impl<R: Read> OpeningReader<R> {
    fn next_chunk(&mut self) -> Result<(), BackupError> {
        let mut chunk = read_piece_unbounded(&mut self.inner)?;
        let opened = [false, true].into_iter().find_map(|last| {
            let mut attempt = chunk.clone();
            let len = self
                .key
                .open_in_place(chunk_nonce(self.index, last), Aad::empty(), &mut attempt)
                .ok()?
                .len();
            attempt.truncate(len);
            Some((attempt, last))
        });
        let (plain, last) = opened.ok_or(BackupError::Altered(self.index))?;
        chunk.clear();
        self.plain = plain;
        self.at = 0;
        self.index += 1;
        if last {
            let mut probe = [0u8];
            if self.inner.read(&mut probe)? != 0 {
                return Err(BackupError::Trailing);
            }
            self.ended = true;
        }
        Ok(())
    }
}

/// A sealed chunk: up to a chunk's bytes and a tag.
fn read_piece_unbounded(input: &mut dyn Read) -> Result<Vec<u8>, BackupError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > CHUNK + 16 {
        return Err(BackupError::CutShort(format!(
            "a chunk of {len} bytes, more than any sealed chunk"
        )));
    }
    let mut piece = vec![0u8; len];
    input.read_exact(&mut piece)?;
    Ok(piece)
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.plain.len() {
            if self.ended {
                return Ok(0);
            }
            self.next_chunk().map_err(std::io::Error::other)?;
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The plain bytes of a sealed archive, read after its magic.
fn open_sealed(
    mut input: Box<dyn Read>,
    keys: Option<&EncryptionKeys>,
) -> Result<Box<dyn Read>, BackupError> {
    let mut public = [0u8; 32];
    let mut encapsulated = [0u8; 32];
    input.read_exact(&mut public)?;
    input.read_exact(&mut encapsulated)?;
    let to = hex::encode(public);
    let keys = keys.ok_or_else(|| BackupError::Sealed(to.clone()))?;
    let key = keys
        .find(&public)
        .ok_or_else(|| BackupError::WrongKey(to.clone()))?;
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&encapsulated)
        .map_err(|_| BackupError::Altered(0))?;
    let context = hpke::setup_receiver::<ExportOnlyAead, HkdfSha256, Kem>(
        &OpModeR::Base,
        key.hpke(),
        &encapsulated,
        &seal_info(key.public()),
    )
    .map_err(|_| BackupError::Altered(0))?;
    let reader = OpeningReader {
        inner: input,
        key: archive_key(|out| context.export(KEY_CONTEXT, out)),
        plain: Vec::new(),
        at: 0,
        index: 0,
        ended: false,
    };
    Ok(Box::new(reader))
}

/// An archive whose header is verified, its parts still to read.
pub struct Archive {
    /// The signed manifest.
    pub manifest: Manifest,
    input: Box<dyn Read>,
}

impl Archive {
    /// Opens an archive from `input`, opening it with `keys` when it is sealed, and verifies
    /// its header: the signing certificate issued by `ca` for the node the manifest names, the
    /// signature over the manifest, and the archive format.
    pub fn open(
        mut input: Box<dyn Read>,
        keys: Option<&EncryptionKeys>,
        ca: &TrustedCa,
    ) -> Result<Self, BackupError> {
        let mut magic = [0u8; 16];
        input
            .read_exact(&mut magic)
            .map_err(|_| BackupError::NotAnArchive)?;
        if &magic == SEALED_MAGIC {
            input = open_sealed(input, keys)?;
            input.read_exact(&mut magic)?;
        }
        if &magic != PLAIN_MAGIC {
            return Err(BackupError::NotAnArchive);
        }
        let manifest_bytes = read_piece(&mut input)?;
        let certificate = read_piece(&mut input)?;
        let mut signature = [0u8; 64];
        input.read_exact(&mut signature)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| BackupError::Manifest(e.to_string()))?;
        let signer = ca
            .verify_issued(&certificate)
            .map_err(|e: CertError| BackupError::Signer(e.to_string()))?;
        if signer.code != manifest.node {
            return Err(BackupError::Signer(format!(
                "it names node {}, but the manifest says the backup is of node {}",
                signer.code, manifest.node
            )));
        }
        signer
            .key
            .verify_strict(
                &[SIGN_CONTEXT, &manifest_bytes].concat(),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| BackupError::Signature(signer.code.clone()))?;
        if manifest.archive_format != ARCHIVE_FORMAT {
            return Err(BackupError::ArchiveFormat {
                found: manifest.archive_format,
            });
        }
        Ok(Self { manifest, input })
    }

    /// Reads every part in order, handing each to `each` with a reader of its bytes (`each`
    /// may stop reading early), and checks each part's length and SHA-256 against the manifest
    /// and that nothing follows the last. `each`'s errors stop the reading, once its part is
    /// read through: a part altered is reported as altered, whatever `each` made of its bytes.
    pub fn read_parts<E: From<BackupError>>(
        mut self,
        mut each: impl FnMut(&Part, &mut dyn Read) -> Result<(), E>,
    ) -> Result<Manifest, E> {
        for part in &self.manifest.parts {
            let mut hashing = HashingReader {
                inner: (&mut self.input).take(part.bytes),
                hasher: Sha256::new(),
                bytes: 0,
                part,
            };
            let used = each(part, &mut hashing);
            std::io::copy(&mut hashing, &mut std::io::sink())
                .map_err(|e| E::from(BackupError::from(e)))?;
            if hex::encode(hashing.hasher.finalize()) != part.sha256 {
                return Err(BackupError::Part(part.name.clone()).into());
            }
            used?;
        }
        let mut probe = [0u8];
        match self
            .input
            .read(&mut probe)
            .map_err(|e| E::from(BackupError::from(e)))?
        {
            0 => Ok(self.manifest),
            _ => Err(BackupError::Trailing.into()),
        }
    }
}

/// Counts and hashes a part as it is read through, and refuses it cut short: whoever reads the
/// part (the store loading its dump) meets the archive's refusal rather than an end it would
/// take for damage of its own.
struct HashingReader<'a, R: Read> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    part: &'a Part,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.bytes < self.part.bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                BackupError::CutShort(format!(
                    "part {} has {} of its {} bytes",
                    self.part.name, self.bytes, self.part.bytes
                )),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
