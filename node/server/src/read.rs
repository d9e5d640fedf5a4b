//! The read service: the one path every record leaves a node by, whatever carries the read (gRPC,
//! the gateway) and whatever it asks (a query, a history, a change feed). A [`Read`] comes in with
//! its admitted [`Caller`]; a stream of signed batches goes out.
//!
//! Who asks — a principal whose credential this node checks and vouches for with a signed
//! requester, a principal another node vouches for, or the node itself — then either passing
//! the read on towards its producer, or producing it here: the decision under the directory's
//! grants, the plan ([`crate::exchange::produce`]) carried out on the stored bytes, batches
//! sealed to the node that asked and signed, and the audit entry kept. Each end of a relayed read
//! keeps its own entry. Relays pass sealed batches on unopened.
//!
//! Every read holds a slot of its caller's ([`crate::limits::ReadLimits`]) until its stream is
//! dropped, and its batches are made only as the consumer asks for them ([`on_demand`]): by one
//! of the node's few batch threads ([`workers`]), shared by every read, or by the next node of a
//! relay. A feed ([`feed`]) is produced from the catalog's change log, waiting for writes, its
//! decision taken again as it goes.
//!
//! Errors are [`ReadError`]s, a kind and a message; each transport maps the kind to its own
//! codes.

pub mod crosscheck;
mod error;
mod feed;
mod on_demand;
mod workers;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tierlink_client::{ClientError, Peers};
use tierlink_core::catalog::is_resource_code;
use tierlink_core::config::LimitSettings;
use tierlink_core::identity::tokens::Scope as TokenScope;
use tierlink_core::identity::{NodeCode, PrincipalError, PrincipalFiles, RecipientKey};
use tierlink_core::limits::{
    DEFAULT_BATCH_BYTES, MAX_NAME_CHARS, MAX_PURPOSE_CHARS, MAX_ROLE_CHARS, clip, thousands,
};
use tierlink_core::members::Standing;
use tierlink_core::policy::{Asker, Decision, Redactor, Refusal};
use tierlink_core::read::Read;
use tierlink_core::signed::requester::{self, SeenRequests};
use tierlink_core::signed::{BatchSigner, Recipient};
use tierlink_proto::v1::{BatchHeader, Credential, Requester, SignedBatch, SignedRequester};
use tierlink_store::audit::{AuditEntry, AuditLog, MAX_KEYS, Outcome, Side};
use tierlink_store::registry::Registry;
use tierlink_store::{StoreError, StoredRecord};
use tokio_stream::{Stream, StreamExt};
use tracing::Instrument;

pub use error::{ReadError, ReadErrorKind};

use crate::admission::Caller;
use crate::exchange::produce::{
    self, Cut, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, Plan, Sealed, Template,
};
use crate::limits::{ReadLimits, ReadSlot};
use crate::metrics::{Metrics, Moved, OTHER_CATALOG, ReadLabels};
use on_demand::{Answer, Ending, Source, on_demand};
use workers::Workers;

/// A response stream of signed batches, produced here or relayed.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<SignedBatch, ReadError>> + Send>>;

/// The keys a node produces with: it signs every batch, and seals the batches of its own reads
/// (itself or its principals) to its own encryption key.
pub struct NodeKeys {
    /// Its batch-signing key.
    pub signer: Arc<BatchSigner>,
    /// Its current encryption key, as it registers it in the directory.
    pub encryption: RecipientKey,
}

/// The read service of one node.
pub struct ReadService {
    registry: Arc<Registry>,
    signer: Arc<BatchSigner>,
    /// Who this node's own reads are sealed to: itself.
    own: Recipient,
    peers: Arc<Peers>,
    audit: Arc<AuditLog>,
    redactor: Redactor,
    principals: PrincipalFiles,
    seen: SeenRequests,
    /// Most bytes of records in one batch produced here.
    batch_bytes: usize,
    limits: Arc<ReadLimits>,
    workers: Arc<Workers>,
    /// Set when the node stops: reads still waiting (feeds, relays) end at once.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The node's counters: every read's end, every policy decision.
    metrics: Metrics,
}

/// Who a read is for.
// One per read, on its way through: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
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
        /// The decision, when it came with the requester's check (one look at the directory).
        decision: Option<Result<Decision, Refusal>>,
        /// The vouching node as the directory holds it, from the same look: its registered
        /// encryption key is what the records are sealed to. None on the principal's own node.
        voucher: Option<Standing>,
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

/// What every read names, as this node settled it: which catalog of which producer, under which
/// request id.
struct Scope {
    kind: &'static str,
    catalog: String,
    producer: NodeCode,
    request_id: String,
    /// The request's bounds, kept in the audit when its keys are too many.
    bounds: String,
    /// The day grants are checked for, `YYYY-MM-DD` (UTC).
    today: String,
}

