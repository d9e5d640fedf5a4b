//! Text to a [`Table`]: CSV or JSON lines, each record with the physical line it starts on.
//!
//! Lines are numbered as a text editor numbers them: a line ends at LF, CRLF or a lone CR, and
//! blank lines count. The csv crate's own line numbers count CRLF as two line ends for some
//! records and skip blank lines (BurntSushi/rust-csv#395, #208), but its byte offsets are right:
//! a record's line is found from the offset where it starts.

use std::collections::HashMap;

use super::ImportError;

/// Records read from a file or arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headers: item codes or names, or the file's own names for a mapping to translate.
    pub columns: Vec<String>,
    /// One row of values per record, aligned with `columns` (CSV rows may be longer or shorter;
    /// the check refuses those).
    pub rows: Vec<Vec<String>>,
    /// The line (or argument position) where each record starts, from 1.
    pub lines: Vec<usize>,
}

/// Start offsets of the lines of a text.
pub(super) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(super) fn new(text: &[u8]) -> Self {
        let mut starts = vec![0];
        for (n, &b) in text.iter().enumerate() {
            let end = b == b'\n' || (b == b'\r' && text.get(n + 1) != Some(&b'\n'));
            if end {
                starts.push(n + 1);
            }
        }
        Self { starts }
    }

    /// The line, from 1, holding the byte at `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

/// The line, from 1, holding the byte at `offset` of `text`.
pub(super) fn line_of(text: &[u8], offset: usize) -> usize {
    Lines::new(&text[..offset.min(text.len())]).starts.len()
}

/// The lines of `text` with their numbers from 1, without their line ends.
pub(super) fn physical_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let starts = Lines::new(text.as_bytes()).starts;
    let ends: Vec<usize> = starts.iter().skip(1).copied().chain([text.len()]).collect();
    starts
        .into_iter()
        .zip(ends)
        .enumerate()
        .map(|(n, (start, end))| (n + 1, text[start..end].trim_end_matches(['\r', '\n'])))
}

/// A parsed file and what the import left out of its table.
pub(super) struct Parsed {
    pub(super) table: Table,
    /// Text before the header row (title rows), verbatim.
    pub(super) prelude: String,
    /// Text of the footer rows, verbatim.
    pub(super) footer: String,
    /// All-empty rows dropped (spreadsheet padding).
    pub(super) empty_rows: usize,
}

impl From<Table> for Parsed {
    fn from(table: Table) -> Self {
        Parsed {
            table,
            prelude: String::new(),
            footer: String::new(),
            empty_rows: 0,
        }
    }
}

/// Parses CSV text (no byte order mark): `title_rows` rows before the header and `footer_rows`
/// rows at the end are left out, all-empty rows are dropped, header cells are trimmed and empty
/// trailing header cells dropped. A file with no header row gives a table with no columns.
pub(super) fn csv(
    text: &str,
    title_rows: usize,
    footer_rows: usize,
) -> Result<Parsed, ImportError> {
    let lines = Lines::new(text.as_bytes());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    // Where each kept record starts, and its cells.
    let mut records: Vec<(usize, Vec<String>)> = Vec::new();
    let mut empty_rows = 0;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let at = e.position().map_or(0, |p| p.byte() as usize);
                return Err(ImportError::Csv {
                    line: lines.line(at),
                    problem: e.to_string(),
                });
            }
        }
        if record.iter().all(|cell| cell.trim().is_empty()) {
            empty_rows += 1;
            continue;
        }
        let at = record.position().map_or(0, |p| p.byte() as usize);
        // A record starts at its first character; skip line ends before it.
        let skipped = text.as_bytes()[at..]
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        records.push((at + skipped, record.iter().map(str::to_owned).collect()));
    }
    let mut prelude = String::new();
    let mut footer = String::new();
    let mut table = Table::default();
    let mut records = records.into_iter();
    if let Some((start, header)) = records.nth(title_rows) {
        prelude = text[..start].to_owned();
        table.columns = header.iter().map(|h| h.trim().to_owned()).collect();
        while table.columns.last().is_some_and(String::is_empty) {
            table.columns.pop();
        }
        let mut data: Vec<(usize, Vec<String>)> = records.collect();
        let kept = data.len().saturating_sub(footer_rows);
        if let Some((start, _)) = data.get(kept) {
            footer = text[*start..].to_owned();
        }
        data.truncate(kept);
        table.lines = data.iter().map(|(start, _)| lines.line(*start)).collect();
        table.rows = data.into_iter().map(|(_, cells)| cells).collect();
    }
    Ok(Parsed {
        table,
        prelude,
        footer,
        empty_rows,
    })
}

fn json_text(value: &serde_json::Value) -> Result<String, String> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "values must be strings, numbers, booleans or null, not {other}"
        )),
    }
}

/// Reads JSON objects (RFC 8259), one per (line number, text); blank lines are skipped. Columns
/// are the keys in the order first seen; a record lacking a key has "" there.
pub fn json_lines<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Result<Table, ImportError> {
    json_objects(
        lines
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(line, text)| {
                serde_json::from_str(text)
                    .map(|object| (line, object))
                    .map_err(|e| ImportError::Json {
                        line,
                        problem: format!("not a JSON object: {e}"),
                    })
            }),
    )
}

/// Records from JSON objects, each with its line (or position in a request, from 1): columns are
/// the keys in the order first seen, a record lacking a key has "" there; values are strings,
/// numbers, booleans (as written) or null (""). The first error stops the reading.
pub fn json_objects(
    objects: impl Iterator<
        Item = Result<(usize, serde_json::Map<String, serde_json::Value>), ImportError>,
    >,
) -> Result<Table, ImportError> {
    let mut table = Table::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    for object in objects {
        let (line, object) = object?;
        let bad = |problem: String| ImportError::Json { line, problem };
        let mut row = vec![String::new(); table.columns.len()];
        for (key, value) in &object {
            let n = *index.entry(key.clone()).or_insert_with(|| {
                table.columns.push(key.clone());
                table.rows.iter_mut().for_each(|r| r.push(String::new()));
                row.push(String::new());
                table.columns.len() - 1
            });
            row[n] = json_text(value).map_err(|e| bad(format!("{key}: {e}")))?;
        }
        table.rows.push(row);
        table.lines.push(line);
    }
    Ok(table)
}
