//! What callers may hold on this node: bounded per calling node and for the node as a whole, so
//! that no member, and no number of them, can take its memory or threads.
//!
//! - [`ReadLimits`]: the reads (`Query` and `History` streams) open per caller and in all, each
//!   holding a [`ReadSlot`] until its stream is dropped, and how long a read may wait for its
//!   consumer. (The threads that make batches, a fixed number, are the read service's.)
//! - [`RequestLimitLayer`]: every request's gRPC framing checked as it arrives, each message
//!   capped by its method before it is buffered, and malformed framing answered
//!   INVALID_ARGUMENT.
//!
//! - [`StatusMessageLayer`]: every status message cut to what any peer's header limit takes,
//!   however much of a caller's text a refusal repeats.
//! - [`Guesses`]: wrong API tokens per source address, for the transports that take tokens.
//! - [`Connections`]: connections open per source address and in all, for the listener anyone
//!   may reach (the gateway's).
//!
//! The rest is set where the server is built ([`crate::runtime`]): the TLS handshake deadline,
//! the call deadline, HTTP/2 streams per connection and keepalive pings, all from node.toml's
//! `[limits]` ([`LimitSettings`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tierlink_client::MAX_MESSAGE_BYTES;
use tierlink_core::config::LimitSettings;
use tierlink_core::identity::NodeCode;
use tonic::Status;
use tonic::body::Body;

use crate::admission::Caller;

mod connections;
mod guesses;
mod status;
pub use connections::{Admitted, ConnectionPermit, Connections, Crowded};
pub use guesses::{Guesses, RetryAfter};
pub use status::{MAX_STATUS_MESSAGE_BYTES, StatusMessageLayer};

/// A read refused because too many are open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    /// The calling node has as many reads open as one caller may.
    #[error(
        "{caller} has {open} reads open on node {me}, the most one node may have: finish or cancel one, then ask again"
    )]
    Caller {
        /// The calling node.
        caller: NodeCode,
        /// Its reads open here.
        open: u32,
        /// This node.
        me: NodeCode,
    },
    /// This node serves as many reads as it serves at once.
    #[error(
        "node {me} is serving {open} reads, the most it serves at once: try again when one has ended"
    )]
    Node {
        /// This node.
        me: NodeCode,
        /// Reads open here, all callers together.
        open: u32,
    },
}

/// Reads open on this node, per calling node and in all, and how long one may wait.
pub struct ReadLimits {
    me: NodeCode,
    per_caller: u32,
    per_node: u32,
    open: Mutex<Open>,
    stall: Duration,
}

#[derive(Default)]
struct Open {
    total: u32,
    by_caller: HashMap<NodeCode, u32>,
}

impl ReadLimits {
    /// The limits of node `me` as `settings` give them.
    pub fn new(me: NodeCode, settings: &LimitSettings) -> Arc<Self> {
        Arc::new(Self {
            me,
            per_caller: settings.reads_per_caller,
            per_node: settings.reads_per_node,
            open: Mutex::default(),
            stall: Duration::from_millis(settings.stall_ms),
        })
    }

    /// Opens a read for `caller`, or says which limit it would pass. The slot is held until the
    /// [`ReadSlot`] is dropped, with the stream that carries it.
    pub fn open(self: &Arc<Self>, caller: &NodeCode) -> Result<ReadSlot, Exhausted> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_caller.get(caller).copied().unwrap_or(0);
        if mine >= self.per_caller {
            return Err(Exhausted::Caller {
                caller: caller.clone(),
                open: mine,
                me: self.me.clone(),
            });
        }
        if open.total >= self.per_node {
            return Err(Exhausted::Node {
                me: self.me.clone(),
                open: open.total,
            });
        }
        open.total += 1;
        *open.by_caller.entry(caller.clone()).or_default() += 1;
        Ok(ReadSlot {
            limits: self.clone(),
            caller: caller.clone(),
        })
    }

    /// Reads open on the node now.
    pub fn open_reads(&self) -> u32 {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// How long a read may wait for its consumer, or for the node it relays from.
    pub fn stall(&self) -> Duration {
        self.stall
    }
}

/// One open read of one caller; dropping it frees the slot.
pub struct ReadSlot {
    limits: Arc<ReadLimits>,
    caller: NodeCode,
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(mine) = open.by_caller.get_mut(&self.caller) {
            *mine -= 1;
            if *mine == 0 {
                open.by_caller.remove(&self.caller);
            }
        }
    }
}

/// How large one message of a method's request may be, and whether the request is a stream of
/// messages (reflection) rather than exactly one.
fn request_rule(path: &str, small: usize) -> (usize, bool) {
    match path {
        "/tierlink.v1.Exchange/PutCatalog"
        | "/tierlink.v1.Exchange/PutRecords"
        | "/tierlink.v1.Directory/Propose"
        | "/tierlink.v1.Directory/Submit"
        | "/tierlink.v1.Cases/Deliver"
        | "/tierlink.v1.Federation/AppendEntries"
        | "/tierlink.v1.Federation/InstallSnapshot" => (MAX_MESSAGE_BYTES, false),
        // A cross-check's elements come in chunks of whole records.
        "/tierlink.v1.CrossCheck/Compare" => (2 * crate::crosscheck::CHUNK_BYTES, true),
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => (small, true),
        _ => (small, false),
    }
}