/// Most characters of a request id a caller gives: ids are written into every batch header and
/// audit entry of the read.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Checks a principal's credential now: a personal token, or an API token of scope read or
/// more, and the role it names held.
#[allow(clippy::disallowed_methods)] // The one place that authenticates principals.
fn authenticate(
    principals: &PrincipalFiles,
    c: &Credential,
    act: TokenScope,
) -> Result<(), ReadError> {
    check_credential(c)?;
    principals
        .authenticate(&c.principal, &c.token, &c.role, act, chrono::Utc::now())
        .map(drop)
        .map_err(|e| match e {
            PrincipalError::File { .. } => ReadError::failed_precondition(e.to_string()),
            // The credential is good; the role it names is not the principal's.
            PrincipalError::RoleNotHeld { .. } => ReadError::permission_denied(e.to_string()),
            e => ReadError::unauthenticated(e.to_string()),
        })
}

/// A feed of this node's principal, ended when its credential stops holding (its token revoked
/// or expired, the principal removed, the role taken away): checked before each batch is passed
/// on and at least every [`feed::RECHECK`] while the feed waits, as the producer checks its grant.
fn while_credential_holds(
    stream: BatchStream,
    principals: PrincipalFiles,
    credential: Credential,
) -> BatchStream {
    let check = Arc::new(move || {
        authenticate(&principals, &credential, TokenScope::Read).map_err(|e| ReadError {
            kind: e.kind,
            message: format!(
                "the feed ends: its principal's credential no longer holds: {}",
                e.message
            ),
        })
    });
    Box::pin(futures_util::stream::unfold(Some(stream), move |state| {
        let check = check.clone();
        async move {
            let mut stream = state?;
            loop {
                tokio::select! {
                    item = stream.next() => {
                        let item = item?;
                        return Some(match check() {
                            Ok(()) => (item, Some(stream)),
                            Err(e) => (Err(e), None),
                        });
                    }
                    () = tokio::time::sleep(feed::RECHECK) => {
                        if let Err(e) = check() {
                            return Some((Err(e), None));
                        }
                    }
                }
            }
        }
    }))
}

/// The caller's request id (at most [`MAX_REQUEST_ID_CHARS`] visible ASCII characters), or a
/// fresh random one when it gave none.
fn request_id(given: &str) -> Result<String, ReadError> {
    if !given.is_empty() {
        if given.len() > MAX_REQUEST_ID_CHARS || !given.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ReadError::invalid_argument(format!(
                "a request id is 1 to {MAX_REQUEST_ID_CHARS} visible ASCII characters (a UUID, say), and {:?} is not: give another or none, and the node makes one",
                clip(given, 64)
            )));
        }
        return Ok(given.to_owned());
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        ReadError::unavailable(format!(
            "no randomness for a request id ({e}); give request_id"
        ))
    })?;
    Ok(hex::encode(bytes))
}

/// Checks that what a principal's credential names is no longer than such things are, before
/// anything repeats it (a refusal, a signed requester, the audit): every read does, and so does
/// an explanation of one.
pub fn check_credential(c: &Credential) -> Result<(), ReadError> {
    check_lengths(&c.principal, &c.role, &c.purpose, &c.grant)
}

/// Reads a signed requester's claim (`refused` words why it is unreadable) and checks the
/// lengths of who it says asks: the claim, to verify, and its asker, not yet trusted.
fn read_claim(
    signed: &SignedRequester,
    refused: impl Fn(String) -> ReadError,
) -> Result<(requester::Claim, Asker), ReadError> {
    let claim = requester::claim(signed).map_err(refused)?;
    let claimed = claim.asker();
    check_lengths(
        &claimed.principal,
        &claimed.role,
        &claimed.purpose,
        claimed.grant.as_deref().unwrap_or_default(),
    )?;
    Ok((claim, claimed))
}

/// Checks the lengths of who asks, in what role, for what purpose, under which grant: for a
/// credential, and for the claim of a requester another node signed.
fn check_lengths(principal: &str, role: &str, purpose: &str, grant: &str) -> Result<(), ReadError> {
    let fields = [
        (
            "principal",
            principal,
            MAX_NAME_CHARS,
            "the principal's name on its node",
        ),
        (
            "role",
            role,
            MAX_ROLE_CHARS,
            "a role the principal holds, UNIT/NAME",
        ),
        (
            "purpose",
            purpose,
            MAX_PURPOSE_CHARS,
            "the use in a few words, as the grant states it",
        ),
        ("grant", grant, MAX_NAME_CHARS, "a grant's id, or none"),
    ];
    for (field, value, max, remedy) in fields {
        let n = value.chars().count();
        if n > max {
            return Err(ReadError::invalid_argument(format!(
                "the {field} is at most {max} characters, and this one has {}: give {remedy}",
                thousands(n as u64)
            )));
        }
    }
    Ok(())
}

