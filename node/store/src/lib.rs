//! Where a node keeps its catalogs and records: the [`Store`] boundary and its sled engine, the
//! [`registry`] that checks catalogs and records before they are stored, and the hash-chained
//! [`audit`] log.
//!
//! A write is an upsert by primary key: a record whose values differ from the stored current
//! version (or that is new) becomes a new version, the superseded one kept as history; one whose
//! values equal it stores nothing. A deletion stores a last version marked deleted, which keeps
//! the values it ends; a key written again after it starts from the next version. A write may
//! carry a connector's [`SourceMark`], stored with its records. Every write is on disk before
//! the call returns. A batch is written whole or not at all. Superseded versions are kept until a
//! history compaction ([`Store::compact_history`]) removes those superseded before a time the
//! administrator's retention sets; a record's current version, and a deleted record's deletion,
//! are never removed. sled 0.34 calls itself
//! beta, so no other crate names it: another engine only needs to implement [`Store`] and pass
//! the same suite of tests.
//!
//! # Layout
//! - this file: the [`Store`] trait, [`StoredRecord`], [`StoreError`];
//! - `sled_store.rs`: the sled engine ([`SledStore`]) and its [`Keyspace`]s; `dump.rs` beside
//!   it, a whole store as one stream at one point (backups) and a store made from one;
//!   `upgrade.rs`, what each format changed and the upgrade from the one before;
//! - [`registry`]: catalogs with their compiled checks, and the checked write path;
//! - [`audit`]: the audit log, its entries, and anchoring its head in the directory.
//!
//! # Direction
//! Depends on `tierlink-core` (catalogs) and `tierlink-proto` (the stored record's encoding);
//! the node (`tierlink-node`), the sandbox and the command build on it. It knows nothing of gRPC
//! or the directory's replica.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod registry;
mod sled_store;

use prost::Message;
use tierlink_core::catalog::{Catalog, Row};
use tierlink_proto::v1::Record;
pub use tierlink_proto::v1::SourceMark;

pub use sled_store::{Dumped, Keyspace, SledStore, Upgraded};

/// Version of the on-disk layout. A node upgrades a store written in an older version when it
/// opens it (what each version changed: `sled_store/upgrade.rs`) and refuses a newer one.
pub const FORMAT_VERSION: u32 = 2;

/// Current records of a catalog in key order.
pub type RecordIter = Box<dyn Iterator<Item = Result<StoredRecord, StoreError>> + Send>;

/// A record as stored: an encoded `tierlink.v1.Record`, shared with the engine's cache so that
/// reading it copies nothing. The exchange projects these bytes without decoding them.
#[derive(Clone, Debug)]
pub struct StoredRecord(sled::IVec);

impl StoredRecord {
    /// The encoded record.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The record's `updated_at_micros`, read from its encoding without decoding its values.
    pub fn updated_at_micros(&self) -> Result<i64, StoreError> {
        use prost::encoding::{WireType, decode_key, decode_varint};
        let corrupt =
            |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("stored record: {e}"));
        let mut buf = self.bytes();
        // The key (1) and version (2) come before the time (3): prost writes fields by tag.
        while !buf.is_empty() {
            let (tag, wire) = decode_key(&mut buf).map_err(|e| corrupt(&e))?;
            match wire {
                WireType::Varint => {
                    let v = decode_varint(&mut buf).map_err(|e| corrupt(&e))?;
                    if tag == 3 {
                        return Ok(v as i64);
                    }
                }
                WireType::LengthDelimited => {
                    let len = decode_varint(&mut buf).map_err(|e| corrupt(&e))? as usize;
                    buf = buf
                        .get(len..)
                        .ok_or_else(|| corrupt(&"a field runs past the end"))?;
                }
                other => return Err(corrupt(&format!("unexpected wire type {other:?}"))),
            }
        }
        Ok(0)
    }

    /// The decoded record.
    pub fn decode(&self) -> Result<Record, StoreError> {
        Record::decode(self.bytes()).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

impl From<Record> for StoredRecord {
    fn from(record: Record) -> Self {
        StoredRecord(record.encode_to_vec().into())
    }
}

/// What a batch write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Records with a key not stored before.
    pub created: u64,
    /// Records that got a new version of an existing key.
    pub updated: u64,
    /// Records whose values equal the stored current version: nothing was stored for them.
    pub unchanged: u64,
    /// Records deleted: each got a last version marked deleted.
    pub deleted: u64,
}

