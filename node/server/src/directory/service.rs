//! The `tierlink.v1.Federation` server side: hands openraft's messages to the local raft, after
//! checking that the caller is a voter of the directory (see `voters`) and the node the message
//! says it comes from.

use std::sync::Arc;

use openraft::raft::AppendEntriesResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tierlink_client::MAX_MESSAGE_BYTES;
use tierlink_proto::v1::RaftPayload;
use tierlink_proto::v1::federation_server::{Federation, FederationServer};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::replica::Replica;
use super::type_config::{NodeId, TypeConfig, node_id};
use crate::admission::Caller;

/// The federation service of one node.
pub struct FederationService {
    replica: Arc<Replica>,
}

impl FederationService {
    /// A service for the raft of `replica`, refusing every message while its link is cut off.
    pub fn new(replica: Arc<Replica>) -> Self {
        Self { replica }
    }

    /// The `tierlink.v1.Federation` server for `replica`: the sender is admitted as a voter
    /// ([`VotersOnly`]) before the message's body is read, so a refused node's message is never
    /// buffered.
    pub fn server(replica: Arc<Replica>) -> InterceptedService<FederationServer<Self>, VotersOnly> {
        let server = FederationServer::new(Self::new(replica.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        InterceptedService::new(server, VotersOnly(replica))
    }

    /// The sender and the message.
    fn decode<T: DeserializeOwned>(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<(NodeId, T), Status> {
        let from = Caller::of(&request)?.node;
        let message = serde_json::from_slice(&request.into_inner().json)
            .map_err(|e| Status::invalid_argument(format!("not a raft message: {e}")))?;
        Ok((node_id(&from), message))
    }
}

/// Admits a raft message from the directory's voters only, on its request head: a node cut off
/// by the fault hook answers nothing, a node that is not a voter is refused (PERMISSION_DENIED,
/// counted) before its message is read.
#[derive(Clone)]
pub struct VotersOnly(Arc<Replica>);

impl Interceptor for VotersOnly {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.0.link().is_isolated() {
            return Err(Status::unavailable("this node is cut off"));
        }
        let from = Caller::of(&request)?.node;
        self.0
            .admit_raft(&from)
            .map_err(Status::permission_denied)?;
        Ok(request)
    }
}

fn encode<T: Serialize>(reply: &T) -> Result<Response<RaftPayload>, Status> {
    let json = serde_json::to_vec(reply).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { json }))
}

/// A message's sender must be the node whose certificate sent it: no member speaks for another.
fn check_sender(from: NodeId, claimed: Option<NodeId>) -> Result<(), Status> {
    if claimed == Some(from) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "node {from} sent a raft message on behalf of {claimed:?}: a node speaks only for itself"
        )))
    }
}

#[tonic::async_trait]
impl Federation for FederationService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let (from, rpc): (_, openraft::raft::AppendEntriesRequest<TypeConfig>) =
            self.decode(request)?;
        check_sender(from, rpc.vote.leader_id().voted_for())?;
        self.replica
            .check_membership(&rpc)
            .await
            .map_err(Status::permission_denied)?;
        let reply = self.replica.raft().append_entries(rpc).await;
        if matches!(&reply, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.replica.link().heard_leader();
        }
        encode(&reply)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (from, rpc): (_, openraft::raft::VoteRequest<NodeId>) = self.decode(request)?;
        check_sender(from, rpc.vote.leader_id().voted_for())?;
        encode(&self.replica.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let (from, rpc): (_, openraft::raft::InstallSnapshotRequest<TypeConfig>) =
            self.decode(request)?;
        check_sender(from, rpc.vote.leader_id().voted_for())?;
        encode(&self.replica.raft().install_snapshot(rpc).await)
    }
}
