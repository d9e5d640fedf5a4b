//! `tierlink records put|import|query|history` and `tierlink verify`.
//!
//! Every batch a read receives is sealed to this node: the CLI opens it with the node's
//! encryption keys. A file written with `--out` keeps the batches sealed; `tierlink verify`
//! checks it with the CA certificate alone, and opens it with `--open` and the node it is sealed
//! to.

use std::io::{BufRead, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tierlink_client::{Batching, ClientError, MAX_MESSAGE_BYTES, NodeClient, WriteError};
use tierlink_core::catalog::{RecordSchema, parse_catalogs};
use tierlink_core::config::NodeDir;
use tierlink_core::identity::TrustedCa;
use tierlink_core::limits::human_bytes;
use tierlink_core::read::Read;
use tierlink_core::signed::file::{BatchWriter, open_file, verify_file};
use tierlink_core::signed::{BatchOpener, BatchVerifier, StreamSummary, VerifiedBatch};
use tierlink_proto::v1::{FieldEquals, HistoryRequest, QueryRequest, ReadScope};

use super::input::{Table, from_json_lines, read_file};
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
    /// Import a JSON-lines or CSV file (header row of item codes or names). The whole file is
    /// checked first; then it is written in batches, each all or none.
    Import {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog to write to.
        #[arg(long)]
        catalog: String,
        /// File to import: .csv, or JSON lines (.jsonl, .json, .ndjson).
        file: PathBuf,
        /// Records per batch, each written all or none; every batch of this many must fit in a
        /// 64 MiB message [default: up to 5,000 records and 4 MiB a batch].
        #[arg(long)]
        batch_size: Option<usize>,
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
            write(&node.node, &catalog, table, Writing::Put, "record").await
        }
        RecordsCommand::Import {
            node,
            catalog,
            file,
            batch_size,
        } => {
            if batch_size == Some(0) {
                return Err(CliError::Input("--batch-size must be at least 1".into()));
            }
            let table = read_file(&file)?;
            let source = file.display().to_string();
            write(
                &node.node,
                &catalog,
                table,
                Writing::Import(batch_size),
                &source,
            )
            .await
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
    }
}

/// How a command writes: `records put` all or none in one request, `records import` in batches
/// of a record count the user gave, or else cut by size.
#[derive(Clone, Copy)]
enum Writing {
    Put,
    Import(Option<usize>),
}

/// Checks every record locally against the catalog, then writes them as `writing` says.
async fn write(
    node: &Path,
    catalog: &str,
    table: Table,
    writing: Writing,
    source: &str,
) -> Result<(), CliError> {
    let client = NodeClient::open(NodeDir::load(node)?)?;
    let entry = parse_catalogs(&client.get_catalog(None, "", catalog).await?, "node")?.remove(0);
    let schema = RecordSchema::new(&entry)?;
    let columns = schema
        .columns(&table.columns)
        .map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let lines = table.lines;
    let checked = schema.rows(&columns, table.rows).map_err(|errors| {
        let mut text = format!(
            "{source}: nothing was written; problems found: {}",
            errors.len()
        );
        for e in errors.iter().take(20) {
            let line = lines.get(e.record - 1).copied().unwrap_or(e.record);
            let key = e
                .key
                .as_ref()
                .map(|k| format!(" (key {k:?})"))
                .unwrap_or_default();
            text.push_str(&format!("\n  line {line}{key}: {}: {}", e.item, e.problem));
        }
        if errors.len() > 20 {
            text.push_str(&format!("\n  … and {} more", errors.len() - 20));
        }
        CliError::Input(text)
    })?;
    // Send the checked rows (every item, in catalog order, values normalised) rather than the
    // file's columns: the node checks them again, against the same catalog.
    let item_codes: Vec<String> = entry.items.iter().map(|i| i.code.clone()).collect();
    let total = checked.len();
    let rows = checked.into_iter().map(|row| row.values).collect();
    let batching = match writing {
        Writing::Put => Batching::Exactly(usize::MAX),
        Writing::Import(None) => Batching::default(),
        Writing::Import(Some(n)) => Batching::Exactly(n),
    };
    let mut batches = 0;
    let progress = |written| {
        batches += 1;
        if batches > 1 || written < total {
            eprintln!("  {written}/{total} records written");
        }
    };
    let written = client
        .write_records(catalog, item_codes, rows, batching, progress)
        .await
        .map_err(|e| CliError::Input(write_failure(source, &lines, writing, e)))?;
    println!(
        "wrote {} records to {catalog} on {} ({} new, {} updated)",
        written.records,
        client.code(),
        written.created,
        written.updated
    );
    Ok(())
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
                "\n  the connection failed before the node answered, so they may or may not be stored"
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
                "\n  resume from line {} (e.g. with a file holding the rest)",
                lines[failed.start]
            ));
            if maybe_stored {
                text.push_str(": a record written again is stored as a new version");
            }
            text
        }
    }
}

/// What every read names: the catalog, the target of `route`, and the principal acted as.
fn scope(catalog: String, route: &Route, act_as: &ActAs) -> Result<ReadScope, CliError> {
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
