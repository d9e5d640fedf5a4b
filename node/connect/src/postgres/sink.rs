//! A catalog's change feed applied into a PostgreSQL table: each batch's versions upserted by
//! primary key (a deletion deletes its row), in the feed's order, in one transaction with the
//! batch's resume token, so that a sink stopped at any point resumes after the last batch it
//! committed: every version applied once, none skipped.
//!
//! The token is kept in [`OFFSETS`] in the table's schema (made when missing), one row per sink. A sink with no token
//! starts from now, or with `snapshot` from the catalog's current records (a query; its token is
//! kept once the last of them is committed, so a sink stopped midway reads them again, which
//! upserts change nothing). Items become the columns of the same name, or as the mapping file
//! names them (`"column" = "item_code"`); items the table has no column for are left out. An
//! empty value is stored as NULL, and each value is cast by the database to its column's type.

use tierlink_client::NodeClient;
use tierlink_core::identity::NodeCode;
use tierlink_core::import::Mapping;
use tierlink_core::signed::VerifiedBatch;
use tierlink_proto::v1::{QueryRequest, ReadScope, SubscribeRequest};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::{Table, connect, quote};
use crate::ConnectError;

/// The table sinks keep their resume tokens in: `sink text PRIMARY KEY, resume_token text,
/// updated_at timestamptz`.
pub const OFFSETS: &str = "tierlink_feed_offsets";

/// What a sink follows and where it writes.
#[derive(Clone, Debug)]
pub struct SinkSpec {
    /// The sink's name among those writing to the database (its row in [`OFFSETS`]); the
    /// table's name as the database writes it by default.
    pub name: Option<String>,
    /// The table, with a primary key whose columns the catalog's key items fill.
    pub table: String,
    /// The read: catalog, target, and the principal's credential when one reads.
    pub scope: ReadScope,
    /// A node to relay through.
    pub via: Option<NodeCode>,
    /// Columns to items, as in an import's mapping file.
    pub mapping: Option<Mapping>,
    /// With no token kept: apply the current records first, then follow.
    pub snapshot: bool,
}

/// A running sink.
pub struct Sink<'n> {
    spec: SinkSpec,
    url: String,
    /// Its row in [`OFFSETS`].
    name: String,
    /// [`OFFSETS`] in the table's schema.
    offsets: String,
    node: &'n NodeClient,
    db: Client,
    table: Table,
    token: String,
}

/// How a batch's columns land in the table: for each table column written, the batch column
/// it takes its value from, and the statements.
struct Plan {
    upsert: String,
    delete: String,
    /// Batch column index of each `upsert` parameter, in order.
    values: Vec<usize>,
    /// Batch column index of each `delete` parameter.
    keys: Vec<usize>,
}

/// Takes the session lock on sink `name`: one sink per name at a time, since a second would
/// apply the same batches twice. The lock is the connection's, let go when it ends.
async fn lock(db: &Client, name: &str, table: &str) -> Result<(), ConnectError> {
    let locked: bool = db
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('tierlink sink ' || $1, 0))",
            &[&name],
        )
        .await?
        .get(0);
    if !locked {
        return Err(ConnectError::Table {
            table: table.to_owned(),
            problem: format!(
                "another sink named {name:?} is applying to it now: stop that one first, or give this one another --name"
            ),
        });
    }
    Ok(())
}

