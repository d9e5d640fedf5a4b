//! Who calls the gateway: the API token in `Authorization: Bearer tlk_…` names a principal of
//! this node and a scope ([`tierlink_core::identity::tokens`]); the `Tierlink-Role` and
//! `Tierlink-Purpose` headers say how it acts. The token files are read on every request, so a
//! revoked token stops at once, as a removed principal does.
//!
//! Every token that fails counts against the address it came from ([`Guesses`]); past the limit
//! that address gets 429 with Retry-After before its token is even looked at.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use tierlink_core::catalog::is_resource_code;
use tierlink_core::identity::tokens::{ApiTokens, Scope, TokenError, TokenHolder};
use tierlink_core::identity::{Principal, PrincipalFiles, Principals};
use tierlink_core::limits::clip;
use tierlink_proto::v1::Credential;

use super::State;
use super::problem::{Kind, Problem};
use crate::limits::Guesses;

/// The header naming the role a principal acts in, `UNIT/NAME`.
pub const ROLE: &str = "tierlink-role";
/// The header stating a read's purpose (UTF-8, percent-encoded where not ASCII).
pub const PURPOSE: &str = "tierlink-purpose";

/// Where the gateway checks tokens and principals, and the failed guesses it counts.
pub struct Auth {
    files: PrincipalFiles,
    guesses: Guesses,
}

impl Auth {
    /// Checks tokens and principals in the node's `files`, limiting failed guesses per source
    /// with `guesses`.
    pub fn new(files: PrincipalFiles, guesses: Guesses) -> Self {
        Self { files, guesses }
    }

    fn check(&self, token: &str) -> Result<TokenHolder, TokenError> {
        ApiTokens::load(&self.files.tokens)?.check(token, chrono::Utc::now())
    }
}

/// The principal a request's token authenticates: the holder, and the token it presented.
pub struct Bearer {
    /// Who the token acts for, and its scope.
    pub holder: TokenHolder,
    token: String,
}

fn token_problem(e: TokenError) -> Problem {
    let kind = match &e {
        TokenError::Malformed(_) | TokenError::Checksum => Kind::TokenMalformed,
        TokenError::Expired { .. } => Kind::TokenExpired,
        TokenError::Revoked { .. } => Kind::TokenRevoked,
        TokenError::Scope { .. } | TokenError::Catalog { .. } | TokenError::Administrator => {
            Kind::ScopeInsufficient
        }
        TokenError::File { .. } => Kind::FailedPrecondition,
        _ => Kind::TokenUnknown,
    };
    if kind == Kind::FailedPrecondition {
        // The file's path is the node's business, not the caller's.
        tracing::error!(error = %e, "cannot read the API tokens");
        return Problem::new(
            kind,
            "the node cannot read its API tokens: its administrator checks the tokens file",
        );
    }
    Problem::new(kind, e.to_string())
}

impl FromRequestParts<State> for Bearer {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Problem> {
        let auth = &state.auth;
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(ip) = source {
            auth.guesses.check(ip).map_err(|wait| {
                let seconds = wait.seconds();
                Problem::new(
                    Kind::TooManyGuesses,
                    format!("too many failed tokens from {ip}: wait {seconds} s, then send a valid token"),
                )
                .retry_after(seconds)
            })?;
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                Problem::new(
                    Kind::TokenMissing,
                    "send an API token: Authorization: Bearer tlk_… (made with `tierlink token create`)",
                )
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                Problem::new(
                    Kind::TokenMalformed,
                    "write the header as Authorization: Bearer tlk_…",
                )
            })?
            .to_owned();
        let state = state.clone();
        let checked = {
            let token = token.clone();
            tokio::task::spawn_blocking(move || state.auth.check(&token))
                .await
                .map_err(|e| Problem::new(Kind::Internal, e.to_string()))?
        };
        match checked {
            Ok(holder) => Ok(Bearer { holder, token }),
            Err(e) => {
                if !matches!(e, TokenError::File { .. })
                    && let Some(ip) = source
                {
                    auth.guesses.failed(ip);
                }
                Err(token_problem(e))
            }
        }
    }
}

/// A header's text: UTF-8, percent-decoded.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let bad = || {
        Problem::new(
            Kind::InvalidArgument,
            format!(
                "the {name} header is not UTF-8 text: percent-encode it (e.g. %E6%A0%B8 for 核)"
            ),
        )
    };
    let decoded = percent_encoding::percent_decode(value.as_bytes())
        .decode_utf8()
        .map_err(|_| bad())?;
    let text = decoded.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

