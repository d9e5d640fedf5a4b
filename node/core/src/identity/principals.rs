//! The people and system accounts a node vouches for: each principal's roles and the hash of its
//! personal token, kept in the node's `principals.toml`. The token itself is shown once, when the
//! principal is added, and never stored. A principal may also hold API tokens
//! ([`super::tokens`]); [`PrincipalFiles::authenticate`] accepts either.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::tokens::{self, ApiTokens, Scope, TokenError};

/// A principal of this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Name on this node, e.g. `li.wei`.
    pub name: String,
    /// Roles it may act in (`UNIT/NAME`).
    pub roles: BTreeSet<String>,
    /// BLAKE3 of its token, hex.
    pub token_hash: String,
}

/// A principal that could not be added, found or authenticated.
#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    /// The file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// No such principal, or the token does not match: one message for both, so a caller
    /// cannot learn which names exist.
    #[error(
        "principal {0:?} is unknown here or its token is wrong: use the token shown when it was added, or an API token issued to it here"
    )]
    NotAuthenticated(String),
    /// The principal does not hold the role it asked to act in.
    #[error("principal {principal} does not hold role {role}; it holds {held:?}")]
    RoleNotHeld {
        /// The principal.
        principal: String,
        /// The role asked for.
        role: String,
        /// The roles it holds.
        held: Vec<String>,
    },
    /// A name already taken, or not a valid name.
    #[error("{0}")]
    Invalid(String),
    /// The token is not a token's form, or it is an API token of the principal that does not
    /// work now or not for the act.
    #[error(transparent)]
    Token(TokenError),
}

impl From<TokenError> for PrincipalError {
    /// The tokens file's errors stay file errors: the node's, not the caller's.
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::File { path, reason } => PrincipalError::File { path, reason },
            e => PrincipalError::Token(e),
        }
    }
}

/// The principals file of a node.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    /// Every principal.
    #[serde(default, rename = "principal")]
    pub principals: Vec<Principal>,
}

impl Principals {
    /// Reads `path`; a missing file holds no principals.
    pub fn load(path: &Path) -> Result<Self, PrincipalError> {
        crate::identity::read_toml(path).map_err(|reason| PrincipalError::File {
            path: path.to_owned(),
            reason,
        })
    }

    /// Writes `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), PrincipalError> {
        crate::identity::write_toml(path, self).map_err(|reason| PrincipalError::File {
            path: path.to_owned(),
            reason,
        })
    }

    /// Reads `path`, applies `change` and writes it back under the file's lock, as
    /// [`super::tokens::ApiTokens::update`] does. Nothing is written when `change` fails.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut Principals) -> Result<T, PrincipalError>,
    ) -> Result<T, PrincipalError> {
        crate::identity::with_lock(path, || {
            let mut principals = Self::load(path)?;
            let changed = change(&mut principals)?;
            principals.save(path)?;
            Ok(changed)
        })
        .map_err(|reason| PrincipalError::File {
            path: path.to_owned(),
            reason,
        })?
    }

    /// Adds a principal holding `roles` and returns its new token, which is not kept.
    pub fn add(&mut self, name: &str, roles: BTreeSet<String>) -> Result<String, PrincipalError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid {
            return Err(PrincipalError::Invalid(format!(
                "principal name {name:?} must be 1-64 lowercase letters, digits, '-', '.' or '_'"
            )));
        }
        if self.principals.iter().any(|p| p.name == name) {
            return Err(PrincipalError::Invalid(format!(
                "principal {name} already exists; remove it first to issue a new token"
            )));
        }
        let token = tokens::new_secret()?;
        self.principals.push(Principal {
            name: name.to_owned(),
            roles,
            token_hash: tokens::hash(&token),
        });
        Ok(token)
    }

    /// Removes a principal; its token stops working at once.
    pub fn remove(&mut self, name: &str) -> Result<(), PrincipalError> {
        let before = self.principals.len();
        self.principals.retain(|p| p.name != name);
        if self.principals.len() == before {
            return Err(PrincipalError::Invalid(format!(
                "there is no principal {name}"
            )));
        }
        Ok(())
    }

    /// Checks that `token` is `name`'s personal token, or one of its API tokens in `tokens`
    /// working at `now` with a scope that allows `act`, and that it holds `role`. A token of
    /// another principal, or of another node, is refused as a wrong token.
    pub fn authenticate(
        &self,
        tokens: &ApiTokens,
        name: &str,
        token: &str,
        role: &str,
        act: Scope,
        now: DateTime<Utc>,
    ) -> Result<&Principal, PrincipalError> {
        tokens::check_format(token)?;
        let not_authenticated = || PrincipalError::NotAuthenticated(name.to_owned());
        let principal = self
            .principals
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(not_authenticated)?;
        if !tokens::matches(&principal.token_hash, &blake3::hash(token.as_bytes())) {
            let api = match tokens.find(token) {
                Ok(api) if api.principal.as_deref() == Some(name) => api,
                _ => return Err(not_authenticated()),
            };
            api.holder(now)?.permits(act)?;
        }
        Self::holds(principal, role)?;
        Ok(principal)
    }

    /// Checks that `principal` holds `role` (`UNIT/NAME`).
    ///
    /// # Errors
    /// [`PrincipalError::RoleNotHeld`], naming the roles it does hold.
    pub fn holds(principal: &Principal, role: &str) -> Result<(), PrincipalError> {
        if principal.roles.contains(role) {
            return Ok(());
        }
        Err(PrincipalError::RoleNotHeld {
            principal: principal.name.clone(),
            role: role.to_owned(),
            held: principal.roles.iter().cloned().collect(),
        })
    }
}

/// The two files that say whom a node vouches for: its principals and their API tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalFiles {
    /// `principals.toml`.
    pub principals: PathBuf,
    /// `tokens.toml`.
    pub tokens: PathBuf,
}

impl PrincipalFiles {
    /// Reads both files and authenticates as [`Principals::authenticate`] does; read on every
    /// use, so that a principal removed or a token revoked is refused at once.
    #[allow(clippy::disallowed_methods)] // The one place that wraps Principals::authenticate.
    pub fn authenticate(
        &self,
        name: &str,
        token: &str,
        role: &str,
        act: Scope,
        now: DateTime<Utc>,
    ) -> Result<Principal, PrincipalError> {
        let principals = Principals::load(&self.principals)?;
        let tokens = ApiTokens::load(&self.tokens)?;
        principals
            .authenticate(&tokens, name, token, role, act, now)
            .cloned()
    }
}

#[cfg(test)]
mod tests;
