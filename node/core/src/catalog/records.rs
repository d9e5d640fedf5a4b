//! Checking records against their catalog: every value put in its one form ([`canonical`]) and
//! checked against its item's type, length, pattern, code table and check, every embedded part
//! against the item it holds, and the primary key built from the key items.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use base64::Engine;
use chrono::{Datelike, NaiveDate};
use regex::Regex;

use super::model::{Catalog, DataType, PartAs, ValueCheck};
use super::rules::CatalogError;
use crate::limits::thousands;

mod canonical;

use canonical::compact_date;

pub use canonical::ValueForm;

/// Joins the values of a composite primary key.
pub const KEY_SEPARATOR: char = '\u{1f}';

/// A record ready to store: its key and one value per catalog item, in catalog order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Primary key.
    pub key: String,
    /// Values in catalog item order; "" is no value.
    pub values: Vec<String>,
}

/// One problem with one record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record {record}{}: {item}: {problem}", key_text(.key))]
pub struct RecordError {
    /// Position of the record in its batch or file, from 1.
    pub record: usize,
    /// The record's primary key, when its key items hold valid values.
    pub key: Option<String>,
    /// The item at fault.
    pub item: String,
    /// What is wrong.
    pub problem: String,
}

/// ` (key "…")`, or nothing when the key is not known.
fn key_text(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(" (key {k:?})"))
        .unwrap_or_default()
}

struct ItemRule {
    code: String,
    data_type: DataType,
    form: ValueForm,
    /// The item's length, in the unit of its type.
    length: usize,
    /// Whether the catalog declares the length (else it is the type's default).
    declared: bool,
    /// Values are exactly `length` long ([`super::InformationItem::fixed_width`]).
    fixed: bool,
    required: bool,
    pattern: Option<Regex>,
    codes: Option<HashSet<String>>,
    check: Option<ValueCheck>,
    /// Parts written `YYYYMMDD` (`as: date`): each must be a real date.
    date_parts: Vec<Part>,
}

/// One declared part of a fixed-width code, for messages and checks.
struct Part {
    /// Its name, e.g. "birth date".
    name: String,
    /// 0-based character positions.
    span: Range<usize>,
}

impl Part {
    /// The part's characters in `value` (counted in characters, as the catalog declares them;
    /// fewer, or none, when `value` is shorter).
    fn of<'v>(&self, value: &'v str) -> &'v str {
        let at = |chars: usize| {
            value
                .char_indices()
                .nth(chars)
                .map_or(value.len(), |(i, _)| i)
        };
        &value[at(self.span.start)..at(self.span.end)]
    }

    /// `its birth date (characters 7–14)`.
    fn named(&self) -> String {
        let (from, to) = (self.span.start + 1, self.span.end);
        if from == to {
            format!("its {} (character {from})", self.name)
        } else {
            format!("its {} (characters {from}–{to})", self.name)
        }
    }
}

/// A part of one item that carries another item of the same record (`holds`): the two must
/// agree.
struct Carried {
    /// The item with the part.
    item: usize,
    part: Part,
    /// The item the part holds.
    held: usize,
    carries: PartAs,
}

/// A catalog compiled for checking records.
pub struct RecordSchema {
    items: Vec<ItemRule>,
    key_items: Vec<usize>,
    by_header: HashMap<String, usize>,
    carried: Vec<Carried>,
}

