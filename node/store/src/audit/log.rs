//! The hash-chained log in the node's store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::commit::{self, Flushed, GroupCommit};
use super::entry::{AuditEntry, AuditFilter};
use crate::{Keyspace, StoreError};

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit log that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The flush an entry waited for failed: the entry, and every other one that flush was to
    /// cover, may not be on disk.
    #[error("the audit entry may not be on disk: {0}")]
    Flush(Arc<StoreError>),
}

/// The first place the chain does not hold, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// The entry at fault.
    pub sequence: u64,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {}: {}", self.sequence, self.problem)
    }
}

/// A node's audit chain.
///
/// Appends are ordered by the chain and durable before they return; concurrent appends share
/// one flush of the store (see `commit.rs`).
pub struct AuditLog {
    space: Keyspace,
    /// Sequence and hash of the last entry: appends take it in turn.
    head: Mutex<(u64, String)>,
    /// Flushes what appends wrote, one flush for every append waiting.
    commit: GroupCommit,
    /// Each append flushes on its own instead (a benchmark's baseline).
    flush_each: AtomicBool,
}

fn key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

/// The hash an entry is chained by: BLAKE3 of its JSON text as stored.
fn hash(stored: &[u8]) -> String {
    blake3::hash(stored).to_hex().to_string()
}

impl AuditLog {
    /// Opens the log kept in `space`.
    pub fn open(space: Keyspace) -> Result<Self, AuditError> {
        let head = match space.last_in(&key(0), &key(u64::MAX))? {
            Some((k, v)) => {
                let sequence = u64::from_be_bytes(
                    k.try_into()
                        .map_err(|_| StoreError::Corrupt("an audit key is not 8 bytes".into()))?,
                );
                (sequence, hash(&v))
            }
            None => (0, GENESIS.to_owned()),
        };
        let flushed = space.clone();
        Ok(Self {
            space,
            head: Mutex::new(head),
            commit: GroupCommit::start(Box::new(move || flushed.flush_blocking()))?,
            flush_each: AtomicBool::new(false),
        })
    }

    /// Appends `entry` after the current head, setting its sequence and `prev`; returns the
    /// sequence. The entry is on disk when the call returns: appends made at the same time wait
    /// for one flush together.
    ///
    /// # Errors
    /// [`AuditError::Store`] when the entry cannot be written; [`AuditError::Flush`] when the
    /// flush it waited for failed (every append that waited for that flush gets it).
    pub async fn append(&self, entry: AuditEntry) -> Result<u64, AuditError> {
        let sequence = self.append_unflushed(entry)?;
        if self.flush_each.load(Ordering::Relaxed) {
            self.space.flush().await?;
        } else {
            Self::flushed(self.commit.register().await)?;
        }
        Ok(sequence)
    }

    /// Appends like [`Self::append`], from a blocking task (it blocks the thread).
    pub fn append_blocking(&self, entry: AuditEntry) -> Result<u64, AuditError> {
        let sequence = self.append_unflushed(entry)?;
        self.flush_blocking()?;
        Ok(sequence)
    }

    /// Waits until every entry appended so far is on disk, and everything else written to the
    /// store before the call, from a blocking task (it blocks the thread). Callers waiting at
    /// the same time share one flush.
    pub fn flush_blocking(&self) -> Result<(), AuditError> {
        if self.flush_each.load(Ordering::Relaxed) {
            return Ok(self.space.flush_blocking()?);
        }
        Self::flushed(self.commit.register().blocking_recv())
    }

    /// What the committer answered a waiter.
    fn flushed(
        answer: Result<Flushed, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), AuditError> {
        answer
            .unwrap_or_else(|_| Err(commit::gone()))
            .map_err(AuditError::Flush)
    }

    /// With `true`, every append and flush flushes the store on its own, as the log did before
    /// appends shared flushes: a benchmark's baseline, not for nodes.
    pub fn flush_each(&self, on: bool) {
        self.flush_each.store(on, Ordering::Relaxed);
    }

    /// Appends like [`Self::append`] without waiting for the disk: the entry is on disk with the
    /// store's next flush, which the caller makes (a write's records flush it with them, so the
    /// two reach the disk together).
    pub fn append_unflushed(&self, mut entry: AuditEntry) -> Result<u64, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        entry.sequence = head.0 + 1;
        entry.prev = head.1.clone();
        let stored = serde_json::to_vec(&entry).expect("audit entries serialize");
        self.space
            .put_each([(key(entry.sequence).to_vec(), stored.clone())])?;
        *head = (entry.sequence, hash(&stored));
        Ok(entry.sequence)
    }

    /// Sequence and hash of the last entry.
    pub fn head(&self) -> (u64, String) {
        self.head.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Entries passing `filter`, oldest first, at most `limit` (the newest ones).
    pub fn query(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let mut found = Vec::new();
        for (_, v) in self.space.range(&key(0), None)? {
            let entry: AuditEntry = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))?;
            if filter.matches(&entry) {
                found.push(entry);
            }
        }
        let skip = found.len().saturating_sub(limit);
        Ok(found.split_off(skip))
    }

    /// Entry `sequence` and the hash the next entry chains it by, if the log holds it: for a
    /// check of one anchor without walking the chain.
    pub fn entry(&self, sequence: u64) -> Result<Option<(AuditEntry, String)>, AuditError> {
        let Some(stored) = self.space.get(&key(sequence))? else {
            return Ok(None);
        };
        let entry = serde_json::from_slice(&stored)
            .map_err(|e| StoreError::Corrupt(format!("audit entry {sequence}: {e}")))?;
        Ok(Some((entry, hash(&stored))))
    }

    /// Walks the chain from the first entry: each entry must be readable, in its place, and
    /// hashed by the next; the entry `anchor` names (sequence, head hash) must hash to that
    /// head. Returns how many entries hold, or the first that does not.
    pub fn verify(&self, anchor: Option<(u64, &str)>) -> Result<Result<u64, Break>, AuditError> {
        let (mut expected, mut prev) = (1u64, GENESIS.to_owned());
        let mut anchored = anchor.is_none();
        for (k, v) in self.space.range(&key(0), None)? {
            let at = u64::from_be_bytes(k.try_into().unwrap_or_default());
            let broken = |sequence, problem: String| Ok(Err(Break { sequence, problem }));
            let entry: AuditEntry = match serde_json::from_slice(&v) {
                Ok(e) => e,
                Err(e) => return broken(at, format!("unreadable ({e})")),
            };
            if at != expected {
                return broken(expected, format!("missing: the next entry stored is {at}"));
            }
            if entry.sequence != at {
                return broken(
                    at,
                    format!("holds entry {}: entries were reordered", entry.sequence),
                );
            }
            if entry.prev != prev {
                return broken(
                    at - 1,
                    format!("altered: it no longer hashes to what entry {at} recorded"),
                );
            }
            prev = hash(&v);
            if let Some((sequence, head)) = anchor
                && sequence == at
            {
                if prev != head {
                    return broken(
                        at,
                        "altered: it no longer hashes to the head anchored in the directory".into(),
                    );
                }
                anchored = true;
            }
            expected += 1;
        }
        if !anchored {
            let (sequence, _) = anchor.expect("unanchored only with an anchor");
            return Ok(Err(Break {
                sequence,
                problem: format!(
                    "missing: the directory anchors entry {sequence}, the log ends at {}",
                    expected - 1
                ),
            }));
        }
        Ok(Ok(expected - 1))
    }

    /// The stored text of entry `sequence`, for tests that tamper with it.
    #[cfg(test)]
    pub(crate) fn space(&self) -> &Keyspace {
        &self.space
    }
}
