//! The federation directory: one replicated log (openraft) whose state machine holds the members
//! of the federation and the catalogs each has published, with every command checked against the
//! tier rules identically on every replica.
//!
//! Laid out as openraft's own examples: the type config, the commands and their rules, the log
//! store and the state machine, each in its own file. Both stores live in the node's sled
//! database, behind this module.

// openraft's traits fix the error type (`StorageError`, over 200 bytes); openraft allows this
// lint for the same reason.
#![allow(clippy::result_large_err)]

mod api;
pub mod client;
mod command;
mod log_store;
mod network;
mod replica;
mod service;
mod state;
mod state_machine;
mod type_config;

pub use api::DirectoryService;
pub use command::{
    CommandBatch, DirectoryCommand, DirectoryReply, DirectoryRequest, Member, MemberStatus,
    SignedCommands,
};
pub use log_store::LogStore;
pub use network::{Link, Network};
pub use replica::{DirectoryError, Replica, member_of};
pub use service::FederationService;
pub use state::{DirectoryState, PublishedCatalog};
pub use state_machine::StateMachine;
pub use type_config::{NodeId, TypeConfig, code_of, node_id};

/// A failure of the directory's storage, in openraft's terms.
pub type StorageError = openraft::StorageError<NodeId>;

#[cfg(test)]
mod tests;
