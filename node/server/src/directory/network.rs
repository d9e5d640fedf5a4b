//! The directory's raft messages between nodes: the `tierlink.v1.Federation` client side, over
//! the same mutual TLS as the exchange. One connection per peer, made on first use and remade
//! after a failure.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tierlink_client::faults::Blocked;
use tierlink_client::{MAX_MESSAGE_BYTES, channel};
use tierlink_core::config::Credentials;
use tierlink_proto::v1::RaftPayload;
use tierlink_proto::v1::federation_client::FederationClient;
use tonic::transport::Channel;

use super::type_config::{NodeId, TypeConfig, code_of};

/// Makes connections to the other voters and learners, with this node's credentials.
pub struct Network {
    credentials: Credentials,
    link: Link,
}

impl Network {
    /// Connections made with `credentials`, cut when `link` is isolated.
    pub fn new(credentials: Credentials, link: Link) -> Self {
        Self { credentials, link }
    }
}

/// What a node's transport knows of the federation: when it last heard from a leader (how stale
/// its reads may be), and whether it is cut off. Cutting a node off, from every peer or from the
/// peers its faults file lists ([`Blocked`]), is a fault hook: every raft message in or out, and
/// every forwarded change, fails as if the network were down, so partition tests exercise the
/// real replication paths.
#[derive(Clone, Default)]
pub struct Link {
    heard: Arc<Mutex<Option<Instant>>>,
    isolated: Arc<AtomicBool>,
    voters: Arc<RwLock<BTreeSet<NodeId>>>,
    blocked: Blocked,
}

impl Link {
    /// A link that treats the peers `blocked` lists as unreachable.
    pub fn with_blocked(blocked: Blocked) -> Self {
        Self {
            blocked,
            ..Self::default()
        }
    }

    /// The peers the fault hook blocks: shared with the node's other clients and its admission.
    pub fn blocked(&self) -> &Blocked {
        &self.blocked
    }

    /// Whether messages to or from `node` fail: this node is cut off, or `node` is blocked.
    pub fn cuts(&self, node: NodeId) -> bool {
        self.is_isolated() || self.blocked.blocks(&code_of(node))
    }

    /// Whether calls to the node at `endpoint` fail: this node is cut off, or that node is
    /// blocked.
    pub fn cuts_endpoint(&self, endpoint: &str) -> bool {
        self.is_isolated() || self.blocked.blocks_endpoint(endpoint)
    }

    /// Notes that a leader's append-entries message arrived now.
    pub fn heard_leader(&self) {
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Notes that a relay, heard now, heard a leader `ms` milliseconds ago.
    pub fn heard_leader_ago(&self, ms: u64) {
        let at = Instant::now()
            .checked_sub(std::time::Duration::from_millis(ms))
            .unwrap_or_else(Instant::now);
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// Milliseconds since a leader was last heard; `None` if never.
    pub fn millis_since_leader(&self) -> Option<u64> {
        let heard = *self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.map(|at| at.elapsed().as_millis() as u64)
    }

    /// Cuts the node off from every other node, or reconnects it.
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
    }

    /// Whether the node is cut off.
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// Notes the voters of this node's raft membership.
    pub fn set_voters(&self, voters: BTreeSet<NodeId>) {
        *self.voters.write().unwrap_or_else(|p| p.into_inner()) = voters;
    }

    /// Whether `node` is a voter of this node's raft membership.
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.voters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&node)
    }
}

/// A connection to one peer.
pub struct Connection {
    target: NodeId,
    endpoint: String,
    credentials: Credentials,
    link: Link,
    client: Option<FederationClient<Channel>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection {
            target,
            endpoint: node.addr.clone(),
            credentials: self.credentials.clone(),
            link: self.link.clone(),
            client: None,
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

type Failure<E> = RPCError<NodeId, BasicNode, E>;

impl Connection {
    async fn call<Req, Resp, E>(&mut self, rpc: Rpc, request: &Req) -> Result<Resp, Failure<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.link.cuts(self.target) {
            self.client = None;
            let cut = std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("this node is cut off from {}", self.target),
            );
            return Err(RPCError::Unreachable(Unreachable::new(&cut)));
        }
        let json =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = match self.client.take() {
            Some(c) => c,
            None => FederationClient::new(
                channel(&self.credentials, &self.endpoint)
                    .await
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?,
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        };
        let payload = RaftPayload { json };
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(payload).await,
            Rpc::Vote => client.vote(payload).await,
            Rpc::InstallSnapshot => client.install_snapshot(payload).await,
        }
        .map_err(|status| RPCError::Unreachable(Unreachable::new(&status)))?;
        self.client = Some(client);
        let result: Result<Resp, E> = serde_json::from_slice(&reply.into_inner().json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl Connection {
    /// A learner's answer that claims a higher term than the leader's is not believed: only a
    /// voter's vote can depose a leader, so a learner, whatever it answers, harms only itself.
    fn believe<E>(&self, vote: &Vote<NodeId>, claimed: &Vote<NodeId>) -> Result<(), Failure<E>>
    where
        E: std::error::Error,
    {
        if claimed > vote && !self.link.is_voter(self.target) {
            tracing::warn!(
                learner = self.target,
                ?claimed,
                "directory: a learner answered with a higher term; ignored"
            );
            let why = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a voter and answered with a higher term: ignored",
                    self.target
                ),
            );
            return Err(RPCError::Unreachable(Unreachable::new(&why)));
        }
        Ok(())
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Failure<RaftError<NodeId>>> {
        let reply = self.call(Rpc::AppendEntries, &rpc).await?;
        match &reply {
            AppendEntriesResponse::HigherVote(claimed) => self.believe(&rpc.vote, claimed)?,
            // A node cannot have matched entries it was not sent: such an answer is a fault of
            // that node alone, not a position for the leader to take.
            AppendEntriesResponse::PartialSuccess(matched)
                if *matched > rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id) =>
            {
                let why = std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} claims to hold entries up to {matched:?}, beyond those sent",
                        self.target
                    ),
                );
                return Err(RPCError::Unreachable(Unreachable::new(&why)));
            }
            _ => {}
        }
        Ok(reply)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Failure<RaftError<NodeId, InstallSnapshotError>>>
    {
        let reply: InstallSnapshotResponse<NodeId> = self.call(Rpc::InstallSnapshot, &rpc).await?;
        self.believe(&rpc.vote, &reply.vote)?;
        Ok(reply)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Failure<RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc).await
    }
}
