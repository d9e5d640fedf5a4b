//! Bulk import of the files bureaus really export: bytes in, checked rows and rejected rows out,
//! with no I/O, so the command line and the REST gateway's upload share it.
//!
//! The steps, each in its own file:
//! - [`decode`](self::decode): UTF-8 with or without a byte order mark, or GB18030/GBK (detected
//!   when the bytes are not UTF-8, or forced); an error names the line and what to do;
//! - `parse`: CSV (RFC 4180, as spreadsheets write it) or JSON lines into a [`Table`], each record
//!   with the physical line it starts on, as a text editor numbers it (LF, CRLF or CR endings,
//!   blank lines counted, quoted line breaks spanning lines); spreadsheet padding (empty trailing
//!   columns, all-empty rows) dropped;
//! - [`mapping`](self::mapping): the mapping file (TOML, `schema/mapping.schema.json`): columns
//!   to items, date formats, code translations, defaults, rows to skip;
//! - this file: checking every record against the catalog ([`RecordSchema`]) into good rows and
//!   [`Reject`]s with every reason, and the reject file ([`Imported::reject_file`]).
//!
//! Entry point: [`import`].

mod decode;
pub mod mapping;
mod parse;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

pub use mapping::Mapping;
pub use parse::{Table, json_lines, json_objects};

use crate::catalog::{RecordSchema, Row};
use mapping::Plan;

/// The column the reject file adds with each row's problems; an import leaves it out, so a
/// corrected reject file imports as it is.
pub const PROBLEMS_COLUMN: &str = "_problems";

/// A text encoding an import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (RFC 3629), with or without a byte order mark.
    Utf8,
    /// GB 18030-2005, the superset of GBK with four-byte sequences for the rest of Unicode.
    Gb18030,
    /// GBK, as Chinese Windows writes it; read as GB18030, its superset.
    Gbk,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gb18030 => "GB18030",
            Encoding::Gbk => "GBK",
        })
    }
}

impl FromStr for Encoding {
    type Err = String;

    /// `utf-8` (or `utf8`), `gb18030` or `gbk`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "gb18030" => Ok(Encoding::Gb18030),
            "gbk" => Ok(Encoding::Gbk),
            _ => Err(format!("unknown encoding {s:?}: use utf-8, gb18030 or gbk")),
        }
    }
}

/// The shape of the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row of column names (RFC 4180; LF, CRLF or CR line endings).
    #[default]
    Csv,
    /// One JSON object per line, keyed by column name; blank lines are skipped.
    JsonLines,
}

impl Format {
    /// CSV for a name ending in `.csv` (any case), JSON lines otherwise.
    pub fn from_file_name(name: &str) -> Self {
        let csv = name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("csv"));
        if csv { Format::Csv } else { Format::JsonLines }
    }
}

/// How to read a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// CSV or JSON lines.
    pub format: Format,
    /// The file's encoding; `None` detects it (UTF-8, else GB18030), unless the mapping names one.
    pub encoding: Option<Encoding>,
}

