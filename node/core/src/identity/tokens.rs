//! API tokens: secrets a node issues to the systems that act for one of its principals, each with
//! a scope and an expiry day, kept in the node's `tokens.toml` as hashes only.
//!
//! # Format
//! `tlk_` + 32 base62 characters of randomness (190 bits) + 6 base62 characters of the CRC32
//! (IEEE) of everything before them, as GitHub's tokens are made: a secret scanner recognises a
//! leaked token by its prefix and checksum, and a mistyped token is refused offline, before any
//! lookup. New principals' personal tokens have the same form; those issued before it
//! (`tlk_` + 64 hex) keep working.
//!
//! # Validity
//! A token works from its creation through the whole of its expiry day in UTC and stops at
//! 00:00 UTC of the next day (the same reading as a grant's `expires`). A revoked token stops at
//! once and stays in the file with its revocation time, so that it is told apart from a token the
//! node never issued.
//!
//! The stored hash is BLAKE3 of the whole token: the secret is random, so a fast hash gives
//! nothing to a guesser that a slow one would take away.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::principals::Principals;

/// What every Tierlink token starts with.
pub const PREFIX: &str = "tlk_";
/// Base62 characters of randomness in a token.
const RANDOM_CHARS: usize = 32;
/// Base62 characters of the checksum that ends a token.
const CHECKSUM_CHARS: usize = 6;
/// Hex characters of a personal token issued before tokens carried a checksum.
const LEGACY_HEX_CHARS: usize = 64;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a token allows, each scope including the ones before it.
///
/// `read` and `write` tokens act for a principal: they read what its grants give, and a `write`
/// token also writes the catalogs it names, as the node's records system for them. An `admin`
/// token acts for the node's administrator, not a principal: the node's audit, catalogs in full,
/// and writes to every catalog; it reads no records, which are read as a principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Queries, histories, `explain` and catalogs.
    Read,
    /// Putting and importing records in the token's catalogs, and reading.
    Write,
    /// The node's administrator: the audit, and writes to every catalog.
    Admin,
}

impl Scope {
    /// True when a token of this scope may do what `needed` names.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("scope {s:?} is not one of read, write or admin")),
        }
    }
}

/// One API token as the node keeps it: never the secret, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Short id (8 hex characters) that `token list` shows and `token revoke` takes.
    pub id: String,
    /// The principal of this node it acts for; none for an `admin` token, which acts for the
    /// node's administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// What it allows.
    pub scope: Scope,
    /// The catalogs (resource codes) a `write` token writes; empty for the other scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogs: Vec<String>,
    /// Its last day of validity (UTC).
    pub expires: NaiveDate,
    /// When it was issued.
    pub created: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<DateTime<Utc>>,
    /// BLAKE3 of the token, hex.
    pub hash: String,
}

/// Whether a token works now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// It authenticates.
    Active,
    /// Its expiry day has passed.
    Expired,
    /// It was revoked.
    Revoked,
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        })
    }
}

impl ApiToken {
    /// Whether it works at `now`; a revoked token reads as revoked even once it has expired.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked.is_some() {
            TokenState::Revoked
        } else if now.date_naive() > self.expires {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    /// Who holds it, if it works at `now`.
    pub fn holder(&self, now: DateTime<Utc>) -> Result<TokenHolder, TokenError> {
        if let Some(at) = self.revoked {
            return Err(TokenError::Revoked { at });
        }
        if self.state(now) == TokenState::Expired {
            return Err(TokenError::Expired { day: self.expires });
        }
        Ok(TokenHolder {
            id: self.id.clone(),
            principal: self.principal.clone(),
            scope: self.scope,
            catalogs: self.catalogs.clone(),
            expires: self.expires,
        })
    }
}

/// Who a working token authenticates, and for what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHolder {
    /// The token's id.
    pub id: String,
    /// The principal it acts for; none for the node's administrator.
    pub principal: Option<String>,
    /// What it allows.
    pub scope: Scope,
    /// The catalogs a `write` token writes.
    pub catalogs: Vec<String>,
    /// Its last day of validity (UTC).
    pub expires: NaiveDate,
}

impl TokenHolder {
    /// Checks that the token's scope allows `needed`.
    pub fn permits(&self, needed: Scope) -> Result<(), TokenError> {
        if self.scope.allows(needed) {
            Ok(())
        } else {
            Err(TokenError::Scope {
                held: self.scope,
                needed,
            })
        }
    }

