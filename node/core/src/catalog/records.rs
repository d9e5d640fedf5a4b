//! Checking records against their catalog: every value against its item's type, length, pattern,
//! code table and check, and the primary key built from the key items.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::Engine;
use regex::Regex;

use super::model::{Catalog, DataType, ValueCheck};
use super::rules::CatalogError;
use crate::limits::thousands;

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
}

/// A catalog compiled for checking records.
pub struct RecordSchema {
    items: Vec<ItemRule>,
    key_items: Vec<usize>,
    by_header: HashMap<String, usize>,
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
                }
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
        let mut full = vec![String::new(); self.items.len()];
        for (value, &n) in values.into_iter().zip(columns) {
            full[n] = value;
        }
        // (item position, problem)
        let mut problems: Vec<(usize, String)> = Vec::new();
        for (n, (rule, value)) in self.items.iter().zip(full.iter_mut()).enumerate() {
            if let Err(problem) = rule.check(value) {
                problems.push((n, problem));
            }
        }
        let parts: Vec<&str> = self.key_items.iter().map(|&n| full[n].as_str()).collect();
        if parts
            .iter()
            .any(|p| p.contains(KEY_SEPARATOR) || p.contains('\0'))
        {
            problems.push((
                self.key_items[0],
                "key values must not contain control characters U+0000 or U+001F".into(),
            ));
        }
        let key = parts.join(&KEY_SEPARATOR.to_string());
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
        let mut rows = Vec::with_capacity(records.len());
        let mut errors = Vec::new();
        let mut keys: HashMap<String, usize> = HashMap::new();
        for (n, values) in records.into_iter().enumerate() {
            match self.row(n + 1, columns, values) {
                Ok(row) => {
                    if let Some(first) = keys.insert(row.key.clone(), n + 1) {
                        errors.push(RecordError {
                            record: n + 1,
                            key: None,
                            item: "key".into(),
                            problem: format!(
                                "key {:?} also appears in record {first}: send one version per key",
                                row.key
                            ),
                        });
                    }
                    rows.push(row);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(rows)
        } else {
            Err(errors)
        }
    }
}

impl ItemRule {
    fn check(&self, value: &mut String) -> Result<(), String> {
        if value.is_empty() {
            return if self.required {
                Err("is required".into())
            } else {
                Ok(())
            };
        }
        let length = match self.data_type {
            DataType::String => value.chars().count(),
            DataType::Number => {
                let digits = value.strip_prefix('-').unwrap_or(value);
                let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
                let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if !all_digits(int) || !all_digits(frac) {
                    return Err(format!(
                        "{value:?} is not a number: write digits, optionally signed and with a decimal point"
                    ));
                }
                digits.len() - usize::from(digits.contains('.'))
            }
            DataType::Date => {
                chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                    .map_err(|_| format!("{value:?} is not a date: write YYYY-MM-DD"))?;
                value.len()
            }
            DataType::Datetime => {
                let ok = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok()
                    || chrono::DateTime::parse_from_rfc3339(value).is_ok();
                if !ok {
                    return Err(format!(
                        "{value:?} is not a date and time: write YYYY-MM-DD HH:MM:SS or RFC 3339"
                    ));
                }
                value.len()
            }
            DataType::Timestamp => {
                value.parse::<i64>().map_err(|_| {
                    format!("{value:?} is not a timestamp: write seconds since 1970-01-01 UTC")
                })?;
                value.len()
            }
            DataType::Boolean => {
                *value = match value.as_str() {
                    "true" | "1" => "true".into(),
                    "false" | "0" => "false".into(),
                    _ => return Err(format!("{value:?} is not a boolean: write true or false")),
                };
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
        if let Some(pattern) = &self.pattern {
            if !pattern.is_match(value) {
                return Err(format!(
                    "{value:?} does not match the item's pattern {}",
                    pattern.as_str()
                ));
            }
        }
        if let Some(codes) = &self.codes {
            if !codes.contains(value.as_str()) {
                let mut known: Vec<&String> = codes.iter().collect();
                known.sort();
                return Err(format!(
                    "{value:?} is not in the item's code table ({known:?})"
                ));
            }
        }
        match self.check {
            Some(ValueCheck::Gb11643) if !gb11643_valid(value) => Err(format!(
                "{value:?} is not a valid citizen ID number: 18 characters, a valid birth date and a correct GB 11643 check digit"
            )),
            _ => Ok(()),
        }
    }
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

/// True for an 18-character citizen ID number with a real birth date and a correct check digit.
pub fn gb11643_valid(id: &str) -> bool {
    id.len() == 18
        && id.is_char_boundary(17)
        && chrono::NaiveDate::parse_from_str(id.get(6..14).unwrap_or(""), "%Y%m%d").is_ok()
        && gb11643_check_digit(&id[..17])
            .is_some_and(|c| id[17..].eq_ignore_ascii_case(&c.to_string()))
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
