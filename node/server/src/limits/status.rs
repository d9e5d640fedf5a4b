//! Status messages every peer can take. A gRPC status travels as the `grpc-message` header or
//! trailer, percent-encoded (gRPC over HTTP/2, "Responses"); a peer refuses a header block larger
//! than its limit (16 KiB for tonic's clients) as an HTTP/2 protocol error, losing the status
//! and its reason. Refusals repeat what a caller sent, so a long enough value would turn any
//! refusal into that. [`StatusMessageLayer`] cuts every message to [`MAX_STATUS_MESSAGE_BYTES`]
//! encoded, at a character, saying how much was cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};
use tierlink_core::limits::clip;
use tonic::Status;
use tonic::body::Body;

/// Most bytes of a `grpc-message`, percent-encoded: half of the smallest header block a peer
/// takes, leaving room for the other headers.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 8 << 10;

/// What gRPC percent-encodes in a status message: bytes outside printable ASCII, and `%`.
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

const HEADER: &str = "grpc-message";

/// Cuts the status message in `headers` (a response's headers or its trailers) to
/// [`MAX_STATUS_MESSAGE_BYTES`] encoded.
fn fit(headers: &mut HeaderMap) {
    let Some(value) = headers.get(HEADER) else {
        return;
    };
    if value.len() <= MAX_STATUS_MESSAGE_BYTES {
        return;
    }
    let message = percent_decode(value.as_bytes()).decode_utf8_lossy();
    // A character takes at most 12 bytes encoded (four bytes, each `%XX`); the note on what was
    // cut takes fewer than 64.
    let clipped = clip(&message, (MAX_STATUS_MESSAGE_BYTES - 64) / 12);
    let encoded = utf8_percent_encode(&clipped, GRPC_MESSAGE).to_string();
    let value = HeaderValue::from_str(&encoded).expect("percent-encoded text is a header value");
    headers.insert(HEADER, value);
}

/// Wraps a node's gRPC services so that no status they answer exceeds a peer's header limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusMessageLayer;

impl<S> tower::Layer<S> for StatusMessageLayer {
    type Service = StatusMessages<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusMessages { inner }
    }
}

/// The service [`StatusMessageLayer`] wraps around a node's services.
#[derive(Clone, Debug)]
pub struct StatusMessages<S> {
    inner: S,
}

impl<S, Request> tower::Service<Request> for StatusMessages<S>
where
    S: tower::Service<Request, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            // A status before any message comes in the headers ("trailers-only").
            fit(response.headers_mut());
            Ok(response.map(|inner| Body::new(Fitted { inner })))
        })
    }
}

/// A response body whose trailers' status message is cut to fit.
struct Fitted {
    inner: Body,
}

impl http_body::Body for Fitted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_ok(|mut frame| {
                if let Some(trailers) = frame.trailers_mut() {
                    fit(trailers);
                }
                frame
            })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: &HeaderMap) -> String {
        percent_decode(headers[HEADER].as_bytes())
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_and_says_so_and_a_short_one_is_kept() {
        for long in ["x".repeat(40_000), "核".repeat(20_000), "😀".repeat(9_000)] {
            let status = Status::permission_denied(format!("role {long} is not held"));
            let mut headers = status.into_http::<Body>().headers().clone();
            assert!(headers[HEADER].len() > MAX_STATUS_MESSAGE_BYTES);
            fit(&mut headers);
            assert!(headers[HEADER].len() <= MAX_STATUS_MESSAGE_BYTES);
            let cut = message(&headers);
            assert!(cut.starts_with("role "), "{cut}");
            assert!(cut.ends_with(" more characters)"), "{cut}");
            // What tonic's client reads back is the same text.
            let read = Status::from_header_map(&headers).unwrap();
            assert_eq!(read.message(), cut);
            assert_eq!(read.code(), tonic::Code::PermissionDenied);
        }
        let short = Status::invalid_argument("a purpose is at most 256 characters: 核");
        let mut headers = short.clone().into_http::<Body>().headers().clone();
        fit(&mut headers);
        assert_eq!(message(&headers), short.message());
    }
}
