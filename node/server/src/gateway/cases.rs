//! Cases for systems that speak HTTP: a call centre's or a service hall's system raises and
//! moves cases as one of the node's principals (a `write` token, with `Tierlink-Role` when it
//! holds several roles), and lists, shows and counts them. The node's cases ([`crate::cases`]),
//! called in process, as `tierlink case` calls them over gRPC.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State as Shared};
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tierlink_core::cases::chain;
use tierlink_core::identity::tokens::Scope;
use tierlink_proto::v1::{
    CaseMove, CaseSummary, CaseView, Credential, FiguresRequest, ListCasesRequest, RecordRef,
};
use utoipa::{IntoParams, ToSchema};

use super::State;
use super::auth::Bearer;
use super::problem::{Kind, Problem, ProblemDocument};
use crate::cases::CasesError;

impl From<CasesError> for Problem {
    fn from(e: CasesError) -> Self {
        tonic::Status::from(e).into()
    }
}

/// A record a case concerns.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordJson {
    /// The node holding it.
    pub node: String,
    /// Its catalog's resource code.
    pub catalog: String,
    /// Its key.
    pub key: String,
}

/// A new case, as it arrived.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// Intake channel: 1 service hall, 2 call centre, 3 mailbox/hotline/web, 4 information
    /// officers' visits, 5 representatives' liaison stations.
    pub channel: String,
    /// Class: 1 immediate, 2 promised, 3 missing documents, 4 escalated, 5 referred.
    pub class: String,
    /// Grid cell code.
    #[serde(default)]
    pub grid: String,
    /// What the resident asks.
    pub subject: String,
    /// For class 2, the date promised, YYYY-MM-DD.
    #[serde(default)]
    pub promised: String,
    /// The records it concerns.
    #[serde(default)]
    pub records: Vec<RecordJson>,
}

/// A move on a case this node acts on next.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMove {
    /// escalate, approve, dispatch, report, verify, close, reopen or reply.
    pub action: String,
    /// dispatch: the handling unit (escalate: the parent, filled in when absent).
    #[serde(default)]
    pub to: String,
    /// dispatch: the handling department there.
    #[serde(default)]
    pub department: String,
    /// dispatch: 1 own unit, 2 one department, 3 several departments.
    #[serde(default)]
    pub route: u32,
    /// The result (report), why (reopen, a failed verify), the answer (reply).
    #[serde(default)]
    pub note: String,
    /// verify: the result holds.
    #[serde(default)]
    pub passed: bool,
    /// reply: 1 satisfied, 2 fairly satisfied, 3 dissatisfied.
    #[serde(default)]
    pub rating: u32,
}

/// A case as its chain leaves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseJson {
    /// `UNIT-YYYYMMDD-NNNNN`.
    pub case_id: String,
    /// The unit where it arrived.
    pub raised_by: String,
    /// When, RFC 3339.
    pub raised_at: String,
    /// Intake channel code.
    pub channel: String,
    /// Class code.
    pub class: String,
    /// Grid cell code.
    pub grid: String,
    /// Subject.
    pub subject: String,
    /// open, awaiting_approval, dispatched, reported, verified, closed or replied.
    pub status: String,
    /// The unit that acts next, and its department when dispatched to one.
    pub next: String,
    /// The department acting next.
    pub next_department: String,
    /// The unit that verifies and closes.
    pub supervisor: String,
    /// The deadline in force, RFC 3339; absent when none runs.
    pub due: Option<String>,
    /// Counted without the calendar of its year.
    pub due_provisional: bool,
    /// Working days left; negative when overdue.
    pub working_days_left: i64,
    /// Past its deadline with no result in time.
    pub overdue: bool,
    /// The last result reported.
    pub result: String,
    /// Times reopened.
    pub reopened: u32,
    /// The resident's rating, 0 until answered.
    pub rating: u32,
    /// Moves in its chain.
    pub moves: u64,
    /// The records it concerns.
    pub records: Vec<RecordJson>,
    /// The cross-check run a verification task comes from.
    pub crosscheck: String,
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

impl From<&RecordRef> for RecordJson {
    fn from(r: &RecordRef) -> Self {
        Self {
            node: r.node.clone(),
            catalog: r.catalog.clone(),
            key: r.key.clone(),
        }
    }
}

impl From<&CaseSummary> for CaseJson {
    fn from(c: &CaseSummary) -> Self {
        Self {
            case_id: c.case_id.clone(),
            raised_by: c.raised_by.clone(),
            raised_at: rfc3339(c.raised_at_micros),
            channel: c.channel.clone(),
            class: c.class.clone(),
            grid: c.grid.clone(),
            subject: c.subject.clone(),
            status: c.status.clone(),
            next: c.next.clone(),
            next_department: c.next_department.clone(),
            supervisor: c.supervisor.clone(),
            due: (c.due_micros != 0).then(|| rfc3339(c.due_micros)),
            due_provisional: c.due_provisional,
            working_days_left: c.working_days_left,
            overdue: c.overdue,
            result: c.result.clone(),
            reopened: c.reopened,
            rating: c.rating,
            moves: c.moves,
            records: c.records.iter().map(RecordJson::from).collect(),
            crosscheck: c.crosscheck.clone(),
        }
    }
}

