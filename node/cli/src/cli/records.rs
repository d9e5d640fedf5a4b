//! `tierlink records put|import|query|follow|history` and `tierlink verify`.
//!
//! Every batch a read receives is sealed to this node: the CLI opens it with the node's
//! encryption keys. A file written with `--out` keeps the batches sealed; `tierlink verify`
//! checks it with the CA certificate alone, and opens it with `--open` and the node it is sealed
//! to.

mod follow;

use std::io::{BufRead, IsTerminal, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use tierlink_client::{Batching, ClientError, MAX_MESSAGE_BYTES, NodeClient, WriteError, Written};
use tierlink_core::catalog::{RecordSchema, parse_catalogs};
use tierlink_core::config::NodeDir;
use tierlink_core::identity::TrustedCa;
use tierlink_core::import::{Encoding, Table};
use tierlink_core::limits::human_bytes;
use tierlink_core::read::Read;
use tierlink_core::signed::file::{BatchWriter, open_file, verify_file};
use tierlink_core::signed::{BatchOpener, BatchVerifier, StreamSummary, VerifiedBatch};
use tierlink_proto::v1::{FieldEquals, HistoryRequest, QueryRequest, ReadScope};

use super::input::{default_rejects, from_json_lines, import_file};
use super::{ActAs, CliError, NodeArg, Route, catalog::target, parse_since};

/// `tierlink records …`
#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Write records given as JSON objects (arguments, or one per line on stdin), all or none.
    Put {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog to write to.
        #[arg(long)]
        catalog: String,
        /// Records as JSON objects keyed by item code; read from stdin when none are given.
        records: Vec<String>,
    },
    /// Import a CSV (header row of item codes or names, or a mapping) or JSON-lines file. The
    /// whole file is checked first; bad rows go to a reject file and nothing is written unless
    /// --skip-bad. Then it is written in batches, each all or none, as an upsert by key: a record
    /// equal to its stored version stores nothing, so running an import again resumes it.
    Import {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog to write to.
        #[arg(long)]
        catalog: String,
        /// File to import: .csv, or JSON lines (.jsonl, .json, .ndjson).
        file: PathBuf,
        /// How the file is read, checked and written.
        #[command(flatten)]
        how: ImportArgs,
    },
    /// Query records; every batch is verified. Prints JSON lines, or writes signed batches to --out.
    Query {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
        /// Catalog to read.
        #[arg(long)]
        catalog: String,
        /// Smallest primary key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Primary key to stop before (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Condition ITEM=VALUE; repeat for several (all must hold).
        #[arg(long = "where", value_parser = parse_condition)]
        conditions: Vec<(String, String)>,
        /// Only records written at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Records per signed batch [default: the producer's, 1,000].
        #[arg(long)]
        batch_size: Option<u32>,
        /// Write the signed batches, sealed to this node, to FILE (check them later with
        /// `tierlink verify --ca CA FILE`; read them with `tierlink verify --open --node DIR FILE`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Who asks.
        #[command(flatten)]
        act_as: ActAs,
    },
    /// Follow a catalog's change feed: every new version the principal may see, printed as JSON
    /// lines as it is written, each batch verified; resumable with --resume-file.
    Follow(follow::FollowArgs),
    /// Every stored version of one record.
    History {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
        /// Catalog of the record.
        #[arg(long)]
        catalog: String,
        /// Primary key of the record.
        #[arg(long)]
        key: String,
        /// Write the signed batches to FILE.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Who asks.
        #[command(flatten)]
        act_as: ActAs,
    },
}

fn parse_condition(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("write a condition as ITEM=VALUE, e.g. sex=2 (got {s:?})"))
}

/// `tierlink verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// File written by `records query --out` or `records history --out`.
    pub file: PathBuf,
    /// Federation CA certificate [default: the node's, with --node].
    #[arg(long, required_unless_present = "node")]
    pub ca: Option<PathBuf>,
    /// Node directory whose CA certificate to use (and, with --open, whose keys open the file).
    #[arg(long, env = "TIERLINK_NODE")]
    pub node: Option<PathBuf>,
    /// Also open the records with the node's encryption keys (the node the file is sealed to)
    /// and print them as JSON lines.
    #[arg(long, requires = "node")]
    pub open: bool,
}

