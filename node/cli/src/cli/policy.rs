//! `tierlink role|principal|grant|access|explain`: roles, principals and grants, as a tier's
//! administrator manages them, and what a principal would see of a catalog, item by item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tierlink_client::ClientError;
use tierlink_core::config::NodeDir;
use tierlink_core::identity::tokens::{ApiTokens, TokenError};
use tierlink_core::identity::{NodeCode, Principals};
use tierlink_core::policy::{
    AccessRequest, AccessStatus, Action, Grant, Grantee, Policies, PolicyCommand, Role, RowScope,
    item_action,
};
use tierlink_node::directory::DirectoryCommand;

use super::directory::{open, propose};
use super::{CliError, NodeArg};

/// `tierlink role …`
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Define (or redefine) a role of this node's unit: a post in one of its departments.
    Define {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Short name, e.g. grid-worker; the role's id is UNIT/NAME.
        name: String,
        /// Department, e.g. "Civil Affairs Bureau".
        #[arg(long)]
        department: String,
        /// Post, e.g. officer.
        #[arg(long)]
        post: String,
    },
    /// Every role in the federation directory.
    List(NodeArg),
}

/// `tierlink principal …`
#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Add a person or system account this node vouches for; prints its token once.
    Add {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Name on this node, e.g. li.wei.
        name: String,
        /// A role it may act in (UNIT/NAME, of this unit); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Remove a principal: its token and its API tokens stop working at once.
    Remove {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Its name.
        name: String,
    },
    /// This node's principals and their roles.
    List(NodeArg),
}

/// Who a grant or request is for: one role or one principal.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct GranteeArg {
    /// A role, UNIT/NAME (e.g. 420502/civil-affairs).
    #[arg(long)]
    role: Option<String>,
    /// One principal, NAME@UNIT (e.g. li@420502).
    #[arg(long)]
    principal: Option<String>,
}

