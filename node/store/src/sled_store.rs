//! The sled engine behind [`Store`].
//!
//! Layout (format 2; older formats are upgraded when a store is opened, `upgrade.rs`): tree
//! `meta` holds the format version and the store's epoch; tree `catalogs` maps
//! resource code to the entry's JSON; tree `records` holds, under one-byte prefixes so that one
//! atomic sled batch covers a whole write, `c` current records, `h` superseded versions, `n`
//! record counts, and each catalog's change log: `s` maps a position to the key and version
//! written there, `p` the last position written, `f` the first still kept, and `t` indexes it by
//! time: the greatest write time so far (`u`) maps to the first position written at it, one entry
//! per write that raised it. `r` holds the cutoff of the history retention's last compaction.
//! `o` holds connectors' source offsets. A deleted record has no current version: its deletion is
//! its last version in `h`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prost::Message;
use tierlink_core::catalog::Catalog;
use tierlink_proto::v1::Record;

mod dump;
mod upgrade;

pub use dump::Dumped;
pub use upgrade::Upgraded;

use super::{
    ChangeLog, Compacted, FORMAT_VERSION, Position, PutOutcome, RecordIter, Store, StoreError,
    StoredRecord, Write,
};

const CURRENT: u8 = b'c';
const HISTORY: u8 = b'h';
const COUNT: u8 = b'n';
const CHANGE: u8 = b's';
const LAST_POSITION: u8 = b'p';
const FIRST_POSITION: u8 = b'f';
const SOURCE_OFFSET: u8 = b'o';
const WRITE_TIME: u8 = b't';
const LATEST_TIME: u8 = b'u';
const RETAINED: u8 = b'r';

/// The `meta` key of the store's format version (4 bytes, big-endian).
const FORMAT_KEY: &str = "format";

/// A time-bounded read walks the change log when it holds at most one version in this many of
/// the catalog's records; beyond that, reading every record in key order is the cheaper way
/// (a walk looks each key up, a scan reads them in order). Measured by the `street` bench.
const WALK_SHARE: u64 = 8;

/// Most change-log entries one write removes beyond those it adds, so that a retention set
/// lower on a long log is reached over several writes, none of them long.
const RETIRE_EXTRA: u64 = 4096;

/// A node's store in a sled database.
pub struct SledStore {
    /// The epoch of positions in change logs (see [`ChangeLog`]).
    epoch: String,
    // Trees before the engine: fields drop in order, and the engine must go last (see `Engine`).
    catalogs: sled::Tree,
    records: sled::Tree,
    engine: Arc<Engine>,
    /// Writes read the current version to make the next one: one writer at a time.
    writer: Mutex<()>,
    /// Positions each catalog's change log keeps; 0 keeps all.
    keep_changes: AtomicU64,
    /// What opening the store upgraded, oldest format first; empty when it was current.
    upgrades: Vec<Upgraded>,
}

/// Keeps sled's batches and flushes apart, process-wide.
///
/// sled 0.34 applies a batch under a process-wide lock that first waits for every operation in
/// flight, while a flush holds its place in that lock and waits for log buffers that other
/// threads can only write once they get in: a batch and a flush in flight together can deadlock
/// (seen with several nodes in one process, each appending to its raft log and flushing; one node
/// does the same with records and directory writes). So batches take this lock exclusively and
/// flushes (including the one sled makes when a database closes) share it, and sled's own
/// periodic flusher is off: everything acknowledged is flushed explicitly anyway.
static BATCH_OR_FLUSH: RwLock<()> = RwLock::new(());

/// The database, flushed and closed under [`BATCH_OR_FLUSH`].
struct Engine {
    db: Option<sled::Db>,
    /// Every write to any tree holds it shared; a dump holds it exclusively, so that the trees
    /// it copies are all at one point (see `dump.rs`).
    writes: RwLock<()>,
}

impl Engine {
    fn new(db: sled::Db) -> Self {
        Self {
            db: Some(db),
            writes: RwLock::new(()),
        }
    }

