//! Cross-checks in the read service: a cross-check reveals of each side's records what equality
//! of its join and compared items reveals, so it is decided, and audited, as a read is. On the
//! initiating node the principal's credential is checked, its grant on this node's catalog
//! decided, and a requester signed for the counterpart's catalog (the run id as its request id);
//! on the counterpart the requester is verified (once: a replay is refused) and the principal's
//! grant there decided. Either way the grant must give the join item and every compared item in
//! clear (matching candidates against a masked item would recover it), and its row scope limits
//! the records that take part. Each end
//! keeps one audit entry, kind `crosscheck`: the items compared, the counts, and the keys only of
//! its records the other side now knows it holds (matched or differing), never of unmatched ones.

use std::collections::BTreeMap;

use tierlink_core::catalog::Catalog;
use tierlink_core::crosscheck::{Outcome, Status, Terms, positions};
use tierlink_core::identity::NodeCode;
use tierlink_core::limits::{MAX_NAME_CHARS, MAX_PURPOSE_CHARS, MAX_ROLE_CHARS, clip, thousands};
use tierlink_core::policy::{Action, Asker, Decision, Refusal, RowScope};
use tierlink_core::signed::requester;
use tierlink_proto::v1::{Credential, Requester, SignedRequester};
use tierlink_store::audit::{AuditEntry, MAX_KEYS, Outcome as Served, Side};

use super::{ReadError, ReadService, TokenScope, authenticate, check_credential, read_claim};
use crate::admission::Caller;
use crate::limits::ReadSlot;

/// The audit entry's kind for a cross-check.
pub const KIND: &str = "crosscheck";

/// One side of a cross-check as the read service decided it: who it is for, under which grant,
/// and this node's records that take part. Holds a read slot of the asker's node until dropped.
pub struct Decided {
    /// Who the cross-check is for.
    pub asker: Asker,
    /// The grant that decided.
    pub grant: String,
    /// This node's catalog.
    pub catalog: Catalog,
    /// This node's records within the grant's row scope: key and values in catalog order.
    pub records: Vec<(String, Vec<String>)>,
    /// The grant's row scope.
    rows: Option<RowScope>,
    entry: AuditEntry,
    _slot: ReadSlot,
}

/// What a cross-check names, as one side sees it.
pub struct CrossScope<'a> {
    /// The run's terms.
    pub terms: &'a Terms,
    /// This node's catalog code.
    pub catalog: &'a str,
    /// The other node.
    pub other: &'a NodeCode,
}

impl ReadService {
    /// Longest a side of a cross-check waits for the other's next message: the read stall limit.
    pub fn stall(&self) -> std::time::Duration {
        self.limits.stall()
    }

    /// Turns true when the node stops: runs in progress end at once.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The initiating side: checks the principal's `credential` (which `caller`, this node's own
    /// administrator, passes on), decides its grant on this node's catalog, and signs the
    /// requester the counterpart decides by, for its catalog `their_catalog` and request id
    /// `terms.run`. A refusal is audited.
    pub async fn cross_check_here(
        &self,
        caller: &Caller,
        credential: &Credential,
        scope: &CrossScope<'_>,
        their_catalog: &str,
    ) -> Result<(Decided, SignedRequester), ReadError> {
        let asker = Asker {
            node: self.me().clone(),
            principal: clip(&credential.principal, MAX_NAME_CHARS).into_owned(),
            role: clip(&credential.role, MAX_ROLE_CHARS).into_owned(),
            purpose: clip(&credential.purpose, MAX_PURPOSE_CHARS).into_owned(),
            grant: (!credential.grant.is_empty()).then(|| credential.grant.clone()),
        };
        let entry = self.cross_entry(Side::Consumer, scope, &asker);
        if !caller.is_self {
            return Err(ReadError::permission_denied(format!(
                "{} asked {} to start a cross-check: only the node's own administrator starts one",
                caller.node,
                self.me()
            )));
        }
        let checked = check_credential(credential)
            .and_then(|()| authenticate(&self.principals, credential, TokenScope::Read))
            .and_then(|()| self.cross_decide(&asker, scope, None, entry.clone()));
        let decided = match checked {
            Ok(decided) => decided,
            Err(error) => return Err(self.refused(entry, error).await),
        };
        let requester = Requester {
            node: self.me().to_string(),
            principal: asker.principal.clone(),
            role: asker.role.clone(),
            purpose: asker.purpose.clone(),
            grant: credential.grant.clone(),
            producer: scope.other.to_string(),
            catalog: their_catalog.to_owned(),
            request_id: scope.terms.run.clone(),
            issued_at_micros: chrono::Utc::now().timestamp_micros(),
        };
        let signed = requester::sign(self.signer.key(), &requester);
        let decided = self.with_records(decided).await?;
        Ok((decided, signed))
    }

