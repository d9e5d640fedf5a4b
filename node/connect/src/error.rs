//! Connector errors.

use tierlink_client::ClientError;
use tierlink_core::import::ImportError;

/// Why a connector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The database refused or failed; its own message and, when it gave one, its hint.
    #[error("PostgreSQL: {0}")]
    Database(String),
    /// The node refused or could not be reached.
    #[error(transparent)]
    Node(#[from] ClientError),
    /// The table does not fit what the connector was told.
    #[error("table {table}: {problem}")]
    Table {
        /// The table or view.
        table: String,
        /// What does not fit, and what to do.
        problem: String,
    },
    /// The mapping file, or the table's columns against the catalog.
    #[error(transparent)]
    Mapping(#[from] ImportError),
    /// Rows the catalog refuses; the connector stops before them, its offset where it was.
    #[error(
        "{count} row(s) of {table} are refused by catalog {catalog}, first: {first}. Correct them in the table (their new updated-at brings them again) or the mapping file, then start the connector again: it resumes before them"
    )]
    Rejected {
        /// The table.
        table: String,
        /// The catalog.
        catalog: String,
        /// Rows refused in the batch.
        count: usize,
        /// The first, with its key and every reason.
        first: String,
    },
}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConnectError::Database(match e.as_db_error() {
            Some(db) => match db.hint() {
                Some(hint) => format!("{} ({hint})", db.message()),
                None => db.message().to_owned(),
            },
            None => e.to_string(),
        })
    }
}
