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
                Ok(text) => Ok((Cow::Borrowed(text), Encoding::Utf8)),
                Err(e) => {
                    let gb = (!bom)
                        .then(|| gb18030(bytes, Encoding::Gb18030).ok())
                        .flatten();
                    let other = match (&gb, forced) {
                        (Some(_), None) => other_reading(bytes),
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
/// [`AMBIGUOUS_BELOW`] characters on), and so do GB18030's own four-byte sequences, which no
/// other encoding has. Any other guess refuses the file, naming
/// it, unless it is one of [`OTHER_CJK`] that does not decode the file. Text in single-byte
/// encodings (Cyrillic, Latin) decodes as GB18030 too, so their guesses refuse it as well; with
/// fewer than [`SURE_CHARACTERS`] characters outside ASCII the refusal says it cannot be sure.
fn other_reading(bytes: &[u8]) -> Option<OtherReading> {
    let sample = non_ascii_lines(bytes, DETECTED_BYTES);
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(&sample, true);
    let guess = detector.guess(None, Utf8Detection::Deny);
    let (wide, four) = wide_characters(&sample);
    let decodes = |e: &'static encoding_rs::Encoding| {
        e.decode_without_bom_handling_and_without_replacement(bytes)
            .is_some()
    };
    if four > 0 {
        return None;
    }
    if guess == GBK {
        // Too short to trust: refused when another East Asian encoding reads it too.
        return (wide < AMBIGUOUS_BELOW)
            .then(|| OTHER_CJK.into_iter().find(|e| decodes(e)))
            .flatten()
            .map(|e| OtherReading::ambiguous(e.name(), wide));
    }
    if OTHER_CJK.contains(&guess) && !decodes(guess) {
        return None;
    }
    Some(OtherReading::guessed(guess.name(), wide))
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

/// Of GB18030 bytes, how many characters are outside ASCII, and how many of those are GB18030's
/// four-byte sequences (a lead byte then a digit).
fn wide_characters(bytes: &[u8]) -> (usize, usize) {
    let (mut wide, mut four, mut at) = (0usize, 0usize, 0);
    while at < bytes.len() {
        if bytes[at] < 0x80 {
            at += 1;
            continue;
        }
        wide += 1;
        if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
            four += 1;
            at += 4;
        } else {
            at += 2;
        }
    }
    (wide, four)
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
