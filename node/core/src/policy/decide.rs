//! The decision a producer takes once per request: which grant applies, and what each item
//! becomes.

use std::fmt;

use super::model::{Action, Grant, Grantee, Policies, RowScope};
use super::reveal::Leaks;
use crate::catalog::{Catalog, InformationItem, SensitivityGrade, SharingType};
use crate::identity::NodeCode;

/// Who is asking, as the requesting node vouches: its principal, the role the principal acts
/// in, and the purpose stated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asker {
    /// The node that authenticated the principal and signed the request.
    pub node: NodeCode,
    /// The principal's name on that node.
    pub principal: String,
    /// The role's id, `UNIT/NAME`.
    pub role: String,
    /// The purpose stated.
    pub purpose: String,
    /// A grant to decide under, when the asker names one.
    pub grant: Option<String>,
}

impl Asker {
    /// The asker named by a principal's federation-wide id `NAME@UNIT`, acting in `role` for
    /// `purpose`, naming no grant.
    pub fn named(principal: &str, role: &str, purpose: &str) -> Result<Self, String> {
        let bad =
            || format!("write the principal as NAME@UNIT, e.g. li@420502 (got {principal:?})");
        let (name, unit) = principal.rsplit_once('@').ok_or_else(bad)?;
        Ok(Asker {
            node: unit
                .parse()
                .map_err(|e| format!("{bad}: {e}", bad = bad()))?,
            principal: name.to_owned(),
            role: role.to_owned(),
            purpose: purpose.to_owned(),
            grant: None,
        })
    }

    /// The principal's federation-wide id, `NAME@UNIT`.
    pub fn principal_id(&self) -> String {
        format!("{}@{}", self.principal, self.node)
    }
}

/// Why an item got its action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The node reads its own records.
    Owner,
    /// The item is not shared: it never leaves its node.
    NotShared,
    /// The grant names the item.
    Named,
    /// The grant's action for items it does not name.
    Others,
    /// A core or sensitive personal item the grant does not name.
    NeedsNamedGrant,
    /// Not in the grant: default deny.
    NotGranted,
}

impl Rule {
    /// The rule's name in manifests, `explain` and the audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Owner => "owner",
            Rule::NotShared => "not-shared",
            Rule::Named => "named-in-grant",
            Rule::Others => "grant-others",
            Rule::NeedsNamedGrant => "core-or-sensitive-needs-named-grant",
            Rule::NotGranted => "not-granted",
        }
    }
}

/// One item's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemDecision {
    /// Item code.
    pub item: String,
    /// What the consumer gets.
    pub action: Action,
    /// Why.
    pub rule: Rule,
}

/// What a request gets of a catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The grant decided under; empty for the node's own reads.
    pub grant: String,
    /// One per catalog item, in catalog order.
    pub items: Vec<ItemDecision>,
    /// Rows the grant is limited to.
    pub rows: Option<RowScope>,
}

impl Decision {
    /// The node's own view of its catalog: every item in clear.
    pub fn owner(catalog: &Catalog) -> Self {
        Self {
            grant: String::new(),
            items: catalog
                .items
                .iter()
                .map(|i| ItemDecision {
                    item: i.code.clone(),
                    action: Action::Clear,
                    rule: Rule::Owner,
                })
                .collect(),
            rows: None,
        }
    }

    /// What `grant` gives of each of `catalog`'s items, before the rule of
    /// [`Self::check_reveal`].
    pub fn under(grant: &Grant, catalog: &Catalog) -> Self {
        Self {
            grant: grant.id.clone(),
            items: catalog
                .items
                .iter()
                .map(|i| {
                    let (action, rule) = item_action(grant, i);
                    ItemDecision {
                        item: i.code.clone(),
                        action,
                        rule,
                    }
                })
                .collect(),
            rows: grant.rows.clone(),
        }
    }

    /// Whether the record key may travel as stored: only when every primary-key item is clear.
    /// Otherwise the key would carry what the actions hide, and is sent hashed.
    pub fn key_in_clear(&self, catalog: &Catalog) -> bool {
        catalog
            .items
            .iter()
            .zip(&self.items)
            .all(|(i, d)| !i.primary_key || d.action == Action::Clear)
    }
}

/// A request the policy refuses as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The catalog is not shared.
    #[error("catalog {0} is not shared: its records never leave the node")]
    NotShared(String),
    /// The role is not in the directory.
    #[error(
        "role {0} is not defined in the federation directory: define it with `tierlink role define` on its unit's node"
    )]
    UnknownRole(String),
    /// A node asserts a role of another unit.
    #[error(
        "node {node} may not act in role {role}: a role is vouched for only by its own unit's node"
    )]
    ForeignRole {
        /// The asserting node.
        node: NodeCode,
        /// The role.
        role: String,
    },
    /// No grant for this grantee, catalog and purpose.
    #[error("no grant lets {who} read {what} for purpose {purpose:?}{}", hint(.purposes))]
    NoGrant {
        /// The principal and role.
        who: String,
        /// The catalog and its producer.
        what: String,
        /// The purpose stated.
        purpose: String,
        /// Purposes that grants for this principal or role do name.
        purposes: Vec<String>,
    },
    /// The grant would let its reader rebuild or guess what it hides (a grant made before the
    /// rule, or a catalog republished since): see [`super::Reveal`].
    #[error("{0}; the producer's administrator revokes the grant and grants again")]
    Leaks(Box<Leaks>),
    /// Every matching grant has expired or lost the grant it was delegated from.
    #[error("grant {grant} no longer holds: {why}; ask the producer's administrator for a new one")]
    Lapsed {
        /// The grant.
        grant: String,
        /// Expired, or its parent was revoked or expired.
        why: String,
    },
}