impl ReadService {
    /// A read service over a node's registry, signing with its key and sealing its own reads to
    /// its encryption key, relaying through its peers, redacting with `redactor`, auditing into
    /// `audit` and vouching for the principals in the files `principals` (with their API tokens),
    /// within the node's
    /// `[limits]`: reads open per caller and in all, the threads that make batches, and the stall
    /// limit.
    pub fn new(
        registry: Arc<Registry>,
        keys: NodeKeys,
        peers: Arc<Peers>,
        audit: Arc<AuditLog>,
        redactor: Redactor,
        principals: PrincipalFiles,
        settings: &LimitSettings,
    ) -> Self {
        let NodeKeys { signer, encryption } = keys;
        let limits = ReadLimits::new(signer.code().clone(), settings);
        let workers = Workers::start(settings.read_workers as usize);
        Self {
            registry,
            own: Recipient {
                node: signer.code().clone(),
                key: encryption,
            },
            signer,
            peers,
            audit,
            redactor,
            principals,
            seen: SeenRequests::default(),
            batch_bytes: DEFAULT_BATCH_BYTES,
            limits,
            workers,
            stopping: tokio::sync::watch::Sender::new(false),
            metrics: Metrics::default(),
        }
    }

    /// The node's counters, which this service counts reads and decisions into and the rest
    /// of the node shares.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Reads and feeds open on the node now.
    pub fn open_reads(&self) -> u32 {
        self.limits.open_reads()
    }

    /// A read's labels: `catalog` as named when this node holds it, or when the read was served
    /// (its producer holds it) and the name is a resource code; [`OTHER_CATALOG`] otherwise, so
    /// that reads of made-up codes, refused or failed, add no label and no caller's text.
    fn labels(&self, catalog: &str, side: &'static str, outcome: &'static str) -> ReadLabels {
        let known = self.registry.entry(catalog).is_ok()
            || (outcome == "served" && is_resource_code(catalog));
        ReadLabels {
            catalog: if known { catalog } else { OTHER_CATALOG }.to_owned(),
            side,
            outcome,
        }
    }

    /// Cuts the batches it produces after `bytes` of records (node.toml's `[exchange]
    /// batch_bytes`) instead of [`DEFAULT_BATCH_BYTES`].
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Checks that `credential` names one of this node's principals, acting in a role it holds,
    /// with its token or an API token whose scope allows `act`: for what a principal does here
    /// other than reading (moving a case), so principals are authenticated in one place.
    pub fn authenticate(&self, credential: &Credential, act: TokenScope) -> Result<(), ReadError> {
        authenticate(&self.principals, credential, act)
    }

    /// The node this service reads for.
    pub fn me(&self) -> &NodeCode {
        self.signer.code()
    }

    /// The node's peers, through which it relays.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The node a request names (`target`), or this node when it names none.
    pub fn target(&self, target: &str) -> Result<NodeCode, ReadError> {
        if target.is_empty() {
            return Ok(self.me().clone());
        }
        target
            .parse()
            .map_err(|e: tierlink_core::identity::UnitError| {
                ReadError::invalid_argument(e.to_string())
            })
    }

