//! The `tierlink.v1.Exchange` gRPC service: catalogs and record writes for the node's own
//! administrator, catalog listings for members, and `Query` and `History` as adapters over the
//! [`ReadService`], the one path records leave a node by.
//!
//! Who calls is settled before any handler runs ([`crate::admission`]): only the node itself
//! writes catalogs and records; suspended and pending members are refused everything.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use tierlink_core::catalog::{SharingType, parse_catalogs};
use tierlink_core::identity::NodeCode;
use tierlink_core::limits::{MAX_MESSAGE_CHARS, clip};
use tierlink_core::read::Read;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tierlink_proto::v1::exchange_server::Exchange;
use tierlink_proto::v1::{
    CatalogSummary, GetCatalogRequest, GetCatalogResponse, HistoryRequest, ListCatalogsRequest,
    ListCatalogsResponse, PutCatalogRequest, PutCatalogResponse, PutRecordsRequest,
    PutRecordsResponse, QueryRequest, SignedBatch, SourceOffsetRequest, SourceOffsetResponse,
    SubscribeRequest,
};
use tierlink_store::audit::{AuditEntry, AuditError, AuditLog, MAX_KEYS, Outcome, Side};
use tierlink_store::registry::{Registry, RegistryError};
use tierlink_store::{PutOutcome, StoreError, Write};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::admission::Caller;
use crate::metrics::{OTHER_CATALOG, WriteLabels};
use crate::read::{ReadError, ReadService, relay_failure};

/// A response stream of signed batches, as gRPC sends it.
pub type GrpcBatchStream = Pin<Box<dyn Stream<Item = Result<SignedBatch, Status>> + Send>>;

/// The exchange service of one node.
pub struct ExchangeService {
    registry: Arc<Registry>,
    reads: Arc<ReadService>,
    audit: Arc<AuditLog>,
}

/// A refused catalog or record write or lookup, as a gRPC status.
fn registry_status(e: RegistryError) -> Status {
    ReadError::from(e).into()
}

/// Most characters of a source's name in a [`tierlink_store::SourceMark`]: a name
/// such as `postgres:public.residents`, an offset such as a timestamp and a primary key.
pub const MAX_SOURCE_CHARS: usize = 128;
/// Most bytes of a source offset.
pub const MAX_OFFSET_BYTES: usize = 4096;

/// Checks a source mark's name and offset before the store keeps them.
fn check_mark(source: &str, offset: &str) -> Result<(), Status> {
    if source.is_empty() || source.chars().count() > MAX_SOURCE_CHARS {
        return Err(Status::invalid_argument(format!(
            "a source mark names its source in 1 to {MAX_SOURCE_CHARS} characters (e.g. postgres:public.residents)"
        )));
    }
    if offset.len() > MAX_OFFSET_BYTES {
        return Err(Status::invalid_argument(format!(
            "a source offset is at most {MAX_OFFSET_BYTES} bytes, and this one has {}",
            offset.len()
        )));
    }
    Ok(())
}

/// A store failure, logged, as a gRPC status.
fn store_status(e: StoreError) -> Status {
    ReadError::from(e).into()
}

impl ExchangeService {
    /// A service over a node's registry, reading through `reads` and auditing writes into
    /// `audit` (the log reads are audited in).
    pub fn new(registry: Arc<Registry>, reads: Arc<ReadService>, audit: Arc<AuditLog>) -> Self {
        Self {
            registry,
            reads,
            audit,
        }
    }

    fn me(&self) -> &NodeCode {
        self.reads.me()
    }

    /// A connection to the node a request is for (`target`), when that is another node: this
    /// node then relays the request and passes the answer through unchanged.
    async fn relay(
        &self,
        caller: &Caller,
        target: &str,
    ) -> Result<Option<ExchangeClient<Channel>>, Status> {
        let target = self.reads.target(target)?;
        if &target == self.me() {
            return Ok(None);
        }
        tracing::info!(caller = %caller.node, %target, "relaying");
        self.reads
            .peers()
            .client(&target)
            .await
            .map(Some)
            .map_err(|e| relay_failure(self.me(), &target, e).into())
    }

