//! A node's replica of the directory: its raft, the state it has applied, and the ways in and out
//! — changes the node signs and submits to the leader, reads answered locally with how fresh they
//! are, and, while this node leads, raft membership kept in step with the directory's members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::AppendEntriesRequest;
use openraft::raft::ClientWriteResponse;
use openraft::storage::RaftLogStorage;
use openraft::{
    BasicNode, ChangeMembers, EntryPayload, Membership, Raft, RaftLogReader, ServerState,
    SnapshotPolicy,
};
use tierlink_client::directory::connect;
use tierlink_core::config::{Credentials, DirectorySettings, NodeDir};
use tierlink_core::directory::DirectoryState;
use tierlink_core::directory::{
    CommandBatch, DirectoryCommand, DirectoryReply, Member, MemberStatus, REPLAYED, SignedCommands,
};
use tierlink_core::identity::{NodeCode, NodeKey, Tier, TrustedCa, fingerprint, pem_to_der};
use tierlink_core::members::{Members, Produced, ReadTerms, Standing};
use tierlink_proto::v1::directory_client::DirectoryClient;
use tierlink_proto::v1::{
    ChangeResponse, FollowBatch, FollowRequest, ReadMeta, ReadRequest, SubmitRequest,
};
use tierlink_store::SledStore;
use tierlink_store::audit::{AnchorBoard, BoardFuture};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::log_store::LogStore;
use super::network::{Link, Network};
use super::relay::{Follower, Relayed, Source};
use super::state_machine::StateMachine;
use super::type_config::{NodeId, TypeConfig, code_of, node_id};
use super::voters::Voters;

/// Commands signed into one log entry at most; concurrent proposals share entries up to this.
const MAX_COMMANDS_PER_ENTRY: usize = 128;

/// Entries this node may have handed to its raft, as leader, before the first is committed.
const MAX_ENTRIES_IN_FLIGHT: usize = 2;

/// How often the leader compares raft membership with the directory's members.
const RECONCILE_EVERY: Duration = Duration::from_millis(200);

/// A directory operation that could not be carried out.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No leader could take the change.
    #[error(
        "no directory leader is reachable from {node}: {why}. Reads from this node's replica keep working; retry once the federation is reachable"
    )]
    NoLeader {
        /// This node.
        node: NodeCode,
        /// What failed.
        why: String,
    },
    /// Another node refused or could not pass on the change; its own words.
    #[error("{endpoint} answered: {message}")]
    Remote {
        /// The node asked.
        endpoint: String,
        /// What it said.
        message: String,
    },
    /// The leader took the change but could not confirm it was committed in time: it may yet be
    /// applied. Read the directory before issuing it again.
    #[error(
        "the change was not confirmed within {0} ms (a quorum of voters is not reachable); it may still be applied: check the directory before issuing it again"
    )]
    Unconfirmed(u128),
    /// An attempt was cut off before its answer (leadership moved, a connection dropped), and
    /// the next one found the entry already in the log: it was most likely applied by then.
    #[error(
        "the change's first attempt was cut off before it was answered, and the directory now holds an entry with its sequence number: it was most likely applied; check the directory before issuing it again"
    )]
    Unanswered,
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The directory was founded already.
    #[error("the directory is already founded; it has one founding, by the city")]
    AlreadyFounded,
    /// The replica's storage failed.
    #[error("directory storage: {0}")]
    Storage(String),
}

/// A replica's state as the node's metrics show it ([`crate::metrics`]).
#[derive(Clone, Debug, Default)]
pub struct DirectoryGauges {
    /// Whether it knows a leader heard from within twice the election timeout.
    pub has_leader: bool,
    /// The leader's node code, empty when none is known.
    pub leader: String,
    /// Raft's current term.
    pub term: u64,
    /// The last log index known committed.
    pub commit_index: u64,
    /// The last log index applied here.
    pub applied_index: u64,
    /// Entries in its log since the last purge.
    pub log_entries: u64,
    /// Bytes of its last snapshot kept.
    pub snapshot_bytes: u64,
    /// On the leader: entries each other replica has yet to take.
    pub lags: Vec<(NodeCode, u64)>,
}

