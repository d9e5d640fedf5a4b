//! Webhooks for systems that take HTTP and nothing else: a catalog's change feed, read as one of
//! this node's principals, POSTed to a receiver's URL as the Standard Webhooks specification
//! says, signed `v1a` (Ed25519) by the node's batch-signing key, so the receiver verifies with
//! the node's signing certificate and holds no secret, and optionally `v1` (HMAC-SHA256) too.
//!
//! Delivery is at least once, in the feed's order: each webhook has one delivery in flight, and a
//! delivery keeps its `webhook-id` on every retry and replay, for the receiver to drop repeats.
//! Retries follow node.toml's `[webhooks] retry_ms`; after the last, the delivery goes to the
//! dead-letter list, from which the administrator replays it (to the end of the queue: a
//! receiver that may get an older version after a newer one keeps the higher `_version` of each
//! `_key`). Queues and dead letters are in the store and survive a restart; a webhook whose feed
//! ends for a lasting reason (its grant revoked, a resync needed) stops and says why.
//!
//! # Layout
//! - [`store`]: the `webhooks` keyspace: webhooks, resume tokens, queues, dead letters.
//! - [`deliver`]: allowed receivers, signatures, one attempt, the retry schedule.
//! - `worker`: one webhook's feed and queue at work.
//! - [`service`]: the `tierlink.v1.Webhooks` gRPC service, for the node's administrator.

pub mod deliver;
pub mod service;
pub mod store;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tierlink_core::signed::{BatchOpener, BatchVerifier};
use tierlink_proto::v1::{AddWebhookRequest, AddWebhookResponse, QueryRequest};
use tierlink_store::StoreError;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::admission::Caller;
use crate::read::{ReadError, ReadService};
use deliver::{Receivers, Sender};
use store::{Hook, Hooks};
use worker::Signals;

