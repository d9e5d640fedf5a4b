//! What the exchange needs to know of the federation: where each member is reached, which key
//! signs its batches, whether it may take part at all, and what the policies decide for a
//! request. The federation directory answers; the exchange only asks, so it depends on no replica.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::catalog::Catalog;
use crate::directory::Member;
use crate::identity::{NodeCode, RecipientKey};
use crate::policy::{Asker, Decision, Policies, Refusal};

/// A member as the directory records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Where it is reached.
    pub endpoint: String,
    /// Its registered Ed25519 batch-signing key, hex.
    pub signing_key: String,
    /// "pending", "active" or "suspended".
    pub status: String,
    /// BLAKE3 fingerprints (hex) of the TLS certificates it is accepted with: the registered one
    /// and any it is rotating away from. Empty once all are revoked.
    pub tls_fingerprints: Vec<String>,
    /// Signing keys it rotated away from (hex), each with when it was replaced (µs since the
    /// Unix epoch).
    pub retired_keys: Vec<(String, i64)>,
    /// Its registered X25519 encryption key, hex: what batches read for it are sealed to. Empty
    /// for a member registered without one.
    pub encryption_key: String,
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

    /// Whether `fingerprint` (BLAKE3 of a TLS certificate's DER, hex) is a certificate the
    /// member is accepted with.
    pub fn presents(&self, code: &NodeCode, fingerprint: &str) -> Result<(), String> {
        if self.tls_fingerprints.iter().any(|f| f == fingerprint) {
            Ok(())
        } else if self.tls_fingerprints.is_empty() {
            Err(format!(
                "{code} has no TLS certificate registered in the federation directory (revoked): its parent rotates it in with `tierlink cert rotate`"
            ))
        } else {
            Err(format!(
                "this certificate ({fingerprint}) is not the one registered for {code}: connect with the certificate the directory holds for it, or rotate it in with `tierlink cert rotate`"
            ))
        }
    }

    /// The key to seal a batch for the member `code` to: its registered encryption key.
    pub fn recipient(&self, code: &NodeCode) -> Result<RecipientKey, String> {
        if self.encryption_key.is_empty() {
            return Err(format!(
                "{code} has no encryption key registered in the federation directory, so nothing can be sealed to it: its administrator registers one with `tierlink cert rotate`"
            ));
        }
        RecipientKey::from_hex(&self.encryption_key)
            .map_err(|e| format!("{code}'s registered encryption key is unusable: {e}"))
    }

    /// Whether a batch made at `created_micros` (µs since the Unix epoch) verifies under
    /// `key` (hex): the member's registered key, or a key it rotated away from after that time.
    pub fn signed_with(&self, key: &str, created_micros: i64) -> bool {
        self.signing_key == key
            || self
                .retired_keys
                .iter()
                .any(|(old, until)| old == key && created_micros < *until)
    }
}

/// A member as the exchange sees it.
impl From<&Member> for Standing {
    fn from(m: &Member) -> Self {
        Standing {
            endpoint: m.endpoint.clone(),
            signing_key: m.signing_key.clone(),
            status: m.status.as_str().to_owned(),
            tls_fingerprints: accepted_tls(m.tls_fingerprint.clone(), m.retiring_tls.clone()),
            retired_keys: m
                .retired_keys
                .iter()
                .map(|k| (k.signing_key.clone(), k.until_micros))
                .collect(),
            encryption_key: m.encryption_key.clone(),
        }
    }
}

/// The TLS fingerprints a member is accepted with: the registered one (unless revoked) first.
pub(crate) fn accepted_tls(current: String, retiring: Vec<String>) -> Vec<String> {
    std::iter::once(current)
        .filter(|f| !f.is_empty())
        .chain(retiring)
        .collect()
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

    /// Whether the directory has any member: once it has, a node it does not know is a stranger,
    /// not a member of a directory still forming.
    fn is_formed(&self) -> bool {
        true
    }

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

    fn is_formed(&self) -> bool {
        !self.0.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}