    /// Where a read goes next when this node does not produce it: `via` once, then the target.
    fn next_hop(
        &self,
        producer: &NodeCode,
        via: &mut String,
    ) -> Result<Option<NodeCode>, ReadError> {
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
        caller: &Caller,
        credential: Option<Credential>,
        signed: Option<SignedRequester>,
        scope: &Scope,
        produced_here: bool,
    ) -> Result<Reader, ReadError> {
        let clock = chrono::Utc::now();
        let now = clock.timestamp_micros();
        if let Some(c) = credential {
            if !caller.is_self {
                return Err(ReadError::permission_denied(format!(
                    "{} sent a principal's credential to {}: a principal gives its credential only to its own node",
                    caller.node,
                    self.me()
                )));
            }
            authenticate(&self.principals, &c, TokenScope::Read)?;
            let requester = Requester {
                node: self.me().to_string(),
                principal: c.principal,
                role: c.role,
                purpose: c.purpose,
                grant: c.grant,
                producer: scope.producer.to_string(),
                catalog: scope.catalog.clone(),
                request_id: scope.request_id.clone(),
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
                decision: None,
                voucher: None,
            });
        }
        if let Some(signed) = signed {
            let refused = |reason: String| {
                ReadError::permission_denied(format!(
                    "the request's requester is refused: {reason}"
                ))
            };
            // A read produced here is decided in the same look at the directory that finds the
            // vouching node's key; the decision is used only once the requester has passed.
            let (claim, claimed) = read_claim(&signed, refused)?;
            let entry = produced_here
                .then(|| self.registry.entry(&scope.catalog).ok())
                .flatten();
            let terms = self.peers.members().terms(
                claim.node(),
                entry
                    .as_ref()
                    .map(|e| (&scope.producer, &e.catalog, &claimed, scope.today.as_str())),
            );
            let asker = claim
                .verify(
                    &signed,
                    terms.voucher.as_ref(),
                    &scope.producer,
                    &scope.catalog,
                    &scope.request_id,
                    now,
                )
                .and_then(|asker| {
                    self.seen
                        .first_use(&asker.node, &scope.request_id, now)
                        .map(|()| asker)
                })
                .map_err(refused)?;
            return Ok(Reader::Principal {
                asker,
                signed,
                origin: false,
                decision: terms.decision,
                voucher: terms.voucher,
            });
        }
        if caller.is_self {
            return Ok(Reader::Owner);
        }
        Err(ReadError::permission_denied(format!(
            "{} asks without naming a principal: a read from another node names the principal, role and purpose its node vouches for (the CLI's --as)",
            caller.node
        )))
    }

    /// An audit entry for a read, as far as it is known before the answer.
    fn audit_entry(
        &self,
        side: Side,
        caller: &NodeCode,
        scope: &Scope,
        asker: Option<&Asker>,
    ) -> AuditEntry {
        let consumer = asker.map_or(caller, |a| &a.node);
        AuditEntry {
            at_micros: chrono::Utc::now().timestamp_micros(),
            side: Some(side),
            kind: scope.kind.to_owned(),
            request_id: scope.request_id.clone(),
            producer: scope.producer.to_string(),
            consumer: consumer.to_string(),
            relay: if caller != consumer && caller != self.me() {
                caller.to_string()
            } else {
                String::new()
            },
            principal: asker.map(Asker::principal_id).unwrap_or_default(),
            role: asker.map(|a| a.role.clone()).unwrap_or_default(),
            purpose: asker.map(|a| a.purpose.clone()).unwrap_or_default(),
            catalog: scope.catalog.clone(),
            outcome: Some(Outcome::Served),
            ..Default::default()
        }
    }

    /// Records a refusal in the audit and the metrics, and returns it.
    async fn refused(&self, mut entry: AuditEntry, error: ReadError) -> ReadError {
        let side = match entry.side {
            Some(Side::Producer) => "producer",
            _ => "consumer",
        };
        let labels = self.labels(&entry.catalog, side, "refused");
        self.metrics.read(labels, Moved::default());
        entry.outcome = Some(Outcome::Refused);
        entry.reason.clone_from(&error.message);
        if let Err(e) = self.audit.append(entry).await {
            tracing::error!(error = %e, "cannot write the audit");
            return ReadError::unavailable(format!(
                "the audit cannot be written ({e}): nothing is served until it can"
            ));
        }
        error
    }

    /// Runs a read for `caller`: checks who asks, passes the read on towards its producer, or
    /// produces it here. The stream ends after the last batch, or with the error that stopped it.
    /// A read for a member (the node that vouches for its principal, or the calling node reading
    /// as itself) with as many reads open as the node allows is refused (RESOURCE_EXHAUSTED)
    /// before anything is read or relayed. A feed of this node's principal ends when the
    /// principal's credential stops holding.
    ///
    /// The read runs in a span `read` carrying the node, the request id (the one its batch
    /// headers and audit entries carry), its kind and catalog, the producer and the consumer, so
    /// that every node's log lines of one read are found by its request id.
    pub async fn read(&self, caller: &Caller, mut read: Read) -> Result<BatchStream, ReadError> {
        // A feed lasts: its principal's credential is checked again as it goes.
        let lasting = match &read {
            Read::Subscribe(s) => s.scope.as_ref().and_then(|s| s.credential.clone()),
            _ => None,
        };
        let fields = read.scope_mut();
        fields.request_id = request_id(&fields.request_id)?;
        let span = tracing::info_span!(
            "read",
            node = %self.me(),
            request_id = %read.scope().request_id,
            kind = read.kind(),
            catalog = %clip(&read.scope().catalog, 64),
            producer = tracing::field::Empty,
            consumer = tracing::field::Empty,
        );
        let stream = self
            .open(caller, read, span.clone())
            .instrument(span)
            .await?;
        Ok(match lasting {
            Some(credential) => while_credential_holds(stream, self.principals.clone(), credential),
            None => stream,
        })
    }

    /// [`ReadService::read`] but for the credential's later checks.
    async fn open(
        &self,
        caller: &Caller,
        mut read: Read,
        span: tracing::Span,
    ) -> Result<BatchStream, ReadError> {
        let fields = read.scope_mut();
        if !is_resource_code(&fields.catalog) {
            return Err(ReadError::invalid_argument(format!(
                "{:?} is not a catalog's resource code: name the catalog by its code, such as 101001001/000001",
                clip(&fields.catalog, 64)
            )));
        }
        let credential = fields.credential.take();
        let signed = fields.requester.take();
        let mut via = std::mem::take(&mut fields.via);
        let producer = self.target(&fields.target)?;
        let scope = Scope {
            kind: read.kind(),
            catalog: read.scope().catalog.clone(),
            producer,
            request_id: read.scope().request_id.clone(),
            bounds: read.bounds(),
            today: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        };
        span.record("producer", tracing::field::display(&scope.producer));
        let hop = self.next_hop(&scope.producer, &mut via)?;
        // Who the credential claims to be, in what role and for what purpose: a refused
        // credential is audited with all three.
        let claimed = credential.as_ref().map(|c| Asker {
            node: caller.node.clone(),
            grant: None,
            principal: clip(&c.principal, MAX_NAME_CHARS).into_owned(),
            role: clip(&c.role, MAX_ROLE_CHARS).into_owned(),
            purpose: clip(&c.purpose, MAX_PURPOSE_CHARS).into_owned(),
        });
        let checked = credential.as_ref().map_or(Ok(()), check_credential);
        let reader = match checked
            .and_then(|()| self.reader(caller, credential, signed, &scope, hop.is_none()))
        {
            Ok(reader) => reader,
            Err(error) => {
                if let Some(claimed) = claimed {
                    let entry =
                        self.audit_entry(Side::Consumer, &caller.node, &scope, Some(&claimed));
                    return Err(self.refused(entry, error).await);
                }
                return Err(error);
            }
        };
        // A read holds a slot of the member it is for: the node that vouches for its principal,
        // however many relays it came through, so no member holds more by relaying.
        let member = match &reader {
            Reader::Principal { asker, .. } => &asker.node,
            Reader::Owner => &caller.node,
        };
        span.record("consumer", tracing::field::display(member));
        let slot = self.limits.open(member).map_err(|e| {
            tracing::warn!(caller = %caller.node, %member, error = %e, "read refused");
            ReadError::from(e)
        })?;
        let Some(hop) = hop else {
            return self
                .produce(&caller.node, &reader, &scope, read, slot, span)
                .await;
        };
        let Reader::Principal {
            asker,
            signed,
            origin,
            ..
        } = &reader
        else {
            // The node's own reads of another node: what is not its own needs a principal.
            return Err(ReadError::permission_denied(format!(
                "node {} reads records of {} only for a principal: name one (the CLI's --as)",
                self.me(),
                scope.producer
            )));
        };
        let fields = read.scope_mut();
        fields.via = via;
        fields.requester = Some(signed.clone());
        tracing::info!(caller = %caller.node, %hop, producer = %scope.producer, "relaying");
        let feed = matches!(read, Read::Subscribe(_));
        let forwarded = match self.peers.client(&hop).await {
            Ok(client) => tierlink_client::send(client, read)
                .await
                .map_err(|e| relay_failure(self.me(), &hop, e)),
            Err(e) => Err(relay_failure(self.me(), &hop, e)),
        };
        let relay = |upstream, audit| Relay {
            upstream,
            from: hop.clone(),
            me: self.me().clone(),
            stall: self.limits.stall(),
            // A feed waits for writes as long as it lasts: its producer, not a relay, ends it.
            waits: feed,
            audit,
            metrics: self.metrics.clone(),
            catalog: scope.catalog.clone(),
            moved: Moved::default(),
        };
        if !origin {
            return match forwarded {
                Ok(upstream) => Ok(self.serve(relay(upstream, None), slot, span)),
                Err(error) => {
                    let labels = self.labels(&scope.catalog, "relay", "refused");
                    self.metrics.read(labels, Moved::default());
                    Err(error)
                }
            };
        }
        let entry = self.audit_entry(Side::Consumer, &caller.node, &scope, Some(asker));
        match forwarded {
            Ok(upstream) => {
                let audit = RelayAudit {
                    log: self.audit.clone(),
                    entry,
                };
                Ok(self.serve(relay(upstream, Some(audit)), slot, span))
            }
            Err(error) => Err(self.refused(entry, error).await),
        }
    }

    /// Produces a read on this node: decides under the policy, plans, and streams.
    async fn produce(
        &self,
        caller: &NodeCode,
        reader: &Reader,
        scope: &Scope,
        read: Read,
        slot: ReadSlot,
        span: tracing::Span,
    ) -> Result<BatchStream, ReadError> {
        let entry = self.audit_entry(Side::Producer, caller, scope, reader.asker());
        match self.plan(reader, scope, read, entry.clone(), slot, span) {
            Ok(stream) => Ok(stream),
            Err(error) => Err(self.refused(entry, error).await),
        }
    }

    fn plan(
        &self,
        reader: &Reader,
        scope: &Scope,
        read: Read,
        mut entry: AuditEntry,
        slot: ReadSlot,
        span: tracing::Span,
    ) -> Result<BatchStream, ReadError> {
        let registry_entry = self.registry.entry(&scope.catalog)?;
        let catalog = &registry_entry.catalog;
        let decided = match reader {
            Reader::Owner => Ok(Decision::owner(catalog)),
            Reader::Principal {
                decision: Some(decided),
                ..
            } => decided.clone(),
            Reader::Principal { asker, .. } => {
                self.peers
                    .members()
                    .decide(self.me(), catalog, asker, &scope.today)
            }
        };
        self.metrics.decided(&decided);
        let decision =
            decided.map_err(|refusal| ReadError::permission_denied(refusal.to_string()))?;
        let recipient = self.recipient(reader)?;
        entry.grant.clone_from(&decision.grant);
        entry.items = items_by_action(
            decision
                .items
                .iter()
                .map(|d| (d.action.to_string(), d.item.clone())),
        );
        entry.bounds.clone_from(&scope.bounds);
        let plan = Plan::new(catalog, &decision, self.redactor.clone())?;
        let mut template = Template {
            header: plan.header(
                &entry.consumer,
                &scope.catalog,
                scope.kind,
                &scope.request_id,
                reader.asker(),
            ),
            to: recipient,
        };
        match read {
            Read::Query(q) => {
                // Where a feed follows what this query reads: the log's position before it reads.
                let log = self.registry.store().change_log(&scope.catalog)?;
                let epoch = feed::epoch(&log.epoch, &scope.catalog);
                template.header.resume_token = feed::resume_token(&epoch, log.last);
                let cut = Cut {
                    records: batch_size(q.batch_size)?,
                    bytes: self.batch_bytes,
                };
                let plan = plan.with_query(catalog, &q)?;
                let store = self.registry.store().clone();
                let records = produce::query_records(store, &scope.catalog, &plan, &q);
                let limit = (q.limit > 0).then_some(q.limit);
                Ok(self.stream_batches(template, records, plan, cut, limit, entry, slot, span))
            }
            Read::Subscribe(s) => {
                let store = self.registry.store().clone();
                let log = store.change_log(&scope.catalog)?;
                let after = feed::start(&s.resume_token, &log, &scope.producer, &scope.catalog)?;
                let decided = feed::Decided {
                    asker: reader.asker().cloned(),
                    decision,
                    members: self.peers.members().clone(),
                    producer: self.me().clone(),
                    catalog: catalog.clone(),
                };
                let feed = feed::Feed {
                    store,
                    catalog: scope.catalog.clone(),
                    epoch: feed::epoch(&log.epoch, &scope.catalog),
                    after,
                    template,
                    plan,
                    cut: Cut {
                        records: batch_size(s.batch_size)?,
                        bytes: self.batch_bytes,
                    },
                    signer: self.signer.clone(),
                    writes: self.registry.writes(),
                    decided,
                    entry,
                    audit: self.audit.clone(),
                    workers: self.workers.clone(),
                    sequence: 0,
                };
                Ok(self.serve(feed, slot, span))
            }
            Read::History(h) => {
                plan.check_key_lookup()?;
                let versions = self.registry.store().history(&scope.catalog, &h.key)?;
                if versions.is_empty() {
                    return Err(ReadError::not_found(format!(
                        "catalog {} has no record with key {:?}",
                        scope.catalog, h.key
                    )));
                }
                let cut = Cut {
                    records: DEFAULT_BATCH_SIZE,
                    bytes: self.batch_bytes,
                };
                Ok(self.stream_batches(
                    template,
                    versions.into_iter().map(Ok),
                    plan,
                    cut,
                    None,
                    entry,
                    slot,
                    span,
                ))
            }
        }
    }

    /// Who a read's records are sealed to: the node that asked, with its registered encryption
    /// key. That is this node for its own reads and its own principals', and otherwise the node
    /// that signed the requester, whoever passed it on: a relay that spends a requester it
    /// captured gets records only the vouching node can open.
    fn recipient(&self, reader: &Reader) -> Result<Recipient, ReadError> {
        let Reader::Principal { asker, voucher, .. } = reader else {
            return Ok(self.own.clone());
        };
        if &asker.node == self.me() {
            return Ok(self.own.clone());
        }
        let node = &asker.node;
        let key = voucher
            .as_ref()
            .ok_or_else(|| {
                format!("{node} is not a member of the federation directory, so no encryption key of its is registered")
            })
            .and_then(|standing| standing.recipient(node))
            .map_err(|e| {
                ReadError::failed_precondition(format!(
                    "node {} cannot seal the records for {node}: {e}",
                    self.me()
                ))
            })?;
        Ok(Recipient {
            node: node.clone(),
            key,
        })
    }

    /// Streams `records` as batches under `plan`, sealed and signed as `template` says, one batch
    /// per ask of the consumer, each made by one of the node's batch workers; audits what was sent
    /// when the stream ends.
    #[allow(clippy::too_many_arguments)] // One read's parts, each from a different step.
    fn stream_batches(
        &self,
        template: Template,
        records: impl Iterator<Item = Result<StoredRecord, StoreError>> + Send + 'static,
        plan: Plan,
        cut: Cut,
        limit: Option<u64>,
        entry: AuditEntry,
        slot: ReadSlot,
        span: tracing::Span,
    ) -> BatchStream {
        let keys = Arc::new(Mutex::new(Vec::new()));
        let kept = keys.clone();
        let keep_key = move |r: &StoredRecord| {
            let mut keys = kept.lock().unwrap_or_else(|p| p.into_inner());
            if keys.len() <= MAX_KEYS
                && let Ok(record) = r.decode()
            {
                keys.push(record.key);
            }
        };
        let lists = produce::record_lists(records, plan, cut, limit, keep_key);
        let production = Production {
            batches: Box::new(produce::seal_all(self.signer.clone(), template, lists)),
            keys,
            entry,
            audit: self.audit.clone(),
            workers: self.workers.clone(),
            stall: self.limits.stall(),
            batches_sent: 0,
            moved: Moved::default(),
            metrics: self.metrics.clone(),
        };
        self.serve(production, slot, span)
    }

    /// Serves `source`'s batches as its consumer asks for them ([`on_demand`]), within the
    /// node's stall limit, until the node stops; `slot` is held as long as the stream, and the
    /// source works in the read's `span`.
    fn serve(&self, source: impl Source, slot: ReadSlot, span: tracing::Span) -> BatchStream {
        on_demand(
            source,
            self.limits.stall(),
            self.stalled(),
            slot,
            self.stopping.subscribe(),
            span,
        )
    }

    /// Ends every read still waiting for its next batch (feeds waiting for writes, relays
    /// waiting for the next node) with UNAVAILABLE: the node is stopping, and its server waits
    /// for open streams to end.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// What a consumer that stopped taking batches is told if it asks again.
    fn stalled(&self) -> ReadError {
        ReadError::deadline_exceeded(format!(
            "the consumer took no batch for {}, so node {} ended the read and freed what it held: read a stream as it arrives, or ask for less at a time (limit, key_from)",
            seconds(self.limits.stall()),
            self.me()
        ))
    }
}