/// A node's replica of the federation directory.
pub struct Replica {
    core: Arc<Core>,
    proposals: mpsc::Sender<Proposal>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the background tasks share with the replica.
struct Core {
    me: Member,
    id: NodeId,
    raft: Raft<TypeConfig>,
    state: StateMachine,
    key: NodeKey,
    credentials: Credentials,
    link: Link,
    settings: DirectorySettings,
    last_sequence: Mutex<u64>,
    clients: Mutex<BTreeMap<String, DirectoryClient<Channel>>>,
    voters: Voters,
    log: LogStore,
    /// A street's replica follows a relay instead of raft (see `relay`).
    follower: Option<Follower>,
    /// The leader the relay last named, for a street that follows one.
    relay_leader: Mutex<Option<NodeId>>,
    /// Turns true when the node stops, ending the streams it relays.
    stopping: tokio::sync::watch::Sender<bool>,
}

type WriteError = ClientWriteError<NodeId, BasicNode>;

/// A failed attempt, and whether trying again is safe and may help.
enum Retry {
    Yes(DirectoryError),
    No(DirectoryError),
}

impl Retry {
    fn into_error(self) -> DirectoryError {
        match self {
            Retry::Yes(e) | Retry::No(e) => e,
        }
    }
}

/// Whether every reply refuses the entry as one its issuer's sequence has passed.
pub(super) fn replayed(replies: &[DirectoryReply]) -> bool {
    !replies.is_empty()
        && replies
            .iter()
            .all(|r| matches!(r, DirectoryReply::Rejected { reason } if reason.ends_with(REPLAYED)))
}

struct Proposal {
    commands: Vec<DirectoryCommand>,
    reply: oneshot::Sender<Result<Vec<DirectoryReply>, DirectoryError>>,
}

/// This node as the directory records it, from its configuration, certificates and current
/// encryption key.
pub fn member_of(
    dir: &NodeDir,
    credentials: &Credentials,
    key: &NodeKey,
) -> Result<Member, String> {
    let tls = pem_to_der(&credentials.tls_cert_pem).map_err(|e| e.to_string())?;
    let encryption = dir.encryption_keys().map_err(|e| e.to_string())?;
    Ok(Member {
        unit: dir.config.node.clone(),
        endpoint: dir.config.server.endpoint.clone(),
        signing_key: hex::encode(key.verifying_key().as_bytes()),
        signing_certificate: credentials.signing_cert_pem.clone(),
        tls_fingerprint: fingerprint(&tls),
        tls_certificate: credentials.tls_cert_pem.clone(),
        retiring_tls: Vec::new(),
        retired_keys: Vec::new(),
        encryption_key: encryption.current().public().to_hex(),
        status: MemberStatus::Pending,
    })
}

impl Replica {
    /// Opens the replica kept in `store` and starts its raft. It takes part in the directory once
    /// the city founds it here, or the leader adds this node after its parent approves it.
    pub async fn open(
        store: &SledStore,
        dir: &NodeDir,
        credentials: Credentials,
        key: NodeKey,
        ca: TrustedCa,
    ) -> Result<Self, DirectoryError> {
        let storage = |e: &dyn std::fmt::Display| DirectoryError::Storage(e.to_string());
        let settings = dir.config.directory.clone();
        let config = openraft::Config {
            cluster_name: "tierlink-directory".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_timeout_ms,
            election_timeout_max: settings.election_timeout_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.kept_after_snapshot,
            max_payload_entries: 32,
            ..Default::default()
        }
        .validate()
        .map_err(|e| DirectoryError::Invalid(format!("[directory] settings: {e}")))?;
        let log = LogStore::new(store.keyspace("raft-log").map_err(|e| storage(&e))?);
        let log_reader = log.clone();
        let state = StateMachine::open(store.keyspace("directory").map_err(|e| storage(&e))?, ca)
            .map_err(|e| storage(&e))?;
        let link = Link::with_blocked(tierlink_client::faults::Blocked::from_env());
        let id = node_id(dir.code());
        let raft = Raft::new(
            id,
            Arc::new(config),
            Network::new(credentials.clone(), link.clone()),
            log,
            state.clone(),
        )
        .await
        .map_err(|e| storage(&e))?;
        link.set_voters(
            raft.metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect(),
        );
        let me = member_of(dir, &credentials, &key).map_err(DirectoryError::Invalid)?;
        let voters = Voters::open(
            store
                .keyspace("directory-voters")
                .map_err(|e| storage(&e))?,
        )?;
        let follower = (dir.config.node.tier == Tier::Street && settings.streets_follow_district)
            .then(|| Follower::new(log_reader.clone(), state.clone(), &settings));
        let core = Arc::new(Core {
            me,
            id,
            raft,
            state,
            key,
            credentials,
            link,
            settings,
            last_sequence: Mutex::new(0),
            clients: Mutex::new(BTreeMap::new()),
            voters,
            log: log_reader,
            follower,
            relay_leader: Mutex::new(None),
            stopping: tokio::sync::watch::Sender::new(false),
        });
        let (proposals, queue) = mpsc::channel(4096);
        let mut tasks = vec![
            tokio::spawn(core.clone().propose_loop(queue)),
            tokio::spawn(core.clone().reconcile_loop()),
        ];
        if core.follower.is_some() {
            tasks.push(tokio::spawn(core.clone().follow_loop()));
        }
        Ok(Self {
            core,
            proposals,
            tasks: Mutex::new(tasks),
        })
    }

    /// The local raft, for the `tierlink.v1.Federation` service.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.core.raft
    }

    /// The transport's view: when a leader was last heard, and the partition fault hook.
    pub fn link(&self) -> &Link {
        &self.core.link
    }

    /// This node's code.
    pub fn code(&self) -> &NodeCode {
        &self.core.me.unit.code
    }

    /// This node as it registers itself.
    pub fn member(&self) -> &Member {
        &self.core.me
    }

