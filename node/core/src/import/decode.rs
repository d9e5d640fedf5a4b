//! Bytes to text: UTF-8 (RFC 3629) with or without a byte order mark, or GB18030/GBK with the
//! WHATWG decoder (`encoding_rs`), which also reads GB18030's four-byte sequences.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, GB18030, GBK};

use super::parse::line_of;
use super::{Encoding, ImportError};

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// The text of `bytes` without a byte order mark, and the encoding it was read as: `forced`, or
/// UTF-8 when the bytes are UTF-8 and GB18030 when they decode as that.
pub(super) fn decode(
    bytes: &[u8],
    forced: Option<Encoding>,
) -> Result<(Cow<'_, str>, Encoding), ImportError> {
    if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
        return Err(ImportError::Utf16);
    }
    let bom = bytes.starts_with(UTF8_BOM);
    match forced {
        None | Some(Encoding::Utf8) => {
            let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
            match std::str::from_utf8(body) {
                Ok(text) => Ok((Cow::Borrowed(text), Encoding::Utf8)),
                Err(e) => {
                    let gb = (!bom)
                        .then(|| gb18030(bytes, Encoding::Gb18030).ok())
                        .flatten();
                    match (gb, forced) {
                        (Some(text), None) if other_reading(bytes, &text).is_some() => {
                            Err(ImportError::Encoding {
                                line: line_of(bytes, body.len().min(e.valid_up_to())),
                                encoding: Encoding::Utf8,
                                looks_like: other_reading(bytes, &text),
                                advice: "it reads as Chinese neither in UTF-8 nor in GB18030: save it as \"CSV UTF-8\" and import that; if it is GB18030 after all, pass --encoding gb18030".into(),
                            })
                        }
                        (Some(text), None) => Ok((Cow::Owned(text), Encoding::Gb18030)),
                        (gb, _) => Err(not_utf8(bytes, body.len(), e.valid_up_to(), gb.is_some())),
                    }
                }
            }
        }
        Some(_) if bom => Err(ImportError::Encoding {
            line: 1,
            encoding: forced.unwrap_or(Encoding::Gb18030),
            looks_like: Some("UTF-8"),
            advice: "the file starts with a UTF-8 byte order mark: leave out --encoding".into(),
        }),
        Some(encoding) => gb18030(bytes, encoding)
            .map(|text| (Cow::Owned(text), encoding))
            .map_err(|offset| {
                let utf8 = std::str::from_utf8(bytes).is_ok();
                ImportError::Encoding {
                    line: line_of(bytes, offset),
                    encoding,
                    looks_like: utf8.then_some("UTF-8"),
                    advice: if utf8 {
                        "leave out --encoding to read it as UTF-8".into()
                    } else {
                        "find the file's encoding and save it as \"CSV UTF-8\"".into()
                    },
                }
            }),
    }
}

/// The encoding bytes that decode as GB18030 (to `text`) are more likely in: Big5 or Shift_JIS,
/// when they decode in it and do not read as Chinese in GB18030. Text in those encodings mostly
/// decodes as GB18030 too, into symbols, kana, rare characters and private-use code points
/// (where GB18030 puts user-defined and unassigned codes). Chinese text has nearly all its
/// characters in GB 2312's rows; a few rare ones (names) lower that share a little, so the file
/// is refused only when under half of its characters are there, or under 80% with a private-use
/// character among them.
fn other_reading(bytes: &[u8], text: &str) -> Option<&'static str> {
    let common = common_share(bytes);
    let private = text.chars().any(|c| ('\u{E000}'..='\u{F8FF}').contains(&c));
    if common >= 0.8 || (common >= 0.5 && !private) {
        return None;
    }
    [encoding_rs::BIG5, encoding_rs::SHIFT_JIS]
        .into_iter()
        .find(|e| {
            e.decode_without_bom_handling_and_without_replacement(bytes)
                .is_some()
        })
        .map(|e| e.name())
}

/// The share of GB18030 bytes' multi-byte characters that are where Chinese text has them: GB
/// 2312's punctuation and full-width rows (lead byte 0xA1 to 0xA3) and its Han characters (0xB0
/// to 0xF7), each with a trail byte 0xA1 to 0xFE, or GB18030's own four-byte sequences, which no
/// other encoding has. 1 for text with none.
fn common_share(bytes: &[u8]) -> f64 {
    let (mut wide, mut common, mut at) = (0usize, 0usize, 0);
    while at < bytes.len() {
        let lead = bytes[at];
        if lead < 0x80 {
            at += 1;
            continue;
        }
        let trail = bytes.get(at + 1).copied().unwrap_or(0);
        let four = trail.is_ascii_digit();
        let rows = (0xA1..=0xA3).contains(&lead) || (0xB0..=0xF7).contains(&lead);
        wide += 1;
        common += usize::from(four || rows && (0xA1..=0xFE).contains(&trail));
        at += if four { 4 } else { 2 };
    }
    if wide == 0 {
        1.0
    } else {
        common as f64 / wide as f64
    }
}

/// The error for bytes that are not UTF-8 from `valid` on (in the `len` bytes after any BOM).
fn not_utf8(bytes: &[u8], len: usize, valid: usize, looks_gb18030: bool) -> ImportError {
    let offset = bytes.len() - len + valid;
    ImportError::Encoding {
        line: line_of(bytes, offset),
        encoding: Encoding::Utf8,
        looks_like: looks_gb18030.then_some("GB18030/GBK"),
        advice: if looks_gb18030 {
            "save it as \"CSV UTF-8\" or pass --encoding gb18030".into()
        } else {
            "save it as \"CSV UTF-8\" and import that".into()
        },
    }
}

/// Decodes GB18030 (or GBK, whose WHATWG decoder is GB18030's) without replacement; the error is
/// the offset of the first malformed sequence.
fn gb18030(bytes: &[u8], encoding: Encoding) -> Result<String, usize> {
    let mut decoder = match encoding {
        Encoding::Gbk => GBK,
        _ => GB18030,
    }
    .new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len() * 3);
    let mut text = String::with_capacity(capacity);
    match decoder.decode_to_string_without_replacement(bytes, &mut text, true) {
        (DecoderResult::InputEmpty, _) => Ok(text),
        (DecoderResult::Malformed(bad, after), read) => {
            Err(read.saturating_sub(usize::from(bad) + after as usize))
        }
        // The buffer was sized for the worst case.
        (DecoderResult::OutputFull, read) => Err(read),
    }
}
