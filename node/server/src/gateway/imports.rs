//! Import upload: a whole export file posted as the body (`text/csv`, or JSON lines as
//! `application/x-ndjson`), read, mapped and checked by [`tierlink_core::import`] exactly as
//! `tierlink records import` reads a file, then written as one idempotent upsert by key: a record
//! equal to its stored version stores nothing, so posting the same file again after a failure
//! resumes it without a duplicate version.
//!
//! Options are query parameters: `dry_run` (check and report, store nothing), `encoding`
//! (`utf-8`, `gb18030`, `gbk`; else the Content-Type's charset, else detected), `mapping` (the
//! mapping file's TOML text, `schema/mapping.schema.json`) and `skip_bad` (write the good rows
//! when some are rejected). Rejected rows come back with their lines and reasons and as a reject
//! file to correct and post again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State as Shared};
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use tierlink_core::import::{self, Encoding, Format, Imported, Mapping, Options};
use tierlink_core::limits::{MAX_MESSAGE_CHARS, clip};
use tierlink_store::Write;
use utoipa::{IntoParams, ToSchema};

use super::State;
use super::auth::Bearer;
use super::problem::{Kind, LISTED, Problem, ProblemDocument, RecordProblem};
use super::records::{NDJSON, Written, catalog_code};

/// How to read and write an uploaded file.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Check the whole file and report every bad row; store nothing.
    pub dry_run: Option<bool>,
    /// The file's encoding: `utf-8`, `gb18030` or `gbk`; default the Content-Type's charset,
    /// else UTF-8, or GB18030 when the bytes are not UTF-8.
    pub encoding: Option<String>,
    /// The mapping file's TOML text: columns to items, date formats, code translations,
    /// defaults, rows to skip.
    pub mapping: Option<String>,
    /// Write the good rows even when some are rejected.
    pub skip_bad: Option<bool>,
}

/// One rejected row.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// The line it starts on, as a text editor numbers it (LF or CRLF alike).
    pub line: usize,
    /// Every reason, `ITEM: PROBLEM`.
    pub problems: Vec<String>,
}

/// What an import read, rejected and wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    /// The encoding the file was read as.
    pub encoding: String,
    /// `csv` or `json-lines`.
    pub format: String,
    /// Records read: good, rejected and skipped.
    pub read: usize,
    /// Records that passed every check.
    pub good: usize,
    /// Records left out on purpose: empty rows and rows the mapping skips.
    pub skipped: usize,
    /// Rows rejected: how many.
    pub rejected_count: usize,
    /// The first rows rejected (at most 1,000), with their reasons; the reject file holds
    /// every one.
    pub rejected: Vec<Rejected>,
    /// The reject file of the rows listed (the first 1,000): as the file had them plus a
    /// `_problems` column, ready to correct and post again (CSV with a byte order mark and
    /// CRLF, or JSON lines); absent when nothing was rejected. The command line's import
    /// writes the whole reject file of any size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_file: Option<String>,
    /// What was stored; absent in a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<Written>,
}

impl ImportReport {
    fn of(imported: &Imported) -> Self {
        let file = imported.reject_file_of(LISTED);
        Self {
            encoding: imported.encoding.to_string(),
            format: match imported.format {
                Format::Csv => "csv",
                Format::JsonLines => "json-lines",
            }
            .to_owned(),
            read: imported.read(),
            good: imported.rows.len(),
            skipped: imported.skipped,
            rejected_count: imported.rejects.len(),
            rejected: imported
                .rejects
                .iter()
                .take(LISTED)
                .map(|r| Rejected {
                    line: r.line,
                    problems: r.problems.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            reject_file: (!file.is_empty()).then(|| String::from_utf8_lossy(&file).into_owned()),
            written: None,
        }
    }
}

/// The format and the charset the Content-Type names.
fn content(headers: &HeaderMap) -> Result<(Format, Option<String>), Problem> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default().to_ascii_lowercase();
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim_matches('"').to_owned());
    let format = match media.as_str() {
        "text/csv" => Format::Csv,
        NDJSON | "application/jsonl" | "application/json-lines" => Format::JsonLines,
        _ => {
            return Err(Problem::new(
                Kind::UnsupportedMediaType,
                format!(
                    "post the file as text/csv or {NDJSON} (JSON lines), not {value:?}; name a charset (e.g. text/csv; charset=gb18030) or give encoding"
                ),
            ));
        }
    };
    Ok((format, charset))
}

/// An import's message, whose remedies name the command line's options, with this operation's
/// parameters instead.
fn over_http(message: &str) -> String {
    message
        .replace(
            "pass --encoding gb18030",
            "pass encoding=gb18030 (or charset=gb18030 in the Content-Type)",
        )
        .replace(
            "leave out --encoding",
            "leave out encoding and the Content-Type's charset",
        )
}

