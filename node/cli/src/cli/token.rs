//! `tierlink token create|list|revoke`: the API tokens a node issues to the systems that act for
//! its principals. They live in the node directory's tokens file, hashes only; a running node
//! reads the file on every use, so a token works, or stops, at once.

use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use tierlink_core::config::NodeDir;
use tierlink_core::identity::Principals;
use tierlink_core::identity::tokens::{ApiTokens, Issue, Scope, TokenError};

use super::{CliError, NodeArg};

/// `tierlink token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a principal of this node, or for its administrator (`--scope admin`);
    /// prints its id, and the token once.
    Create {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The principal the token acts for (not for `--scope admin`, which acts for the node's
        /// administrator).
        #[arg(long)]
        principal: Option<String>,
        /// Its last day of validity, YYYY-MM-DD: it works through that day in UTC.
        #[arg(long, value_parser = parse_day)]
        expires: NaiveDate,
        /// What it allows: read (queries, histories, explain, catalogs, under the principal's
        /// grants), write (also records of the `--catalog`s named) or admin (the node's
        /// administrator: its audit, and writes to every catalog; no record reads).
        #[arg(long, default_value = "read")]
        scope: Scope,
        /// A catalog a write token writes, as its records system (repeat for each).
        #[arg(long = "catalog", value_name = "CODE")]
        catalogs: Vec<String>,
    },
    /// Every token of this node: id, principal, scope, dates and state; never the token.
    List(NodeArg),
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a day: write YYYY-MM-DD, e.g. 2026-12-31"))
}

fn token_error(e: TokenError) -> CliError {
    CliError::Input(e.to_string())
}

/// Runs `tierlink token …`.
pub fn run(command: TokenCommand) -> Result<(), CliError> {
    let now = Utc::now();
    match command {
        TokenCommand::Create {
            node,
            principal,
            expires,
            scope,
            catalogs,
        } => {
            let dir = NodeDir::load(&node.node)?;
            let principals = Principals::load(&dir.principals_path())
                .map_err(|e| CliError::Input(e.to_string()))?;
            let path = dir.tokens_path();
            let holder = match &principal {
                Some(name) => format!("{name}@{}", dir.code()),
                None => format!("the administrator of {}", dir.code()),
            };
            let writes = if catalogs.is_empty() {
                String::new()
            } else {
                format!(", writing {}", catalogs.join(", "))
            };
            let issue = Issue {
                principal,
                scope,
                catalogs,
                expires,
            };
            let issued = ApiTokens::update(&path, |tokens| tokens.create(&principals, issue, now))
                .map_err(token_error)?;
            println!(
                "issued token {} for {holder}, scope {scope}{writes}, working through {expires} (UTC); the token (shown once, give it to the system):",
                issued.id,
            );
            println!("{}", issued.secret);
            Ok(())
        }
        TokenCommand::List(node) => {
            let tokens =
                ApiTokens::load(&NodeDir::load(&node.node)?.tokens_path()).map_err(token_error)?;
            println!(
                "{:<8}  {:<24} {:<5}  {:<20}  {:<10}  {:<12}  WRITES",
                "ID", "PRINCIPAL", "SCOPE", "CREATED", "EXPIRES", "STATE"
            );
            for t in tokens.list() {
                let state = match t.revoked {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%dT%H:%M:%SZ")),
                    None => t.state(now).to_string(),
                };
                let writes = match t.scope {
                    Scope::Admin => "every catalog".to_owned(),
                    _ => t.catalogs.join(","),
                };
                println!(
                    "{:<8}  {:<24} {:<5}  {:<20}  {:<10}  {state:<12}  {writes}",
                    t.id,
                    t.principal.as_deref().unwrap_or("(administrator)"),
                    t.scope.to_string(),
                    t.created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    t.expires.to_string(),
                );
            }
            println!("{} token(s)", tokens.list().len());
            Ok(())
        }
        TokenCommand::Revoke { node, id } => {
            let path = NodeDir::load(&node.node)?.tokens_path();
            ApiTokens::update(&path, |tokens| tokens.revoke(&id, now)).map_err(token_error)?;
            println!("revoked token {id}");
            Ok(())
        }
    }
}
