//! Upgrading a store written in an older format, when it is opened.
//!
//! Formats:
//! - **1**: the layout of `sled_store.rs` before the time index. Stores made before the index
//!   existed have none for the changes written then; stores made after it have it only from
//!   then on, with no way to tell the two apart.
//! - **2**: every catalog's change log is indexed by write time (`t` and `u` in `records`) from
//!   its first kept position on.
//!
//! The 1 → 2 upgrade rebuilds each catalog's time index from its change log, in steps of
//! [`STEP`] positions, each step one atomic batch followed by its progress in `meta`
//! (`upgrade:2`: the catalog, the next position, and the greatest write time so far), so that a
//! process killed part-way resumes from its last step when the store is opened again: a step
//! done twice writes the same entries. The format becomes 2 only once every catalog is indexed.

use super::{
    Engine, FIRST_POSITION, FORMAT_KEY, LAST_POSITION, LATEST_TIME, RETAINED, WRITE_TIME, be_u64,
    catalog_end, catalog_prefix, change_key, corrupt, history_key, record_key, time_key,
};
use crate::{FORMAT_VERSION, Position, StoreError, StoredRecord};

/// Change-log positions indexed in one atomic step.
const STEP: u64 = 10_000;

/// The `meta` key of the 1 → 2 upgrade's progress.
const PROGRESS_KEY: &str = "upgrade:2";

/// One upgrade step done when a store was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// The format upgraded from.
    pub from: u32,
    /// The format upgraded to.
    pub to: u32,
    /// The catalog whose data it rewrote.
    pub catalog: String,
    /// What it did, for the log.
    pub what: String,
    /// Entries it wrote.
    pub entries: u64,
}

/// Brings a store found in format `found` to [`FORMAT_VERSION`], logging each step; returns
/// the steps done.
///
/// # Errors
/// [`StoreError::Format`] for a format newer than this build's, [`StoreError::UnknownFormat`]
/// for one that never existed (0).
pub(super) fn to_current(
    engine: &Engine,
    meta: &sled::Tree,
    records: &sled::Tree,
    found: u32,
) -> Result<Vec<Upgraded>, StoreError> {
    if found > FORMAT_VERSION {
        return Err(StoreError::Format {
            found,
            supported: FORMAT_VERSION,
        });
    }
    if found == 0 {
        return Err(StoreError::UnknownFormat("format 0".into()));
    }
    let mut done = Vec::new();
    if found == 1 {
        tracing::info!(
            "store format 1 found: upgrading to format 2, which indexes every catalog's change log by write time; an interrupted upgrade resumes when the node starts again"
        );
        done = index_write_times(engine, meta, records)?;
        let mut finished = sled::Batch::default();
        finished.insert(FORMAT_KEY, &2u32.to_be_bytes());
        finished.remove(PROGRESS_KEY);
        engine.apply_batch(meta, finished)?;
        engine.flush()?;
        tracing::info!(catalogs = done.len(), "store upgraded to format 2");
    }
    Ok(done)
}

/// Where the upgrade stands: the catalog being indexed, the next position to index in it, and
/// the greatest write time indexed so far.
struct Progress {
    catalog: String,
    next: Position,
    latest: Option<i64>,
}

impl Progress {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.catalog.len() + 17);
        v.extend_from_slice(&self.next.to_be_bytes());
        v.extend_from_slice(&self.latest.unwrap_or(-1).to_be_bytes());
        v.extend_from_slice(self.catalog.as_bytes());
        v
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || corrupt("the upgrade's progress in meta is shorter than it is written");
        let next = be_u64(bytes.get(..8).ok_or_else(bad)?)?;
        let latest = be_u64(bytes.get(8..16).ok_or_else(bad)?)? as i64;
        let catalog = String::from_utf8(bytes[16..].to_vec()).map_err(corrupt)?;
        Ok(Self {
            catalog,
            next,
            latest: (latest >= 0).then_some(latest),
        })
    }
}

/// The catalogs that have a change log, in code order.
fn logged_catalogs(records: &sled::Tree) -> Result<Vec<String>, StoreError> {
    records
        .scan_prefix([LAST_POSITION])
        .map(|kv| {
            let (k, _) = kv?;
            let code = k[1..].strip_suffix(&[0]).unwrap_or(&k[1..]);
            String::from_utf8(code.to_vec()).map_err(corrupt)
        })
        .collect()
}

