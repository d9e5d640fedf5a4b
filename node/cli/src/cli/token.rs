//! `tierlink token create|list|revoke`: the API tokens a node issues to the systems that act for
//! its principals. They live in the node directory's tokens file, hashes only; a running node
//! reads the file on every use, so a token works, or stops, at once.

use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use tierlink_core::config::NodeDir;
use tierlink_core::identity::Principals;
use tierlink_core::identity::tokens::{ApiTokens, Scope, TokenError};

use super::{CliError, NodeArg};

/// `tierlink token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a principal of this node; prints its id, and the token once.
    Create {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The principal the token acts for.
        #[arg(long)]
        principal: String,
        /// Its last day of validity, YYYY-MM-DD: it works through that day in UTC.
        #[arg(long, value_parser = parse_day)]
        expires: NaiveDate,
        /// What it allows: read (queries, histories, explain, catalogs), write (records, and
        /// read) or admin (the node's audit, and everything).
        #[arg(long, default_value = "read")]
        scope: Scope,
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
        } => {
            let dir = NodeDir::load(&node.node)?;
            let principals = Principals::load(&dir.principals_path())
                .map_err(|e| CliError::Input(e.to_string()))?;
            let path = dir.tokens_path();
            let mut tokens = ApiTokens::load(&path).map_err(token_error)?;
            let issued = tokens
                .create(&principals, &principal, scope, expires, now)
                .map_err(token_error)?;
            tokens.save(&path).map_err(token_error)?;
            println!(
                "issued token {} for {principal}@{}, scope {scope}, working through {expires} (UTC); the token (shown once, give it to the system):",
                issued.id,
                dir.code()
            );
            println!("{}", issued.secret);
            Ok(())
        }
        TokenCommand::List(node) => {
            let tokens =
                ApiTokens::load(&NodeDir::load(&node.node)?.tokens_path()).map_err(token_error)?;
            println!(
                "{:<8}  {:<24} {:<5}  {:<20}  {:<10}  STATE",
                "ID", "PRINCIPAL", "SCOPE", "CREATED", "EXPIRES"
            );
            for t in tokens.list() {
                let state = match t.revoked {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%dT%H:%M:%SZ")),
                    None => t.state(now).to_string(),
                };
                println!(
                    "{:<8}  {:<24} {:<5}  {:<20}  {:<10}  {state}",
                    t.id,
                    t.principal,
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
            let mut tokens = ApiTokens::load(&path).map_err(token_error)?;
            tokens.revoke(&id, now).map_err(token_error)?;
            tokens.save(&path).map_err(token_error)?;
            println!("revoked token {id}");
            Ok(())
        }
    }
}
