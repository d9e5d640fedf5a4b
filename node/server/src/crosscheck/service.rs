//! The `tierlink.v1.CrossCheck` gRPC service: `Run` and `Show` for the node's administrator,
//! `Compare` for the initiating node of a run (admission: the node itself, and active members).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tierlink_client::MAX_MESSAGE_BYTES;
use tierlink_core::catalog::is_resource_code;
use tierlink_core::crosscheck::{
    CrossCheckError, ELEMENT_BYTES, Mismatch, MismatchKind, Party, REFERENCE_BYTES,
    ROUND_ONE_WIDTH, Role, Terms, prepare,
};
use tierlink_core::identity::NodeCode;
use tierlink_core::limits::thousands;
use tierlink_proto::v1::compare_request::Message as Request_;
use tierlink_proto::v1::compare_response::Message as Response_;
use tierlink_proto::v1::cross_check_client::CrossCheckClient;
use tierlink_proto::v1::cross_check_server::{CrossCheck, CrossCheckServer};
use tierlink_proto::v1::run_progress::Event;
use tierlink_proto::v1::{
    CompareAccepted, CompareDone, CompareOpen, CompareRequest, CompareResponse, CrossCheckCounts,
    CrossCheckMismatch, CrossCheckRun, ElementChunk, RunCrossCheckRequest, RunProgress,
    ShowCrossCheckRequest,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::CHUNK_BYTES;
use super::store::{CrossChecks, Run, RunError, pair};
use crate::admission::Caller;
use crate::read::crosscheck::{CrossScope, Decided};
use crate::read::{ReadService, relay_failure};

/// The cross-check service of one node.
pub struct CrossCheckService {
    reads: Arc<ReadService>,
    runs: Arc<CrossChecks>,
}

impl CrossCheckService {
    /// The service over the node's read service and its kept runs, ready to serve.
    pub fn server(reads: Arc<ReadService>, runs: Arc<CrossChecks>) -> CrossCheckServer<Self> {
        CrossCheckServer::new(Self { reads, runs })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

impl From<RunError> for Status {
    fn from(e: RunError) -> Self {
        match e {
            RunError::NotFound(_) => Status::not_found(e.to_string()),
            RunError::OtherPair { .. } => Status::invalid_argument(e.to_string()),
            RunError::Store(_) => Status::internal(e.to_string()),
        }
    }
}

/// A protocol error as the side that found it reports it.
fn protocol(e: CrossCheckError) -> Status {
    match e {
        CrossCheckError::Randomness(_) => Status::unavailable(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// A run's id: `cc_` and 16 hex digits, fresh.
fn run_id() -> Result<String, Status> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Status::unavailable(format!("no randomness for a run id ({e})")))?;
    Ok(format!("cc_{}", hex::encode(bytes)))
}

fn check_run_id(id: &str) -> Result<(), Status> {
    let good = id
        .strip_prefix("cc_")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if good {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{id:?} is not a cross-check run id (cc_ and 16 hex digits)"
        )))
    }
}

/// `NODE:CODE` read back.
fn node_of(catalog: &str) -> Result<NodeCode, Status> {
    catalog
        .split_once(':')
        .and_then(|(node, _)| node.parse().ok())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "{catalog:?} is not a node's catalog, NODE:CODE (e.g. 420502:101001001/000001)"
            ))
        })
}

fn check_catalog(code: &str) -> Result<(), Status> {
    if is_resource_code(code) {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "{code:?} is not a catalog's resource code: name the catalog by its code, such as 101001001/000001"
    )))
}

/// Moves `party` onto a blocking thread for `f`, and back.
async fn blocking<T: Send + 'static>(
    party: Party,
    f: impl FnOnce(&mut Party) -> Result<T, CrossCheckError> + Send + 'static,
) -> Result<(Party, T), Status> {
    let (party, result) = tokio::task::spawn_blocking(move || {
        let mut party = party;
        let result = f(&mut party);
        (party, result)
    })
    .await
    .map_err(|e| Status::internal(format!("the cross-check's computation failed: {e}")))?;
    Ok((party, result.map_err(protocol)?))
}

