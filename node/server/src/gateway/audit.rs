//! The node's audit log, for its administrator's `admin` tokens: the entries of every read this
//! node produced, relayed for its principals or refused, and of every write to its records,
//! newest last, as `tierlink audit` shows them.
//! The `tierlink.v1.Audit` service's `Entries`, called in process.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as Shared};
use serde::Deserialize;
use tierlink_core::identity::tokens::Scope;
use tierlink_core::read::parse_since;
use tierlink_proto::v1::AuditQuery;
use tierlink_proto::v1::audit_server::Audit;
use utoipa::IntoParams;

use super::auth::Bearer;
use super::problem::{Kind, Problem, ProblemDocument};
use super::{Services, State};

/// Which entries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this catalog's entries (its resource code).
    pub catalog: Option<String>,
    /// Only this principal's, `NAME@UNIT`.
    pub principal: Option<String>,
    /// Only entries that sent this item.
    pub item: Option<String>,
    /// Only entries that may concern this record key.
    pub key: Option<String>,
    /// Only entries at or after this time: RFC 3339, or a date for its midnight UTC.
    pub since: Option<String>,
    /// Only refusals.
    pub refused_only: Option<bool>,
    /// Most entries (default 1,000).
    pub limit: Option<u32>,
}

/// Read the node's audit log.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "The entries: sequence, prev (hash chain), at_micros, side, kind, request_id, producer, consumer, principal, role, purpose, catalog, grant, outcome, records, items by action, keys or bounds.", body = Vec<Object>),
        (status = 400, description = "A bad parameter.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token's scope is not admin.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn entries(
    Shared(state): Shared<State>,
    bearer: Bearer,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, Problem> {
    bearer.permits(Scope::Admin)?;
    let Query(p) = params?;
    let since_micros = p
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(|e| Problem::new(Kind::InvalidArgument, e))?
        .unwrap_or(0);
    let query = AuditQuery {
        catalog: p.catalog.unwrap_or_default(),
        principal: p.principal.unwrap_or_default(),
        item: p.item.unwrap_or_default(),
        key: p.key.unwrap_or_default(),
        since_micros,
        refused_only: p.refused_only.unwrap_or(false),
        limit: p.limit.unwrap_or(0),
    };
    let found = state
        .audit
        .entries(Services::request(state.as_node(), query))
        .await?
        .into_inner();
    found
        .entries_json
        .iter()
        .map(|e| serde_json::from_str(e).map_err(|e| Problem::new(Kind::Internal, e.to_string())))
        .collect::<Result<_, _>>()
        .map(Json)
}
