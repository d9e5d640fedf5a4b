//! Calls counted at the edge: a tower layer over the node's gRPC services ([`GrpcMetricsLayer`],
//! beside the limit layers) and an axum middleware over the gateway ([`rest`]).
//!
//! A gRPC call's status comes in the response headers when the call fails before any message
//! ("trailers-only"), otherwise in the trailers after the last message (gRPC over HTTP/2,
//! "Responses"): the response body is watched for them, so a streamed read is timed to its end.
//! A body dropped before its trailers is a call the caller left: `CANCELLED`.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic::Status;
use tonic::body::Body;

use super::{GrpcMethod, Metrics, RestRoute};

/// The label of a method no service of the node has, and of a route the gateway does not declare.
const UNKNOWN: &str = "unknown";

/// Counts and times every gRPC call by service, method and status code.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl GrpcMetricsLayer {
    /// A layer counting into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a node's services.
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

/// Every `(service, method)` the node declares: Tierlink's, health's and reflection's, read from
/// the file descriptor sets the reflection service serves.
static DECLARED: LazyLock<BTreeSet<(String, String)>> = LazyLock::new(|| {
    [
        tierlink_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .filter_map(|set| FileDescriptorSet::decode(set).ok())
    .flat_map(|set| set.file)
    .flat_map(|file| {
        let package = file.package().to_owned();
        file.service.into_iter().flat_map(move |service| {
            let name = format!("{package}.{}", service.name());
            service
                .method
                .into_iter()
                .map(move |method| (name.clone(), method.name().to_owned()))
        })
    })
    .collect()
});

/// A request path's service and method (`/tierlink.v1.Exchange/Query`) when the node declares
/// it; any other path is the caller's text, never a label: `unknown`.
fn method_of(path: &str) -> GrpcMethod {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(service), Some(method))
            if DECLARED.contains(&(service.to_owned(), method.to_owned())) =>
        {
            GrpcMethod {
                service: service.to_owned(),
                method: method.to_owned(),
            }
        }
        _ => unknown_method(),
    }
}

fn unknown_method() -> GrpcMethod {
    GrpcMethod {
        service: UNKNOWN.to_owned(),
        method: UNKNOWN.to_owned(),
    }
}

/// The status code in `headers`, when they carry one.
fn code_in(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

/// A call waiting for its status.
struct Pending {
    metrics: Metrics,
    method: GrpcMethod,
    started: Instant,
}

impl Pending {
    fn end(self, code: tonic::Code) {
        // A path no service answers is the caller's text: not a label.
        let method = if code == tonic::Code::Unimplemented {
            unknown_method()
        } else {
            self.method
        };
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.grpc_call(method, code, seconds);
    }
}

impl<S, B> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let pending = Pending {
            metrics: self.metrics.clone(),
            method: method_of(request.uri().path()),
            started: Instant::now(),
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if let Some(code) = code_in(response.headers()) {
                pending.end(code);
                return Ok(response);
            }
            Ok(response.map(|inner| {
                Body::new(Watched {
                    inner,
                    pending: Some(pending),
                })
            }))
        })
    }
}

/// A response body watched for its status in the trailers.
struct Watched {
    inner: Body,
    pending: Option<Pending>,
}

impl Watched {
    fn end(&mut self, code: tonic::Code) {
        if let Some(pending) = self.pending.take() {
            pending.end(code);
        }
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(code_in) {
                    self.end(code);
                }
            }
            Poll::Ready(Some(Err(status))) => self.end(status.code()),
            // A body that ends without a status broke the protocol.
            Poll::Ready(None) => self.end(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.end(tonic::Code::Cancelled);
    }
}

/// Counts and times a gateway request by its route as declared, method and status; the time is
/// to the answer's headers (an NDJSON or batch stream goes on after them).
pub async fn rest(metrics: Metrics, request: Request, next: Next) -> Response {
    let route = RestRoute {
        route: request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNKNOWN, MatchedPath::as_str)
            .to_owned(),
        method: method_label(request.method()).to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    metrics.rest_call(route, response.status().as_u16(), seconds);
    response
}

/// An HTTP method's label: the standard ones, and `other` for extension methods, which are the
/// caller's text.
fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_gives_its_service_and_method_and_anything_else_is_unknown() {
        let m = method_of("/tierlink.v1.Exchange/Query");
        assert_eq!(
            (m.service.as_str(), m.method.as_str()),
            ("tierlink.v1.Exchange", "Query")
        );
        let m = method_of("/grpc.health.v1.Health/Check");
        assert_eq!(m.method, "Check");
        // Made-up services and methods, refused by admission before any service sees them,
        // add no series and no text of the caller's.
        for path in [
            "/",
            "",
            "/tierlink.v1.Exchange",
            "/tierlink.v1.Exchange/",
            "/tierlink.v1.Exchange/Made",
            "/tierlink.v1.Made/Query",
            "/a\"b/c\"d",
        ] {
            let m = method_of(path);
            assert_eq!(
                (m.service.as_str(), m.method.as_str()),
                (UNKNOWN, UNKNOWN),
                "{path}"
            );
        }
    }
}
