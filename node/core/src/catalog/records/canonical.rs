//! One written form per value. Every write path (gRPC `PutRecords`, the CLI's check before it
//! sends, REST, imports) checks records with [`super::RecordSchema::rows`], which puts each
//! value in its item's one form through [`ValueForm::stored`] or refuses it; a query's
//! conditions go through [`ValueForm::condition`], so they compare with that same form.
//!
//! - Free text is kept exactly as written, spaces included.
//! - Every other value has its surrounding whitespace trimmed (a spreadsheet cell's padding is
//!   not part of a number, a code or a date); a value that is only whitespace is no value.
//! - A spelling with one reading is put in its form: a citizen ID number's check character `x`
//!   becomes `X` (GB 11643), a boolean `1` or `0` becomes `true` or `false`, a number loses its
//!   leading zeros and the trailing zeros of its fraction (`05000.0` is `5000`).
//! - A date, date-time or timestamp spelled any other way than its form is refused with the form
//!   to use: `2023/01/05` could have been typed day first elsewhere, and `44931` is a
//!   spreadsheet's serial, so a write never guesses (an import's mapping file says how its
//!   dates are written). A query's condition is only compared, so there the common spellings
//!   are read (`2023-1-5`, `2023/01/05`, `20230105`).
//!
//! Records stored before values had one form stay as they were and are read as stored; a
//! condition compares with the one form, so it finds an old value spelled otherwise (`x`, a
//! padded code) once its record is written again. On that next write each value sent is put in
//! its form (`x` stored as `X`, padding trimmed) or, for a date, date-time or timestamp not in
//! its form, refused until the writer corrects it; a key item padded with spaces is trimmed, so
//! that record is written under the trimmed key.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};

use crate::catalog::{Catalog, DataType, InformationItem, ValueCheck};

/// How an item's values are written, from its type and what the catalog declares of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueForm {
    /// Free text (a string item that is none of the below): kept exactly as written.
    Text,
    /// A code: a string item with a pattern, a code table, a check or parts, carried whole by
    /// another item's part, marked guessable, or part of the primary key. Written without
    /// spaces (inside, unless its pattern admits them; [`super::RecordSchema`] checks).
    Code,
    /// A citizen ID number (`check: gb11643`): a code whose check character is an uppercase `X`.
    IdNumber,
    /// A decimal number: digits, optionally a leading `-` and a decimal point with digits on
    /// both sides (`-12.5`), stored in its one spelling: `05000.0`, `5000.00` and `5000` are
    /// all `5000`, `-0.50` is `-0.5`, `-0` is `0`.
    Number,
    /// `YYYY-MM-DD`, a real calendar date.
    Date,
    /// `YYYY-MM-DD HH:MM:SS` (a time without an offset) or RFC 3339 with its offset, written
    /// as [`DateTime::to_rfc3339_opts`] writes it: `T`, `Z` for UTC, and 0, 3, 6 or 9 digits
    /// of fraction (`2026-01-15T08:30:00+08:00`, `2026-01-15T00:30:00.250Z`). The two are
    /// different values (one knows its offset), so each has its own form.
    Datetime,
    /// Seconds since 1970-01-01 UTC as a signed 64-bit integer, with no `+` and no leading
    /// zeros (`-5`, `1767225600`).
    Timestamp,
    /// `true` or `false`.
    Boolean,
    /// Base64 text (RFC 4648, padded).
    Binary,
}

impl ValueForm {
    /// The form of `item`'s values in `catalog`.
    pub fn of(item: &InformationItem, catalog: &Catalog) -> Self {
        match item.data_type {
            DataType::String if item.check == Some(ValueCheck::Gb11643) => ValueForm::IdNumber,
            DataType::String
                if item.pattern.is_some()
                    || item.code_table.is_some()
                    || item.check.is_some()
                    || item.primary_key
                    || item.guessable
                    || item.fixed_width(catalog) =>
            {
                ValueForm::Code
            }
            DataType::String => ValueForm::Text,
            DataType::Number => ValueForm::Number,
            DataType::Date => ValueForm::Date,
            DataType::Datetime => ValueForm::Datetime,
            DataType::Timestamp => ValueForm::Timestamp,
            DataType::Boolean => ValueForm::Boolean,
            DataType::Binary => ValueForm::Binary,
        }
    }

