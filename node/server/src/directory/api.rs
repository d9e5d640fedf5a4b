//! The `tierlink.v1.Directory` server side: changes in (from the node's own administrator, or
//! signed entries from other nodes), reads out of the local replica, and the replica's status.

use std::sync::Arc;

use tierlink_core::directory::PublishedCatalog;
use tierlink_core::directory::{DirectoryCommand, MemberStatus, SignedCommands};
use tierlink_core::identity::UnitError;
use tierlink_core::policy::{Asker, Refusal, Reveal};
use tierlink_proto::v1::directory_server::Directory;
use tierlink_proto::v1::{
    CatalogsRequest, CatalogsResponse, ChangeResponse, Expiring, ExplainRequest, ExplainResponse,
    FollowBatch, FollowRequest, FoundRequest, ItemRedaction, MembersResponse, PoliciesResponse,
    ProposeRequest, PublishRequest, ReadMeta, ReadRequest, Replica as ReplicaStatus, StatusRequest,
    StatusResponse, SubmitRequest,
};
use tierlink_store::registry::Registry;
use tonic::{Request, Response, Status};

use super::replica::{DirectoryError, Replica, response_of};
use super::type_config::code_of;
use crate::read::ReadError;

/// How long before a certificate expires `Status` reports it: 30 days, in seconds.
const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// How long `Status` waits for the leader's view of replication before answering without it.
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The directory service of one node.
pub struct DirectoryService {
    replica: Arc<Replica>,
    registry: Arc<Registry>,
}

impl DirectoryService {
    /// A service over `replica`, publishing catalogs from `registry`.
    pub fn new(replica: Arc<Replica>, registry: Arc<Registry>) -> Self {
        Self { replica, registry }
    }

    /// Local reads answer here; a linearizable read is answered by the leader, after it has
    /// confirmed its leadership and applied everything committed before the call.
    async fn read_meta(&self, read: Option<ReadRequest>) -> Result<Option<ReadMeta>, Status> {
        let linearizable = read.is_some_and(|r| r.linearizable);
        if linearizable {
            if !self.replica.is_leader() {
                return Ok(None);
            }
            self.replica.ensure_linearizable().await?;
        }
        Ok(Some(self.replica.read_meta(linearizable)))
    }
}

impl From<DirectoryError> for Status {
    fn from(e: DirectoryError) -> Self {
        let text = e.to_string();
        match e {
            DirectoryError::NoLeader { .. } => Status::unavailable(text),
            DirectoryError::Unconfirmed(_) | DirectoryError::Unanswered => {
                Status::deadline_exceeded(text)
            }
            DirectoryError::Invalid(_) => Status::invalid_argument(text),
            DirectoryError::AlreadyFounded => Status::failed_precondition(text),
            DirectoryError::Storage(_) => Status::internal(text),
            DirectoryError::Remote { .. } => Status::unavailable(text),
        }
    }
}

/// The item names of `published` that contain `text` (already lower-case), and whether the
/// catalog matches at all.
fn matches(published: &PublishedCatalog, text: &str) -> Option<Vec<String>> {
    let c = &published.catalog;
    let items: Vec<String> = c
        .items
        .iter()
        .filter(|i| !text.is_empty() && i.name.to_lowercase().contains(text))
        .map(|i| i.name.clone())
        .collect();
    let fields = [&c.code, &c.name, &c.provider.name, &c.provider.code];
    let hit = text.is_empty()
        || !items.is_empty()
        || fields.iter().any(|f| f.to_lowercase().contains(text));
    hit.then_some(items)
}

#[tonic::async_trait]
impl Directory for DirectoryService {
    type FollowStream = tokio_stream::wrappers::ReceiverStream<Result<FollowBatch, Status>>;