/// One end of a `Compare` stream, whichever side holds it.
enum Link {
    /// The initiator's: requests out, responses in.
    Initiator {
        out: mpsc::Sender<CompareRequest>,
        inbound: Streaming<CompareResponse>,
    },
    /// The counterpart's: responses out, requests in.
    Counterpart {
        out: mpsc::Sender<Result<CompareResponse, Status>>,
        inbound: Streaming<CompareRequest>,
    },
}

/// What arrives on a link.
enum Incoming {
    Accepted(CompareAccepted),
    Chunk(ElementChunk),
    Done,
}

/// A link with what ends it early: the other side sending nothing for the stall limit, and this
/// node stopping.
struct End {
    link: Link,
    me: NodeCode,
    other: NodeCode,
    stall: Duration,
    stopping: watch::Receiver<bool>,
}

impl End {
    /// The run broken off, with why.
    fn broken(&self, why: impl std::fmt::Display) -> Status {
        Status::unavailable(format!(
            "the cross-check between {} and {} broke off ({why}): nothing of it was kept; run it again",
            self.me, self.other
        ))
    }

    /// Sends one chunk to the other side.
    async fn send(&mut self, chunk: ElementChunk) -> Result<(), Status> {
        let sent = match &self.link {
            Link::Initiator { out, .. } => out
                .send(CompareRequest {
                    message: Some(Request_::Chunk(chunk)),
                })
                .await
                .is_ok(),
            Link::Counterpart { out, .. } => out
                .send(Ok(CompareResponse {
                    message: Some(Response_::Chunk(chunk)),
                }))
                .await
                .is_ok(),
        };
        if sent {
            Ok(())
        } else {
            Err(self.broken(format!("{} went away", self.other)))
        }
    }

    async fn receive(&mut self) -> Result<Incoming, Status> {
        let stall = self.stall;
        let (me, other) = (self.me.clone(), self.other.clone());
        let mut stopping = self.stopping.clone();
        let link = &mut self.link;
        let next = async {
            match link {
                Link::Initiator { inbound, .. } => match inbound.message().await {
                    Ok(Some(CompareResponse {
                        message: Some(m), ..
                    })) => Ok(match m {
                        Response_::Accepted(a) => Incoming::Accepted(a),
                        Response_::Chunk(c) => Incoming::Chunk(c),
                        Response_::Done(_) => Incoming::Done,
                    }),
                    Ok(_) => Err(format!("{other} ended the stream")),
                    // The counterpart's refusal, as it said it.
                    Err(s)
                        if s.code() != tonic::Code::Unknown
                            && s.code() != tonic::Code::Cancelled =>
                    {
                        Err(format!("{other} answered: {}", s.message()))
                    }
                    Err(s) => Err(tierlink_client::error_chain(&s)),
                },
                Link::Counterpart { inbound, .. } => match inbound.message().await {
                    Ok(Some(CompareRequest {
                        message: Some(Request_::Chunk(c)),
                    })) => Ok(Incoming::Chunk(c)),
                    Ok(Some(_)) => Err(format!("{other} sent a second opening")),
                    Ok(None) => Err(format!("{other} ended the stream")),
                    Err(s) => Err(tierlink_client::error_chain(&s)),
                },
            }
        };
        let waited = tokio::select! {
            r = tokio::time::timeout(stall, next) => r,
            _ = stopping.wait_for(|s| *s) => {
                return Err(Status::unavailable(format!(
                    "node {me} is stopping: the cross-check with {other} ended, and nothing of it was kept; run it again once the node is back"
                )));
            }
        };
        match waited {
            Ok(Ok(incoming)) => Ok(incoming),
            Ok(Err(why)) => Err(self.broken(why)),
            Err(_) => Err(self.broken(format!(
                "{other} sent nothing for {} s",
                stall.as_secs_f64()
            ))),
        }
    }