/// One signed move: what it says, and the signed bytes to check it with the signer's key.
#[derive(Debug, Serialize, ToSchema)]
pub struct MoveJson {
    /// Its place in the chain, from 0.
    pub sequence: u64,
    /// The unit that made and signed it.
    pub node: String,
    /// The principal, `NAME@UNIT`; empty for the node itself.
    pub principal: String,
    /// The role acted in.
    pub role: String,
    /// When, RFC 3339.
    pub at: String,
    /// The action.
    pub action: String,
    /// The unit it went to, and the department.
    pub to: String,
    /// The department it went to.
    pub to_department: String,
    /// The note.
    pub note: String,
    /// The encoded `tierlink.v1.CaseMove`, base64.
    pub signed_move: String,
    /// Ed25519 over `tierlink.v1.CaseMove\0` and the move's bytes, base64.
    pub signature: String,
}

/// A case and its chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseChain {
    /// The case.
    pub case: CaseJson,
    /// Its moves, raising first.
    pub moves: Vec<MoveJson>,
    /// Units the chain has not reached yet.
    pub undelivered: Vec<String>,
}

impl TryFrom<&CaseView> for CaseChain {
    type Error = Problem;
    fn try_from(view: &CaseView) -> Result<Self, Problem> {
        let summary = view
            .summary
            .as_ref()
            .ok_or_else(|| Problem::new(Kind::Internal, "a case without a summary"))?;
        let moves = view
            .moves
            .iter()
            .map(|signed| {
                let m =
                    chain::read(signed).map_err(|e| Problem::new(Kind::Internal, e.to_string()))?;
                Ok(MoveJson {
                    sequence: m.sequence,
                    node: m.node,
                    principal: m.principal,
                    role: m.role,
                    at: rfc3339(m.at_micros),
                    action: m.action,
                    to: m.to,
                    to_department: m.to_department,
                    note: m.note,
                    signed_move: STANDARD.encode(&signed.r#move),
                    signature: STANDARD.encode(&signed.signature),
                })
            })
            .collect::<Result<_, Problem>>()?;
        Ok(Self {
            case: summary.into(),
            moves,
            undelivered: view.undelivered.clone(),
        })
    }
}

/// The principal acting, from a `write` token.
fn actor(bearer: &Bearer, state: &State, headers: &HeaderMap) -> Result<Credential, Problem> {
    bearer.permits(Scope::Write)?;
    Ok(Credential {
        principal: bearer.reader()?.to_owned(),
        token: bearer.token().to_owned(),
        role: bearer.role(state, headers)?,
        ..Credential::default()
    })
}

/// Raise a case at this node.
#[utoipa::path(
    post,
    path = "/v1/cases",
    tag = "cases",
    request_body = NewCase,
    responses(
        (status = 200, description = "The case, raised and signed by this node.", body = CaseChain),
        (status = 400, description = "A bad parameter or field: the problem says which and what to give.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope, or its principal's role, does not allow it.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn raise(
    Shared(state): Shared<State>,
    bearer: Bearer,
    headers: HeaderMap,
    body: Result<Json<NewCase>, JsonRejection>,
) -> Result<Json<CaseChain>, Problem> {
    let credential = actor(&bearer, &state, &headers)?;
    let Json(new) = body.map_err(|e| Problem::new(Kind::InvalidArgument, e.body_text()))?;
    let mv = CaseMove {
        action: "raise".into(),
        channel: new.channel,
        class: new.class,
        grid: new.grid,
        subject: new.subject,
        records: new
            .records
            .into_iter()
            .map(|r| RecordRef {
                node: r.node,
                catalog: r.catalog,
                key: r.key,
            })
            .collect(),
        ..CaseMove::default()
    };
    let view = state.cases.act(&credential, mv, &new.promised).await?;
    Ok(Json((&view).try_into()?))
}

/// Move a case this node acts on next.
#[utoipa::path(
    post,
    path = "/v1/cases/{case_id}/moves",
    tag = "cases",
    params(("case_id" = String, Path, description = "The case, UNIT-YYYYMMDD-NNNNN.")),
    request_body = NewMove,
    responses(
        (status = 200, description = "The case after the move.", body = CaseChain),
        (status = 404, description = "No such case here.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The tier rules refuse the move: another unit acts next, or the case's state does not allow it.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 400, description = "A bad parameter or field: the problem says which and what to give.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope, or its principal's role, does not allow it.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn act(
    Shared(state): Shared<State>,
    bearer: Bearer,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    body: Result<Json<NewMove>, JsonRejection>,
) -> Result<Json<CaseChain>, Problem> {
    let credential = actor(&bearer, &state, &headers)?;
    let Json(m) = body.map_err(|e| Problem::new(Kind::InvalidArgument, e.body_text()))?;
    let to = if m.to.is_empty() && m.action == "escalate" {
        tierlink_core::cases::parent_of(state.me())
            .map(|p| p.to_string())
            .unwrap_or_default()
    } else {
        m.to
    };
    let mv = CaseMove {
        case_id,
        action: m.action,
        to,
        to_department: m.department,
        route: m.route,
        note: m.note,
        passed: m.passed,
        rating: m.rating,
        ..CaseMove::default()
    };
    let view = state.cases.act(&credential, mv, "").await?;
    Ok(Json((&view).try_into()?))
}

/// Which cases.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only those this node acts on next.
    pub mine: Option<bool>,
    /// Only those past their deadline.
    pub overdue: Option<bool>,
    /// At most this many (default all).
    pub limit: Option<u32>,
}

/// The cases this node keeps, newest first.
#[utoipa::path(
    get,
    path = "/v1/cases",
    tag = "cases",
    params(ListParams),
    responses(
        (status = 200, description = "The cases.", body = Vec<CaseJson>),
        (status = 400, description = "A bad parameter or field: the problem says which and what to give.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope, or its principal's role, does not allow it.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn list(
    Shared(state): Shared<State>,
    bearer: Bearer,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Vec<CaseJson>>, Problem> {
    bearer.permits(Scope::Read)?;
    let Query(p) = params?;
    let found = state.cases.list(&ListCasesRequest {
        mine: p.mine.unwrap_or(false),
        overdue: p.overdue.unwrap_or(false),
        limit: p.limit.unwrap_or(0),
        at_micros: 0,
    })?;
    Ok(Json(found.iter().map(CaseJson::from).collect()))
}

/// One case with its chain of signed moves.
#[utoipa::path(
    get,
    path = "/v1/cases/{case_id}",
    tag = "cases",
    params(("case_id" = String, Path, description = "The case, UNIT-YYYYMMDD-NNNNN.")),
    responses(
        (status = 200, description = "The case and its moves, each with its signed bytes.", body = CaseChain),
        (status = 404, description = "No such case here.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 400, description = "A bad parameter or field: the problem says which and what to give.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope, or its principal's role, does not allow it.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn show(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path(case_id): Path<String>,
) -> Result<Json<CaseChain>, Problem> {
    bearer.permits(Scope::Read)?;
    let view = state.cases.view(&case_id)?;
    Ok(Json((&view).try_into()?))
}

/// Which cases to count, and how to group them.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FiguresParams {
    /// Comma-separated: unit, tier, class, channel, period (default unit).
    pub by: Option<String>,
    /// Cases raised on or after this day, YYYY-MM-DD.
    pub from: Option<String>,
    /// Cases raised on or before this day, YYYY-MM-DD.
    pub to: Option<String>,
    /// Only cases raised by this unit.
    pub unit: Option<String>,
}

/// One group's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiguresJson {
    /// The group's values, in the order of `by`.
    pub group: Vec<String>,
    /// Cases received.
    pub received: u64,
    /// Results reported by their deadline.
    pub on_time: u64,
    /// Results after their deadline, or none and the deadline passed.
    pub overdue: u64,
    /// Closed.
    pub closed: u64,
    /// Reopened at least once.
    pub reopened: u64,
    /// on_time / (on_time + overdue).
    pub on_time_rate: f64,
    /// closed / received.
    pub closure_rate: f64,
}

/// Supervision figures from the chains this node keeps, each move's signature checked.
#[utoipa::path(
    get,
    path = "/v1/cases/figures",
    tag = "cases",
    params(FiguresParams),
    responses(
        (status = 200, description = "One row per group.", body = Vec<FiguresJson>),
        (status = 400, description = "A bad parameter or field: the problem says which and what to give.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope, or its principal's role, does not allow it.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn figures(
    Shared(state): Shared<State>,
    bearer: Bearer,
    params: Result<Query<FiguresParams>, QueryRejection>,
) -> Result<Json<Vec<FiguresJson>>, Problem> {
    bearer.permits(Scope::Read)?;
    let Query(p) = params?;
    let answer = state.cases.figures(&FiguresRequest {
        from: p.from.unwrap_or_default(),
        to: p.to.unwrap_or_default(),
        unit: p.unit.unwrap_or_default(),
        by: p
            .by
            .map(|b| b.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default(),
        at_micros: 0,
    })?;
    Ok(Json(
        answer
            .rows
            .into_iter()
            .map(|r| FiguresJson {
                group: r.group,
                received: r.received,
                on_time: r.on_time,
                overdue: r.overdue,
                closed: r.closed,
                reopened: r.reopened,
                on_time_rate: r.on_time_rate,
                closure_rate: r.closure_rate,
            })
            .collect(),
    ))
}
