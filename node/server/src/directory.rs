//! The federation directory: one replicated log (openraft) whose state machine holds the members
//! of the federation and the catalogs each has published, with every command checked against the
//! tier rules identically on every replica.
//!
//! Laid out as openraft's own examples: the type config, the log store, the state machine, the
//! network and the services, each in its own file. The commands and their rules are plain data in
//! `tierlink-core` (`tierlink_core::directory`); both stores live in the node's store.

// openraft's traits fix the error type (`StorageError`, over 200 bytes); openraft allows this
// lint for the same reason.
#![allow(clippy::result_large_err)]

mod api;
mod log_store;
mod network;
mod relay;
mod replica;
mod service;
mod state_machine;
mod type_config;
mod voters;

pub use api::DirectoryService;
pub use log_store::LogStore;
pub use network::{Link, Network};
pub use replica::{DirectoryError, DirectoryGauges, Replica, member_of};
pub use service::{FederationService, VotersOnly};
pub use state_machine::StateMachine;
pub use tierlink_core::directory::{
    CommandBatch, DirectoryCommand, DirectoryReply, DirectoryRequest, DirectoryState, Member,
    MemberStatus, PublishedCatalog, SignedCommands,
};
pub use type_config::{NodeId, TypeConfig, code_of, node_id};

/// A failure of the directory's storage, in openraft's terms.
pub type StorageError = openraft::StorageError<NodeId>;

#[cfg(test)]
mod tests;