    /// Checks that the token writes `catalog`: an `admin` token writes every catalog, a `write`
    /// token those it names.
    pub fn may_write(&self, catalog: &str) -> Result<(), TokenError> {
        self.permits(Scope::Write)?;
        if self.scope == Scope::Admin || self.catalogs.iter().any(|c| c == catalog) {
            return Ok(());
        }
        Err(TokenError::Catalog {
            catalog: catalog.to_owned(),
            writes: self.catalogs.clone(),
        })
    }

    /// The principal a read acts for: an `admin` token has none.
    pub fn reader(&self) -> Result<&str, TokenError> {
        self.principal.as_deref().ok_or(TokenError::Administrator)
    }
}

/// What a new token is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// The principal it acts for; `None` for an `admin` token, and only for one.
    pub principal: Option<String>,
    /// What it allows.
    pub scope: Scope,
    /// The catalogs a `write` token writes: at least one for `write`, none for the others.
    pub catalogs: Vec<String>,
    /// Its last day of validity (UTC).
    pub expires: NaiveDate,
}

impl Issue {
    /// A token of `scope` for `principal` through `expires`, writing no catalog.
    pub fn new(principal: &str, scope: Scope, expires: NaiveDate) -> Self {
        Self {
            principal: Some(principal.to_owned()),
            scope,
            catalogs: Vec::new(),
            expires,
        }
    }

    /// A `write` token for `principal` that writes `catalogs`.
    pub fn writer(principal: &str, catalogs: &[&str], expires: NaiveDate) -> Self {
        Self {
            catalogs: catalogs.iter().map(|c| (*c).to_owned()).collect(),
            ..Self::new(principal, Scope::Write, expires)
        }
    }

    /// An `admin` token, for the node's administrator.
    pub fn administrator(expires: NaiveDate) -> Self {
        Self {
            principal: None,
            scope: Scope::Admin,
            catalogs: Vec::new(),
            expires,
        }
    }

    /// Checks the combination: a principal for `read` and `write` and none for `admin`; the
    /// catalogs for `write` and only for it.
    fn check(&self, principals: &Principals) -> Result<(), TokenError> {
        let invalid = |s: &str| Err(TokenError::Invalid(s.to_owned()));
        match (&self.principal, self.scope) {
            (Some(_), Scope::Admin) => {
                return invalid(
                    "an admin token acts for the node's administrator, not a principal (it reads the audit and writes every catalog): leave out --principal; a principal's system gets a read or write token",
                );
            }
            (None, Scope::Read | Scope::Write) => {
                return invalid(
                    "a read or write token acts for a principal of this node: name it with --principal",
                );
            }
            (Some(name), _) if !principals.principals.iter().any(|p| &p.name == name) => {
                return Err(TokenError::UnknownPrincipal(name.clone()));
            }
            _ => {}
        }
        if let Some(bad) = self
            .catalogs
            .iter()
            .find(|c| !crate::catalog::is_resource_code(c))
        {
            return Err(TokenError::Invalid(format!(
                "{bad:?} is not a catalog's resource code: give it as the catalog list shows it, e.g. 101001001/000001"
            )));
        }
        match (self.scope, self.catalogs.is_empty()) {
            (Scope::Write, true) => invalid(
                "a write token writes only the catalogs it names, as their records system: give each with --catalog CODE",
            ),
            (Scope::Read, false) => invalid(
                "a read token reads what the principal's grants give: --catalog names what a write token writes; leave it out, or use --scope write",
            ),
            (Scope::Admin, false) => {
                invalid("an admin token writes every catalog: leave out --catalog")
            }
            _ => Ok(()),
        }
    }
}

/// A token just issued: the secret is shown once and is not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// Its id, for `token list` and `token revoke`.
    pub id: String,
    /// The token itself.
    pub secret: String,
}

