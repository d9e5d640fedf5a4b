//! A PostgreSQL table (or view) as a catalog's source: read incrementally by an updated-at
//! column and the primary key, each page written to the node with the offset after it in the
//! same atomic write.
//!
//! # Why nothing is lost or written twice
//! - **Offsets are `(updated_at, key)`**, compared as a row value (`(u, k) > (U, K)`) and read in
//!   that order, so rows sharing a timestamp are split across pages and restarts without loss or
//!   repetition.
//! - **Rows committed out of order.** An application sets updated-at when its transaction
//!   writes, but the row is seen only when it commits, maybe after rows with later times. Each
//!   page is read up to a *bound*, fixed in a statement before the page's: the earlier of now
//!   minus the safety lag and the start of the oldest transaction still open on the server
//!   (`pg_stat_activity.xact_start`). Such a transaction's rows carry times at or after its
//!   start, so they are past the bound until it ends; a transaction begun after the bound was
//!   fixed starts after it. The lag covers clocks: rows stamped by an application's own clock.
//!   Seeing other roles' transactions takes `pg_read_all_stats` (or a superuser): without it only
//!   the lag protects, and [`Source::open`] warns.
//! - **The offset is stored with the records**, in the node's store, in one atomic write
//!   (`PutRecords` with a [`SourceMark`]), and only over the offset the connector read back, so a
//!   connector stopped at any point resumes exactly after the last page written, and a second
//!   connector of the same source is refused.
//! - **Deletions** leave no row to read: [`Source::reconcile`] compares the keys the table's
//!   rows map to with the catalog's and deletes the records whose rows are gone. The catalog is
//!   the table's: records written to it by anything else would be deleted too.
//!
//! Rows go through the same mapping file and checks as an import's
//! ([`tierlink_core::import::check_rows`]). A page with a row the catalog refuses is not
//! written: the connector stops before it, naming the row.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{StreamExt, pin_mut};
use tierlink_client::NodeClient;
use tierlink_core::catalog::{RecordSchema, parse_catalogs};
use tierlink_core::import::{CheckedTable, Mapping, check_rows};
use tierlink_proto::v1::{PutRecordsRequest, QueryRequest, ReadScope, Row, SourceMark};
use tokio_postgres::Client;

use super::{Table, connect, quote};
use crate::ConnectError;

/// What a source reads and where it writes.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    /// The node's catalog the rows become records of.
    pub catalog: String,
    /// The table or view, `schema.table` when off the search path.
    pub table: String,
    /// Its primary key column (unique and never null).
    pub key: String,
    /// Its updated-at column: a `timestamp` or `timestamptz` set on every insert and update.
    pub updated_at: String,
    /// How far behind the database's clock reads stay, for rows stamped by another clock.
    pub lag: Duration,
    /// Most rows per page, and so per write to the node.
    pub page_rows: usize,
    /// How the table's columns become the catalog's items; none when they are named alike.
    pub mapping: Option<Mapping>,
}

/// The safety lag by default.
pub const DEFAULT_LAG: Duration = Duration::from_secs(2);
/// Rows per page by default.
pub const DEFAULT_PAGE_ROWS: usize = 2_000;

/// Where a source stands: the updated-at and key of the last row written, as the database
/// writes them as text (ISO dates). Empty before the first page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offset {
    /// The last row's updated-at.
    pub updated_at: String,
    /// The last row's key.
    pub key: String,
}

impl Offset {
    /// The offset as the node stores it: a JSON array `[updated_at, key]`, or empty.
    pub fn encode(&self) -> String {
        if *self == Offset::default() {
            return String::new();
        }
        serde_json::json!([self.updated_at, self.key]).to_string()
    }

    /// Reads an offset the node stored.
    ///
    /// # Errors
    /// [`ConnectError::Table`] for an offset this connector did not write.
    pub fn decode(text: &str, table: &str) -> Result<Self, ConnectError> {
        if text.is_empty() {
            return Ok(Offset::default());
        }
        let [updated_at, key]: [String; 2] =
            serde_json::from_str(text).map_err(|_| ConnectError::Table {
                table: table.to_owned(),
                problem: format!(
                    "the node holds offset {text:?} for it, not one this connector writes: was the source name used by another program?"
                ),
            })?;
        Ok(Offset { updated_at, key })
    }
}

