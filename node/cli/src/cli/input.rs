//! Reading the records a command writes: JSON objects from arguments or stdin, and files to import
//! through [`tierlink_core::import`].

use std::path::{Path, PathBuf};

use tierlink_core::catalog::RecordSchema;
use tierlink_core::import::{self, Encoding, Format, Imported, Mapping, Options, Table};

use super::CliError;

/// Reads JSON objects, one per (line or argument number, text), from `source`.
pub fn from_json_lines<'a>(
    source: &str,
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Table, CliError> {
    import::json_lines(lines).map_err(|e| CliError::Input(format!("{source}: {e}")))
}

/// Reads and checks a file to import: CSV when its name ends in `.csv`, JSON lines otherwise;
/// `mapping` is a mapping file's path.
pub fn import_file(
    path: &Path,
    encoding: Option<Encoding>,
    mapping: Option<&Path>,
    schema: &RecordSchema,
) -> Result<Imported, CliError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
    };
    let mapping = match mapping {
        Some(m) => {
            let text = String::from_utf8(read(m)?).map_err(|_| {
                CliError::Input(format!("{}: a mapping file is UTF-8 text", m.display()))
            })?;
            Some(
                Mapping::parse(&text)
                    .map_err(|e| CliError::Input(format!("{}: {e}", m.display())))?,
            )
        }
        None => None,
    };
    let options = Options {
        format: Format::from_file_name(&path.to_string_lossy()),
        encoding,
    };
    import::import(&read(path)?, &options, mapping.as_ref(), schema)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// Where the reject file of `file` goes by default: `FILE.rejects.csv` beside it (or
/// `.rejects.jsonl` for JSON lines).
pub fn default_rejects(file: &Path, format: Format) -> PathBuf {
    let ext = match format {
        Format::Csv => "rejects.csv",
        Format::JsonLines => "rejects.jsonl",
    };
    let mut name = file.file_stem().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(ext);
    file.with_file_name(name)
}

#[cfg(test)]
mod tests;
