//! The `tierlink.v1.Exchange` gRPC service: who is calling (from the TLS certificate), what they
//! may do, relaying to other nodes, and streaming signed batches.
//!
//! Authorization until grants exist: only the node itself (its own certificate, as the CLI uses)
//! may write catalogs and records; every federation member may list, get, query and read
//! history; items and catalogs that are not shared never leave the node.

use std::pin::Pin;
use std::sync::Arc;

use tierlink_proto::v1::exchange_client::ExchangeClient;
use tierlink_proto::v1::exchange_server::Exchange;
use tierlink_proto::v1::{
    BatchHeader, CatalogSummary, GetCatalogRequest, GetCatalogResponse, HistoryRequest,
    ListCatalogsRequest, ListCatalogsResponse, PutCatalogRequest, PutCatalogResponse,
    PutRecordsRequest, PutRecordsResponse, QueryRequest, SignedBatch,
};
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::BatchSigner;
use super::client::{ClientError, Peers};
use super::produce::{self, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, Plan, PlanError};
use crate::catalog::{Catalog, SharingType, parse_catalogs};
use crate::identity::NodeCode;
use crate::peer::caller;
use crate::registry::{Registry, RegistryError};
use crate::store::{StoreError, StoredRecord};

/// A response stream of signed batches, produced here or relayed.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<SignedBatch, Status>> + Send>>;

/// Batches produced ahead of a slow consumer; bounds the memory of one stream.
const STREAM_BUFFER: usize = 4;

/// The exchange service of one node.
pub struct ExchangeService {
    registry: Arc<Registry>,
    signer: Arc<BatchSigner>,
    peers: Arc<Peers>,
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownCatalog(_) => Status::not_found(e.to_string()),
            RegistryError::Store(s) => s.into(),
            _ => Status::invalid_argument(e.to_string()),
        }
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Status::internal(e.to_string())
    }
}

impl From<PlanError> for Status {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::NotShared(m) => Status::permission_denied(m),
            PlanError::BadRequest(m) => Status::invalid_argument(m),
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

/// The caller's request id, or a fresh random one when it gave none.
fn request_id(given: String) -> Result<String, Status> {
    if !given.is_empty() {
        return Ok(given);
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Status::unavailable(format!(
            "no randomness for a request id ({e}); give request_id"
        ))
    })?;
    Ok(hex::encode(bytes))
}