/// One atomic write to a catalog: rows to upsert, keys to delete, and a connector's place in
/// its source, all stored or none.
#[derive(Clone, Debug, Default)]
pub struct Write {
    /// Checked rows, upserted by key.
    pub rows: Vec<Row>,
    /// Keys whose current records are deleted; a key with none is left as it is.
    pub deletes: Vec<String>,
    /// Stored with the records when given, if the stored offset is still `expected`.
    pub mark: Option<SourceMark>,
}

/// A place in a catalog's write order: the number of versions written to the catalog since its
/// change log began (1 for the first). A position is meaningful only with the [`ChangeLog`]'s
/// `epoch`, which a store gets when it is created: a store made anew counts from 1 again.
pub type Position = u64;

/// What a catalog's change log holds: every version written at positions `first..=last`, in
/// write order (none when `last < first`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeLog {
    /// The store's epoch: 16 hex digits drawn when it was created.
    pub epoch: String,
    /// The oldest position still kept.
    pub first: Position,
    /// The newest position written; 0 before any.
    pub last: Position,
}

/// What one step of a history compaction did (see [`Store::compact_history`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Superseded versions removed in this step.
    pub removed: u64,
    /// The record key the next step starts at; `None` once the catalog's history has been gone
    /// through.
    pub next: Option<String>,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error(
        "the data directory {0} is in use by another process: is this node already serving? Stop it, or run the command against the running node"
    )]
    Locked(String),
    /// The storage engine failed.
    #[error(
        "storage engine failed: {0}; check free disk space and the data directory's permissions"
    )]
    Engine(String),
    /// A version the history retention removed was asked for.
    #[error(
        "version {version} of record {key:?} in catalog {catalog} was removed by the history retention, which keeps no version superseded before {before}: read the record's current version or its history (from the oldest version kept), or, following a feed, read the catalog again and follow on from that read"
    )]
    Removed {
        /// The catalog.
        catalog: String,
        /// The record's key.
        key: String,
        /// The version asked for.
        version: u64,
        /// The retention's cutoff, RFC 3339 (UTC).
        before: String,
    },
    /// Stored bytes could not be decoded.
    #[error("stored data is unreadable ({0}): restore the data directory from a backup")]
    Corrupt(String),
    /// A write's [`SourceMark`] expected an offset other than the one stored.
    #[error(
        "source {name} of catalog {catalog} is at offset {stored:?}, not {expected:?}: another connector of the same source has written since; run one connector per source, and start it again to resume from the stored offset"
    )]
    MarkMoved {
        /// The catalog written.
        catalog: String,
        /// The source named.
        name: String,
        /// The offset stored.
        stored: String,
        /// The offset the write expected.
        expected: String,
    },
    /// The store was written by a newer version of Tierlink.
    #[error(
        "the data directory holds store format {found}, newer than this build's format {supported}: run the Tierlink version that wrote it, or a newer one (a store is never downgraded)"
    )]
    Format {
        /// Format found on disk.
        found: u32,
        /// Format this build reads and writes.
        supported: u32,
    },
    /// The store's format version is not one Tierlink ever wrote.
    #[error(
        "the data directory's store format is unknown ({0}): it was not written by Tierlink, or is damaged; restore the node from a backup with `tierlink restore`"
    )]
    UnknownFormat(String),
    /// A store dump (a backup's store) is not whole.
    #[error(
        "the store in the backup is not a whole store dump ({0}): the archive is damaged or cut short; take the backup again, or use another"
    )]
    Dump(String),
}