/// A duration as people read it, e.g. `60 s` or `0.3 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// A read produced on this node: the signed batches still to come, and what its audit entry
/// keeps.
struct Production {
    batches: Box<dyn Iterator<Item = Result<Sealed, StoreError>> + Send>,
    /// Keys of the records sent, up to one more than the audit keeps.
    keys: Arc<Mutex<Vec<String>>>,
    entry: AuditEntry,
    audit: Arc<AuditLog>,
    workers: Arc<Workers>,
    stall: Duration,
    batches_sent: u32,
    moved: Moved,
    metrics: Metrics,
}

impl Source for Production {
    async fn next(&mut self) -> Answer {
        let mut batches = std::mem::replace(&mut self.batches, Box::new(std::iter::empty()));
        let stepped = self
            .workers
            .run(move || {
                let next = batches.next();
                (batches, next)
            })
            .await;
        let next = match stepped {
            Ok((batches, next)) => {
                self.batches = batches;
                next?
            }
            Err(error) => return Some(Err(error)),
        };
        Some(next.map_err(ReadError::from).map(|sealed| {
            self.batches_sent += 1;
            self.moved.records += sealed.record_count;
            self.moved.bytes += sealed.batch.encoded_len() as u64;
            sealed.batch
        }))
    }

    async fn end(self, ending: Ending) {
        let Production {
            batches,
            keys,
            mut entry,
            audit,
            stall,
            batches_sent,
            moved,
            metrics,
            ..
        } = self;
        // The store iterator and the plan go first: the audit write waits for a flush.
        drop(batches);
        let labels = ReadLabels {
            catalog: entry.catalog.clone(),
            side: "producer",
            outcome: ending.outcome(),
        };
        metrics.read(labels, moved);
        match ending {
            Ending::Finished => {}
            Ending::Failed(error) => {
                entry.outcome = Some(Outcome::Refused);
                entry.reason = error.message;
            }
            Ending::Gone => entry.reason = "the consumer went away before the stream ended".into(),
            Ending::Stalled => {
                entry.reason = format!(
                    "the consumer took no batch for {}: the read was ended",
                    seconds(stall)
                );
            }
        }
        entry.records = moved.records;
        let keys = std::mem::take(&mut *keys.lock().unwrap_or_else(|p| p.into_inner()));
        if keys.len() <= MAX_KEYS {
            entry.keys = keys;
            entry.bounds.clear();
        }
        tracing::info!(consumer = %entry.consumer, principal = %entry.principal, catalog = %entry.catalog, kind = %entry.kind, batches = batches_sent, records = moved.records, reason = %entry.reason, "served");
        keep(&audit, entry).await;
    }
}