fn hint(purposes: &[String]) -> String {
    if purposes.is_empty() {
        "; ask the producer's administrator for a grant (or, for a conditional catalog, `tierlink access request`)".into()
    } else {
        format!("; grants exist for purposes {purposes:?}: state one of them")
    }
}

/// An item's action under a grant, and the rule that decides it.
pub fn item_action(grant: &Grant, item: &InformationItem) -> (Action, Rule) {
    if item.sharing == SharingType::NotShared {
        return (Action::Withhold, Rule::NotShared);
    }
    if let Some(action) = grant.items.get(&item.code) {
        return (*action, Rule::Named);
    }
    if item.grade == SensitivityGrade::Core || item.sensitive_personal {
        return (Action::Withhold, Rule::NeedsNamedGrant);
    }
    match grant.others {
        Some(action) => (action, Rule::Others),
        None => (Action::Withhold, Rule::NotGranted),
    }
}

impl Policies {
    /// Decides what `asker` gets of `catalog` (the producer's full entry) on `producer`, on day
    /// `today` (`YYYY-MM-DD`, UTC). Grants to the principal come before grants to its role; among
    /// them the first, by id, that still holds decides.
    pub fn decide(
        &self,
        producer: &NodeCode,
        catalog: &Catalog,
        asker: &Asker,
        today: &str,
    ) -> Result<Decision, Refusal> {
        if catalog.sharing.kind == SharingType::NotShared {
            return Err(Refusal::NotShared(catalog.code.clone()));
        }
        let role = self
            .roles
            .get(&asker.role)
            .ok_or_else(|| Refusal::UnknownRole(asker.role.clone()))?;
        if role.unit != asker.node {
            return Err(Refusal::ForeignRole {
                node: asker.node.clone(),
                role: asker.role.clone(),
            });
        }
        let by_principal = Grantee::Principal(asker.principal_id());
        let by_role = Grantee::Role(asker.role.clone());
        let readers = || {
            self.grants.values().filter(|g| {
                &g.producer == producer
                    && g.catalog == catalog.code
                    && (g.grantee == by_principal || g.grantee == by_role)
            })
        };
        // Every grant that still holds for this reader on the catalog, whatever purpose it
        // states: a reader may ask under each, and join the answers on their key.
        let held: Vec<&Grant> = readers()
            .filter(|g| self.lapse(g, today).is_none())
            .collect();
        let mut candidates: Vec<&Grant> = readers()
            .filter(|g| asker.grant.as_ref().is_none_or(|id| id == &g.id))
            .collect();
        candidates.sort_by_key(|g| (g.grantee != by_principal, g.id.clone()));
        // The first refusal of a grant that matched, should none hold.
        let mut refused = None;
        for grant in candidates.iter().filter(|g| g.purpose == asker.purpose) {
            let refusal = match self.lapse(grant, today) {
                None => match Decision::under(grant, catalog).check_reveal_alongside(
                    catalog,
                    &held
                        .iter()
                        .copied()
                        .filter(|g| g.id != grant.id)
                        .collect::<Vec<_>>(),
                ) {
                    Ok(decision) => return Ok(decision),
                    Err(leaks) => Refusal::Leaks(leaks),
                },
                Some(why) => Refusal::Lapsed {
                    grant: grant.id.clone(),
                    why,
                },
            };
            refused = refused.or(Some(refusal));
        }
        if let Some(refusal) = refused {
            return Err(refusal);
        }
        let mut purposes: Vec<String> = candidates.iter().map(|g| g.purpose.clone()).collect();
        purposes.dedup();
        Err(Refusal::NoGrant {
            who: format!("{} (role {})", asker.principal_id(), asker.role),
            what: format!("{} of {producer}", catalog.code),
            purpose: asker.purpose.clone(),
            purposes,
        })
    }

    /// Why `grant` does not hold today, if it does not: expired, or a grant up its delegation
    /// chain was revoked or expired.
    fn lapse(&self, grant: &Grant, today: &str) -> Option<String> {
        let mut current = grant;
        loop {
            if current.expires.as_str() < today {
                return Some(if current.id == grant.id {
                    format!("it expired after {}", current.expires)
                } else {
                    format!("grant {} it was delegated from expired", current.id)
                });
            }
            let Some(parent) = &current.delegated_from else {
                return None;
            };
            match self.grants.get(parent) {
                Some(p) => current = p,
                None => return Some(format!("grant {parent} it was delegated from was revoked")),
            }
        }
    }
}

impl fmt::Display for ItemDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.item, self.action, self.rule.as_str())
    }
}
