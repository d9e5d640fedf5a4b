//! PostgreSQL, both directions: [`source`] reads a table into a catalog, [`sink`] applies a
//! catalog's feed into a table. Both learn the table's columns and types from the database's
//! own catalog (`pg_attribute`, `pg_index`) and pass every value as text, cast by the database
//! to the column's type, so that what a legacy system stores is read and written in its own
//! forms.

pub mod sink;
pub mod source;

use tokio_postgres::{Client, NoTls};

use crate::ConnectError;

/// Connects to the database at `url` (a libpq connection string or URI), driving the connection
/// on its own task until the client is dropped.
///
/// # Errors
/// The server's refusal, or no server at that address.
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "the PostgreSQL connection ended");
        }
    });
    // Notices (a table that already exists) are not news.
    client
        .batch_execute("SET client_min_messages = warning")
        .await?;
    Ok(client)
}

/// `name` as an SQL identifier, quoted (PostgreSQL's rules: double quotes, doubled inside).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column of a table: its name and its type as `format_type` writes it (e.g. `integer`,
/// `timestamp with time zone`, `character varying(64)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type, usable in a cast.
    pub type_name: String,
}

/// A table or view as the database describes it.
#[derive(Clone, Debug)]
pub struct Table {
    /// Its name with its schema, as the database quotes them (`civil."Buildings"`).
    pub name: String,
    /// Its schema.
    pub schema: String,
    /// Its columns in order.
    pub columns: Vec<Column>,
    /// Its primary key's columns (none for a view).
    pub primary_key: Vec<String>,
}

impl Table {
    /// Describes the table or view `name` (e.g. `residents`, `civil.residents`).
    ///
    /// # Errors
    /// [`ConnectError::Table`] when there is none of that name.
    pub async fn describe(client: &Client, name: &str) -> Result<Self, ConnectError> {
        // Named with its schema whatever the search path, so that a table is one name to
        // every connection.
        let row = client
            .query_opt(
                "SELECT c.oid::bigint, format('%I.%I', n.nspname, c.relname), n.nspname::text
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = to_regclass($1)",
                &[&name],
            )
            .await?
            .ok_or_else(|| ConnectError::Table {
                table: name.to_owned(),
                problem: "there is no table or view of that name on the search path: give its schema too (schema.table), and quote a name with capitals (\"CivilBuildings\")".into(),
            })?;
        let (oid, quoted, schema): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        let columns = client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&oid],
            )
            .await?
            .iter()
            .map(|r| Column {
                name: r.get(0),
                type_name: r.get(1),
            })
            .collect();
        let primary_key = client
            .query(
                "SELECT a.attname::text FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = $1::bigint::oid AND i.indisprimary
                 ORDER BY k.n",
                &[&oid],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Self {
            name: quoted,
            schema,
            columns,
            primary_key,
        })
    }

    /// The column named `name`.
    ///
    /// # Errors
    /// [`ConnectError::Table`] naming the columns there are.
    pub fn column(&self, name: &str) -> Result<&Column, ConnectError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ConnectError::Table {
                table: self.name.clone(),
                problem: format!(
                    "it has no column {name:?}; its columns are {}",
                    self.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}