/// Appends a finished read's audit entry and waits until it is on disk, holding no thread: the
/// reads that end at the same time share one flush.
async fn keep(audit: &AuditLog, entry: AuditEntry) {
    if let Err(e) = audit.append(entry).await {
        tracing::error!(error = %e, "cannot write the audit");
    }
}

/// A read relayed from the next node towards its producer.
struct Relay {
    upstream: tonic::Streaming<SignedBatch>,
    from: NodeCode,
    me: NodeCode,
    /// Longest the consumer may take no batch, and the next node send none (see `waits`).
    stall: Duration,
    /// Whether the next node may send nothing for longer than `stall`: a feed's waits for writes.
    waits: bool,
    /// The consumer's audit entry, kept on the principal's own node only.
    audit: Option<RelayAudit>,
    metrics: Metrics,
    catalog: String,
    /// What passed so far, as the batches' headers count records.
    moved: Moved,
}

/// What the principal's own node keeps of a relayed read: what the headers say, and no keys.
/// The records arrive sealed to this node, and the node passes them to its principal's client
/// unopened: opening them here would decrypt every batch twice on the read's path, and hold the
/// node's private key in the serving process, for keys the producer's entry already holds under
/// the same request id.
struct RelayAudit {
    log: Arc<AuditLog>,
    entry: AuditEntry,
}