/// A running source: its database connection, the catalog's checks and its offset.
pub struct Source<'n> {
    spec: SourceSpec,
    url: String,
    node: &'n NodeClient,
    db: Client,
    table: Table,
    schema: RecordSchema,
    name: String,
    offset: Offset,
    /// The columns read as records' values.
    names: Vec<String>,
    /// Those columns as text, then updated-at and key as text.
    select: String,
    /// The row value `(updated_at, key)` and the offset's, cast to the columns' types.
    after: String,
    order: String,
}

/// The statement fixing a page's bound: the earlier of the database's now less the lag (`$1`,
/// seconds) and the start of the oldest other client transaction open in this database (one in
/// another cannot write this table).
const BOUND: &str = "SELECT LEAST(now() - make_interval(secs => $1),
    (SELECT min(xact_start) FROM pg_stat_activity
     WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
       AND datname = current_database()))::text";

impl<'n> Source<'n> {
    /// Connects to the database at `url`, checks the table against the spec and the catalog
    /// (as the node publishes it) and reads the offset the node stored for the source.
    ///
    /// # Errors
    /// A missing table or column, an updated-at that is not a timestamp, columns the mapping
    /// and catalog do not fit, the node's or the database's refusal.
    pub async fn open(
        spec: SourceSpec,
        url: &str,
        node: &'n NodeClient,
    ) -> Result<Self, ConnectError> {
        let db = connect(url).await?;
        let table = Table::describe(&db, &spec.table).await?;
        let updated_at = table.column(&spec.updated_at)?.clone();
        let key = table.column(&spec.key)?.clone();
        if !updated_at.type_name.starts_with("timestamp") {
            return Err(ConnectError::Table {
                table: table.name.clone(),
                problem: format!(
                    "its updated-at column {:?} is {}: give a timestamp column set on every insert and update",
                    updated_at.name, updated_at.type_name
                ),
            });
        }
        let entry = parse_catalogs(&node.get_catalog(None, "", &spec.catalog).await?, "node")
            .map_err(|e| ConnectError::Table {
                table: table.name.clone(),
                problem: format!("the node's catalog {}: {e}", spec.catalog),
            })?
            .remove(0);
        let schema = RecordSchema::new(&entry).map_err(|e| ConnectError::Table {
            table: table.name.clone(),
            problem: format!("the node's catalog {}: {e}", spec.catalog),
        })?;
        // The updated-at column is read as a record's value only when it is an item's or the
        // mapping names it: it is usually the table's bookkeeping alone.
        let items: Vec<&str> = schema.items().map(|(code, _)| code).collect();
        let names: Vec<String> = table
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|c| {
                *c != updated_at.name
                    || items.contains(&c.as_str())
                    || spec.mapping.as_ref().is_some_and(|m| m.names(c))
            })
            .collect();
        // The columns must fit the catalog and the mapping before any row is read.
        check_rows(&names, Vec::new(), spec.mapping.as_ref(), &schema)?;
        let name = format!("postgres:{}", table.name);
        let offset = Offset::decode(&node.source_offset(&spec.catalog, &name).await?, &name)?;
        // Outputs are named apart from the table's columns: ORDER BY a bare name would take the
        // text output of that name, sorting by text (10 before 9) and never by the index.
        let columns: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}::text AS tierlink_{i}", quote(c)))
            .collect();
        let (u, k) = (quote(&updated_at.name), quote(&key.name));
        let select = format!(
            "SELECT {}, {u}::text AS tierlink_at, {k}::text AS tierlink_key FROM {}",
            columns.join(", "),
            table.name
        );
        let after = format!(
            "({u}, {k}) > ($1::text::{}, $2::text::{})",
            updated_at.type_name, key.type_name
        );
        let order = format!("ORDER BY {u}, {k}");
        let source = Self {
            spec,
            url: url.to_owned(),
            node,
            db,
            table,
            schema,
            name,
            offset,
            names,
            select,
            after,
            order,
        };
        source.settle().await?;
        source.check_key().await?;
        if !source.sees_every_transaction().await? {
            tracing::warn!(
                "the database role cannot see other roles' open transactions (it needs pg_read_all_stats): rows committed later than the lag after their updated-at may be missed"
            );
        }
        Ok(source)
    }

    /// Fixes the session's form of dates, so that offsets read the same on every connection.
    /// The time zone stays the database's: a `timestamp` without one is the application's
    /// local time there, and a `timestamptz` offset carries its own.
    async fn settle(&self) -> Result<(), ConnectError> {
        self.db.batch_execute("SET DateStyle = 'ISO, YMD'").await?;
        Ok(())
    }

    /// Checks that the key names each row once, and warns of rows that cannot be read.
    async fn check_key(&self) -> Result<(), ConnectError> {
        let row = self
            .db
            .query_one(
                "SELECT c.relkind::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique
                            AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL),
                    a.attnotnull
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                 WHERE c.oid = to_regclass($1) AND a.attname = $2",
                &[&self.table.name, &self.spec.key],
            )
            .await?;
        let (kind, unique, not_null): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if kind == "v" || kind == "m" {
            tracing::warn!(
                table = %self.table.name,
                key = %self.spec.key,
                "a view's key cannot be checked: rows sharing a key value would be read as one"
            );
        } else if !(unique && not_null) {
            return Err(ConnectError::Table {
                table: self.table.name.clone(),
                problem: format!(
                    "--key {} is not its primary key nor a unique, not-null column, so rows sharing a value would be lost. A composite key is not read: give a view with one key column (e.g. the parts joined) or add a unique column",
                    self.spec.key
                ),
            });
        }
        let (u, k) = (quote(&self.spec.updated_at), quote(&self.spec.key));
        let row = self
            .db
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE {u} IS NULL), count(*) FILTER (WHERE {k} IS NULL) FROM {}",
                    self.table.name
                ),
                &[],
            )
            .await?;
        let (no_time, no_key): (i64, i64) = (row.get(0), row.get(1));
        if no_time + no_key > 0 {
            tracing::warn!(
                table = %self.table.name,
                without_updated_at = no_time,
                without_key = no_key,
                "rows with no updated-at or no key are not read until they get one"
            );
        }
        Ok(())
    }

    async fn sees_every_transaction(&self) -> Result<bool, ConnectError> {
        let row = self
            .db
            .query_one(
                "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')
                 FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The source's name, as its offset is stored on the node: `postgres:` and the table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offset after the last page written.
    pub fn offset(&self) -> &Offset {
        &self.offset
    }

    /// Reads the next page after the offset and writes it to the node with the offset after
    /// it. Returns the rows read: 0 when the source has caught up.
    ///
    /// # Errors
    /// The database's or node's failure (nothing written, the offset where it was); rows the
    /// catalog refuses ([`ConnectError::Rejected`]).
    pub async fn step(&mut self) -> Result<usize, ConnectError> {
        let lag = self.spec.lag.as_secs_f64();
        let bound: Option<String> = self.db.query_one(BOUND, &[&lag]).await?.get(0);
        let bound = bound.unwrap_or_else(|| "-infinity".into());
        let limit = self.spec.page_rows as i64;
        let (u, k) = (&self.offset.updated_at, &self.offset.key);
        let rows = if self.offset == Offset::default() {
            let sql = format!(
                "{} WHERE {}::timestamptz < $1::text::timestamptz AND {} IS NOT NULL {} LIMIT $2",
                self.select,
                quote(&self.spec.updated_at),
                quote(&self.spec.key),
                self.order
            );
            self.db.query(&sql, &[&bound, &limit]).await?
        } else {
            let sql = format!(
                "{} WHERE {} AND {}::timestamptz < $3::text::timestamptz {} LIMIT $4",
                self.select,
                self.after,
                quote(&self.spec.updated_at),
                self.order
            );
            self.db.query(&sql, &[u, k, &bound, &limit]).await?
        };
        let Some(last) = rows.last() else {
            return Ok(0);
        };
        let width = self.names.len();
        let next = Offset {
            updated_at: last.get(width),
            key: last.get(width + 1),
        };
        let checked = self.check(&rows)?;
        let mark = self.mark(next.encode());
        self.node
            .write(PutRecordsRequest {
                catalog: self.spec.catalog.clone(),
                columns: checked.items,
                rows: checked
                    .rows
                    .into_iter()
                    .map(|r| Row {
                        values: r.row.values,
                    })
                    .collect(),
                deleted_keys: Vec::new(),
                mark: Some(mark),
            })
            .await?;
        self.offset = next;
        Ok(rows.len())
    }

    /// The mark of a write that moves the offset from where it is to `offset`.
    fn mark(&self, offset: String) -> SourceMark {
        SourceMark {
            source: self.name.clone(),
            offset,
            expected: self.offset.encode(),
        }
    }

    /// The rows (as the select reads them) as records of the catalog; refused whole when one
    /// is, naming it by its key.
    fn check(&self, rows: &[tokio_postgres::Row]) -> Result<CheckedTable, ConnectError> {
        let width = self.names.len();
        let values = rows
            .iter()
            .map(|r| {
                (0..width)
                    .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                    .collect()
            })
            .collect();
        let checked = check_rows(
            &self.names,
            values,
            self.spec.mapping.as_ref(),
            &self.schema,
        )?;
        if let Some(reject) = checked.rejects.first() {
            let problems: Vec<String> = reject.problems.iter().map(ToString::to_string).collect();
            let key: Option<String> = rows[reject.line - 1].get(width + 1);
            let key = key.unwrap_or_else(|| "(none)".into());
            return Err(ConnectError::Rejected {
                table: self.table.name.clone(),
                catalog: self.spec.catalog.clone(),
                count: checked.rejects.len(),
                first: format!("{} = {key:?}: {}", self.spec.key, problems.join("; ")),
            });
        }
        Ok(checked)
    }

    /// Deletes the records whose rows are gone from the table: the catalog's keys (read as the
    /// node's own) less those the table's rows map to now. Returns the records deleted.
    ///
    /// # Errors
    /// As [`Source::step`]; nothing is deleted when the table cannot be read whole.
    pub async fn reconcile(&mut self) -> Result<u64, ConnectError> {
        let mut held: HashSet<String> = HashSet::new();
        let query = QueryRequest {
            scope: Some(ReadScope {
                catalog: self.spec.catalog.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.node
            .read(None, query, |_, batch| {
                held.extend(batch.records.into_iter().map(|r| r.key));
                Ok(())
            })
            .await?;
        // Rows with no key are not read by pages either (warned of at start).
        let all = format!(
            "{} WHERE {} IS NOT NULL",
            self.select,
            quote(&self.spec.key)
        );
        let rows = self.db.query_raw(&all, std::iter::empty::<&str>()).await?;
        pin_mut!(rows);
        let mut page = Vec::new();
        let mut present: HashSet<String> = HashSet::new();
        loop {
            let row = rows.next().await.transpose()?;
            let end = row.is_none();
            page.extend(row);
            if page.len() == self.spec.page_rows || (end && !page.is_empty()) {
                let checked = self.check(&page)?;
                present.extend(checked.rows.into_iter().map(|r| r.row.key));
                page.clear();
            }
            if end {
                break;
            }
        }
        let mut gone: Vec<String> = held.difference(&present).cloned().collect();
        gone.sort();
        let deleted = gone.len() as u64;
        for keys in gone.chunks(self.spec.page_rows.max(1)) {
            let same = self.offset.encode();
            self.node
                .write(PutRecordsRequest {
                    catalog: self.spec.catalog.clone(),
                    deleted_keys: keys.to_vec(),
                    mark: Some(self.mark(same)),
                    ..Default::default()
                })
                .await?;
        }
        Ok(deleted)
    }

    /// Pages until caught up, then every `poll`; reconciles every `reconcile` (when given)
    /// once caught up; until `stop` completes. A database or node that cannot be reached (a
    /// restart) is tried again after a pause that doubles up to a minute, the connection made
    /// again; the node's refusals and rows the catalog refuses end the run.
    pub async fn run(
        &mut self,
        poll: Duration,
        reconcile: Option<Duration>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ConnectError> {
        pin_mut!(stop);
        let mut reconciled = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        loop {
            let mut outcome = self.step().await;
            if let Ok(0) = outcome
                && let Some(every) = reconcile
                && reconciled.elapsed() >= every
            {
                outcome = self.reconcile().await.map(|deleted| {
                    tracing::info!(deleted, "reconciled with the table");
                    reconciled = tokio::time::Instant::now();
                    0
                });
            }
            let wait = match outcome {
                Ok(0) => poll,
                Ok(rows) => {
                    tracing::info!(rows, offset = %self.offset.encode(), "written");
                    pause = Duration::from_secs(1);
                    Duration::ZERO
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot read or write now");
                    let wait = pause;
                    pause = (pause * 2).min(Duration::from_secs(60));
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(wait) => {}
                    }
                    if self.db.is_closed() {
                        match connect(&self.url).await {
                            Ok(db) => {
                                self.db = db;
                                self.settle().await?;
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot connect yet"),
                        }
                    }
                    // A write whose answer was lost may have been stored: go on from what the
                    // node holds, not from what this connector last heard.
                    match self
                        .node
                        .source_offset(&self.spec.catalog, &self.name)
                        .await
                    {
                        Ok(stored) => self.offset = Offset::decode(&stored, &self.name)?,
                        Err(e) => tracing::warn!(error = %e, "cannot read the stored offset yet"),
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
