//! What the directory is asked to do, and what it answers.
//!
//! A node's commands reach the log as [`SignedCommands`]: the exact JSON text of a
//! [`CommandBatch`] and the issuer's Ed25519 signature over it, so every replica checks who
//! issued each change, and a relayed or replayed entry is caught.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::identity::{NodeCode, NodeKey, Unit};
use crate::policy::PolicyCommand;

/// A member of the federation as the directory records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its unit: code, tier, parent, name.
    pub unit: Unit,
    /// Where other nodes reach it.
    pub endpoint: String,
    /// Its Ed25519 batch-verifying key, hex.
    pub signing_key: String,
    /// Its signing certificate (PEM), issued by the federation CA; proves the key is the unit's.
    pub signing_certificate: String,
    /// BLAKE3 of its TLS certificate (DER), hex: the one certificate it is accepted with (empty
    /// once revoked, until it rotates to a new one).
    pub tls_fingerprint: String,
    /// Its TLS certificate (PEM), issued by the federation CA: proves the fingerprint is the
    /// unit's and says when it expires. Empty for members registered without it.
    #[serde(default)]
    pub tls_certificate: String,
    /// Fingerprints of TLS certificates it rotated away from and that are still accepted, until
    /// it (or its parent) revokes them.
    #[serde(default)]
    pub retiring_tls: Vec<String>,
    /// Signing keys it used before, each with when it was replaced.
    #[serde(default)]
    pub retired_keys: Vec<RetiredKey>,
    /// Its X25519 encryption key (HPKE, RFC 9180), hex: batches read for it are sealed to this
    /// key. Empty for members registered before batches were sealed.
    #[serde(default)]
    pub encryption_key: String,
    /// Whether it takes part in exchange.
    pub status: MemberStatus,
}

/// A signing key a member rotated away from: batches it signed before `until_micros` still
/// verify, so files and relayed batches made before a rotation keep their proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    /// The Ed25519 batch-verifying key, hex.
    pub signing_key: String,
    /// When it was replaced, microseconds since the Unix epoch, as the rotation states it.
    pub until_micros: i64,
}

/// New certificates and keys for a member: a TLS certificate, a signing certificate (with its
/// key), an encryption key, or several, each certificate PEM and issued by the federation CA for
/// the member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The member whose certificates change.
    pub node: NodeCode,
    /// The new TLS certificate (PEM).
    #[serde(default)]
    pub tls_certificate: Option<String>,
    /// The new signing certificate (PEM); the key it certifies becomes the member's signing key.
    #[serde(default)]
    pub signing_certificate: Option<String>,
    /// A new X25519 encryption key, hex: batches are sealed to it from the change on. The member
    /// keeps its old private key to open what was sealed before.
    #[serde(default)]
    pub encryption_key: Option<String>,
    /// When the change is made, microseconds since the Unix epoch: batches signed under the old
    /// signing key before then still verify.
    pub at_micros: i64,
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

impl MemberStatus {
    /// The status as written in the directory.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
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
    /// New certificates for a member, issued by the member itself or its parent. The TLS
    /// certificate replaced stays accepted until revoked, so the member switches without a moment
    /// where no node accepts it.
    Rotate(Rotation),
    /// The member or its parent revokes one of the member's TLS certificates, by fingerprint:
    /// each node refuses it from the moment its replica applies this.
    Revoke {
        /// The member.
        node: NodeCode,
        /// BLAKE3 of the certificate (DER), hex.
        tls_fingerprint: String,
    },
    /// The city names the directory's voters: itself and some of its districts (1, 3 or 5 in
    /// all). Every other active member replicates the directory as a learner.
    SetVoters(BTreeSet<NodeCode>),
    /// A change to roles, grants or access requests.
    Policy(PolicyCommand),
    /// The issuer anchors the head of its audit chain: entries up to `sequence` hash to `head`.
    AnchorAudit {
        /// Sequence number of the chain's last entry.
        sequence: u64,
        /// Hash of that entry, hex.
        head: String,
    },
}

/// Commands one node issues together, in order, under one sequence number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandBatch {
    /// The issuing node.
    pub issuer: NodeCode,
    /// Larger than any earlier batch of the issuer's: a replayed or reordered batch is refused.
    pub sequence: u64,
    /// The changes, applied one by one, each with its own reply.
    pub commands: Vec<DirectoryCommand>,
}

/// A log entry: a [`CommandBatch`] as the issuer signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCommands {
    /// The batch's JSON text, exactly as signed.
    pub body: String,
    /// Ed25519 signature over [`SIGNING_CONTEXT`] followed by `body`, hex.
    pub signature: String,
}

impl SignedCommands {
    /// Signs `batch` with the issuer's key.
    pub fn sign(batch: &CommandBatch, key: &NodeKey) -> Self {
        let body = serde_json::to_string(batch).expect("directory commands serialize to JSON");
        let signature = hex::encode(key.sign(SIGNING_CONTEXT, body.as_bytes()));
        Self { body, signature }
    }
}

/// Prefix of every signed directory entry, so the signature cannot be taken for a batch header's.
pub const SIGNING_CONTEXT: &[u8] = b"tierlink.v1.DirectoryEntry\0";

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
            DirectoryCommand::Rotate(r) => format!("rotate the certificates of {}", r.node),
            DirectoryCommand::Revoke {
                node,
                tls_fingerprint,
            } => format!("revoke certificate {tls_fingerprint} of {node}"),
            DirectoryCommand::Policy(p) => p.to_string(),
            DirectoryCommand::AnchorAudit { sequence, .. } => {
                format!("anchor audit entry {sequence}")
            }
            DirectoryCommand::SetVoters(v) => format!(
                "set voters {}",
                v.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
            ),
        };
        write!(f, "{} by {}", what, self.issuer)
    }
}
