//! The directory's state and its rules. `apply` is deterministic: every replica that applies the
//! same requests in the same order reaches the same state and gives the same replies.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::command::{
    CommandBatch, DirectoryCommand, DirectoryReply, DirectoryRequest, Member, MemberStatus,
    RetiredKey, Rotation, SIGNING_CONTEXT, SignedCommands,
};
use crate::catalog::{Catalog, SharingType};
use crate::identity::{NodeCode, RecipientKey, Tier, TrustedCa, fingerprint, pem_to_der};
use crate::policy::{Policies, PolicyContext};

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

/// How a refusal of an entry already applied (or overtaken by a later one of its issuer's) ends:
/// the refusal a resubmitted entry gets when its first submission took effect.
pub const REPLAYED: &str = "a replayed or reordered entry";

/// Members and their published catalogs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectoryState {
    /// Changes applied so far.
    pub revision: u64,
    /// Members by code.
    pub members: BTreeMap<NodeCode, Member>,
    /// Published catalogs by publisher, then resource code.
    pub catalogs: BTreeMap<NodeCode, BTreeMap<String, PublishedCatalog>>,
    /// The members that vote in the directory's raft; every other active member is a learner.
    pub voters: BTreeSet<NodeCode>,
    /// The last sequence number applied from each issuer.
    pub sequences: BTreeMap<NodeCode, u64>,
    /// Roles, grants and access requests.
    #[serde(default)]
    pub policies: Policies,
    /// The latest anchor of each member's audit chain.
    #[serde(default)]
    pub anchors: BTreeMap<NodeCode, AuditAnchor>,
}

/// The head of a member's audit chain as anchored in the directory: an entry altered, removed or
/// reordered up to `sequence` no longer hashes to `head`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// Sequence number of the anchored entry.
    pub sequence: u64,
    /// Its hash, hex.
    pub head: String,
    /// Directory revision at which it was anchored.
    pub revision: u64,
}

/// What the policy rules see of the directory.
struct Context<'a> {
    members: &'a BTreeMap<NodeCode, Member>,
    catalogs: &'a BTreeMap<NodeCode, BTreeMap<String, PublishedCatalog>>,
}

impl PolicyContext for Context<'_> {
    fn published(&self, producer: &NodeCode, code: &str) -> Option<&Catalog> {
        Some(&self.catalogs.get(producer)?.get(code)?.catalog)
    }

    fn parent_of(&self, unit: &NodeCode) -> Option<&NodeCode> {
        let member = self.members.get(unit)?;
        (member.status == MemberStatus::Active)
            .then_some(member.unit.parent.as_ref())
            .flatten()
    }

    fn is_active(&self, unit: &NodeCode) -> bool {
        self.members
            .get(unit)
            .is_some_and(|m| m.status == MemberStatus::Active)
    }
}

fn reject(reason: String) -> Result<(), String> {
    Err(reason)
}

impl DirectoryState {
    /// The voters that are active members: the ones the directory's raft membership must name.
    pub fn active_voters(&self) -> BTreeSet<NodeCode> {
        self.voters
            .iter()
            .filter(|c| {
                self.members
                    .get(*c)
                    .is_some_and(|m| m.status == MemberStatus::Active)
            })
            .cloned()
            .collect()
    }

    /// Applies one request under the tier rules; a rejected request changes nothing.
    pub fn apply(&mut self, request: &DirectoryRequest) -> DirectoryReply {
        let result = self.check_and_apply(request);
        self.reply(request, result)
    }

