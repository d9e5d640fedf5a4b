//! The signed statement of who asks: a principal's node authenticates it, then signs a
//! [`Requester`] naming the principal, its role, the purpose and the one request it is for.
//! Producers and relays check it with the node's key from the federation directory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;
use tierlink_proto::v1::{Requester, SignedRequester};

use crate::identity::{NodeCode, NodeKey};
use crate::members::Standing;
use crate::policy::Asker;

/// Prefix of every signed requester, so the signature cannot be taken for another message's.
const SIGNING_CONTEXT: &[u8] = b"tierlink.v1.Requester\0";

/// How far a requester's time may be from the producer's clock: long enough for relays and
/// skewed clocks, short enough that a captured requester is soon worthless.
const MAX_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// Signs `requester` with its node's key.
pub fn sign(key: &NodeKey, requester: &Requester) -> SignedRequester {
    let requester = requester.encode_to_vec();
    let signature = key.sign(SIGNING_CONTEXT, &requester).to_vec();
    SignedRequester {
        requester,
        signature,
    }
}

/// A signed requester as read, not yet checked: who it says asks, and which node vouches.
#[derive(Debug)]
pub struct Claim {
    requester: Requester,
    node: NodeCode,
}

/// Reads a signed requester: the claim to check with [`Claim::verify`] once the vouching node's
/// standing is known. The reason says what is unreadable.
pub fn claim(signed: &SignedRequester) -> Result<Claim, String> {
    let requester = Requester::decode(signed.requester.as_slice())
        .map_err(|e| format!("the requester is unreadable: {e}"))?;
    let node = requester
        .node
        .parse()
        .map_err(|e| format!("the requester's node: {e}"))?;
    Ok(Claim { requester, node })
}

impl Claim {
    /// The node that signed the requester, vouching for its principal.
    pub fn node(&self) -> &NodeCode {
        &self.node
    }

    /// Who the requester says asks; to be trusted only once [`Claim::verify`] has passed.
    pub fn asker(&self) -> Asker {
        let r = &self.requester;
        Asker {
            node: self.node.clone(),
            principal: r.principal.clone(),
            role: r.role.clone(),
            purpose: r.purpose.clone(),
            grant: (!r.grant.is_empty()).then(|| r.grant.clone()),
        }
    }

    /// Checks the claim: signed (`signed`) by the registered key of its node, whose standing in
    /// the directory is `standing`, for this request, at time `now_micros`. Returns who asks;
    /// the reason says what failed.
    pub fn verify(
        self,
        signed: &SignedRequester,
        standing: Option<&Standing>,
        producer: &NodeCode,
        catalog: &str,
        request_id: &str,
        now_micros: i64,
    ) -> Result<Asker, String> {
        let node = &self.node;
        let standing = standing.ok_or_else(|| {
            format!(
                "{node} is not in the federation directory, so its principals cannot be vouched for"
            )
        })?;
        standing.admit(node)?;
        let key = hex::decode(&standing.signing_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| format!("the directory holds no usable key for {node}"))?;
        let signature = Signature::from_slice(&signed.signature)
            .map_err(|_| "the requester's signature is not 64 bytes".to_string())?;
        key.verify_strict(&[SIGNING_CONTEXT, &signed.requester].concat(), &signature)
            .map_err(|_| format!("the requester is not signed by {node}'s registered key"))?;
        let r = &self.requester;
        if r.producer != producer.as_str() || r.catalog != catalog || r.request_id != request_id {
            return Err(format!(
                "the requester was signed for catalog {} of {} (request {}), not this request",
                r.catalog, r.producer, r.request_id
            ));
        }
        if (now_micros - r.issued_at_micros).abs() > MAX_SKEW_MICROS {
            return Err(
                "the requester was signed more than five minutes from now: ask again, and check both nodes' clocks"
                    .into(),
            );
        }
        Ok(self.asker())
    }
}

/// The requests a node has accepted requesters for lately: a requester is good for one read, so
/// one captured on the way (by a relay, say) cannot be played again while it is still fresh.
#[derive(Default)]
pub struct SeenRequests(Mutex<Seen>);

/// A request: the node that vouched for it and its id.
type Request = (NodeCode, String);

#[derive(Default)]
struct Seen {
    /// When each request was first used, microseconds since the Unix epoch.
    at: HashMap<Request, i64>,
    /// The same requests in the order they were first used, so the oldest are forgotten first
    /// without looking at the others.
    order: VecDeque<(i64, Request)>,
}

impl SeenRequests {
    /// Records the first use of `request_id` from `node` at `now_micros`; refuses a second use.
    /// Entries are forgotten once any requester they could match is too old to be accepted.
    pub fn first_use(
        &self,
        node: &NodeCode,
        request_id: &str,
        now_micros: i64,
    ) -> Result<(), String> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let seen = &mut *seen;
        while let Some((at, _)) = seen.order.front()
            && now_micros - *at > 2 * MAX_SKEW_MICROS
        {
            if let Some((_, request)) = seen.order.pop_front() {
                seen.at.remove(&request);
            }
        }
        let request = (node.clone(), request_id.to_owned());
        if seen.at.contains_key(&request) {
            return Err(format!(
                "request {request_id} from {node} was already served: a requester is good for one read; ask again"
            ));
        }
        seen.at.insert(request.clone(), now_micros);
        seen.order.push_back((now_micros, request));
        Ok(())
    }

    /// How many requests are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).at.len()
    }
}

#[cfg(test)]
mod tests;
