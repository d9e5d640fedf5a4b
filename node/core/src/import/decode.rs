//! Bytes to text: UTF-8 (RFC 3629) with or without a byte order mark, or GB18030/GBK with the
//! WHATWG decoder (`encoding_rs`), which also reads GB18030's four-byte sequences. A file that is
//! not UTF-8 and names no encoding is read as GB18030 only when Mozilla's detector (`chardetng`,
//! Firefox's, with character-frequency models of each legacy encoding) reads it as GBK.

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
                Ok(text) if !bom && forced.is_none() && mixes_scripts(text) => {
                    match gb18030(bytes, Encoding::Gb18030) {
                        Ok(_) => Err(ImportError::Encoding {
                            line: line_of(bytes, first_wide(bytes)),
                            encoding: Encoding::Utf8,
                            looks_like: Some("GB18030/GBK"),
                            advice: "it decodes as UTF-8, but into letters of several alphabets mixed (Greek, Cyrillic, Hebrew…), as a few GBK characters do: if it is GBK or GB18030 (Chinese Excel's \"CSV\"), pass --encoding gb18030; if it is UTF-8, pass --encoding utf-8".into(),
                        }),
                        Err(_) => Ok((Cow::Borrowed(text), Encoding::Utf8)),
                    }
                }
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
                            looks_like: Some(other.looks_like),
                            advice: other.advice,
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

/// Bytes the detector reads, of the file's lines that hold bytes outside ASCII: its models decide
/// within a few hundred characters, and it reads about 6 MiB a second.
const DETECTED_BYTES: usize = 1 << 20;

/// The multi-byte encodings of East Asia other than GB18030's family: text in them mostly decodes
/// as GB18030 too, into symbols, kana, rare characters and private-use code points.
const OTHER_CJK: [&encoding_rs::Encoding; 4] = [BIG5, SHIFT_JIS, EUC_JP, EUC_KR];

/// Characters outside ASCII, at the least, on which the detector's guess is sure: fewer (a file
/// of a few names) may read as text in more than one encoding.
const SURE_CHARACTERS: usize = 100;

/// Characters outside ASCII under which the detector's guess of GBK is not taken: with a few
/// names, Big5 text is guessed GBK one time in thirty (one three-character name), and GB 2312's
/// characters are nearly all valid Big5 too. Such a file is refused when another East Asian
/// encoding reads it as well; from this many on, the detector has not been seen wrong about
/// Big5, and is wrong about GBK files of rare names about once in a hundred.
const AMBIGUOUS_BELOW: usize = 16;

/// Why a file that decodes as GB18030 is not read as that: the encoding it looks like, and what
/// to do.
struct OtherReading {
    /// The encoding it looks like (a WHATWG name).
    looks_like: &'static str,
    /// What to do.
    advice: String,
}

impl OtherReading {
    /// The detector's guess `name`, on `wide` characters outside ASCII.
    fn guessed(name: &'static str, wide: usize) -> Self {
        let advice = if wide >= SURE_CHARACTERS {
            format!(
                "it reads as {name} rather than as GB18030: save it as \"CSV UTF-8\" and import that; if it is GB18030 or GBK after all, pass --encoding gb18030"
            )
        } else {
            format!(
                "it has too little text outside ASCII ({wide} characters) to tell GB18030 from {name} for sure, and reads more like {name}: if it is GBK or GB18030 (Chinese Excel's \"CSV\"), pass --encoding gb18030; otherwise save it as \"CSV UTF-8\" and import that"
            )
        };
        Self {
            looks_like: name,
            advice,
        }
    }

    /// GB18030 most likely, but `other` reads the `wide` characters as well.
    fn ambiguous(other: &'static str, wide: usize) -> Self {
        Self {
            looks_like: "GB18030/GBK",
            advice: format!(
                "it reads as Chinese in GB18030/GBK and in {other} alike, with too little text outside ASCII ({wide} characters) to tell which: if it is GBK or GB18030 (Chinese Excel's \"CSV\"), pass --encoding gb18030; otherwise save it as \"CSV UTF-8\" and import that"
            ),
        }
    }
}

