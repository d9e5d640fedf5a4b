//! One audit entry: who, what, why, and the decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which end of the exchange wrote the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The node whose records were asked for.
    Producer,
    /// The node whose principal asked.
    Consumer,
    /// The node whose records were written (a write's entry).
    Owner,
}

/// What came of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Records were sent (possibly none).
    Served,
    /// Refused; `reason` says why.
    Refused,
}

/// Keys of served records kept in an entry; a larger answer keeps its request's bounds instead.
pub const MAX_KEYS: usize = 1000;

/// One exchange as a node saw it. The chain fields (`sequence`, `prev`) are set by the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub sequence: u64,
    /// Hash of the entry before, hex ([`super::GENESIS`] for the first).
    pub prev: String,
    /// When, microseconds since the Unix epoch (UTC).
    pub at_micros: i64,
    /// Producer or consumer.
    pub side: Option<Side>,
    /// "query", "history" or "write".
    pub kind: String,
    /// The request's id, the same in both ends' entries.
    pub request_id: String,
    /// The node whose records were asked for.
    pub producer: String,
    /// The node that asked: the principal's node, or the node itself.
    pub consumer: String,
    /// The node that forwarded the request, when it came through a relay.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub relay: String,
    /// The principal, `NAME@UNIT`; empty when the node read its own records.
    pub principal: String,
    /// The role the principal acted in.
    pub role: String,
    /// The purpose stated.
    pub purpose: String,
    /// Resource code of the catalog.
    pub catalog: String,
    /// The grant that decided.
    pub grant: String,
    /// Served or refused.
    pub outcome: Option<Outcome>,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Records sent.
    pub records: u64,
    /// Item codes by action (`clear`, `mask:6:4`, `hash`, `withhold`; `write` for the items a
    /// write set).
    pub items: BTreeMap<String, Vec<String>>,
    /// Keys of the records sent, when at most [`MAX_KEYS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// The request's bounds when the keys were too many to keep: key range and conditions (for a
    /// write, how many keys and the lowest and highest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bounds: String,
}

impl AuditEntry {
    /// Whether the entry may concern the record `key`: it lists the key, or it kept only the
    /// request's bounds.
    pub fn may_include_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key) || (!self.bounds.is_empty() && self.records > 0)
    }

    /// Whether `item` was sent in any form other than withheld (a write sends nothing).
    pub fn revealed(&self, item: &str) -> bool {
        self.items.iter().any(|(action, items)| {
            action != "withhold" && action != "write" && items.iter().any(|i| i == item)
        })
    }
}

/// Which entries an audit query wants; every condition set must hold.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Catalog code.
    pub catalog: Option<String>,
    /// Principal id, `NAME@UNIT`.
    pub principal: Option<String>,
    /// An item that was sent (not withheld).
    pub item: Option<String>,
    /// A record key the entry may concern.
    pub key: Option<String>,
    /// Entries at or after this time, microseconds since the Unix epoch.
    pub since_micros: Option<i64>,
    /// Only refusals.
    pub refused_only: bool,
}

impl AuditFilter {
    /// Whether `entry` passes.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.catalog.as_ref().is_none_or(|c| &entry.catalog == c)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| &entry.principal == p)
            && self.item.as_ref().is_none_or(|i| entry.revealed(i))
            && self.key.as_ref().is_none_or(|k| entry.may_include_key(k))
            && self.since_micros.is_none_or(|t| entry.at_micros >= t)
            && (!self.refused_only || entry.outcome == Some(Outcome::Refused))
    }
}
