//! A change feed: every version written to a catalog after a resume token, in the producer's
//! write order, as the same sealed, signed batches a query gets under the same decision.
//!
//! A resume token is `EPOCH.POSITION`: an epoch naming the catalog and its store ([`epoch`]) and
//! a position in the catalog's write order ([`tierlink_store::ChangeLog`]). Each batch's header
//! carries the token after its last record, so a reader that reconnects with the last token it
//! kept loses nothing and gets nothing twice, across restarts of either side. A token of another
//! catalog, node or store, or past what was written, is refused as "resync needed" with what to
//! do, never answered with a gap. The decision is taken again before every batch and at least every
//! [`RECHECK`]: a grant revoked or changed ends the feed with the reason. Every batch is audited
//! as it is sent.

use std::sync::Arc;
use std::time::Duration;

use tierlink_core::catalog::Catalog;
use tierlink_core::identity::NodeCode;
use tierlink_core::members::Members;
use tierlink_core::policy::{Asker, Decision};
use tierlink_core::signed::BatchSigner;
use tierlink_proto::v1::{BatchHeader, SignedBatch};
use tierlink_store::audit::{AuditEntry, AuditLog, MAX_KEYS, Outcome};
use tierlink_store::{ChangeLog, Position, Store, StoreError, StoredRecord};
use tokio::sync::watch;

use super::on_demand::{Answer, Ending, Source};
use super::workers::Workers;
use super::{ReadError, keep};
use crate::exchange::produce::{self, Cut, Plan, Template};

/// Longest a feed waits for a write before it takes its decision again.
pub const RECHECK: Duration = Duration::from_secs(5);

/// A resume token: the catalog's epoch ([`epoch`]) and a position in its write order.
pub fn resume_token(epoch: &str, position: Position) -> String {
    format!("{epoch}.{position}")
}

/// A catalog's epoch in its tokens: 16 hex digits of BLAKE3 over the store's epoch and the
/// catalog's code, so that a token names its catalog and its store, and one of another catalog,
/// node or store is told apart.
pub fn epoch(store: &str, catalog: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(store.as_bytes());
    hasher.update(&[0]);
    hasher.update(catalog.as_bytes());
    hasher.finalize().to_hex()[..16].to_owned()
}

/// The position a feed starts after: the token's, or the newest when no token is given.
///
/// # Errors
/// INVALID_ARGUMENT for a token not of the form `EPOCH.POSITION`; FAILED_PRECONDITION, "resync
/// needed", for a token of another catalog, node or store, or of positions not kept or not yet
/// written.
pub fn start(
    token: &str,
    log: &ChangeLog,
    producer: &NodeCode,
    catalog: &str,
) -> Result<Position, ReadError> {
    if token.is_empty() {
        return Ok(log.last);
    }
    let resync = |why: String| {
        ReadError::failed_precondition(format!(
            "resync needed: {why}. Read catalog {catalog} of {producer} again (a query: its batches carry the resume token that follows what it read), then subscribe from that token"
        ))
    };
    let (epoch, position) = token
        .rsplit_once('.')
        .and_then(|(e, p)| Some((e, p.parse::<Position>().ok()?)))
        .ok_or_else(|| {
            ReadError::invalid_argument(format!(
                "{:?} is not a resume token (EPOCH.POSITION): give the one a batch header carried, or none to start from now",
                tierlink_core::limits::clip(token, 64)
            ))
        })?;
    if epoch != self::epoch(&log.epoch, catalog) {
        return Err(resync(format!(
            "the token is not one of catalog {catalog} as {producer} now holds it: it is of another catalog, another node, or a store {producer} has made anew since"
        )));
    }
    if position.saturating_add(1) < log.first {
        return Err(resync(format!(
            "{producer} keeps the changes of {catalog} from position {} on, and the token is at {position}",
            log.first
        )));
    }
    if position > log.last {
        return Err(resync(format!(
            "the token is at position {position}, past the last {producer} wrote ({}): its store was restored to an earlier state",
            log.last
        )));
    }
    Ok(position)
}

/// Who a feed is decided for, and how it was decided when it began.
pub struct Decided {
    /// The principal asking; `None` for the node reading its own records, decided once.
    pub asker: Option<Asker>,
    /// The decision the feed began under.
    pub decision: Decision,
    /// The directory's members and policies, to decide again.
    pub members: Arc<dyn Members>,
    /// The producer: this node.
    pub producer: NodeCode,
    /// The catalog as published.
    pub catalog: Catalog,
}

impl Decided {
    /// Whether the feed may go on: its decision, taken again today, is the one it began under.
    fn holds(&self) -> Result<(), ReadError> {
        let Some(asker) = &self.asker else {
            return Ok(());
        };
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        match self
            .members
            .decide(&self.producer, &self.catalog, asker, &today)
        {
            Ok(now) if now == self.decision => Ok(()),
            Ok(now) => Err(ReadError::permission_denied(format!(
                "the feed was decided under grant {} and would now be under grant {}, with other items: subscribe again, from the last resume token, to read under it",
                self.decision.grant, now.grant
            ))),
            Err(refusal) => Err(ReadError::permission_denied(format!(
                "the grant the feed was read under no longer holds: {refusal}"
            ))),
        }
    }
}

