//! Carrying out actions on values: masking characters and keyed hashing.

use super::model::Action;

/// Bytes of the federation's hash key.
pub const HASH_KEY_BYTES: usize = 32;

/// The federation's secret key for hashed items: the same on every node, so a value hashes the
/// same wherever it is produced and records can be joined; unknown outside the federation, so
/// nobody else can test guesses against a hash.
#[derive(Clone)]
pub struct HashKey([u8; HASH_KEY_BYTES]);

impl HashKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0; HASH_KEY_BYTES];
        getrandom::fill(&mut key)?;
        Ok(Self(key))
    }

    /// Reads a key written as hex (as [`Self::to_hex`] writes it).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(Self)
            .ok_or_else(|| format!("not {HASH_KEY_BYTES} bytes of hex"))
    }

    /// The key as hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// Applies actions to values.
#[derive(Clone, Debug)]
pub struct Redactor {
    key: Option<HashKey>,
}

/// Hex characters of a hashed value: 128 bits, plenty to join on without collisions.
const HASH_HEX_CHARS: usize = 32;

impl Redactor {
    /// A redactor hashing with `key`; without one it cannot hash.
    pub fn new(key: Option<HashKey>) -> Self {
        Self { key }
    }

    /// Whether it can carry out `action`.
    pub fn can(&self, action: Action) -> bool {
        action != Action::Hash || self.key.is_some()
    }

    /// Appends `value` as `action` makes it to `out`. An empty value stays empty: there is
    /// nothing to hide. A withheld value appends nothing.
    pub fn apply(&self, action: Action, value: &[u8], out: &mut Vec<u8>) {
        if value.is_empty() {
            return;
        }
        match action {
            Action::Clear => out.extend_from_slice(value),
            Action::Withhold => {}
            Action::Hash => {
                let key = self.key.as_ref().expect("checked with Redactor::can");
                let hash = blake3::keyed_hash(&key.0, value);
                out.extend_from_slice(hash.to_hex()[..HASH_HEX_CHARS].as_bytes());
            }
            Action::Mask { first, last } => {
                let text = String::from_utf8_lossy(value);
                let count = text.chars().count();
                let (first, last) = (first as usize, last as usize);
                if first + last >= count {
                    // Keeping that many would reveal the whole value.
                    out.extend(std::iter::repeat_n(b'*', count));
                    return;
                }
                let mut chars = text.chars();
                let mut buf = [0u8; 4];
                for c in chars.by_ref().take(first) {
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                out.extend(std::iter::repeat_n(b'*', count - first - last));
                for c in chars.skip(count - first - last) {
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// `value` as `action` makes it.
    pub fn apply_str(&self, action: Action, value: &str) -> String {
        let mut out = Vec::with_capacity(value.len());
        self.apply(action, value.as_bytes(), &mut out);
        String::from_utf8(out).expect("masking and hashing keep text valid")
    }
}
