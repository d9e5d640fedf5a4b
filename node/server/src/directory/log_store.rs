//! The raft log of the directory, in a keyspace of the node's store: entries by index, and the
//! vote, the committed id and the last purged id beside them. An append is on disk before openraft
//! is told it is.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tierlink_store::Keyspace;

use super::StorageError;
use super::type_config::{NodeId, TypeConfig};

const ENTRY: u8 = b'e';
const VOTE: &[u8] = b"m:vote";
const COMMITTED: &[u8] = b"m:committed";
const PURGED: &[u8] = b"m:purged";

/// The directory's raft log.
#[derive(Clone)]
pub struct LogStore {
    space: Keyspace,
}

fn entry_key(index: u64) -> Vec<u8> {
    let mut k = vec![ENTRY];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageIOError::write(&e).into())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageIOError::read(&e).into())
}

fn read_err(e: tierlink_store::StoreError) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: tierlink_store::StoreError) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    /// The log in `space`.
    pub fn new(space: Keyspace) -> Self {
        Self { space }
    }

    /// The last log index raft has kept as committed, if any (a street's log keeps none: its
    /// relay sends only committed entries).
    pub(super) fn committed_index(&self) -> Option<u64> {
        self.meta::<Option<LogId<NodeId>>>(COMMITTED)
            .ok()
            .flatten()
            .flatten()
            .map(|id| id.index)
    }

    /// Entries the log holds: from the one after the last purged to the last.
    pub(super) fn entries(&self) -> u64 {
        self.log_state().map_or(0, |state| {
            let index = |id: Option<LogId<NodeId>>| id.map_or(0, |id| id.index + 1);
            index(state.last_log_id).saturating_sub(index(state.last_purged_log_id))
        })
    }

    /// The last purged and the last log ids.
    fn log_state(&self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.meta(PURGED)?;
        let last = self
            .space
            .last_in(&entry_key(0), &[ENTRY + 1])
            .map_err(read_err)?;
        let last_log_id = match last {
            Some((_, v)) => Some(decode::<Entry<TypeConfig>>(&v)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    fn meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        self.space
            .get(key)
            .map_err(read_err)?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Appends `entries` (in index order) and flushes them: raft's appends, and the entries a
    /// relay sends a street that follows it.
    pub(super) async fn append_entries(
        &self,
        entries: &[Entry<TypeConfig>],
    ) -> Result<(), StorageError> {
        let changes = entries
            .iter()
            .map(|e| Ok((entry_key(e.log_id.index), encode(e)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        // In index order: a crash part way leaves a shorter log, never a gap, and nothing is
        // acknowledged before the flush.
        self.space.put_each(changes).map_err(write_err)?;
        self.space.flush().await.map_err(write_err)
    }

    async fn set_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        self.space
            .put_each([(key.to_vec(), encode(value)?)])
            .map_err(write_err)?;
        self.space.flush().await.map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(i) => Some(entry_key(i + 1)),
            Bound::Excluded(i) => Some(entry_key(*i)),
            Bound::Unbounded => Some(vec![ENTRY + 1]),
        };
        self.space
            .range(&entry_key(from), to.as_deref())
            .map_err(read_err)?
            .iter()
            .map(|(_, v)| decode(v))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.log_state()
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.set_meta(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.meta(VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        self.set_meta(COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let written = self.append_entries(&entries).await;
        callback.log_io_completed(
            written
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        written
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let doomed = self
            .space
            .range(&entry_key(log_id.index), Some(&[ENTRY + 1]))
            .map_err(read_err)?;
        self.space
            .apply(doomed.into_iter().map(|(k, _)| (k, None)))
            .map_err(write_err)?;
        self.space.flush().await.map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves entries that are merely ignored.
        self.set_meta(PURGED, &log_id).await?;
        let doomed = self
            .space
            .range(&entry_key(0), Some(&entry_key(log_id.index + 1)))
            .map_err(read_err)?;
        self.space
            .apply(doomed.into_iter().map(|(k, _)| (k, None)))
            .map_err(write_err)?;
        self.space.flush().await.map_err(write_err)
    }
}
