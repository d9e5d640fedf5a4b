//! `tierlink records put|import|query|history` and `tierlink verify`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::catalog::{RecordSchema, parse_catalogs};
use tierlink_core::config::NodeDir;
use tierlink_core::identity::TrustedCa;
use tierlink_core::read::Read;
use tierlink_core::signed::file::{BatchWriter, verify_file};
use tierlink_core::signed::{BatchVerifier, StreamSummary, VerifiedBatch};
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
        /// Records per batch.
        #[arg(long, default_value_t = 5000)]
        batch_size: usize,
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
        /// Write the signed batches to FILE (check them later with `tierlink verify FILE`).
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
    /// Node directory whose CA certificate to use.
    #[arg(long, env = "TIERLINK_NODE")]
    pub node: Option<PathBuf>,
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
            write(&node.node, &catalog, table, usize::MAX, "record").await
        }
        RecordsCommand::Import {
            node,
            catalog,
            file,
            batch_size,
        } => {
            if batch_size == 0 {
                return Err(CliError::Input("--batch-size must be at least 1".into()));
            }
            let table = read_file(&file)?;
            write(
                &node.node,
                &catalog,
                table,
                batch_size,
                &file.display().to_string(),
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

/// Checks every record locally against the catalog, then writes in batches of `batch_size`.
async fn write(
    node: &Path,
    catalog: &str,
    table: Table,
    batch_size: usize,
    source: &str,
) -> Result<(), CliError> {
    let client = NodeClient::open(NodeDir::load(node)?)?;
    let entry = parse_catalogs(&client.get_catalog(None, "", catalog).await?, "node")?.remove(0);
    let schema = RecordSchema::new(&entry)?;
    let columns = schema
        .columns(&table.columns)
        .map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let checked = schema.rows(&columns, table.rows).map_err(|errors| {
        let mut text = format!(
            "{source}: nothing was written; problems found: {}",
            errors.len()
        );
        for e in errors.iter().take(20) {
            let line = table.lines.get(e.record - 1).copied().unwrap_or(e.record);
            text.push_str(&format!("\n  line {line}: {}: {}", e.item, e.problem));
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
    let (mut written, mut created) = (0, 0);
    let mut rows = checked.into_iter().map(|row| row.values).peekable();
    while rows.peek().is_some() {
        let batch: Vec<Vec<String>> = rows.by_ref().take(batch_size).collect();
        let n = batch.len();
        let done = client.put_records(catalog, item_codes.clone(), batch).await.map_err(|e| {
            CliError::Input(format!(
                "{source}: writing records {}–{} failed: {e}\n  records 1–{written} are stored; resume from record {} (e.g. with a file holding the rest)",
                written + 1,
                written + n,
                written + 1
            ))
        })?;
        written += n;
        created += done.created;
        if total > batch_size {
            eprintln!("  {written}/{total} records written");
        }
    }
    println!(
        "wrote {written} records to {catalog} on {} ({created} new, {} updated)",
        client.code(),
        written as u64 - created
    );
    Ok(())
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
            "signed batches written to {} (check them with `tierlink verify {}`)",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

fn print_records(out: &mut impl Write, batch: &VerifiedBatch) -> std::io::Result<()> {
    for record in &batch.records {
        let mut object = serde_json::Map::new();
        object.insert("_key".into(), record.key.clone().into());
        object.insert("_version".into(), record.version.into());
        let at =
            chrono::DateTime::from_timestamp_micros(record.updated_at_micros).unwrap_or_default();
        object.insert("_updated_at".into(), at.to_rfc3339().into());
        for (column, value) in batch.header.columns.iter().zip(&record.values) {
            if !value.is_empty() {
                object.insert(column.clone(), value.clone().into());
            }
        }
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
    let summary = verify_file(&args.file, &verifier)?;
    println!(
        "{}: OK — {} records of {} in {} batches, signed by {} for {} (request {}), checked against {}",
        args.file.display(),
        summary.records,
        summary.catalog,
        summary.batches,
        summary.producer,
        summary.consumer,
        summary.request_id,
        ca_path.display()
    );
    Ok(())
}
