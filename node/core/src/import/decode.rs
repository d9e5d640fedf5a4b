//! Bytes to text: UTF-8 (RFC 3629) with or without a byte order mark, or GB18030/GBK with the
//! WHATWG decoder (`encoding_rs`), which also reads GB18030's four-byte sequences. A file that is
//! not UTF-8 and names no encoding is read as GB18030 unless Mozilla's detector (`chardetng`,
//! Firefox's, with character-frequency models of each legacy encoding) reads it as Big5, Shift_JIS,
//! EUC-JP or EUC-KR.

use std::borrow::Cow;

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{BIG5, DecoderResult, EUC_JP, EUC_KR, GB18030, GBK, SHIFT_JIS};

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
        return Err(ImportError::Utf16 { bom: true });
    }
    // UTF-16 without a mark: every ASCII character has a NUL byte beside it.
    if bytes[..bytes.len().min(DETECTED_BYTES)].contains(&0) {
        return Err(ImportError::Utf16 { bom: false });
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
                    let other = match (&gb, forced) {
                        (Some(text), None) => other_reading(bytes, text),
                        _ => None,
                    };
                    match (gb, forced, other) {
                        (Some(_), None, Some(other)) => Err(ImportError::Encoding {
                            line: line_of(bytes, body.len().min(e.valid_up_to())),
                            encoding: Encoding::Utf8,
                            looks_like: Some(other.name),
                            advice: other.advice(),
                        }),
                        (Some(text), None, None) => Ok((Cow::Owned(text), Encoding::Gb18030)),
                        (gb, _, _) => {
                            Err(not_utf8(bytes, body.len(), e.valid_up_to(), gb.is_some()))
                        }
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

/// Bytes of a file the detector reads: its models decide within a few hundred characters, and
/// it reads about 6 MiB a second, so a large file costs a sixth of a second more, not seconds.
const DETECTED_BYTES: usize = 1 << 20;

/// The multi-byte encodings of East Asia other than GB18030's family: text in them mostly decodes
/// as GB18030 too, into symbols, kana, rare characters and private-use code points.
const OTHER_CJK: [&encoding_rs::Encoding; 4] = [BIG5, SHIFT_JIS, EUC_JP, EUC_KR];

/// Characters of two bytes or more, at the least, on which the detector's guess is sure: fewer
/// (a file of a few names) may read as Chinese in more than one encoding.
const SURE_CHARACTERS: usize = 100;

/// An encoding other than GB18030 that a file reads more like.
struct OtherReading {
    /// Its WHATWG name.
    name: &'static str,
    /// Whether the file had text enough ([`SURE_CHARACTERS`]) to tell.
    sure: bool,
}

impl OtherReading {
    /// What to do about a file that reads like this encoding.
    fn advice(&self) -> String {
        let name = self.name;
        if self.sure {
            format!(
                "it reads as {name} rather than as GB18030: save it as \"CSV UTF-8\" and import that; if it is GB18030 or GBK after all, pass --encoding gb18030"
            )
        } else {
            format!(
                "it has too little Chinese text to tell GB18030 from {name} for sure, and reads more like {name}: if it is GBK or GB18030 (Chinese Excel's \"CSV\"), pass --encoding gb18030; otherwise save it as \"CSV UTF-8\" and import that"
            )
        }
    }
}

/// The encoding that bytes which decode as GB18030 (to `text`) are more likely in, if any.
///
/// Mozilla's detector decides from the first [`DETECTED_BYTES`]: GBK means GB18030; one of
/// [`OTHER_CJK`] that decodes the whole file means that one. With too few characters for its
/// models, its guess is a single-byte encoding, and the share of characters in GB 2312's rows
/// decides: Chinese text has nearly all of its characters there; a few rare ones (names) lower
/// that share a little, so the file is refused only when under half of them are, or under 80%
/// with a private-use character among them.
fn other_reading(bytes: &[u8], text: &str) -> Option<OtherReading> {
    let decodes = |e: &&'static encoding_rs::Encoding| {
        e.decode_without_bom_handling_and_without_replacement(bytes)
            .is_some()
    };
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    let read = &bytes[..bytes.len().min(DETECTED_BYTES)];
    detector.feed(read, read.len() == bytes.len());
    let guess = detector.guess(None, Utf8Detection::Deny);
    if guess == GBK {
        return None;
    }
    let (wide, common) = gb2312_rows(read);
    let sure = wide >= SURE_CHARACTERS;
    if OTHER_CJK.contains(&guess) {
        return Some(guess).filter(decodes).map(|e| OtherReading {
            name: e.name(),
            sure,
        });
    }
    let share = if wide == 0 {
        1.0
    } else {
        common as f64 / wide as f64
    };
    let private = text.chars().any(|c| ('\u{E000}'..='\u{F8FF}').contains(&c));
    if share >= 0.8 || (share >= 0.5 && !private) {
        return None;
    }
    OTHER_CJK.into_iter().find(decodes).map(|e| OtherReading {
        name: e.name(),
        sure,
    })
}

/// Of GB18030 bytes' multi-byte characters, how many there are and how many are where Chinese
/// text has them: GB 2312's punctuation and full-width rows (lead byte 0xA1 to 0xA3) and its Han
/// characters (0xB0 to 0xF7), each with a trail byte 0xA1 to 0xFE, or GB18030's own four-byte
/// sequences, which no other encoding has.
fn gb2312_rows(bytes: &[u8]) -> (usize, usize) {
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
    (wide, common)
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