    /// Holds writes out of a dump in progress (and waits for one to end).
    fn write_turn(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.writes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn apply_batch(&self, tree: &sled::Tree, batch: sled::Batch) -> Result<(), StoreError> {
        let _turn = self.write_turn();
        let _exclusive = BATCH_OR_FLUSH.write().unwrap_or_else(|p| p.into_inner());
        Ok(tree.apply_batch(batch)?)
    }

    /// Sets one key; true when it replaced a value.
    fn insert(&self, tree: &sled::Tree, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        let _turn = self.write_turn();
        Ok(tree.insert(key, value)?.is_some())
    }

    fn db(&self) -> &sled::Db {
        self.db
            .as_ref()
            .expect("the database is open until the engine drops")
    }

    fn flush(&self) -> Result<(), StoreError> {
        let _shared = BATCH_OR_FLUSH.read().unwrap_or_else(|p| p.into_inner());
        self.db().flush()?;
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _shared = BATCH_OR_FLUSH.read().unwrap_or_else(|p| p.into_inner());
        drop(self.db.take());
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

/// A failure to open the database, [`StoreError::Locked`] when another process holds it.
fn locked_or(e: sled::Error, path: &Path) -> StoreError {
    match e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
        {
            StoreError::Locked(path.display().to_string())
        }
        other => other.into(),
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn record_key(kind: u8, catalog: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + catalog.len() + key.len());
    k.push(kind);
    k.extend_from_slice(catalog.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `prefix`, the catalog's code and a separator: where a catalog's entries of one kind start.
fn catalog_prefix(kind: u8, catalog: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + catalog.len());
    k.push(kind);
    k.extend_from_slice(catalog.as_bytes());
    k.push(0);
    k
}

fn change_key(catalog: &str, position: Position) -> Vec<u8> {
    let mut k = catalog_prefix(CHANGE, catalog);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// A time-index key: the catalog's prefix, then the time (microseconds, never negative here).
fn time_key(catalog: &str, micros: i64) -> Vec<u8> {
    let mut k = catalog_prefix(WRITE_TIME, catalog);
    k.extend_from_slice(&u64::try_from(micros).unwrap_or(0).to_be_bytes());
    k
}

/// The key just after every key of `kind` in `catalog`.
fn catalog_end(kind: u8, catalog: &str) -> Vec<u8> {
    let mut end = catalog_prefix(kind, catalog);
    *end.last_mut().expect("a prefix ends with a separator") = 1;
    end
}

fn history_key(catalog: &str, key: &str, version: u64) -> Vec<u8> {
    let mut k = record_key(HISTORY, catalog, key);
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// A change-log entry's value: the version, then the record's key.
fn change_value(key: &str, version: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + key.len());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(key.as_bytes());
    v
}

fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(bytes.try_into().map_err(corrupt)?))
}

/// A new store's epoch: 16 hex digits from the time and the process, distinct for every store
/// made on a node.
fn new_epoch(path: &Path) -> String {
    let mut seed = Vec::new();
    seed.extend_from_slice(
        &chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_be_bytes(),
    );
    seed.extend_from_slice(&std::process::id().to_be_bytes());
    seed.extend_from_slice(path.as_os_str().as_encoded_bytes());
    blake3::hash(&seed).to_hex()[..16].to_owned()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{micros} µs"))
}

/// Where a time-bounded read of a catalog starts.
enum Since {
    /// Every version written since is at this position or later, and the log keeps them.
    Walk(Position),
    /// Nothing was written since.
    Nothing,
    /// The log does not reach back that far, or the walk would cost more than a scan.
    Scan,
}

/// An ordered, durable key-value space in the node's database, for modules that keep records of
/// their own shape (the directory's raft log and state). Writes are atomic per call.
#[derive(Clone)]
pub struct Keyspace {
    tree: sled::Tree,
    engine: Arc<Engine>,
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

impl Keyspace {
    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Sets and removes keys in one atomic step (`None` removes).
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in changes {
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        self.engine.apply_batch(&self.tree, batch)
    }

    /// Sets keys one after another, each atomically but not all together: for changes where any
    /// prefix is a valid state (appending to a log in key order, one setting). Unlike
    /// [`Keyspace::apply`], it never waits for flushes in flight.
    pub fn put_each(
        &self,
        changes: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        for (key, value) in changes {
            self.engine.insert(&self.tree, &key, value)?;
        }
        Ok(())
    }

    /// Keys and values with `from <= key < to` (`to` unbounded when `None`), in key order.
    pub fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<KeyValue>, StoreError> {
        let iter = match to {
            Some(to) => self.tree.range(from..to),
            None => self.tree.range(from..),
        };
        iter.map(|kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::from)
        })
        .collect()
    }

    /// The greatest key in `from <= key < to`, with its value.
    pub fn last_in(&self, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        Ok(self
            .tree
            .range(from..to)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    /// Writes everything written so far to disk, blocking the thread: for blocking tasks.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.engine.flush()
    }

    /// Waits until everything written so far is on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.flush())
            .await
            .map_err(|e| StoreError::Engine(e.to_string()))?
    }
}

impl SledStore {
    /// The format upgrades that opening this store ran (each also logged as it went); empty
    /// when the store was already in [`FORMAT_VERSION`].
    pub fn upgrades(&self) -> &[Upgraded] {
        &self.upgrades
    }

    /// A named keyspace in this store's database.
    pub fn keyspace(&self, name: &str) -> Result<Keyspace, StoreError> {
        Ok(Keyspace {
            tree: self.engine.db().open_tree(format!("ks:{name}"))?,
            engine: self.engine.clone(),
        })
    }

    /// Opens (or creates) the store in `path`, with the default page cache
    /// ([`tierlink_core::config::DEFAULT_STORE_CACHE_MB`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, tierlink_core::config::DEFAULT_STORE_CACHE_MB << 20)
    }

    /// Opens (or creates) the store in `path`, keeping up to about `cache_bytes` of its pages in
    /// memory.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(|e| locked_or(e, path))?;
        keep_private(path)?;
        let meta = db.open_tree("meta")?;
        let records = db.open_tree("records")?;
        let found = match meta.get(FORMAT_KEY)? {
            Some(v) => u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                StoreError::UnknownFormat(format!(
                    "{} bytes where a format number takes 4",
                    v.len()
                ))
            })?),
            None => {
                meta.insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                FORMAT_VERSION
            }
        };
        // A store from before change logs gets its epoch now: its logs start with the next write.
        let epoch = match meta.get("epoch")? {
            Some(v) => String::from_utf8(v.to_vec()).map_err(corrupt)?,
            None => {
                let epoch = new_epoch(path);
                meta.insert("epoch", epoch.as_bytes())?;
                epoch
            }
        };
        let mut store = Self {
            epoch,
            catalogs: db.open_tree("catalogs")?,
            records,
            engine: Arc::new(Engine::new(db)),
            writer: Mutex::new(()),
            keep_changes: AtomicU64::new(0),
            upgrades: Vec::new(),
        };
        store.upgrades = upgrade::to_current(&store.engine, &meta, &store.records, found)?;
        store.engine.flush()?;
        Ok(store)
    }

    /// Checks that no process holds the store in `path` (a node serving from it), by opening it
    /// a moment; a path with no store passes.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when a process holds it.
    pub fn ensure_unused(path: &Path) -> Result<(), StoreError> {
        if !path.exists() {
            return Ok(());
        }
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(None)
            .open()
            .map_err(|e| locked_or(e, path))?;
        let _shared = BATCH_OR_FLUSH.read().unwrap_or_else(|p| p.into_inner());
        drop(db);
        Ok(())
    }

    /// Keeps the newest `positions` of each catalog's change log (0: all), so that a feed can
    /// resume from a token that recent; older entries go as later writes come. The versions they
    /// named stay in each record's history.
    pub fn keep_changes(&self, positions: u64) {
        self.keep_changes.store(positions, Ordering::Relaxed);
    }

    fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
        Record::decode(bytes).map_err(corrupt)
    }

    /// The greatest write time the catalog's time index holds.
    fn latest_time(&self, catalog: &str) -> Result<Option<i64>, StoreError> {
        self.records
            .get(catalog_prefix(LATEST_TIME, catalog))?
            .map(|v| be_u64(&v).map(|t| t as i64))
            .transpose()
    }

    /// Removes the time-index entries of writes that began before position `first`, but the
    /// last of them: it bounds the writes before the first one kept.
    fn retire_times(
        &self,
        batch: &mut sled::Batch,
        catalog: &str,
        first: Position,
    ) -> Result<(), StoreError> {
        let mut below = Vec::new();
        for kv in self
            .records
            .scan_prefix(catalog_prefix(WRITE_TIME, catalog))
        {
            let (k, v) = kv?;
            if be_u64(&v)? >= first {
                break;
            }
            below.push(k);
        }
        below.pop();
        for k in below {
            batch.remove(k);
        }
        Ok(())
    }

    /// Where the versions written at or after `since_micros` start in the change log.
    ///
    /// The first index entry at or after the time is the first write that raised the greatest
    /// write time to it or beyond: every version before it was written at an earlier time. An
    /// entry before the time shows that the index was kept by then (a catalog written before
    /// there was an index has none), so no earlier write is missing from it.
    fn since(&self, catalog: &str, since_micros: i64) -> Result<Since, StoreError> {
        let start = catalog_prefix(WRITE_TIME, catalog);
        let at = time_key(catalog, since_micros);
        let indexed_before = self.records.range(start..at.clone()).next_back().is_some();
        let first_at = self
            .records
            .range(at..catalog_end(WRITE_TIME, catalog))
            .next()
            .transpose()?;
        let log = self.change_log(catalog)?;
        Ok(match first_at {
            _ if !indexed_before => Since::Scan,
            None => Since::Nothing,
            Some((_, v)) => {
                let position = be_u64(&v)?;
                let walked = (log.last + 1).saturating_sub(position);
                if position < log.first || walked > self.record_count(catalog)? / WALK_SHARE {
                    Since::Scan
                } else {
                    Since::Walk(position)
                }
            }
        })
    }

    /// The keys in `from..to` of the versions the change log holds from `position` on, each
    /// once, in key order.
    fn keys_written_from(
        &self,
        catalog: &str,
        position: Position,
        from: &str,
        to: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let range = change_key(catalog, position)..=change_key(catalog, u64::MAX);
        for kv in self.records.range(range) {
            let (_, v) = kv?;
            let key = v
                .get(8..)
                .ok_or_else(|| corrupt("a change-log entry is shorter than its version"))?;
            let key = std::str::from_utf8(key).map_err(corrupt)?;
            if key >= from && to.is_none_or(|to| key < to) {
                keys.push(key.to_owned());
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// The cutoff of the history retention's last compaction of `catalog`: no version
    /// superseded before it is kept.
    fn retained_since(&self, catalog: &str) -> Result<Option<i64>, StoreError> {
        self.records
            .get(catalog_prefix(RETAINED, catalog))?
            .map(|v| be_u64(&v).map(|t| t as i64))
            .transpose()
    }

    /// The version a key deleted before had last: its deletion's, from history; 0 if none.
    fn last_version(&self, catalog: &str, key: &str) -> Result<u64, StoreError> {
        let mut from = record_key(HISTORY, catalog, key);
        from.push(0);
        let mut to = from.clone();
        *to.last_mut().expect("not empty") = 1;
        // Forward: sled 0.34 seeks a reverse range slowly, and most keys have no history.
        match self.records.range(from..to).last() {
            Some(kv) => Ok(Self::decode(&kv?.1)?.version),
            None => Ok(0),
        }
    }
}

/// The state of a write's keys as the write goes: what it stored so far in its batch, over what
/// the tree holds.
struct Pending<'s> {
    store: &'s SledStore,
    catalog: &'s str,
    current: HashMap<String, Option<Record>>,
}

impl Pending<'_> {
    fn current(&self, key: &str) -> Result<Option<Record>, StoreError> {
        if let Some(record) = self.current.get(key) {
            return Ok(record.clone());
        }
        self.store
            .records
            .get(record_key(CURRENT, self.catalog, key))?
            .map(|v| SledStore::decode(&v))
            .transpose()
    }
}

