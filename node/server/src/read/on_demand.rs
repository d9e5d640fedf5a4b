//! Batches made as the consumer asks for them. A read's batches come from a [`Source`] (the
//! store through the plan, or the next node of a relay); the consumer's stream asks for one
//! batch at a time and the source works only then, so a consumer that stops reading holds no
//! thread, and no batch beyond those already handed to the transport.
//!
//! The read's last answer (the end after its last batch, or the error that ends it) is given
//! only once the source has ended, so the audit entry it keeps is on disk before the consumer
//! learns that the read is over, and a read that ends with success has been audited.
//!
//! A consumer that asks for nothing for the node's stall limit has its read ended: the source is
//! dropped (the store iterator and plan, or the upstream stream), the audit says why, and the
//! consumer's next ask, if it comes, is answered with DEADLINE_EXCEEDED.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tierlink_proto::v1::SignedBatch;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::Stream;
use tracing::Instrument;

use super::{BatchStream, ReadError};
use crate::limits::ReadSlot;

/// One answer to one ask: a batch, the error that ends the read, or `None` after the last batch.
pub(super) type Answer = Option<Result<SignedBatch, ReadError>>;

/// How a read ended.
pub(super) enum Ending {
    /// After its last batch.
    Finished,
    /// With this error, sent to the consumer.
    Failed(ReadError),
    /// The consumer went away first.
    Gone,
    /// The consumer asked for nothing for the stall limit.
    Stalled,
}

impl Ending {
    /// The outcome a read's metrics count it under ([`crate::metrics`]).
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            Ending::Finished => "served",
            Ending::Failed(_) => "failed",
            Ending::Gone => "gone",
            Ending::Stalled => "stalled",
        }
    }
}

/// Where a read's batches come from.
pub(super) trait Source: Send + 'static {
    /// The next batch, an error that ends the read, or `None` after the last.
    fn next(&mut self) -> impl Future<Output = Answer> + Send;

    /// The read has ended as `ending` says: keep what the audit needs and free the rest.
    fn end(self, ending: Ending) -> impl Future<Output = ()> + Send;
}

/// Serves `source`'s batches as the consumer asks for them; a consumer that asks for nothing for
/// `stall` has the read ended, and is told `stalled` if it asks again. `slot` is held until the
/// consumer drops the stream. The source works in `span`, the read's.
pub(super) fn on_demand(
    source: impl Source,
    stall: Duration,
    stalled: ReadError,
    slot: ReadSlot,
    stopping: watch::Receiver<bool>,
    span: tracing::Span,
) -> BatchStream {
    let (ask, asks) = mpsc::channel(1);
    tokio::spawn(answer(source, asks, stall, stalled, stopping).instrument(span));
    Box::pin(Asking {
        ask,
        waiting: None,
        done: false,
        _slot: slot,
    })
}

/// The source's side: one batch per ask, until the last, an error, the consumer's leaving, or a
/// stall.
async fn answer(
    mut source: impl Source,
    mut asks: mpsc::Receiver<oneshot::Sender<Answer>>,
    stall: Duration,
    stalled: ReadError,
    mut stopping: watch::Receiver<bool>,
) {
    let ending = loop {
        let mut reply = match tokio::time::timeout(stall, asks.recv()).await {
            Err(_) => break Ending::Stalled,
            Ok(None) => break Ending::Gone,
            Ok(Some(reply)) => reply,
        };
        // A source may wait long for its next batch (a feed waits for writes, a relay for the
        // next node): a consumer that leaves meanwhile, or the node stopping, ends the wait.
        let answer = tokio::select! {
            answer = source.next() => answer,
            () = reply.closed() => break Ending::Gone,
            _ = stopping.wait_for(|stopping| *stopping) => Some(Err(ReadError::unavailable(
                "the node is stopping: ask again once it is back (a feed from its last resume token)",
            ))),
        };
        let ending = match &answer {
            None => Ending::Finished,
            Some(Err(error)) => Ending::Failed(error.clone()),
            Some(Ok(_)) => {
                if reply.send(answer).is_err() {
                    break Ending::Gone;
                }
                continue;
            }
        };
        // The last answer waits for the source's end: a consumer told that its read is over
        // knows that the read's audit entry is on disk.
        source.end(ending).await;
        let _ = reply.send(answer);
        return;
    };
    let was_stalled = matches!(ending, Ending::Stalled);
    source.end(ending).await;
    // What is left waits for one more ask, holding nothing but the channel.
    if was_stalled && let Some(reply) = asks.recv().await {
        let _ = reply.send(Some(Err(stalled)));
    }
}

/// The consumer's side: asks for a batch when polled and none is on its way.
struct Asking {
    ask: mpsc::Sender<oneshot::Sender<Answer>>,
    waiting: Option<oneshot::Receiver<Answer>>,
    done: bool,
    _slot: ReadSlot,
}

impl Stream for Asking {
    type Item = Result<SignedBatch, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.waiting.is_none() {
            let (reply, answer) = oneshot::channel();
            // The source has ended and answers no more.
            if this.ask.try_send(reply).is_err() {
                this.done = true;
                return Poll::Ready(None);
            }
            this.waiting = Some(answer);
        }
        let waiting = this.waiting.as_mut().expect("an ask is out");
        let answer = ready!(Pin::new(waiting).poll(cx)).ok().flatten();
        this.waiting = None;
        this.done = !matches!(answer, Some(Ok(_)));
        Poll::Ready(answer)
    }
}
