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
    /// Its name as the database quotes it (schema-qualified when off the search path).
    pub name: String,
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
        let row = client
            .query_one(
                "SELECT to_regclass($1)::oid::bigint, to_regclass($1)::text",
                &[&name],
            )
            .await?;
        let (Some(oid), Some(quoted)) = (
            row.get::<_, Option<i64>>(0),
            row.get::<_, Option<String>>(1),
        ) else {
            return Err(ConnectError::Table {
                table: name.to_owned(),
                problem: "there is no table or view of that name on the search path: give its schema too (schema.table)".into(),
            });
        };
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