    /// Sends `elements` (tuples of `tuple` bytes) with `references` (`per` bytes a tuple) in
    /// chunks of whole tuples.
    async fn send_all(
        &mut self,
        round: u32,
        answer: bool,
        elements: &[u8],
        references: &[u8],
        (tuple, per): (usize, usize),
    ) -> Result<(), Status> {
        let tuples = (CHUNK_BYTES / (tuple + per)).max(1);
        let count = elements.len() / tuple;
        for start in (0..count).step_by(tuples) {
            let end = (start + tuples).min(count);
            self.send(ElementChunk {
                round,
                answer,
                elements: elements[start * tuple..end * tuple].to_vec(),
                references: references[start * per..end * per].to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// Receives round `round`'s chunks until `want` bytes of the other's offer, of its
    /// references and of the answer to this side's offer have come.
    async fn gather(&mut self, round: u32, want: Want) -> Result<Gathered, Status> {
        let mut got = Gathered::default();
        while got.offer.len() < want.offer
            || got.references.len() < want.references
            || got.answer.len() < want.answer
        {
            let Incoming::Chunk(chunk) = self.receive().await? else {
                return Err(self.broken(format!("{} skipped round {round}", self.other)));
            };
            if chunk.round != round {
                return Err(self.broken(format!(
                    "{} sent round {} during round {round}",
                    self.other, chunk.round
                )));
            }
            let (into, cap) = if chunk.answer {
                (&mut got.answer, want.answer)
            } else {
                got.references.extend_from_slice(&chunk.references);
                (&mut got.offer, want.offer)
            };
            into.extend_from_slice(&chunk.elements);
            if into.len() > cap || got.references.len() > want.references {
                return Err(self.broken(format!(
                    "{} sent more elements than its records",
                    self.other
                )));
            }
        }
        Ok(got)
    }
}

/// Bytes of one round as received: the other's offer and references, and the answer to this
/// side's offer.
#[derive(Default)]
struct Gathered {
    offer: Vec<u8>,
    references: Vec<u8>,
    answer: Vec<u8>,
}

/// How many bytes of each part of a round [`End::gather`] waits for.
struct Want {
    offer: usize,
    references: usize,
    answer: usize,
}

/// One round: the initiator (`first`) sends its offer, the counterpart answers it and sends its
/// own, the initiator answers that. Returns this side's offer as answered and the other's offer
/// as this side answered it, with the other's references.
async fn round(
    end: &mut End,
    party: Party,
    first: bool,
    number: u32,
    (elements, references): (Vec<u8>, Vec<u8>),
    width: usize,
    theirs: usize,
) -> Result<(Party, Gathered), Status> {
    let tuple = width * ELEMENT_BYTES;
    let per = if number == 1 { REFERENCE_BYTES } else { 0 };
    let mine = elements.len();
    let offered = Want {
        offer: theirs.saturating_mul(tuple),
        references: theirs.saturating_mul(per),
        answer: 0,
    };
    let (party, offer, answered, own) = if first {
        end.send_all(number, false, &elements, &references, (tuple, per))
            .await?;
        let mut got = end
            .gather(
                number,
                Want {
                    answer: mine,
                    ..offered
                },
            )
            .await?;
        let (party, answered) = answer(party, std::mem::take(&mut got.offer)).await?;
        end.send_all(number, true, &answered, &[], (tuple, 0))
            .await?;
        (party, got, answered, None)
    } else {
        let mut got = end.gather(number, offered).await?;
        let (party, answered) = answer(party, std::mem::take(&mut got.offer)).await?;
        end.send_all(number, true, &answered, &[], (tuple, 0))
            .await?;
        end.send_all(number, false, &elements, &references, (tuple, per))
            .await?;
        let own = end
            .gather(
                number,
                Want {
                    offer: 0,
                    references: 0,
                    answer: mine,
                },
            )
            .await?;
        (party, got, answered, Some(own.answer))
    };
    Ok((
        party,
        Gathered {
            answer: own.unwrap_or(offer.answer),
            offer: answered,
            references: offer.references,
        },
    ))
}

async fn answer(party: Party, theirs: Vec<u8>) -> Result<(Party, Vec<u8>), Status> {
    blocking(party, move |p| p.answer(&theirs)).await
}

/// Both rounds for `party` over `end`, the initiator (`first`) sending first in each; `theirs`
/// records on the other side. Tells `progress` how each round went.
async fn rounds(
    end: &mut End,
    party: Party,
    first: bool,
    theirs: usize,
    progress: &Progress,
) -> Result<Party, Status> {
    let width = party.terms().compared.len();
    let (party, offer) = blocking(party, Party::offer).await?;
    let offer = (offer.elements, offer.references);
    let (party, got) = round(end, party, first, 1, offer, ROUND_ONE_WIDTH, theirs).await?;
    let (party, differing) = blocking(party, move |p| {
        p.settle_records(&got.answer, &got.offer, &got.references)
    })
    .await?;
    progress
        .step(format!(
            "round one done: {} records differ",
            thousands(differing as u64)
        ))
        .await;
    if differing == 0 {
        return Ok(party);
    }
    let (party, items) = blocking(party, Party::offer_items).await?;
    let (party, got) = round(end, party, first, 2, (items, Vec::new()), width, differing).await?;
    let (party, ()) = blocking(party, move |p| p.settle_items(&got.answer, &got.offer)).await?;
    progress
        .step("round two done: the differing items are known")
        .await;
    Ok(party)
}

/// Where the initiator reports its steps: its administrator's `Run` stream.
struct Progress(Option<mpsc::Sender<Result<RunProgress, Status>>>);

impl Progress {
    async fn step(&self, step: impl Into<String>) {
        if let Some(tx) = &self.0 {
            // The administrator may have gone: the run goes on and is kept.
            let _ = tx
                .send(Ok(RunProgress {
                    event: Some(Event::Step(step.into())),
                }))
                .await;
        }
    }
}

/// The party of this side of a run: `decided`'s records prepared, references under the pair's
/// key.
async fn party(
    runs: &Arc<CrossChecks>,
    decided: &mut Decided,
    terms: &Terms,
) -> Result<Party, Status> {
    let records = std::mem::take(&mut decided.records);
    let prepared = prepare(&decided.catalog, terms, records).map_err(protocol)?;
    let runs = runs.clone();
    let pair = pair(terms);
    let key = tokio::task::spawn_blocking(move || runs.reference_key(&pair))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
    Party::new(terms.clone(), prepared, &key).map_err(protocol)
}

/// Audits the end of a run on this side, then keeps it when it succeeded.
async fn finish(
    reads: &ReadService,
    runs: &CrossChecks,
    decided: Decided,
    result: Result<Run, Status>,
) -> Result<Run, Status> {
    let audited = reads
        .cross_checked(
            decided,
            result.as_ref().map(|r| &r.outcome).map_err(|s| s.message()),
        )
        .await;
    let run = result?;
    audited?;
    runs.keep(&run)
        .await
        .map_err(|e| Status::internal(format!("the run cannot be kept: {e}")))?;
    Ok(run)
}

/// A run kept on this node, as `Show` and `Run` answer.
pub fn run_message(run: &Run) -> CrossCheckRun {
    let c = &run.outcome.counts;
    CrossCheckRun {
        run: run.id.clone(),
        here: run.here().to_owned(),
        there: run.there().to_owned(),
        join: run.terms.join.clone(),
        compared: run.terms.compared.clone(),
        role: match run.role {
            Role::Collector => "collector".into(),
            Role::Holder => "holder".into(),
        },
        initiated: run.initiated,
        principal: run.principal.clone(),
        principal_role: run.principal_role.clone(),
        purpose: run.purpose.clone(),
        grant: run.grant.clone(),
        at_micros: run.at_micros,
        counts: Some(CrossCheckCounts {
            here: c.here,
            there: c.there,
            matched: c.matched,
            differing: c.differing,
            only_here: c.only_here,
            only_there: c.only_there,
            not_compared: c.not_compared,
        }),
        mismatches: run.mismatches().into_iter().map(mismatch_message).collect(),
    }
}

fn mismatch_message(m: Mismatch) -> CrossCheckMismatch {
    let (kind, items) = match m.kind {
        MismatchKind::Differing { items } => ("differing", items),
        MismatchKind::OnlyAtCollector => ("only-at-collector", Vec::new()),
        MismatchKind::OnlyAtHolder => ("only-at-holder", Vec::new()),
    };
    CrossCheckMismatch {
        kind: kind.into(),
        items,
        key: m.key.unwrap_or_default(),
        reference: m.reference,
    }
}

/// The run as this side keeps it.
fn kept(terms: Terms, decided: &Decided, initiated: bool, role: Role, party: Party) -> Run {
    Run {
        id: terms.run.clone(),
        terms,
        initiated,
        role,
        principal: decided.asker.principal_id(),
        principal_role: decided.asker.role.clone(),
        purpose: decided.asker.purpose.clone(),
        grant: decided.grant.clone(),
        at_micros: chrono::Utc::now().timestamp_micros(),
        outcome: party.outcome(),
    }
}

type Events<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl CrossCheck for CrossCheckService {
    type RunStream = Events<RunProgress>;
    type CompareStream = Events<CompareResponse>;

    async fn run(
        &self,
        request: Request<RunCrossCheckRequest>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let caller = Caller::of(&request)?;
        let r = request.into_inner();
        check_catalog(&r.catalog)?;
        check_catalog(&r.against_catalog)?;
        let me = self.reads.me().clone();
        let other: NodeCode = r.against_node.parse().map_err(|e| {
            Status::invalid_argument(format!("the counterpart node: {e} (--against NODE:CODE)"))
        })?;
        if other == me {
            return Err(Status::invalid_argument(format!(
                "a cross-check compares {me}'s catalog with another node's: name that node (--against NODE:CODE)"
            )));
        }
        let credential = r.credential.ok_or_else(|| {
            Status::invalid_argument(
                "a cross-check is run for a principal of this node: give its name, token, role and purpose (--principal, --token, --role, --purpose)",
            )
        })?;
        let terms = Terms {
            run: run_id()?,
            initiator: format!("{me}:{}", r.catalog),
            counterpart: format!("{other}:{}", r.against_catalog),
            join: r.join,
            compared: r.compared,
        };
        terms.check().map_err(protocol)?;
        let scope = CrossScope {
            terms: &terms,
            catalog: &r.catalog,
            other: &other,
        };
        let (decided, signed) = self
            .reads
            .cross_check_here(&caller, &credential, &scope, &r.against_catalog)
            .await?;
        let role = if r.holder {
            Role::Holder
        } else {
            Role::Collector
        };
        let (tx, rx) = mpsc::channel(8);
        let (reads, runs) = (self.reads.clone(), self.runs.clone());
        let open = CompareOpen {
            run: terms.run.clone(),
            requester: Some(signed),
            catalog: r.against_catalog,
            initiator_catalog: terms.initiator.clone(),
            join: terms.join.clone(),
            compared: terms.compared.clone(),
            records: 0,
            initiator_holds: r.holder,
        };
        tokio::spawn(async move {
            let mut decided = decided;
            let progress = Progress(Some(tx.clone()));
            let result = initiate(&reads, &runs, &mut decided, terms, open, role, &progress).await;
            let answer = finish(&reads, &runs, decided, result)
                .await
                .map(|run| RunProgress {
                    event: Some(Event::Run(run_message(&run))),
                });
            let _ = tx.send(answer).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn compare(
        &self,
        request: Request<Streaming<CompareRequest>>,
    ) -> Result<Response<Self::CompareStream>, Status> {
        let caller = Caller::of(&request)?;
        let mut inbound = request.into_inner();
        let Some(CompareRequest {
            message: Some(Request_::Open(open)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument(
                "a Compare call opens with CompareOpen",
            ));
        };
        check_run_id(&open.run)?;
        check_catalog(&open.catalog)?;
        let me = self.reads.me().clone();
        let other = node_of(&open.initiator_catalog)?;
        let terms = Terms {
            run: open.run.clone(),
            initiator: open.initiator_catalog.clone(),
            counterpart: format!("{me}:{}", open.catalog),
            join: open.join.clone(),
            compared: open.compared.clone(),
        };
        terms.check().map_err(protocol)?;
        let signed = open.requester.clone().ok_or_else(|| {
            Status::permission_denied("a cross-check names its principal with a signed requester")
        })?;
        let scope = CrossScope {
            terms: &terms,
            catalog: &open.catalog,
            other: &other,
        };
        let decided = self
            .reads
            .cross_check_there(&caller, &signed, &scope)
            .await?;
        let (tx, rx) = mpsc::channel(4);
        let mut end = End {
            link: Link::Counterpart {
                out: tx.clone(),
                inbound,
            },
            me,
            other,
            stall: self.reads.stall(),
            stopping: self.reads.stopping(),
        };
        let (reads, runs) = (self.reads.clone(), self.runs.clone());
        let role = if open.initiator_holds {
            Role::Collector
        } else {
            Role::Holder
        };
        tokio::spawn(async move {
            let mut decided = decided;
            let result = respond(&runs, &mut decided, terms, &open, role, (&mut end, &tx)).await;
            let done = finish(&reads, &runs, decided, result)
                .await
                .map(|_| CompareResponse {
                    message: Some(Response_::Done(CompareDone {})),
                });
            let _ = tx.send(done).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn show(
        &self,
        request: Request<ShowCrossCheckRequest>,
    ) -> Result<Response<CrossCheckRun>, Status> {
        let id = request.into_inner().run;
        check_run_id(&id)?;
        let run = self
            .runs
            .get(&id)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or(RunError::NotFound(id))?;
        Ok(Response::new(run_message(&run)))
    }
}

/// The initiator's side of a run, after its decision: opens `Compare` on the counterpart and
/// carries out both rounds.
async fn initiate(
    reads: &Arc<ReadService>,
    runs: &Arc<CrossChecks>,
    decided: &mut Decided,
    terms: Terms,
    mut open: CompareOpen,
    role: Role,
    progress: &Progress,
) -> Result<Run, Status> {
    let me = reads.me().clone();
    let other = node_of(&terms.counterpart)?;
    let party = party(runs, decided, &terms).await?;
    open.records = party.records() as u64;
    progress
        .step(format!(
            "run {}: {} records of {} take part; asking {other}",
            terms.run,
            thousands(open.records),
            terms.initiator
        ))
        .await;
    let channel = reads
        .peers()
        .channel(&other)
        .await
        .map_err(|e| Status::from(relay_failure(&me, &other, e)))?;
    let mut client = CrossCheckClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (out, out_rx) = mpsc::channel(4);
    out.send(CompareRequest {
        message: Some(Request_::Open(open)),
    })
    .await
    .map_err(|_| Status::internal("the request stream closed before it opened"))?;
    let inbound = client
        .compare(ReceiverStream::new(out_rx))
        .await
        .map_err(|s| {
            Status::new(
                s.code(),
                format!("{other} refused the cross-check: {}", s.message()),
            )
        })?
        .into_inner();
    let mut end = End {
        link: Link::Initiator { out, inbound },
        me,
        other: other.clone(),
        stall: reads.stall(),
        stopping: reads.stopping(),
    };
    let accepted = match end.receive().await? {
        Incoming::Accepted(a) => a,
        _ => return Err(end.broken(format!("{other} did not say whether it accepts"))),
    };
    progress
        .step(format!(
            "{other} accepted under grant {}: {} records of {} take part",
            accepted.grant,
            thousands(accepted.records),
            terms.counterpart
        ))
        .await;
    let theirs = usize::try_from(accepted.records).unwrap_or(usize::MAX);
    let party = rounds(&mut end, party, true, theirs, progress).await?;
    match end.receive().await? {
        Incoming::Done => {}
        _ => return Err(end.broken(format!("{other} did not confirm that it kept the run"))),
    }
    Ok(kept(terms, decided, true, role, party))
}

/// The counterpart's side of a run, after its decision: accepts, and carries out both rounds.
async fn respond(
    runs: &Arc<CrossChecks>,
    decided: &mut Decided,
    terms: Terms,
    open: &CompareOpen,
    role: Role,
    (end, out): (&mut End, &mpsc::Sender<Result<CompareResponse, Status>>),
) -> Result<Run, Status> {
    let party = party(runs, decided, &terms).await?;
    let accepted = CompareResponse {
        message: Some(Response_::Accepted(CompareAccepted {
            records: party.records() as u64,
            grant: decided.grant.clone(),
        })),
    };
    if out.send(Ok(accepted)).await.is_err() {
        return Err(end.broken(format!("{} went away", end.other)));
    }
    let theirs = usize::try_from(open.records).unwrap_or(usize::MAX);
    let party = rounds(end, party, false, theirs, &Progress(None)).await?;
    Ok(kept(terms, decided, false, role, party))
}
