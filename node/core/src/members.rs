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

/// What the directory says for one read, from one look at it.
#[derive(Debug)]
pub struct ReadTerms {
    /// The standing of the node that vouches for the asker (signed its requester).
    pub voucher: Option<Standing>,
    /// For a read produced here, what the policies decide for the asker.
    pub decision: Option<Result<Decision, Refusal>>,
}

/// A read produced here, as the policy decides it: producer, catalog, asker, and the day
/// (`YYYY-MM-DD`).
pub type Produced<'a> = (&'a NodeCode, &'a Catalog, &'a Asker, &'a str);

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

    /// Everything a vouched read asks of the directory, in one look: the standing of
    /// `voucher` and, when the read is `produced` here, the decision for its asker. A directory
    /// that can answer from one consistent view overrides this.
    fn terms(&self, voucher: &NodeCode, produced: Option<Produced<'_>>) -> ReadTerms {
        ReadTerms {
            voucher: self.standing(voucher),
            decision: produced.map(|(producer, catalog, asker, today)| {
                self.decide(producer, catalog, asker, today)
            }),
        }
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
