//! The gateway's routes and its OpenAPI 3.1 document, generated from the handlers' own
//! annotations (utoipa): every route is registered through [`OpenApiRouter`], so no operation can
//! be served without being documented. The document is served at `/openapi.json`, the Swagger UI
//! reference at `/docs` from assets built into the binary (the node serves it on a network with
//! no way out), and each problem type's page under `/problems/`.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::OriginalUri;
use axum::http::Method;
use tierlink_core::config::GatewaySettings;
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::edge::{self, Edge};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use super::problem::{self, Kind, Problem};
use super::{State, audit, cases, catalogs, explain, imports, metrics, records};

/// Where the document is served.
pub const DOCUMENT: &str = "/openapi.json";
/// Where the reference page is served.
pub const REFERENCE: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tierlink node gateway",
        description = "REST/JSON access to one Tierlink node for the systems that do not speak gRPC: catalogs, records (written all or none, or imported from whole CSV and JSON-lines exports; read as JSON pages, NDJSON streams or the signed batches themselves), explanations of decisions, and the node's audit.\n\nEvery request but this document, the reference page and the problem pages carries an API token of this node: `Authorization: Bearer tlk_…` (`tierlink token create`). Scopes: `read` (catalogs, reads and explain, under the principal's grants), `write` (also writes and imports records of the catalogs the token names), `admin` (the node's administrator, no principal: the audit, catalogs in full and writes to every catalog; no record reads). A read names the principal's role in `Tierlink-Role` (when it holds several) and its purpose in `Tierlink-Purpose`; it is decided, sealed, signed and audited exactly as a gRPC read with `--as`.\n\nErrors are RFC 9457 problem documents (`application/problem+json`) whose `type` is a page on this gateway, `/problems/SLUG`.\n\nSigned batches (`Accept: application/x-tierlink-batches`) come in the batch file format: the 16 bytes `TIERLINK-BATCH1\\n`, then each `tierlink.v1.SignedBatch` (proto/tierlink/v1/exchange.proto) length-delimited by a protobuf varint. Save the response and check it with `tierlink verify --ca ca.crt FILE`: every batch's producer certificate chains to the CA, its Ed25519 signature covers `tierlink.v1.BatchHeader\\0` followed by the header bytes, the BLAKE3 digest of the sealed records matches the header, and the sequences run from 0 to the batch marked last under one request id, the one JSON answers name.",
        version = env!("CARGO_PKG_VERSION"),
    ),
    modifiers(&BearerToken),
    tags(
        (name = "catalogs", description = "This node's catalogs and the directory's search."),
        (name = "records", description = "Writes, queries and histories of records."),
        (name = "explain", description = "How a read would be decided."),
        (name = "audit", description = "The node's audit log (admin tokens)."),
        (name = "cases", description = "Cases that move between tiers: raised and moved as a principal (write tokens), listed, shown with their signed moves, counted."),
        (name = "reference", description = "The problem types."),
        (name = "operations", description = "The node's metrics for Prometheus (no token: counts and codes only)."),
    )
)]
struct Document;

/// The `token` security scheme: HTTP bearer with an API token.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tlk_ API token")
                    .description(Some(
                        "An API token of a principal of this node, from `tierlink token create`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The routes, and the document that describes them.
fn routes() -> (axum::Router<State>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(catalogs::list))
        .routes(routes!(catalogs::get))
        .routes(routes!(catalogs::search))
        .routes(routes!(records::query, records::put))
        .routes(routes!(records::history))
        .routes(routes!(imports::upload))
        .routes(routes!(explain::explain))
        .routes(routes!(audit::entries))
        .routes(routes!(cases::raise, cases::list))
        .routes(routes!(cases::show))
        .routes(routes!(cases::act))
        .routes(routes!(cases::figures))
        .routes(routes!(problem::page))
        .routes(routes!(metrics::scrape))
        .split_for_parts()
}

/// The OpenAPI document of the gateway.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().1
}

/// A path that exists, asked with a method it does not take.
async fn wrong_method(method: Method, OriginalUri(uri): OriginalUri) -> Problem {
    Problem::new(
        Kind::MethodNotAllowed,
        format!(
            "{} does not take {method}: the Allow header lists what it takes, {DOCUMENT} documents each",
            uri.path()
        ),
    )
    .at(uri.path().to_owned())
}

/// The gateway's whole application: the API over `services`, its document and reference page,
/// problems for unknown routes and methods, request bodies bounded by `settings` in size and in
/// the pauses between their pieces, and every request by its deadline at the edge.
pub fn router(services: State, settings: &GatewaySettings) -> axum::Router {
    let (api, document) = routes();
    let counted = services.reads.metrics().clone();
    let edge = Edge {
        deadline: Duration::from_millis(settings.request_ms),
        drain_bytes: settings.body_bytes.saturating_add(64 << 20),
        idle: Duration::from_millis(settings.body_idle_ms),
    };
    api.with_state(services)
        .merge(SwaggerUi::new(REFERENCE).url(DOCUMENT, document))
        .fallback(problem::no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(settings.body_bytes))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            settings.body_idle_ms,
        )))
        .layer(axum::middleware::from_fn(move |request, next| {
            edge::edge(edge, request, next)
        }))
        // Outside the edge: a request answered 408 at its deadline is counted too.
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::metrics::calls::rest(counted.clone(), request, next)
        }))
}

#[cfg(test)]
mod tests;
