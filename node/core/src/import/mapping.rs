//! The mapping file: how an export's columns become a catalog's items. TOML (v1.0), defined by
//! `schema/mapping.schema.json`; an example is `schema/examples/job-seekers.mapping.toml`.
//!
//! ```toml
//! encoding = "gb18030"                 # optional: the export's encoding
//! [skip]
//! title_rows = 1                       # rows before the header row
//! footer_rows = 1                      # rows after the last record
//! when = [{ column = "状态", equals = ["注销"] }]
//! [columns]
//! "姓名" = "name"                      # column → item (code or name)
//! "性别" = { item = "sex", codes = { "男" = "1", "女" = "2" } }
//! "出生日期" = { item = "birth_date", date_formats = ["%Y年%m月%d日", "%Y/%m/%d"] }
//! "备注" = false                       # left out
//! [defaults]
//! street_code = "420502002"            # for an item the file has no column for
//! ```
//!
//! A column the mapping does not name must itself be an item's code or name. Unknown keys are
//! refused with the keys allowed.

use std::collections::{BTreeMap, HashMap};

use chrono::format::{Item, StrftimeItems};
use serde::{Deserialize, Deserializer};

use super::{Encoding, ImportError, PROBLEMS_COLUMN, Problem};
use crate::catalog::{DataType, RecordSchema};

/// A parsed mapping file. The default maps nothing: columns name items themselves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mapping {
    encoding: Option<Encoding>,
    skip: Skip,
    columns: BTreeMap<String, Column>,
    defaults: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    skip: Skip,
    #[serde(default)]
    columns: BTreeMap<String, toml::Value>,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Skip {
    #[serde(default)]
    title_rows: usize,
    #[serde(default)]
    footer_rows: usize,
    #[serde(default)]
    when: Vec<SkipWhen>,
}

/// Rows whose `column` holds one of `equals` are skipped.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipWhen {
    column: String,
    #[serde(deserialize_with = "one_or_many")]
    equals: Vec<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "write a value or a list of values, e.g. equals = [\"注销\"]",
        )),
    }
}

/// What becomes of one column.
#[derive(Clone, Debug, PartialEq)]
enum Column {
    Item(ColumnItem),
    Ignore,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnItem {
    /// Item code or name.
    item: String,
    /// chrono strftime forms the column's dates are written in, tried in order.
    #[serde(default)]
    date_formats: Vec<String>,
    /// The column's values → the item's codes.
    #[serde(default)]
    codes: BTreeMap<String, String>,
}

impl Mapping {
    /// Parses a mapping file's text.
    pub fn parse(text: &str) -> Result<Self, ImportError> {
        let bad = ImportError::Mapping;
        let raw: Raw = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_owned()))?;
        let encoding = raw
            .encoding
            .map(|e| e.parse())
            .transpose()
            .map_err(|e| bad(format!("encoding: {e}")))?;
        let mut columns = BTreeMap::new();
        for (name, value) in raw.columns {
            let column = match value {
                toml::Value::String(item) => Column::Item(ColumnItem {
                    item,
                    ..Default::default()
                }),
                toml::Value::Boolean(false) => Column::Ignore,
                toml::Value::Table(table) => {
                    let item = ColumnItem::deserialize(table)
                        .map_err(|e| bad(format!("columns.{name:?}: {e}")))?;
                    for format in &item.date_formats {
                        if StrftimeItems::new(format).any(|i| i == Item::Error) {
                            return Err(bad(format!(
                                "columns.{name:?}: date format {format:?} is not a chrono strftime format (e.g. \"%Y/%m/%d\", \"%Y年%m月%d日\", \"%Y%m%d\")"
                            )));
                        }
                    }
                    Column::Item(item)
                }
                other => {
                    return Err(bad(format!(
                        "columns.{name:?}: write an item's code or name, false to leave the column out, or a table with item, date_formats and codes (not {other})"
                    )));
                }
            };
            columns.insert(name, column);
        }
        Ok(Mapping {
            encoding,
            skip: raw.skip,
            columns,
            defaults: raw.defaults,
        })
    }

    /// The column the mapping takes `item` (as the mapping names it) from, for a writer going
    /// the other way (a table filled from a catalog).
    pub fn column_of(&self, item: &str) -> Option<&str> {
        self.columns.iter().find_map(|(column, c)| match c {
            Column::Item(i) if i.item == item => Some(column.as_str()),
            _ => None,
        })
    }

    /// Whether the mapping says what becomes of `column` (an item, or left out).
    pub fn names(&self, column: &str) -> bool {
        self.columns.contains_key(column)
    }

    /// The encoding the mapping names.
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    pub(super) fn title_rows(&self) -> usize {
        self.skip.title_rows
    }

    pub(super) fn footer_rows(&self) -> usize {
        self.skip.footer_rows
    }
}

