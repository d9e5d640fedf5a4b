//! Cases at this node: its principals raise and move them, the node signs each move, keeps the
//! chain, and delivers it, sealed, to every unit party to the case; chains other units deliver
//! are checked move by move and kept. Deadlines are counted in working days on the node's
//! calendar (`[cases]` in node.toml); a case this node must act on past its deadline is warned
//! of, or escalated, as configured. Every move is audited where it is made and where it arrives.
//!
//! # Layout
//! - [`store`]: the `cases` keyspace: chains, pending deliveries, case numbers.
//! - `outbox`: delivering chains until each party holds them, and looking for overdue cases.
//! - [`verification`]: cross-check mismatches sent back to the collector as verification
//!   cases, and settled on a later run.
//! - [`service`]: the `tierlink.v1.Cases` gRPC service.

mod outbox;
pub mod service;
pub mod store;
pub mod verification;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use tierlink_client::Peers;
use tierlink_core::calendar::{Calendar, Due};
use tierlink_core::cases::chain::{self, MAX_MOVES};
use tierlink_core::cases::state::{PROMISED, VERIFICATION};
use tierlink_core::cases::{Action, Case, CaseError, Dimension, Status, apply};
use tierlink_core::config::{CaseSettings, Deadlines, OverdueAction};
use tierlink_core::identity::tokens::Scope as TokenScope;
use tierlink_core::identity::{EncryptionKeys, NodeCode, NodeKey};
use tierlink_core::members::Members;
use tierlink_proto::v1::{
    CaseDelivery, CaseMove, CaseSummary, CaseView, Credential, DeliveryReceipt, FiguresRequest,
    FiguresResponse, FiguresRow, ListCasesRequest, SignedMove,
};
use tierlink_store::StoreError;
use tierlink_store::audit::{AuditEntry, AuditLog, Outcome, Side};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::admission::Caller;
use crate::directory::Replica;
use crate::read::{ReadError, ReadService};
use store::CaseStore;

/// The residents' cases catalog (民情流水线), whose code the audit entries of moves name.
pub const CASES_CATALOG: &str = "201001001/000001";

/// Why a case action, a delivery or a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// The move, or the chain delivered, is refused: the message says why.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// The principal's credential does not hold.
    #[error(transparent)]
    Credential(ReadError),
    /// No such case here.
    #[error("no case {0} is kept at this node: `tierlink case list` shows those it keeps")]
    NotFound(String),
    /// The store or the audit log failed.
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for CasesError {
    fn from(e: StoreError) -> Self {
        CasesError::Store(e.to_string())
    }
}

/// What the node's cases need of the directory replica: the members (keys and endpoints) and
/// the roles (each role's department).
pub trait CaseDirectory: Members {
    /// The department of role `role` (`UNIT/NAME`), if the directory defines it.
    fn department_of(&self, role: &str) -> Option<String>;
    /// The departments the directory's roles name at `unit`.
    fn departments_at(&self, unit: &NodeCode) -> Vec<String>;
}

impl CaseDirectory for Replica {
    fn department_of(&self, role: &str) -> Option<String> {
        self.view(|s| s.policies.roles.get(role).map(|r| r.department.clone()))
    }

    fn departments_at(&self, unit: &NodeCode) -> Vec<String> {
        let mut found: Vec<String> = self.view(|s| {
            s.policies
                .roles
                .values()
                .filter(|r| &r.unit == unit)
                .map(|r| r.department.clone())
                .collect()
        });
        found.sort();
        found.dedup();
        found
    }
}

