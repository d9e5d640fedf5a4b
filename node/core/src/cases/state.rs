//! A case's state and the tier rules each move must follow. The same function applies every
//! move at the unit that makes it and at every unit that receives it, so all parties agree on
//! the state, and a move the rules refuse is refused everywhere.
//!
//! In every state exactly one unit may act next:
//!
//! ```text
//! state              acts next        moves
//! open               the holder       escalate (to its parent), dispatch (to itself, below or beside)
//! awaiting_approval  the parent       approve
//! dispatched         the handler      report
//! reported           the supervisor   verify (passed: verified; failed: dispatched again)
//! verified           the supervisor   close
//! closed             the raising unit reply, reopen
//! replied            the raising unit reopen
//! ```
//!
//! The supervisor is the unit that dispatched the case: it verifies the result and only it
//! closes. Every unit a move names is party to the case and keeps its chain, and so does the
//! raising unit's parent, which supervises its units' figures. A reopened case is open again at its last supervisor (or, never dispatched, at the
//! raising unit).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use tierlink_proto::v1::{CaseMove, RecordRef};

use super::CaseError;
use super::chain::MAX_TEXT_CHARS;
use crate::identity::{NodeCode, Tier};

/// What a move does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Opens the case at the unit where it arrived.
    Raise,
    /// Sends the case up to the holder's parent unit (上报).
    Escalate,
    /// The parent takes an escalated case on; its deadline runs from here.
    Approve,
    /// Sends the case to the unit (and department) that handles it (派遣).
    Dispatch,
    /// The handler reports its result.
    Report,
    /// The supervisor checks the result (核查).
    Verify,
    /// The supervisor closes the case (结案).
    Close,
    /// The raising unit opens a closed case again.
    Reopen,
    /// The raising unit answers the resident, with the resident's rating (反馈).
    Reply,
}

impl Action {
    /// Every action, in the order of a case's life.
    pub const ALL: [Action; 9] = [
        Action::Raise,
        Action::Escalate,
        Action::Approve,
        Action::Dispatch,
        Action::Report,
        Action::Verify,
        Action::Close,
        Action::Reopen,
        Action::Reply,
    ];

    /// The name moves carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Raise => "raise",
            Action::Escalate => "escalate",
            Action::Approve => "approve",
            Action::Dispatch => "dispatch",
            Action::Report => "report",
            Action::Verify => "verify",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Reply => "reply",
        }
    }
}

impl FromStr for Action {
    type Err = CaseError;
    fn from_str(s: &str) -> Result<Self, CaseError> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                CaseError::Invalid(format!(
                    "{s:?} is not a case action: use one of raise, escalate, approve, dispatch, report, verify, close, reopen, reply"
                ))
            })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// At its holder, to be escalated or dispatched.
    Open,
    /// Escalated, waiting for the parent's approval.
    AwaitingApproval,
    /// At its handler, to be reported on.
    Dispatched,
    /// Result reported, to be verified.
    Reported,
    /// Result verified, to be closed.
    Verified,
    /// Closed, to be answered to the resident.
    Closed,
    /// Answered.
    Replied,
}

impl Status {
    /// The name lists and figures use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Dispatched => "dispatched",
            Status::Reported => "reported",
            Status::Verified => "verified",
            Status::Closed => "closed",
            Status::Replied => "replied",
        }
    }

    /// Closed or answered: no deadline runs.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Closed | Status::Replied)
    }
}

/// The intake channels of the people's-requests pipeline, as the residents' cases catalog codes
/// them (`1`–`5`).
pub const CHANNELS: [&str; 5] = ["1", "2", "3", "4", "5"];

/// Case classes as the residents' cases catalog codes them: `1` immediate (即办件), `2` promised
/// (承诺件), `3` missing documents (补办件), `4` escalated (上报件), `5` referred (建议件), and `6` a
/// cross-check's verification task (核查件).
pub const CLASSES: [&str; 6] = ["1", "2", "3", "4", "5", "6"];

/// The class of a promised case, whose deadline is the date promised.
pub const PROMISED: &str = "2";

