//! Streets follow their district's replica rather than the leader's raft.
//!
//! One leader feeding every street of a city pays per replica: a heartbeat round trip over TLS
//! every `heartbeat_ms` and a copy of every entry, for some 300 streets. So the leader's raft
//! holds only the city and its districts (`[directory] streets_follow_district`, on by default),
//! and each district relays to its streets the entries it has applied, as it applies them
//! (`tierlink.v1.Directory/Follow`, a server stream). A street appends and applies them exactly
//! as a raft replica does: every entry's signature is checked against its issuer's registered key
//! when it is applied, so a relay can hold entries back but cannot forge or alter one; entries
//! must follow on from the street's log without a gap.
//!
//! A relay that no longer keeps the entries a street needs sends its snapshot first. Between
//! entries it sends a keep-alive every election timeout carrying how long ago it heard its
//! leader, so a street's reads say how fresh they are just as a learner's do. A street whose
//! district cannot be reached follows a voter instead, and catches up from where its own log ends
//! when it can reach one again.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{Entry, RaftLogReader, SnapshotMeta};
use serde::{Deserialize, Serialize};
use tierlink_core::config::DirectorySettings;
use tierlink_proto::v1::FollowBatch;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::StorageError;
use super::log_store::LogStore;
use super::network::Link;
use super::state_machine::StateMachine;
use super::type_config::{NodeId, TypeConfig};

/// Most entries one relayed batch carries; a street further behind receives several.
const MAX_ENTRIES_PER_BATCH: u64 = 256;

/// What a relay sends a following street at a time.
#[derive(Serialize, Deserialize)]
pub(super) struct Relayed {
    /// The relay's snapshot, when the entries after the street's log are no longer kept.
    pub snapshot: Option<(SnapshotMeta<NodeId, openraft::BasicNode>, Vec<u8>)>,
    /// Applied entries following on from the street's log (or the snapshot), in order.
    pub entries: Vec<Entry<TypeConfig>>,
    /// The leader the relay knows.
    pub leader: Option<NodeId>,
    /// How long ago the relay heard that leader, ms; `None` if never.
    pub millis_since_leader: Option<u64>,
}

/// The relay's side: what it has applied, and how fresh it is.
pub(super) struct Source {
    pub log: LogStore,
    pub state: StateMachine,
    pub link: Link,
    pub keep_alive: Duration,
    pub freshness: Box<dyn Fn() -> (Option<NodeId>, Option<u64>) + Send + Sync>,
    /// Turns true when the node stops: its server waits for open streams to end.
    pub stopping: watch::Receiver<bool>,
}

impl Source {
    /// Streams to `street` the entries applied from log index `next` on, then each entry as it
    /// is applied, until the street goes away, this node is cut off or it stops.
    pub async fn serve(mut self, mut next: u64, street: mpsc::Sender<Result<FollowBatch, Status>>) {
        let mut revisions = self.state.revisions();
        loop {
            let ended = if self.link.is_isolated() {
                Some("this node is cut off")
            } else if *self.stopping.borrow() {
                Some("this node is stopping: follow another")
            } else {
                None
            };
            if let Some(why) = ended {
                let _ = street.send(Err(Status::unavailable(why))).await;
                return;
            }
            let batch = match self.batch(next).await {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = street.send(Err(Status::internal(e.to_string()))).await;
                    return;
                }
            };
            if let Some(last) = batch.entries.last() {
                next = last.log_id.index + 1;
            } else if let Some(last) = batch.snapshot.as_ref().and_then(|(m, _)| m.last_log_id) {
                next = last.index + 1;
            }
            let more = !batch.entries.is_empty() && self.next_index() > next;
            let json = match serde_json::to_vec(&batch) {
                Ok(json) => json,
                Err(e) => {
                    let _ = street.send(Err(Status::internal(e.to_string()))).await;
                    return;
                }
            };
            if street.send(Ok(FollowBatch { json })).await.is_err() {
                return;
            }
            if !more {
                tokio::select! {
                    _ = tokio::time::timeout(self.keep_alive, revisions.changed()) => {}
                    _ = self.stopping.changed() => {}
                }
            }
        }
    }

    fn next_index(&self) -> u64 {
        next_index(&self.state)
    }

    /// The entries applied from `from` on, at most a batch of them, preceded by the snapshot
    /// when the log no longer holds the first of them.
    async fn batch(&self, mut from: u64) -> Result<Relayed, StorageError> {
        let (leader, millis_since_leader) = (self.freshness)();
        let mut relayed = Relayed {
            snapshot: None,
            entries: Vec::new(),
            leader,
            millis_since_leader,
        };
        let end = self.next_index();
        if end <= from {
            return Ok(relayed);
        }
        let mut log = self.log.clone();
        let mut entries = log
            .try_get_log_entries(from..end.min(from + MAX_ENTRIES_PER_BATCH))
            .await?;
        if entries.first().map(|e| e.log_id.index) != Some(from) {
            let mut state = self.state.clone();
            if let Some(snapshot) = state.get_current_snapshot().await? {
                from = snapshot.meta.last_log_id.map_or(0, |l| l.index + 1);
                relayed.snapshot = Some((snapshot.meta, snapshot.snapshot.into_inner()));
                entries = log
                    .try_get_log_entries(from..end.min(from + MAX_ENTRIES_PER_BATCH))
                    .await?;
            }
        }
        relayed.entries = entries;
        Ok(relayed)
    }
}