/// Why a webhook was refused or could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request itself is wrong (no principal, a URL not allowed, no such webhook).
    #[error("{0}")]
    Invalid(String),
    /// No webhook has this id.
    #[error("no webhook {0}: `tierlink webhook list` shows the node's webhooks")]
    NotFound(String),
    /// The read path refused the webhook's read.
    #[error("the webhook is refused: {0}")]
    Refused(ReadError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What every webhook worker shares.
struct Shared {
    hooks: Hooks,
    reads: Arc<ReadService>,
    sender: Sender,
    verifier: BatchVerifier,
    opener: BatchOpener,
}

impl Shared {
    /// The node itself, reading for its principal.
    fn caller(&self) -> Caller {
        Caller {
            node: self.reads.me().clone(),
            is_self: true,
            is_member: true,
        }
    }
}

/// A webhook at work.
struct Running {
    task: JoinHandle<()>,
    signals: Arc<Signals>,
}

/// This node's webhooks: kept in its store, each delivered by a worker of its own.
pub struct Webhooks {
    shared: Arc<Shared>,
    receivers: Receivers,
    running: Mutex<HashMap<String, Running>>,
}

impl Webhooks {
    /// The webhooks in `hooks`, read through `reads`, their batches checked with `verifier` and
    /// opened with `opener` (this node's), delivered by `sender` to the `receivers` allowed.
    pub fn new(
        hooks: Hooks,
        reads: Arc<ReadService>,
        verifier: BatchVerifier,
        opener: BatchOpener,
        sender: Sender,
        receivers: Receivers,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                hooks,
                reads,
                sender,
                verifier,
                opener,
            }),
            receivers,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a worker for every stored webhook that has not stopped.
    pub fn start(&self) -> Result<(), StoreError> {
        for hook in self.shared.hooks.all()? {
            if hook.stopped.is_empty() {
                self.spawn(hook);
            }
        }
        Ok(())
    }

    fn spawn(&self, hook: Hook) {
        let signals = Arc::new(Signals::default());
        let shared = self.shared.clone();
        let id = hook.id.clone();
        let task = tokio::spawn({
            let signals = signals.clone();
            async move {
                let id = hook.id.clone();
                let reason = worker::run(shared.clone(), hook, signals).await;
                tracing::warn!(webhook = %id, %reason, "webhook stopped");
                if let Err(e) = shared.hooks.stop(&id, &reason) {
                    tracing::error!(webhook = %id, error = %e, "cannot keep why a webhook stopped");
                }
            }
        });
        self.lock().insert(id, Running { task, signals });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every worker and waits for them to end: what they hold of the store is let go.
    /// A delivery in flight is attempted again after the restart, with the same `webhook-id`.
    pub async fn stop(&self) {
        let running: Vec<Running> = self.lock().drain().map(|(_, r)| r).collect();
        for r in running {
            r.task.abort();
            let _ = r.task.await;
        }
    }

    /// Adds a webhook after taking its decision through the read path, and starts it.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] for a URL not under a configured receiver or a request without
    /// a principal; [`WebhookError::Refused`] when the principal may not read the catalog (or is
    /// not this node's, or its token does not hold), or `from` is not a token to follow from.
    pub async fn add(
        &self,
        request: AddWebhookRequest,
    ) -> Result<AddWebhookResponse, WebhookError> {
        let credential = request.credential.unwrap_or_default();
        if credential.principal.is_empty() || credential.token.is_empty() {
            return Err(WebhookError::Invalid(
                "name the principal of this node the feed is read as, with a token it reads with (an API token of scope read made for the webhook, say)".into(),
            ));
        }
        let url = self
            .receivers
            .check(&request.url)
            .map_err(WebhookError::Invalid)?;
        let target = self
            .shared
            .reads
            .target(&request.target)
            .map_err(WebhookError::Refused)?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|e| WebhookError::Invalid(format!("no randomness for an id: {e}")))?;
        let secret = request
            .hmac
            .then(deliver::new_secret)
            .transpose()
            .map_err(|e| WebhookError::Invalid(format!("no randomness for a secret: {e}")))?;
        let hook = Hook {
            id: format!("wh_{}", hex::encode(id)),
            catalog: request.catalog,
            target: target.to_string(),
            principal: credential.principal,
            token: credential.token,
            role: credential.role,
            purpose: credential.purpose,
            grant: credential.grant,
            url: url.to_string(),
            secret,
            created_at_micros: chrono::Utc::now().timestamp_micros(),
            stopped: String::new(),
        };
        let token = self
            .start_token(&hook, request.from)
            .await
            .map_err(WebhookError::Refused)?;
        self.shared.hooks.add(&hook, &token)?;
        self.shared.hooks.flush().await?;
        tracing::info!(webhook = %hook.id, catalog = %hook.catalog, url = %hook.url, "webhook added");
        let response = AddWebhookResponse {
            id: hook.id.clone(),
            secret: hook.secret.clone().unwrap_or_default(),
            resume_token: token,
        };
        self.spawn(hook);
        Ok(response)
    }

    /// Where `hook`'s feed starts, decided through the read path as its principal: `from`, once a
    /// feed opens from it; or, for from now, the token a one-record query carries (the position
    /// before it read), since a feed says where it is only with its first batch.
    async fn start_token(&self, hook: &Hook, from: String) -> Result<String, ReadError> {
        let caller = self.shared.caller();
        if !from.is_empty() {
            // The decision is taken, and the token checked, as the feed opens: then it is left.
            let read = worker::subscribe(hook, from.clone());
            drop(self.shared.reads.read(&caller, read.into()).await?);
            return Ok(from);
        }
        let query = QueryRequest {
            scope: Some(worker::scope(hook)),
            batch_size: 1,
            limit: 1,
            ..Default::default()
        };
        let mut stream = self.shared.reads.read(&caller, query.into()).await?;
        let mut token = String::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if token.is_empty() {
                let header = self
                    .shared
                    .verifier
                    .verify(&batch)
                    .map_err(|e| ReadError::unavailable(e.to_string()))?;
                token = header.resume_token;
            }
        }
        Ok(token)
    }

    /// Every webhook, with its resume token, and its deliveries queued and dead.
    pub fn list(&self) -> Result<Vec<(Hook, String, u64, u64)>, StoreError> {
        let hooks = &self.shared.hooks;
        hooks
            .all()?
            .into_iter()
            .map(|hook| {
                let token = hooks.token(&hook.id)?;
                let pending = hooks.pending(&hook.id)?;
                let dead = hooks.dead_count(&hook.id)?;
                Ok((hook, token, pending, dead))
            })
            .collect()
    }

    fn known(&self, id: &str) -> Result<Hook, WebhookError> {
        self.shared
            .hooks
            .get(id)?
            .ok_or_else(|| WebhookError::NotFound(id.to_owned()))
    }

    /// Stops webhook `id` and forgets it; returns how many deliveries, queued or dead, went with it.
    pub async fn remove(&self, id: &str) -> Result<u64, WebhookError> {
        self.known(id)?;
        let running = self.lock().remove(id);
        if let Some(r) = running {
            r.task.abort();
            let _ = r.task.await;
        }
        let dropped = self.shared.hooks.remove(id)?;
        self.shared.hooks.flush().await?;
        tracing::info!(webhook = %id, dropped, "webhook removed");
        Ok(dropped)
    }

    /// The dead letters of webhook `id`, or of every webhook.
    pub fn dead(&self, id: Option<&str>) -> Result<Vec<(String, store::Delivery)>, WebhookError> {
        let ids = match id {
            Some(id) => vec![self.known(id)?.id],
            None => self.shared.hooks.all()?.into_iter().map(|h| h.id).collect(),
        };
        let mut letters = Vec::new();
        for id in ids {
            for letter in self.shared.hooks.dead(&id)? {
                letters.push((id.clone(), letter));
            }
        }
        Ok(letters)
    }

    /// Starts stopped webhook `id` again where it stopped (its queue first, then its feed from
    /// its token), with a new `token` for its principal when given; returns why it had stopped
    /// and how many deliveries wait.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] when it is running.
    pub async fn resume(
        &self,
        id: &str,
        token: Option<&str>,
    ) -> Result<(String, u64), WebhookError> {
        let mut hook = self.known(id)?;
        if self.lock().get(id).is_some_and(|r| !r.task.is_finished()) {
            return Err(WebhookError::Invalid(format!(
                "webhook {id} is running: only a stopped one is resumed (`tierlink webhook list` says why one stopped)"
            )));
        }
        let stopped = std::mem::take(&mut hook.stopped);
        self.shared.hooks.resume(&mut hook, token)?;
        self.shared.hooks.flush().await?;
        let pending = self.shared.hooks.pending(id)?;
        tracing::info!(webhook = %id, %stopped, pending, "webhook resumed");
        self.spawn(hook);
        Ok((stopped, pending))
    }

    /// Moves webhook `id`'s dead letter `delivery` (or every one) to the end of its queue.
    pub async fn replay(&self, id: &str, delivery: Option<&str>) -> Result<u32, WebhookError> {
        self.known(id)?;
        let replayed = self.shared.hooks.replay(id, delivery, worker::now_ms())?;
        if let (Some(wanted), 0) = (delivery, replayed) {
            return Err(WebhookError::NotFound(format!(
                "{id} with dead letter {wanted} (`tierlink webhook dead {id}` lists them)"
            )));
        }
        self.shared.hooks.flush().await?;
        if let Some(r) = self.lock().get(id) {
            r.signals.queued.notify_one();
        }
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests;
