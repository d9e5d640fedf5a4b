//! The gateway's edge, around every request: it must be answered within `[gateway] request_ms`,
//! and a body left unread because the answer came first (a refused token, a body too large, too
//! many writes) is read to its end and dropped in the background, within that deadline,
//! `body_idle_ms` between pieces and `body_bytes` plus 64 MiB. A client still sending then receives the answer, where HTTP/1.1 would otherwise
//! close the connection under it and HTTP/2 reset its stream (web servers' "lingering close").

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};

use super::problem::{Kind, Problem};

/// What the edge allows a request.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    /// Time to receive a request and answer it (a streamed answer's body may take longer).
    pub deadline: Duration,
    /// Bytes of an unread body read and dropped after an early answer; a larger rest is cut.
    pub drain_bytes: usize,
    /// Longest pause between two pieces of a body being drained.
    pub idle: Duration,
}

/// Runs `request` through `next` within `edge`'s deadline, its body drained if left unread.
pub async fn edge(edge: Edge, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let http1 = parts.version < Version::HTTP_2;
    let abandoned = Arc::new(AtomicBool::new(false));
    let body = Body::new(Unread {
        body: Some(body),
        ended: false,
        edge,
        moved: Instant::now(),
        abandoned: abandoned.clone(),
    });
    let mut answer = Box::pin(next.run(Request::from_parts(parts, body)));
    let mut response = tokio::select! {
        response = &mut answer => response,
        () = tokio::time::sleep(edge.deadline) => {
            // Past the deadline the rest of the body is not waited for: dropped unread.
            abandoned.store(true, Ordering::Relaxed);
            drop(answer);
            Problem::new(
                Kind::RequestTimeout,
                format!(
                    "the request was not received and answered within {} s ([gateway] request_ms in the node's node.toml): send it faster, or less at once",
                    edge.deadline.as_secs()
                ),
            )
            .into_response()
        }
    };
    // After a 408 (the deadline, or a body that stalled), what is left of the request cannot be
    // told from the next one (RFC 9110 §15.5.9): the connection ends with the answer.
    if http1 && response.status() == StatusCode::REQUEST_TIMEOUT {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that, dropped before its end, has the rest read and dropped.
struct Unread {
    body: Option<Body>,
    ended: bool,
    edge: Edge,
    /// When the body last gave a piece (or was first asked for one).
    moved: Instant,
    /// Set when the request is answered 408 at its deadline: nothing more is read of it.
    abandoned: Arc<AtomicBool>,
}

impl http_body::Body for Unread {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(_)) => this.moved = Instant::now(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        let Some(mut body) = self.body.take() else {
            return;
        };
        // A body that already paused past the idle limit, or whose request met its deadline (both
        // answered 408), is not waited for again: dropping it ends the connection at once.
        if self.ended
            || body.is_end_stream()
            || self.moved.elapsed() >= self.edge.idle
            || self.abandoned.load(Ordering::Relaxed)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Edge {
            deadline,
            drain_bytes,
            idle,
        } = self.edge;
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0;
                while read <= drain_bytes {
                    let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
                    match tokio::time::timeout(idle, frame).await {
                        Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, Bytes::len),
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout(deadline, drain).await;
        });
    }
}
