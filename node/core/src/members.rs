//! What the exchange needs to know of the federation: where each member is reached, which key
//! signs its batches, whether it may take part at all, and what the policies decide for a
//! request. The federation directory answers; the exchange only asks, so it depends on no replica.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::catalog::Catalog;
use crate::identity::NodeCode;
use crate::policy::{Asker, Decision, Policies, Refusal};

/// A member as the directory records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// Where it is reached.
    pub endpoint: String,
    /// Its registered Ed25519 batch-signing key, hex.
    pub signing_key: String,
    /// "pending", "active" or "suspended".
    pub status: String,
}

impl Standing {
    /// Whether exchange with the member is allowed: only active members take part.
    pub fn admit(&self, code: &NodeCode) -> Result<(), String> {
        if self.status == "active" {
            Ok(())
        } else {
            Err(format!(
                "{code} is {} in the federation directory: no exchange with it until its parent approves it",
                self.status
            ))
        }
    }
}

/// The members the exchange can look up. A node unknown to the directory is judged by its
/// CA-issued certificate alone (a directory not yet formed, or a file checked offline).
pub trait Members: Send + Sync {
    /// The member `code`, if the directory knows it.
    fn standing(&self, code: &NodeCode) -> Option<Standing>;

    /// What `asker` gets of `catalog` on `producer` today (`YYYY-MM-DD`), under the directory's
    /// policies. Without policies, nothing is granted.
    fn decide(
        &self,
        producer: &NodeCode,
        catalog: &Catalog,
        asker: &Asker,
        today: &str,
    ) -> Result<Decision, Refusal> {
        Policies::default().decide(producer, catalog, asker, today)
    }
}

/// A copy of the directory's members, fetched from a node (for clients outside a node).
#[derive(Default)]
pub struct MemberList(RwLock<HashMap<NodeCode, Standing>>);

impl MemberList {
    /// Replaces the list.
    pub fn replace(&self, members: HashMap<NodeCode, Standing>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = members;
    }
}

impl Members for MemberList {
    fn standing(&self, code: &NodeCode) -> Option<Standing> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
            .cloned()
    }
}
