//! The read path every streamed read takes (`Query`, `History`, and any read added later): who
//! asks — a principal whose credential this node checks and vouches for, a principal another node
//! vouches for, or the node itself; passing the read on towards its producer; or producing it
//! here under the policy decision. Each end keeps its audit entry.

use std::collections::BTreeMap;

use prost::Message;
use tierlink_proto::v1::exchange_client::ExchangeClient;
use tierlink_proto::v1::{
    BatchHeader, Credential, HistoryRequest, QueryRequest, Requester, SignedBatch, SignedRequester,
};
use tokio_stream::StreamExt;
use tonic::Status;
use tonic::transport::Channel;

use super::{
    BatchStream, ExchangeService, STREAM_BUFFER, registry_status, relay_failure, store_status,
};
use crate::exchange::produce::{self, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, Plan};
use tierlink_core::identity::{NodeCode, Principals};
use tierlink_core::policy::{Asker, Decision};
use tierlink_core::signed::requester;
use tierlink_store::audit::{AuditEntry, MAX_KEYS, Outcome, Side};
use tierlink_store::{StoreError, StoredRecord};

/// Who a read is for.
enum Reader {
    /// The node itself, reading its own records as stored.
    Owner,
    /// A principal, as its node vouches.
    Principal {
        /// Who asks.
        asker: Asker,
        /// Its node's signed requester, passed on to relays and the producer.
        signed: SignedRequester,
        /// True on the principal's own node, which keeps the consumer's audit entry.
        origin: bool,
    },
}

impl Reader {
    fn asker(&self) -> Option<&Asker> {
        match self {
            Reader::Owner => None,
            Reader::Principal { asker, .. } => Some(asker),
        }
    }
}