impl RecordSchema {
    /// Compiles a catalog's item rules.
    pub fn new(catalog: &Catalog) -> Result<Self, CatalogError> {
        catalog.validate()?;
        let mut by_header = HashMap::new();
        let items = catalog
            .items
            .iter()
            .enumerate()
            .map(|(n, i)| {
                by_header.insert(i.code.clone(), n);
                by_header.insert(i.name.clone(), n);
                ItemRule {
                    code: i.code.clone(),
                    data_type: i.data_type,
                    form: ValueForm::of(i, catalog),
                    length: i.max_length() as usize,
                    declared: i.length.is_some(),
                    fixed: i.fixed_width(catalog),
                    required: i.required,
                    // The pattern compiled in validate(); anchor it so it must match in full.
                    pattern: i
                        .pattern
                        .as_ref()
                        .and_then(|p| Regex::new(&format!("^(?:{p})$")).ok()),
                    codes: i
                        .code_table
                        .as_ref()
                        .map(|t| t.iter().map(|e| e.code.clone()).collect()),
                    check: i.check,
                    date_parts: i
                        .embeds
                        .iter()
                        .filter(|p| p.carries == PartAs::Date)
                        .map(|p| Part {
                            name: p.part.clone(),
                            span: p.span(),
                        })
                        .collect(),
                }
            })
            .collect();
        // validate() saw that every part holds another item of the catalog.
        let carried = catalog
            .items
            .iter()
            .enumerate()
            .flat_map(|(n, i)| i.embeds.iter().map(move |p| (n, p)))
            .filter_map(|(item, p)| {
                Some(Carried {
                    item,
                    part: Part {
                        name: p.part.clone(),
                        span: p.span(),
                    },
                    held: catalog.item_index(p.holds.as_deref()?)?,
                    carries: p.carries,
                })
            })
            .collect();
        let key_items = catalog
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.primary_key)
            .map(|(n, _)| n)
            .collect();
        Ok(Self {
            items,
            key_items,
            by_header,
            carried,
        })
    }

    /// Maps input column headers (item codes or item names) to item positions.
    pub fn columns<S: AsRef<str>>(&self, headers: &[S]) -> Result<Vec<usize>, String> {
        let mut seen = HashSet::new();
        headers
            .iter()
            .map(|h| {
                let h = h.as_ref().trim();
                let n = *self.by_header.get(h).ok_or_else(|| {
                    let known: Vec<&str> = self.items.iter().map(|i| i.code.as_str()).collect();
                    format!(
                        "column {h:?} is not an item of this catalog; its items are: {}",
                        known.join(", ")
                    )
                })?;
                if !seen.insert(n) {
                    return Err(format!(
                        "column {h:?} names item {} a second time",
                        self.items[n].code
                    ));
                }
                Ok(n)
            })
            .collect()
    }

    /// The catalog's items as (code, type), in catalog order: the order of a [`Row`]'s values.
    pub fn items(&self) -> impl ExactSizeIterator<Item = (&str, DataType)> + '_ {
        self.items.iter().map(|i| (i.code.as_str(), i.data_type))
    }

    /// Checks one record given as values in the order of `columns` (from [`Self::columns`]).
    /// `record` is its position, from 1, for error messages.
    pub fn row(
        &self,
        record: usize,
        columns: &[usize],
        values: Vec<String>,
    ) -> Result<Row, Vec<RecordError>> {
        if values.len() != columns.len() {
            return Err(vec![RecordError {
                record,
                key: None,
                item: "-".into(),
                problem: format!("has {} values for {} columns", values.len(), columns.len()),
            }]);
        }
        // Columns in catalog order, as a client that checked the rows first sends them: the
        // values are the record as they are.
        let in_order =
            columns.len() == self.items.len() && columns.iter().enumerate().all(|(i, &n)| i == n);
        let mut full = if in_order {
            values
        } else {
            let mut full = vec![String::new(); self.items.len()];
            for (value, &n) in values.into_iter().zip(columns) {
                full[n] = value;
            }
            full
        };
        // (item position, problem)
        let mut problems: Vec<(usize, String)> = Vec::new();
        for (n, (rule, value)) in self.items.iter().zip(full.iter_mut()).enumerate() {
            if let Err(problem) = rule.check(value) {
                problems.push((n, problem));
            }
        }
        // Parts against the items they hold, once both are valid on their own.
        let valid = |n: usize| !full[n].is_empty() && !problems.iter().any(|(p, _)| *p == n);
        let disagreements: Vec<(usize, String)> = self
            .carried
            .iter()
            .filter(|c| valid(c.item) && valid(c.held))
            .filter_map(|c| {
                c.disagreement(&full[c.item], &self.items[c.held].code, &full[c.held])
                    .map(|problem| (c.item, problem))
            })
            .collect();
        problems.extend(disagreements);
        let mut key = String::new();
        for (at, &n) in self.key_items.iter().enumerate() {
            if at > 0 {
                key.push(KEY_SEPARATOR);
            }
            key.push_str(&full[n]);
        }
        if self
            .key_items
            .iter()
            .any(|&n| full[n].contains([KEY_SEPARATOR, '\0']))
        {
            problems.push((
                self.key_items[0],
                "key values must not contain control characters U+0000 or U+001F".into(),
            ));
        }
        if problems.is_empty() {
            return Ok(Row { key, values: full });
        }
        let key_valid = !problems.iter().any(|(n, _)| self.key_items.contains(n));
        Err(problems
            .into_iter()
            .map(|(n, problem)| RecordError {
                record,
                key: key_valid.then(|| key.clone()),
                item: self.items[n].code.clone(),
                problem,
            })
            .collect())
    }

    /// Checks a whole batch; any error rejects it, with every error found. Two records with the
    /// same key in one batch are refused, as which should win would be a guess.
    pub fn rows(
        &self,
        columns: &[usize],
        records: Vec<Vec<String>>,
    ) -> Result<Vec<Row>, Vec<RecordError>> {
        // (record, row) for each record that passed its own checks.
        let mut rows = Vec::with_capacity(records.len());
        let mut errors = Vec::new();
        for (n, values) in records.into_iter().enumerate() {
            match self.row(n + 1, columns, values) {
                Ok(row) => rows.push((n + 1, row)),
                Err(mut e) => errors.append(&mut e),
            }
        }
        let mut keys: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        let mut repeated = Vec::new();
        for (record, row) in &rows {
            if let Some(first) = keys.insert(&row.key, *record) {
                repeated.push(RecordError {
                    record: *record,
                    key: None,
                    item: "key".into(),
                    problem: format!(
                        "key {:?} also appears in record {first}: send one version per key",
                        row.key
                    ),
                });
            }
        }
        if errors.is_empty() && repeated.is_empty() {
            return Ok(rows.into_iter().map(|(_, row)| row).collect());
        }
        // In record order, as found: a record has either its own errors or a repeated key.
        errors.append(&mut repeated);
        errors.sort_by_key(|e| e.record);
        Err(errors)
    }
}

