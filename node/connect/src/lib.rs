//! Connectors between a Tierlink node and the databases legacy bureau systems keep, which
//! nobody may change: a table read into a catalog as it changes, and a catalog's change feed
//! applied into a table.
//!
//! # Layout
//! - [`postgres`]: PostgreSQL, both directions, over tokio-postgres:
//!   - [`postgres::source`]: a table or view read incrementally by an updated-at column and
//!     its primary key, each batch written to the node with the offset after it, atomically;
//!     deletions found by reconciliation;
//!   - [`postgres::sink`]: a catalog's feed upserted into a table in order, the resume token
//!     stored in the same transaction.
//! - [`ConnectError`]: what went wrong, and what to do.
//!
//! # Direction
//! Builds on `tierlink-client` (it writes and reads through the node's own gRPC services, as
//! the node's administrator) and `tierlink-core` (mapping files, record checks). The node does
//! not depend on it; the command does.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod postgres;

pub use error::ConnectError;