    /// The counterpart's side: verifies the requester `signed` that `caller` (the principal's
    /// own node: a cross-check is not relayed) sends for this node's catalog and the run's id,
    /// once, and decides the principal's grant. A refusal is audited.
    pub async fn cross_check_there(
        &self,
        caller: &Caller,
        signed: &SignedRequester,
        scope: &CrossScope<'_>,
    ) -> Result<Decided, ReadError> {
        let refused = |reason: String| {
            ReadError::permission_denied(format!(
                "the cross-check's requester is refused: {reason}"
            ))
        };
        let (claim, claimed) = read_claim(signed, refused)?;
        let entry = self.cross_entry(Side::Producer, scope, &claimed);
        if claim.node() != &caller.node || claim.node() != scope.other {
            let error = refused(format!(
                "it vouches for a principal of {}, but {} sent it for a run with {}: a cross-check is run by the principal's own node",
                claim.node(),
                caller.node,
                scope.other
            ));
            return Err(self.refused(entry, error).await);
        }
        let now = chrono::Utc::now().timestamp_micros();
        let today = today();
        let registry_entry = match self.registry.entry(scope.catalog) {
            Ok(e) => e,
            Err(e) => return Err(self.refused(entry, e.into()).await),
        };
        let terms = self.peers.members().terms(
            claim.node(),
            Some((self.me(), &registry_entry.catalog, &claimed, today.as_str())),
        );
        let verified = claim
            .verify(
                signed,
                terms.voucher.as_ref(),
                self.me(),
                scope.catalog,
                &scope.terms.run,
                now,
            )
            .and_then(|asker| {
                self.seen
                    .first_use(&asker.node, &scope.terms.run, now)
                    .map(|()| asker)
            })
            .map_err(refused)
            .and_then(|asker| self.cross_decide(&asker, scope, terms.decision, entry.clone()));
        match verified {
            Ok(decided) => self.with_records(decided).await,
            Err(error) => Err(self.refused(entry, error).await),
        }
    }

    /// Keeps a cross-check's audit entry at its end: the counts and the keys of this node's
    /// records the other side now knows it holds, or why the run failed.
    pub async fn cross_checked(
        &self,
        decided: Decided,
        result: Result<&Outcome, &str>,
    ) -> Result<(), ReadError> {
        let mut entry = decided.entry;
        match result {
            Ok(outcome) => {
                let c = &outcome.counts;
                entry.records = c.here;
                entry.bounds.push_str(&format!(
                    ": {} records here, {} there; matched {}, differing {}, only here {}, only there {}; {} not compared (no join value, or a repeated one)",
                    thousands(c.here),
                    thousands(c.there),
                    thousands(c.matched),
                    thousands(c.differing),
                    thousands(c.only_here),
                    thousands(c.only_there),
                    thousands(c.not_compared),
                ));
                let known: Vec<String> = outcome
                    .own
                    .iter()
                    .filter(|r| matches!(r.status, Status::Matched | Status::Differing { .. }))
                    .map(|r| r.key.clone())
                    .collect();
                if known.len() <= MAX_KEYS {
                    entry.keys = known;
                }
            }
            Err(reason) => {
                entry.outcome = Some(Served::Refused);
                entry.reason = reason.to_owned();
            }
        }
        self.audit.append(entry).await.map(drop).map_err(|e| {
            ReadError::unavailable(format!(
                "the cross-check's audit entry cannot be written ({e}): its result is not kept"
            ))
        })
    }

