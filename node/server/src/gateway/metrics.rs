//! `GET /metrics`: the node's metrics ([`crate::metrics`]) for Prometheus, with no token. A
//! scrape carries counts and codes (services, routes, statuses, catalog codes, member codes),
//! never record contents, principals, keys or request ids.
//!
//! A scraper that accepts OpenMetrics (`Accept: application/openmetrics-text`, as Prometheus
//! sends) gets OpenMetrics 1.0 text; any other, the Prometheus text format 0.0.4.

use axum::extract::State as Shared;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::State;
use crate::metrics;

/// The node's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The node's metrics: OpenMetrics 1.0 text when the `Accept` header asks for it, otherwise the Prometheus text format 0.0.4.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
    ),
)]
pub async fn scrape(Shared(services): Shared<State>, headers: HeaderMap) -> Response {
    let text = metrics::encode(&services.scrape);
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
    } else {
        let classic = metrics::classic(&text);
        (
            [(header::CONTENT_TYPE, metrics::TEXT_CONTENT_TYPE)],
            classic,
        )
            .into_response()
    }
}