/// The storage boundary of a node.
pub trait Store: Send + Sync + 'static {
    /// Adds or replaces a catalog entry; true when one was replaced.
    fn put_catalog(&self, catalog: &Catalog) -> Result<bool, StoreError>;
    /// One catalog entry.
    fn catalog(&self, code: &str) -> Result<Option<Catalog>, StoreError>;
    /// Every catalog entry, by code.
    fn catalogs(&self) -> Result<Vec<Catalog>, StoreError>;
    /// Number of current records of a catalog.
    fn record_count(&self, catalog: &str) -> Result<u64, StoreError>;
    /// Writes a batch of checked rows, all or none: each as a new version, except a row whose
    /// values equal its key's current version, which stores nothing (counted as unchanged).
    fn put_records(&self, catalog: &str, rows: Vec<Row>) -> Result<PutOutcome, StoreError> {
        self.write(
            catalog,
            Write {
                rows,
                ..Write::default()
            },
        )
    }
    /// Applies a [`Write`], all or none: rows as [`Store::put_records`] writes them, then the
    /// deletions, then the mark. A key both written and deleted ends deleted.
    ///
    /// # Errors
    /// [`StoreError::MarkMoved`] when the mark's `expected` is not the stored offset (nothing
    /// is written).
    fn write(&self, catalog: &str, write: Write) -> Result<PutOutcome, StoreError>;
    /// The offset stored by the last write that marked `source` in `catalog`.
    fn source_offset(&self, catalog: &str, source: &str) -> Result<Option<String>, StoreError>;
    /// Current records with `from <= key < to` (`to` unbounded when `None`), in key order.
    fn scan(&self, catalog: &str, from: &str, to: Option<&str>) -> RecordIter;
    /// Current records with `from <= key < to` written at or after `since_micros` (the record's
    /// `updated_at_micros`), in key order: the records [`Store::scan`] gives with that time or
    /// later. An engine may find them through its change log rather than by reading every
    /// record.
    fn scan_since(
        &self,
        catalog: &str,
        from: &str,
        to: Option<&str>,
        since_micros: i64,
    ) -> RecordIter;
    /// The current version of the record with `key`; `None` when there is none (or it was
    /// deleted). For reads that
    /// send records in another order than the keys' (keys hashed).
    fn get(&self, catalog: &str, key: &str) -> Result<Option<StoredRecord>, StoreError>;
    /// Every version of one record kept, oldest first, deletions among them; empty when the key
    /// was never written. Versions are numbered from 1 without gaps: when the oldest returned is
    /// above 1, the history retention removed those before it.
    fn history(&self, catalog: &str, key: &str) -> Result<Vec<StoredRecord>, StoreError>;
    /// The positions `catalog`'s change log keeps. Every version a write stores gets the next
    /// position in the same atomic write; an unchanged row gets none.
    fn change_log(&self, catalog: &str) -> Result<ChangeLog, StoreError>;
    /// Up to `max` versions written to `catalog` after position `after`, in write order, each
    /// with its position. Positions before the log's `first` are not kept: asking for them is
    /// the caller's error to catch with [`Store::change_log`] first.
    ///
    /// # Errors
    /// [`StoreError::Removed`] when a version in that span was removed by the history retention.
    fn changes(
        &self,
        catalog: &str,
        after: Position,
        max: usize,
    ) -> Result<Vec<(Position, StoredRecord)>, StoreError>;
    /// One bounded step of the history retention: removes, in one atomic write, up to `max`
    /// (at least 1) versions of `catalog` superseded (by the record's next version, a deletion
    /// among them) before `before_micros`, going through the records from key `from` on in key
    /// order. A record's current version and a deleted record's deletion stay. Call again from
    /// [`Compacted::next`] until it is `None`; a removed version then asked for is refused as
    /// [`StoreError::Removed`].
    fn compact_history(
        &self,
        catalog: &str,
        before_micros: i64,
        from: &str,
        max: usize,
    ) -> Result<Compacted, StoreError>;
}

#[cfg(test)]
pub(crate) mod suite;