/// Why a file cannot be imported at all. Nothing of it is imported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The bytes are not in the encoding given or assumed.
    #[error("line {line} is not {encoding}{}: {advice}", .looks_like.map(|e| format!(" (it looks like {e})")).unwrap_or_default())]
    Encoding {
        /// Line (from 1) of the first byte that does not decode.
        line: usize,
        /// The encoding the file was read as.
        encoding: Encoding,
        /// An encoding the whole file decodes in, when there is one.
        looks_like: Option<&'static str>,
        /// What to do.
        advice: String,
    },
    /// The file is UTF-16 (Excel's "Unicode Text"): it starts with a UTF-16 byte order mark, or
    /// has the NUL bytes of UTF-16's ASCII characters, which no text file in another encoding has.
    #[error(
        "the file is UTF-16 (it {}): save it as \"CSV UTF-8\" and import that",
        if *.bom { "starts with a UTF-16 byte order mark" } else { "holds NUL bytes, as UTF-16 text without a byte order mark does" }
    )]
    Utf16 {
        /// Whether a byte order mark said so.
        bom: bool,
    },
    /// The CSV reader failed (it reads any text; kept so a failure is never silent).
    #[error("line {line}: {problem}")]
    Csv {
        /// Line, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A line of a JSON-lines file is not a JSON object of plain values.
    #[error("line {line}: {problem}")]
    Json {
        /// Line, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The file's header row does not fit the catalog or the mapping.
    #[error("{0}")]
    Header(String),
    /// The mapping file is malformed or does not fit the file or the catalog.
    #[error("mapping: {0}")]
    Mapping(String),
}

/// A record that passed every check, with the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRow {
    /// Physical line where the record starts, from 1.
    pub line: usize,
    /// The record, its values in catalog item order.
    pub row: Row,
}

/// One thing wrong with a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The item at fault (its code), or `-` for the record as a whole.
    pub item: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.problem)
    }
}

/// A record that failed a check: its values as the file had them and every reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Physical line where the record starts, from 1.
    pub line: usize,
    /// The values as read, one per column of [`Imported::header`] (padding dropped; a row with
    /// more values than the header keeps them all).
    pub values: Vec<String>,
    /// Every problem found; never empty.
    pub problems: Vec<Problem>,
}

impl Reject {
    /// `line N: item: problem`, one line per problem.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems
            .iter()
            .map(move |p| format!("line {}: {p}", self.line))
    }

    /// `line N: item: problem; item: problem`: the reject file's reason cell.
    pub fn reason(&self) -> String {
        let all: Vec<String> = self.problems.iter().map(Problem::to_string).collect();
        format!("line {}: {}", self.line, all.join("; "))
    }
}

/// A file read and checked: the rows to write and the rows refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The encoding the file was read as.
    pub encoding: Encoding,
    /// CSV or JSON lines.
    pub format: Format,
    /// The file's columns (CSV: header cells trimmed, padding dropped; JSON lines: keys in the
    /// order first seen).
    pub header: Vec<String>,
    /// Item codes in catalog order: the order of every row's values.
    pub items: Vec<String>,
    /// Records that passed every check, in file order.
    pub rows: Vec<CheckedRow>,
    /// Records refused, in file order, each with every reason.
    pub rejects: Vec<Reject>,
    /// Records left out on purpose: all-empty rows and rows the mapping skips.
    pub skipped: usize,
    /// Text before the header (title rows the mapping skips), kept for the reject file.
    prelude: String,
    /// Text of footer rows the mapping skips, kept for the reject file.
    footer: String,
}

impl Imported {
    /// Records read: written, rejected and skipped.
    pub fn read(&self) -> usize {
        self.rows.len() + self.rejects.len() + self.skipped
    }

    /// The reject file: the refused records as the file had them, ready to correct and import
    /// again with the same options and mapping. A CSV input gives CSV in UTF-8 with a byte order
    /// mark (so spreadsheets read it as UTF-8) and CRLF line endings: the title rows, the same
    /// header plus a [`PROBLEMS_COLUMN`], the rows, the footer rows. A JSON-lines input gives
    /// JSON lines, each object with a `_problems` key. Empty when nothing was refused.
    pub fn reject_file(&self) -> Vec<u8> {
        self.reject_file_of(usize::MAX)
    }

