//! Anchoring the chain's head where every node can see it: the federation directory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::log::AuditLog;

/// A future a board returns.
pub type BoardFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Where a node's audit head is anchored: the directory, as this node's replica sees it.
pub trait AnchorBoard: Send + Sync {
    /// This node's latest anchor: the entry's sequence, its hash, and the directory revision.
    fn anchored(&self) -> Option<(u64, String, u64)>;
    /// Anchors entry `sequence` with hash `head`.
    fn anchor(&self, sequence: u64, head: String) -> BoardFuture<'_, ()>;
}

/// Anchors the log's head if it moved since the last anchor; returns the entry anchored.
pub async fn anchor_head(log: &AuditLog, board: &dyn AnchorBoard) -> Result<Option<u64>, String> {
    let (sequence, head) = log.head();
    let last = board.anchored().map_or(0, |(s, _, _)| s);
    if sequence <= last {
        return Ok(None);
    }
    board.anchor(sequence, head).await?;
    Ok(Some(sequence))
}

/// Anchors the head every `every`, until the board goes away.
pub fn anchor_periodically(
    log: Arc<AuditLog>,
    board: std::sync::Weak<dyn AnchorBoard>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(board) = board.upgrade() else { return };
            if let Err(e) = anchor_head(&log, board.as_ref()).await {
                tracing::warn!(error = %e, "cannot anchor the audit head; will try again");
            }
        }
    })
}