    /// The directory revision this replica has applied, as it changes: a receiver that wakes
    /// on every applied entry (or installed snapshot) that changed it.
    pub fn revisions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.core.state.revisions()
    }

    /// Looks at the directory as this replica has applied it.
    pub fn view<T>(&self, f: impl FnOnce(&DirectoryState) -> T) -> T {
        self.core.state.view(|state, _| f(state))
    }

    /// Founds the directory on the city: this node becomes its only voter and registers itself.
    pub async fn found(&self) -> Result<Vec<DirectoryReply>, DirectoryError> {
        if self.core.me.unit.tier != Tier::City {
            return Err(DirectoryError::Invalid(format!(
                "{} is a {}: only the city founds the directory; join it with `tierlink directory join --via PARENT_ENDPOINT`",
                self.code(),
                self.core.me.unit.tier
            )));
        }
        let node = BasicNode {
            addr: self.core.me.endpoint.clone(),
        };
        match self
            .core
            .raft
            .initialize(BTreeMap::from([(self.core.id, node)]))
            .await
        {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                return Err(DirectoryError::AlreadyFounded);
            }
            Err(e) => return Err(DirectoryError::Storage(e.to_string())),
        }
        self.propose(vec![DirectoryCommand::Register(self.core.me.clone())])
            .await
    }

    /// Issues `commands` as this node: signed, and applied through the leader, one reply each.
    /// Concurrent proposals are signed into shared log entries, in the order they were made.
    pub async fn propose(
        &self,
        commands: Vec<DirectoryCommand>,
    ) -> Result<Vec<DirectoryReply>, DirectoryError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || DirectoryError::Storage("the directory replica has stopped".into());
        self.proposals
            .send(Proposal { commands, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Issues `commands` as this node through another node (`via`), for a node that is not yet a
    /// replica: joining under its parent.
    /// The node learns from `via` (its parent) which nodes are the directory's voters: until the
    /// leader adds it as a replica, only those may replicate to it.
    pub async fn propose_via(
        &self,
        via: &str,
        commands: Vec<DirectoryCommand>,
    ) -> Result<Vec<DirectoryReply>, DirectoryError> {
        let voters = self.core.voters_named_by(via).await?;
        self.core.voters.vouch(voters, via)?;
        let entry = self.core.sign(commands);
        self.core
            .forward(via, &entry, 0)
            .await
            .map_err(Retry::into_error)
    }

    /// Hands a signed entry to the leader (or to the leader this node knows of), as received.
    pub async fn submit(
        &self,
        entry: SignedCommands,
        hops: u32,
    ) -> Result<Vec<DirectoryReply>, DirectoryError> {
        self.core.submit(entry, hops).await
    }

    /// How fresh this replica's reads are.
    pub fn read_meta(&self, linearizable: bool) -> ReadMeta {
        self.core.read_meta(linearizable)
    }

    /// Whether `from` may send this replica raft messages (vote, append entries, snapshot): only a
    /// voter of its raft membership that the directory lists as active; the reason says why not.
    /// A refusal is counted ([`Replica::refused_raft_messages`]).
    pub fn admit_raft(&self, from: &NodeCode) -> Result<(), String> {
        if self.core.follower.is_some() {
            return Err(format!(
                "{} is a street that follows its district's replica ([directory] streets_follow_district): it takes no raft messages",
                self.code()
            ));
        }
        let membership = self.core.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let voters: BTreeSet<NodeCode> = membership.voter_ids().map(code_of).collect();
        let admitted = self.view(|s| self.core.voters.admit(from, &voters, s));
        // A replica that slept through a change of voters refuses the new leader: it asks the
        // voters it knows, and the parent it joined through, who votes now.
        if admitted.is_err() && self.core.voters.due_for_refresh() {
            let known: Vec<String> = membership
                .voter_ids()
                .filter(|id| *id != self.core.id)
                .filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone()))
                .chain(self.core.voters.parent())
                .collect();
            let core = self.core.clone();
            tokio::spawn(async move {
                for addr in known {
                    if let Ok(named) = core.voters_named_by(&addr).await {
                        let _ = core.voters.vouch(named, &addr);
                        break;
                    }
                }
            });
        }
        admitted
    }

    /// Checks every membership entry of an append-entries message against the directory's
    /// signed state: each of its voter sets must be one raft already has or a set of active
    /// voters the city named (with `SetVoters`) in the state this replica has applied or in the
    /// entries before it, and every node it replicates to a member of the directory. A message failing this is refused whole, whoever
    /// sends it, so raft membership follows only the directory.
    pub async fn check_membership(
        &self,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<(), String> {
        if !rpc
            .entries
            .iter()
            .any(|e| matches!(e.payload, EntryPayload::Membership(_)))
        {
            return Ok(());
        }
        let (mut state, applied) = self.core.state.read();
        let next = applied.map_or(0, |l| l.index + 1);
        // Entries this replica holds but has not applied come before the message's own.
        let held = match rpc.prev_log_id {
            Some(prev) if prev.index >= next => self
                .core
                .log
                .clone()
                .try_get_log_entries(next..=prev.index)
                .await
                .map_err(|e| format!("this replica's log: {e}"))?,
            _ => Vec::new(),
        };
        // A message that does not follow on from this replica's log is refused by raft itself
        // (a conflict, which makes the leader send earlier entries): nothing of it is appended.
        if let Some(prev) = rpc.prev_log_id
            && prev.index >= next
            && held.last().map(|e| e.log_id) != Some(prev)
        {
            return Ok(());
        }
        let sent = rpc.entries.iter().filter(|e| e.log_id.index >= next);
        let mut named = vec![state.active_voters()];
        // Raft's own voter sets: a membership entry may keep them (adding or removing learners)
        // until the leader moves them to the ones the directory names. Each was checked when
        // it entered this log.
        let mut kept: Vec<BTreeSet<NodeId>> = self
            .core
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_joint_config()
            .clone();
        for (entry, check) in held
            .iter()
            .map(|e| (e, false))
            .chain(sent.map(|e| (e, true)))
        {
            match &entry.payload {
                EntryPayload::Normal(signed) => {
                    state.apply_signed(signed, self.core.state.ca());
                    named.push(state.active_voters());
                }
                EntryPayload::Membership(membership) => {
                    if check {
                        follows_directory(membership, &state, &named, &kept)?;
                    }
                    kept.extend(membership.get_joint_config().iter().cloned());
                }
                EntryPayload::Blank => {}
            }
        }
        Ok(())
    }

    /// Raft messages refused since the node started, from nodes that may not send them.
    pub fn refused_raft_messages(&self) -> u64 {
        self.core.voters.refused()
    }

    /// Whether this replica is a street that follows a relay rather than a replica of raft.
    pub fn follows(&self) -> bool {
        self.core.follower.is_some()
    }

    /// Whether this node leads the directory now.
    pub fn is_leader(&self) -> bool {
        self.core.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Waits until every change committed before the call is applied here. Only a leader can
    /// answer; others forward the read to it.
    pub async fn ensure_linearizable(&self) -> Result<(), DirectoryError> {
        self.core
            .raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| self.core.no_leader(e.to_string()))
    }

    /// A client of the leader's `tierlink.v1.Directory` service; for a street that follows a
    /// relay, of the relay, which passes requests on to the leader.
    pub async fn leader_client(&self) -> Result<DirectoryClient<Channel>, DirectoryError> {
        let addr = match self.core.follower {
            Some(_) => self.core.relay_source()?,
            None => self.core.leader().await?.1,
        };
        self.core.client(&addr).await
    }

    /// The entries this replica has applied from log index `next` on, then each as it applies
    /// it, for a street that follows this replica (`tierlink.v1.Directory/Follow`).
    pub fn relay(&self, next: u64) -> mpsc::Receiver<Result<FollowBatch, tonic::Status>> {
        let (street, batches) = mpsc::channel(2);
        let core = self.core.clone();
        let source = Source {
            log: core.log.clone(),
            state: core.state.clone(),
            link: core.link.clone(),
            keep_alive: Duration::from_millis(core.settings.election_timeout_ms),
            stopping: core.stopping.subscribe(),
            freshness: Box::new(move || core.freshness()),
        };
        tokio::spawn(source.serve(next, street));
        batches
    }

    /// Raft's view: term, role, log, and replication progress when leading.
    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.core.raft.metrics().borrow().clone()
    }

    /// What the node's metrics show of this replica, read now: for a street that follows a
    /// relay, what it has taken (its log holds committed entries only).
    pub fn gauges(&self) -> DirectoryGauges {
        let m = self.metrics();
        let meta = self.read_meta(false);
        let applied_index = meta.applied_index;
        let last = m.last_log_index.unwrap_or(0);
        let lags = m
            .replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.core.id)
            .map(|(id, matched)| {
                let taken = matched.map_or(0, |l| l.index);
                (code_of(*id), last.saturating_sub(taken))
            })
            .collect();
        DirectoryGauges {
            has_leader: !meta.leader.is_empty() && !meta.stale,
            leader: meta.leader,
            term: m.current_term,
            commit_index: match self.core.follower {
                Some(_) => applied_index,
                None => self.core.log.committed_index().unwrap_or(0),
            },
            applied_index,
            log_entries: self.core.log.entries(),
            snapshot_bytes: self.core.state.snapshot_bytes(),
            lags,
        }
    }

    /// Ends the streams this replica relays to streets (with UNAVAILABLE: they follow another
    /// replica meanwhile): the node is stopping, and its server waits for open streams to end.
    pub fn stop_relays(&self) {
        self.core.stopping.send_replace(true);
    }

    /// Stops the background tasks and the raft, and waits until they have let go of the store.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Err(e) = self.core.raft.shutdown().await {
            tracing::warn!(error = %e, "directory raft did not shut down cleanly");
        }
    }
}