    /// The reject file of the first `rows` refused records only: what an answer that must stay
    /// small carries.
    pub fn reject_file_of(&self, rows: usize) -> Vec<u8> {
        if self.rejects.is_empty() {
            return Vec::new();
        }
        match self.format {
            Format::Csv => {
                let mut out = "\u{feff}".as_bytes().to_vec();
                out.extend_from_slice(self.prelude.as_bytes());
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                let header = self.header.iter().map(String::as_str);
                // Writing to a Vec cannot fail.
                let _ = writer.write_record(header.chain([PROBLEMS_COLUMN]));
                for reject in self.rejects.iter().take(rows) {
                    let reason = reject.reason();
                    let values = reject.values.iter().map(String::as_str);
                    let _ = writer.write_record(values.chain([reason.as_str()]));
                }
                let mut out = writer.into_inner().unwrap_or_default();
                out.extend_from_slice(self.footer.as_bytes());
                out
            }
            Format::JsonLines => {
                let mut out = Vec::new();
                for reject in self.rejects.iter().take(rows) {
                    let mut object = serde_json::Map::new();
                    for (column, value) in self.header.iter().zip(&reject.values) {
                        if !value.is_empty() {
                            object.insert(column.clone(), value.clone().into());
                        }
                    }
                    object.insert(PROBLEMS_COLUMN.into(), reject.reason().into());
                    out.extend_from_slice(serde_json::Value::Object(object).to_string().as_bytes());
                    out.push(b'\n');
                }
                out
            }
        }
    }
}

/// Reads `bytes` as `options` and `mapping` say and checks every record against `schema`.
///
/// Errors only when the file cannot be read at all (encoding, JSON syntax, a header that names no
/// item, a mapping that does not fit); a record that fails a check is a [`Reject`] with every
/// reason, and a key seen twice rejects the later record.
pub fn import(
    bytes: &[u8],
    options: &Options,
    mapping: Option<&Mapping>,
    schema: &RecordSchema,
) -> Result<Imported, ImportError> {
    let empty = Mapping::default();
    let mapping = mapping.unwrap_or(&empty);
    let (text, encoding) = decode::decode(bytes, options.encoding.or(mapping.encoding()))?;
    let parsed = match options.format {
        Format::Csv => parse::csv(&text, mapping.title_rows(), mapping.footer_rows())?,
        Format::JsonLines => {
            let lines = parse::physical_lines(&text);
            parse::Parsed::from(json_lines(lines)?)
        }
    };
    let checked = check_table(
        &parsed.table.columns,
        parsed
            .table
            .rows
            .into_iter()
            .zip(parsed.table.lines)
            .collect(),
        mapping,
        schema,
    )?;
    Ok(Imported {
        encoding,
        format: options.format,
        header: parsed.table.columns,
        items: checked.items,
        rows: checked.rows,
        rejects: checked.rejects,
        skipped: parsed.empty_rows + checked.skipped,
        prelude: parsed.prelude,
        footer: parsed.footer,
    })
}

/// Rows checked as an import checks a file's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedTable {
    /// Item codes in catalog order: the order of every row's values.
    pub items: Vec<String>,
    /// Rows that passed every check, in the order given.
    pub rows: Vec<CheckedRow>,
    /// Rows refused, each with every reason.
    pub rejects: Vec<Reject>,
    /// Rows the mapping skips.
    pub skipped: usize,
}

/// Checks rows read from elsewhere than a file (a database table) as [`import`] checks a
/// file's: `columns` names each value's column, `mapping` converts them, `schema` checks the
/// records; a key seen twice rejects the later row. Rows are numbered from 1 as their `line`.
///
/// # Errors
/// [`ImportError::Header`] or [`ImportError::Mapping`] when the columns do not fit the catalog
/// or the mapping.
pub fn check_rows(
    columns: &[String],
    rows: Vec<Vec<String>>,
    mapping: Option<&Mapping>,
    schema: &RecordSchema,
) -> Result<CheckedTable, ImportError> {
    let empty = Mapping::default();
    let rows = rows.into_iter().zip(1..).collect();
    check_table(columns, rows, mapping.unwrap_or(&empty), schema)
}

