//! Catalogs: this node's (or, relayed, another node's) list and entries, and the directory's
//! search of every catalog published in the federation. The administrator's `admin` token sees
//! this node's catalogs whole, and a `write` token the catalogs it writes (it writes every item);
//! otherwise a token sees what other nodes see: the shared view, without the items that are not
//! shared.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Shared};
use serde::{Deserialize, Serialize};
use tierlink_core::identity::tokens::Scope;
use tierlink_proto::v1::directory_server::Directory;
use tierlink_proto::v1::exchange_server::Exchange;
use tierlink_proto::v1::{CatalogsRequest, GetCatalogRequest, ListCatalogsRequest};
use utoipa::{IntoParams, ToSchema};

use super::auth::Bearer;
use super::problem::{Kind, Problem, ProblemDocument};
use super::records::catalog_code;
use super::{Services, State};
use crate::admission::Caller;

/// One catalog as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogSummary {
    /// Resource code, `PREFIX/NNNNNN`.
    pub code: String,
    /// Its name.
    pub name: String,
    /// The providing department's name.
    pub provider_name: String,
    /// The providing department's code.
    pub provider_code: String,
    /// `base`, `theme` or `department`.
    pub kind: String,
    /// `unconditional`, `conditional` or `not_shared`.
    pub sharing_type: String,
    /// How often it is updated.
    pub update_cycle: String,
    /// Items visible to the caller.
    pub item_count: u32,
    /// Current records the node holds (0 in the directory's search).
    pub record_count: u64,
}

impl From<tierlink_proto::v1::CatalogSummary> for CatalogSummary {
    fn from(c: tierlink_proto::v1::CatalogSummary) -> Self {
        Self {
            code: c.code,
            name: c.name,
            provider_name: c.provider_name,
            provider_code: c.provider_code,
            kind: c.kind,
            sharing_type: c.sharing_type,
            update_cycle: c.update_cycle,
            item_count: c.item_count,
            record_count: c.record_count,
        }
    }
}

/// A node's catalogs.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogList {
    /// The node whose catalogs these are.
    pub node: String,
    /// Its catalogs.
    pub catalogs: Vec<CatalogSummary>,
}

/// Which node to ask.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Target {
    /// The node whose catalogs to read (its division code); default this node.
    pub target: Option<String>,
}

/// The caller the exchange service sees for `bearer`: the node itself for the administrator's
/// token, and for a token that writes `catalog`; any member otherwise.
fn catalog_caller(
    state: &Services,
    bearer: &Bearer,
    catalog: Option<&str>,
) -> Result<Caller, Problem> {
    bearer.permits(Scope::Read)?;
    let mut caller = state.as_node();
    caller.is_self = bearer.holder.scope == Scope::Admin
        || catalog.is_some_and(|c| bearer.holder.may_write(c).is_ok());
    Ok(caller)
}

/// List a node's catalogs.
#[utoipa::path(
    get,
    path = "/v1/catalogs",
    tag = "catalogs",
    params(Target),
    responses(
        (status = 200, description = "The node's catalogs.", body = CatalogList),
        (status = 400, description = "A target that is not a division code, or an unknown parameter.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No route to the target node.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The target node could not be reached.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn list(
    Shared(state): Shared<State>,
    bearer: Bearer,
    target: Result<Query<Target>, QueryRejection>,
) -> Result<Json<CatalogList>, Problem> {
    let caller = catalog_caller(&state, &bearer, None)?;
    let Query(target) = target?;
    let request = ListCatalogsRequest {
        target: target.target.unwrap_or_default(),
    };
    let listed = state
        .exchange
        .list_catalogs(Services::request(caller, request))
        .await?
        .into_inner();
    Ok(Json(CatalogList {
        node: listed.node,
        catalogs: listed.catalogs.into_iter().map(Into::into).collect(),
    }))
}

/// A catalog entry as JSON text, parsed.
fn entry(json: &str) -> Result<serde_json::Value, Problem> {
    serde_json::from_str(json).map_err(|e| Problem::new(Kind::Internal, e.to_string()))
}

/// Get one catalog entry.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{prefix}/{number}",
    tag = "catalogs",
    params(
        ("prefix" = String, Path, description = "The resource code before the slash, e.g. `101001001`."),
        ("number" = String, Path, description = "The resource code after the slash, e.g. `000001`."),
        Target,
    ),
    responses(
        (status = 200, description = "The catalog entry (schema/catalog.schema.json).", body = Object),
        (status = 400, description = "A malformed resource code or target, or an unknown parameter.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such catalog on that node.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The target node could not be reached.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn get(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path(code): Path<(String, String)>,
    target: Result<Query<Target>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let code = catalog_code(&code);
    let caller = catalog_caller(&state, &bearer, Some(&code))?;
    let Query(target) = target?;
    let request = GetCatalogRequest {
        code,
        target: target.target.unwrap_or_default(),
    };
    let got = state
        .exchange
        .get_catalog(Services::request(caller, request))
        .await?
        .into_inner();
    Ok(Json(entry(&got.catalog_json)?))
}

/// What to search the directory for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Case-insensitive text matched against resource code, name, provider and item names;
    /// absent matches every catalog.
    pub text: Option<String>,
    /// Only this publisher's catalogs (a division code).
    pub publisher: Option<String>,
}

/// A catalog published in the directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// The node that published it.
    pub publisher: String,
    /// The directory revision it was published at.
    pub revision: u64,
    /// Its summary.
    pub summary: Option<CatalogSummary>,
    /// The published entry: the shared view (schema/catalog.schema.json).
    #[schema(value_type = Object)]
    pub catalog: serde_json::Value,
    /// Names of the items that matched the text.
    pub matched_items: Vec<String>,
}

/// Search the federation directory's published catalogs.
#[utoipa::path(
    get,
    path = "/v1/directory/catalogs",
    tag = "catalogs",
    params(Search),
    responses(
        (status = 200, description = "The matching catalogs, from this node's replica of the directory.", body = Vec<Published>),
        (status = 400, description = "An unknown parameter.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn search(
    Shared(state): Shared<State>,
    bearer: Bearer,
    search: Result<Query<Search>, QueryRejection>,
) -> Result<Json<Vec<Published>>, Problem> {
    let caller = catalog_caller(&state, &bearer, None)?;
    let Query(search) = search?;
    let request = CatalogsRequest {
        read: None,
        text: search.text.unwrap_or_default(),
        publisher: search.publisher.unwrap_or_default(),
    };
    let found = state
        .directory
        .catalogs(Services::request(caller, request))
        .await?
        .into_inner();
    found
        .catalogs
        .into_iter()
        .map(|p| {
            Ok(Published {
                publisher: p.publisher,
                revision: p.revision,
                summary: p.summary.map(Into::into),
                catalog: entry(&p.catalog_json)?,
                matched_items: p.matched_items,
            })
        })
        .collect::<Result<_, Problem>>()
        .map(Json)
}
