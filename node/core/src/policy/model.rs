//! The policy model as the directory holds it: roles, grants, access requests.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::NodeCode;

/// A post in one unit: (tier scope, department, post), e.g. a street's grid worker. Only the unit
/// that defines a role may vouch for principals holding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The unit whose staff hold the role; its tier is the role's scope.
    pub unit: NodeCode,
    /// Short name within the unit, e.g. `grid-worker`.
    pub name: String,
    /// Department, e.g. "Civil Affairs Bureau".
    pub department: String,
    /// Post, e.g. "officer".
    pub post: String,
}

impl Role {
    /// The role's federation-wide id, `UNIT/NAME`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.unit, self.name)
    }
}

/// What a consumer gets of one information item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The value as stored.
    Clear,
    /// The first `first` and last `last` characters kept, every other one replaced by `*`.
    Mask {
        /// Characters kept at the start.
        first: u8,
        /// Characters kept at the end.
        last: u8,
    },
    /// A keyed hash, the same for the same value anywhere in the federation: joins without the value.
    Hash,
    /// Not sent.
    Withhold,
    /// A coarser value: the year of a date, a code's first characters, a number's band.
    Generalise(Generalisation),
}

/// How a value is made coarser. Written `year`, `year-month`, `prefix:N` and `band:W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generalisation {
    /// A date's or a date-time's year, `YYYY`.
    Year,
    /// A date's or a date-time's year and month, `YYYY-MM`.
    YearMonth,
    /// A string's first N characters, e.g. a division code's first 6 digits (its district).
    Prefix(u32),
    /// The band of width W holding a number, written `LO-HI`: the integers LO to HI = LO+W-1,
    /// where LO is the largest multiple of W not above the number (its fraction dropped towards
    /// minus infinity first), e.g. band:10 makes 34 and 34.5 `30-39`, and -5 `-10--1`.
    Band(u64),
}

impl Generalisation {
    /// True when `self` reveals no more than `other`: a year from a year and month, fewer
    /// characters of a prefix, a band whose width is a multiple of the other's.
    pub fn within(self, other: Generalisation) -> bool {
        use Generalisation::*;
        match (self, other) {
            (Year, Year | YearMonth) | (YearMonth, YearMonth) => true,
            (Prefix(n), Prefix(m)) => n <= m,
            (Band(w), Band(v)) => w % v == 0,
            _ => false,
        }
    }
}

impl fmt::Display for Generalisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generalisation::Year => f.write_str("year"),
            Generalisation::YearMonth => f.write_str("year-month"),
            Generalisation::Prefix(n) => write!(f, "prefix:{n}"),
            Generalisation::Band(w) => write!(f, "band:{w}"),
        }
    }
}

impl Action {
    /// Whether the consumer gets a column for the item.
    pub fn is_sent(self) -> bool {
        self != Action::Withhold
    }

    /// True when `self` reveals no more than `other`: what a delegation may pass on. A mask, a
    /// hash and a generalisation reveal different things (some characters and the length,
    /// equality, a coarser value), so none covers another kind.
    pub fn within(self, other: Action) -> bool {
        match (self, other) {
            (Action::Withhold, _) | (_, Action::Clear) => true,
            (Action::Hash, Action::Hash) => true,
            (Action::Mask { first, last }, Action::Mask { first: f, last: l }) => {
                first <= f && last <= l
            }
            (Action::Generalise(mine), Action::Generalise(theirs)) => mine.within(theirs),
            _ => false,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Clear => f.write_str("clear"),
            Action::Mask { first, last } => write!(f, "mask:{first}:{last}"),
            Action::Hash => f.write_str("hash"),
            Action::Withhold => f.write_str("withhold"),
            Action::Generalise(g) => g.fmt(f),
        }
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "action {s:?} is not one of clear, hash, withhold, mask:FIRST:LAST (e.g. mask:6:4 keeps 6 characters at the start and 4 at the end), year, year-month (of a date), prefix:N (a string's first N characters, N at least 1) or band:W (a number's band of width W, at least 1)"
            )
        };
        let number = |text: &str| text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(bad);
        match s {
            "clear" => Ok(Action::Clear),
            "hash" => Ok(Action::Hash),
            "withhold" => Ok(Action::Withhold),
            "year" => Ok(Action::Generalise(Generalisation::Year)),
            "year-month" => Ok(Action::Generalise(Generalisation::YearMonth)),
            _ if s.starts_with("prefix:") => {
                let n = u32::try_from(number(&s["prefix:".len()..])?).map_err(|_| bad())?;
                Ok(Action::Generalise(Generalisation::Prefix(n)))
            }
            _ if s.starts_with("band:") => Ok(Action::Generalise(Generalisation::Band(number(
                &s["band:".len()..],
            )?))),
            _ => {
                let mut parts = s.strip_prefix("mask:").ok_or_else(bad)?.split(':');
                let mut next = || {
                    parts
                        .next()
                        .and_then(|p| p.parse::<u8>().ok())
                        .ok_or_else(bad)
                };
                let (first, last) = (next()?, next()?);
                if parts.next().is_some() {
                    return Err(bad());
                }
                Ok(Action::Mask { first, last })
            }
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Whom a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// Everyone holding the role (its id, `UNIT/NAME`).
    Role(String),
    /// One principal, `NAME@UNIT`.
    Principal(String),
}

impl Grantee {
    /// The unit whose node vouches for the grantee.
    pub fn unit(&self) -> Option<NodeCode> {
        let code = match self {
            Grantee::Role(id) => id.split_once('/')?.0,
            Grantee::Principal(id) => id.rsplit_once('@')?.1,
        };
        code.parse().ok()
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Role(id) => write!(f, "role {id}"),
            Grantee::Principal(id) => write!(f, "principal {id}"),
        }
    }
}

