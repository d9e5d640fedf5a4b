//! A node's holdings: its catalogs and their records, checked against the catalog model before
//! they reach the [`Store`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tierlink_core::catalog::{Catalog, CatalogError, RecordError, RecordSchema};

use crate::{PutOutcome, Store, StoreError, Write};

/// A catalog entry with its compiled record checks.
#[derive(Debug)]
pub struct Entry {
    /// The catalog entry.
    pub catalog: Catalog,
    /// Checks for its records.
    pub schema: RecordSchema,
}

/// Why a catalog or records were refused. Nothing is stored when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The catalog entry breaks the catalog model.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// No catalog with this code is published here.
    #[error("no catalog {0} on this node: list them with `tierlink catalog list`")]
    UnknownCatalog(String),
    /// The columns do not name the catalog's items.
    #[error("catalog {catalog}: {problem}")]
    Columns {
        /// Catalog written to.
        catalog: String,
        /// What is wrong with the columns.
        problem: String,
    },
    /// Some records break their catalog's rules; the batch was not stored.
    #[error("catalog {catalog}: the batch was refused and nothing was stored; problems found: {}\n{}", .errors.len(), list(.errors))]
    Records {
        /// Catalog written to.
        catalog: String,
        /// Every problem found.
        errors: Vec<RecordError>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(errors: &[RecordError]) -> String {
    const SHOWN: usize = 20;
    let mut text: Vec<String> = errors
        .iter()
        .take(SHOWN)
        .map(|e| format!("  {e}"))
        .collect();
    if errors.len() > SHOWN {
        text.push(format!("  … and {} more", errors.len() - SHOWN));
    }
    text.join("\n")
}

/// Catalogs and records of one node.
pub struct Registry {
    store: Arc<dyn Store>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    /// Counts the writes that stored a version, for feeds to wait on.
    written: tokio::sync::watch::Sender<u64>,
}

impl Registry {
    /// Loads the catalogs already in `store`.
    pub fn open(store: Arc<dyn Store>) -> Result<Self, RegistryError> {
        let mut entries = HashMap::new();
        for catalog in store.catalogs()? {
            let schema = RecordSchema::new(&catalog)?;
            entries.insert(catalog.code.clone(), Arc::new(Entry { catalog, schema }));
        }
        Ok(Self {
            store,
            entries: RwLock::new(entries),
            written: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The store behind the registry, for reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A receiver marked changed after every write that stored a version, once it is on disk:
    /// what a feed waits on before it reads the change log again.
    pub fn writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Adds or replaces a catalog entry; true when one was replaced. An entry that already has
    /// records may only append items (see [`Catalog::check_replaces`]).
    pub fn put_catalog(&self, catalog: Catalog) -> Result<bool, RegistryError> {
        let schema = RecordSchema::new(&catalog)?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = entries.get(&catalog.code)
            && self.store.record_count(&catalog.code)? > 0
        {
            catalog.check_replaces(&old.catalog)?;
        }
        let replaced = self.store.put_catalog(&catalog)?;
        entries.insert(catalog.code.clone(), Arc::new(Entry { catalog, schema }));
        Ok(replaced)
    }

    /// One catalog entry.
    pub fn entry(&self, code: &str) -> Result<Arc<Entry>, RegistryError> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(code)
            .cloned()
            .ok_or_else(|| RegistryError::UnknownCatalog(code.to_owned()))
    }

    /// Every catalog entry, by code.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = entries.values().cloned().collect();
        all.sort_by(|a, b| a.catalog.code.cmp(&b.catalog.code));
        all
    }

    /// Checks and writes a batch of records given as rows of values under `columns` (item codes
    /// or names), all or none: every record that differs from its stored current version (or is
    /// new) is stored as a new version; the rest are counted as unchanged.
    pub fn put_records(
        &self,
        catalog: &str,
        columns: &[String],
        rows: Vec<Vec<String>>,
    ) -> Result<PutOutcome, RegistryError> {
        self.put_records_with(catalog, columns, rows, Write::default(), |_| Ok(()))
    }

    /// As [`Self::put_records`], with the deletions and source mark of `also` (its rows are
    /// the checked `rows`) in the same write, calling `before` with the whole write just before
    /// it is stored (to record it in the audit, flushed with the records); when `before` fails,
    /// nothing is stored.
    pub fn put_records_with(
        &self,
        catalog: &str,
        columns: &[String],
        rows: Vec<Vec<String>>,
        also: Write,
        before: impl FnOnce(&Write) -> Result<(), StoreError>,
    ) -> Result<PutOutcome, RegistryError> {
        let entry = self.entry(catalog)?;
        // A write of deletions or a mark alone names no columns.
        let rows = if rows.is_empty() && columns.is_empty() {
            Vec::new()
        } else {
            let columns =
                entry
                    .schema
                    .columns(columns)
                    .map_err(|problem| RegistryError::Columns {
                        catalog: catalog.to_owned(),
                        problem,
                    })?;
            entry
                .schema
                .rows(&columns, rows)
                .map_err(|errors| RegistryError::Records {
                    catalog: catalog.to_owned(),
                    errors,
                })?
        };
        let write = Write { rows, ..also };
        before(&write)?;
        let outcome = self.store.write(catalog, write)?;
        if outcome.created + outcome.updated + outcome.deleted > 0 {
            self.written.send_modify(|n| *n += 1);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