/// The checks of [`import`] and [`check_rows`]: each row on its own, in chunks on every core;
/// then, in order, a key seen on an earlier line rejects the row.
fn check_table(
    columns: &[String],
    rows: Vec<(Vec<String>, usize)>,
    mapping: &Mapping,
    schema: &RecordSchema,
) -> Result<CheckedTable, ImportError> {
    let plan = Plan::new(mapping, columns, schema)?;
    let width = columns.len();
    let mut table = CheckedTable {
        items: schema.items().map(|(code, _)| code.to_owned()).collect(),
        rows: Vec::with_capacity(rows.len()),
        rejects: Vec::new(),
        skipped: 0,
    };
    let check =
        |(values, line): (Vec<String>, usize)| check_row(values, line, width, &plan, schema);
    let checked = in_parallel(rows, check);
    let mut keys: HashMap<String, usize> = HashMap::new();
    for outcome in checked {
        match outcome {
            Checked::Skipped => table.skipped += 1,
            Checked::Rejected(reject) => table.rejects.push(reject),
            Checked::Good { line, row, values } => match keys.get(&row.key) {
                Some(first) => table.rejects.push(Reject {
                    line,
                    values,
                    problems: vec![Problem {
                        item: "key".into(),
                        problem: format!(
                            "key {:?} is also on line {first}: keep one row per key",
                            row.key
                        ),
                    }],
                }),
                None => {
                    keys.insert(row.key.clone(), line);
                    table.rows.push(CheckedRow { line, row });
                }
            },
        }
    }
    Ok(table)
}

/// One row after its own checks, before the check of keys across rows.
enum Checked {
    /// Left out: the mapping skips it.
    Skipped,
    /// Refused, with every reason.
    Rejected(Reject),
    /// Good on its own; the file's values kept for the reject file should its key repeat.
    Good {
        line: usize,
        row: Row,
        values: Vec<String>,
    },
}

/// The checks of one row of `width` columns on `line`: its shape (spreadsheet padding
/// dropped), the mapping's skips and conversions, then the catalog's rules.
fn check_row(
    mut values: Vec<String>,
    line: usize,
    width: usize,
    plan: &Plan,
    schema: &RecordSchema,
) -> Checked {
    // Spreadsheet padding: cells past the header that are all empty.
    if values.len() > width && values[width..].iter().all(String::is_empty) {
        values.truncate(width);
    }
    if values.len() != width {
        let problem = format!(
            "has {} values for the header's {width} columns: check the row's commas and quotes",
            values.len()
        );
        // A short row is padded so the reject file's reasons line up; a long one keeps all.
        if values.len() < width {
            values.resize(width, String::new());
        }
        return Checked::Rejected(Reject {
            line,
            values,
            problems: vec![Problem {
                item: "-".into(),
                problem,
            }],
        });
    }
    if plan.skips(&values) {
        return Checked::Skipped;
    }
    let (record, mut problems) = plan.record(&values);
    match schema.row(line, plan.columns(), record) {
        Ok(row) if problems.is_empty() => return Checked::Good { line, row, values },
        Ok(_) => {}
        Err(errors) => {
            // A value the mapping could not convert is reported once, as the mapping saw it.
            let errors: Vec<Problem> = errors
                .into_iter()
                .filter(|e| !problems.iter().any(|p| p.item == e.item))
                .map(|e| Problem {
                    item: e.item,
                    problem: e.problem,
                })
                .collect();
            problems.extend(errors);
        }
    }
    problems.sort_by_key(|p| plan.order(&p.item));
    Checked::Rejected(Reject {
        line,
        values,
        problems,
    })
}

/// `f` applied to every item, in order, in as many chunks as the machine has cores (one for a
/// small input).
fn in_parallel<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    /// Items below which one thread is quicker than starting more.
    const PER_THREAD: usize = 10_000;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len().div_ceil(PER_THREAD))
        .max(1);
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut chunks = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    for _ in 0..threads {
        chunks.push(items.by_ref().take(chunk).collect::<Vec<T>>());
    }
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<U>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a row check does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests;