/// A member's standing as the exchange sees it.
fn standing_in(state: &DirectoryState, code: &NodeCode) -> Option<Standing> {
    state.members.get(code).map(Standing::from)
}

impl Members for Replica {
    fn standing(&self, code: &NodeCode) -> Option<Standing> {
        self.view(|s| standing_in(s, code))
    }

    fn is_formed(&self) -> bool {
        self.view(|s| !s.members.is_empty())
    }

    fn decide(
        &self,
        producer: &NodeCode,
        catalog: &tierlink_core::catalog::Catalog,
        asker: &tierlink_core::policy::Asker,
        today: &str,
    ) -> Result<tierlink_core::policy::Decision, tierlink_core::policy::Refusal> {
        self.view(|s| s.policies.decide(producer, catalog, asker, today))
    }

    fn terms(&self, voucher: &NodeCode, produced: Option<Produced<'_>>) -> ReadTerms {
        self.view(|s| ReadTerms {
            voucher: standing_in(s, voucher),
            decision: produced.map(|(producer, catalog, asker, today)| {
                s.policies.decide(producer, catalog, asker, today)
            }),
        })
    }
}

impl AnchorBoard for Replica {
    fn anchored(&self) -> Option<(u64, String, u64)> {
        self.view(|s| {
            s.anchors
                .get(self.code())
                .map(|a| (a.sequence, a.head.clone(), a.revision))
        })
    }

