//! Reading records from JSON objects and CSV files into columns and rows, remembering the line
//! each record came from so errors point into the file.

use std::collections::HashMap;
use std::path::Path;

use super::CliError;

/// Records read from a file or arguments.
#[derive(Debug, Default, PartialEq)]
pub struct Table {
    /// Column headers: item codes or names.
    pub columns: Vec<String>,
    /// One row of values per record, aligned with `columns`.
    pub rows: Vec<Vec<String>>,
    /// Line (or argument position) of each record, from 1.
    pub lines: Vec<usize>,
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

/// Reads JSON objects, one per (line number, text); blank lines are skipped.
pub fn from_json_lines<'a>(
    source: &str,
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Table, CliError> {
    let mut table = Table::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let bad = |why: String| CliError::Input(format!("{source}:{line}: {why}"));
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
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

/// Reads a file: CSV with a header row when it ends in `.csv`, JSON lines otherwise.
pub fn read_file(path: &Path) -> Result<Table, CliError> {
    let source = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        return from_json_lines(&source, text.lines().enumerate().map(|(n, l)| (n + 1, l)));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let bad = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        CliError::Input(format!("{source}:{line}: {e}"))
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut table = Table {
        columns,
        ..Default::default()
    };
    for record in reader.records() {
        let record = record.map_err(bad)?;
        table
            .lines
            .push(record.position().map(|p| p.line() as usize).unwrap_or(0));
        table.rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(table)
}

#[cfg(test)]
mod tests;