impl Bearer {
    /// Checks the token's scope allows an act that needs `needed`.
    /// The token presented, for the node's services to check again as they check the command
    /// line's.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks the token's scope allows `needed`.
    pub fn permits(&self, needed: Scope) -> Result<(), Problem> {
        self.holder.permits(needed).map_err(token_problem)
    }

    /// Checks the token writes `catalog`, and returns whom the write is audited as: `NAME@UNIT`,
    /// or empty for the node's administrator, as the node's own writes are. A write the token
    /// does not allow is audited as refused.
    pub async fn writer(&self, state: &State, catalog: &str) -> Result<String, Problem> {
        // Not a catalog at all: no write to audit, and nothing of the path to keep.
        if !is_resource_code(catalog) {
            return Err(Problem::new(
                Kind::NotFound,
                format!(
                    "{:?} is not a catalog's resource code: write to /v1/catalogs/PREFIX/NUMBER/…, such as /v1/catalogs/101001001/000001/records",
                    clip(catalog, 64)
                ),
            ));
        }
        let writer = self
            .holder
            .principal
            .as_ref()
            .map(|name| format!("{name}@{}", state.reads.me()))
            .unwrap_or_default();
        if let Err(e) = self.holder.may_write(catalog) {
            let audited = state
                .exchange
                .audit_refused_write(&writer, catalog, e.to_string());
            if let Err(failure) = audited.await {
                tracing::error!(error = %failure, "cannot audit a refused write");
            }
            return Err(token_problem(e));
        }
        Ok(writer)
    }

    /// The principal a read acts for.
    pub fn reader(&self) -> Result<&str, Problem> {
        self.holder.reader().map_err(token_problem)
    }

    /// The credential a read carries for this principal: the role from `Tierlink-Role` (or its
    /// only role), the purpose from `Tierlink-Purpose`, the grant asked for, and the token, which
    /// the read service checks again as it checks the command line's `--as`.
    pub fn credential(
        &self,
        state: &State,
        headers: &HeaderMap,
        grant: Option<String>,
    ) -> Result<Credential, Problem> {
        self.permits(Scope::Read)?;
        let principal = self.reader()?.to_owned();
        let purpose = header_text(headers, PURPOSE)?.ok_or_else(|| {
            Problem::new(
                Kind::PurposeRequired,
                "state the read's purpose in the Tierlink-Purpose header, as the grants name it (e.g. Tierlink-Purpose: subsistence%20allowance%20review)",
            )
        })?;
        Ok(Credential {
            principal,
            token: self.token.clone(),
            role: self.role(state, headers)?,
            purpose,
            grant: grant.unwrap_or_default(),
        })
    }

    /// The role the principal acts in: the header's, or the only one it holds.
    pub fn role(&self, state: &State, headers: &HeaderMap) -> Result<String, Problem> {
        if let Some(role) = header_text(headers, ROLE)? {
            return Ok(role);
        }
        let principal = self.principal(state)?;
        let roles: Vec<String> = principal.roles.iter().cloned().collect();
        match roles.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Problem::new(
                Kind::Unauthenticated,
                format!(
                    "principal {} holds no role on this node: its administrator gives it one",
                    principal.name
                ),
            )),
            several => {
                let detail = format!(
                    "principal {} holds several roles ({}): name the one it acts in with the Tierlink-Role header",
                    principal.name,
                    several.join(", ")
                );
                Err(Problem::new(Kind::RoleRequired, detail).with_roles(roles))
            }
        }
    }

    /// Checks that the principal holds `role`, as the read service checks before a read: for
    /// answers that read no record (explain), which do not pass through it.
    pub fn holds(&self, state: &State, role: &str) -> Result<(), Problem> {
        let principal = self.principal(state)?;
        Principals::holds(&principal, role).map_err(|e| {
            Problem::new(
                Kind::PermissionDenied,
                format!("{e}: name one of those in the Tierlink-Role header"),
            )
        })
    }

    /// The principal the token is for, as the principals file has it now.
    fn principal(&self, state: &State) -> Result<Principal, Problem> {
        let name = self.reader()?;
        Principals::load(&state.auth.files.principals)
            .map_err(|e| Problem::new(Kind::FailedPrecondition, e.to_string()))?
            .principals
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                Problem::new(
                    Kind::Unauthenticated,
                    format!(
                        "principal {name} was removed from this node: its administrator adds it again"
                    ),
                )
            })
    }
}
