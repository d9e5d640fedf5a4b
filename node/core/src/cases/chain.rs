//! A case's chain: moves signed with their unit's Ed25519 key, each naming the BLAKE3 hash of
//! the signed move before it, and sealed to the unit a delivery is for.
//!
//! Checking a chain ([`check`]) needs only the federation directory: each move's signature
//! against its unit's registered key (or a key it rotated away from after the move was made),
//! each link, and each move against the tier rules ([`super::state::apply`]). So a unit that
//! receives a case, and anyone it later shows the case to, checks every move back to the raising.

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;
use tierlink_proto::v1::{CaseDelivery, CaseMove, SignedMove, SignedMoves};

use super::CaseError;
use super::state::{Case, apply};
use crate::identity::{EncryptionKeys, NodeCode, NodeKey};
use crate::members::Members;
use crate::signed::{Recipient, seal};

/// Prefix of every signed move, so its signature is taken for no other message's.
const SIGNING_CONTEXT: &[u8] = b"tierlink.v1.CaseMove\0";

/// Prefix of a delivery's HPKE info.
const DELIVERY_CONTEXT: &[u8] = b"tierlink.v1.CaseDelivery\0";

/// The most moves a case may have: a case that has gone round this often is a fault to look
/// into, and the bound keeps a delivery within one message.
pub const MAX_MOVES: u64 = 200;

/// The most characters of a note or a subject.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Signs `mv` with its unit's `key`.
pub fn sign(key: &NodeKey, mv: &CaseMove) -> SignedMove {
    let bytes = mv.encode_to_vec();
    SignedMove {
        signature: key.sign(SIGNING_CONTEXT, &bytes).to_vec(),
        r#move: bytes,
    }
}

/// The hash the next move names: BLAKE3 of the signed move's encoding.
pub fn link(signed: &SignedMove) -> Vec<u8> {
    blake3::hash(&signed.encode_to_vec()).as_bytes().to_vec()
}

/// Reads a signed move without checking it.
pub fn read(signed: &SignedMove) -> Result<CaseMove, CaseError> {
    CaseMove::decode(signed.r#move.as_slice())
        .map_err(|e| CaseError::Forged(format!("a move is unreadable: {e}")))
}

/// Checks the signature of one move against its unit's key in `members`.
fn check_signature(
    members: &dyn Members,
    signed: &SignedMove,
    mv: &CaseMove,
) -> Result<(), CaseError> {
    let node: NodeCode = mv
        .node
        .parse()
        .map_err(|_| CaseError::Forged(format!("move {} names no unit", mv.sequence)))?;
    let standing = members.standing(&node).ok_or_else(|| {
        CaseError::Forged(format!(
            "move {} of case {} is signed by {node}, which the federation directory does not know",
            mv.sequence, mv.case_id
        ))
    })?;
    let signature = Signature::from_slice(&signed.signature)
        .map_err(|_| CaseError::Forged(format!("move {} has no 64-byte signature", mv.sequence)))?;
    let message = [SIGNING_CONTEXT, &signed.r#move].concat();
    let verifies = std::iter::once(&standing.signing_key)
        .chain(standing.retired_keys.iter().map(|(key, _)| key))
        .filter(|key| standing.signed_with(key, mv.at_micros))
        .filter_map(|key| hex::decode(key).ok())
        .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .filter_map(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .any(|key| key.verify_strict(&message, &signature).is_ok());
    if verifies {
        Ok(())
    } else {
        Err(CaseError::Forged(format!(
            "move {} ({}) of case {} is not signed by {node}'s registered key",
            mv.sequence, mv.action, mv.case_id
        )))
    }
}

/// Checks a whole chain, raising first: every signature, every link, every move under the tier
/// rules. Returns the case as the chain leaves it.
pub fn check(members: &dyn Members, chain: &[SignedMove]) -> Result<Case, CaseError> {
    if chain.len() as u64 > MAX_MOVES {
        return Err(CaseError::Invalid(format!(
            "the chain has {} moves; a case holds at most {MAX_MOVES}",
            chain.len()
        )));
    }
    let mut case: Option<Case> = None;
    let mut previous: Vec<u8> = Vec::new();
    for (i, signed) in chain.iter().enumerate() {
        let mv = read(signed)?;
        if mv.sequence != i as u64 || mv.previous != previous {
            return Err(CaseError::Forged(format!(
                "move {i} of case {} does not link to the move before it",
                mv.case_id
            )));
        }
        check_signature(members, signed, &mv)?;
        case = Some(apply(case.as_ref(), &mv)?);
        previous = link(signed);
    }
    case.ok_or_else(|| CaseError::Invalid("the chain holds no moves".into()))
}

/// The HPKE info of a delivery: sender, receiver and case, each length-prefixed.
fn info(sender: &str, sealed_to: &str, case_id: &str) -> Vec<u8> {
    let mut info = DELIVERY_CONTEXT.to_vec();
    for part in [sender, sealed_to, case_id] {
        info.extend_from_slice(&(part.len() as u32).to_be_bytes());
        info.extend_from_slice(part.as_bytes());
    }
    info
}

/// Seals `chain` of case `case_id` from `sender` to `to`.
pub fn seal_delivery(
    sender: &NodeCode,
    to: &Recipient,
    case_id: &str,
    chain: Vec<SignedMove>,
) -> CaseDelivery {
    let plain = SignedMoves { moves: chain }.encode_to_vec();
    let (encapsulated_key, sealed) = seal::seal(
        &to.key,
        &info(sender.as_str(), to.node.as_str(), case_id),
        plain,
    );
    CaseDelivery {
        case_id: case_id.to_owned(),
        sender: sender.to_string(),
        sealed_to: to.node.to_string(),
        recipient_key: to.key.as_bytes().to_vec(),
        encapsulated_key,
        sealed,
    }
}

/// Opens a delivery sealed to `me`, holding `keys`: the chain it carries, not yet checked.
pub fn open_delivery(
    me: &NodeCode,
    keys: &EncryptionKeys,
    delivery: &CaseDelivery,
) -> Result<Vec<SignedMove>, CaseError> {
    if delivery.sealed_to != me.as_str() {
        return Err(CaseError::Invalid(format!(
            "the delivery is sealed to {}, not to {me}",
            delivery.sealed_to
        )));
    }
    let key = keys.find(&delivery.recipient_key).ok_or_else(|| {
        CaseError::Invalid(format!(
            "the delivery is sealed to an encryption key {me} does not hold: the sender's directory replica may be behind; it will be sent again"
        ))
    })?;
    let plain = seal::open(
        key,
        &delivery.encapsulated_key,
        &info(&delivery.sender, me.as_str(), &delivery.case_id),
        delivery.sealed.clone(),
    )
    .ok_or_else(|| {
        CaseError::Forged(format!(
            "the delivery of case {} from {} does not open: it was altered or sealed for another case",
            delivery.case_id, delivery.sender
        ))
    })?;
    let chain = SignedMoves::decode(plain.as_slice())
        .map_err(|e| CaseError::Forged(format!("the delivered chain is unreadable: {e}")))?
        .moves;
    if let Some(first) = chain.first() {
        let mv = read(first)?;
        if mv.case_id != delivery.case_id {
            return Err(CaseError::Forged(format!(
                "the delivery names case {} but carries case {}",
                delivery.case_id, mv.case_id
            )));
        }
    }
    Ok(chain)
}