    fn anchor(&self, sequence: u64, head: String) -> BoardFuture<'_, ()> {
        Box::pin(async move {
            let replies = self
                .propose(vec![DirectoryCommand::AnchorAudit { sequence, head }])
                .await
                .map_err(|e| e.to_string())?;
            match replies.into_iter().next() {
                Some(DirectoryReply::Applied { .. }) => Ok(()),
                Some(DirectoryReply::Rejected { reason }) => Err(reason),
                None => Err("the directory gave no reply".into()),
            }
        })
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            task.abort();
        }
    }
}

impl Core {
    fn code(&self) -> &NodeCode {
        &self.me.unit.code
    }

    fn no_leader(&self, why: String) -> DirectoryError {
        DirectoryError::NoLeader {
            node: self.code().clone(),
            why,
        }
    }

    /// Signs `commands` under this node's next sequence number.
    fn sign(&self, commands: Vec<DirectoryCommand>) -> SignedCommands {
        let applied = self
            .state
            .view(|s, _| s.sequences.get(self.code()).copied().unwrap_or(0));
        let sequence = {
            let mut last = self.last_sequence.lock().unwrap_or_else(|p| p.into_inner());
            let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
            *last = now.max(applied.max(*last) + 1);
            *last
        };
        let batch = CommandBatch {
            issuer: self.code().clone(),
            sequence,
            commands,
        };
        SignedCommands::sign(&batch, &self.key)
    }

    /// Takes proposals in arrival order and signs those waiting together into one entry. While
    /// this node leads, entries are handed to raft in sequence order and several may be in flight
    /// (raft appends them in that order); otherwise one entry at a time goes to the leader, so a
    /// forwarded entry never overtakes an earlier one.
    async fn propose_loop(self: Arc<Self>, mut queue: mpsc::Receiver<Proposal>) {
        let in_flight = Arc::new(Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
        while let Some(first) = queue.recv().await {
            let mut count = first.commands.len();
            let mut group = vec![first];
            while count < MAX_COMMANDS_PER_ENTRY {
                match queue.try_recv() {
                    Ok(p) => {
                        count += p.commands.len();
                        group.push(p);
                    }
                    Err(_) => break,
                }
            }
            let commands = group.iter().flat_map(|p| p.commands.clone()).collect();
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let entry = self.sign(commands);
            if self.raft.metrics().borrow().state == ServerState::Leader {
                match self.raft.client_write_ff(entry).await {
                    Ok(committed) => {
                        let core = self.clone();
                        tokio::spawn(async move {
                            let result = core.committed(committed).await;
                            answer(group, result);
                            drop(permit);
                        });
                    }
                    Err(fatal) => answer(group, Err(self.no_leader(fatal.to_string()))),
                }
                continue;
            }
            answer(group, self.submit(entry, 0).await);
        }
    }

    /// The outcome of an entry handed to the local raft.
    async fn committed<E>(
        &self,
        committed: impl Future<Output = Result<Result<ClientWriteResponse<TypeConfig>, WriteError>, E>>,
    ) -> Result<Vec<DirectoryReply>, DirectoryError> {
        let commit_wait = Duration::from_millis(self.settings.election_timeout_ms * 4);
        match tokio::time::timeout(commit_wait, committed).await {
            Ok(Ok(Ok(written))) => Ok(written.data),
            // Not appended: another node leads now. Issuing it again is safe.
            Ok(Ok(Err(ClientWriteError::ForwardToLeader(_)))) => Err(self.no_leader(
                "leadership moved before the change was appended; issue it again".into(),
            )),
            Ok(Ok(Err(e))) => Err(self.no_leader(e.to_string())),
            Ok(Err(_)) => Err(self.no_leader("the directory replica stopped".into())),
            Err(_) => Err(DirectoryError::Unconfirmed(commit_wait.as_millis())),
        }
    }

    /// The leader and its endpoint, waiting up to an election's length for one to be known.
    async fn leader(&self) -> Result<(NodeId, String), DirectoryError> {
        let wait = Duration::from_millis(self.settings.election_timeout_ms * 2);
        let known = self
            .raft
            .wait(Some(wait))
            .metrics(|m| m.current_leader.is_some(), "a known leader")
            .await
            .map_err(|_| {
                self.no_leader(format!(
                    "no leader known after {} ms: this node is not yet a replica (is it approved?) or is cut off",
                    wait.as_millis()
                ))
            })?;
        let id = known.current_leader.expect("waited for a leader");
        let addr = known
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .ok_or_else(|| self.no_leader(format!("leader {id} has no known endpoint")))?;
        Ok((id, addr))
    }

    /// Appends `entry` through the leader. While leadership moves (the known leader cannot be
    /// reached, or no longer leads) it retries for up to two election timeouts, then gives up.
    async fn submit(
        &self,
        entry: SignedCommands,
        hops: u32,
    ) -> Result<Vec<DirectoryReply>, DirectoryError> {
        let election = Duration::from_millis(self.settings.election_timeout_ms * 2);
        let deadline = tokio::time::Instant::now() + election * 2;
        let mut retried = false;
        loop {
            let attempt = self.submit_once(&entry, hops).await;
            match attempt {
                Err(Retry::Yes(e))
                    if tokio::time::Instant::now() < deadline && !self.link.is_isolated() =>
                {
                    tracing::debug!(error = %e, "directory: leader not reached, retrying");
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(self.settings.heartbeat_ms)).await;
                }
                Err(Retry::Yes(e) | Retry::No(e)) => return Err(e),
                // A refused attempt may yet have been appended before leadership moved: the
                // same entry then comes back as a replay of itself, which is no refusal.
                Ok(replies) if retried && replayed(&replies) => {
                    return Err(DirectoryError::Unanswered);
                }
                Ok(replies) => return Ok(replies),
            }
        }
    }