impl Store for SledStore {
    fn put_catalog(&self, catalog: &Catalog) -> Result<bool, StoreError> {
        let json = serde_json::to_vec(catalog).map_err(corrupt)?;
        let replaced = self
            .engine
            .insert(&self.catalogs, catalog.code.as_bytes(), json)?;
        self.engine.flush()?;
        Ok(replaced)
    }

    fn catalog(&self, code: &str) -> Result<Option<Catalog>, StoreError> {
        self.catalogs
            .get(code)?
            .map(|v| serde_json::from_slice(&v).map_err(corrupt))
            .transpose()
    }

    fn catalogs(&self) -> Result<Vec<Catalog>, StoreError> {
        self.catalogs
            .iter()
            .map(|kv| serde_json::from_slice(&kv?.1).map_err(corrupt))
            .collect()
    }

    fn record_count(&self, catalog: &str) -> Result<u64, StoreError> {
        let mut key = vec![COUNT];
        key.extend_from_slice(catalog.as_bytes());
        Ok(match self.records.get(key)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(corrupt)?),
            None => 0,
        })
    }

    fn write(&self, catalog: &str, write: Write) -> Result<PutOutcome, StoreError> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut outcome = PutOutcome::default();
        let updated_at_micros = now_micros();
        let log = self.change_log(catalog)?;
        let mut position = log.last;
        if let Some(mark) = &write.mark {
            let stored = self
                .source_offset(catalog, &mark.source)?
                .unwrap_or_default();
            if stored != mark.expected {
                return Err(StoreError::MarkMoved {
                    catalog: catalog.to_owned(),
                    name: mark.source.clone(),
                    stored,
                    expected: mark.expected.clone(),
                });
            }
            batch.insert(
                record_key(SOURCE_OFFSET, catalog, &mark.source),
                mark.offset.as_bytes(),
            );
        }
        let mut pending = Pending {
            store: self,
            catalog,
            current: HashMap::new(),
        };
        // Every new version, a deletion among them, takes the next position.
        let mut log_version = |batch: &mut sled::Batch, key: &str, version: u64| {
            position += 1;
            batch.insert(change_key(catalog, position), change_value(key, version));
        };
        for row in write.rows {
            let version = match pending.current(&row.key)? {
                Some(old) => {
                    // An upsert: the same values again store nothing, so a re-run import adds
                    // no version.
                    if old.values == row.values {
                        outcome.unchanged += 1;
                        continue;
                    }
                    batch.insert(
                        history_key(catalog, &row.key, old.version),
                        old.encode_to_vec(),
                    );
                    outcome.updated += 1;
                    old.version + 1
                }
                None => {
                    outcome.created += 1;
                    self.last_version(catalog, &row.key)? + 1
                }
            };
            log_version(&mut batch, &row.key, version);
            let record = Record {
                key: row.key,
                version,
                updated_at_micros,
                values: row.values,
                deleted: false,
            };
            batch.insert(
                record_key(CURRENT, catalog, &record.key),
                record.encode_to_vec(),
            );
            pending.current.insert(record.key.clone(), Some(record));
        }
        for key in write.deletes {
            let Some(old) = pending.current(&key)? else {
                continue;
            };
            batch.insert(history_key(catalog, &key, old.version), old.encode_to_vec());
            let ended = Record {
                version: old.version + 1,
                updated_at_micros,
                deleted: true,
                ..old
            };
            log_version(&mut batch, &key, ended.version);
            batch.insert(
                history_key(catalog, &key, ended.version),
                ended.encode_to_vec(),
            );
            batch.remove(record_key(CURRENT, catalog, &key));
            pending.current.insert(key, None);
            outcome.deleted += 1;
        }
        let versions = position - log.last;
        if versions == 0 && write.mark.is_none() {
            return Ok(outcome);
        }
        if versions > 0 {
            batch.insert(
                catalog_prefix(LAST_POSITION, catalog),
                &position.to_be_bytes(),
            );
            // Indexed by the greatest write time so far, so that the index stays in write
            // order even if the clock steps back.
            let latest = self.latest_time(catalog)?;
            if latest.is_none_or(|t| updated_at_micros > t) {
                batch.insert(
                    time_key(catalog, updated_at_micros),
                    &(log.last + 1).to_be_bytes(),
                );
                batch.insert(
                    catalog_prefix(LATEST_TIME, catalog),
                    &updated_at_micros.to_be_bytes(),
                );
            }
            let keep = self.keep_changes.load(Ordering::Relaxed);
            if keep > 0 && position >= log.first.saturating_add(keep) {
                let first = (position + 1 - keep).min(log.first + versions + RETIRE_EXTRA);
                for retired in log.first..first {
                    batch.remove(change_key(catalog, retired));
                }
                self.retire_times(&mut batch, catalog, first)?;
                batch.insert(
                    catalog_prefix(FIRST_POSITION, catalog),
                    &first.to_be_bytes(),
                );
            }
            let mut count_key = vec![COUNT];
            count_key.extend_from_slice(catalog.as_bytes());
            let count = (self.record_count(catalog)? + outcome.created)
                .checked_sub(outcome.deleted)
                .ok_or_else(|| {
                    corrupt(format!(
                        "the record count of {catalog} is below its records"
                    ))
                })?;
            batch.insert(count_key, &count.to_be_bytes());
        }
        self.engine.apply_batch(&self.records, batch)?;
        // The next writer may read these versions while they are flushed: a later batch is
        // never on disk without this one (sled's log is written in order), and each call returns
        // only once its own batch is.
        drop(writer);
        self.engine.flush()?;
        Ok(outcome)
    }

    fn source_offset(&self, catalog: &str, source: &str) -> Result<Option<String>, StoreError> {
        self.records
            .get(record_key(SOURCE_OFFSET, catalog, source))?
            .map(|v| String::from_utf8(v.to_vec()).map_err(corrupt))
            .transpose()
    }

    fn scan(&self, catalog: &str, from: &str, to: Option<&str>) -> RecordIter {
        let start = record_key(CURRENT, catalog, from);
        let end = match to {
            Some(to) => record_key(CURRENT, catalog, to),
            None => {
                let mut end = record_key(CURRENT, catalog, "");
                *end.last_mut().expect("record keys end with a separator") = 1;
                end
            }
        };
        Box::new(
            self.records
                .range(start..end)
                .map(|kv| Ok(StoredRecord(kv?.1))),
        )
    }

    fn scan_since(
        &self,
        catalog: &str,
        from: &str,
        to: Option<&str>,
        since_micros: i64,
    ) -> RecordIter {
        let written_since = move |record: Result<StoredRecord, StoreError>| match record {
            Ok(r) => match r.updated_at_micros() {
                Ok(t) if t < since_micros => None,
                Ok(_) => Some(Ok(r)),
                Err(e) => Some(Err(e)),
            },
            Err(e) => Some(Err(e)),
        };
        let start = match self.since(catalog, since_micros) {
            Ok(start) => start,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        match start {
            Since::Nothing => Box::new(std::iter::empty()),
            Since::Scan => Box::new(self.scan(catalog, from, to).filter_map(written_since)),
            Since::Walk(position) => {
                let keys = match self.keys_written_from(catalog, position, from, to) {
                    Ok(keys) => keys,
                    Err(e) => return Box::new(std::iter::once(Err(e))),
                };
                let records = self.records.clone();
                let catalog = catalog.to_owned();
                // A key deleted since has no current version: it is not in the answer, as it
                // is not in a scan's.
                let current = move |key: String| {
                    records
                        .get(record_key(CURRENT, &catalog, &key))
                        .map_err(StoreError::from)
                        .transpose()
                        .map(|r| r.map(StoredRecord))
                };
                Box::new(
                    keys.into_iter()
                        .filter_map(current)
                        .filter_map(written_since),
                )
            }
        }
    }

    fn compact_history(
        &self,
        catalog: &str,
        before_micros: i64,
        from: &str,
        max: usize,
    ) -> Result<Compacted, StoreError> {
        let max = max.max(1);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut outcome = Compacted::default();
        // Records looked at in one step, removable or not, so that a step stays short.
        let mut examined = 0usize;
        let prefix_len = catalog_prefix(HISTORY, catalog).len();
        let range = record_key(HISTORY, catalog, from)..catalog_end(HISTORY, catalog);
        let mut versions = self.records.range(range).peekable();
        // One record's kept versions at a time, oldest first: (history key, written at).
        let mut record: Vec<(sled::IVec, i64)> = Vec::new();
        while let Some(kv) = versions.next() {
            let (k, v) = kv?;
            let key = k
                .get(prefix_len..k.len().saturating_sub(9))
                .ok_or_else(|| corrupt("a history key is shorter than its version"))?
                .to_vec();
            record.push((k, StoredRecord(v).updated_at_micros()?));
            let same_record = |next: &Option<&Result<(sled::IVec, sled::IVec), sled::Error>>| matches!(next, Some(Ok((n, _))) if n.len() > prefix_len + 9 && n[prefix_len..n.len() - 9] == key[..]);
            if same_record(&versions.peek()) {
                continue;
            }
            let key = String::from_utf8(key).map_err(corrupt)?;
            // Each version was superseded when the next was written; the newest kept in
            // history by the current version, or, when there is none, it is the deletion.
            let current = self.records.get(record_key(CURRENT, catalog, &key))?;
            let superseded_at = record
                .iter()
                .skip(1)
                .map(|(_, t)| Ok(*t))
                .chain(current.map(|c| StoredRecord(c).updated_at_micros()))
                .collect::<Result<Vec<i64>, StoreError>>()?;
            for ((k, _), at) in record.iter().zip(superseded_at) {
                if at >= before_micros {
                    break;
                }
                if outcome.removed as usize == max {
                    outcome.next = Some(key.clone());
                    break;
                }
                batch.remove(k);
                outcome.removed += 1;
            }
            record.clear();
            examined += 1;
            if outcome.next.is_some() {
                break;
            }
            if examined >= max.saturating_mul(16) {
                outcome.next = match versions.next().transpose()? {
                    Some((k, _)) => Some(
                        String::from_utf8(k[prefix_len..k.len() - 9].to_vec()).map_err(corrupt)?,
                    ),
                    None => None,
                };
                break;
            }
        }
        if outcome.removed > 0 {
            let cutoff = self
                .retained_since(catalog)?
                .unwrap_or(0)
                .max(before_micros);
            batch.insert(catalog_prefix(RETAINED, catalog), &cutoff.to_be_bytes());
            self.engine.apply_batch(&self.records, batch)?;
            drop(writer);
            self.engine.flush()?;
        }
        Ok(outcome)
    }

    fn get(&self, catalog: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self
            .records
            .get(record_key(CURRENT, catalog, key))?
            .map(StoredRecord))
    }

    fn change_log(&self, catalog: &str) -> Result<ChangeLog, StoreError> {
        let last = match self.records.get(catalog_prefix(LAST_POSITION, catalog))? {
            Some(v) => be_u64(&v)?,
            None => 0,
        };
        let first = match self.records.get(catalog_prefix(FIRST_POSITION, catalog))? {
            Some(v) => be_u64(&v)?,
            None => 1,
        };
        Ok(ChangeLog {
            epoch: self.epoch.clone(),
            first,
            last,
        })
    }

    fn changes(
        &self,
        catalog: &str,
        after: Position,
        max: usize,
    ) -> Result<Vec<(Position, StoredRecord)>, StoreError> {
        let start = change_key(catalog, after.saturating_add(1));
        let end = change_key(catalog, u64::MAX);
        let mut changes = Vec::new();
        for kv in self.records.range(start..=end).take(max) {
            let (k, v) = kv?;
            let position = be_u64(&k[k.len() - 8..])?;
            let (version, key) = v
                .split_at_checked(8)
                .ok_or_else(|| corrupt("a change-log entry is shorter than its version"))?;
            let version = be_u64(version)?;
            let key = std::str::from_utf8(key).map_err(corrupt)?;
            // The version is current, or has been superseded since and kept as history.
            let current = self.records.get(record_key(CURRENT, catalog, key))?;
            let record = match current {
                Some(c) if Self::decode(&c)?.version == version => c,
                _ => match self.records.get(history_key(catalog, key, version))? {
                    Some(kept) => kept,
                    None => {
                        return Err(match self.retained_since(catalog)? {
                            Some(before) => StoreError::Removed {
                                catalog: catalog.to_owned(),
                                key: key.to_owned(),
                                version,
                                before: rfc3339(before),
                            },
                            None => corrupt(format!(
                                "version {version} of {key:?} in {catalog}, at position {position} of its change log, is not stored"
                            )),
                        });
                    }
                },
            };
            changes.push((position, StoredRecord(record)));
        }
        Ok(changes)
    }

    fn history(&self, catalog: &str, key: &str) -> Result<Vec<StoredRecord>, StoreError> {
        let mut prefix = record_key(HISTORY, catalog, key);
        prefix.push(0);
        let mut versions = self
            .records
            .scan_prefix(&prefix)
            .map(|kv| Ok::<_, StoreError>(StoredRecord(kv?.1)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(current) = self.records.get(record_key(CURRENT, catalog, key))? {
            versions.push(StoredRecord(current));
        }
        Ok(versions)
    }
}

/// Makes the store's directory the node's user's alone, whatever the umask made of it: it holds
/// records, the audit and webhook credentials.
fn keep_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::Engine(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
