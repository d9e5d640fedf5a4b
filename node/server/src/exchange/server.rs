//! The `tierlink.v1.Exchange` gRPC service: who is calling (the node from its TLS certificate,
//! the principal from its credential or its node's signed requester), what they may do, relaying
//! to other nodes, and streaming signed batches under the policy decision, with every read audited.
//!
//! Only the node itself (its own certificate, as the CLI uses) writes catalogs and records, and
//! reads its records unredacted. Every other read names a principal: its own node checks the
//! principal's credential and signs a requester; the producer checks that signature, decides
//! under the directory's grants (default deny) and carries the decision out before signing. That
//! read path, shared by `Query` and `History`, is the `read` module.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tierlink_proto::v1::exchange_client::ExchangeClient;
use tierlink_proto::v1::exchange_server::Exchange;
use tierlink_proto::v1::{
    CatalogSummary, GetCatalogRequest, GetCatalogResponse, HistoryRequest, ListCatalogsRequest,
    ListCatalogsResponse, PutCatalogRequest, PutCatalogResponse, PutRecordsRequest,
    PutRecordsResponse, QueryRequest, SignedBatch,
};
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

mod read;

use read::ReadRequest;

use crate::exchange::produce::PlanError;
use crate::peer::{caller, require_self};
use tierlink_client::{ClientError, Peers};
use tierlink_core::catalog::{Catalog, SharingType, parse_catalogs};
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::Redactor;
use tierlink_core::signed::BatchSigner;
use tierlink_core::signed::requester::SeenRequests;
use tierlink_store::StoreError;
use tierlink_store::audit::AuditLog;
use tierlink_store::registry::{Registry, RegistryError};

/// A response stream of signed batches, produced here or relayed.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<SignedBatch, Status>> + Send>>;

/// Batches produced ahead of a slow consumer; bounds the memory of one stream.
const STREAM_BUFFER: usize = 4;

/// The exchange service of one node.
pub struct ExchangeService {
    registry: Arc<Registry>,
    signer: Arc<BatchSigner>,
    peers: Arc<Peers>,
    audit: Arc<AuditLog>,
    redactor: Redactor,
    principals: PathBuf,
    seen: SeenRequests,
}

/// A refused catalog or record write or lookup, as a gRPC status.
fn registry_status(e: RegistryError) -> Status {
    match e {
        RegistryError::UnknownCatalog(_) => Status::not_found(e.to_string()),
        RegistryError::Store(s) => store_status(s),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// A store failure, logged here, as a gRPC status.
fn store_status(e: StoreError) -> Status {
    tracing::error!(error = %e, "store failure");
    Status::internal(e.to_string())
}

impl From<PlanError> for Status {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::NotShared(m) => Status::permission_denied(m),
            PlanError::BadRequest(m) => Status::invalid_argument(m),
            PlanError::Unavailable(m) => Status::failed_precondition(m),
        }
    }
}

fn relay_failure(me: &NodeCode, target: &NodeCode, e: ClientError) -> Status {
    match e {
        ClientError::Status(s) => s,
        // The full reason names this node's files: it is for this node's log, not the caller.
        ClientError::Config(c) => {
            tracing::warn!(%target, error = %c, "cannot relay");
            Status::not_found(format!(
                "node {me} has no address for {target}, so it cannot relay to it"
            ))
        }
        other => Status::unavailable(format!("relay from {me} to {target} failed: {other}")),
    }
}

impl ExchangeService {
    /// A service over a node's registry, signing with its key, relaying through its peers,
    /// redacting with `redactor`, auditing into `audit` and vouching for the principals in the
    /// file `principals`.
    pub fn new(
        registry: Arc<Registry>,
        signer: Arc<BatchSigner>,
        peers: Arc<Peers>,
        audit: Arc<AuditLog>,
        redactor: Redactor,
        principals: PathBuf,
    ) -> Self {
        Self {
            registry,
            signer,
            peers,
            audit,
            redactor,
            principals,
            seen: SeenRequests::default(),
        }
    }

    fn me(&self) -> &NodeCode {
        self.signer.code()
    }

    /// A connection to the node a request is for (`target`), when that is another node: this
    /// node then relays the request and passes the answer through unchanged.
    async fn relay(
        &self,
        caller: &NodeCode,
        target: &str,
    ) -> Result<Option<ExchangeClient<Channel>>, Status> {
        if target.is_empty() || target == self.me().as_str() {
            return Ok(None);
        }
        let target: NodeCode =
            target
                .parse()
                .map_err(|e: tierlink_core::identity::UnitError| {
                    Status::invalid_argument(e.to_string())
                })?;
        tracing::info!(%caller, %target, "relaying");
        self.peers
            .client(&target)
            .await
            .map(Some)
            .map_err(|e| relay_failure(self.me(), &target, e))
    }

