//! Carrying out actions on values: masking characters, keyed hashing, generalising.

use siphasher::sip128::SipHasher13;

use super::model::{Action, Generalisation};

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

/// Appends `value` with all but its first `first` and last `last` characters replaced by `*`,
/// one per character; all of them when keeping that many would reveal the whole value. Works on
/// the UTF-8 bytes: a character starts at every byte that is not a continuation byte.
fn mask(value: &[u8], first: usize, last: usize, out: &mut Vec<u8>) {
    let starts = || {
        value
            .iter()
            .enumerate()
            .filter(|(_, b)| (**b & 0xC0) != 0x80)
            .map(|(i, _)| i)
    };
    // ID numbers, phones and dates are ASCII: one byte per character.
    let ascii = value.is_ascii();
    let count = if ascii { value.len() } else { starts().count() };
    if first + last >= count {
        out.extend(std::iter::repeat_n(b'*', count));
        return;
    }
    let (head_end, tail_start) = (char_end(value, first), char_end(value, count - last));
    out.extend_from_slice(&value[..head_end]);
    out.extend(std::iter::repeat_n(b'*', count - first - last));
    out.extend_from_slice(&value[tail_start..]);
}

/// The byte where the character after the first `n` starts (the end when there are fewer).
fn char_end(value: &[u8], n: usize) -> usize {
    if value.is_ascii() {
        return n.min(value.len());
    }
    value
        .iter()
        .enumerate()
        .filter(|(_, b)| (**b & 0xC0) != 0x80)
        .map(|(i, _)| i)
        .nth(n)
        .unwrap_or(value.len())
}

/// Appends `value` made coarser by `g`. A value that does not have the form the generalisation
/// expects (grants refuse such pairings; a catalog may change) appends nothing rather than
/// something unplanned.
fn generalise(g: Generalisation, value: &[u8], out: &mut Vec<u8>) {
    let digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
    match g {
        Generalisation::Year if value.len() >= 4 && digits(&value[..4]) => {
            out.extend_from_slice(&value[..4]);
        }
        Generalisation::YearMonth
            if value.len() >= 7
                && digits(&value[..4])
                && value[4] == b'-'
                && digits(&value[5..7]) =>
        {
            out.extend_from_slice(&value[..7]);
        }
        Generalisation::Prefix(n) => out.extend_from_slice(&value[..char_end(value, n as usize)]),
        Generalisation::Band(width) => {
            if let Some((low, high)) = band(value, width) {
                use std::io::Write;
                let _ = write!(out, "{low}-{high}");
            }
        }
        Generalisation::Year | Generalisation::YearMonth => {}
    }
}

/// The band of width `width` holding the decimal number `value` (`-12.5`, `34`): its lowest and
/// highest integers. `None` when `value` is not such a number of at most 38 digits.
fn band(value: &[u8], width: u64) -> Option<(i128, i128)> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() || int.len() > 38 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut floor: i128 = int.parse().ok()?;
    if negative {
        floor = -floor - i128::from(fraction.bytes().any(|b| b != b'0'));
    }
    let width = i128::from(width.max(1));
    let low = floor.div_euclid(width) * width;
    Some((low, low + (width - 1)))
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// Applies actions to values.
#[derive(Clone, Debug)]
pub struct Redactor {
    /// SipHash-1-3 (128-bit output) keyed from the federation's key: a PRF made for short
    /// inputs, a third of the cost of a BLAKE3 compression per value.
    hasher: Option<SipHasher13>,
}

/// Characters (and bytes) of a hashed value: 96 bits as URL-safe base64, joinable without
/// collisions among billions of values.
pub const HASH_CHARS: usize = 16;

/// The URL-safe base64 alphabet (RFC 4648 §5).
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Redactor {
    /// A redactor hashing with `key`; without one it cannot hash.
    pub fn new(key: Option<HashKey>) -> Self {
        let hasher = key.map(|k| {
            let derived = blake3::keyed_hash(&k.0, b"tierlink.v1 hashed item values");
            let mut sip_key = [0u8; 16];
            sip_key.copy_from_slice(&derived.as_bytes()[..16]);
            SipHasher13::new_with_key(&sip_key)
        });
        Self { hasher }
    }

    /// Whether it can carry out `action`.
    pub fn can(&self, action: Action) -> bool {
        action != Action::Hash || self.hasher.is_some()
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
                let hasher = self.hasher.as_ref().expect("checked with Redactor::can");
                // The first 96 bits as URL-safe base64, written directly: the general engine's
                // per-call set-up cost more than the hash.
                let bits = hasher.hash(value).as_u128() >> 32;
                let mut text = [0u8; HASH_CHARS];
                for (n, c) in text.iter_mut().enumerate() {
                    *c = BASE64_URL[(bits >> (6 * (HASH_CHARS - 1 - n)) & 63) as usize];
                }
                out.extend_from_slice(&text);
            }
            Action::Mask { first, last } => mask(value, first as usize, last as usize, out),
            Action::Generalise(g) => generalise(g, value, out),
        }
    }

    /// `value` as `action` makes it.
    pub fn apply_str(&self, action: Action, value: &str) -> String {
        let mut out = Vec::with_capacity(value.len());
        self.apply(action, value.as_bytes(), &mut out);
        String::from_utf8(out).expect("masking, hashing and generalising keep text valid")
    }
}