impl Carried {
    /// Why the part of `value` (of item `self.item`) and `held`, the value of item `held_code`,
    /// cannot both be true, naming both items; `None` when they agree. A `parity` part gives 1
    /// when odd and 2 when even, as GB 11643's 17th digit gives GB/T 2261.1's male and female;
    /// a held value other than 1 or 2 (0 not known, 9 not stated) says nothing against it.
    fn disagreement(&self, value: &str, held_code: &str, held: &str) -> Option<String> {
        let part = self.part.of(value);
        let agrees = match self.carries {
            PartAs::Same => part == held,
            PartAs::Date => held.chars().filter(|&c| c != '-').eq(part.chars()),
            PartAs::Parity => {
                let odd = part.parse::<u32>().ok()? % 2 == 1;
                let gives = if odd { "1" } else { "2" };
                if matches!(held, "1" | "2") && held != gives {
                    return Some(format!(
                        "{} {part:?} is {}, which gives {held_code} {gives}, but {held_code} is {held:?}: correct one of the two",
                        self.part.named(),
                        if odd { "odd" } else { "even" },
                    ));
                }
                true
            }
            PartAs::Check => true,
        };
        (!agrees).then(|| {
            format!(
                "{} {part:?} disagrees with {held_code} {held:?}: correct one of the two",
                self.part.named()
            )
        })
    }
}

impl ItemRule {
    /// Puts `value` in its one form ([`ValueForm::stored`]) and checks it.
    fn check(&self, value: &mut String) -> Result<(), String> {
        let stored = self.form.stored(value)?;
        // Most values are already in their form: `value` itself, borrowed whole.
        if !matches!(stored, Cow::Borrowed(s) if std::ptr::eq(s, value.as_str())) {
            let stored = stored.into_owned();
            *value = stored;
        }
        if value.is_empty() {
            return if self.required {
                Err("is required".into())
            } else {
                Ok(())
            };
        }
        // Before the length: a stray space is the fault to name, not the length it adds.
        let pattern_admits = self.pattern.as_ref().map(|p| p.is_match(value));
        if matches!(self.form, ValueForm::Code | ValueForm::IdNumber)
            && value.contains(char::is_whitespace)
            && pattern_admits != Some(true)
        {
            return Err(format!(
                "{value:?} has a space inside: {} is a code, written without spaces",
                self.code
            ));
        }
        let length = match self.data_type {
            DataType::String => value.chars().count(),
            DataType::Number => {
                let digits = value.strip_prefix('-').unwrap_or(value);
                digits.len() - usize::from(digits.contains('.'))
            }
            DataType::Date | DataType::Datetime | DataType::Timestamp | DataType::Boolean => {
                value.len()
            }
            DataType::Binary => base64::engine::general_purpose::STANDARD
                .decode(value.as_bytes())
                .map_err(|_| "is not base64 text".to_string())?
                .len(),
        };
        if length > self.length {
            let unit = match self.data_type {
                DataType::Number => "digits",
                DataType::Binary => "bytes",
                _ => "characters",
            };
            let (max, length) = (thousands(self.length as u64), thousands(length as u64));
            return Err(if self.declared {
                format!("is {length} {unit} long, over the item's length of {max} {unit}")
            } else {
                format!(
                    "is {length} {unit} long, over {max} {unit}, the length of an item of this type that declares none: declare its length in the catalog"
                )
            });
        }
        if self.fixed && length != self.length {
            return Err(format!(
                "is {length} characters long, but {} is a fixed-width code of {} characters (the catalog declares its parts, or another item's part carries it): write all {} characters",
                self.code, self.length, self.length
            ));
        }
        if let (Some(pattern), Some(false)) = (&self.pattern, pattern_admits) {
            return Err(format!(
                "{value:?} does not match the item's pattern {}",
                pattern.as_str()
            ));
        }
        if let Some(codes) = &self.codes
            && !codes.contains(value.as_str())
        {
            let mut known: Vec<&String> = codes.iter().collect();
            known.sort();
            return Err(format!(
                "{value:?} is not in the item's code table ({known:?})"
            ));
        }
        if self.check == Some(ValueCheck::Gb11643) {
            gb11643_check(value, today())
                .map_err(|e| format!("{value:?} is not a citizen ID number: {e}"))?;
        }
        for part in &self.date_parts {
            let date = part.of(value);
            if compact_date(date).is_none() {
                return Err(format!(
                    "{value:?}: {} {date:?} is not a real date (YYYYMMDD)",
                    part.named()
                ));
            }
        }
        Ok(())
    }
}