/// One kept column and how its values convert.
struct Kept<'m> {
    /// Position in the file's columns.
    at: usize,
    /// The file's name for it.
    column: String,
    /// The item's code.
    item: String,
    data_type: DataType,
    date_formats: &'m [String],
    codes: Option<&'m BTreeMap<String, String>>,
}

/// A mapping applied to one file's header and one catalog.
pub(super) struct Plan<'m> {
    kept: Vec<Kept<'m>>,
    /// Item positions of the kept columns, then of the defaults.
    columns: Vec<usize>,
    defaults: Vec<String>,
    /// (column position, values that skip a row)
    skip_when: Vec<(usize, &'m [String])>,
    /// Item code → catalog position, to sort problems.
    order: HashMap<String, usize>,
}

impl<'m> Plan<'m> {
    pub(super) fn new(
        mapping: &'m Mapping,
        header: &[String],
        schema: &RecordSchema,
    ) -> Result<Self, ImportError> {
        let bad = ImportError::Mapping;
        if header.is_empty() {
            return Err(ImportError::Header(
                "the file has no header row: its first row must name the columns (after any title rows the mapping skips)".into(),
            ));
        }
        let items: Vec<(&str, DataType)> = schema.items().collect();
        let resolve = |name: &str| schema.columns(&[name]).map(|n| n[0]);
        let list = |names: &[String]| {
            let quoted: Vec<String> = names.iter().map(|c| format!("{c:?}")).collect();
            quoted.join(", ")
        };
        if let Some(name) = mapping.columns.keys().find(|c| !header.contains(c)) {
            return Err(bad(format!(
                "[columns] names column {name:?}, which the file's header does not have; its columns are: {}",
                list(header)
            )));
        }
        let mut kept = Vec::new();
        let mut columns = Vec::new();
        let mut by_item: HashMap<usize, &str> = HashMap::new();
        for (at, name) in header.iter().enumerate() {
            let (target, date_formats, codes) = match mapping.columns.get(name) {
                Some(Column::Ignore) => continue,
                None if name == PROBLEMS_COLUMN => continue,
                Some(Column::Item(c)) => {
                    (c.item.as_str(), c.date_formats.as_slice(), Some(&c.codes))
                }
                None => (name.as_str(), &[][..], None),
            };
            if name.is_empty() {
                return Err(ImportError::Header(format!(
                    "column {} has no header: name it, or delete the column if it is empty",
                    at + 1
                )));
            }
            let n = resolve(target).map_err(|problem| match codes {
                Some(_) => bad(format!("[columns] {name:?} = {target:?}: {problem}")),
                None => ImportError::Header(format!(
                    "{problem}; or map the column to an item in a mapping file's [columns], or set it to false there to leave it out"
                )),
            })?;
            if let Some(other) = by_item.insert(n, name) {
                return Err(ImportError::Header(format!(
                    "columns {other:?} and {name:?} both give item {}: keep one (set the other to false in the mapping's [columns])",
                    items[n].0
                )));
            }
            let (code, data_type) = items[n];
            if !date_formats.is_empty() && !matches!(data_type, DataType::Date | DataType::Datetime)
            {
                return Err(bad(format!(
                    "[columns] {name:?}: date_formats apply to date and datetime items, and {code} is not one"
                )));
            }
            kept.push(Kept {
                at,
                column: name.clone(),
                item: code.to_owned(),
                data_type,
                date_formats,
                codes: codes.filter(|c| !c.is_empty()),
            });
            columns.push(n);
        }
        let mut defaults = Vec::new();
        for (target, value) in &mapping.defaults {
            let n = resolve(target).map_err(|p| bad(format!("[defaults] {target:?}: {p}")))?;
            if let Some(column) = by_item.get(&n) {
                return Err(bad(format!(
                    "[defaults] {target:?}: the file has a column for it ({column:?}): a default is for an item the file lacks; remove one of them"
                )));
            }
            by_item.insert(n, target);
            columns.push(n);
            defaults.push(value.clone());
        }
        let skip_when = mapping
            .skip
            .when
            .iter()
            .map(|w| match header.iter().position(|h| *h == w.column) {
                Some(at) => Ok((at, w.equals.as_slice())),
                None => Err(bad(format!(
                    "[[skip.when]] names column {:?}, which the file's header does not have; its columns are: {}",
                    w.column,
                    list(header)
                ))),
            })
            .collect::<Result<_, _>>()?;
        let order = items
            .iter()
            .enumerate()
            .map(|(n, (code, _))| ((*code).to_owned(), n + 1))
            .chain([("-".to_owned(), 0)])
            .collect();
        Ok(Plan {
            kept,
            columns,
            defaults,
            skip_when,
            order,
        })
    }