/// A street's side: its log and state machine, fed by a relay.
pub(super) struct Follower {
    log: LogStore,
    state: StateMachine,
    /// Entries between the snapshots the street makes of its own state.
    snapshot_every: u64,
    /// Entries kept in the log behind a snapshot.
    kept_after_snapshot: u64,
    /// The log index of the last snapshot.
    snapshot_at: AtomicU64,
}

/// Why a relayed batch was not taken.
#[derive(Debug, thiserror::Error)]
pub(super) enum FollowError {
    /// The batch does not follow on from this replica's log.
    #[error(
        "the relay sent entries from index {got} on, but this replica needs {next} next: a gap or a reordering, refused"
    )]
    Gap {
        /// First index sent.
        got: u64,
        /// The index this replica needs next.
        next: u64,
    },
    /// The replica's storage failed.
    #[error("directory storage: {0}")]
    Storage(Box<StorageError>),
}

impl From<StorageError> for FollowError {
    fn from(e: StorageError) -> Self {
        Self::Storage(Box::new(e))
    }
}

impl Follower {
    /// A follower of `log` and `state` as opened (the state at its last snapshot), making its
    /// own snapshots as `settings` say.
    pub fn new(log: LogStore, state: StateMachine, settings: &DirectorySettings) -> Self {
        let snapshot_at = AtomicU64::new(next_index(&state));
        Self {
            log,
            state,
            snapshot_every: settings.snapshot_every,
            kept_after_snapshot: settings.kept_after_snapshot,
            snapshot_at,
        }
    }

    /// The first log index this replica has not applied.
    pub fn next_index(&self) -> u64 {
        next_index(&self.state)
    }

    /// Applies entries this replica's log holds beyond what its state machine has applied (after
    /// a restart: the state machine reopens at its last snapshot).
    pub async fn replay(&self) -> Result<(), FollowError> {
        let mut log = self.log.clone();
        let entries = log.try_get_log_entries(self.next_index()..).await?;
        self.take(Relayed {
            snapshot: None,
            entries,
            leader: None,
            millis_since_leader: None,
        })
        .await
    }

    /// Takes a relayed batch: installs its snapshot if it is ahead of this replica, then appends
    /// (flushed) and applies the entries that follow on from the log, refusing a gap.
    pub async fn take(&self, relayed: Relayed) -> Result<(), FollowError> {
        let mut state = self.state.clone();
        let mut log = self.log.clone();
        if let Some((meta, data)) = relayed.snapshot
            && meta.last_log_id.map_or(0, |l| l.index + 1) > self.next_index()
        {
            state
                .install_snapshot(&meta, Box::new(Cursor::new(data)))
                .await?;
            if let Some(last) = meta.last_log_id {
                log.purge(last).await?;
                self.snapshot_at.store(last.index + 1, Ordering::Relaxed);
            }
        }
        let next = self.next_index();
        let entries: Vec<Entry<TypeConfig>> = relayed
            .entries
            .into_iter()
            .filter(|e| e.log_id.index >= next)
            .collect();
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let contiguous = entries.iter().zip(next..).all(|(e, i)| e.log_id.index == i);
        if !contiguous {
            return Err(FollowError::Gap {
                got: first.log_id.index,
                next,
            });
        }
        self.log.append_entries(&entries).await?;
        state.apply(entries).await?;
        self.compact().await
    }

    /// Snapshots this replica's state every `snapshot_every` entries and purges the log behind it
    /// but for `kept_after_snapshot` entries, as raft does on the other replicas.
    async fn compact(&self) -> Result<(), FollowError> {
        let mut state = self.state.clone();
        if self.next_index() < self.snapshot_at.load(Ordering::Relaxed) + self.snapshot_every {
            return Ok(());
        }
        let snapshot = state.build_snapshot().await?;
        let at = snapshot.meta.last_log_id.map_or(0, |l| l.index + 1);
        self.snapshot_at.store(at, Ordering::Relaxed);
        if let Some(last) = snapshot.meta.last_log_id
            && last.index > self.kept_after_snapshot
        {
            let mut log = self.log.clone();
            let keep_from = last.index - self.kept_after_snapshot;
            if let Some(purged) = log
                .try_get_log_entries(keep_from..=keep_from)
                .await?
                .first()
            {
                log.purge(purged.log_id).await?;
            }
        }
        Ok(())
    }
}

/// The first log index `state` has not applied: 0 before it applied any.
fn next_index(state: &StateMachine) -> u64 {
    state.view(|_, last| last.map_or(0, |l| l.index + 1))
}