/// Why a token was refused, or could not be issued or revoked. The messages of a refused token
/// never name a principal, so that a guesser learns nothing of who exists; [`TokenError::kind`]
/// gives each kind a stable name for callers that map them (e.g. to problem types).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The tokens file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Not a token's form at all.
    #[error(
        "that is not a Tierlink token ({0}): copy the whole token as it was shown, tlk_ and 38 letters and digits"
    )]
    Malformed(&'static str),
    /// The form of a token whose checksum does not match: mistyped or cut short.
    #[error(
        "the token's checksum does not match, so it was mistyped or cut short: copy it again as it was shown"
    )]
    Checksum,
    /// Well formed, but this node issued no such token (it may be another node's).
    #[error(
        "this node issued no such token (a token works only on the node that issued it): ask this node's administrator for one"
    )]
    Unknown,
    /// Its expiry day has passed.
    #[error(
        "the token expired at the end of {day} (UTC): ask this node's administrator for a new one"
    )]
    Expired {
        /// Its last day of validity.
        day: NaiveDate,
    },
    /// It was revoked.
    #[error("the token was revoked at {at}: ask this node's administrator for a new one")]
    Revoked {
        /// When.
        at: DateTime<Utc>,
    },
    /// It works, but not for this.
    #[error(
        "the token's scope is {held}, which does not allow what needs {needed}: use a token of scope {needed}"
    )]
    Scope {
        /// The token's scope.
        held: Scope,
        /// The scope the act needs.
        needed: Scope,
    },
    /// A write to a catalog the token does not name.
    #[error(
        "this token writes only {} and not catalog {catalog}: ask this node's administrator for a token with --catalog {catalog}",
        list(writes)
    )]
    Catalog {
        /// The catalog written to.
        catalog: String,
        /// The catalogs the token writes.
        writes: Vec<String>,
    },
    /// An administrator's token used to read records.
    #[error(
        "an admin token acts for the node's administrator, who reads no records through the gateway: read with a token of the principal that reads, under its grants"
    )]
    Administrator,
    /// A token was asked for a principal this node does not have.
    #[error("there is no principal {0} on this node: add it with `tierlink principal add` first")]
    UnknownPrincipal(String),
    /// No token has this id.
    #[error("there is no token {0} on this node: `tierlink token list` shows the ids")]
    UnknownId(String),
    /// The token was revoked before.
    #[error("token {id} was already revoked at {at}")]
    AlreadyRevoked {
        /// Its id.
        id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An expiry day already past, or no randomness to make a token from.
    #[error("{0}")]
    Invalid(String),
}

impl TokenError {
    /// A stable name of the kind: `file`, `malformed`, `checksum`, `unknown`, `expired`,
    /// `revoked`, `scope`, `catalog`, `administrator`, `unknown-principal`, `unknown-id`, `already-revoked` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::File { .. } => "file",
            TokenError::Malformed(_) => "malformed",
            TokenError::Checksum => "checksum",
            TokenError::Unknown => "unknown",
            TokenError::Expired { .. } => "expired",
            TokenError::Revoked { .. } => "revoked",
            TokenError::Scope { .. } => "scope",
            TokenError::Catalog { .. } => "catalog",
            TokenError::Administrator => "administrator",
            TokenError::UnknownPrincipal(_) => "unknown-principal",
            TokenError::UnknownId(_) => "unknown-id",
            TokenError::AlreadyRevoked { .. } => "already-revoked",
            TokenError::Invalid(_) => "invalid",
        }
    }
}

fn list(codes: &[String]) -> String {
    match codes {
        [] => "no catalog".to_owned(),
        [one] => format!("catalog {one}"),
        many => format!("catalogs {}", many.join(", ")),
    }
}

/// `n` in base62, most significant first, left-padded with `0` to `width` characters.
fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).expect("base62 is ASCII")
}

fn checksum(body: &str) -> String {
    base62(u64::from(crc32fast::hash(body.as_bytes())), CHECKSUM_CHARS)
}

/// A new random token: `tlk_`, 32 base62 characters, and the checksum of what precedes it.
pub fn new_secret() -> Result<String, TokenError> {
    let mut token = String::with_capacity(PREFIX.len() + RANDOM_CHARS + CHECKSUM_CHARS);
    token.push_str(PREFIX);
    let mut bytes = [0u8; 64];
    while token.len() < PREFIX.len() + RANDOM_CHARS {
        getrandom::fill(&mut bytes)
            .map_err(|e| TokenError::Invalid(format!("no randomness to make a token from: {e}")))?;
        // 248 is the largest multiple of 62 in a byte: taking only bytes below it keeps every
        // character equally likely.
        token.extend(
            bytes
                .iter()
                .filter(|&&b| b < 248)
                .map(|&b| char::from(BASE62[usize::from(b % 62)]))
                .take(PREFIX.len() + RANDOM_CHARS - token.len()),
        );
    }
    token.push_str(&checksum(&token));
    Ok(token)
}

/// Checks a token's form offline, without knowing any node's tokens: the prefix, the length,
/// the alphabet and the checksum (or a personal token of the earlier `tlk_` + 64 hex form).
pub fn check_format(token: &str) -> Result<(), TokenError> {
    let body = token
        .strip_prefix(PREFIX)
        .ok_or(TokenError::Malformed("it does not start with tlk_"))?;
    if body.len() == LEGACY_HEX_CHARS && body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    if body.len() != RANDOM_CHARS + CHECKSUM_CHARS {
        return Err(TokenError::Malformed("it is not as long as a token"));
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenError::Malformed(
            "it holds a character other than letters and digits",
        ));
    }
    let (head, sum) = token.split_at(token.len() - CHECKSUM_CHARS);
    if checksum(head) != sum {
        return Err(TokenError::Checksum);
    }
    Ok(())
}