    /// Item positions of [`Self::record`]'s values, for [`RecordSchema::row`].
    pub(super) fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Whether a `[[skip.when]]` rule skips the row.
    pub(super) fn skips(&self, values: &[String]) -> bool {
        self.skip_when
            .iter()
            .any(|(at, equals)| equals.iter().any(|e| e == values[*at].trim()))
    }

    /// Where problems of `item` sort: the item's catalog position, the record's first.
    pub(super) fn order(&self, item: &str) -> usize {
        self.order.get(item).copied().unwrap_or(usize::MAX)
    }

    /// The row's values converted, aligned with [`Self::columns`], and what could not convert.
    pub(super) fn record(&self, values: &[String]) -> (Vec<String>, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut record = Vec::with_capacity(self.columns.len());
        for k in &self.kept {
            let value = &values[k.at];
            let translated = k.codes.and_then(|codes| codes.get(value.trim()));
            let converted = match translated {
                Some(code) => code.clone(),
                None if k.date_formats.is_empty() || value.trim().is_empty() => value.clone(),
                None => match k.date(value.trim()) {
                    Ok(date) => date,
                    Err(problem) => {
                        problems.push(Problem {
                            item: k.item.clone(),
                            problem,
                        });
                        value.clone()
                    }
                },
            };
            record.push(converted);
        }
        record.extend(self.defaults.iter().cloned());
        (record, problems)
    }
}

impl Kept<'_> {
    /// A date (or datetime) in one of the column's forms, in the item's canonical form; a value
    /// already canonical is kept.
    fn date(&self, value: &str) -> Result<String, String> {
        use chrono::{NaiveDate, NaiveDateTime};
        let datetime = self.data_type == DataType::Datetime;
        for format in self.date_formats {
            if datetime && let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
                return Ok(t.format("%Y-%m-%d %H:%M:%S").to_string());
            }
            if let Ok(d) = NaiveDate::parse_from_str(value, format) {
                return Ok(if datetime {
                    d.format("%Y-%m-%d 00:00:00").to_string()
                } else {
                    d.format("%Y-%m-%d").to_string()
                });
            }
        }
        let canonical = if datetime {
            NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok()
        } else {
            NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
        };
        if canonical {
            return Ok(value.to_owned());
        }
        Err(format!(
            "{value:?} (column {:?}) is not a date in the mapping's forms {}, nor {}",
            self.column,
            self.date_formats.join(", "),
            if datetime {
                "YYYY-MM-DD HH:MM:SS"
            } else {
                "YYYY-MM-DD"
            }
        ))
    }
}