impl RelayAudit {
    /// Notes a batch as it passes: the grant and manifest of the first, and every batch's count.
    fn saw(&mut self, header: &BatchHeader) {
        let entry = &mut self.entry;
        if header.sequence == 0 {
            entry.grant = header.grant.clone();
            entry.items = items_by_action(
                header
                    .manifest
                    .iter()
                    .map(|m| (m.action.clone(), m.item.clone())),
            );
        }
        entry.records += header.record_count;
    }
}

impl Source for Relay {
    async fn next(&mut self) -> Answer {
        let next = self.upstream.next();
        let waited = if self.waits {
            Ok(next.await)
        } else {
            tokio::time::timeout(self.stall, next).await
        };
        let item = match waited {
            Ok(item) => item?.map_err(ReadError::from),
            Err(_) => Err(ReadError::deadline_exceeded(format!(
                "node {} sent no batch for {}, so node {} ended the relayed read: ask again later",
                self.from,
                seconds(self.stall),
                self.me
            ))),
        };
        if let Ok(batch) = &item {
            self.moved.bytes += batch.encoded_len() as u64;
            if let Ok(header) = BatchHeader::decode(batch.header.as_slice()) {
                self.moved.records += header.record_count;
                if let Some(audit) = &mut self.audit {
                    audit.saw(&header);
                }
            }
        }
        Some(item)
    }

