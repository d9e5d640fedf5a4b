//! A node's encryption keys: X25519 keys for HPKE (RFC 9180) base mode with the suite
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305. Producers seal the records of
//! each batch to the registered public key of the node that asked; only that node's private key
//! opens them.
//!
//! The private keys live in the node directory beside the signing key (`encryption.key`, 0600):
//! one key per line as 64 hex digits, the current key first and the keys it rotated away from
//! after it, so that batches sealed before a rotation still open while the node keeps their key.

use hpke::{Deserializable, Kem as _, Serializable};

use super::CertError;

/// The KEM of the suite: DHKEM(X25519, HKDF-SHA256).
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;

type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;

/// Bytes of an X25519 key, public or private.
pub const KEY_BYTES: usize = 32;

/// A node's public encryption key, as the directory registers it and a batch header names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientKey {
    bytes: [u8; KEY_BYTES],
    key: PublicKey,
}

impl RecipientKey {
    /// Reads a public key from its 32 bytes, refusing one no sealing can use: an X25519 point of
    /// small order, which makes every shared secret zero (RFC 9180 §7.1.4).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| {
            format!(
                "an encryption key is {KEY_BYTES} bytes (X25519), not {}",
                bytes.len()
            )
        })?;
        let key = PublicKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
        // A key of small order fails every encapsulation: try one now, once, so that sealing to
        // a parsed key cannot fail.
        let mut probe = [];
        hpke::single_shot_seal_in_place_detached::<
            hpke::aead::ChaCha20Poly1305,
            hpke::kdf::HkdfSha256,
            Kem,
            _,
        >(
            &hpke::OpModeS::Base,
            &key,
            b"",
            &mut probe,
            b"",
            &mut rng(),
        )
        .map_err(|_| "the encryption key is a point of small order, which no one can seal to: generate a new one with `tierlink cert rotate`".to_owned())?;
        Ok(Self { bytes, key })
    }

    /// Reads a public key from 64 hex digits, as the directory holds it.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| format!("an encryption key is 64 hex digits: {e}"))?;
        Self::from_bytes(&bytes)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    pub(crate) fn hpke(&self) -> &PublicKey {
        &self.key
    }
}

/// The operating system's random generator, as HPKE's encapsulation takes it. It panics only if
/// the OS has no randomness to give, where no key could be made either.
pub(crate) fn rng() -> rand_core::UnwrapErr<rand_core::OsRng> {
    use rand_core::TryRngCore;
    rand_core::OsRng.unwrap_err()
}

/// A node's private encryption key and its public half.
#[derive(Clone)]
pub struct EncryptionKey {
    private: PrivateKey,
    public: RecipientKey,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("public", &self.public.to_hex())
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// A fresh key from the OS's random generator.
    pub fn generate() -> Result<Self, CertError> {
        let mut ikm = [0u8; KEY_BYTES];
        getrandom::fill(&mut ikm)
            .map_err(|e| CertError::Key(format!("no randomness for an encryption key: {e}")))?;
        let (private, _) = Kem::derive_keypair(&ikm);
        Self::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<Self, CertError> {
        let public = RecipientKey::from_bytes(&Kem::sk_to_pk(&private).to_bytes())
            .map_err(CertError::Key)?;
        Ok(Self { private, public })
    }

    /// The public half, to register in the directory.
    pub fn public(&self) -> &RecipientKey {
        &self.public
    }

    pub(crate) fn hpke(&self) -> &PrivateKey {
        &self.private
    }
}

/// The encryption keys a node holds: the current one first, then those it rotated away from.
#[derive(Clone, Debug)]
pub struct EncryptionKeys(Vec<EncryptionKey>);

impl EncryptionKeys {
    /// One fresh key.
    pub fn generate() -> Result<Self, CertError> {
        Ok(Self(vec![EncryptionKey::generate()?]))
    }

    /// Reads the key file's text: one private key per line, 64 hex digits, current first; blank
    /// lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<Self, CertError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
            .map(|(n, line)| {
                let bad = |why: String| {
                    CertError::Key(format!("encryption key {} of the file: {why}", n + 1))
                };
                let bytes = hex::decode(line).map_err(|e| bad(format!("not hex: {e}")))?;
                let private = PrivateKey::from_bytes(&bytes)
                    .map_err(|_| bad(format!("not {KEY_BYTES} bytes")))?;
                EncryptionKey::from_private(private)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(CertError::Key(
                "the encryption key file holds no key: restore it from a backup, or make a new one with `tierlink cert rotate`".into(),
            ));
        }
        Ok(Self(keys))
    }

    /// The text of the key file.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|k| format!("{}\n", hex::encode(k.private.to_bytes())))
            .collect()
    }

    /// The key batches are sealed to now.
    pub fn current(&self) -> &EncryptionKey {
        &self.0[0]
    }

    /// The key whose public half is `public`, current or retired.
    pub fn find(&self, public: &[u8]) -> Option<&EncryptionKey> {
        self.0.iter().find(|k| k.public.bytes == public)
    }

    /// These keys with `new` as the current one, keeping the others to open older batches.
    pub fn rotated(mut self, new: EncryptionKey) -> Self {
        self.0.insert(0, new);
        self
    }
}