/// Today in China Standard Time (UTC+8): a birth date after it cannot be real yet.
fn today() -> NaiveDate {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    chrono::Utc::now().with_timezone(&cst).date_naive()
}

/// The first two digits of a real citizen ID number: the province-level codes of GB/T 2260
/// (with 71 Taiwan, 81 Hong Kong and 82 Macao), and 83, which the residence permits of Taiwan
/// residents carry in the same GB 11643 layout (81 and 82 serve those of Hong Kong and Macao).
const PROVINCES: &[&str] = &[
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82", "83",
];

/// What cannot be real in a citizen ID number (GB 11643-1999: 6-digit region, `YYYYMMDD` birth
/// date, 3-digit sequence whose last digit's parity is the sex, check character `0`–`9` or `X`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not 17 digits and a check character.
    #[error("write 18 characters: 17 digits and a check character (0-9 or X)")]
    Shape,
    /// The first two digits are no province-level code.
    #[error(
        "its region (characters 1–6) starts {0:?}, which is no province-level code of GB/T 2260"
    )]
    Region(String),
    /// Characters 7–14 are no calendar date.
    #[error("its birth date (characters 7–14) {0:?} is not a real date (YYYYMMDD)")]
    BirthDate(String),
    /// The birth date is before 1900 or after today.
    #[error("its birth date (characters 7–14) {0} is {1}")]
    BirthOutOfRange(NaiveDate, &'static str),
    /// The check character is not the one the first 17 digits give.
    #[error(
        "its check character (character 18) is {found}, but its first 17 digits give {expected} (GB 11643): look for a mistyped digit"
    )]
    CheckDigit {
        /// As written.
        found: char,
        /// As computed.
        expected: char,
    },
}

/// Checks a citizen ID number as stored (check character `X` uppercase): its region, its birth
/// date (a real date from 1900-01-01 to `today`) and its check character.
pub fn gb11643_check(id: &str, today: NaiveDate) -> Result<(), IdNumberError> {
    let b = id.as_bytes();
    let (Some(first17), Some(&found)) = (id.get(..17), b.get(17)) else {
        return Err(IdNumberError::Shape);
    };
    if b.len() != 18 || !first17.bytes().all(|d| d.is_ascii_digit()) {
        return Err(IdNumberError::Shape);
    }
    if !PROVINCES.contains(&&id[..2]) {
        return Err(IdNumberError::Region(id[..2].into()));
    }
    let birth =
        compact_date(&id[6..14]).ok_or_else(|| IdNumberError::BirthDate(id[6..14].into()))?;
    if birth.year() < 1900 {
        return Err(IdNumberError::BirthOutOfRange(birth, "before 1900"));
    }
    if birth > today {
        return Err(IdNumberError::BirthOutOfRange(birth, "after today"));
    }
    let expected = gb11643_check_digit(first17).ok_or(IdNumberError::Shape)?;
    if found as char != expected {
        return Err(IdNumberError::CheckDigit {
            found: found as char,
            expected,
        });
    }
    Ok(())
}

/// The GB 11643 check digit for the first 17 digits of a citizen ID number.
pub fn gb11643_check_digit(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(b"10X98765432"[(sum % 11) as usize] as char)
}

/// True for a citizen ID number as stored that [`gb11643_check`] finds real today.
pub fn gb11643_valid(id: &str) -> bool {
    gb11643_check(id, today()).is_ok()
}

impl fmt::Debug for RecordSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordSchema")
            .field("items", &self.items.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