    /// Writes `rows` of `columns` to `catalog`, with the deletions and source mark of `also`,
    /// all or none, on a blocking thread, and audits it as `writer`'s (`NAME@UNIT`, or empty for
    /// the node itself): `PutRecords` and the gateway's writes alike. The entry, naming every key sent, reaches the disk with the
    /// records; a write refused (no such catalog, records that break it, a store that fails) is
    /// audited as refused.
    pub async fn write_records(
        &self,
        writer: &str,
        catalog: String,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        also: Write,
    ) -> Result<PutOutcome, RegistryError> {
        let span =
            tracing::info_span!("write", node = %self.me(), catalog = %clip(&catalog, 64), writer);
        // What was received, counted whether the store takes it or not.
        let records = (rows.len() + also.deletes.len()) as u64;
        let bytes = rows
            .iter()
            .flatten()
            .chain(&also.deletes)
            .map(String::len)
            .sum::<usize>() as u64;
        let registry = self.registry.clone();
        let audit = self.audit.clone();
        let entry = self.write_entry(writer, &catalog, columns.clone());
        let code = catalog.clone();
        let written: Result<PutOutcome, RegistryError> = tokio::task::spawn_blocking(move || {
            let outcome = registry.put_records_with(&code, &columns, rows, also, |write| {
                let mut entry = entry;
                entry.outcome = Some(Outcome::Served);
                let keys = || write.rows.iter().map(|r| &r.key).chain(&write.deletes);
                let n = write.rows.len() + write.deletes.len();
                entry.records = n as u64;
                if !write.deletes.is_empty() {
                    entry.items.insert("delete".into(), Vec::new());
                }
                if n <= MAX_KEYS {
                    entry.keys = keys().cloned().collect();
                } else if let (Some(low), Some(high)) = (keys().min(), keys().max()) {
                    entry.bounds = format!("{n} keys from {low} to {high}");
                }
                audit.append_unflushed(entry).map(drop).map_err(|e| {
                    StoreError::Engine(format!("the write's audit entry cannot be kept: {e}"))
                })
            })?;
            // Records all unchanged store nothing, and so flush nothing: the entry still must.
            if outcome.created + outcome.updated + outcome.deleted == 0 {
                audit.flush_blocking().map_err(|e| {
                    StoreError::Engine(format!("the write's audit entry cannot be kept: {e}"))
                })?;
            }
            Ok(outcome)
        })
        .instrument(span.clone())
        .await
        .map_err(|e| RegistryError::Store(StoreError::Engine(format!("the write stopped: {e}"))))?;
        match &written {
            Ok(outcome) => {
                span.in_scope(|| {
                    tracing::info!(
                        created = outcome.created,
                        updated = outcome.updated,
                        unchanged = outcome.unchanged,
                        deleted = outcome.deleted,
                        "records written"
                    )
                });
                self.count_write(&catalog, "written", records, bytes);
            }
            Err(refusal) => {
                let refused =
                    self.refused_write(writer, &catalog, refusal.to_string(), records, bytes);
                if let Err(e) = refused.instrument(span).await {
                    tracing::error!(error = %e, "cannot audit a refused write");
                }
            }
        }
        written
    }

    /// Counts a write of `records` records and deletions and `bytes` bytes of values to
    /// `catalog` (labelled so only when this node holds it).
    fn count_write(&self, catalog: &str, outcome: &'static str, records: u64, bytes: u64) {
        let known = self.registry.entry(catalog).is_ok();
        let labels = WriteLabels {
            catalog: if known { catalog } else { OTHER_CATALOG }.to_owned(),
            outcome,
        };
        self.reads.metrics().write(labels, records, bytes);
    }

    /// A write's audit entry, as far as it is known before the write: `writer` writes `items`
    /// of `catalog` on this node.
    fn write_entry(&self, writer: &str, catalog: &str, items: Vec<String>) -> AuditEntry {
        let me = self.me().to_string();
        AuditEntry {
            at_micros: chrono::Utc::now().timestamp_micros(),
            side: Some(Side::Owner),
            kind: "write".into(),
            producer: me.clone(),
            consumer: me,
            principal: writer.to_owned(),
            catalog: catalog.to_owned(),
            items: BTreeMap::from([("write".to_owned(), items)]),
            ..Default::default()
        }
    }

