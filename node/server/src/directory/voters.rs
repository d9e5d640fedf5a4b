//! Who may speak raft to this replica: only the directory's voters.
//!
//! A vote, an append-entries message or a snapshot changes a replica's term, leader and log, so
//! each is taken only from a node this replica's own raft membership lists as a voter and its
//! applied directory lists as an active member. Any other node — a street (a learner), a
//! suspended or pending member, a node that never joined — is refused, however valid its
//! certificate, and counted. A replica with no membership yet (a node just approved) takes the
//! voters its parent named when it joined; one that slept through a change of voters asks the
//! voters it knows, and its parent, for the new ones. Membership entries themselves are checked
//! against the directory's signed state (`Replica::check_membership`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tierlink_core::directory::{DirectoryState, MemberStatus};
use tierlink_core::identity::NodeCode;
use tierlink_store::Keyspace;

use super::replica::DirectoryError;

/// How long voters named by another node count for a replica that has its own membership: long
/// enough to catch up from the new leader, whose membership entry then names it.
const VOUCHED_FOR: Duration = Duration::from_secs(60);

/// How often a replica that refuses a sender it does not know as a voter asks the voters it does
/// know whether the voters changed.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

const VOUCHED_KEY: &[u8] = b"vouched-voters";
const PARENT_KEY: &[u8] = b"joined-via";

/// The voters a replica trusts beyond its own raft membership, and what it refused.
pub(super) struct Voters {
    space: Keyspace,
    /// The voters another node named, and when (`None`: named before this start).
    vouched: Mutex<(BTreeSet<NodeCode>, Option<Instant>)>,
    /// The endpoint the node joined through, asked again while it is not yet a replica.
    parent: Mutex<Option<String>>,
    asked: Mutex<Option<Instant>>,
    refused: AtomicU64,
}

impl Voters {
    /// The voters kept in `space` (named by the parent at join, or by a voter since).
    pub(super) fn open(space: Keyspace) -> Result<Self, DirectoryError> {
        let storage = |e: &dyn std::fmt::Display| DirectoryError::Storage(e.to_string());
        let vouched = match space.get(VOUCHED_KEY).map_err(|e| storage(&e))? {
            Some(json) => serde_json::from_slice(&json)
                .map_err(|e| storage(&format!("vouched voters: {e}")))?,
            None => BTreeSet::new(),
        };
        let parent = space
            .get(PARENT_KEY)
            .map_err(|e| storage(&e))?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(Self {
            space,
            vouched: Mutex::new((vouched, None)),
            parent: Mutex::new(parent),
            asked: Mutex::new(None),
            refused: AtomicU64::new(0),
        })
    }

    /// Replaces the vouched voters with `voters`, as the trusted node at `by` listed them.
    pub(super) fn vouch(&self, voters: BTreeSet<NodeCode>, by: &str) -> Result<(), DirectoryError> {
        let json = serde_json::to_vec(&voters).expect("node codes serialize");
        let mut changes = vec![(VOUCHED_KEY.to_vec(), Some(json))];
        let mut parent = self.parent.lock().unwrap_or_else(|p| p.into_inner());
        if parent.is_none() {
            changes.push((PARENT_KEY.to_vec(), Some(by.as_bytes().to_vec())));
        }
        self.space
            .apply(changes)
            .map_err(|e| DirectoryError::Storage(e.to_string()))?;
        parent.get_or_insert_with(|| by.to_owned());
        *self.vouched.lock().unwrap_or_else(|p| p.into_inner()) = (voters, Some(Instant::now()));
        Ok(())
    }

    /// The endpoint the node joined through.
    pub(super) fn parent(&self) -> Option<String> {
        self.parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `from` may send raft messages here. `members` are the voters of this replica's raft
    /// membership (empty before it has one); `state` its applied directory.
    pub(super) fn admit(
        &self,
        from: &NodeCode,
        members: &BTreeSet<NodeCode>,
        state: &DirectoryState,
    ) -> Result<(), String> {
        let result = self.check(from, members, state);
        if result.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn check(
        &self,
        from: &NodeCode,
        members: &BTreeSet<NodeCode>,
        state: &DirectoryState,
    ) -> Result<(), String> {
        // Voters named by another node count while this replica has no membership of its own,
        // and for a while after a voter named them.
        let vouched = || {
            let (voters, at) = &*self.vouched.lock().unwrap_or_else(|p| p.into_inner());
            let current = members.is_empty() || at.is_some_and(|t| t.elapsed() < VOUCHED_FOR);
            current && voters.contains(from)
        };
        if !members.contains(from) && !vouched() {
            return Err(format!(
                "{from} is not a voter of the federation directory: only the voters (the city and the districts it names with `tierlink directory voters`) may vote, lead or send snapshots"
            ));
        }
        match state.members.get(from) {
            Some(m) if m.status != MemberStatus::Active => Err(format!(
                "{from} is {} in the federation directory: only active voters take part in its consensus",
                m.status.as_str()
            )),
            None if !state.members.is_empty() => Err(format!(
                "{from} is not a member of the federation directory: only its voters take part in its consensus"
            )),
            _ => Ok(()),
        }
    }

    /// Whether it is time to ask the known voters whether the voters changed; notes the asking.
    pub(super) fn due_for_refresh(&self) -> bool {
        let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        if asked.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return false;
        }
        *asked = Some(Instant::now());
        true
    }

    /// Raft messages refused since the node started.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}