impl ExchangeService {
    /// A service over a node's registry, signing with its key and relaying through its peers.
    pub fn new(registry: Arc<Registry>, signer: Arc<BatchSigner>, peers: Arc<Peers>) -> Self {
        Self {
            registry,
            signer,
            peers,
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
        let target: NodeCode = target
            .parse()
            .map_err(|e: crate::identity::UnitError| Status::invalid_argument(e.to_string()))?;
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

    fn require_self(&self, caller: &NodeCode, what: &str) -> Result<(), Status> {
        if caller == self.me() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{caller} may not {what} on node {}: only the node itself writes its catalogs and records; ask its administrator",
                self.me()
            )))
        }
    }

    /// Streams `records` as signed batches under `plan`, from a blocking task.
    fn stream_batches(
        &self,
        template: BatchHeader,
        records: impl Iterator<Item = Result<StoredRecord, StoreError>> + Send + 'static,
        plan: Plan,
        batch_size: usize,
        limit: Option<u64>,
    ) -> BatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let signer = self.signer.clone();
        tokio::task::spawn_blocking(move || {
            let (consumer, catalog, kind) = (
                template.consumer.clone(),
                template.catalog.clone(),
                template.kind.clone(),
            );
            let lists = produce::record_lists(records, plan, batch_size, limit);
            let (mut batches, mut records) = (0u32, 0u64);
            for sealed in produce::seal_all(&signer, template, lists) {
                let batch = sealed.map_err(Status::from).map(|s| {
                    batches += 1;
                    records += s.record_count;
                    s.batch
                });
                if tx.blocking_send(batch).is_err() {
                    tracing::info!(%consumer, %catalog, %kind, "consumer went away before the stream ended");
                    return;
                }
            }
            tracing::info!(%consumer, %catalog, %kind, batches, records, "served");
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    fn plan(
        &self,
        caller: &NodeCode,
        catalog: &str,
    ) -> Result<(Arc<crate::registry::Entry>, Plan), Status> {
        let entry = self.registry.entry(catalog)?;
        let plan = Plan::for_consumer(&entry.catalog, caller == self.me())?;
        Ok((entry, plan))
    }
}

fn batch_size(requested: u32) -> Result<usize, Status> {
    match requested as usize {
        0 => Ok(DEFAULT_BATCH_SIZE),
        n if n <= MAX_BATCH_SIZE => Ok(n),
        n => Err(Status::invalid_argument(format!(
            "batch_size {n} is above the limit of {MAX_BATCH_SIZE}"
        ))),
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
            let records = self.registry.store().record_count(&c.code)?;
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
        let entry = self.registry.entry(&req.code)?;
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
        self.require_self(&self.caller(&request)?, "publish catalogs")?;
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
            .map_err(|e| Status::internal(e.to_string()))??;
        tracing::info!(catalog = %code, replaced, "catalog published");
        Ok(Response::new(PutCatalogResponse { code, replaced }))
    }

    async fn put_records(
        &self,
        request: Request<PutRecordsRequest>,
    ) -> Result<Response<PutRecordsResponse>, Status> {
        self.require_self(&self.caller(&request)?, "write records")?;
        let req = request.into_inner();
        let rows: Vec<Vec<String>> = req.rows.into_iter().map(|r| r.values).collect();
        let registry = self.registry.clone();
        let catalog = req.catalog.clone();
        let outcome =
            tokio::task::spawn_blocking(move || registry.put_records(&catalog, &req.columns, rows))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        tracing::info!(catalog = %req.catalog, created = outcome.created, updated = outcome.updated, "records written");
        Ok(Response::new(PutRecordsResponse {
            written: outcome.created + outcome.updated,
            created: outcome.created,
            updated: outcome.updated,
        }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<BatchStream>, Status> {
        let caller = self.caller(&request)?;
        let mut req = request.into_inner();
        if let Some(mut client) = self.relay(&caller, &req.target).await? {
            let stream = client.query(req).await?.into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let size = batch_size(req.batch_size)?;
        let (entry, plan) = self.plan(&caller, &req.catalog)?;
        let plan = plan.with_query(&entry.catalog, &req)?;
        req.request_id = request_id(std::mem::take(&mut req.request_id))?;
        let to = (!req.key_to.is_empty()).then_some(req.key_to.as_str());
        let records = self.registry.store().scan(&req.catalog, &req.key_from, to);
        let template = plan.header(caller.as_str(), &req.catalog, "query", &req.request_id);
        let limit = (req.limit > 0).then_some(req.limit);
        Ok(Response::new(
            self.stream_batches(template, records, plan, size, limit),
        ))
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let caller = self.caller(&request)?;
        let mut req = request.into_inner();
        if let Some(mut client) = self.relay(&caller, &req.target).await? {
            let stream = client.history(req).await?.into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let (_, plan) = self.plan(&caller, &req.catalog)?;
        req.request_id = request_id(std::mem::take(&mut req.request_id))?;
        let versions = self.registry.store().history(&req.catalog, &req.key)?;
        if versions.is_empty() {
            return Err(Status::not_found(format!(
                "catalog {} has no record with key {:?}",
                req.catalog, req.key
            )));
        }
        let template = plan.header(caller.as_str(), &req.catalog, "history", &req.request_id);
        Ok(Response::new(self.stream_batches(
            template,
            versions.into_iter().map(Ok),
            plan,
            DEFAULT_BATCH_SIZE,
            None,
        )))
    }
}

/// The serde name of a unit enum value, e.g. `real_time`.
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