/// The encoding that bytes which decode as GB18030 are more likely in, if any.
///
/// Mozilla's detector reads the file's lines that hold bytes outside ASCII, up to
/// [`DETECTED_BYTES`], wherever they are in the file. GBK means GB18030 (from
/// [`AMBIGUOUS_BELOW`] characters on), and so do Han characters only GB18030's four-byte
/// sequences encode; user-defined (private-use) characters refuse it. Any other guess refuses
/// the file, naming
/// it, even when that encoding cannot decode every byte (a Big5 file with a character of its
/// own). Text in single-byte
/// encodings (Cyrillic, Latin) decodes as GB18030 too, so their guesses refuse it as well; with
/// fewer than [`SURE_CHARACTERS`] characters outside ASCII the refusal says it cannot be sure.
fn other_reading(bytes: &[u8], text: &str) -> Option<OtherReading> {
    let sample = non_ascii_lines(bytes, DETECTED_BYTES);
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(&sample, true);
    let guess = detector.guess(None, Utf8Detection::Deny);
    let wide = wide_characters(&sample);
    // User-defined (private-use) code points are where Big5 or Shift_JIS text lands in GB18030,
    // and what its own user-defined characters are: the file names its encoding, or is refused.
    if let Some(private) = text.chars().find(|c| ('\u{E000}'..='\u{F8FF}').contains(c)) {
        let name = if guess == GBK { "Big5" } else { guess.name() };
        return Some(OtherReading {
            looks_like: name,
            advice: format!(
                "read as GB18030 it holds user-defined characters (U+{:04X}), as {name} text read as GB18030 does: if it is GBK or GB18030 with characters of its own, pass --encoding gb18030; otherwise save it as \"CSV UTF-8\" and import that",
                u32::from(private)
            ),
        });
    }
    // Han characters beyond GBK (CJK extensions), which only GB18030's four-byte sequences encode.
    if text.chars().any(is_han_beyond_gbk) {
        return None;
    }
    if guess == GBK {
        // Too short to trust: refused when another East Asian encoding reads it too.
        return (wide < AMBIGUOUS_BELOW)
            .then(|| {
                OTHER_CJK.into_iter().find(|e| {
                    e.decode_without_bom_handling_and_without_replacement(bytes)
                        .is_some()
                })
            })
            .flatten()
            .map(|e| OtherReading::ambiguous(e.name(), wide));
    }
    Some(OtherReading::guessed(guess.name(), wide))
}

/// A Han character of the CJK extensions outside GBK: Extension A (U+3400–U+4DBF) and those of
/// the supplementary planes (U+20000–U+3134F).
fn is_han_beyond_gbk(c: char) -> bool {
    ('\u{3400}'..='\u{4DBF}').contains(&c) || ('\u{20000}'..='\u{3134F}').contains(&c)
}

/// Whether UTF-8 `text` has letters of more than one of the alphabets that two-byte UTF-8
/// encodes (Greek, Cyrillic, Armenian, Hebrew, Arabic…) and nothing beyond them: what GBK
/// bytes that happen to be valid UTF-8 decode to (郑伟 as ֣ΰ), and no real text.
fn mixes_scripts(text: &str) -> bool {
    let mut scripts = 0u8;
    for c in text.chars().filter(|c| !c.is_ascii()) {
        let script = match u32::from(c) {
            0x0370..=0x03FF => 1,
            0x0400..=0x052F => 2,
            0x0530..=0x058F => 4,
            0x0590..=0x05FF => 8,
            0x0600..=0x07FF => 16,
            0x0080..=0x036F => continue,
            _ => return false,
        };
        scripts |= script;
    }
    scripts.count_ones() > 1
}

/// The offset of the first byte outside ASCII.
fn first_wide(bytes: &[u8]) -> usize {
    bytes.iter().position(|b| !b.is_ascii()).unwrap_or(0)
}

/// The lines of `bytes` that hold a byte outside ASCII, joined, up to about `max` bytes.
fn non_ascii_lines(bytes: &[u8], max: usize) -> Vec<u8> {
    let mut sample = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if sample.len() >= max {
            break;
        }
        if !line.is_ascii() {
            sample.extend_from_slice(line);
        }
    }
    sample
}

/// How many characters of GB18030 bytes are outside ASCII.
fn wide_characters(bytes: &[u8]) -> usize {
    let (mut wide, mut at) = (0usize, 0);
    while at < bytes.len() {
        if bytes[at] < 0x80 {
            at += 1;
            continue;
        }
        wide += 1;
        at += if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
            4
        } else {
            2
        };
    }
    wide
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