/// BLAKE3 of a token, hex: what the node keeps of it.
pub(super) fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// True when `stored` (hex) is the hash of the token hashed to `hash`, compared in constant time.
pub(super) fn matches(stored: &str, hash: &blake3::Hash) -> bool {
    blake3::Hash::from_hex(stored).is_ok_and(|stored| stored == *hash)
}

/// The API tokens file of a node.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokens {
    #[serde(default, rename = "token")]
    tokens: Vec<ApiToken>,
}

impl ApiTokens {
    /// Reads `path`; a missing file holds no tokens.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        crate::identity::read_toml(path).map_err(|reason| TokenError::File {
            path: path.to_owned(),
            reason,
        })
    }

    /// Writes `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), TokenError> {
        crate::identity::write_toml(path, self).map_err(|reason| TokenError::File {
            path: path.to_owned(),
            reason,
        })
    }

    /// Reads `path`, applies `change` and writes it back, holding an exclusive lock on
    /// `PATH.lock` throughout, so that two administrators issuing or revoking tokens at once
    /// both keep their change. Nothing is written when `change` fails.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut ApiTokens) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        crate::identity::with_lock(path, || {
            let mut tokens = Self::load(path)?;
            let changed = change(&mut tokens)?;
            tokens.save(path)?;
            Ok(changed)
        })
        .map_err(|reason| TokenError::File {
            path: path.to_owned(),
            reason,
        })?
    }

    /// Issues the token `issue` describes, whose principal must be one of `principals`, working
    /// through the day `issue.expires` (UTC). The secret is returned once and only its hash is
    /// kept.
    pub fn create(
        &mut self,
        principals: &Principals,
        issue: Issue,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, TokenError> {
        issue.check(principals)?;
        let expires = issue.expires;
        let today = now.date_naive();
        if expires < today {
            return Err(TokenError::Invalid(format!(
                "expiry day {expires} is already past (today is {today} in UTC): give today or a later day"
            )));
        }
        let id = loop {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes)
                .map_err(|e| TokenError::Invalid(format!("no randomness for a token id: {e}")))?;
            let id = hex::encode(bytes);
            if !self.tokens.iter().any(|t| t.id == id) {
                break id;
            }
        };
        let secret = new_secret()?;
        self.tokens.push(ApiToken {
            id: id.clone(),
            principal: issue.principal,
            scope: issue.scope,
            catalogs: issue.catalogs,
            expires,
            created: now,
            revoked: None,
            hash: hash(&secret),
        });
        Ok(IssuedToken { id, secret })
    }

    /// Every token issued here, revoked and expired ones included, oldest first.
    pub fn list(&self) -> &[ApiToken] {
        &self.tokens
    }

    /// Revokes token `id` as of `now`; it stops working at once.
    pub fn revoke(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), TokenError> {
        let token = self
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| TokenError::UnknownId(id.to_owned()))?;
        if let Some(at) = token.revoked {
            return Err(TokenError::AlreadyRevoked {
                id: id.to_owned(),
                at,
            });
        }
        token.revoked = Some(now);
        Ok(())
    }

    /// Revokes every working token of `principal` as of `now` (when the principal is removed),
    /// and says how many.
    pub fn revoke_principal(&mut self, principal: &str, now: DateTime<Utc>) -> usize {
        let mut revoked = 0;
        for token in &mut self.tokens {
            if token.principal.as_deref() == Some(principal) && token.revoked.is_none() {
                token.revoked = Some(now);
                revoked += 1;
            }
        }
        revoked
    }

    /// The token this node issued that `token` is, whatever its state, after checking its form.
    pub fn find(&self, token: &str) -> Result<&ApiToken, TokenError> {
        check_format(token)?;
        let hash = blake3::hash(token.as_bytes());
        self.tokens
            .iter()
            .find(|t| matches(&t.hash, &hash))
            .ok_or(TokenError::Unknown)
    }

    /// Who `token` authenticates at `now`: its form, then that this node issued it, then that it
    /// is neither revoked nor expired. The caller checks its scope against the act with
    /// [`TokenHolder::permits`].
    pub fn check(&self, token: &str, now: DateTime<Utc>) -> Result<TokenHolder, TokenError> {
        self.find(token)?.holder(now)
    }
}

#[cfg(test)]
mod tests;