    async fn submit_once(
        &self,
        entry: &SignedCommands,
        hops: u32,
    ) -> Result<Vec<DirectoryReply>, Retry> {
        if self.follower.is_some() {
            let relay = self.relay_source().map_err(Retry::Yes)?;
            return self.forward(&relay, entry, hops).await;
        }
        let (leader, addr) = self.leader().await.map_err(Retry::No)?;
        if leader != self.id {
            if hops >= 2 {
                return Err(Retry::No(self.no_leader(format!(
                    "the entry was forwarded {hops} times without reaching the leader"
                ))));
            }
            return self.forward(&addr, entry, hops).await;
        }
        let commit_wait = Duration::from_millis(self.settings.election_timeout_ms * 4);
        match tokio::time::timeout(commit_wait, self.raft.client_write(entry.clone())).await {
            Ok(Ok(written)) => Ok(written.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(Retry::Yes(
                self.no_leader(format!("leadership moved to {:?}", f.leader_id)),
            )),
            Ok(Err(e)) => Err(Retry::No(self.no_leader(e.to_string()))),
            Err(_) => Err(Retry::No(DirectoryError::Unconfirmed(
                commit_wait.as_millis(),
            ))),
        }
    }

    /// The voters of the directory as the node at `endpoint` lists them, read through the leader.
    async fn voters_named_by(&self, endpoint: &str) -> Result<BTreeSet<NodeCode>, DirectoryError> {
        let mut client = self.client(endpoint).await?;
        let listed = client
            .members(ReadRequest { linearizable: true })
            .await
            .map_err(|status| DirectoryError::Remote {
                endpoint: endpoint.to_owned(),
                message: format!("cannot list the directory's voters: {}", status.message()),
            })?;
        Ok(listed
            .into_inner()
            .members
            .into_iter()
            .filter(|m| m.voter)
            .filter_map(|m| m.code.parse().ok())
            .collect())
    }

    async fn client(&self, endpoint: &str) -> Result<DirectoryClient<Channel>, DirectoryError> {
        if self.link.cuts_endpoint(endpoint) {
            return Err(self.no_leader(format!("cannot reach {endpoint}: this node is cut off")));
        }
        if let Some(c) = self.lock_clients().get(endpoint) {
            return Ok(c.clone());
        }
        let client = connect(&self.credentials, endpoint)
            .await
            .map_err(|e| self.no_leader(e.to_string()))?;
        self.lock_clients()
            .insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }

    fn lock_clients(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, DirectoryClient<Channel>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `entry` to the node at `endpoint`. A failure before the entry was handed over, or a
    /// node that had no leader to take it, may be retried; a lost answer may not (the entry may
    /// have been applied, and its sequence number would refuse it a second time).
    async fn forward(
        &self,
        endpoint: &str,
        entry: &SignedCommands,
        hops: u32,
    ) -> Result<Vec<DirectoryReply>, Retry> {
        let entry_json = serde_json::to_string(entry)
            .map_err(|e| Retry::No(DirectoryError::Invalid(e.to_string())))?;
        let mut client = self.client(endpoint).await.map_err(Retry::Yes)?;
        let request = SubmitRequest {
            entry_json,
            hops: hops + 1,
        };
        let wait = Duration::from_millis(self.settings.election_timeout_ms * 5);
        match tokio::time::timeout(wait, client.submit(request)).await {
            Ok(Ok(r)) => Ok(r.into_inner().results.into_iter().map(Into::into).collect()),
            Ok(Err(status)) => {
                self.lock_clients().remove(endpoint);
                let e = DirectoryError::Remote {
                    endpoint: endpoint.to_owned(),
                    message: status.message().to_owned(),
                };
                Err(match status.code() {
                    tonic::Code::Unavailable => Retry::Yes(e),
                    _ => Retry::No(e),
                })
            }
            Err(_) => Err(Retry::No(DirectoryError::Unconfirmed(wait.as_millis()))),
        }
    }

    /// The leader this replica knows, and how long ago it heard from it (for a leader: from a
    /// quorum), ms; for a street that follows a relay, as the relay last said.
    fn freshness(&self) -> (Option<NodeId>, Option<u64>) {
        let m = self.raft.metrics().borrow().clone();
        let since = if m.state == ServerState::Leader {
            m.millis_since_quorum_ack
        } else {
            self.link.millis_since_leader()
        };
        let leader = match self.follower {
            Some(_) => *self.relay_leader.lock().unwrap_or_else(|p| p.into_inner()),
            None => m.current_leader,
        };
        (leader, since)
    }

    fn read_meta(&self, linearizable: bool) -> ReadMeta {
        let (applied_index, revision) = self
            .state
            .view(|s, last| (last.map_or(0, |l| l.index), s.revision));
        let (leader, since) = self.freshness();
        let millis_since_leader = since.map_or(-1, |ms| ms as i64);
        ReadMeta {
            node: self.code().to_string(),
            applied_index,
            revision,
            leader: leader.map(|l| code_of(l).to_string()).unwrap_or_default(),
            linearizable,
            millis_since_leader,
            stale: since.is_none_or(|ms| ms > self.settings.election_timeout_ms * 2),
        }
    }

    /// Where a street that follows a relay follows first: its parent (the node it joined
    /// through, or as the directory lists it), then the directory's voters in turn.
    fn relay_sources(&self) -> Vec<String> {
        let parent = self.me.unit.parent.clone();
        let (listed, voters) = self.state.view(|s, _| {
            let endpoint = |code: &NodeCode| s.members.get(code).map(|m| m.endpoint.clone());
            let listed = parent.as_ref().and_then(endpoint);
            let voters: Vec<String> = s
                .active_voters()
                .iter()
                .filter(|v| *v != self.code())
                .filter_map(endpoint)
                .collect();
            (listed, voters)
        });
        let mut sources: Vec<String> = listed.into_iter().chain(self.voters.parent()).collect();
        for endpoint in voters {
            if !sources.contains(&endpoint) {
                sources.push(endpoint);
            }
        }
        sources.dedup();
        sources
    }

    /// Whether `endpoint` is an active voter's, as this replica's directory lists them.
    fn is_voter_endpoint(&self, endpoint: &str) -> bool {
        self.state.view(|s, _| {
            s.active_voters()
                .iter()
                .any(|v| s.members.get(v).is_some_and(|m| m.endpoint == endpoint))
        })
    }

    /// The relay a street submits through: the first it would follow.
    fn relay_source(&self) -> Result<String, DirectoryError> {
        self.relay_sources().into_iter().next().ok_or_else(|| {
            self.no_leader(
                "this street knows neither its parent's endpoint nor a voter's: has it joined?"
                    .into(),
            )
        })
    }

    /// A street's replica: follows its parent's, or a voter's while the parent cannot be
    /// reached, from where its own log ends.
    async fn follow_loop(self: Arc<Self>) {
        let Some(follower) = &self.follower else {
            return;
        };
        // A street that was a replica of raft before has raft re-apply what it had committed.
        let committed = self
            .log
            .clone()
            .read_committed()
            .await
            .ok()
            .flatten()
            .map_or(0, |l| l.index + 1);
        while follower.next_index() < committed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = follower.replay().await {
            tracing::warn!(error = %e, "directory: the street's own log could not be re-applied");
        }
        let mut failures = 0usize;
        loop {
            let sources = self.relay_sources();
            if let Some(source) = sources.get(failures % sources.len().max(1)) {
                match self.follow(follower, source).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        tracing::debug!(relay = %source, error = %e, "directory: following failed");
                        failures += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(self.settings.heartbeat_ms)).await;
        }
    }

    /// Follows the replica at `endpoint` until its stream ends or fails.
    async fn follow(&self, follower: &Follower, endpoint: &str) -> Result<(), String> {
        let mut client = self.client(endpoint).await.map_err(|e| e.to_string())?;
        let request = FollowRequest {
            next_index: follower.next_index(),
        };
        let mut stream = match client.follow(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                self.lock_clients().remove(endpoint);
                return Err(status.message().to_owned());
            }
        };
        let silence = Duration::from_millis(self.settings.election_timeout_ms * 2);
        loop {
            let batch = match tokio::time::timeout(silence, stream.message()).await {
                Err(_) => return Err(format!("nothing for {} ms", silence.as_millis())),
                Ok(Err(status)) => {
                    self.lock_clients().remove(endpoint);
                    return Err(status.message().to_owned());
                }
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(batch))) => batch,
            };
            if self.link.cuts_endpoint(endpoint) {
                return Err(format!("this node is cut off from {endpoint}"));
            }
            let relayed: Relayed = serde_json::from_slice(&batch.json)
                .map_err(|e| format!("not a relayed batch: {e}"))?;
            // A snapshot carries no signatures to check: taken, as raft takes one, only from a
            // voter — a district that does not vote makes its street follow a voter instead —
            // but for a street's first, from the parent it joined through, which it already
            // trusted to name the voters.
            if relayed.snapshot.is_some()
                && follower.next_index() > 0
                && !self.is_voter_endpoint(endpoint)
            {
                return Err(format!(
                    "{endpoint} does not vote and sent a snapshot: a street takes snapshots only from a voter"
                ));
            }
            if let Some(ms) = relayed.millis_since_leader {
                self.link.heard_leader_ago(ms);
            }
            *self.relay_leader.lock().unwrap_or_else(|p| p.into_inner()) = relayed.leader;
            follower.take(relayed).await.map_err(|e| e.to_string())?;
        }
    }

    /// Notes raft's voters for the transport (which believes a higher term only from a voter);
    /// while this node leads, every active member replicates (as a learner unless the city named
    /// it a voter; streets follow their district instead, when they do), and suspended or
    /// removed members stop replicating.
    async fn reconcile_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        loop {
            tick.tick().await;
            let (state, voters) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                (
                    m.state,
                    m.membership_config.membership().voter_ids().collect(),
                )
            };
            self.link.set_voters(voters);
            if state != ServerState::Leader {
                continue;
            }
            if let Err(e) = self.reconcile().await {
                tracing::debug!(error = %e, "directory membership not yet in step");
            }
        }
    }

    async fn reconcile(&self) -> Result<(), String> {
        let (active, wanted_voters): (BTreeMap<NodeId, String>, BTreeSet<NodeId>) =
            self.state.view(|s, _| {
                let active = s
                    .members
                    .values()
                    .filter(|m| m.status == MemberStatus::Active)
                    .filter(|m| {
                        !(self.settings.streets_follow_district && m.unit.tier == Tier::Street)
                    })
                    .map(|m| (node_id(&m.unit.code), m.endpoint.clone()))
                    .collect::<BTreeMap<_, _>>();
                (active, s.active_voters().iter().map(node_id).collect())
            });
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let nodes: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        for (id, addr) in active.iter().filter(|(id, _)| !nodes.contains(id)) {
            tracing::info!(member = %code_of(*id), %addr, "directory: adding a learner");
            let node = BasicNode { addr: addr.clone() };
            self.raft
                .add_learner(*id, node, false)
                .await
                .map_err(|e| e.to_string())?;
        }
        if !wanted_voters.is_empty()
            && wanted_voters != voters
            && wanted_voters.iter().all(|v| nodes.contains(v))
        {
            tracing::info!(voters = ?wanted_voters, "directory: changing voters");
            self.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(wanted_voters.clone()), true)
                .await
                .map_err(|e| e.to_string())?;
        }
        let gone: BTreeSet<NodeId> = nodes
            .iter()
            .filter(|id| !active.contains_key(id) && !voters.contains(id))
            .copied()
            .collect();
        if !gone.is_empty() {
            tracing::info!(members = ?gone, "directory: removing replicas of inactive members");
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(gone), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Whether a membership entry follows the directory: each of its voter sets is one raft already
/// has (`kept`) or one of `named` (the active voter sets the directory held at or after what this
/// replica applied), and every node it replicates to is a member of `state`. Before the city
/// registers, only the founding membership (one voter) is possible.
fn follows_directory(
    membership: &Membership<NodeId, BasicNode>,
    state: &DirectoryState,
    named: &[BTreeSet<NodeCode>],
    kept: &[BTreeSet<NodeId>],
) -> Result<(), String> {
    let configs = membership.get_joint_config();
    if state.members.is_empty() {
        return match configs.as_slice() {
            [founder] if founder.len() == 1 => Ok(()),
            _ => Err(format!(
                "a membership entry names voters {configs:?} before the city founded the directory"
            )),
        };
    }
    for config in configs {
        let voters: BTreeSet<NodeCode> = config.iter().copied().map(code_of).collect();
        if !kept.contains(config) && !named.contains(&voters) {
            let list: Vec<&str> = voters.iter().map(|c| c.as_str()).collect();
            return Err(format!(
                "a membership entry names voters {}, which the directory never named: raft's voters change only with `tierlink directory voters`, signed by the city",
                list.join(",")
            ));
        }
    }
    if let Some((id, _)) = membership
        .nodes()
        .find(|(id, _)| !state.members.contains_key(&code_of(**id)))
    {
        return Err(format!(
            "a membership entry replicates to {}, which is not a member of the directory",
            code_of(*id)
        ));
    }
    Ok(())
}

/// Hands each proposal of `group` its own replies, in order, or the error they share.
fn answer(group: Vec<Proposal>, result: Result<Vec<DirectoryReply>, DirectoryError>) {
    match result {
        Ok(mut replies) => {
            for p in group {
                let rest = replies.split_off(p.commands.len().min(replies.len()));
                let _ = p.reply.send(Ok(std::mem::replace(&mut replies, rest)));
            }
        }
        Err(e) => {
            for p in group {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Replies in their wire form.
pub(super) fn response_of(replies: Vec<DirectoryReply>) -> ChangeResponse {
    ChangeResponse {
        results: replies.into_iter().map(Into::into).collect(),
    }
}