    /// The audit entry of a cross-check of this node's catalog, before its decision.
    fn cross_entry(&self, side: Side, scope: &CrossScope<'_>, asker: &Asker) -> AuditEntry {
        let t = scope.terms;
        let (here, there) = match side {
            Side::Consumer => (&t.initiator, &t.counterpart),
            _ => (&t.counterpart, &t.initiator),
        };
        AuditEntry {
            at_micros: chrono::Utc::now().timestamp_micros(),
            side: Some(side),
            kind: KIND.to_owned(),
            request_id: t.run.clone(),
            producer: self.me().to_string(),
            consumer: asker.node.to_string(),
            principal: asker.principal_id(),
            role: asker.role.clone(),
            purpose: asker.purpose.clone(),
            catalog: scope.catalog.to_owned(),
            outcome: Some(Served::Served),
            items: BTreeMap::from([(
                "equality".to_owned(),
                std::iter::once(&t.join)
                    .chain(&t.compared)
                    .cloned()
                    .collect(),
            )]),
            bounds: format!(
                "cross-check {} of {here} with {there} on {} comparing {}",
                t.run,
                t.join,
                t.compared.join(",")
            ),
            ..Default::default()
        }
    }

    /// Decides `asker`'s grant on this node's catalog (or takes `decided`, from the same look at
    /// the directory that verified its requester): it must give the join item and every compared
    /// item in some form; takes a read slot of the asker's node.
    fn cross_decide(
        &self,
        asker: &Asker,
        scope: &CrossScope<'_>,
        decided: Option<Result<Decision, Refusal>>,
        mut entry: AuditEntry,
    ) -> Result<Decided, ReadError> {
        let registry_entry = self.registry.entry(scope.catalog)?;
        let catalog = registry_entry.catalog.clone();
        positions(&catalog, scope.terms).map_err(|e| ReadError::invalid_argument(e.to_string()))?;
        let decision = decided
            .unwrap_or_else(|| {
                self.peers
                    .members()
                    .decide(self.me(), &catalog, asker, &today())
            })
            .map_err(|refusal| ReadError::permission_denied(refusal.to_string()))?;
        let terms = scope.terms;
        // Equality with values of one's own choosing reveals a value in full (a masked ID
        // number has few candidates): only items the grant gives in clear take part.
        for item in std::iter::once(&terms.join).chain(&terms.compared) {
            let clear = decision
                .items
                .iter()
                .any(|d| &d.item == item && d.action == Action::Clear);
            if !clear {
                return Err(ReadError::permission_denied(format!(
                    "grant {} does not give item {item} of catalog {} of {} in clear to {} as {}: a cross-check compares only items the grant gives in clear, since matching values of one's own choosing against a masked or hashed item would reveal it; ask for a grant that gives {item} in clear, or leave it out (--compare)",
                    decision.grant,
                    catalog.code,
                    self.me(),
                    asker.principal_id(),
                    asker.role
                )));
            }
        }
        if let Some(rows) = &decision.rows
            && catalog.item_index(&rows.item).is_none()
        {
            return Err(ReadError::failed_precondition(format!(
                "grant {} scopes rows by item {}, which catalog {} no longer has",
                decision.grant, rows.item, catalog.code
            )));
        }
        let slot = self.limits.open(&asker.node).map_err(ReadError::from)?;
        entry.grant.clone_from(&decision.grant);
        Ok(Decided {
            asker: asker.clone(),
            grant: decision.grant,
            records: Vec::new(),
            rows: decision.rows,
            catalog,
            entry,
            _slot: slot,
        })
    }

    /// Fills in the records of this node's catalog within the decision's row scope, read on a
    /// blocking thread.
    async fn with_records(&self, mut decided: Decided) -> Result<Decided, ReadError> {
        let store = self.registry.store().clone();
        let code = decided.catalog.code.clone();
        let scoped = decided
            .rows
            .as_ref()
            .map(|r| (decided.catalog.item_index(&r.item), r.within.clone()));
        let records = tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            for stored in store.scan(&code, "", None) {
                let record = stored?.decode()?;
                if record.deleted {
                    continue;
                }
                if let Some((at, within)) = &scoped {
                    let value = at.and_then(|i| record.values.get(i));
                    if !value.is_some_and(|v| v.starts_with(within.as_str())) {
                        continue;
                    }
                }
                records.push((record.key, record.values));
            }
            Ok::<_, tierlink_store::StoreError>(records)
        })
        .await
        .map_err(|e| ReadError::internal(format!("reading the records failed: {e}")))??;
        decided.records = records;
        Ok(decided)
    }
}

/// The day grants are checked for, `YYYY-MM-DD` (UTC), as reads check them.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}