    async fn follow(
        &self,
        request: Request<FollowRequest>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        if self.replica.link().is_isolated() {
            return Err(Status::unavailable("this node is cut off"));
        }
        let next = request.into_inner().next_index;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            self.replica.relay(next),
        )))
    }

    async fn found(
        &self,
        _request: Request<FoundRequest>,
    ) -> Result<Response<ChangeResponse>, Status> {
        Ok(Response::new(response_of(self.replica.found().await?)))
    }

    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ChangeResponse>, Status> {
        let req = request.into_inner();
        let commands: Vec<DirectoryCommand> =
            serde_json::from_str(&req.commands_json).map_err(|e| {
                Status::invalid_argument(format!(
                    "commands_json is not a list of directory commands: {e}"
                ))
            })?;
        if commands.is_empty() {
            return Err(Status::invalid_argument("no commands given"));
        }
        let replies = if req.via.is_empty() {
            self.replica.propose(commands).await?
        } else {
            self.replica.propose_via(&req.via, commands).await?
        };
        Ok(Response::new(response_of(replies)))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<ChangeResponse>, Status> {
        let codes = request.into_inner().codes;
        if codes.is_empty() {
            return Err(Status::invalid_argument(
                "name the catalogs to publish by their resource codes",
            ));
        }
        let commands = codes
            .iter()
            .map(|code| {
                let entry = self
                    .registry
                    .entry(code)
                    .map_err(|e| Status::from(ReadError::from(e)))?;
                Ok(DirectoryCommand::Publish(entry.catalog.shared_view()))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(response_of(
            self.replica.propose(commands).await?,
        )))
    }

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        let req = request.into_inner();
        let producer = if req.producer.is_empty() {
            self.replica.code().clone()
        } else {
            req.producer
                .parse()
                .map_err(|e: UnitError| Status::invalid_argument(e.to_string()))?
        };
        let asker = Asker::named(&req.principal, &req.role, &req.purpose)
            .map_err(Status::invalid_argument)?;
        // The producer's full entry when it is this node, else its published (shared) view.
        let catalog = if &producer == self.replica.code() {
            self.registry
                .entry(&req.catalog)
                .map_err(|e| Status::from(ReadError::from(e)))?
                .catalog
                .clone()
        } else {
            self.replica
                .view(|s| {
                    s.catalogs
                        .get(&producer)
                        .and_then(|own| own.get(&req.catalog))
                        .map(|p| p.catalog.clone())
                })
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "{producer} has published no catalog {}",
                        req.catalog
                    ))
                })?
        };
        let on = if req.on.is_empty() {
            chrono::Utc::now().format("%Y-%m-%d").to_string()
        } else {
            req.on
        };
        let decided = self
            .replica
            .view(|s| s.policies.decide(&producer, &catalog, &asker, &on));
        let mut response = ExplainResponse {
            producer: producer.to_string(),
            on,
            ..Default::default()
        };
        // A grant that leaks is refused, and what it would reveal still shown.
        let decision = match decided {
            Ok(decision) => decision,
            Err(refusal) => {
                response.refusal = refusal.to_string();
                match refusal {
                    Refusal::Leaks(leaks) => leaks.decision,
                    _ => return Ok(Response::new(response)),
                }
            }
        };
        let reveal = Reveal::of(&catalog, &decision);
        response.reveals = (0..decision.items.len())
            .map(|n| reveal.describe(n))
            .collect();
        response.keys_in_clear = decision.key_in_clear(&catalog);
        response.rows = decision
            .rows
            .as_ref()
            .map(|r| format!("{}:{}", r.item, r.within))
            .unwrap_or_default();
        response.items = decision.items.iter().map(ItemRedaction::from).collect();
        response.grant = decision.grant;
        Ok(Response::new(response))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<ChangeResponse>, Status> {
        let req = request.into_inner();
        let entry: SignedCommands = serde_json::from_str(&req.entry_json).map_err(|e| {
            Status::invalid_argument(format!("entry_json is not a signed entry: {e}"))
        })?;
        let replies = self.replica.submit(entry, req.hops).await?;
        Ok(Response::new(response_of(replies)))
    }

    async fn members(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let req = request.into_inner();
        let Some(meta) = self.read_meta(Some(req)).await? else {
            return self.replica.leader_client().await?.members(req).await;
        };
        let members = self.replica.view(|s| {
            s.members
                .values()
                .map(|m| tierlink_proto::v1::Member {
                    voter: s.voters.contains(&m.unit.code),
                    ..m.into()
                })
                .collect()
        });
        Ok(Response::new(MembersResponse {
            meta: Some(meta),
            members,
        }))
    }

    async fn policies(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<PoliciesResponse>, Status> {
        let req = request.into_inner();
        let Some(meta) = self.read_meta(Some(req)).await? else {
            return self.replica.leader_client().await?.policies(req).await;
        };
        let policies_json = self
            .replica
            .view(|s| serde_json::to_string(&s.policies))
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(PoliciesResponse {
            meta: Some(meta),
            policies_json,
        }))
    }

    async fn catalogs(
        &self,
        request: Request<CatalogsRequest>,
    ) -> Result<Response<CatalogsResponse>, Status> {
        let req = request.into_inner();
        let Some(meta) = self.read_meta(req.read).await? else {
            return self.replica.leader_client().await?.catalogs(req).await;
        };
        let text = req.text.trim().to_lowercase();
        let catalogs = self.replica.view(|s| {
            s.catalogs
                .values()
                .flat_map(|own| own.values())
                .filter(|p| req.publisher.is_empty() || p.publisher.as_str() == req.publisher)
                .filter_map(|p| {
                    let matched_items = matches(p, &text)?;
                    Some(tierlink_proto::v1::PublishedCatalog {
                        publisher: p.publisher.to_string(),
                        revision: p.revision,
                        summary: Some((&p.catalog).into()),
                        catalog_json: serde_json::to_string_pretty(&p.catalog).ok()?,
                        matched_items,
                    })
                })
                .collect()
        });
        Ok(Response::new(CatalogsResponse {
            meta: Some(meta),
            catalogs,
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.replica.metrics();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let matched = |id: &u64| -> Option<u64> {
            if *id == m.id {
                return m.last_log_index;
            }
            let replication = m.replication.as_ref()?;
            replication.get(id).copied().flatten().map(|l| l.index)
        };
        let mut replicas: Vec<ReplicaStatus> = membership
            .nodes()
            .map(|(id, _)| ReplicaStatus {
                code: code_of(*id).to_string(),
                voter: voters.contains(id),
                matched_index: matched(id),
            })
            .collect();
        // Only the leader knows how far each replica has got: ask it (a street, through the
        // node it follows).
        if m.replication.is_none() && (m.current_leader.is_some() || self.replica.follows()) {
            let ask = async {
                let mut leader = self.replica.leader_client().await.ok()?;
                leader.status(StatusRequest {}).await.ok()
            };
            if let Ok(Some(from_leader)) = tokio::time::timeout(STATUS_WAIT, ask).await {
                replicas = from_leader.into_inner().replicas;
            }
        }
        // Active members replicate, as raft replicas or as streets following their district.
        let not_replicating = self.replica.view(|s| {
            s.members
                .values()
                .filter(|m| m.status != MemberStatus::Active)
                .map(|m| m.unit.code.to_string())
                .filter(|c| !replicas.iter().any(|r| r.code == *c))
                .collect()
        });
        let soon = chrono::Utc::now().timestamp() + EXPIRY_WARNING_SECS;
        let expiring = self.replica.view(|s| {
            s.members
                .values()
                .flat_map(|m| {
                    let listed = tierlink_proto::v1::Member::from(m);
                    [
                        ("tls", listed.tls_expires_unix),
                        ("signing", listed.signing_expires_unix),
                    ]
                    .into_iter()
                    .filter(|(_, at)| *at != 0 && *at < soon)
                    .map(move |(certificate, expires_unix)| Expiring {
                        code: m.unit.code.to_string(),
                        certificate: certificate.to_owned(),
                        expires_unix,
                    })
                })
                .collect()
        });
        Ok(Response::new(StatusResponse {
            meta: Some(self.replica.read_meta(false)),
            term: m.current_term,
            state: if self.replica.follows() {
                "follows its district".into()
            } else {
                format!("{:?}", m.state).to_lowercase()
            },
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map_or(0, |s| s.index),
            replicas,
            not_replicating,
            refused_raft_messages: self.replica.refused_raft_messages(),
            expiring,
            presents_tls: self.replica.member().tls_fingerprint.clone(),
        }))
    }
}
