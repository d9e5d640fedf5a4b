//! The directory's raft messages between nodes: the `tierlink.v1.Federation` client side, over
//! the same mutual TLS as the exchange. One connection per peer, made on first use and remade
//! after a failure.

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tierlink_proto::v1::RaftPayload;
use tierlink_proto::v1::federation_client::FederationClient;
use tonic::transport::Channel;

use super::type_config::{NodeId, TypeConfig};
use crate::config::Credentials;
use crate::exchange::client::{MAX_MESSAGE_BYTES, channel};

/// Makes connections to the other voters and learners, with this node's credentials.
pub struct Network {
    credentials: Credentials,
}

impl Network {
    /// Connections made with `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        Self { credentials }
    }
}

/// A connection to one peer.
pub struct Connection {
    target: NodeId,
    endpoint: String,
    credentials: Credentials,
    client: Option<FederationClient<Channel>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection {
            target,
            endpoint: node.addr.clone(),
            credentials: self.credentials.clone(),
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

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Failure<RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Failure<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Rpc::InstallSnapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Failure<RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc).await
    }
}