/// The class of a cross-check's verification task.
pub const VERIFICATION: &str = "6";

/// A case as its chain of moves leaves it.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `UNIT-YYYYMMDD-NNNNN`.
    pub id: String,
    /// The unit where it arrived.
    pub raised_by: NodeCode,
    /// When, µs since the Unix epoch.
    pub raised_at_micros: i64,
    /// Intake channel code.
    pub channel: String,
    /// Class code.
    pub class: String,
    /// Grid cell code.
    pub grid: String,
    /// What the resident asks.
    pub subject: String,
    /// The records it concerns.
    pub records: Vec<RecordRef>,
    /// The cross-check run a verification task comes from; empty otherwise.
    pub crosscheck: String,
    /// Where it stands.
    pub status: Status,
    /// The unit it is at while open or awaiting approval.
    pub holder: NodeCode,
    /// The unit and department handling it, once dispatched.
    pub handler: Option<(NodeCode, String)>,
    /// The unit that dispatched it, verifies and closes.
    pub supervisor: Option<NodeCode>,
    /// The deadline in force, µs since the Unix epoch, and whether it is provisional.
    pub due_micros: Option<i64>,
    /// Whether the deadline was counted without the calendar of its year.
    pub due_provisional: bool,
    /// When the last move was made: a move is not dated before the one it follows.
    pub last_at_micros: i64,
    /// The principal who reported the last result, and its department: neither verifies it.
    pub reported_by: (String, String),
    /// When the upper tier approved an escalation: its deadline then runs from there.
    pub approved_at_micros: Option<i64>,
    /// When the last result was reported; cleared when a verification fails or it reopens.
    pub reported_at_micros: Option<i64>,
    /// The last result reported.
    pub result: String,
    /// When it was last closed.
    pub closed_at_micros: Option<i64>,
    /// Times reopened.
    pub reopened: u32,
    /// The resident's rating (1–3), once answered.
    pub rating: Option<u32>,
    /// Every unit that made or was sent a move: each keeps the chain.
    pub parties: BTreeSet<NodeCode>,
    /// Moves in the chain.
    pub moves: u64,
}

impl Case {
    /// The unit that must act next.
    pub fn next(&self) -> &NodeCode {
        match self.status {
            Status::Open | Status::AwaitingApproval => &self.holder,
            Status::Dispatched => self.handler.as_ref().map_or(&self.holder, |(n, _)| n),
            Status::Reported | Status::Verified => self.supervisor.as_ref().unwrap_or(&self.holder),
            Status::Closed | Status::Replied => &self.raised_by,
        }
    }

    /// The department that must act next, when the case is dispatched to one.
    pub fn next_department(&self) -> &str {
        match (&self.status, &self.handler) {
            (Status::Dispatched, Some((_, department))) => department,
            _ => "",
        }
    }

    /// Whether the deadline passed at `now_micros` with no result reported, or the result came
    /// after it. `None` when no deadline runs.
    pub fn late(&self, now_micros: i64) -> Option<bool> {
        let due = self.due_micros?;
        match self.reported_at_micros {
            Some(at) => Some(at > due),
            None if self.status.is_closed() => self.closed_at_micros.map(|at| at > due),
            None => Some(now_micros > due),
        }
    }
}

/// The parent of `unit` in the tiers, from its code: a street's district, a district's city.
pub fn parent_of(unit: &NodeCode) -> Option<NodeCode> {
    let code = unit.as_str();
    let parent = match tier_of(unit) {
        Tier::City => return None,
        Tier::District => format!("{}00", &code[..4]),
        Tier::Street => code[..6].to_owned(),
    };
    parent.parse().ok()
}

/// The tier of `unit`, from its code (GB/T 2260: 6 digits ending 00 for a city, 6 for a
/// district, 9 for a street office).
pub fn tier_of(unit: &NodeCode) -> Tier {
    let code = unit.as_str();
    if code.len() == 9 {
        Tier::Street
    } else if code.ends_with("00") {
        Tier::City
    } else {
        Tier::District
    }
}

