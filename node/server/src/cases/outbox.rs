//! Delivering each case's chain until every party holds it, and looking for overdue cases.
//!
//! Deliveries are attempted up to [`PARALLEL`] at a time; one that fails is attempted again
//! after a pause that doubles from a second up to a minute, and stays pending (shown as
//! undelivered) until the unit holds the chain, across restarts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tierlink_client::cases_client;
use tierlink_core::cases::chain;
use tierlink_core::identity::NodeCode;
use tierlink_core::signed::Recipient;

use super::store::Pending;
use super::{Cases, CasesError};

/// Deliveries attempted at once.
const PARALLEL: usize = 16;

/// The longest pause between attempts.
const MAX_PAUSE_MS: i64 = 60_000;

/// How long one attempt may take.
const ATTEMPT: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Starts the delivery and overdue loops of `cases`; [`Cases::stop`] ends them.
pub(super) fn start(cases: Arc<Cases>) {
    let delivering = tokio::spawn(deliver_loop(cases.clone()));
    let checking = tokio::spawn(overdue_loop(cases.clone()));
    cases
        .tasks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend([delivering, checking]);
}

async fn deliver_loop(cases: Arc<Cases>) {
    loop {
        let wait_ms = match deliver_due(&cases).await {
            Ok(Some(next_at)) => (next_at - now_ms()).clamp(0, MAX_PAUSE_MS),
            Ok(None) => MAX_PAUSE_MS,
            Err(e) => {
                tracing::warn!("case deliveries: {e}");
                5_000
            }
        };
        tokio::select! {
            _ = cases.queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
        }
    }
}

/// Attempts every delivery that is due; returns when the next one not yet due is.
async fn deliver_due(cases: &Arc<Cases>) -> Result<Option<i64>, CasesError> {
    let now = now_ms();
    let (due, later): (Vec<_>, Vec<_>) = cases
        .store
        .pending()?
        .into_iter()
        .partition(|(_, _, p)| p.next_at_ms <= now);
    futures_util::stream::iter(due)
        .map(|(node, case, pending)| attempt(cases, node, case, pending))
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
    let still_due = cases
        .store
        .pending()?
        .into_iter()
        .map(|(_, _, p)| p.next_at_ms)
        .chain(later.iter().map(|(_, _, p)| p.next_at_ms))
        .min();
    Ok(still_due)
}

/// One attempt to bring `node` the chain of `case`, settled in the store either way.
async fn attempt(cases: &Arc<Cases>, node: NodeCode, case: String, pending: Pending) {
    let outcome = async {
        let chain = cases.store.chain(&case).map_err(|e| e.to_string())?;
        let standing = cases
            .directory
            .standing(&node)
            .ok_or_else(|| format!("{node} is not in the federation directory"))?;
        let to = Recipient {
            key: standing.recipient(&node)?,
            node: node.clone(),
        };
        let delivery = chain::seal_delivery(&cases.me, &to, &case, chain);
        let channel = cases
            .peers
            .channel(&node)
            .await
            .map_err(|e| tierlink_client::error_chain(&e))?;
        let receipt = tokio::time::timeout(ATTEMPT, cases_client(channel).deliver(delivery))
            .await
            .map_err(|_| format!("{node} did not answer within {}s", ATTEMPT.as_secs()))?
            .map_err(|s| format!("{node}: {}", s.message()))?
            .into_inner();
        Ok::<u64, String>(receipt.held)
    }
    .await;
    let attempts = pending.attempts + 1;
    let failed = Pending {
        moves: pending.moves,
        attempts,
        next_at_ms: now_ms() + (1_000i64 << attempts.min(6)).min(MAX_PAUSE_MS),
        last_error: outcome.as_ref().err().cloned().unwrap_or_default(),
    };
    if let Err(e) = &outcome {
        tracing::warn!(case = %case, to = %node, attempts, "case not delivered yet: {e}");
    }
    let _writing = cases.writing.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = cases
        .store
        .settle(&node, &case, &pending, outcome.ok(), failed)
    {
        tracing::warn!(case = %case, to = %node, "a delivery's outcome was not kept: {e}");
    }
}

async fn overdue_loop(cases: Arc<Cases>) {
    let every = Duration::from_millis(cases.settings.check_ms.max(100));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = cases.look_for_overdue().await {
            tracing::warn!("looking for overdue cases: {e}");
        }
    }
}