/// The resume token sink `name` kept in `offsets` with its last batch; empty before any.
async fn stored_token(db: &Client, offsets: &str, name: &str) -> Result<String, ConnectError> {
    Ok(db
        .query_opt(
            &format!("SELECT resume_token FROM {offsets} WHERE sink = $1"),
            &[&name],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or_default())
}

impl<'n> Sink<'n> {
    /// Connects to the database at `url`, makes [`OFFSETS`] in the table's schema if missing,
    /// checks the table has a primary key and reads the sink's token.
    ///
    /// # Errors
    /// No such table, a table without a primary key, the database's refusal.
    pub async fn open(
        spec: SinkSpec,
        url: &str,
        node: &'n NodeClient,
    ) -> Result<Self, ConnectError> {
        let db = connect(url).await?;
        let table = Table::describe(&db, &spec.table).await?;
        // Beside the table whatever the search path, so that every connection finds it.
        let offsets = format!("{}.{OFFSETS}", quote(&table.schema));
        db.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {offsets} (sink text PRIMARY KEY, resume_token text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await?;
        let name = spec.name.clone().unwrap_or_else(|| table.name.clone());
        lock(&db, &name, &table.name).await?;
        if table.primary_key.is_empty() {
            return Err(ConnectError::Table {
                table: table.name,
                problem: "it has no primary key: the sink upserts by key; add one on the columns the catalog's key items go to".into(),
            });
        }
        let token = stored_token(&db, &offsets, &name).await?;
        Ok(Self {
            spec,
            url: url.to_owned(),
            name,
            offsets,
            node,
            db,
            table,
            token,
        })
    }

    /// The resume token of the last batch committed; empty before any.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The table column each batch column (an item code) goes to.
    fn column_of(&self, item: &str) -> Option<&str> {
        let named = self
            .spec
            .mapping
            .as_ref()
            .and_then(|m| m.column_of(item))
            .unwrap_or(item);
        self.table
            .columns
            .iter()
            .find(|c| c.name == named)
            .map(|c| c.name.as_str())
    }

    fn plan(&self, columns: &[String]) -> Result<Plan, ConnectError> {
        let mut targets: Vec<(usize, &str)> = Vec::new();
        for (i, item) in columns.iter().enumerate() {
            if let Some(column) = self.column_of(item) {
                targets.push((i, column));
            }
        }
        let type_of = |name: &str| {
            self.table
                .column(name)
                .map(|c| c.type_name.clone())
                .expect("targets are the table's columns")
        };
        let mut keys = Vec::new();
        let mut conditions = Vec::new();
        for key in &self.table.primary_key {
            let Some(&(i, _)) = targets.iter().find(|(_, c)| c == key) else {
                return Err(ConnectError::Table {
                    table: self.table.name.clone(),
                    problem: format!(
                        "its primary key column {key:?} gets no item of the feed (items: {}): name the column after the key item, or map it in the mapping file",
                        columns.join(", ")
                    ),
                });
            };
            keys.push(i);
            conditions.push(format!(
                "{} = NULLIF(${}::text, '')::{}",
                quote(key),
                keys.len(),
                type_of(key)
            ));
        }
        let names: Vec<String> = targets.iter().map(|(_, c)| quote(c)).collect();
        let params: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(n, (_, c))| format!("NULLIF(${}::text, '')::{}", n + 1, type_of(c)))
            .collect();
        let updates: Vec<String> = targets
            .iter()
            .filter(|(_, c)| !self.table.primary_key.iter().any(|k| k == c))
            .map(|(_, c)| format!("{0} = EXCLUDED.{0}", quote(c)))
            .collect();
        let conflict: Vec<String> = self.table.primary_key.iter().map(|k| quote(k)).collect();
        let changed: Vec<String> = targets
            .iter()
            .filter(|(_, c)| !self.table.primary_key.iter().any(|k| k == c))
            .map(|(_, c)| format!("existing.{0} IS DISTINCT FROM EXCLUDED.{0}", quote(c)))
            .collect();
        // A version delivered again (after a restart, before its token was stored) leaves a row
        // that already holds it untouched: no write, no trigger fired.
        let action = if updates.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            format!(
                "DO UPDATE SET {} WHERE {}",
                updates.join(", "),
                changed.join(" OR ")
            )
        };
        Ok(Plan {
            upsert: format!(
                "INSERT INTO {} AS existing ({}) VALUES ({}) ON CONFLICT ({}) {action}",
                self.table.name,
                names.join(", "),
                params.join(", "),
                conflict.join(", ")
            ),
            delete: format!(
                "DELETE FROM {} WHERE {}",
                self.table.name,
                conditions.join(" AND ")
            ),
            values: targets.iter().map(|(i, _)| *i).collect(),
            keys,
        })
    }

    /// Writes a batch's versions in order: upserts, and deletes for deletions.
    async fn write(
        tx: &tokio_postgres::Transaction<'_>,
        plan: &Plan,
        batch: &VerifiedBatch,
    ) -> Result<(), ConnectError> {
        let upsert = tx.prepare(&plan.upsert).await?;
        let delete = tx.prepare(&plan.delete).await?;
        let empty = String::new();
        for record in &batch.records {
            let value =
                |i: &usize| -> &(dyn ToSql + Sync) { record.values.get(*i).unwrap_or(&empty) };
            let (statement, columns) = match record.deleted {
                true => (&delete, &plan.keys),
                false => (&upsert, &plan.values),
            };
            let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(value).collect();
            tx.execute(statement, &params).await?;
        }
        Ok(())
    }

    /// Applies one batch in one transaction, with `token` kept in the same one when given.
    pub async fn apply(
        &mut self,
        batch: &VerifiedBatch,
        token: Option<&str>,
    ) -> Result<(), ConnectError> {
        let plan = match batch.records.is_empty() {
            true => None,
            false => Some(self.plan(&batch.header.columns)?),
        };
        let tx = self.db.transaction().await?;
        if let Some(plan) = plan {
            Self::write(&tx, &plan, batch).await?;
        }
        if let Some(token) = token {
            tx.execute(
                &format!(
                    "INSERT INTO {} (sink, resume_token) VALUES ($1, $2)
                     ON CONFLICT (sink) DO UPDATE SET resume_token = EXCLUDED.resume_token, updated_at = now()",
                    self.offsets
                ),
                &[&self.name, &token],
            )
            .await?;
        }
        tx.commit().await?;
        if let Some(token) = token {
            token.clone_into(&mut self.token);
        }
        Ok(())
    }

    /// Applies the snapshot when asked and no token is kept, then follows the feed, until it
    /// ends for good (a grant that stopped holding, a resync needed, a row the table refuses)
    /// or `stop` completes. A node or database that cannot be reached (a restart) is tried
    /// again after a pause that doubles up to a minute, from the last token committed.
    pub async fn run(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ConnectError> {
        futures_util::pin_mut!(stop);
        let mut pause = std::time::Duration::from_secs(1);
        loop {
            // A batch cut short rolls back whole: its token is not kept either.
            let followed = tokio::select! {
                () = &mut stop => return Ok(()),
                followed = self.follow() => followed,
            };
            match followed {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?pause, "the feed or the table cannot be reached now");
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(std::time::Duration::from_secs(60));
                    if self.db.is_closed() {
                        match connect(&self.url).await {
                            Ok(db) => {
                                lock(&db, &self.name, &self.table.name).await?;
                                self.db = db;
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot connect yet"),
                        }
                    }
                    // A commit whose answer was lost may have been made: go on from the token
                    // the table holds, not from what this sink last heard.
                    match stored_token(&self.db, &self.offsets, &self.name).await {
                        Ok(token) => self.token = token,
                        Err(e) => tracing::warn!(error = %e, "cannot read the kept token yet"),
                    }
                }
                other => return other,
            }
        }
    }

    /// The snapshot when due, then the feed from the token, until either ends.
    async fn follow(&mut self) -> Result<(), ConnectError> {
        let node = self.node;
        let via = self.spec.via.clone();
        if self.token.is_empty() && self.spec.snapshot {
            let query = QueryRequest {
                scope: Some(self.spec.scope.clone()),
                ..Default::default()
            };
            let mut batches = node.batches(via.as_ref(), query).await?;
            let mut from = String::new();
            while let Some((_, batch)) = batches.next().await? {
                batch.header.resume_token.clone_into(&mut from);
                self.apply(&batch, None).await?;
            }
            batches.finish()?;
            self.apply(
                &VerifiedBatch {
                    header: Default::default(),
                    records: Vec::new(),
                },
                Some(&from),
            )
            .await?;
        }
        let request = SubscribeRequest {
            scope: Some(self.spec.scope.clone()),
            resume_token: self.token.clone(),
            batch_size: 0,
        };
        let mut batches = node.batches(via.as_ref(), request).await?;
        while let Some((_, batch)) = batches.next().await? {
            let token = batch.header.resume_token.clone();
            self.apply(&batch, Some(&token)).await?;
        }
        batches.finish().map(drop).map_err(Into::into)
    }
}
