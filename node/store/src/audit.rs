//! The audit: every exchange leaves an entry on the node that produced it and on the node whose
//! principal asked. Entries form a hash chain in the node's store, and the chain's head is
//! anchored in the federation directory from time to time, so an entry altered, removed or
//! reordered is found by [`AuditLog::verify`] on the node and against the anchor anywhere. An
//! entry is on disk before its append returns, and appends made together share one flush
//! (group commit, `commit.rs`). The
//! gRPC service that answers audit queries is the node's (`tierlink-node`).

mod anchor;
mod commit;
mod entry;
mod log;

pub use anchor::{AnchorBoard, BoardFuture, anchor_head, anchor_periodically};
pub use entry::{AuditEntry, AuditFilter, MAX_KEYS, Outcome, Side};
pub use log::{AuditError, AuditLog, Break, GENESIS};

#[cfg(test)]
mod tests;
