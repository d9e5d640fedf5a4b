//! `tierlink connect`: connectors to the databases legacy systems keep, run beside the node
//! until stopped (Ctrl-C or SIGTERM).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tierlink_client::NodeClient;
use tierlink_connect::postgres::sink::{Sink, SinkSpec};
use tierlink_connect::postgres::source::{DEFAULT_PAGE_ROWS, Source, SourceSpec};
use tierlink_core::config::NodeDir;
use tierlink_core::import::Mapping;

use super::records::scope;
use crate::cli::{ActAs, CliError, NodeArg, Route};

/// `tierlink connect …`
#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// PostgreSQL, either way.
    #[command(subcommand)]
    Postgres(PostgresCommand),
}

/// `tierlink connect postgres …`
#[derive(Debug, Subcommand)]
pub enum PostgresCommand {
    /// Read a table (or view) into a catalog of this node as its rows change.
    ///
    /// Rows are read in pages by the updated-at column and the primary key, each page written
    /// with the place after it, so the connector stopped anywhere resumes where it was. Rows
    /// whose transaction is still open wait for it. Every --reconcile, records whose rows are
    /// gone from the table are deleted: the catalog is the table's.
    ///
    /// Example: tierlink connect postgres source --node street --catalog 103001001/000001
    ///   --url 'host=/run/postgresql dbname=civil' --table civil.buildings
    ///   --key building_code --updated-at modified_at --mapping buildings.mapping.toml
    #[command(verbatim_doc_comment)]
    Source(SourceArgs),
    /// Apply a catalog's change feed into a table: upserts by primary key, deletions deleted,
    /// in order, each batch in one transaction with its resume token (kept in
    /// tierlink_feed_offsets).
    ///
    /// Example: tierlink connect postgres sink --node district --target 420502001
    ///   --catalog 103001001/000001 --as li --role 420502/civil-affairs
    ///   --purpose "building registry" --url 'dbname=district' --table buildings --snapshot
    #[command(verbatim_doc_comment)]
    Sink(SinkArgs),
}

/// Where the database is.
#[derive(Debug, Args)]
pub struct Database {
    /// The database: a libpq connection string (`host=… dbname=… user=…`) or URI
    /// (`postgresql://user@host/db`); $TIERLINK_POSTGRES when not given.
    #[arg(long, env = "TIERLINK_POSTGRES")]
    url: String,
    /// The table or view, `schema.table` when off the search path.
    #[arg(long)]
    table: String,
    /// Mapping file (TOML, schema/mapping.schema.json): the table's columns to the catalog's
    /// items, as for imports.
    #[arg(long)]
    mapping: Option<PathBuf>,
}

impl Database {
    fn mapping(&self) -> Result<Option<Mapping>, CliError> {
        self.mapping
            .as_ref()
            .map(|path| {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
                Mapping::parse(&text)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
            })
            .transpose()
    }
}

/// `tierlink connect postgres source`
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The node written to.
    #[command(flatten)]
    node: NodeArg,
    /// The catalog the rows become records of.
    #[arg(long)]
    catalog: String,
    #[command(flatten)]
    database: Database,
    /// The table's primary key column.
    #[arg(long)]
    key: String,
    /// The column set to the time of every insert and update (timestamp or timestamptz).
    #[arg(long)]
    updated_at: String,
    /// How far behind the database's clock to read, for rows stamped by another clock.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    lag: Duration,
    /// Most rows per page (and per write to the node).
    #[arg(long, default_value_t = DEFAULT_PAGE_ROWS)]
    page_rows: usize,
    /// How often to look for new rows once caught up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    poll: Duration,
    /// How often to delete the records whose rows are gone; `0s` never.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    reconcile: Duration,
    /// Read until caught up, reconcile once (unless --reconcile 0s), and exit.
    #[arg(long)]
    once: bool,
}

/// `tierlink connect postgres sink`
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// The node acting.
    #[command(flatten)]
    node: NodeArg,
    /// Where to read from.
    #[command(flatten)]
    route: Route,
    /// The catalog to follow.
    #[arg(long)]
    catalog: String,
    #[command(flatten)]
    database: Database,
    /// The sink's name in tierlink_feed_offsets [default: the table's].
    #[arg(long)]
    name: Option<String>,
    /// With no resume token kept yet, apply the catalog's current records first.
    #[arg(long)]
    snapshot: bool,
    /// Who asks.
    #[command(flatten)]
    act_as: ActAs,
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs a `tierlink connect` command.
pub async fn run(command: ConnectCommand) -> Result<(), CliError> {
    match command {
        ConnectCommand::Postgres(PostgresCommand::Source(args)) => source(args).await,
        ConnectCommand::Postgres(PostgresCommand::Sink(args)) => sink(args).await,
    }
}

async fn source(args: SourceArgs) -> Result<(), CliError> {
    let client = NodeClient::open(NodeDir::load(&args.node.node)?)?;
    let spec = SourceSpec {
        catalog: args.catalog,
        table: args.database.table.clone(),
        key: args.key,
        updated_at: args.updated_at,
        lag: args.lag,
        page_rows: args.page_rows.max(1),
        mapping: args.database.mapping()?,
    };
    let mut source = Source::open(spec, &args.database.url, &client).await?;
    eprintln!(
        "reading {} as {} from offset {}",
        args.database.table,
        source.name(),
        match source.offset().encode() {
            o if o.is_empty() => "(the start)".to_owned(),
            o => o,
        }
    );
    let reconcile = (!args.reconcile.is_zero()).then_some(args.reconcile);
    if args.once {
        let mut rows = 0;
        loop {
            match source.step().await? {
                0 => break,
                n => rows += n,
            }
        }
        let deleted = match reconcile {
            Some(_) => source.reconcile().await?,
            None => 0,
        };
        println!(
            "{rows} rows read, {deleted} records of rows gone deleted; offset {}",
            source.offset().encode()
        );
        return Ok(());
    }
    source.run(args.poll, reconcile, stopped()).await?;
    Ok(())
}

async fn sink(args: SinkArgs) -> Result<(), CliError> {
    let client = NodeClient::open(NodeDir::load(&args.node.node)?)?;
    let spec = SinkSpec {
        name: args.name,
        table: args.database.table.clone(),
        scope: scope(args.catalog, &args.route, &args.act_as)?,
        via: args.route.via.clone(),
        mapping: args.database.mapping()?,
        snapshot: args.snapshot,
    };
    let mut sink = Sink::open(spec, &args.database.url, &client).await?;
    eprintln!(
        "applying the feed into {} from {}",
        args.database.table,
        match sink.token() {
            "" if args.snapshot => "a snapshot of the current records",
            "" => "now",
            token => token,
        }
    );
    sink.run(stopped()).await?;
    Ok(())
}
