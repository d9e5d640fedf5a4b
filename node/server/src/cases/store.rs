//! Cases as the node keeps them, in its store's `cases` keyspace:
//!
//! ```text
//! c/CASE/SEQ     a signed move (SignedMove), SEQ big-endian u64: the chain, in order
//! o/NODE/CASE    a pending delivery to NODE (JSON): the chain is sent until NODE holds it
//! n/YYYYMMDD     the last number given to a case raised here that day (u64, big-endian)
//! ```
//!
//! A move is appended with its pending deliveries (and, for a raising, its number) in one atomic
//! apply: a crash neither keeps a move it has not queued nor queues one it has not kept.

use prost::Message;
use serde::{Deserialize, Serialize};
use tierlink_core::identity::NodeCode;
use tierlink_proto::v1::SignedMove;
use tierlink_store::{Keyspace, StoreError};

/// A pending delivery of a case's chain to one unit.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    /// Moves the unit must end up holding.
    pub moves: u64,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due, milliseconds since the Unix epoch.
    pub next_at_ms: i64,
    /// Why the last attempt failed.
    pub last_error: String,
}

/// The `cases` keyspace.
#[derive(Clone)]
pub struct CaseStore {
    space: Keyspace,
}

fn move_key(case: &str, sequence: u64) -> Vec<u8> {
    let mut key = format!("c/{case}/").into_bytes();
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn pending_key(node: &NodeCode, case: &str) -> Vec<u8> {
    format!("o/{node}/{case}").into_bytes()
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("the cases keyspace holds an unreadable entry: {e}"))
}

impl CaseStore {
    /// The cases kept in `space`.
    pub fn new(space: Keyspace) -> Self {
        Self { space }
    }

    /// The chain of `case`, raising first; empty when the case is not kept here.
    pub fn chain(&self, case: &str) -> Result<Vec<SignedMove>, StoreError> {
        let from = format!("c/{case}/").into_bytes();
        let to = format!("c/{case}0").into_bytes();
        self.space
            .range(&from, Some(&to))?
            .into_iter()
            .map(|(_, v)| SignedMove::decode(v.as_slice()).map_err(store_error))
            .collect()
    }

    /// Every chain kept, by case id (ascending).
    pub fn chains(&self) -> Result<Vec<(String, Vec<SignedMove>)>, StoreError> {
        let mut chains: Vec<(String, Vec<SignedMove>)> = Vec::new();
        for (k, v) in self.space.range(b"c/", Some(b"c0"))? {
            let case = k
                .get(2..k.len().saturating_sub(9))
                .and_then(|c| std::str::from_utf8(c).ok())
                .ok_or_else(|| store_error("a move key without a case id"))?
                .to_owned();
            let signed = SignedMove::decode(v.as_slice()).map_err(store_error)?;
            match chains.last_mut() {
                Some((last, moves)) if *last == case => moves.push(signed),
                _ => chains.push((case, vec![signed])),
            }
        }
        Ok(chains)
    }

    /// Appends `moves` to the chain of `case`, which holds `held` moves, and queues a delivery
    /// of the chain to each unit of `deliver_to`; with `number`, takes a day's case number.
    pub fn append(
        &self,
        case: &str,
        held: u64,
        moves: &[SignedMove],
        deliver_to: &[NodeCode],
        number: Option<(&str, u64)>,
    ) -> Result<(), StoreError> {
        let total = held + moves.len() as u64;
        let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = moves
            .iter()
            .enumerate()
            .map(|(i, m)| (move_key(case, held + i as u64), Some(m.encode_to_vec())))
            .collect();
        for node in deliver_to {
            let pending = Pending {
                moves: total,
                ..Pending::default()
            };
            let value = serde_json::to_vec(&pending).map_err(store_error)?;
            changes.push((pending_key(node, case), Some(value)));
        }
        if let Some((day, n)) = number {
            changes.push((
                format!("n/{day}").into_bytes(),
                Some(n.to_be_bytes().to_vec()),
            ));
        }
        self.space.apply(changes)
    }

    /// The last case number given on `day` (`YYYYMMDD`), 0 when none.
    pub fn last_number(&self, day: &str) -> Result<u64, StoreError> {
        Ok(self
            .space
            .get(format!("n/{day}").as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Every pending delivery: unit, case, what is pending.
    pub fn pending(&self) -> Result<Vec<(NodeCode, String, Pending)>, StoreError> {
        self.space
            .range(b"o/", Some(b"o0"))?
            .into_iter()
            .map(|(k, v)| {
                let key = String::from_utf8(k).map_err(store_error)?;
                let (node, case) = key[2..]
                    .split_once('/')
                    .ok_or_else(|| store_error("a delivery key without a case"))?;
                let node = node.parse().map_err(store_error)?;
                let pending = serde_json::from_slice(&v).map_err(store_error)?;
                Ok((node, case.to_owned(), pending))
            })
            .collect()
    }

    /// The units `case`'s chain has not reached yet.
    pub fn undelivered(&self, case: &str) -> Result<Vec<NodeCode>, StoreError> {
        Ok(self
            .pending()?
            .into_iter()
            .filter(|(_, c, _)| c == case)
            .map(|(node, _, _)| node)
            .collect())
    }

    /// Records the outcome of a delivery attempt of `case` to `node` made for `attempted` (as
    /// read before the attempt): done when the unit holds `held` moves and nothing newer was
    /// queued meanwhile; otherwise kept, with `failed` as the next attempt's schedule.
    pub fn settle(
        &self,
        node: &NodeCode,
        case: &str,
        attempted: &Pending,
        held: Option<u64>,
        failed: Pending,
    ) -> Result<(), StoreError> {
        let key = pending_key(node, case);
        let current: Option<Pending> = self
            .space
            .get(&key)?
            .map(|v| serde_json::from_slice(&v).map_err(store_error))
            .transpose()?;
        let Some(current) = current else {
            return Ok(());
        };
        if current.moves != attempted.moves {
            // A newer move was queued meanwhile: it is sent next, whatever this attempt did.
            return Ok(());
        }
        match held {
            Some(held) if held >= current.moves => self.space.apply([(key, None)]),
            _ => {
                let value = serde_json::to_vec(&failed).map_err(store_error)?;
                self.space.apply([(key, Some(value))])
            }
        }
    }
}