fn position(records: &sled::Tree, kind: u8, catalog: &str) -> Result<Option<u64>, StoreError> {
    records
        .get(catalog_prefix(kind, catalog))?
        .map(|v| be_u64(&v))
        .transpose()
}

/// When the version at a change-log entry was written: from the version itself, current or
/// kept as history; for a version the history retention removed, the retention's cutoff, later
/// than that version was written, so that the index errs towards walking more of the log.
fn written_at(
    records: &sled::Tree,
    catalog: &str,
    entry: &[u8],
) -> Result<Option<i64>, StoreError> {
    let (version, key) = entry
        .split_at_checked(8)
        .ok_or_else(|| corrupt("a change-log entry is shorter than its version"))?;
    let version = be_u64(version)?;
    let key = std::str::from_utf8(key).map_err(corrupt)?;
    let current = records
        .get(record_key(super::CURRENT, catalog, key))?
        .map(StoredRecord);
    let stored = match current {
        Some(c) if c.decode()?.version == version => Some(c),
        _ => records
            .get(history_key(catalog, key, version))?
            .map(StoredRecord),
    };
    match stored {
        Some(record) => record.updated_at_micros().map(Some),
        None => position(records, RETAINED, catalog).map(|t| t.map(|t| t as i64)),
    }
}

/// Rebuilds every catalog's time index from its change log (format 1 → 2), resuming from the
/// progress kept in `meta`.
fn index_write_times(
    engine: &Engine,
    meta: &sled::Tree,
    records: &sled::Tree,
) -> Result<Vec<Upgraded>, StoreError> {
    let resume = meta
        .get(PROGRESS_KEY)?
        .map(|v| Progress::decode(&v))
        .transpose()?;
    let mut done = Vec::new();
    for catalog in logged_catalogs(records)? {
        let mut progress = match &resume {
            Some(r) if catalog < r.catalog => continue,
            Some(r) if catalog == r.catalog => {
                tracing::info!(%catalog, position = r.next, "resuming the time index where the upgrade stopped");
                Progress {
                    catalog: catalog.clone(),
                    next: r.next,
                    latest: r.latest,
                }
            }
            _ => Progress {
                next: position(records, FIRST_POSITION, &catalog)?.unwrap_or(1),
                catalog: catalog.clone(),
                latest: None,
            },
        };
        let last = position(records, LAST_POSITION, &catalog)?.unwrap_or(0);
        let mut entries = 0;
        let mut fresh = progress.latest.is_none();
        while progress.next <= last {
            let mut batch = sled::Batch::default();
            if fresh {
                // An index kept only for later writes is dropped: rebuilt whole, it stays in
                // write order.
                for kv in records
                    .range(catalog_prefix(WRITE_TIME, &catalog)..catalog_end(WRITE_TIME, &catalog))
                {
                    batch.remove(kv?.0);
                }
                fresh = false;
            }
            let end = progress.next.saturating_add(STEP).min(last + 1);
            let range = change_key(&catalog, progress.next)..change_key(&catalog, end);
            for kv in records.range(range) {
                let (k, v) = kv?;
                let at = be_u64(&k[k.len() - 8..])?;
                let Some(written) = written_at(records, &catalog, &v)? else {
                    continue;
                };
                if progress.latest.is_none_or(|t| written > t) {
                    batch.insert(time_key(&catalog, written), &at.to_be_bytes());
                    progress.latest = Some(written);
                    entries += 1;
                }
            }
            if let Some(latest) = progress.latest {
                batch.insert(catalog_prefix(LATEST_TIME, &catalog), &latest.to_be_bytes());
            }
            engine.apply_batch(records, batch)?;
            progress.next = end;
            engine.insert(meta, PROGRESS_KEY.as_bytes(), progress.encode())?;
            engine.flush()?;
        }
        let what = format!(
            "indexed the change log of {catalog} by write time: {entries} index entries up to position {last}"
        );
        tracing::info!(%catalog, entries, last, "store format 1 → 2: {what}");
        done.push(Upgraded {
            from: 1,
            to: 2,
            catalog,
            what,
            entries,
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