pub async fn run(command: RecordsCommand) -> Result<(), CliError> {
    match command {
        RecordsCommand::Put {
            node,
            catalog,
            records,
        } => {
            let table = if records.is_empty() {
                let lines: Vec<String> = std::io::stdin()
                    .lock()
                    .lines()
                    .collect::<Result<_, _>>()
                    .map_err(|e| CliError::Input(format!("stdin: {e}")))?;
                from_json_lines(
                    "stdin",
                    lines.iter().enumerate().map(|(n, l)| (n + 1, l.as_str())),
                )?
            } else {
                from_json_lines(
                    "argument",
                    records.iter().enumerate().map(|(n, r)| (n + 1, r.as_str())),
                )?
            };
            put(&node.node, &catalog, table).await
        }
        RecordsCommand::Import {
            node,
            catalog,
            file,
            how,
        } => {
            if how.batch_size == Some(0) {
                return Err(CliError::Input("--batch-size must be at least 1".into()));
            }
            import(&node.node, &catalog, &file, how).await
        }
        RecordsCommand::Query {
            node,
            route,
            catalog,
            from,
            to,
            conditions,
            since,
            limit,
            batch_size,
            out,
            act_as,
        } => {
            let request = QueryRequest {
                scope: Some(scope(catalog, &route, &act_as)?),
                key_from: from.unwrap_or_default(),
                key_to: to.unwrap_or_default(),
                r#where: conditions
                    .into_iter()
                    .map(|(item, value)| FieldEquals { item, value })
                    .collect(),
                updated_since_micros: since.unwrap_or(0),
                batch_size: batch_size.unwrap_or(0),
                limit: limit.unwrap_or(0),
            };
            let client = NodeClient::open(NodeDir::load(&node.node)?)?;
            read(&client, &route, out.as_deref(), request.into()).await
        }
        RecordsCommand::History {
            node,
            route,
            catalog,
            key,
            out,
            act_as,
        } => {
            let request = HistoryRequest {
                scope: Some(scope(catalog, &route, &act_as)?),
                key,
            };
            let client = NodeClient::open(NodeDir::load(&node.node)?)?;
            read(&client, &route, out.as_deref(), request.into()).await
        }
        RecordsCommand::Follow(args) => follow::run(args).await,
    }
}

/// How a command writes: `records put` all or none in one request, `records import` in batches
/// of a record count the user gave, or else cut by size.
#[derive(Clone, Copy)]
enum Writing {
    Put,
    Import(Option<usize>),
}

/// How `records import` reads, checks and writes.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Mapping file (TOML, schema/mapping.schema.json): columns to items, date formats, code
    /// translations, defaults, rows to skip.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// The file's encoding: utf-8, gb18030 or gbk [default: UTF-8, or GB18030 when the file
    /// is not UTF-8].
    #[arg(long)]
    encoding: Option<Encoding>,
    /// Check the whole file and report every bad row with its line and reasons; store
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the rejected rows go, with their reasons, ready to correct and import again
    /// [default: FILE.rejects.csv beside FILE].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Write the good rows even when some are rejected (those are only in the reject file).
    #[arg(long)]
    skip_bad: bool,
    /// Records per batch, each written all or none; every batch of this many must fit in a
    /// 64 MiB message [default: up to 5,000 records and 4 MiB a batch].
    #[arg(long)]
    batch_size: Option<usize>,
}

/// `n` and the noun that fits it: `1 record is`, `2 records are`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The node's client and the catalog's record checks.
async fn open(node: &Path, catalog: &str) -> Result<(NodeClient, RecordSchema), CliError> {
    let client = NodeClient::open(NodeDir::load(node)?)?;
    let entry = parse_catalogs(&client.get_catalog(None, "", catalog).await?, "node")?.remove(0);
    let schema = RecordSchema::new(&entry)?;
    Ok((client, schema))
}

/// Reports of bad rows shown before "… and N more" when they are not all asked for.
const SHOWN: usize = 20;