    /// `value` as it is stored, or why it cannot be, with the form to use. "" (after trimming)
    /// is no value. Idempotent: a stored value is its own form, so a value checked by a client
    /// and checked again by the node is the same.
    pub fn stored(self, value: &str) -> Result<Cow<'_, str>, String> {
        let canonical = self.condition(value)?;
        // A date or time is stored only as written in its form: any other spelling is refused
        // with that form, rather than guessed at.
        let spelled = matches!(
            self,
            ValueForm::Date | ValueForm::Datetime | ValueForm::Timestamp
        );
        if !spelled || canonical == value.trim() {
            return Ok(canonical);
        }
        Err(match self {
            ValueForm::Date => format!("{value:?} is not a date: write YYYY-MM-DD ({canonical})"),
            ValueForm::Datetime => {
                format!("{value:?} is not a date and time in its one form: write {canonical}")
            }
            _ => format!(
                "{value:?} is not a timestamp in its one form, without + or leading zeros: write {canonical}"
            ),
        })
    }

    /// The value a query's condition compares with stored values: [`Self::stored`], except that
    /// a date or date-time may be written in the common spellings (`2023-1-5`, `2023/01/05`,
    /// `2023.1.5`, `20230105`; a `T` or a space between date and time, `z` or `+00:00` for
    /// UTC), and a timestamp with `+` or leading zeros. A value no stored value could equal is
    /// refused with the form to use.
    pub fn condition(self, value: &str) -> Result<Cow<'_, str>, String> {
        let trimmed = value.trim();
        match self {
            ValueForm::Text => Ok(Cow::Borrowed(value)),
            _ if trimmed.is_empty() => Ok(Cow::Borrowed("")),
            ValueForm::Code | ValueForm::Binary => Ok(Cow::Borrowed(trimmed)),
            ValueForm::IdNumber => Ok(match trimmed.strip_suffix('x') {
                Some(first17) => Cow::Owned(format!("{first17}X")),
                None => Cow::Borrowed(trimmed),
            }),
            ValueForm::Number => {
                let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
                let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
                let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if !(all_digits(int) && all_digits(frac)) {
                    return Err(format!(
                        "{value:?} is not a number: write digits, optionally signed and with a decimal point, and no spaces"
                    ));
                }
                // One number, one spelling: no leading zeros, no trailing zeros of a fraction,
                // no point without a fraction, no sign on zero.
                let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
                let int = if int.is_empty() { "0" } else { int };
                let sign = if digits.len() < trimmed.len() && (int != "0" || !frac.is_empty()) {
                    "-"
                } else {
                    ""
                };
                let point = if frac.is_empty() { "" } else { "." };
                let form = format!("{sign}{int}{point}{frac}");
                Ok(if form == trimmed {
                    Cow::Borrowed(trimmed)
                } else {
                    Cow::Owned(form)
                })
            }
            ValueForm::Boolean => match trimmed {
                "true" | "1" => Ok(Cow::Borrowed("true")),
                "false" | "0" => Ok(Cow::Borrowed("false")),
                _ => Err(format!("{value:?} is not a boolean: write true or false")),
            },
            ValueForm::Date => match read_date(trimmed) {
                // Already `YYYY-MM-DD` (read_date saw the digits): kept, not written again.
                Some(_) if matches!(trimmed.as_bytes(), [_, _, _, _, b'-', _, _, b'-', _, _]) => {
                    Ok(Cow::Borrowed(trimmed))
                }
                Some(date) => Ok(Cow::Owned(date.format("%Y-%m-%d").to_string())),
                None => Err(format!("{value:?} is not a date: write YYYY-MM-DD")),
            },
            ValueForm::Datetime => read_datetime(trimmed).map(Cow::Owned).ok_or_else(|| {
                format!(
                    "{value:?} is not a date and time: write YYYY-MM-DD HH:MM:SS, or RFC 3339 with its offset (2026-01-15T08:30:00+08:00)"
                )
            }),
            ValueForm::Timestamp => trimmed
                .parse::<i64>()
                .map(|s| Cow::Owned(s.to_string()))
                .map_err(|_| {
                    format!("{value:?} is not a timestamp: write seconds since 1970-01-01 UTC")
                }),
        }
    }
}

/// A date in one of the spellings people type: year, month and day with `-`, `/` or `.`
/// between them (month and day of one or two digits), or `YYYYMMDD`. The year has four digits.
fn read_date(value: &str) -> Option<NaiveDate> {
    let number = |s: &str, widths: std::ops::RangeInclusive<usize>| {
        (widths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (y, m, d) = match value.find(['-', '/', '.']) {
        Some(at) => {
            let sep = &value[at..at + 1];
            let mut parts = value.split(sep);
            let ymd = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            ymd
        }
        None if value.len() == 8 && value.is_ascii() => (&value[..4], &value[4..6], &value[6..]),
        None => return None,
    };
    let year = i32::try_from(number(y, 4..=4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(m, 1..=2)?, number(d, 1..=2)?)
}

/// `YYYYMMDD`, a real calendar date: the form a date takes inside a code (GB 11643's birth
/// date).
pub(super) fn compact_date(value: &str) -> Option<NaiveDate> {
    (value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| read_date(value))
        .flatten()
}

/// A date and time in its one form ([`ValueForm::Datetime`]), from the spellings people type:
/// a date [`read_date`] reads, `T`, `t` or a space, and `HH:MM:SS`, then RFC 3339's fraction and
/// offset (`Z`, `z` or `±HH:MM`) or nothing.
fn read_datetime(value: &str) -> Option<String> {
    let at = value.find(['T', 't', ' '])?;
    let date = read_date(&value[..at])?.format("%Y-%m-%d");
    let time = &value[at + 1..];
    if time.contains(['Z', 'z', '+', '-']) {
        let rfc3339 = format!("{date}T{}", time.replace('z', "Z"));
        let at = DateTime::parse_from_rfc3339(&rfc3339).ok()?;
        return Some(at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    // Two digits a field: chrono alone would take `8:5:0`.
    let time = (time.len() == 8)
        .then(|| NaiveTime::parse_from_str(time, "%H:%M:%S").ok())
        .flatten()?;
    Some(format!("{date} {}", time.format("%H:%M:%S")))
}
