//! The directory's state and its rules. `apply` is deterministic: every replica that applies the
//! same requests in the same order reaches the same state and gives the same replies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::{DirectoryCommand, DirectoryReply, DirectoryRequest, Member, MemberStatus};
use crate::catalog::Catalog;
use crate::identity::{NodeCode, Tier};

/// A catalog as published in the directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedCatalog {
    /// The node that publishes it.
    pub publisher: NodeCode,
    /// The entry.
    pub catalog: Catalog,
    /// Directory revision at which this version was published.
    pub revision: u64,
}

/// Members and their published catalogs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectoryState {
    /// Changes applied so far.
    pub revision: u64,
    /// Members by code.
    pub members: BTreeMap<NodeCode, Member>,
    /// Published catalogs by publisher, then resource code.
    pub catalogs: BTreeMap<NodeCode, BTreeMap<String, PublishedCatalog>>,
}

fn reject(reason: String) -> Result<(), String> {
    Err(reason)
}

impl DirectoryState {
    /// Applies one request under the tier rules; a rejected request changes nothing.
    pub fn apply(&mut self, request: &DirectoryRequest) -> DirectoryReply {
        match self.check_and_apply(request) {
            Ok(()) => {
                self.revision += 1;
                DirectoryReply::Applied {
                    revision: self.revision,
                }
            }
            Err(reason) => DirectoryReply::Rejected {
                reason: format!("{request} refused: {reason}"),
            },
        }
    }

    fn active(&self, code: &NodeCode) -> Result<&Member, String> {
        match self.members.get(code) {
            Some(m) if m.status == MemberStatus::Active => Ok(m),
            Some(m) => {
                Err(format!("{code} is {:?}, not an active member", m.status).to_lowercase())
            }
            None => Err(format!("{code} is not a member of the directory")),
        }
    }

    fn check_and_apply(&mut self, request: &DirectoryRequest) -> Result<(), String> {
        let issuer = &request.issuer;
        match &request.command {
            DirectoryCommand::Register(member) => {
                let code = &member.unit.code;
                member.unit.validate().map_err(|e| e.to_string())?;
                if self.members.contains_key(code) {
                    return reject(format!(
                        "{code} is already registered; approve or suspend it instead"
                    ));
                }
                let status = if self.members.is_empty() {
                    if member.unit.tier != Tier::City || issuer != code {
                        return reject(
                            "the directory is empty: the city founds it by registering itself"
                                .into(),
                        );
                    }
                    MemberStatus::Active
                } else {
                    let parent = member
                        .unit
                        .parent
                        .as_ref()
                        .ok_or("only the first member may be a city")?;
                    self.active(parent)
                        .map_err(|e| format!("its parent: {e}"))?;
                    if issuer == parent {
                        MemberStatus::Active
                    } else if issuer == code {
                        // A node asks to join under its parent; the parent approves.
                        MemberStatus::Pending
                    } else {
                        return reject(format!(
                            "only {code} itself or its parent {parent} may register it"
                        ));
                    }
                };
                self.members.insert(
                    code.clone(),
                    Member {
                        status,
                        ..member.clone()
                    },
                );
                Ok(())
            }
            DirectoryCommand::Approve(code) | DirectoryCommand::Suspend(code) => {
                let approve = matches!(request.command, DirectoryCommand::Approve(_));
                self.active(issuer)?;
                let member = self
                    .members
                    .get_mut(code)
                    .ok_or(format!("{code} is not registered"))?;
                if member.unit.parent.as_ref() != Some(issuer) {
                    return reject(format!("only {code}'s parent may approve or suspend it"));
                }
                let to = if approve {
                    MemberStatus::Active
                } else {
                    MemberStatus::Suspended
                };
                if member.status == to {
                    return reject(format!("{code} is already {to:?}").to_lowercase());
                }
                member.status = to;
                Ok(())
            }
            DirectoryCommand::Publish(catalog) => {
                self.active(issuer)?;
                catalog.validate().map_err(|e| e.to_string())?;
                let published = PublishedCatalog {
                    publisher: issuer.clone(),
                    catalog: catalog.clone(),
                    revision: self.revision + 1,
                };
                self.catalogs
                    .entry(issuer.clone())
                    .or_default()
                    .insert(catalog.code.clone(), published);
                Ok(())
            }
            DirectoryCommand::Withdraw(code) => {
                self.active(issuer)?;
                let own = self.catalogs.get_mut(issuer);
                if own.and_then(|c| c.remove(code)).is_none() {
                    return reject(format!("{issuer} has published no catalog {code}"));
                }
                self.catalogs.retain(|_, c| !c.is_empty());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