/// Import a CSV or JSON-lines file into a catalog.
#[utoipa::path(
    post,
    path = "/v1/catalogs/{prefix}/{number}/imports",
    tag = "records",
    params(
        ("prefix" = String, Path, description = "The resource code before the slash."),
        ("number" = String, Path, description = "The resource code after the slash."),
        ImportParams,
    ),
    request_body(
        description = "The export file: CSV with a header row (UTF-8 with or without BOM, GB18030 or GBK; LF or CRLF), or JSON lines.",
        content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "Read and checked; written unless a dry run (the good rows only when skip_bad).", body = ImportReport),
        (status = 400, description = "The file cannot be read (encoding, JSON, header, mapping) or a bad option.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not write this catalog: a read token, or a write token naming other catalogs.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such catalog here.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 408, description = "The file paused longer than the node waits.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than the node takes in one request.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not posted as text/csv or application/x-ndjson.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Rows were rejected and skip_bad was not given: nothing was stored. `errors` lists them by line; `reject_file` holds them to correct.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address, or too many files being checked at once (Retry-After says when to post again).", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn upload(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path(code): Path<(String, String)>,
    params: Result<Query<ImportParams>, QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<Json<ImportReport>, Problem> {
    let catalog = catalog_code(&code);
    let writer = bearer.writer(&state, &catalog).await?;
    // A dry run writes nothing, so its refusals are not refused writes.
    let dry_run = params
        .as_ref()
        .is_ok_and(|Query(p)| p.dry_run.unwrap_or(false));
    let sent = async {
        let Query(params) = params?;
        let (format, charset) = content(&headers)?;
        let bad = |e: String| Problem::new(Kind::InvalidArgument, e);
        let encoding = params
            .encoding
            .or(charset)
            .map(|e| e.parse::<Encoding>())
            .transpose()
            .map_err(bad)?;
        let mapping = params
            .mapping
            .as_deref()
            .map(Mapping::parse)
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        let place = state.write_place()?;
        let all_or_none = !dry_run && !params.skip_bad.unwrap_or(false);
        let file = (format, encoding);
        let checked = check(&state, request, &catalog, file, mapping, all_or_none).await?;
        Ok((place, checked))
    };
    let (_place, (imported, mut report)) = match sent.await {
        Ok(sent) => sent,
        Err(problem) if dry_run => return Err(problem),
        Err(problem) => return Err(state.refused_write(&writer, &catalog, problem).await),
    };
    if dry_run {
        return Ok(Json(report));
    }
    if !imported.rows.is_empty() {
        let rows = imported.rows.into_iter().map(|r| r.row.values).collect();
        let written = state
            .exchange
            .write_records(&writer, catalog, imported.items, rows, Write::default())
            .await?;
        report.written = Some(written.into());
    }
    Ok(Json(report))
}

/// Reads the uploaded file of `request` in `format` and `encoding` and checks it against
/// `catalog`: the file and its report, or the problem that refuses it (unreadable, or, when
/// `all_or_none`, rows rejected).
async fn check(
    state: &State,
    request: Request,
    catalog: &str,
    (format, encoding): (Format, Option<Encoding>),
    mapping: Option<Mapping>,
    all_or_none: bool,
) -> Result<(Imported, ImportReport), Problem> {
    let bytes = Bytes::from_request(request, state).await?;
    let entry = state.registry.entry(catalog)?;
    let imported = tokio::task::spawn_blocking(move || {
        import::import(
            &bytes,
            &Options { format, encoding },
            mapping.as_ref(),
            &entry.schema,
        )
    })
    .await
    .map_err(|e| Problem::new(Kind::Internal, e.to_string()))?
    .map_err(|e| Problem::new(Kind::UnreadableFile, over_http(&e.to_string())))?;
    let mut report = ImportReport::of(&imported);
    if all_or_none && !imported.rejects.is_empty() {
        let listed = if imported.rejects.len() > LISTED {
            format!(" (errors lists the first {LISTED} rows)")
        } else {
            String::new()
        };
        let detail = format!(
            "nothing was stored: {} of {} records are rejected{listed}; correct them (reject_file holds those listed, with their reasons) and post the file again, or pass skip_bad=true to write the {} good records",
            imported.rejects.len(),
            imported.read(),
            imported.rows.len()
        );
        let errors = imported
            .rejects
            .iter()
            .take(LISTED)
            .flat_map(|r| {
                r.problems.iter().map(|p| RecordProblem {
                    record: None,
                    line: Some(r.line),
                    key: None,
                    item: p.item.clone(),
                    problem: clip(&p.problem, MAX_MESSAGE_CHARS).into_owned(),
                })
            })
            .collect();
        return Err(Problem::new(Kind::InvalidRecords, detail)
            .with_errors(errors)
            .with_reject_file(report.reject_file.take().unwrap_or_default()));
    }
    Ok((imported, report))
}