    /// The calling node, from its certificate, if the federation directory admits it: a member
    /// that is suspended or not yet approved is refused every exchange.
    fn caller<T>(&self, request: &Request<T>) -> Result<NodeCode, Status> {
        let caller = caller(request)?;
        if &caller != self.me()
            && let Some(standing) = self.peers.members().standing(&caller)
        {
            standing.admit(&caller).map_err(Status::permission_denied)?;
        }
        Ok(caller)
    }
}

#[tonic::async_trait]
impl Exchange for ExchangeService {
    type QueryStream = BatchStream;
    type HistoryStream = BatchStream;

    async fn list_catalogs(
        &self,
        request: Request<ListCatalogsRequest>,
    ) -> Result<Response<ListCatalogsResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        if let Some(mut client) = self.relay(&caller, &req.target).await? {
            return client.list_catalogs(req).await;
        }
        let is_owner = &caller == self.me();
        let mut catalogs = Vec::new();
        for entry in self.registry.entries() {
            let c = &entry.catalog;
            let visible = c
                .items
                .iter()
                .filter(|i| is_owner || i.sharing != SharingType::NotShared)
                .count();
            let records = self
                .registry
                .store()
                .record_count(&c.code)
                .map_err(store_status)?;
            catalogs.push(catalog_summary(c, visible, records));
        }
        Ok(Response::new(ListCatalogsResponse {
            node: self.me().to_string(),
            catalogs,
        }))
    }

    async fn get_catalog(
        &self,
        request: Request<GetCatalogRequest>,
    ) -> Result<Response<GetCatalogResponse>, Status> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        if let Some(mut client) = self.relay(&caller, &req.target).await? {
            return client.get_catalog(req).await;
        }
        let entry = self.registry.entry(&req.code).map_err(registry_status)?;
        let view = if &caller == self.me() {
            entry.catalog.clone()
        } else {
            entry.catalog.shared_view()
        };
        let catalog_json =
            serde_json::to_string_pretty(&view).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(GetCatalogResponse { catalog_json }))
    }

    async fn put_catalog(
        &self,
        request: Request<PutCatalogRequest>,
    ) -> Result<Response<PutCatalogResponse>, Status> {
        require_self(&self.caller(&request)?, self.me(), "publish catalogs")?;
        let req = request.into_inner();
        let mut catalogs = parse_catalogs(&req.catalog_json, "request")
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if catalogs.len() != 1 {
            return Err(Status::invalid_argument(
                "send one catalog entry per PutCatalog call",
            ));
        }
        let catalog = catalogs.remove(0);
        let code = catalog.code.clone();
        let registry = self.registry.clone();
        let replaced = tokio::task::spawn_blocking(move || registry.put_catalog(catalog))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(registry_status)?;
        tracing::info!(catalog = %code, replaced, "catalog published");
        Ok(Response::new(PutCatalogResponse { code, replaced }))
    }

    async fn put_records(
        &self,
        request: Request<PutRecordsRequest>,
    ) -> Result<Response<PutRecordsResponse>, Status> {
        require_self(&self.caller(&request)?, self.me(), "write records")?;
        let req = request.into_inner();
        let rows: Vec<Vec<String>> = req.rows.into_iter().map(|r| r.values).collect();
        let registry = self.registry.clone();
        let catalog = req.catalog.clone();
        let outcome =
            tokio::task::spawn_blocking(move || registry.put_records(&catalog, &req.columns, rows))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(registry_status)?;
        tracing::info!(catalog = %req.catalog, created = outcome.created, updated = outcome.updated, "records written");
        Ok(Response::new(PutRecordsResponse {
            written: outcome.created + outcome.updated,
            created: outcome.created,
            updated: outcome.updated,
        }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<BatchStream>, Status> {
        let caller = self.caller(&request)?;
        let read = ReadRequest::Query(request.into_inner());
        self.read(caller, read).await.map(Response::new)
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let caller = self.caller(&request)?;
        let read = ReadRequest::History(request.into_inner());
        self.read(caller, read).await.map(Response::new)
    }
}

/// A catalog's line in a listing, counting `item_count` items and `record_count` records.
pub fn catalog_summary(c: &Catalog, item_count: usize, record_count: u64) -> CatalogSummary {
    CatalogSummary {
        code: c.code.clone(),
        name: c.name.clone(),
        provider_name: c.provider.name.clone(),
        provider_code: c.provider.code.clone(),
        kind: serde_plain(&c.kind),
        sharing_type: c.sharing.kind.as_str().to_owned(),
        update_cycle: serde_plain(&c.update_cycle),
        item_count: item_count as u32,
        record_count,
    }
}

fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