/// This node's cases.
pub struct Cases {
    me: NodeCode,
    key: NodeKey,
    keys: EncryptionKeys,
    directory: Arc<dyn CaseDirectory>,
    store: CaseStore,
    audit: Arc<AuditLog>,
    reads: Arc<ReadService>,
    peers: Arc<Peers>,
    calendar: Calendar,
    settings: CaseSettings,
    /// Held while a chain is read and extended, and while a delivery is settled.
    writing: Mutex<()>,
    /// Wakes the outbox when a delivery is queued.
    queued: Notify,
    /// Overdue cases already warned of, so each is warned of once per run.
    warned: Mutex<HashSet<String>>,
    /// The delivery and overdue loops, once started.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// How far a delivered move's time may run ahead of this node's clock.
const MAX_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// The most cases a list answers when it names no limit.
pub const DEFAULT_LIST: usize = 1000;

/// `at` (µs since the Unix epoch), or now when 0.
fn at_or_now(at: i64) -> i64 {
    if at == 0 { now_micros() } else { at }
}

impl Cases {
    /// The cases of node `me`, signed with `key`, opened with `keys`, kept in `store`, audited
    /// in `audit`, their principals authenticated by `reads`, delivered through `peers`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: NodeKey,
        keys: EncryptionKeys,
        directory: Arc<dyn CaseDirectory>,
        store: CaseStore,
        audit: Arc<AuditLog>,
        reads: Arc<ReadService>,
        peers: Arc<Peers>,
        calendar: Calendar,
        settings: CaseSettings,
    ) -> Self {
        Self {
            me: key.code().clone(),
            key,
            keys,
            directory,
            store,
            audit,
            reads,
            peers,
            calendar,
            settings,
            writing: Mutex::new(()),
            queued: Notify::new(),
            warned: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The node's working-day calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// Starts delivering pending chains and looking for overdue cases, until the node stops.
    pub fn start(self: &Arc<Self>) {
        outbox::start(self.clone());
    }

    /// Ends the delivery and overdue loops and waits for them: what they hold of the store is
    /// let go. Pending deliveries are attempted again after a restart.
    pub async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    /// A principal's move, made and signed here: `mv` names the action and its fields
    /// (`case_id` empty to raise), `promised` the date of a promised case. Returns the case.
    pub async fn act(
        &self,
        credential: &Credential,
        mv: CaseMove,
        promised: &str,
    ) -> Result<CaseView, CasesError> {
        self.reads
            .authenticate(credential, TokenScope::Write)
            .map_err(CasesError::Credential)?;
        let department = self
            .directory
            .department_of(&credential.role)
            .unwrap_or_default();
        let principal = format!("{}@{}", credential.principal, self.me);
        self.make(mv, principal, credential.role.clone(), department, promised)
            .await
    }

    /// Makes, keeps, audits and queues one move of this node's.
    async fn make(
        &self,
        mut mv: CaseMove,
        principal: String,
        role: String,
        department: String,
        promised: &str,
    ) -> Result<CaseView, CasesError> {
        let action: Action = mv.action.parse()?;
        let now = now_micros();
        mv.node = self.me.to_string();
        mv.principal = principal.clone();
        mv.role = role.clone();
        mv.department = department;
        mv.at_micros = now;
        let case = {
            let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
            let (held, before, number) = if action == Action::Raise {
                let day = self.calendar.local_date(now).format("%Y%m%d").to_string();
                let n = self.store.last_number(&day)? + 1;
                mv.case_id = format!("{}-{day}-{n:05}", self.me);
                (Vec::new(), None, Some((day, n)))
            } else {
                let held = self.store.chain(&mv.case_id)?;
                if held.is_empty() {
                    return Err(CasesError::NotFound(mv.case_id));
                }
                if held.len() as u64 >= MAX_MOVES {
                    return Err(CaseError::Refused(format!(
                        "case {} has {MAX_MOVES} moves, the most a case holds: raise a new case for what remains",
                        mv.case_id
                    ))
                    .into());
                }
                let before = self.state(&held)?;
                (held, Some(before), None)
            };
            mv.sequence = held.len() as u64;
            mv.previous = held.last().map(chain::link).unwrap_or_default();
            self.set_due(&mut mv, action, before.as_ref(), promised)?;
            if action == Action::Dispatch {
                self.check_department(&mv)?;
            }
            let case = apply(before.as_ref(), &mv)?;
            let signed = chain::sign(&self.key, &mv);
            let others: Vec<NodeCode> = case
                .parties
                .iter()
                .filter(|p| **p != self.me)
                .cloned()
                .collect();
            self.store.append(
                &mv.case_id,
                held.len() as u64,
                std::slice::from_ref(&signed),
                &others,
                number.as_ref().map(|(d, n)| (d.as_str(), *n)),
            )?;
            case
        };
        self.queued.notify_one();
        let entry = AuditEntry {
            at_micros: now,
            side: Some(Side::Producer),
            kind: "case".into(),
            request_id: format!("{}#{}", mv.case_id, mv.sequence),
            producer: self.me.to_string(),
            consumer: self.me.to_string(),
            principal,
            role,
            purpose: action.as_str().into(),
            catalog: CASES_CATALOG.into(),
            outcome: Some(Outcome::Served),
            records: 1,
            keys: vec![mv.case_id.clone()],
            ..AuditEntry::default()
        };
        self.audit
            .append(entry)
            .await
            .map_err(|e| CasesError::Store(e.to_string()))?;
        self.view(&case.id)
    }

    /// The deadline a move sets, from the node's `[cases.deadlines]` and calendar:
    /// - raise: immediate, the same working day; promised, the date promised; missing documents
    ///   and verification tasks, their days; escalated and referred, none until approved or
    ///   dispatched;
    /// - approve: the escalated case's days (上报件: 3) from the approval;
    /// - dispatch: the route's days (Nanchang's "123"), unless the case already runs to a date
    ///   promised, approved or set for a verification.
    fn set_due(
        &self,
        mv: &mut CaseMove,
        action: Action,
        before: Option<&Case>,
        promised: &str,
    ) -> Result<(), CaseError> {
        let d: &Deadlines = &self.settings.deadlines;
        let now = mv.at_micros;
        let due: Option<Due> = match action {
            Action::Raise => match mv.class.as_str() {
                "1" => Some(self.calendar.due(now, d.immediate)),
                PROMISED => {
                    let date = NaiveDate::parse_from_str(promised, "%Y-%m-%d").map_err(|_| {
                        CaseError::Invalid(format!(
                            "a promised case (class 2) gives the date promised as YYYY-MM-DD, not {promised:?}"
                        ))
                    })?;
                    if date < self.calendar.local_date(now) {
                        return Err(CaseError::Invalid(format!(
                            "the date promised, {date}, has passed"
                        )));
                    }
                    Some(self.calendar.due_on(date))
                }
                "3" => Some(self.calendar.due(now, d.missing_documents)),
                VERIFICATION => Some(self.calendar.due(now, d.verification)),
                _ => None,
            },
            Action::Approve => Some(self.calendar.due(now, d.escalated)),
            Action::Dispatch => {
                let fixed = before.is_some_and(|c| {
                    c.class == PROMISED || c.class == VERIFICATION || c.approved_at_micros.is_some()
                });
                let days = match mv.route {
                    1 => d.own_unit,
                    2 => d.one_department,
                    _ => d.several_departments,
                };
                (!fixed).then(|| self.calendar.due(now, days))
            }
            _ => None,
        };
        if let Some(due) = due {
            mv.due_micros = due.at_micros;
            mv.due_provisional = due.provisional;
            if due.provisional {
                tracing::warn!(
                    case = %mv.case_id,
                    "the deadline of case {} falls in a year with no calendar file: counted Monday to Friday; add the year's file to [cases] calendar",
                    mv.case_id
                );
            }
        }
        Ok(())
    }

    /// A dispatch to a department names one the directory's roles at that unit have.
    pub(crate) fn check_department(&self, mv: &CaseMove) -> Result<(), CaseError> {
        if mv.to_department.is_empty() {
            return Ok(());
        }
        let to: NodeCode = mv
            .to
            .parse()
            .map_err(|_| CaseError::Invalid(format!("{:?} is not a division code", mv.to)))?;
        let departments = self.directory.departments_at(&to);
        if departments.contains(&mv.to_department) {
            Ok(())
        } else {
            Err(CaseError::Invalid(format!(
                "no role of {to} is in a department {:?}: its departments are {}",
                mv.to_department,
                if departments.is_empty() {
                    "none yet (its administrator defines roles with `tierlink role define`)".into()
                } else {
                    departments.join(", ")
                }
            )))
        }
    }

    /// The case a kept chain leaves (kept chains were checked when they arrived).
    fn state(&self, chain_: &[SignedMove]) -> Result<Case, CaseError> {
        let mut case = None;
        for signed in chain_ {
            case = Some(apply(case.as_ref(), &chain::read(signed)?)?);
        }
        case.ok_or_else(|| CaseError::Invalid("an empty chain".into()))
    }

    /// A chain `caller` delivered: opened, checked move by move against the directory and the
    /// tier rules, and the moves new here kept and audited. A chain that does not extend the
    /// one kept here is refused.
    pub async fn receive(
        &self,
        caller: &Caller,
        delivery: CaseDelivery,
    ) -> Result<DeliveryReceipt, CasesError> {
        let result = self.check_delivery(caller, &delivery);
        let (entry_records, outcome, reason, receipt, principal) = match &result {
            Ok((receipt, principal)) => (
                receipt.added,
                Outcome::Served,
                String::new(),
                Some(*receipt),
                principal.clone(),
            ),
            Err(e) => (0, Outcome::Refused, e.to_string(), None, String::new()),
        };
        if receipt.is_none_or(|r| r.added > 0) {
            let entry = AuditEntry {
                at_micros: now_micros(),
                side: Some(Side::Consumer),
                kind: "case".into(),
                request_id: delivery.case_id.clone(),
                producer: caller.node.to_string(),
                consumer: self.me.to_string(),
                principal,
                catalog: CASES_CATALOG.into(),
                outcome: Some(outcome),
                reason,
                records: entry_records,
                keys: vec![delivery.case_id.clone()],
                ..AuditEntry::default()
            };
            self.audit
                .append(entry)
                .await
                .map_err(|e| CasesError::Store(e.to_string()))?;
        }
        result.map(|(receipt, _)| receipt)
    }

    fn check_delivery(
        &self,
        caller: &Caller,
        delivery: &CaseDelivery,
    ) -> Result<(DeliveryReceipt, String), CasesError> {
        if delivery.sender != caller.node.as_str() {
            return Err(CaseError::Forged(format!(
                "{} delivered a chain it says {} sent: a unit delivers its own moves",
                caller.node, delivery.sender
            ))
            .into());
        }
        let delivered = chain::open_delivery(&self.me, &self.keys, delivery)?;
        let case = chain::check(self.directory.as_ref(), &delivered)?;
        if !case.parties.contains(&self.me) {
            return Err(CaseError::Refused(format!(
                "{} is not party to case {}: a chain is delivered to the units its moves name",
                self.me, case.id
            ))
            .into());
        }
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.store.chain(&case.id)?;
        let common = held.len().min(delivered.len());
        if held[..common] != delivered[..common] {
            return Err(CaseError::Forged(format!(
                "the chain of case {} from {} differs from the one kept here at move {}: two units moved the case at once, or one forged a move",
                case.id,
                caller.node,
                held.iter()
                    .zip(&delivered)
                    .position(|(a, b)| a != b)
                    .unwrap_or(common)
            ))
            .into());
        }
        let new = &delivered[common..];
        let now = now_micros();
        for signed in new {
            let mv = chain::read(signed)?;
            if mv.at_micros > now + MAX_SKEW_MICROS {
                return Err(CaseError::Refused(format!(
                    "move {} of case {} is dated more than five minutes after this node's clock: check {}'s clock",
                    mv.sequence, case.id, caller.node
                ))
                .into());
            }
        }
        let principal = new
            .last()
            .and_then(|m| chain::read(m).ok())
            .map(|m| m.principal)
            .unwrap_or_default();
        if !new.is_empty() {
            self.store
                .append(&case.id, held.len() as u64, new, &[], None)?;
        }
        Ok((
            DeliveryReceipt {
                held: held.len().max(delivered.len()) as u64,
                added: new.len() as u64,
            },
            principal,
        ))
    }

    /// One case with its chain.
    pub fn view(&self, case_id: &str) -> Result<CaseView, CasesError> {
        let moves = self.store.chain(case_id)?;
        if moves.is_empty() {
            return Err(CasesError::NotFound(case_id.to_owned()));
        }
        let case = self.state(&moves)?;
        Ok(CaseView {
            summary: Some(self.summary(&case, now_micros())),
            moves,
            undelivered: self
                .store
                .undelivered(case_id)?
                .into_iter()
                .map(|n| n.to_string())
                .collect(),
        })
    }

    /// Every case kept, as its chain leaves it.
    fn cases(&self) -> Result<Vec<Case>, CasesError> {
        self.store
            .chains()?
            .iter()
            .map(|(_, c)| self.state(c).map_err(CasesError::from))
            .collect()
    }

    /// The cases kept here, newest first: only those this node acts on next (`mine`), only
    /// those overdue, at most `limit` (0: all).
    pub fn list(&self, request: &ListCasesRequest) -> Result<Vec<CaseSummary>, CasesError> {
        let now = at_or_now(request.at_micros);
        let mut cases: Vec<CaseSummary> = self
            .cases()?
            .iter()
            .filter(|c| !request.mine || c.next() == &self.me && !c.status.is_closed())
            .map(|c| self.summary(c, now))
            .filter(|s| !request.overdue || s.overdue)
            .collect();
        cases.sort_by_key(|c| std::cmp::Reverse(c.raised_at_micros));
        cases.truncate(if request.limit > 0 {
            request.limit as usize
        } else {
            DEFAULT_LIST
        });
        Ok(cases)
    }

    /// A case as lists and views show it at `now`.
    fn summary(&self, c: &Case, now: i64) -> CaseSummary {
        let remaining = c.due_micros.filter(|_| !c.status.is_closed()).map(|at| {
            self.calendar.remaining(
                now,
                &Due {
                    at_micros: at,
                    date: self.calendar.local_date(at - 1),
                    provisional: c.due_provisional,
                },
            )
        });
        CaseSummary {
            case_id: c.id.clone(),
            raised_by: c.raised_by.to_string(),
            raised_at_micros: c.raised_at_micros,
            channel: c.channel.clone(),
            class: c.class.clone(),
            grid: c.grid.clone(),
            subject: c.subject.clone(),
            status: c.status.as_str().into(),
            next: c.next().to_string(),
            next_department: c.next_department().into(),
            supervisor: c
                .supervisor
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            due_micros: c.due_micros.unwrap_or_default(),
            due_provisional: c.due_provisional,
            working_days_left: remaining.as_ref().map_or(0, |r| r.working_days),
            overdue: c.late(now) == Some(true) && !c.status.is_closed()
                || remaining.as_ref().is_some_and(|r| r.overdue),
            result: c.result.clone(),
            reopened: c.reopened,
            rating: c.rating.unwrap_or_default(),
            moves: c.moves,
            records: c.records.clone(),
            crosscheck: c.crosscheck.clone(),
        }
    }

    /// Supervision figures from the chains kept here, every move's signature checked again
    /// against the directory, so the tier above recomputes its units' figures from the moves it
    /// received and compares them with theirs.
    pub fn figures(&self, request: &FiguresRequest) -> Result<FiguresResponse, CasesError> {
        let by: Vec<Dimension> = if request.by.is_empty() {
            vec![Dimension::Unit]
        } else {
            request
                .by
                .iter()
                .map(|d| d.parse())
                .collect::<Result<_, _>>()?
        };
        let day = |s: &str, what: &str| -> Result<Option<NaiveDate>, CaseError> {
            if s.is_empty() {
                return Ok(None);
            }
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| {
                    CaseError::Invalid(format!("--{what} is a day, YYYY-MM-DD, not {s:?}"))
                })
        };
        let (from, to) = (day(&request.from, "from")?, day(&request.to, "to")?);
        let unit: Option<NodeCode> = if request.unit.is_empty() {
            None
        } else {
            Some(request.unit.parse().map_err(|_| {
                CaseError::Invalid(format!("--unit {:?} is not a division code", request.unit))
            })?)
        };
        let mut cases = Vec::new();
        let mut moves_checked = 0;
        for (_, moves) in self.store.chains()? {
            let case = chain::check(self.directory.as_ref(), &moves)?;
            let raised = self.calendar.local_date(case.raised_at_micros);
            if from.is_some_and(|f| raised < f)
                || to.is_some_and(|t| raised > t)
                || unit.as_ref().is_some_and(|u| *u != case.raised_by)
            {
                continue;
            }
            moves_checked += moves.len() as u64;
            cases.push(case);
        }
        let rows = tierlink_core::cases::figures(
            &cases,
            &by,
            &self.calendar.zone(),
            at_or_now(request.at_micros),
        );
        Ok(FiguresResponse {
            by: request.by.clone(),
            cases: cases.len() as u64,
            moves_checked,
            rows: rows
                .into_iter()
                .map(|r| FiguresRow {
                    on_time_rate: r.on_time_rate(),
                    closure_rate: r.closure_rate(),
                    group: r.group,
                    received: r.received,
                    on_time: r.on_time,
                    overdue: r.overdue,
                    closed: r.closed,
                    reopened: r.reopened,
                })
                .collect(),
        })
    }

    /// The cases this node must act on that are past their deadline: each warned of once, and
    /// with `overdue = "escalate"`, an open one escalated to the parent unit by the node itself.
    async fn look_for_overdue(&self) -> Result<(), CasesError> {
        let now = now_micros();
        for case in self.cases()? {
            if case.next() != &self.me || case.status.is_closed() || case.late(now) != Some(true) {
                continue;
            }
            let escalate = self.settings.overdue == OverdueAction::Escalate
                && case.status == Status::Open
                && tierlink_core::cases::parent_of(&self.me).is_some();
            if escalate {
                let parent = tierlink_core::cases::parent_of(&self.me).expect("checked");
                let mv = CaseMove {
                    case_id: case.id.clone(),
                    action: Action::Escalate.as_str().into(),
                    to: parent.to_string(),
                    note: "escalated by the node: its deadline passed".into(),
                    ..CaseMove::default()
                };
                self.make(mv, String::new(), String::new(), String::new(), "")
                    .await?;
                tracing::warn!(case = %case.id, "case {} is overdue: escalated to {parent}", case.id);
            } else if self
                .warned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(case.id.clone())
            {
                tracing::warn!(
                    case = %case.id,
                    "case {} is overdue: {} and waiting on this node since its deadline passed",
                    case.id,
                    case.status.as_str()
                );
            }
        }
        Ok(())
    }
}