    /// Keeps the audit entry of `writer`'s write to `catalog`, refused for `reason`.
    pub async fn audit_refused_write(
        &self,
        writer: &str,
        catalog: &str,
        reason: String,
    ) -> Result<(), AuditError> {
        self.refused_write(writer, catalog, reason, 0, 0).await
    }

    /// Counts `writer`'s write of `records` records and `bytes` bytes to `catalog` as refused
    /// for `reason`, and keeps its audit entry.
    async fn refused_write(
        &self,
        writer: &str,
        catalog: &str,
        reason: String,
        records: u64,
        bytes: u64,
    ) -> Result<(), AuditError> {
        self.count_write(catalog, "refused", records, bytes);
        let mut entry = self.write_entry(writer, catalog, Vec::new());
        entry.outcome = Some(Outcome::Refused);
        entry.reason = clip(&reason, MAX_MESSAGE_CHARS).into_owned();
        self.audit.append(entry).await.map(drop)
    }

    /// A read through the read service, its stream as gRPC sends it.
    async fn read(&self, caller: &Caller, read: Read) -> Result<Response<GrpcBatchStream>, Status> {
        let stream = self.reads.read(caller, read).await?;
        Ok(Response::new(Box::pin(
            stream.map(|item| item.map_err(Status::from)),
        )))
    }
}

#[tonic::async_trait]
impl Exchange for ExchangeService {
    type QueryStream = GrpcBatchStream;
    type HistoryStream = GrpcBatchStream;
    type SubscribeStream = GrpcBatchStream;

    async fn list_catalogs(
        &self,
        request: Request<ListCatalogsRequest>,
    ) -> Result<Response<ListCatalogsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        if let Some(mut client) = self.relay(&caller, &req.target).await? {
            return client.list_catalogs(req).await;
        }
        let is_owner = caller.is_self;
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
            catalogs.push(CatalogSummary {
                item_count: visible as u32,
                record_count: records,
                ..c.into()
            });
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
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        if let Some(mut client) = self.relay(&caller, &req.target).await? {
            return client.get_catalog(req).await;
        }
        let entry = self.registry.entry(&req.code).map_err(registry_status)?;
        let view = if caller.is_self {
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
        let req = request.into_inner();
        if let Some(mark) = &req.mark {
            check_mark(&mark.source, &mark.offset)?;
        }
        let rows: Vec<Vec<String>> = req.rows.into_iter().map(|r| r.values).collect();
        let also = Write {
            rows: Vec::new(),
            deletes: req.deleted_keys,
            mark: req.mark,
        };
        let outcome = self
            .write_records("", req.catalog, req.columns, rows, also)
            .await
            .map_err(registry_status)?;
        Ok(Response::new(PutRecordsResponse {
            written: outcome.created + outcome.updated + outcome.unchanged,
            created: outcome.created,
            updated: outcome.updated,
            unchanged: outcome.unchanged,
            deleted: outcome.deleted,
        }))
    }

    async fn source_offset(
        &self,
        request: Request<SourceOffsetRequest>,
    ) -> Result<Response<SourceOffsetResponse>, Status> {
        let req = request.into_inner();
        check_mark(&req.source, "")?;
        self.registry.entry(&req.catalog).map_err(registry_status)?;
        let offset = self
            .registry
            .store()
            .source_offset(&req.catalog, &req.source)
            .map_err(store_status)?
            .unwrap_or_default();
        Ok(Response::new(SourceOffsetResponse { offset }))
    }

    async fn query(
        &self,
        request: Request<QueryRequest>,
    ) -> Result<Response<GrpcBatchStream>, Status> {
        let caller = Caller::of(&request)?;
        self.read(&caller, request.into_inner().into()).await
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<GrpcBatchStream>, Status> {
        let caller = Caller::of(&request)?;
        self.read(&caller, request.into_inner().into()).await
    }

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<GrpcBatchStream>, Status> {
        let caller = Caller::of(&request)?;
        self.read(&caller, request.into_inner().into()).await
    }
}
