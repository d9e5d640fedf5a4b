//! Explain: what a read of a catalog would be decided as for the caller's principal, in the role
//! and for the purpose it would read in — each item's action and the rule behind it, what the
//! items sent reveal taken together, and why a read would be refused — without reading a record.
//! The directory's `Explain`, called in process.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tierlink_proto::v1::ExplainRequest;
use tierlink_proto::v1::directory_server::Directory;
use utoipa::{IntoParams, ToSchema};

use super::auth::Bearer;
use super::problem::{Problem, ProblemDocument};
use super::records::{ManifestLine, catalog_code};
use super::{Services, State};
use crate::read::check_credential;

/// Whose catalog, and on which day.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainParams {
    /// The catalog's producer (a division code); default this node.
    pub target: Option<String>,
    /// The day to decide for, `YYYY-MM-DD`; default today (UTC).
    pub on: Option<String>,
}

/// How a read would be decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// The producer.
    pub producer: String,
    /// The day decided for.
    pub on: String,
    /// The principal, `NAME@UNIT`.
    pub principal: String,
    /// The role.
    pub role: String,
    /// The purpose.
    pub purpose: String,
    /// Why the read would be refused as a whole; absent when it would be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The grant it would be decided under.
    pub grant: String,
    /// The rows it would get, `ITEM:PREFIX`; absent for every row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// Whether keys would travel in clear; otherwise hashed.
    pub keys_in_clear: bool,
    /// Each item's action and rule, in catalog order.
    pub items: Vec<ManifestLine>,
    /// What each item reveals, everything sent taken together, in the order of `items`.
    pub reveals: Vec<String>,
}

fn given(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Explain how a read of a catalog would be decided for the caller's principal.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{prefix}/{number}/explain",
    tag = "explain",
    params(
        ("prefix" = String, Path, description = "The resource code before the slash."),
        ("number" = String, Path, description = "The resource code after the slash."),
        ExplainParams,
        ("Tierlink-Role" = Option<String>, Header, description = "The role the principal would act in; needed when it holds several."),
        ("Tierlink-Purpose" = String, Header, description = "The purpose it would state (UTF-8, percent-encoded)."),
    ),
    responses(
        (status = 200, description = "The decision, item by item.", body = Explanation),
        (status = 400, description = "A bad parameter, a missing purpose, or a role to choose.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "An administrator's token, which acts for no principal, or a role the principal does not hold.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The producer has no such catalog (or has not published it).", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn explain(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path(code): Path<(String, String)>,
    params: Result<Query<ExplainParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Explanation>, Problem> {
    let Query(params) = params?;
    let credential = bearer.credential(&state, &headers, None)?;
    check_credential(&credential)?;
    bearer.holds(&state, &credential.role)?;
    let principal = format!("{}@{}", credential.principal, state.me());
    let request = ExplainRequest {
        principal: principal.clone(),
        role: credential.role.clone(),
        purpose: credential.purpose.clone(),
        catalog: catalog_code(&code),
        producer: params.target.unwrap_or_default(),
        on: params.on.unwrap_or_default(),
    };
    let e = state
        .directory
        .explain(Services::request(state.as_node(), request))
        .await?
        .into_inner();
    Ok(Json(Explanation {
        producer: e.producer,
        on: e.on,
        principal,
        role: credential.role,
        purpose: credential.purpose,
        refusal: given(e.refusal),
        grant: e.grant,
        rows: given(e.rows),
        keys_in_clear: e.keys_in_clear,
        items: e.items.iter().map(ManifestLine::from).collect(),
        reveals: e.reveals,
    }))
}