/// Checks every request's gRPC framing as it arrives, for every service behind it: each message
/// at most its method's size (RESOURCE_EXHAUSTED before it is buffered), one message to a call
/// that takes one, and a body that is gRPC at all (INVALID_ARGUMENT).
#[derive(Clone)]
pub struct RequestLimitLayer {
    small: usize,
}

impl RequestLimitLayer {
    /// Requests of calls that only name what they want capped at `settings.small_request_bytes`;
    /// those that carry data at [`MAX_MESSAGE_BYTES`].
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            small: settings.small_request_bytes as usize,
        }
    }
}

impl<S> tower::Layer<S> for RequestLimitLayer {
    type Service = RequestLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimit {
            small: self.small,
            inner,
        }
    }
}

/// The service [`RequestLimitLayer`] wraps around a node's services.
#[derive(Clone)]
pub struct RequestLimit<S> {
    small: usize,
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for RequestLimit<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (limit, streamed) = request_rule(&path, self.small);
        // Only members send data: a node that is not one (joining, suspended, a stranger) sends
        // small requests at most, whatever the method, so it cannot make the node buffer more.
        let member = request
            .extensions()
            .get::<Caller>()
            .is_none_or(|c| c.is_member);
        let limit = if member { limit } else { limit.min(self.small) };
        let framing = Framing {
            compressed: request.headers().contains_key("grpc-encoding"),
            method: path,
            limit,
            streamed,
            prefix: [0; 5],
            have: 0,
            left: 0,
            messages: 0,
        };
        self.inner.call(request.map(|body| {
            Body::new(Framed {
                inner: body,
                framing,
                done: false,
            })
        }))
    }
}

/// Where a request body stands in its gRPC framing: each message is a flag byte, a four-byte
/// big-endian length and that many bytes.
#[derive(Debug)]
struct Framing {
    method: String,
    limit: usize,
    streamed: bool,
    /// The request names a compression (`grpc-encoding`), so the compressed flag may be set.
    compressed: bool,
    prefix: [u8; 5],
    /// Bytes of the next message's prefix seen so far.
    have: usize,
    /// Bytes of the current message still to come.
    left: usize,
    messages: usize,
}

impl Framing {
    /// Follows `data` through the framing; the first fault ends the request.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.left > 0 {
                let n = self.left.min(data.len());
                self.left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                self.message()?;
            }
        }
        Ok(())
    }

    /// Checks a complete message prefix.
    fn message(&mut self) -> Result<(), Status> {
        let flag = self.prefix[0];
        if flag > 1 || (flag == 1 && !self.compressed) {
            return Err(Status::invalid_argument(format!(
                "the {} request is not gRPC: a message starts with flag byte {flag:#04x}, where 0 (or 1 with grpc-encoding) belongs; send it with a gRPC client",
                self.method
            )));
        }
        self.messages += 1;
        if self.messages > 1 && !self.streamed {
            return Err(Status::invalid_argument(format!(
                "the {} request holds more than one message: send one per call",
                self.method
            )));
        }
        let len = u32::from_be_bytes([
            self.prefix[1],
            self.prefix[2],
            self.prefix[3],
            self.prefix[4],
        ]) as usize;
        if len > self.limit {
            let what = if self.limit == MAX_MESSAGE_BYTES {
                "split what it carries into several calls"
            } else {
                "ask with a smaller request ([limits] small_request_bytes sets the size)"
            };
            return Err(Status::resource_exhausted(format!(
                "the {} request is {len} bytes, over the {} bytes this node accepts for it: {what}",
                self.method, self.limit
            )));
        }
        self.left = len;
        Ok(())
    }

    /// Checks the end of the body: no message cut short, and the one message a call takes.
    fn finish(&self) -> Result<(), Status> {
        if self.have > 0 || self.left > 0 {
            return Err(Status::invalid_argument(format!(
                "the {} request ended inside a message: send the whole message",
                self.method
            )));
        }
        if self.messages == 0 && !self.streamed {
            return Err(Status::invalid_argument(format!(
                "the {} request holds no message: send one",
                self.method
            )));
        }
        Ok(())
    }
}

/// A request body followed through [`Framing`].
struct Framed {
    inner: Body,
    framing: Framing,
    done: bool,
}

impl http_body::Body for Framed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let checked = match polled {
            Some(Ok(frame)) => match frame.data_ref().map(|data| this.framing.feed(data)) {
                Some(Err(status)) => Some(Err(status)),
                _ => Some(Ok(frame)),
            },
            Some(Err(status)) => Some(Err(status)),
            None => this.framing.finish().err().map(Err),
        };
        this.done = !matches!(checked, Some(Ok(_)));
        Poll::Ready(checked)
    }
}

#[cfg(test)]
mod tests;
