//! One webhook at work: its feed read into its queue, and its queue delivered, side by side.
//!
//! The feed is read through the read service as the webhook's principal, from the resume token
//! the store keeps; each batch is opened, made into a delivery and queued with the batch's token
//! in one atomic apply. While [`MAX_PENDING`] deliveries wait the feed is left (the token keeps
//! the place) and opened again once one is delivered. The queue's head is delivered, one attempt
//! at a time, strictly in order; a failed attempt waits as the schedule says, and after the last
//! the delivery goes to the dead-letter list and the next one is tried.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tierlink_core::signed::{Expected, StreamCheck, VerifiedBatch};
use tierlink_proto::v1::{Credential, ReadScope, SubscribeRequest};
use tierlink_store::StoreError;
use tokio::sync::Notify;
use tokio_stream::StreamExt;

use super::Shared;
use super::deliver::Attempt;
use super::store::{Delivery, Hook};
use crate::gateway::records::ReadFacts;
use crate::read::{ReadError, ReadErrorKind};

/// Deliveries a webhook's queue holds at most; its feed waits while the queue is full.
pub const MAX_PENDING: u64 = 1000;
/// Records one delivery carries at most: the specification asks for small payloads.
pub const RECORDS_PER_DELIVERY: u32 = 100;
/// How long a feed that failed for a passing reason (a node unreachable, too many reads) waits
/// before it is opened again.
const FEED_RETRY: Duration = Duration::from_secs(5);
/// How long a worker waits after its store failed before it tries again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The body of one delivery (`type` `records.changed`).
#[derive(Serialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: &'static str,
    /// When the batch was queued, RFC 3339.
    timestamp: String,
    data: Changed,
}