/// What every read asks: the catalog of which node, under which request id, relayed how.
struct Read<'a> {
    kind: &'static str,
    catalog: &'a str,
    target: &'a str,
    request_id: &'a str,
    /// The request's bounds, kept in the audit when its keys are too many.
    bounds: String,
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
    /// The node a read is for: `target`, or this node when empty.
    fn target(&self, target: &str) -> Result<NodeCode, Status> {
        if target.is_empty() {
            return Ok(self.me().clone());
        }
        target
            .parse()
            .map_err(|e: tierlink_core::identity::UnitError| {
                Status::invalid_argument(e.to_string())
            })
    }

    /// Where a read goes next when this node does not produce it: `via` once, then the target.
    fn next_hop(&self, producer: &NodeCode, via: &mut String) -> Result<Option<NodeCode>, Status> {
        if !via.is_empty() {
            let hop = self.target(&std::mem::take(via))?;
            if &hop != self.me() {
                return Ok(Some(hop));
            }
        }
        Ok((producer != self.me()).then(|| producer.clone()))
    }

    /// Who a read is for: a principal whose credential this node checks (and then vouches for
    /// with a signed requester), a principal another node vouches for, or this node itself.
    fn reader(
        &self,
        caller: &NodeCode,
        credential: Option<Credential>,
        signed: Option<SignedRequester>,
        producer: &NodeCode,
        read: &Read<'_>,
    ) -> Result<Reader, Status> {
        let now = chrono::Utc::now().timestamp_micros();
        if let Some(c) = credential {
            if caller != self.me() {
                return Err(Status::permission_denied(format!(
                    "{caller} sent a principal's credential to {}: a principal gives its credential only to its own node",
                    self.me()
                )));
            }
            let principals = Principals::load(&self.principals)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            principals
                .authenticate(&c.principal, &c.token, &c.role)
                .map_err(|e| Status::unauthenticated(e.to_string()))?;
            let requester = Requester {
                node: self.me().to_string(),
                principal: c.principal,
                role: c.role,
                purpose: c.purpose,
                grant: c.grant,
                producer: producer.to_string(),
                catalog: read.catalog.to_owned(),
                request_id: read.request_id.to_owned(),
                issued_at_micros: now,
            };
            let signed = requester::sign(self.signer.key(), &requester);
            let asker = Asker {
                node: self.me().clone(),
                grant: (!requester.grant.is_empty()).then_some(requester.grant),
                principal: requester.principal,
                role: requester.role,
                purpose: requester.purpose,
            };
            return Ok(Reader::Principal {
                asker,
                signed,
                origin: true,
            });
        }
        if let Some(signed) = signed {
            let members = self.peers.members();
            let asker = requester::verify(
                &signed,
                members.as_ref(),
                producer,
                read.catalog,
                read.request_id,
                now,
            )
            .and_then(|asker| {
                self.seen
                    .first_use(&asker.node, read.request_id, now)
                    .map(|()| asker)
            })
            .map_err(|reason| {
                Status::permission_denied(format!("the request's requester is refused: {reason}"))
            })?;
            return Ok(Reader::Principal {
                asker,
                signed,
                origin: false,
            });
        }
        if caller == self.me() {
            return Ok(Reader::Owner);
        }
        Err(Status::permission_denied(format!(
            "{caller} asks without naming a principal: a read from another node names the principal, role and purpose its node vouches for (the CLI's --as)"
        )))
    }

    /// An audit entry for `read`, as far as it is known before the answer.
    fn audit_entry(
        &self,
        side: Side,
        caller: &NodeCode,
        producer: &NodeCode,
        read: &Read<'_>,
        asker: Option<&Asker>,
    ) -> AuditEntry {
        let consumer = asker.map_or(caller, |a| &a.node);
        AuditEntry {
            at_micros: chrono::Utc::now().timestamp_micros(),
            side: Some(side),
            kind: read.kind.to_owned(),
            request_id: read.request_id.to_owned(),
            producer: producer.to_string(),
            consumer: consumer.to_string(),
            relay: if caller != consumer && caller != self.me() {
                caller.to_string()
            } else {
                String::new()
            },
            principal: asker.map(Asker::principal_id).unwrap_or_default(),
            role: asker.map(|a| a.role.clone()).unwrap_or_default(),
            purpose: asker.map(|a| a.purpose.clone()).unwrap_or_default(),
            catalog: read.catalog.to_owned(),
            outcome: Some(Outcome::Served),
            ..Default::default()
        }
    }

    /// Records a refusal in the audit and returns it.
    async fn refused(&self, mut entry: AuditEntry, status: Status) -> Status {
        entry.outcome = Some(Outcome::Refused);
        entry.reason = status.message().to_owned();
        if let Err(e) = self.audit.append(entry).await {
            tracing::error!(error = %e, "cannot write the audit");
            return Status::unavailable(format!(
                "the audit cannot be written ({e}): nothing is served until it can"
            ));
        }
        status
    }

    /// Runs a read: checks who asks, passes it on towards its producer, or produces it here.
    pub(super) async fn read(
        &self,
        caller: NodeCode,
        mut request: ReadRequest,
    ) -> Result<BatchStream, Status> {
        let fields = request.fields();
        if fields.request_id.is_empty() {
            *fields.request_id = request_id(String::new())?;
        }
        let credential = fields.credential.take();
        let signed = fields.requester.take();
        let mut via = std::mem::take(fields.via);
        let (catalog, target, request_id) = (
            fields.catalog.clone(),
            fields.target.clone(),
            fields.request_id.clone(),
        );
        let read = Read {
            kind: request.kind(),
            catalog: &catalog,
            target: &target,
            request_id: &request_id,
            bounds: request.bounds(),
        };
        let producer = self.target(read.target)?;
        let principal = credential
            .as_ref()
            .map(|c| format!("{}@{}", c.principal, self.me()));
        let reader = match self.reader(&caller, credential, signed, &producer, &read) {
            Ok(reader) => reader,
            Err(status) => {
                if let Some(principal) = principal {
                    let mut entry =
                        self.audit_entry(Side::Consumer, &caller, &producer, &read, None);
                    entry.principal = principal;
                    return Err(self.refused(entry, status).await);
                }
                return Err(status);
            }
        };
        let Some(hop) = self.next_hop(&producer, &mut via)? else {
            return self.produce(&caller, &reader, &read, request).await;
        };
        let Reader::Principal {
            asker,
            signed,
            origin,
        } = &reader
        else {
            // The node's own reads of another node: what is not its own needs a principal.
            return Err(Status::permission_denied(format!(
                "node {} reads records of {producer} only for a principal: name one (the CLI's --as)",
                self.me()
            )));
        };
        let fields = request.fields();
        *fields.via = via;
        *fields.requester = Some(signed.clone());
        tracing::info!(%caller, %hop, %producer, "relaying");
        let forwarded = match self.peers.client(&hop).await {
            Ok(client) => request.forward(client).await,
            Err(e) => Err(relay_failure(self.me(), &hop, e)),
        };
        if !origin {
            return forwarded.map(|s| Box::pin(s) as BatchStream);
        }
        let entry = self.audit_entry(Side::Consumer, &caller, &producer, &read, Some(asker));
        match forwarded {
            Ok(stream) => Ok(self.audited(stream, entry)),
            Err(status) => Err(self.refused(entry, status).await),
        }
    }

    /// Produces a read on this node: decides under the policy, plans, and streams.
    async fn produce(
        &self,
        caller: &NodeCode,
        reader: &Reader,
        read: &Read<'_>,
        request: ReadRequest,
    ) -> Result<BatchStream, Status> {
        let entry = self.audit_entry(Side::Producer, caller, self.me(), read, reader.asker());
        let planned = self.plan(reader, read, request, entry.clone());
        match planned {
            Ok(stream) => Ok(stream),
            Err(status) => Err(self.refused(entry, status).await),
        }
    }

    fn plan(
        &self,
        reader: &Reader,
        read: &Read<'_>,
        request: ReadRequest,
        mut entry: AuditEntry,
    ) -> Result<BatchStream, Status> {
        let registry_entry = self.registry.entry(read.catalog).map_err(registry_status)?;
        let catalog = &registry_entry.catalog;
        let decision = match reader.asker() {
            None => Decision::owner(catalog),
            Some(asker) => {
                let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
                self.peers
                    .members()
                    .decide(self.me(), catalog, asker, &today)
                    .map_err(|refusal| Status::permission_denied(refusal.to_string()))?
            }
        };
        entry.grant.clone_from(&decision.grant);
        entry.items = items_by_action(
            decision
                .items
                .iter()
                .map(|d| (d.action.to_string(), d.item.clone())),
        );
        entry.bounds.clone_from(&read.bounds);
        let plan = Plan::new(catalog, &decision, self.redactor.clone())?;
        let template = plan.header(
            &entry.consumer,
            read.catalog,
            read.kind,
            read.request_id,
            reader.asker(),
        );
        match request {
            ReadRequest::Query(q) => {
                let size = batch_size(q.batch_size)?;
                let plan = plan.with_query(catalog, &q)?;
                let to = (!q.key_to.is_empty()).then_some(q.key_to.as_str());
                let records = self.registry.store().scan(&q.catalog, &q.key_from, to);
                let limit = (q.limit > 0).then_some(q.limit);
                Ok(self.stream_batches(template, records, plan, size, limit, entry))
            }
            ReadRequest::History(h) => {
                plan.check_key_lookup()?;
                let versions = self
                    .registry
                    .store()
                    .history(&h.catalog, &h.key)
                    .map_err(store_status)?;
                if versions.is_empty() {
                    return Err(Status::not_found(format!(
                        "catalog {} has no record with key {:?}",
                        h.catalog, h.key
                    )));
                }
                Ok(self.stream_batches(
                    template,
                    versions.into_iter().map(Ok),
                    plan,
                    DEFAULT_BATCH_SIZE,
                    None,
                    entry,
                ))
            }
        }
    }

    /// Streams `records` as signed batches under `plan`, from a blocking task, and audits what
    /// was sent when the stream ends.
    fn stream_batches(
        &self,
        template: BatchHeader,
        records: impl Iterator<Item = Result<StoredRecord, StoreError>> + Send + 'static,
        plan: Plan,
        batch_size: usize,
        limit: Option<u64>,
        mut entry: AuditEntry,
    ) -> BatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let signer = self.signer.clone();
        let audit = self.audit.clone();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let keep_key = |r: &StoredRecord| {
                if keys.len() <= MAX_KEYS
                    && let Ok(record) = r.decode()
                {
                    keys.push(record.key);
                }
            };
            let lists = produce::record_lists(records, plan, batch_size, limit, keep_key);
            let (mut batches, mut sent) = (0u32, 0u64);
            for sealed in produce::seal_all(&signer, template, lists) {
                let batch = sealed.map_err(store_status).map(|s| {
                    batches += 1;
                    sent += s.record_count;
                    s.batch
                });
                if let Err(status) = &batch {
                    entry.outcome = Some(Outcome::Refused);
                    entry.reason = status.message().to_owned();
                }
                if tx.blocking_send(batch).is_err() {
                    entry.reason = "the consumer went away before the stream ended".into();
                    break;
                }
            }
            entry.records = sent;
            if keys.len() <= MAX_KEYS {
                entry.keys = keys;
                entry.bounds.clear();
            }
            tracing::info!(consumer = %entry.consumer, principal = %entry.principal, catalog = %entry.catalog, kind = %entry.kind, batches, records = sent, "served");
            if let Err(e) = audit.append_blocking(entry) {
                tracing::error!(error = %e, "cannot write the audit");
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// Passes a relayed stream through to this node's principal, keeping the consumer's audit
    /// entry: what arrived, under which grant and manifest.
    fn audited(
        &self,
        mut upstream: tonic::Streaming<SignedBatch>,
        mut entry: AuditEntry,
    ) -> BatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let audit = self.audit.clone();
        tokio::spawn(async move {
            let mut keys = Vec::new();
            while let Some(item) = upstream.next().await {
                match &item {
                    Ok(batch) => {
                        if let Ok(h) = BatchHeader::decode(batch.header.as_slice()) {
                            if h.sequence == 0 {
                                entry.grant = h.grant.clone();
                                entry.items = items_by_action(
                                    h.manifest.into_iter().map(|m| (m.action, m.item)),
                                );
                            }
                            entry.records += h.record_count;
                        }
                        if entry.records as usize <= MAX_KEYS
                            && let Ok(list) =
                                tierlink_proto::v1::RecordList::decode(batch.records.as_slice())
                        {
                            keys.extend(list.records.into_iter().map(|r| r.key));
                        }
                    }
                    Err(status) => {
                        entry.outcome = Some(Outcome::Refused);
                        entry.reason = status.message().to_owned();
                    }
                }
                if tx.send(item).await.is_err() {
                    entry.reason =
                        "the principal's client went away before the stream ended".into();
                    break;
                }
            }
            if entry.records as usize <= MAX_KEYS {
                entry.keys = keys;
            } else {
                entry.bounds = format!("{} records; keys kept by the producer", entry.records);
            }
            if let Err(e) = audit.append(entry).await {
                tracing::error!(error = %e, "cannot write the audit");
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

/// Item codes grouped by the action applied to them.
fn items_by_action(pairs: impl Iterator<Item = (String, String)>) -> BTreeMap<String, Vec<String>> {
    let mut by_action: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (action, item) in pairs {
        by_action.entry(action).or_default().push(item);
    }
    by_action
}

/// A streamed read, `Query` or `History`, handled by one path.
pub(super) enum ReadRequest {
    Query(QueryRequest),
    History(HistoryRequest),
}

/// The fields every read has.
struct ReadFields<'a> {
    catalog: &'a mut String,
    target: &'a mut String,
    via: &'a mut String,
    request_id: &'a mut String,
    credential: &'a mut Option<Credential>,
    requester: &'a mut Option<SignedRequester>,
}

impl ReadRequest {
    fn kind(&self) -> &'static str {
        match self {
            ReadRequest::Query(_) => "query",
            ReadRequest::History(_) => "history",
        }
    }

    fn fields(&mut self) -> ReadFields<'_> {
        match self {
            ReadRequest::Query(q) => ReadFields {
                catalog: &mut q.catalog,
                target: &mut q.target,
                via: &mut q.via,
                request_id: &mut q.request_id,
                credential: &mut q.credential,
                requester: &mut q.requester,
            },
            ReadRequest::History(h) => ReadFields {
                catalog: &mut h.catalog,
                target: &mut h.target,
                via: &mut h.via,
                request_id: &mut h.request_id,
                credential: &mut h.credential,
                requester: &mut h.requester,
            },
        }
    }

    /// What the read asked for, as the audit keeps it when the keys sent are too many.
    fn bounds(&self) -> String {
        match self {
            ReadRequest::Query(q) => {
                let mut parts = Vec::new();
                if !q.key_from.is_empty() || !q.key_to.is_empty() {
                    parts.push(format!("keys from {:?} to {:?}", q.key_from, q.key_to));
                }
                parts.extend(q.r#where.iter().map(|w| format!("{}={}", w.item, w.value)));
                if q.updated_since_micros > 0 {
                    parts.push(format!("written since {} µs", q.updated_since_micros));
                }
                if q.limit > 0 {
                    parts.push(format!("at most {}", q.limit));
                }
                if parts.is_empty() {
                    "every record".to_owned()
                } else {
                    parts.join(", ")
                }
            }
            ReadRequest::History(h) => format!("key {:?}", h.key),
        }
    }

    async fn forward(
        self,
        mut client: ExchangeClient<Channel>,
    ) -> Result<tonic::Streaming<SignedBatch>, tonic::Status> {
        Ok(match self {
            ReadRequest::Query(q) => client.query(q).await?.into_inner(),
            ReadRequest::History(h) => client.history(h).await?.into_inner(),
        })
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