/// Reads and checks a whole file, writes the reject file when rows are bad, then (unless a dry
/// run, or rows are bad without --skip-bad) writes the good rows in batches.
async fn import(node: &Path, catalog: &str, file: &Path, how: ImportArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let (client, schema) = open(node, catalog).await?;
    let imported = import_file(file, how.encoding, how.mapping.as_deref(), &schema)?;
    let source = file.display().to_string();
    let rejected = imported.rejects.len();
    // The bad rows, one line a reason (every one in a dry run), and where the reject file is.
    let mut report = String::new();
    if rejected > 0 {
        let path = how
            .rejects
            .unwrap_or_else(|| default_rejects(file, imported.format));
        std::fs::write(&path, imported.reject_file())
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let lines: Vec<String> = imported.rejects.iter().flat_map(|r| r.lines()).collect();
        let shown = if how.dry_run { lines.len() } else { SHOWN };
        for line in lines.iter().take(shown) {
            report.push_str(&format!("\n  {line}"));
        }
        if lines.len() > shown {
            report.push_str(&format!("\n  … and {} more", lines.len() - shown));
        }
        report.push_str(&format!(
            "\n{rejected} of {} records rejected; they are in {} with their reasons: correct them there and import that file",
            imported.read(),
            path.display()
        ));
    }
    let counts = format!(
        "read {}, rejected {rejected}, skipped {}",
        imported.read(),
        imported.skipped
    );
    if how.dry_run {
        let summary = format!(
            "dry run of {source} ({}): {counts}, {} to write; nothing was stored",
            imported.encoding,
            imported.rows.len()
        );
        if rejected > 0 {
            return Err(CliError::Input(format!("{summary}{report}")));
        }
        println!("{summary}");
        return Ok(());
    }
    if rejected > 0 && !how.skip_bad {
        return Err(CliError::Input(format!(
            "{source}: nothing was written: {} rejected; correct them and import again, or pass --skip-bad to write the {}{report}",
            count(rejected, "record is", "records are"),
            count(imported.rows.len(), "good record", "good records")
        )));
    }
    if rejected > 0 {
        eprintln!("{source}: writing the good records only (--skip-bad):{report}");
    }
    let lines: Vec<usize> = imported.rows.iter().map(|r| r.line).collect();
    let rows = imported.rows.into_iter().map(|r| r.row.values).collect();
    let writing = Writing::Import(how.batch_size);
    let written = send(
        &client,
        catalog,
        imported.items,
        rows,
        &lines,
        writing,
        &source,
    )
    .await?;
    println!(
        "{}; {counts}, in {:.1} s",
        describe_written(&client, catalog, &written),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `wrote N records to CATALOG on NODE (a new, b updated, c unchanged)`
fn describe_written(client: &NodeClient, catalog: &str, written: &Written) -> String {
    format!(
        "wrote {} records to {catalog} on {} ({} new, {} updated, {} unchanged)",
        written.records,
        client.code(),
        written.created,
        written.updated,
        written.unchanged
    )
}

/// Checks every record locally against the catalog, then writes them all or none.
async fn put(node: &Path, catalog: &str, table: Table) -> Result<(), CliError> {
    let source = "record";
    let (client, schema) = open(node, catalog).await?;
    let columns = schema
        .columns(&table.columns)
        .map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let lines = table.lines;
    let checked = schema.rows(&columns, table.rows).map_err(|errors| {
        let mut text = format!(
            "{source}: nothing was written; problems found: {}",
            errors.len()
        );
        for e in errors.iter().take(SHOWN) {
            let line = lines.get(e.record - 1).copied().unwrap_or(e.record);
            let key = e
                .key
                .as_ref()
                .map(|k| format!(" (key {k:?})"))
                .unwrap_or_default();
            text.push_str(&format!("\n  line {line}{key}: {}: {}", e.item, e.problem));
        }
        if errors.len() > SHOWN {
            text.push_str(&format!("\n  … and {} more", errors.len() - SHOWN));
        }
        CliError::Input(text)
    })?;
    let item_codes: Vec<String> = schema.items().map(|(code, _)| code.to_owned()).collect();
    let rows = checked.into_iter().map(|row| row.values).collect();
    let written = send(
        &client,
        catalog,
        item_codes,
        rows,
        &lines,
        Writing::Put,
        source,
    )
    .await?;
    println!("{}", describe_written(&client, catalog, &written));
    Ok(())
}

/// Writes checked rows (every item, in catalog order, values normalised, rather than the file's
/// columns: the node checks them again, against the same catalog) as `writing` says; `lines`
/// holds each row's line in the source. Progress shows as a bar on a terminal, else as a line a
/// batch when there are several.
async fn send(
    client: &NodeClient,
    catalog: &str,
    items: Vec<String>,
    rows: Vec<Vec<String>>,
    lines: &[usize],
    writing: Writing,
    source: &str,
) -> Result<Written, CliError> {
    let total = rows.len();
    let batching = match writing {
        Writing::Put => Batching::Exactly(usize::MAX),
        Writing::Import(None) => Batching::default(),
        Writing::Import(Some(n)) => Batching::Exactly(n),
    };
    let bar =
        (matches!(writing, Writing::Import(_)) && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} records written, {per_sec}, {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
    let mut batches = 0;
    let progress = |written| {
        batches += 1;
        match &bar {
            Some(bar) => bar.set_position(written as u64),
            None if batches > 1 || written < total => {
                eprintln!("  {written}/{total} records written")
            }
            None => {}
        }
    };
    let written = client
        .write_records(catalog, items, rows, batching, progress)
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    written.map_err(|e| CliError::Input(write_failure(source, lines, writing, e)))
}

/// What a failed write did and did not store, and what to do next. `lines` holds each record's
/// line (or argument) in the source.
fn write_failure(source: &str, lines: &[usize], writing: Writing, e: WriteError) -> String {
    let span = |r: &Range<usize>| {
        let (first, last) = (lines[r.start], lines[r.end - 1]);
        if r.len() == 1 {
            format!("record {} (line {first})", r.start + 1)
        } else {
            format!("records {}–{} (lines {first}–{last})", r.start + 1, r.end)
        }
    };
    let limit = human_bytes(MAX_MESSAGE_BYTES as u64);
    match (e, writing) {
        (WriteError::Oversized(o), Writing::Put) => format!(
            "{source}: nothing was written: the {} records take {} together, over the {limit} a message may carry, and `records put` writes all or none in one message: import them from a file with `tierlink records import`, which writes in batches",
            o.records.len(),
            human_bytes(o.bytes as u64)
        ),
        (WriteError::Oversized(o), _) if o.fits > 0 => format!(
            "{source}: nothing was written: a batch of {} takes {}, over the {limit} a message may carry: use --batch-size {} or less, or leave --batch-size out to cut batches by size",
            span(&o.records),
            human_bytes(o.bytes as u64),
            o.fits
        ),
        (WriteError::Oversized(o), _) => format!("{source}: nothing was written: {o}"),
        (
            WriteError::Stopped {
                maybe_stored,
                source: error,
                ..
            },
            Writing::Put,
        ) => {
            if maybe_stored {
                format!(
                    "{source}: writing failed before the node answered, so the records may or may not be stored: {error}"
                )
            } else {
                format!("{source}: nothing was written: {error}")
            }
        }
        (
            WriteError::Stopped {
                written,
                failed,
                maybe_stored,
                source: error,
            },
            Writing::Import(_),
        ) => {
            let mut text = format!("{source}: writing {} failed: {error}", span(&failed));
            text.push_str(if maybe_stored {
                "\n  the node may have stored some or all of them"
            } else {
                "\n  none of them is stored"
            });
            if written.records == 0 {
                text.push_str("; nothing before them was written");
            } else {
                let verb = if written.records == 1 { "is" } else { "are" };
                text.push_str(&format!("; {} {verb} stored", span(&(0..written.records))));
            }
            text.push_str(&format!(
                "\n  resume by importing the same file again: a record already stored as it is stores no new version (the failed batch starts on line {})",
                lines[failed.start]
            ));
            text
        }
    }
}

/// What every read names: the catalog, the target of `route`, and the principal acted as.
pub(super) fn scope(catalog: String, route: &Route, act_as: &ActAs) -> Result<ReadScope, CliError> {
    Ok(ReadScope {
        catalog,
        target: target(route),
        credential: act_as.credential()?,
        ..Default::default()
    })
}

/// Where received batches go: records printed as JSON lines, or signed batches to a file.
enum Sink {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(BatchWriter),
}

impl Sink {
    fn take(
        &mut self,
        batch: &tierlink_proto::v1::SignedBatch,
        verified: &VerifiedBatch,
    ) -> Result<(), ClientError> {
        match self {
            Sink::Stdout(out) => {
                print_records(out, verified).map_err(|e| ClientError::Io(format!("stdout: {e}")))
            }
            Sink::File(writer) => writer
                .write(batch)
                .map_err(|e| ClientError::Io(e.to_string())),
        }
    }
}

/// Runs a read, verifying every batch, into stdout or `out`.
async fn read(
    client: &NodeClient,
    route: &Route,
    out: Option<&Path>,
    read: Read,
) -> Result<(), CliError> {
    let mut sink = match out {
        Some(path) => Sink::File(BatchWriter::create(path)?),
        None => Sink::Stdout(std::io::BufWriter::new(std::io::stdout())),
    };
    let on_batch = |batch, verified: VerifiedBatch| sink.take(&batch, &verified);
    let summary = client.read(route.via.as_ref(), read, on_batch).await?;
    if let Sink::File(writer) = sink {
        writer.finish()?;
    }
    eprintln!("{}", describe(&summary, route));
    if let Some(path) = out {
        eprintln!(
            "signed batches, sealed to {}, written to {} (check them anywhere with `tierlink verify --ca ca.crt {}`; only that node's directory opens them, with `tierlink verify --open --node DIR`)",
            summary.sealed_to,
            path.display(),
            path.display()
        );
    }
    Ok(())
}

fn print_records(out: &mut impl Write, batch: &VerifiedBatch) -> std::io::Result<()> {
    for object in batch.json_records() {
        writeln!(out, "{}", serde_json::Value::Object(object))?;
    }
    out.flush()
}

/// One line saying what was received and that it verified.
pub fn describe(s: &StreamSummary, route: &Route) -> String {
    let path = match &route.via {
        Some(via) => format!(" through {via}"),
        None => String::new(),
    };
    let mut text = format!(
        "verified: {} records of {} in {} batches, signed by {}{path} (served to {}, request {})",
        s.records, s.catalog, s.batches, s.producer, s.consumer, s.request_id
    );
    if !s.principal.is_empty() {
        text.push_str(&format!("; for {} under grant {}", s.principal, s.grant));
    }
    if !s.redacted.is_empty() {
        text.push_str(&format!("; redacted: {}", s.redacted.join(", ")));
    }
    if !s.withheld.is_empty() {
        text.push_str(&format!("; withheld: {}", s.withheld.join(", ")));
    }
    text
}

pub fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let ca_path = match (&args.ca, &args.node) {
        (Some(ca), _) => ca.clone(),
        (None, Some(node)) => {
            let dir = NodeDir::load(node)?;
            dir.path(&dir.config.files.ca)
        }
        (None, None) => return Err(CliError::Input("give --ca CA.crt or --node DIR".into())),
    };
    let pem = std::fs::read_to_string(&ca_path)
        .map_err(|e| CliError::Input(format!("{}: {e}", ca_path.display())))?;
    let verifier = BatchVerifier::new(TrustedCa::from_pem(&pem)?);
    let summary = match (&args.node, args.open) {
        (Some(node), true) => {
            let dir = NodeDir::load(node)?;
            let opener = BatchOpener::new(dir.code().clone(), dir.encryption_keys()?);
            let mut out = std::io::BufWriter::new(std::io::stdout());
            open_file(&args.file, &verifier, &opener, |batch| {
                print_records(&mut out, &batch).map_err(|e| format!("stdout: {e}"))
            })?
        }
        _ => verify_file(&args.file, &verifier)?,
    };
    let opened = if args.open { "; opened" } else { "" };
    eprintln!(
        "{}: OK — {} records of {} in {} batches, signed by {} for {} (request {}), sealed to {}{opened}, checked against {}",
        args.file.display(),
        summary.records,
        summary.catalog,
        summary.batches,
        summary.producer,
        summary.consumer,
        summary.request_id,
        summary.sealed_to,
        ca_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;