/// What a delivery says: the batch's facts as the gateway renders them, where the feed stands
/// after it, and its records as the gateway renders them.
#[derive(Serialize)]
struct Changed {
    #[serde(flatten)]
    facts: ReadFacts,
    resume_token: String,
    records: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The body of a delivery of `batch`.
fn payload(batch: &VerifiedBatch) -> String {
    serde_json::to_string(&Payload {
        kind: "records.changed",
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data: Changed {
            facts: ReadFacts::from(&batch.header),
            resume_token: batch.header.resume_token.clone(),
            records: batch.json_records().collect(),
        },
    })
    .expect("a payload serializes")
}

/// The read of `hook`'s feed from `token`.
pub(super) fn subscribe(hook: &Hook, token: String) -> SubscribeRequest {
    SubscribeRequest {
        scope: Some(scope(hook)),
        resume_token: token,
        batch_size: RECORDS_PER_DELIVERY,
    }
}

/// What every read of `hook` names: its catalog and producer, as its principal.
pub(super) fn scope(hook: &Hook) -> ReadScope {
    ReadScope {
        catalog: hook.catalog.clone(),
        target: hook.target.clone(),
        credential: Some(Credential {
            principal: hook.principal.clone(),
            token: hook.token.clone(),
            role: hook.role.clone(),
            purpose: hook.purpose.clone(),
            grant: hook.grant.clone(),
        }),
        ..Default::default()
    }
}

/// Whether a read refused or ended with `e` would be so again: the webhook stops on it, rather
/// than ask again and again.
pub(super) fn lasting(e: &ReadError) -> bool {
    matches!(
        e.kind,
        ReadErrorKind::Unauthenticated
            | ReadErrorKind::PermissionDenied
            | ReadErrorKind::InvalidArgument
            | ReadErrorKind::NotFound
            | ReadErrorKind::FailedPrecondition
    )
}

/// The wake-ups between a webhook's two halves and its administrator.
#[derive(Default)]
pub(super) struct Signals {
    /// A delivery was queued (by the feed or a replay).
    pub queued: Notify,
    /// A delivery left the queue.
    pub space: Notify,
}

/// Runs webhook `hook` until it stops for a lasting reason, returned (the caller keeps it).
pub(super) async fn run(shared: Arc<Shared>, hook: Hook, signals: Arc<Signals>) -> String {
    tokio::select! {
        reason = read_feed(&shared, &hook, &signals) => reason,
        reason = deliver(&shared, &hook, &signals) => reason,
    }
}

/// How one opening of the feed ended.
enum Ended {
    /// The queue is full: opened again once there is room.
    Full,
    /// For a passing reason: opened again a little later.
    Passing(String),
    /// For a lasting reason: the webhook stops.
    Lasting(String),
}

impl From<StoreError> for Ended {
    fn from(e: StoreError) -> Self {
        Ended::Passing(format!("the store failed: {e}"))
    }
}

async fn read_feed(shared: &Shared, hook: &Hook, signals: &Signals) -> String {
    loop {
        let ended = match shared.hooks.pending(&hook.id) {
            Ok(n) if n >= MAX_PENDING => Ended::Full,
            Ok(_) => follow(shared, hook, signals).await,
            Err(e) => e.into(),
        };
        match ended {
            Ended::Full => signals.space.notified().await,
            Ended::Passing(why) => {
                tracing::warn!(webhook = %hook.id, reason = %why, "webhook feed interrupted; opening it again");
                tokio::time::sleep(FEED_RETRY).await;
            }
            Ended::Lasting(why) => return format!("its feed ended: {why}"),
        }
    }
}

/// Reads the feed from the kept token and queues its batches until the queue is full or the
/// feed ends.
async fn follow(shared: &Shared, hook: &Hook, signals: &Signals) -> Ended {
    let token = match shared.hooks.token(&hook.id) {
        Ok(token) => token,
        Err(e) => return e.into(),
    };
    let read = subscribe(hook, token);
    let mut stream = match shared.reads.read(&shared.caller(), read.into()).await {
        Ok(stream) => stream,
        Err(e) if lasting(&e) => return Ended::Lasting(e.message),
        Err(e) => return Ended::Passing(e.message),
    };
    let mut check = StreamCheck::new(Expected {
        producer: Some(hook.target.clone()),
        catalog: Some(hook.catalog.clone()),
        request_id: None,
    });
    loop {
        let batch = match stream.next().await {
            Some(Ok(batch)) => batch,
            Some(Err(e)) if lasting(&e) => return Ended::Lasting(e.message),
            Some(Err(e)) => return Ended::Passing(e.message),
            None => return Ended::Passing("the feed ended without a reason".into()),
        };
        let opened = match check.open(&shared.verifier, &shared.opener, &batch) {
            Ok(opened) => opened,
            Err(e) => {
                return Ended::Lasting(format!(
                    "batch {} failed its check, so nothing of it was queued: {e}",
                    check.batches()
                ));
            }
        };
        let body = payload(&opened);
        let token = opened.header.resume_token.clone();
        let due = now_ms() + shared.sender.first_delay().as_millis() as i64;
        let queued = shared.hooks.enqueue(&hook.id, &token, |n| Delivery {
            id: format!("msg_{}_{n}", hook.id),
            body,
            records: opened.header.record_count,
            resume_token: token.clone(),
            attempts: 0,
            next_at_ms: due,
            last_error: String::new(),
            dead_at_micros: 0,
        });
        if let Err(e) = queued {
            return e.into();
        }
        if let Err(e) = shared.hooks.flush().await {
            return e.into();
        }
        signals.queued.notify_one();
        match shared.hooks.pending(&hook.id) {
            Ok(n) if n >= MAX_PENDING => return Ended::Full,
            Ok(_) => {}
            Err(e) => return e.into(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn deliver(shared: &Shared, hook: &Hook, signals: &Signals) -> String {
    loop {
        match deliver_head(shared, hook, signals).await {
            Ok(Some(reason)) => return reason,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(webhook = %hook.id, error = %e, "webhook queue unreadable");
                tokio::time::sleep(STORE_RETRY).await;
            }
        }
    }
}

/// Attempts the head of the queue once it is due, or waits for one to be queued; a reason when
/// the receiver wants no more.
async fn deliver_head(
    shared: &Shared,
    hook: &Hook,
    signals: &Signals,
) -> Result<Option<String>, StoreError> {
    let Some((place, mut delivery)) = shared.hooks.head(&hook.id)? else {
        signals.queued.notified().await;
        return Ok(None);
    };
    let wait = delivery.next_at_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    match shared.sender.attempt(hook, &delivery).await {
        Attempt::Delivered => {
            shared.hooks.delivered(&place)?;
            shared.reads.metrics().webhook_delivery("delivered");
            signals.space.notify_one();
        }
        Attempt::Gone => {
            return Ok(Some(format!(
                "{} answered 410 Gone: the receiver wants no more deliveries",
                hook.url
            )));
        }
        Attempt::NotAllowed(reason) => return Ok(Some(reason)),
        Attempt::Failed { error, retry_after } => {
            delivery.attempts += 1;
            tracing::warn!(webhook = %hook.id, delivery = %delivery.id, attempts = delivery.attempts, %error, "webhook delivery failed");
            delivery.last_error = error;
            match shared.sender.next_delay(delivery.attempts, retry_after) {
                Some(delay) => {
                    delivery.next_at_ms = now_ms() + delay.as_millis() as i64;
                    shared.hooks.update(&place, &delivery)?;
                }
                None => {
                    delivery.dead_at_micros = chrono::Utc::now().timestamp_micros();
                    shared.hooks.kill(&hook.id, &place, &delivery)?;
                    shared.reads.metrics().webhook_delivery("dead");
                    signals.space.notify_one();
                }
            }
        }
    }
    Ok(None)
}