impl GranteeArg {
    fn grantee(&self) -> Grantee {
        match (&self.role, &self.principal) {
            (Some(role), _) => Grantee::Role(role.clone()),
            (None, Some(p)) => Grantee::Principal(p.clone()),
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

/// What a grant gives, item by item.
#[derive(Debug, Args)]
pub struct GrantTerms {
    /// Last day the grant holds, YYYY-MM-DD.
    #[arg(long)]
    expires: String,
    /// ITEM=ACTION, ACTION one of clear, hash, withhold, mask:FIRST:LAST, year, year-month,
    /// prefix:N or band:W; repeat per item.
    /// Core and sensitive personal items are sent only when named here.
    #[arg(long = "item", value_parser = item_action)]
    items: Vec<(String, Action)>,
    /// Action for every item not named (never core or sensitive personal ones).
    #[arg(long)]
    others: Option<Action>,
    /// Only rows whose ITEM holds a division code under PREFIX, written ITEM:PREFIX
    /// (e.g. community_code:420502).
    #[arg(long)]
    rows: Option<RowScope>,
}

/// `tierlink grant …`
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grant one of this node's catalogs (unconditional ones; conditional ones are granted by
    /// approving an access request), or, with --from, pass part of a grant this unit holds on
    /// to a child unit.
    Add {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Grant id [default: a new random one].
        #[arg(long)]
        id: Option<String>,
        /// Resource code of the catalog.
        #[arg(long)]
        catalog: String,
        /// The node whose records it opens [default: this node].
        #[arg(long)]
        producer: Option<NodeCode>,
        /// Who may read.
        #[command(flatten)]
        grantee: GranteeArg,
        /// Why; a read must state the same purpose.
        #[arg(long)]
        purpose: String,
        /// What is given.
        #[command(flatten)]
        terms: GrantTerms,
        /// Delegate from this grant, held by this unit, to a child unit's role or principal.
        #[arg(long = "from")]
        delegated_from: Option<String>,
    },
    /// Revoke a grant (and every grant delegated from it); effective on the next read.
    Revoke {
        /// The node acting (the grant's issuer or producer).
        #[command(flatten)]
        node: NodeArg,
        /// The grant.
        id: String,
    },
    /// Grants in the federation directory.
    List {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Only grants of this catalog.
        #[arg(long)]
        catalog: Option<String>,
    },
}

/// `tierlink access …`
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask a producer for one of its conditional catalogs, for one of this unit's roles or
    /// principals, stating the purpose.
    Request {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Request id [default: a new random one].
        #[arg(long)]
        id: Option<String>,
        /// The node asked.
        #[arg(long)]
        producer: NodeCode,
        /// Resource code of the catalog.
        #[arg(long)]
        catalog: String,
        /// Who would read.
        #[command(flatten)]
        grantee: GranteeArg,
        /// Why.
        #[arg(long)]
        purpose: String,
        /// An item asked for; repeat for several [default: the whole catalog].
        #[arg(long = "item")]
        items: Vec<String>,
    },
    /// Approve a request for one of this node's catalogs, with the grant's terms.
    Approve {
        /// The node acting (the producer).
        #[command(flatten)]
        node: NodeArg,
        /// The request.
        request: String,
        /// Id of the grant made [default: the request's id].
        #[arg(long)]
        grant_id: Option<String>,
        /// What is given.
        #[command(flatten)]
        terms: GrantTerms,
    },
    /// Reject a request for one of this node's catalogs.
    Reject {
        /// The node acting (the producer).
        #[command(flatten)]
        node: NodeArg,
        /// The request.
        request: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Access requests and where they stand.
    List(NodeArg),
}

/// `tierlink explain`
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The node acting.
    #[command(flatten)]
    node: NodeArg,
    /// The principal, NAME@UNIT.
    #[arg(long)]
    principal: String,
    /// The role it acts in, UNIT/NAME.
    #[arg(long)]
    role: String,
    /// The catalog.
    #[arg(long)]
    catalog: String,
    /// The producer [default: this node].
    #[arg(long)]
    producer: Option<NodeCode>,
    /// The purpose stated.
    #[arg(long)]
    purpose: String,
    /// The day to decide for, YYYY-MM-DD [default: today, UTC].
    #[arg(long)]
    on: Option<String>,
}

fn new_id(prefix: &str) -> Result<String, CliError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| CliError::Input(format!("no randomness: {e}")))?;
    Ok(format!("{prefix}-{}", hex::encode(bytes)))
}

async fn issue(node: &Path, command: PolicyCommand) -> Result<(), CliError> {
    propose(node, vec![DirectoryCommand::Policy(command)], "").await
}