fn refused(why: String) -> CaseError {
    CaseError::Refused(why)
}

fn unit(code: &str, what: &str) -> Result<NodeCode, CaseError> {
    code.parse()
        .map_err(|_| CaseError::Invalid(format!("the {what} {code:?} is not a division code")))
}

/// The day a case id names, and the unit, checked against the raising unit.
fn check_id(id: &str, raiser: &NodeCode, at_micros: i64) -> Result<(), CaseError> {
    let bad = || {
        CaseError::Invalid(format!(
            "case id {id:?} is not UNIT-YYYYMMDD-NNNNN with the raising unit's code ({raiser})"
        ))
    };
    let mut parts = id.split('-');
    let (Some(u), Some(day), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if u != raiser.as_str() || !digits(day, 8) || !digits(n, 5) {
        return Err(bad());
    }
    // The day is the raising unit's local day: within a day of the raising's UTC date.
    let named = chrono::NaiveDate::parse_from_str(day, "%Y%m%d").map_err(|_| bad())?;
    let raised = chrono::DateTime::from_timestamp_micros(at_micros)
        .map(|t| t.date_naive())
        .ok_or_else(bad)?;
    if (named - raised).num_days().abs() > 1 {
        return Err(CaseError::Invalid(format!(
            "case id {id:?} names {named}, but the case was raised on {raised}"
        )));
    }
    Ok(())
}

/// The most records a case names.
pub const MAX_RECORDS: usize = 100;

/// The most characters of a short field (grid code, department, role, principal, a record's
/// node, catalog or key, a cross-check reference).
const MAX_FIELD_CHARS: usize = 256;

/// The longest a deadline may run from the move that sets it: a year and a month.
const MAX_DUE_MICROS: i64 = 400 * 86_400_000_000;

/// Checks the sizes and dates a move carries, whoever made it: a chain delivered by another unit
/// is held to what this node's own principals are.
fn check_bounds(mv: &CaseMove) -> Result<(), CaseError> {
    let long = |what: &str, text: &str, max: usize| {
        if text.chars().count() > max {
            Err(CaseError::Invalid(format!(
                "the {what} of move {} is longer than {max} characters: shorten it, or refer to a document",
                mv.sequence
            )))
        } else {
            Ok(())
        }
    };
    long("note", &mv.note, MAX_TEXT_CHARS)?;
    long("subject", &mv.subject, MAX_TEXT_CHARS)?;
    for (what, text) in [
        ("grid code", &mv.grid),
        ("department", &mv.department),
        ("handling department", &mv.to_department),
        ("role", &mv.role),
        ("principal", &mv.principal),
        ("cross-check reference", &mv.crosscheck),
    ] {
        long(what, text, MAX_FIELD_CHARS)?;
    }
    if mv.records.len() > MAX_RECORDS {
        return Err(CaseError::Invalid(format!(
            "a case names at most {MAX_RECORDS} records, and this one {}: name the rest in a document",
            mv.records.len()
        )));
    }
    for r in &mv.records {
        for text in [&r.node, &r.catalog, &r.key] {
            long("record reference", text, MAX_FIELD_CHARS)?;
        }
    }
    if mv.due_micros != 0
        && (mv.due_micros < mv.at_micros || mv.due_micros > mv.at_micros + MAX_DUE_MICROS)
    {
        return Err(CaseError::Invalid(format!(
            "move {} sets a deadline before it was made or more than 400 days after",
            mv.sequence
        )));
    }
    Ok(())
}

/// Applies `mv`, signed by `mv.node`, to `case` (`None` for the raising): the case as it then
/// stands, or why the rules refuse the move. Deterministic: it reads nothing but its arguments.
pub fn apply(case: Option<&Case>, mv: &CaseMove) -> Result<Case, CaseError> {
    let action: Action = mv.action.parse()?;
    check_bounds(mv)?;
    let signer = unit(&mv.node, "signing unit")?;
    if !mv.role.is_empty() && !mv.role.starts_with(&format!("{signer}/")) {
        return Err(refused(format!(
            "the role {} is not one of {signer}'s roles: a unit's principals act in its own roles",
            mv.role
        )));
    }
    let Some(case) = case else {
        return raise(mv, action, signer);
    };
    if mv.case_id != case.id {
        return Err(CaseError::Invalid(format!(
            "the move is for case {}, not {}",
            mv.case_id, case.id
        )));
    }
    if mv.sequence != case.moves {
        return Err(refused(format!(
            "move {} of case {} does not follow its {} moves",
            mv.sequence, case.id, case.moves
        )));
    }
    if action == Action::Raise {
        return Err(refused(format!("case {} is already raised", case.id)));
    }
    if mv.at_micros < case.last_at_micros {
        return Err(refused(format!(
            "move {} of case {} is dated before the move it follows",
            mv.sequence, case.id
        )));
    }
    let next = case.next().clone();
    if signer != next {
        return Err(refused(format!(
            "case {} is {} and {next} acts next, not {signer}",
            case.id,
            case.status.as_str()
        )));
    }
    let allowed: &[Action] = match case.status {
        Status::Open => &[Action::Escalate, Action::Dispatch],
        Status::AwaitingApproval => &[Action::Approve],
        Status::Dispatched => &[Action::Report],
        Status::Reported => &[Action::Verify],
        Status::Verified => &[Action::Close],
        Status::Closed => &[Action::Reply, Action::Reopen],
        Status::Replied => &[Action::Reopen],
    };
    if !allowed.contains(&action) {
        let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
        return Err(refused(format!(
            "case {} is {}: {signer} may {} it, not {action} it",
            case.id,
            case.status.as_str(),
            names.join(" or ")
        )));
    }
    let mut next = case.clone();
    next.moves += 1;
    next.last_at_micros = mv.at_micros;
    if mv.due_micros != 0 {
        next.due_micros = Some(mv.due_micros);
        next.due_provisional = mv.due_provisional;
    }
    match action {
        Action::Escalate => {
            let parent = parent_of(&signer).ok_or_else(|| {
                refused(format!(
                    "{signer} is the city: it has no upper tier to escalate to"
                ))
            })?;
            let to = unit(&mv.to, "unit escalated to")?;
            if to != parent {
                return Err(refused(format!(
                    "{signer} escalates to its parent {parent}, not to {to}"
                )));
            }
            next.status = Status::AwaitingApproval;
            next.holder = to.clone();
            next.parties.insert(to);
        }
        Action::Approve => {
            next.status = Status::Open;
            next.approved_at_micros = Some(mv.at_micros);
        }
        Action::Dispatch => {
            let to = unit(&mv.to, "handling unit")?;
            let across = parent_of(&to).is_some() && parent_of(&to) == parent_of(&signer);
            if to != signer && !signer.is_ancestor_of(&to) && !across {
                return Err(refused(format!(
                    "{signer} dispatches to itself, to a unit below it, or to a unit beside it under the same parent; {to} is none of these"
                )));
            }
            if !(1..=3).contains(&mv.route) {
                return Err(CaseError::Invalid(
                    "a dispatch names its route: 1 the unit itself, 2 one department, 3 several departments".into(),
                ));
            }
            next.status = Status::Dispatched;
            next.handler = Some((to.clone(), mv.to_department.clone()));
            next.supervisor = Some(signer.clone());
            next.reported_at_micros = None;
            next.parties.insert(to);
        }
        Action::Report => {
            if mv.note.trim().is_empty() {
                return Err(CaseError::Invalid(
                    "a report states the result: give it as the note".into(),
                ));
            }
            if let Some((_, department)) = &case.handler
                && !department.is_empty()
                && mv.department != *department
            {
                return Err(refused(format!(
                    "case {} is dispatched to {department} of {signer}: a principal of that department reports on it, not one of {:?}",
                    case.id, mv.department
                )));
            }
            next.status = Status::Reported;
            next.result = mv.note.clone();
            next.reported_at_micros = Some(mv.at_micros);
            next.reported_by = (mv.principal.clone(), mv.department.clone());
        }
        Action::Verify => {
            let (reporter, department) = &case.reported_by;
            let same_principal = !reporter.is_empty() && *reporter == mv.principal;
            let same_department = case
                .handler
                .as_ref()
                .is_some_and(|(unit, _)| *unit == signer)
                && !department.is_empty()
                && *department == mv.department;
            if same_principal || same_department {
                return Err(refused(format!(
                    "case {}'s result was reported by {reporter} of {department}: another department verifies it",
                    case.id
                )));
            }
            if mv.passed {
                next.status = Status::Verified;
            } else {
                if mv.note.trim().is_empty() {
                    return Err(CaseError::Invalid(
                        "a failed verification says why: give it as the note".into(),
                    ));
                }
                next.status = Status::Dispatched;
                next.reported_at_micros = None;
            }
        }
        Action::Close => {
            next.status = Status::Closed;
            next.closed_at_micros = Some(mv.at_micros);
        }
        Action::Reply => {
            if !(1..=3).contains(&mv.rating) {
                return Err(CaseError::Invalid(
                    "a reply carries the resident's rating: 1 satisfied, 2 fairly satisfied, 3 dissatisfied".into(),
                ));
            }
            next.status = Status::Replied;
            next.rating = Some(mv.rating);
        }
        Action::Reopen => {
            if mv.note.trim().is_empty() {
                return Err(CaseError::Invalid(
                    "a reopened case says why: give it as the note".into(),
                ));
            }
            next.status = Status::Open;
            next.holder = case
                .supervisor
                .clone()
                .unwrap_or_else(|| case.raised_by.clone());
            next.handler = None;
            next.reported_at_micros = None;
            next.closed_at_micros = None;
            next.rating = None;
            next.reopened += 1;
        }
        Action::Raise => unreachable!("refused above"),
    }
    Ok(next)
}

fn raise(mv: &CaseMove, action: Action, signer: NodeCode) -> Result<Case, CaseError> {
    if action != Action::Raise || mv.sequence != 0 || !mv.previous.is_empty() {
        return Err(refused(format!(
            "case {} has no raising: its chain must start with one",
            mv.case_id
        )));
    }
    check_id(&mv.case_id, &signer, mv.at_micros)?;
    let parent = parent_of(&signer);
    if !CHANNELS.contains(&mv.channel.as_str()) {
        return Err(CaseError::Invalid(format!(
            "channel {:?} is not an intake channel: 1 service hall, 2 call centre, 3 mailbox/hotline/web, 4 information officers' visits, 5 representatives' liaison stations",
            mv.channel
        )));
    }
    if !CLASSES.contains(&mv.class.as_str()) {
        return Err(CaseError::Invalid(format!(
            "class {:?} is not a case class: 1 immediate, 2 promised, 3 missing documents, 4 escalated, 5 referred, 6 verification",
            mv.class
        )));
    }
    if mv.subject.trim().is_empty() {
        return Err(CaseError::Invalid(
            "a case states its subject: what the resident asks".into(),
        ));
    }
    Ok(Case {
        id: mv.case_id.clone(),
        raised_by: signer.clone(),
        raised_at_micros: mv.at_micros,
        channel: mv.channel.clone(),
        class: mv.class.clone(),
        grid: mv.grid.clone(),
        subject: mv.subject.clone(),
        records: mv.records.clone(),
        crosscheck: mv.crosscheck.clone(),
        status: Status::Open,
        holder: signer.clone(),
        handler: None,
        supervisor: None,
        due_micros: (mv.due_micros != 0).then_some(mv.due_micros),
        due_provisional: mv.due_provisional,
        approved_at_micros: None,
        last_at_micros: mv.at_micros,
        reported_by: (String::new(), String::new()),
        reported_at_micros: None,
        result: String::new(),
        closed_at_micros: None,
        reopened: 0,
        rating: None,
        // The tier above supervises what its units raise: it keeps their chains too.
        parties: BTreeSet::from_iter([signer].into_iter().chain(parent)),
        moves: 1,
    })
}
