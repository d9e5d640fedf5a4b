//! Cross-checks between nodes (对比核查): the `tierlink.v1.CrossCheck` service runs the private
//! set intersection of [`tierlink_core::crosscheck`] between this node and another, over the
//! federation's mutual TLS, and keeps each run at both ends ([`store`]).
//!
//! The initiating node's administrator calls `Run` for one of the node's principals; the read
//! service decides the principal's grant on this node's catalog and signs a requester for the
//! counterpart's ([`crate::read::crosscheck`]). The node then opens `Compare` on the counterpart,
//! whose read service verifies the requester and decides there. Elements travel in chunks of at
//! most [`CHUNK_BYTES`], whole records at a time: the initiator sends its offer, the counterpart
//! answers it and sends its own, the initiator answers that; round two likewise for the records
//! that differ. The counterpart keeps its run and audit entry, says so, and the initiator keeps
//! its own. A run broken off keeps nothing at either end but a refused audit entry: run it again.
//!
//! For the cases code: [`CrossChecks::mismatches`] lists a run's mismatches as this node
//! describes them, [`CrossChecks::resolve`] turns the other node's reference to one of this
//! node's records back into its key, and [`CrossChecks::still_stands`] tells whether a mismatch
//! still stands in a later run of the same pair.

mod service;
pub mod store;

pub use service::CrossCheckService;
pub use store::{CrossChecks, Run, RunError};

/// Most bytes of elements and references in one chunk: whole records, within any node's
/// request limit for `Compare` ([`crate::limits`]).
pub const CHUNK_BYTES: usize = 1 << 20;