    /// The reply to `request`, counting the revision when it took effect.
    fn reply(&mut self, request: &DirectoryRequest, result: Result<(), String>) -> DirectoryReply {
        match result {
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

    /// Applies a signed batch: checks the issuer's signature with the key the directory holds for
    /// it (or, for a node registering itself, the key its CA-issued certificate proves) and that
    /// the batch is newer than the issuer's last, then applies each command. A batch that fails
    /// these checks changes nothing; every command gets a reply.
    pub fn apply_signed(&mut self, signed: &SignedCommands, ca: &TrustedCa) -> Vec<DirectoryReply> {
        let batch: CommandBatch = match serde_json::from_str(&signed.body) {
            Ok(b) => b,
            Err(e) => {
                let reason = format!("not a directory command batch: {e}");
                return vec![DirectoryReply::Rejected { reason }];
            }
        };
        let refuse_all = |reason: String| {
            let reason = format!("entry from {} refused: {reason}", batch.issuer);
            let reply = DirectoryReply::Rejected { reason };
            vec![reply; batch.commands.len()]
        };
        if let Err(reason) = self
            .issuer_key(&batch, ca)
            .and_then(|key| verify(&key, signed))
        {
            return refuse_all(reason);
        }
        let last = self.sequences.get(&batch.issuer).copied().unwrap_or(0);
        if batch.sequence <= last {
            return refuse_all(format!(
                "sequence {} is not after {last}: {REPLAYED}",
                batch.sequence
            ));
        }
        self.sequences.insert(batch.issuer.clone(), batch.sequence);
        let issuer = batch.issuer;
        batch
            .commands
            .into_iter()
            .map(|command| {
                let request = DirectoryRequest {
                    issuer: issuer.clone(),
                    command,
                };
                let result = match &request.command {
                    DirectoryCommand::Register(member) => {
                        proven(member, ca).and_then(|()| self.check_and_apply(&request))
                    }
                    DirectoryCommand::Rotate(rotation) => proven_rotation(rotation, ca)
                        .and_then(|new| self.rotate(&request.issuer, rotation, new)),
                    _ => self.check_and_apply(&request),
                };
                self.reply(&request, result)
            })
            .collect()
    }

    /// The key that must have signed `batch`: the issuer's registered key, or for a node not yet
    /// registered, the key of the certificate it registers itself with.
    fn issuer_key(&self, batch: &CommandBatch, ca: &TrustedCa) -> Result<VerifyingKey, String> {
        if let Some(member) = self.members.get(&batch.issuer) {
            return member_key(member);
        }
        let own = batch.commands.iter().find_map(|c| match c {
            DirectoryCommand::Register(m) if m.unit.code == batch.issuer => Some(m),
            _ => None,
        });
        match own {
            Some(member) => proven(member, ca).and_then(|()| member_key(member)),
            None => Err(format!(
                "{} is not a member: it must first register itself under its parent",
                batch.issuer
            )),
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
                    self.voters = BTreeSet::from([code.clone()]);
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
                if !approve && self.voters.contains(code) {
                    return reject(format!(
                        "{code} votes in the directory: name other voters first"
                    ));
                }
                member.status = to;
                Ok(())
            }
            DirectoryCommand::Publish(catalog) => {
                self.active(issuer)?;
                catalog.validate().map_err(|e| e.to_string())?;
                if let Some(item) = catalog
                    .items
                    .iter()
                    .find(|i| i.sharing == SharingType::NotShared)
                {
                    return reject(format!(
                        "item {} of {} is not shared and never leaves its node: publish the catalog's shared view",
                        item.code, catalog.code
                    ));
                }
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
            DirectoryCommand::SetVoters(voters) => {
                if self.active(issuer)?.unit.tier != Tier::City {
                    return reject("only the city names the voters".into());
                }
                if ![1, 3, 5].contains(&voters.len()) || !voters.contains(issuer) {
                    return reject(format!(
                        "name the city and its voting districts, 1, 3 or 5 in all ({} named)",
                        voters.len()
                    ));
                }
                for code in voters.iter().filter(|c| *c != issuer) {
                    let tier = self.active(code)?.unit.tier;
                    if tier != Tier::District {
                        return reject(format!("{code} is a {tier}: only districts vote"));
                    }
                }
                self.voters = voters.clone();
                Ok(())
            }
            DirectoryCommand::Policy(command) => {
                self.active(issuer)?;
                let ctx = Context {
                    members: &self.members,
                    catalogs: &self.catalogs,
                };
                self.policies.apply(issuer, command, &ctx)
            }
            DirectoryCommand::AnchorAudit { sequence, head } => {
                self.active(issuer)?;
                if head.len() != 64 || hex::decode(head).is_err() {
                    return reject("the audit head is not a 32-byte hash in hex".into());
                }
                if let Some(last) = self.anchors.get(issuer)
                    && last.sequence >= *sequence
                {
                    return reject(format!(
                        "audit entry {sequence} is not after the last anchored ({}): an audit chain only grows",
                        last.sequence
                    ));
                }
                let anchor = AuditAnchor {
                    sequence: *sequence,
                    head: head.clone(),
                    revision: self.revision + 1,
                };
                self.anchors.insert(issuer.clone(), anchor);
                Ok(())
            }
            DirectoryCommand::Rotate(_) => reject(
                "a certificate rotation is applied only from a signed entry, where its certificates are checked against the CA".into(),
            ),
            DirectoryCommand::Revoke {
                node,
                tls_fingerprint,
            } => {
                let member = self.certified_by(issuer, node)?;
                if member.tls_fingerprint == *tls_fingerprint {
                    member.tls_fingerprint.clear();
                    member.tls_certificate.clear();
                } else if let Some(at) = member
                    .retiring_tls
                    .iter()
                    .position(|f| f == tls_fingerprint)
                {
                    member.retiring_tls.remove(at);
                } else {
                    return reject(format!(
                        "{tls_fingerprint} is not a certificate {node} is accepted with: see `tierlink directory members`"
                    ));
                }
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

impl DirectoryState {
    /// The member `node` whose certificates `issuer` changes: the member itself, while active, or
    /// its parent.
    fn certified_by(&mut self, issuer: &NodeCode, node: &NodeCode) -> Result<&mut Member, String> {
        self.active(issuer)?;
        let member = self
            .members
            .get_mut(node)
            .ok_or(format!("{node} is not registered"))?;
        if issuer != node && member.unit.parent.as_ref() != Some(issuer) {
            return Err(format!(
                "only {node} itself or its parent may change its certificates"
            ));
        }
        Ok(member)
    }

    /// Applies a rotation whose certificates `new` proved: the new TLS certificate is accepted
    /// beside the old until the old is revoked; the old signing key verifies what it signed before.
    fn rotate(
        &mut self,
        issuer: &NodeCode,
        rotation: &Rotation,
        new: ProvenRotation,
    ) -> Result<(), String> {
        let member = self.certified_by(issuer, &rotation.node)?;
        if let Some((fingerprint, pem)) = new.tls {
            if fingerprint == member.tls_fingerprint || member.retiring_tls.contains(&fingerprint) {
                return reject(format!(
                    "{} already holds TLS certificate {fingerprint}: issue a new one",
                    rotation.node
                ));
            }
            let old = std::mem::replace(&mut member.tls_fingerprint, fingerprint);
            if !old.is_empty() {
                member.retiring_tls.push(old);
            }
            member.tls_certificate = pem;
        }
        if let Some((key, pem)) = new.signing {
            if key == member.signing_key {
                return reject(format!(
                    "{} already signs with this key: issue a signing certificate for a new key",
                    rotation.node
                ));
            }
            let old = std::mem::replace(&mut member.signing_key, key);
            member.retired_keys.push(RetiredKey {
                signing_key: old,
                until_micros: rotation.at_micros,
            });
            member.signing_certificate = pem;
        }
        if let Some(key) = new.encryption {
            if key == member.encryption_key {
                return reject(format!(
                    "{} already has this encryption key: generate a new one",
                    rotation.node
                ));
            }
            member.encryption_key = key;
        }
        Ok(())
    }
}

/// What the CA proved of a rotation's certificates: the new TLS fingerprint and the new signing
/// key (hex), each with its certificate (PEM); and the new encryption key (hex), checked usable.
struct ProvenRotation {
    tls: Option<(String, String)>,
    signing: Option<(String, String)>,
    encryption: Option<String>,
}

/// Checks that each new certificate of `rotation` was issued by the CA for its member.
fn proven_rotation(rotation: &Rotation, ca: &TrustedCa) -> Result<ProvenRotation, String> {
    let node = &rotation.node;
    if rotation.tls_certificate.is_none()
        && rotation.signing_certificate.is_none()
        && rotation.encryption_key.is_none()
    {
        return Err(format!(
            "the rotation of {node} names no new certificate or key: give a TLS certificate, a signing certificate, an encryption key, or several"
        ));
    }
    let tls = match &rotation.tls_certificate {
        Some(pem) => Some((tls_proven(node, pem, ca)?, pem.clone())),
        None => None,
    };
    let signing = match &rotation.signing_certificate {
        Some(pem) => {
            let der = pem_to_der(pem).map_err(|e| format!("{node}: {e}"))?;
            let producer = ca.verify_issued(&der).map_err(|e| e.to_string())?;
            if &producer.code != node {
                return Err(format!(
                    "the new signing certificate names {}, not {node}",
                    producer.code
                ));
            }
            Some((hex::encode(producer.key.as_bytes()), pem.clone()))
        }
        None => None,
    };
    let encryption = match &rotation.encryption_key {
        Some(key) => Some(encryption_key(node, key)?),
        None => None,
    };
    Ok(ProvenRotation {
        tls,
        signing,
        encryption,
    })
}

/// The fingerprint of `node`'s TLS certificate `pem`, once the CA is shown to have issued it for
/// `node`.
fn tls_proven(node: &NodeCode, pem: &str, ca: &TrustedCa) -> Result<String, String> {
    let der = pem_to_der(pem).map_err(|e| format!("{node}'s TLS certificate: {e}"))?;
    let (named, _) = ca
        .verify_node_certificate(&der)
        .map_err(|e| e.to_string())?;
    if &named != node {
        return Err(format!("the TLS certificate names {named}, not {node}"));
    }
    Ok(fingerprint(&der))
}

/// `node`'s encryption key (hex), once shown to be one a producer can seal to.
fn encryption_key(node: &NodeCode, hex: &str) -> Result<String, String> {
    RecipientKey::from_hex(hex)
        .map(|k| k.to_hex())
        .map_err(|e| format!("{node}'s encryption key: {e}"))
}

fn member_key(member: &Member) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(&member.signing_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(format!(
            "{}'s signing key is not 32 bytes of hex",
            member.unit.code
        ))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{}'s signing key: {e}", member.unit.code))
}

fn verify(key: &VerifyingKey, signed: &SignedCommands) -> Result<(), String> {
    let signature = hex::decode(&signed.signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or("the signature is not 64 bytes of hex")?;
    let message = [SIGNING_CONTEXT, signed.body.as_bytes()].concat();
    key.verify_strict(&message, &signature)
        .map_err(|_| "the signature does not match the issuer's registered key".to_string())
}

/// A member's signing certificate is the federation CA's, names the member and holds its key.
fn proven(member: &Member, ca: &TrustedCa) -> Result<(), String> {
    let code = &member.unit.code;
    let der = pem_to_der(&member.signing_certificate).map_err(|e| format!("{code}: {e}"))?;
    let producer = ca.verify_issued(&der).map_err(|e| e.to_string())?;
    if &producer.code != code {
        return Err(format!(
            "{code} registers with {}'s signing certificate",
            producer.code
        ));
    }
    if hex::encode(producer.key.as_bytes()) != member.signing_key {
        return Err(format!(
            "{code}'s signing key is not the one its certificate names"
        ));
    }
    if !member.encryption_key.is_empty() {
        encryption_key(code, &member.encryption_key)?;
    }
    if !member.tls_certificate.is_empty()
        && tls_proven(code, &member.tls_certificate, ca)? != member.tls_fingerprint
    {
        return Err(format!(
            "{code}'s TLS fingerprint is not the one of the TLS certificate it registers with"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