/// The directory's policies, as this node's replica holds them.
pub async fn policies(node: &Path) -> Result<Policies, CliError> {
    let mut n = open(node).await?;
    let response = n
        .client
        .policies(tierlink_proto::v1::ReadRequest {
            linearizable: false,
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    serde_json::from_str(&response.policies_json)
        .map_err(|e| CliError::Input(format!("the node sent unreadable policies: {e}")))
}

fn grant(
    id: String,
    producer: NodeCode,
    catalog: String,
    grantee: Grantee,
    purpose: String,
    terms: GrantTerms,
) -> Grant {
    Grant {
        items: terms.items.into_iter().collect(),
        others: terms.others,
        rows: terms.rows,
        ..Grant::new(id, producer, catalog, grantee, purpose, terms.expires)
    }
}

fn describe(g: &Grant) -> String {
    let items: Vec<String> = g.items.iter().map(|(i, a)| format!("{i}={a}")).collect();
    let mut text = format!(
        "{:<20} {} of {} to {} for {:?} until {}: {}",
        g.id,
        g.catalog,
        g.producer,
        g.grantee,
        g.purpose,
        g.expires,
        items.join(" ")
    );
    if let Some(others) = g.others {
        text.push_str(&format!(" others={others}"));
    }
    if let Some(rows) = &g.rows {
        text.push_str(&format!(" rows {} within {}", rows.item, rows.within));
    }
    if let Some(from) = &g.delegated_from {
        text.push_str(&format!(" (delegated from {from})"));
    }
    text
}

/// Runs `tierlink role …`.
pub async fn role(command: RoleCommand) -> Result<(), CliError> {
    match command {
        RoleCommand::Define {
            node,
            name,
            department,
            post,
        } => {
            let unit = NodeDir::load(&node.node)?.code().clone();
            issue(
                &node.node,
                PolicyCommand::DefineRole(Role {
                    unit,
                    name,
                    department,
                    post,
                }),
            )
            .await
        }
        RoleCommand::List(node) => {
            let p = policies(&node.node).await?;
            for role in p.roles.values() {
                println!("{:<32} {} / {}", role.id(), role.department, role.post);
            }
            println!("{} role(s)", p.roles.len());
            Ok(())
        }
    }
}

/// Runs `tierlink principal …`.
pub fn principal(command: PrincipalCommand) -> Result<(), CliError> {
    let file_error = |e: tierlink_core::identity::PrincipalError| CliError::Input(e.to_string());
    let path =
        |node: &Path| -> Result<PathBuf, CliError> { Ok(NodeDir::load(node)?.principals_path()) };
    match command {
        PrincipalCommand::Add { node, name, roles } => {
            let dir = NodeDir::load(&node.node)?;
            let own = format!("{}/", dir.code());
            if let Some(foreign) = roles.iter().find(|r| !r.starts_with(&own)) {
                return Err(CliError::Input(format!(
                    "role {foreign} is not of this unit ({}): a node vouches only for its own roles",
                    dir.code()
                )));
            }
            let path = dir.principals_path();
            let roles = roles.into_iter().collect::<BTreeSet<_>>();
            let token = Principals::update(&path, |principals| principals.add(&name, roles))
                .map_err(file_error)?;
            println!(
                "added principal {name}@{}; its token (shown once, give it to them):",
                dir.code()
            );
            println!("{token}");
            Ok(())
        }
        PrincipalCommand::Remove { node, name } => {
            let dir = NodeDir::load(&node.node)?;
            let path = dir.principals_path();
            Principals::update(&path, |principals| principals.remove(&name)).map_err(file_error)?;
            // Its API tokens are revoked too, so that a principal added later under the same
            // name does not inherit them.
            let token_error = |e: TokenError| CliError::Input(e.to_string());
            let path = dir.tokens_path();
            let revoked = ApiTokens::update(&path, |tokens| {
                Ok(tokens.revoke_principal(&name, chrono::Utc::now()))
            })
            .map_err(token_error)?;
            println!("removed principal {name} and revoked its {revoked} API token(s)");
            Ok(())
        }
        PrincipalCommand::List(node) => {
            let principals = Principals::load(&path(&node.node)?).map_err(file_error)?;
            for p in &principals.principals {
                let roles: Vec<&str> = p.roles.iter().map(String::as_str).collect();
                println!("{:<24} {}", p.name, roles.join(", "));
            }
            println!("{} principal(s)", principals.principals.len());
            Ok(())
        }
    }
}

/// Runs `tierlink grant …`.
pub async fn grant_command(command: GrantCommand) -> Result<(), CliError> {
    match command {
        GrantCommand::Add {
            node,
            id,
            catalog,
            producer,
            grantee,
            purpose,
            terms,
            delegated_from,
        } => {
            let me = NodeDir::load(&node.node)?.code().clone();
            let id = match id {
                Some(id) => id,
                None => new_id("g")?,
            };
            let mut g = grant(
                id.clone(),
                producer.unwrap_or(me),
                catalog,
                grantee.grantee(),
                purpose,
                terms,
            );
            g.delegated_from = delegated_from;
            issue(&node.node, PolicyCommand::Grant(g)).await?;
            println!("granted {id}");
            Ok(())
        }
        GrantCommand::Revoke { node, id } => issue(&node.node, PolicyCommand::Revoke(id)).await,
        GrantCommand::List { node, catalog } => {
            let p = policies(&node.node).await?;
            let shown: Vec<&Grant> = p
                .grants
                .values()
                .filter(|g| catalog.as_ref().is_none_or(|c| &g.catalog == c))
                .collect();
            for g in &shown {
                println!("{}", describe(g));
            }
            println!("{} grant(s)", shown.len());
            Ok(())
        }
    }
}

/// Runs `tierlink access …`.
pub async fn access(command: AccessCommand) -> Result<(), CliError> {
    match command {
        AccessCommand::Request {
            node,
            id,
            producer,
            catalog,
            grantee,
            purpose,
            items,
        } => {
            let id = match id {
                Some(id) => id,
                None => new_id("r")?,
            };
            let request = AccessRequest {
                id: id.clone(),
                producer,
                catalog,
                grantee: grantee.grantee(),
                purpose,
                items,
                requester: None,
                status: AccessStatus::Pending,
            };
            issue(&node.node, PolicyCommand::RequestAccess(request)).await?;
            println!("requested {id}; the producer's administrator approves or rejects it");
            Ok(())
        }
        AccessCommand::Approve {
            node,
            request,
            grant_id,
            terms,
        } => {
            let p = policies(&node.node).await?;
            let asked = p
                .requests
                .get(&request)
                .ok_or_else(|| CliError::Input(format!("there is no access request {request}")))?;
            let mut g = grant(
                grant_id.unwrap_or_else(|| request.clone()),
                asked.producer.clone(),
                asked.catalog.clone(),
                asked.grantee.clone(),
                asked.purpose.clone(),
                terms,
            );
            g.access_request = Some(request);
            let id = g.id.clone();
            issue(&node.node, PolicyCommand::ApproveAccess(g)).await?;
            println!("approved: grant {id}");
            Ok(())
        }
        AccessCommand::Reject {
            node,
            request,
            reason,
        } => issue(&node.node, PolicyCommand::RejectAccess { request, reason }).await,
        AccessCommand::List(node) => {
            let p = policies(&node.node).await?;
            for r in p.requests.values() {
                let status = match &r.status {
                    AccessStatus::Pending => "pending".to_owned(),
                    AccessStatus::Approved { grant } => format!("approved as {grant}"),
                    AccessStatus::Rejected { reason } => format!("rejected: {reason}"),
                };
                let by = r
                    .requester
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                println!(
                    "{:<20} {} asks {} of {} for {} ({:?}): {status}",
                    r.id, by, r.catalog, r.producer, r.grantee, r.purpose
                );
            }
            println!("{} request(s)", p.requests.len());
            Ok(())
        }
    }
}

/// Runs `tierlink explain`: each item's fate for a principal, the rule behind it and what it
/// effectively reveals, everything sent taken together, as the node decides it; for a grant that
/// would let its reader rebuild what it hides, the refusal and the same lines.
pub async fn explain(args: ExplainArgs) -> Result<(), CliError> {
    let mut n = open(&args.node.node).await?;
    let request = tierlink_proto::v1::ExplainRequest {
        principal: args.principal.clone(),
        role: args.role.clone(),
        purpose: args.purpose.clone(),
        catalog: args.catalog.clone(),
        producer: args
            .producer
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        on: args.on.clone().unwrap_or_default(),
    };
    let explained = n
        .client
        .explain(request)
        .await
        .map_err(ClientError::from)?
        .into_inner();
    println!(
        "{} acting as {} for {:?}, reading {} of {} on {}:",
        args.principal, args.role, args.purpose, args.catalog, explained.producer, explained.on
    );
    if !explained.refusal.is_empty() {
        println!("refused: {}", explained.refusal);
        if explained.items.is_empty() {
            return Ok(());
        }
    }
    let rows = match explained.rows.split_once(':') {
        Some((item, within)) => format!("rows with {item} within {within}"),
        None => "every row".to_owned(),
    };
    let keys = if explained.keys_in_clear {
        "keys in clear"
    } else {
        "keys hashed"
    };
    let under = if explained.refusal.is_empty() {
        "decided"
    } else {
        "refused"
    };
    println!("{under} under grant {}; {rows}; {keys}", explained.grant);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, d) in explained.items.iter().enumerate() {
        let reveals = explained.reveals.get(n).map_or("", String::as_str);
        println!("  {} {} ({}) {reveals}", d.item, d.action, d.rule);
        *counts.entry(&d.action).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    println!("{} items: {}", explained.items.len(), summary.join(", "));
    Ok(())
}
