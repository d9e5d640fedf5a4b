//! What the directory is asked to do, and what it answers.

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::identity::{NodeCode, Unit};

/// A member of the federation as the directory records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its unit: code, tier, parent, name.
    pub unit: Unit,
    /// Where other nodes reach it.
    pub endpoint: String,
    /// Its Ed25519 batch-verifying key, hex.
    pub signing_key: String,
    /// SHA-256 of its TLS certificate, hex.
    pub tls_fingerprint: String,
    /// Whether it takes part in exchange.
    pub status: MemberStatus,
}

/// Where a member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Registered, waiting for its parent's approval.
    Pending,
    /// Approved: a full member.
    Active,
    /// Suspended by its parent: no exchange with it.
    Suspended,
}

/// A change to the directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryCommand {
    /// Registers a unit under the issuer (the city founds the directory by registering itself).
    Register(Member),
    /// The parent approves a pending member.
    Approve(NodeCode),
    /// The parent suspends a member.
    Suspend(NodeCode),
    /// The issuer publishes (or republishes) one of its catalogs.
    Publish(Catalog),
    /// The issuer withdraws one of its catalogs.
    Withdraw(String),
}

/// A command and the node that issues it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryRequest {
    /// The issuing node.
    pub issuer: NodeCode,
    /// The change.
    pub command: DirectoryCommand,
}

/// The directory's answer to a request: applied, or rejected with a reason a user can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryReply {
    /// The command took effect.
    Applied {
        /// Revision of the directory after the change (one more per applied change).
        revision: u64,
    },
    /// The command was refused and changed nothing.
    Rejected {
        /// Why, and what to do.
        reason: String,
    },
}

impl std::fmt::Display for DirectoryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.command {
            DirectoryCommand::Register(m) => format!("register {}", m.unit.code),
            DirectoryCommand::Approve(c) => format!("approve {c}"),
            DirectoryCommand::Suspend(c) => format!("suspend {c}"),
            DirectoryCommand::Publish(c) => format!("publish {}", c.code),
            DirectoryCommand::Withdraw(c) => format!("withdraw {c}"),
        };
        write!(f, "{} by {}", what, self.issuer)
    }
}
