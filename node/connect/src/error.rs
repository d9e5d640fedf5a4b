//! Connector errors.

use tierlink_client::{ClientError, error_chain};
use tierlink_core::import::ImportError;

/// Why a connector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The database refused or failed; its own message and, when it gave one, its hint.
    #[error("PostgreSQL: {message}")]
    Database {
        /// What it said.
        message: String,
        /// Whether it could not be reached or was shutting down (SQLSTATE class 08, 57P0x, or
        /// no answer at all), or gave up a transaction it may take again (40001, 40P01).
        transient: bool,
    },
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
        let transient = match e.code() {
            Some(code) => {
                let code = code.code();
                code.starts_with("08")
                    || code.starts_with("57P0")
                    || code == "40001"
                    || code == "40P01"
            }
            None => true,
        };
        let message = match e.as_db_error() {
            Some(db) => match db.hint() {
                Some(hint) => format!("{} ({hint})", db.message()),
                None => db.message().to_owned(),
            },
            None => error_chain(&e),
        };
        ConnectError::Database { message, transient }
    }
}

impl ConnectError {
    /// Whether trying again later may succeed: the database or the node could not be reached,
    /// or the node is stopping or busy. Refusals, rows the catalog refuses and tables that do
    /// not fit are not.
    pub fn is_transient(&self) -> bool {
        use tonic::Code;
        match self {
            ConnectError::Database { transient, .. } => *transient,
            ConnectError::Node(ClientError::Connect { .. }) => true,
            ConnectError::Node(ClientError::Status(s)) => matches!(
                s.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
            ),
            _ => false,
        }
    }
}