    async fn end(self, ending: Ending) {
        // Dropping the upstream stream ends it at the next node too.
        let Relay {
            upstream,
            audit,
            stall,
            metrics,
            catalog,
            moved,
            ..
        } = self;
        drop(upstream);
        let side = if audit.is_some() { "consumer" } else { "relay" };
        let outcome = ending.outcome();
        tracing::info!(
            records = moved.records,
            bytes = moved.bytes,
            side,
            outcome,
            "relayed"
        );
        let labels = ReadLabels {
            catalog,
            side,
            outcome,
        };
        metrics.read(labels, moved);
        let Some(RelayAudit { log, mut entry }) = audit else {
            return;
        };
        match ending {
            Ending::Finished => {}
            Ending::Failed(error) => {
                entry.outcome = Some(Outcome::Refused);
                entry.reason = error.message;
            }
            Ending::Gone => {
                entry.reason = "the principal's client went away before the stream ended".into();
            }
            Ending::Stalled => {
                entry.reason = format!(
                    "the principal's client took no batch for {}: the read was ended",
                    seconds(stall)
                );
            }
        }
        entry.bounds = format!(
            "{} records, sealed to this node and passed on unopened; keys kept by the producer",
            entry.records
        );
        keep(&log, entry).await;
    }
}

/// A failed relay, as the caller may see it.
pub fn relay_failure(me: &NodeCode, target: &NodeCode, e: ClientError) -> ReadError {
    match e {
        ClientError::Status(s) => s.into(),
        // The full reason names this node's files: it is for this node's log, not the caller.
        ClientError::Config(c) => {
            tracing::warn!(%target, error = %c, "cannot relay");
            ReadError::not_found(format!(
                "node {me} has no address for {target}, so it cannot relay to it"
            ))
        }
        other => ReadError::unavailable(format!("relay from {me} to {target} failed: {other}")),
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

fn batch_size(requested: u32) -> Result<usize, ReadError> {
    match requested as usize {
        0 => Ok(DEFAULT_BATCH_SIZE),
        n if n <= MAX_BATCH_SIZE => Ok(n),
        n => Err(ReadError::invalid_argument(format!(
            "batch_size {n} is above the limit of {MAX_BATCH_SIZE}"
        ))),
    }
}
