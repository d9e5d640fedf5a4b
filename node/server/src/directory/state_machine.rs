//! The directory's state machine: the [`DirectoryState`] in memory, rebuilt at start from the last
//! snapshot (kept in the node's store) and the log entries after it, which openraft re-applies.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tierlink_core::directory::{DirectoryReply, DirectoryState};
use tierlink_core::identity::TrustedCa;
use tierlink_store::Keyspace;
use tokio::sync::watch;

use super::StorageError;
use super::type_config::{NodeId, TypeConfig};

const SNAPSHOT: &[u8] = b"snapshot";

/// What a snapshot holds besides its metadata.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    state: DirectoryState,
}

/// A snapshot as kept in the store: its metadata and its bytes.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

/// The directory's state machine.
#[derive(Clone)]
pub struct StateMachine {
    applied: Arc<RwLock<Applied>>,
    ca: TrustedCa,
    space: Keyspace,
    snapshots_built: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes of the last snapshot kept, as stored.
    snapshot_bytes: Arc<std::sync::atomic::AtomicU64>,
    revision: Arc<watch::Sender<u64>>,
}

fn sm_read(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn sm_write(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

impl StateMachine {
    /// The state machine kept in `space`, restored from its last snapshot.
    pub fn open(space: Keyspace, ca: TrustedCa) -> Result<Self, StorageError> {
        let kept = space.get(SNAPSHOT).map_err(sm_read)?;
        let snapshot_bytes = kept.as_ref().map_or(0, |b| b.len() as u64);
        let applied = match kept {
            Some(bytes) => {
                let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(sm_read)?;
                serde_json::from_slice(&stored.data).map_err(sm_read)?
            }
            None => Applied::default(),
        };
        let revision = Arc::new(watch::Sender::new(applied.state.revision));
        Ok(Self {
            applied: Arc::new(RwLock::new(applied)),
            ca,
            space,
            snapshots_built: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            snapshot_bytes: Arc::new(std::sync::atomic::AtomicU64::new(snapshot_bytes)),
            revision,
        })
    }

    /// The directory revision this replica has applied, as it changes.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// The federation CA the directory's certificates are checked against.
    pub fn ca(&self) -> &TrustedCa {
        &self.ca
    }

    /// A copy of the directory as this replica has applied it, with the last applied log id.
    pub fn read(&self) -> (DirectoryState, Option<LogId<NodeId>>) {
        self.view(|state, last| (state.clone(), last))
    }

    /// Looks at the directory as this replica has applied it, without copying it.
    pub fn view<T>(&self, f: impl FnOnce(&DirectoryState, Option<LogId<NodeId>>) -> T) -> T {
        let a = self.lock_read();
        f(&a.state, a.last_applied)
    }

    // A panic while applying cannot leave the state half-changed (apply changes a state only
    // after its checks), so a poisoned lock still holds a consistent state.
    fn lock_read(&self) -> std::sync::RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn keep(&self, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(snapshot).map_err(sm_write)?;
        let size = bytes.len() as u64;
        self.space
            .apply([(SNAPSHOT.to_vec(), Some(bytes))])
            .map_err(sm_write)?;
        self.space.flush().await.map_err(sm_write)?;
        self.snapshot_bytes
            .store(size, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Bytes of the last snapshot kept, as stored.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_log_id, last_membership) = {
            let a = self.lock_read();
            (
                serde_json::to_vec(&*a).map_err(sm_read)?,
                a.last_applied,
                a.membership.clone(),
            )
        };
        let n = self
            .snapshots_built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{n}", id.leader_id, id.index),
            None => format!("empty-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.keep(&stored).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError,
    > {
        let a = self.lock_read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<DirectoryReply>>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut a = self.lock_write();
        let mut replies = Vec::new();
        for entry in entries {
            a.last_applied = Some(entry.log_id);
            replies.push(match entry.payload {
                EntryPayload::Normal(signed) => a.state.apply_signed(&signed, &self.ca),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
                EntryPayload::Blank => Vec::new(),
            });
        }
        self.revision.send_replace(a.state.revision);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let installed: Applied = serde_json::from_slice(&data).map_err(sm_read)?;
        self.keep(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .await?;
        let revision = installed.state.revision;
        *self.lock_write() = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            state: installed.state,
        };
        self.revision.send_replace(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match self.space.get(SNAPSHOT).map_err(sm_read)? {
            Some(bytes) => {
                let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(sm_read)?;
                Ok(Some(Snapshot {
                    meta: stored.meta,
                    snapshot: Box::new(Cursor::new(stored.data)),
                }))
            }
            None => Ok(None),
        }
    }
}
