//! The history retention (`[store] keep_history_days`): versions superseded longer ago than the
//! administrator keeps them are removed from the store in bounded steps
//! ([`Store::compact_history`]), and each catalog's removal is audited: which catalog, how many
//! versions, superseded before when. A feed or a reader that reaches for a removed version is
//! told the retention removed it.

use std::sync::Arc;
use std::time::Duration;

use tierlink_store::audit::{AuditEntry, AuditError, AuditLog, Outcome, Side};
use tierlink_store::{Store, StoreError};

/// Versions one step removes at most: the store's writes wait for a step, so it stays short.
pub const STEP: usize = 10_000;

/// How often the retention runs once the node has started (it also runs at start).
pub const EVERY: Duration = Duration::from_secs(24 * 3600);

/// The kind of the audit entry a removal leaves.
pub const AUDIT_KIND: &str = "retention";

const DAY_MICROS: i64 = 86_400_000_000;

/// Why a compaction stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed; versions removed so far stay removed, the next run goes on.
    #[error("the history compaction of {catalog} failed: {source}")]
    Store {
        /// The catalog being compacted.
        catalog: String,
        /// What failed.
        source: StoreError,
    },
    /// Versions were removed but the removal could not be audited.
    #[error(
        "the history compaction removed {removed} versions of {catalog} but could not audit it ({source}): check the store's disk"
    )]
    Audit {
        /// The catalog compacted.
        catalog: String,
        /// Versions removed.
        removed: u64,
        /// What failed.
        source: Box<AuditError>,
    },
}

/// Removes from every catalog of `store` the versions superseded more than `keep_days` days
/// before `now_micros`, and audits each catalog's removal as node `node` itself. Returns each
/// catalog that lost versions with how many. Blocking: for a blocking task.
pub fn compact(
    store: &dyn Store,
    audit: &AuditLog,
    node: &str,
    keep_days: u32,
    now_micros: i64,
) -> Result<Vec<(String, u64)>, RetentionError> {
    let before = now_micros.saturating_sub(i64::from(keep_days) * DAY_MICROS);
    let failed = |catalog: &str| {
        let catalog = catalog.to_owned();
        move |source| RetentionError::Store { catalog, source }
    };
    let mut compacted = Vec::new();
    for catalog in store.catalogs().map_err(failed("the catalog list"))? {
        let code = catalog.code;
        let mut removed = 0;
        let mut from = String::new();
        loop {
            let step = store
                .compact_history(&code, before, &from, STEP)
                .map_err(failed(&code))?;
            removed += step.removed;
            match step.next {
                Some(next) => from = next,
                None => break,
            }
        }
        if removed == 0 {
            continue;
        }
        let cutoff = chrono::DateTime::from_timestamp_micros(before)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let entry = AuditEntry {
            at_micros: chrono::Utc::now().timestamp_micros(),
            side: Some(Side::Owner),
            kind: AUDIT_KIND.into(),
            producer: node.to_owned(),
            consumer: node.to_owned(),
            catalog: code.clone(),
            outcome: Some(Outcome::Served),
            records: removed,
            bounds: format!(
                "versions superseded before {cutoff} (keep_history_days = {keep_days})"
            ),
            ..Default::default()
        };
        audit
            .append_blocking(entry)
            .map_err(|source| RetentionError::Audit {
                catalog: code.clone(),
                removed,
                source: Box::new(source),
            })?;
        tracing::info!(catalog = %code, removed, %cutoff, "superseded versions removed by the history retention");
        compacted.push((code, removed));
    }
    Ok(compacted)
}

/// Runs [`compact`] when started and then every [`EVERY`], while the node serves; nothing when
/// `keep_days` is 0 (every version kept).
pub fn compact_periodically(
    store: Arc<dyn Store>,
    audit: Arc<AuditLog>,
    node: String,
    keep_days: u32,
) -> Option<tokio::task::JoinHandle<()>> {
    if keep_days == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            ticks.tick().await;
            let (store, audit, node) = (store.clone(), audit.clone(), node.clone());
            let now = chrono::Utc::now().timestamp_micros();
            let ran = tokio::task::spawn_blocking(move || {
                compact(store.as_ref(), &audit, &node, keep_days, now)
            })
            .await;
            match ran {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "history retention; will try again"),
                Err(e) => tracing::warn!(error = %e, "history retention stopped"),
            }
        }
    }))
}