/// Only records whose `item` holds a division code within `within` (a prefix: a district's
/// code covers its streets, communities and grid cells).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowScope {
    /// The item holding each record's division code, e.g. `community_code`.
    pub item: String,
    /// The subtree's code, e.g. `420502`.
    pub within: String,
}

impl FromStr for RowScope {
    type Err = String;

    /// `ITEM:PREFIX`, e.g. `community_code:420502`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (item, within) = s.split_once(':').ok_or_else(|| {
            format!("write a row scope as ITEM:PREFIX, e.g. community_code:420502 (got {s:?})")
        })?;
        Ok(RowScope {
            item: item.to_owned(),
            within: within.to_owned(),
        })
    }
}

/// One item's action written `ITEM=ACTION`, e.g. `id_number=mask:6:4`, as grants are written on
/// the command line and in requests.
pub fn item_action(s: &str) -> Result<(String, Action), String> {
    let (item, action) = s.split_once('=').ok_or_else(|| {
        format!("write an item's action as ITEM=ACTION, e.g. id_number=mask:6:4 (got {s:?})")
    })?;
    Ok((item.trim().to_owned(), action.parse()?))
}

impl RowScope {
    /// Whether `other` covers no more rows than `self`.
    pub fn covers(&self, other: &RowScope) -> bool {
        self.item == other.item && other.within.starts_with(&self.within)
    }
}

/// Permission for a grantee to read one catalog of one producer, for one purpose, until a day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Federation-wide id.
    pub id: String,
    /// The node whose records the grant opens.
    pub producer: NodeCode,
    /// Resource code of the catalog.
    pub catalog: String,
    /// Who may read.
    pub grantee: Grantee,
    /// Why: a request must state the same purpose.
    pub purpose: String,
    /// Last day the grant holds, `YYYY-MM-DD` (UTC).
    pub expires: String,
    /// Action per named item.
    #[serde(default)]
    pub items: BTreeMap<String, Action>,
    /// Action for items not named; never applies to core or sensitive personal items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub others: Option<Action>,
    /// Rows the grant is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowScope>,
    /// The grant this one passes on part of, when a unit delegates to a child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_from: Option<String>,
    /// The access request this grant answers (required for conditional catalogs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_request: Option<String>,
    /// Who issued it; set by the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<NodeCode>,
}

impl Grant {
    /// A grant of `catalog` on `producer` to `grantee` for `purpose` until `expires`
    /// (`YYYY-MM-DD`) that names no item yet: set `items`, `others` and `rows` on it, or
    /// `delegated_from` and `access_request` where they apply. The directory sets `issuer`.
    pub fn new(
        id: impl Into<String>,
        producer: NodeCode,
        catalog: impl Into<String>,
        grantee: Grantee,
        purpose: impl Into<String>,
        expires: impl Into<String>,
    ) -> Self {
        Grant {
            id: id.into(),
            producer,
            catalog: catalog.into(),
            grantee,
            purpose: purpose.into(),
            expires: expires.into(),
            items: BTreeMap::new(),
            others: None,
            rows: None,
            delegated_from: None,
            access_request: None,
            issuer: None,
        }
    }
}

/// Where an access request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessStatus {
    /// Waiting for the provider's administrator.
    Pending,
    /// Approved with this grant.
    Approved {
        /// The grant made.
        grant: String,
    },
    /// Refused.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// A consumer's request for a conditional catalog, stating its purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Federation-wide id.
    pub id: String,
    /// The node asked.
    pub producer: NodeCode,
    /// Resource code of the catalog.
    pub catalog: String,
    /// Who would read: a role or principal of the requesting unit.
    pub grantee: Grantee,
    /// Why.
    pub purpose: String,
    /// Items asked for; empty means the whole catalog.
    #[serde(default)]
    pub items: Vec<String>,
    /// The requesting node; set by the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<NodeCode>,
    /// Pending, approved or rejected; set by the directory.
    #[serde(default = "pending")]
    pub status: AccessStatus,
}

fn pending() -> AccessStatus {
    AccessStatus::Pending
}

/// A change to the federation's policies, issued by a node and applied by the directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyCommand {
    /// The issuer defines (or redefines) a role of its own unit.
    DefineRole(Role),
    /// The producer grants one of its catalogs, or a holder delegates part of a grant to a child.
    Grant(Grant),
    /// The grant's issuer or producer revokes it, and every grant delegated from it.
    Revoke(String),
    /// A consumer asks a producer for a conditional catalog.
    RequestAccess(AccessRequest),
    /// The producer approves a pending request with a grant.
    ApproveAccess(Grant),
    /// The producer rejects a pending request.
    RejectAccess {
        /// The request.
        request: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for PolicyCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyCommand::DefineRole(r) => write!(f, "define role {}", r.id()),
            PolicyCommand::Grant(g) => write!(f, "grant {}", g.id),
            PolicyCommand::Revoke(id) => write!(f, "revoke grant {id}"),
            PolicyCommand::RequestAccess(r) => write!(f, "access request {}", r.id),
            PolicyCommand::ApproveAccess(g) => write!(
                f,
                "approve access request {}",
                g.access_request.as_deref().unwrap_or("?")
            ),
            PolicyCommand::RejectAccess { request, .. } => {
                write!(f, "reject access request {request}")
            }
        }
    }
}

/// The federation's roles, grants and access requests, as every directory replica holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Roles by id.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// Live grants by id (revoked grants are removed).
    #[serde(default)]
    pub grants: BTreeMap<String, Grant>,
    /// Access requests by id.
    #[serde(default)]
    pub requests: BTreeMap<String, AccessRequest>,
}