/// A feed produced on this node.
pub struct Feed {
    /// The node's store.
    pub store: Arc<dyn Store>,
    /// The catalog followed.
    pub catalog: String,
    /// The store's epoch.
    pub epoch: String,
    /// The last position sent.
    pub after: Position,
    /// What each batch's header shares, and who its records are sealed to.
    pub template: Template,
    /// The plan records are projected under.
    pub plan: Plan,
    /// Where batches are cut.
    pub cut: Cut,
    /// The node's signer.
    pub signer: Arc<BatchSigner>,
    /// Marked after every write stored.
    pub writes: watch::Receiver<u64>,
    /// Who the feed is for, to decide again.
    pub decided: Decided,
    /// The audit entry every batch's entry starts from.
    pub entry: AuditEntry,
    /// The node's audit.
    pub audit: Arc<AuditLog>,
    /// The node's batch workers.
    pub workers: Arc<Workers>,
    /// Batches sent so far: the next batch's sequence.
    pub sequence: u32,
}

/// One step of a feed, made on a worker: the position it reaches, and the batch with the keys
/// it sends (none when no version there is the reader's to see).
type Step = (Position, Option<(SignedBatch, Vec<String>)>);

impl Feed {
    /// The versions written after `self.after`, as many as one batch holds; `None` when none
    /// was written.
    async fn step(&self) -> Result<Option<Step>, ReadError> {
        let (store, catalog, after) = (self.store.clone(), self.catalog.clone(), self.after);
        let (plan, cut, signer) = (self.plan.clone(), self.cut, self.signer.clone());
        let Template { header, to } = self.template.clone();
        let (epoch, sequence) = (self.epoch.clone(), self.sequence);
        let stepped = self
            .workers
            .run(move || -> Result<Option<Step>, StoreError> {
                let mut changes = store.changes(&catalog, after, cut.records)?;
                // As many as the batch's bytes take (a version's stored size bounds what is sent of
                // it), and at least one.
                let mut bytes = 0;
                let taken = changes
                    .iter()
                    .take_while(|(_, r)| {
                        bytes += r.bytes().len();
                        bytes <= cut.bytes
                    })
                    .count()
                    .max(1);
                changes.truncate(taken);
                let Some(&(position, _)) = changes.last() else {
                    return Ok(None);
                };
                let mut keys = Vec::new();
                let keep = |r: &StoredRecord| {
                    if let Ok(record) = r.decode() {
                        keys.push(record.key);
                    }
                };
                let whole = Cut {
                    records: usize::MAX,
                    bytes: usize::MAX,
                };
                let records = changes.into_iter().map(|(_, r)| Ok(r));
                let (records, count) = produce::record_lists(records, plan, whole, None, keep)
                    .next()
                    .transpose()?
                    .unwrap_or_default();
                if count == 0 {
                    return Ok(Some((position, None)));
                }
                let header = BatchHeader {
                    sequence,
                    last: false,
                    created_at_micros: chrono::Utc::now().timestamp_micros(),
                    record_count: count,
                    resume_token: resume_token(&epoch, position),
                    ..header
                };
                Ok(Some((
                    position,
                    Some((signer.seal(header, records, &to), keys)),
                )))
            });
        stepped.await?.map_err(ReadError::from)
    }
}

impl Source for Feed {
    async fn next(&mut self) -> Answer {
        loop {
            if let Err(e) = self.decided.holds() {
                return Some(Err(e));
            }
            // Marked seen before the log is read: a write after this read marks it again.
            self.writes.borrow_and_update();
            match self.step().await {
                Err(e) => return Some(Err(e)),
                Ok(Some((position, None))) => self.after = position,
                Ok(Some((position, Some((batch, keys))))) => {
                    let mut entry = self.entry.clone();
                    entry.at_micros = chrono::Utc::now().timestamp_micros();
                    entry.records = keys.len() as u64;
                    // The keys sent, or where they were when too many to keep (as a query's
                    // entry keeps its bounds): an entry with keys matches a search by key exactly.
                    if keys.len() <= MAX_KEYS {
                        entry.keys = keys;
                        entry.bounds.clear();
                    } else {
                        entry.bounds = format!(
                            "positions {} to {position}",
                            resume_token(&self.epoch, self.after + 1)
                        );
                    }
                    // The batch is audited before it is sent.
                    if let Err(e) = self.audit.append(entry).await {
                        return Some(Err(ReadError::unavailable(format!(
                            "the audit cannot be written ({e}): nothing is served until it can"
                        ))));
                    }
                    self.after = position;
                    self.sequence += 1;
                    return Some(Ok(batch));
                }
                Ok(None) => {
                    // Nothing new: wait for a write, and decide again at least every RECHECK.
                    let _ = tokio::time::timeout(RECHECK, self.writes.changed()).await;
                }
            }
        }
    }

    async fn end(self, ending: Ending) {
        let Ending::Failed(error) = ending else {
            tracing::info!(catalog = %self.catalog, batches = self.sequence, "feed ended");
            return;
        };
        let mut entry = self.entry;
        entry.at_micros = chrono::Utc::now().timestamp_micros();
        entry.outcome = Some(Outcome::Refused);
        entry.reason = error.message;
        keep(&self.audit, entry).await;
    }
}
