//! `tierlink directory …` and `tierlink catalog publish|withdraw`: changes are issued by the
//! running node (which signs them), reads come from its replica.

use std::path::Path;

use clap::Subcommand;
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::config::NodeDir;
use tierlink_core::identity::NodeCode;
use tierlink_node::directory::{DirectoryCommand, member_of};
use tierlink_proto::v1::directory_client::DirectoryClient;
use tierlink_proto::v1::{
    CatalogsRequest, ChangeResponse, FoundRequest, ProposeRequest, ReadMeta, ReadRequest,
    StatusRequest,
};
use tonic::transport::Channel;

use super::{CliError, NodeArg};

/// `tierlink directory …`
#[derive(Debug, Subcommand)]
pub enum DirectorySubcommand {
    /// Found the federation directory on the city node (once, on a running node).
    Init(NodeArg),
    /// Ask to join the directory under this node's parent, through the parent's node.
    Join {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The parent node's endpoint, e.g. https://district.example.gov.cn:7443.
        #[arg(long)]
        via: String,
    },
    /// Approve a unit below this one that asked to join.
    Approve {
        /// The node acting (the unit's parent).
        #[command(flatten)]
        node: NodeArg,
        /// Code of the unit.
        code: NodeCode,
    },
    /// Suspend a unit below this one: no exchange with it, and it stops replicating.
    Suspend {
        /// The node acting (the unit's parent).
        #[command(flatten)]
        node: NodeArg,
        /// Code of the unit.
        code: NodeCode,
    },
    /// Name the directory's voters: the city and 0, 2 or 4 of its districts (run on the city).
    Voters {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Codes of the voting districts.
        districts: Vec<NodeCode>,
    },
    /// List the members of the federation.
    Members {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Read through the leader, seeing every committed change.
        #[arg(long)]
        linearizable: bool,
        /// Also list each member's registered certificates and keys: TLS fingerprints (the one it
        /// is accepted with, and any it is rotating away from), when they expire, and the
        /// encryption key batches for it are sealed to.
        #[arg(long)]
        certificates: bool,
    },
    /// List the catalogs published across every tier.
    Catalogs {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Only this publisher's.
        #[arg(long)]
        publisher: Option<NodeCode>,
        /// Read through the leader, seeing every committed change.
        #[arg(long)]
        linearizable: bool,
    },
    /// Find published catalogs by resource code, name, provider or information-item name.
    Search {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Text to look for (case-insensitive).
        text: String,
        /// Read through the leader, seeing every committed change.
        #[arg(long)]
        linearizable: bool,
    },
    /// Who leads, term, voters, learners, and how far each replica has applied the log.
    Status(NodeArg),
}

pub(super) struct Node {
    dir: NodeDir,
    pub(super) client: DirectoryClient<Channel>,
}

/// A directory client for the node in `node`, with the node's own certificate.
pub(super) async fn open(node: &Path) -> Result<Node, CliError> {
    let dir = NodeDir::load(node)?;
    let client = NodeClient::open(dir.clone())?.directory().await?;
    Ok(Node { dir, client })
}

/// Prints each change's outcome; fails if any was refused.
fn report(response: ChangeResponse) -> Result<(), CliError> {
    let mut refused = Vec::new();
    for r in response.results {
        if r.applied {
            println!("applied: directory revision {}", r.revision);
        } else {
            refused.push(r.reason);
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CliError::Refused(refused.join("\n")))
    }
}

/// Issues `commands` as the node in `node` and reports each outcome.
pub(super) async fn propose(
    node: &Path,
    commands: Vec<DirectoryCommand>,
    via: &str,
) -> Result<(), CliError> {
    let mut n = open(node).await?;
    let commands_json =
        serde_json::to_string(&commands).map_err(|e| CliError::Input(e.to_string()))?;
    let request = ProposeRequest {
        commands_json,
        via: via.to_owned(),
    };
    let response = n.client.propose(request).await.map_err(ClientError::from)?;
    report(response.into_inner())
}

fn leader_or<'a>(leader: &'a str, none: &'a str) -> &'a str {
    if leader.is_empty() { none } else { leader }
}

fn freshness(meta: Option<ReadMeta>) -> String {
    let Some(m) = meta else {
        return String::new();
    };
    let age = match m.millis_since_leader {
        -1 => "never heard from a leader".to_owned(),
        ms => format!("leader heard {ms} ms ago"),
    };
    let how = if m.linearizable {
        "linearizable, through the leader"
    } else if m.stale {
        "STALE: this node may be cut off"
    } else {
        "local replica"
    };
    format!(
        "read at {} (applied index {}, revision {}, leader {}, {age}; {how})",
        m.node,
        m.applied_index,
        m.revision,
        leader_or(&m.leader, "none")
    )
}

pub async fn run(command: DirectorySubcommand) -> Result<(), CliError> {
    match command {
        DirectorySubcommand::Init(node) => {
            let mut n = open(&node.node).await?;
            let response = n
                .client
                .found(FoundRequest {})
                .await
                .map_err(ClientError::from)?;
            report(response.into_inner())?;
            println!(
                "{} founded the directory and is its first voter",
                n.dir.code()
            );
            Ok(())
        }
        DirectorySubcommand::Join { node, via } => {
            let dir = NodeDir::load(&node.node)?;
            let me = member_of(&dir, &dir.credentials()?, &dir.signing_key()?)
                .map_err(CliError::Input)?;
            propose(&node.node, vec![DirectoryCommand::Register(me)], &via).await?;
            println!(
                "{} asked to join under {}: its administrator approves with `tierlink directory approve {}`",
                dir.code(),
                dir.config
                    .node
                    .parent
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                dir.code()
            );
            Ok(())
        }
        DirectorySubcommand::Approve { node, code } => {
            propose(&node.node, vec![DirectoryCommand::Approve(code)], "").await
        }
        DirectorySubcommand::Suspend { node, code } => {
            propose(&node.node, vec![DirectoryCommand::Suspend(code)], "").await
        }
        DirectorySubcommand::Voters { node, districts } => {
            let dir = NodeDir::load(&node.node)?;
            let mut voters: std::collections::BTreeSet<_> = districts.into_iter().collect();
            voters.insert(dir.code().clone());
            propose(&node.node, vec![DirectoryCommand::SetVoters(voters)], "").await
        }
        DirectorySubcommand::Members {
            node,
            linearizable,
            certificates,
        } => {
            let mut n = open(&node.node).await?;
            let read = n
                .client
                .members(ReadRequest { linearizable })
                .await
                .map_err(ClientError::from)?
                .into_inner();
            println!("{}", freshness(read.meta));
            println!(
                "{:<10} {:<9} {:<9} {:<10} {:<6} {:<34} endpoint",
                "code", "tier", "parent", "status", "vote", "name"
            );
            for m in read.members {
                println!(
                    "{:<10} {:<9} {:<9} {:<10} {:<6} {:<34} {}",
                    m.code,
                    m.tier,
                    m.parent,
                    m.status,
                    if m.voter { "voter" } else { "" },
                    m.name,
                    m.endpoint
                );
                if certificates {
                    let day = |unix: i64| {
                        chrono::DateTime::from_timestamp(unix, 0)
                            .filter(|_| unix != 0)
                            .map_or("unknown".to_owned(), |t| t.format("%Y-%m-%d").to_string())
                    };
                    let tls = if m.tls_fingerprint.is_empty() {
                        "revoked".to_owned()
                    } else {
                        m.tls_fingerprint.clone()
                    };
                    println!(
                        "{:<10} tls {tls} (expires {}); signing expires {}",
                        "",
                        day(m.tls_expires_unix),
                        day(m.signing_expires_unix)
                    );
                    for old in &m.retiring_tls {
                        println!("{:<10} tls {old} (rotated away from, still accepted)", "");
                    }
                    let sealed = if m.encryption_key.is_empty() {
                        "none registered: nothing can be sealed to it until it rotates one in"
                    } else {
                        m.encryption_key.as_str()
                    };
                    println!("{:<10} encryption {sealed}", "");
                }
            }
            Ok(())
        }
        DirectorySubcommand::Catalogs {
            node,
            publisher,
            linearizable,
        } => {
            let request = CatalogsRequest {
                read: Some(ReadRequest { linearizable }),
                text: String::new(),
                publisher: publisher.map(|p| p.to_string()).unwrap_or_default(),
            };
            print_catalogs(&mut open(&node.node).await?.client, request).await
        }
        DirectorySubcommand::Search {
            node,
            text,
            linearizable,
        } => {
            let request = CatalogsRequest {
                read: Some(ReadRequest { linearizable }),
                text,
                publisher: String::new(),
            };
            print_catalogs(&mut open(&node.node).await?.client, request).await
        }
        DirectorySubcommand::Status(node) => {
            print_status(&mut open(&node.node).await?.client).await
        }
    }
}

/// Prints the published catalogs a directory read finds, and how fresh the read is.
pub async fn print_catalogs(
    client: &mut DirectoryClient<Channel>,
    request: CatalogsRequest,
) -> Result<(), CliError> {
    let read = client
        .catalogs(request)
        .await
        .map_err(ClientError::from)?
        .into_inner();
    println!("{}", freshness(read.meta));
    println!(
        "{:<10} {:<18} {:<14} {:<11} {:>5}  name / provider",
        "publisher", "code", "sharing", "cycle", "items"
    );
    for p in &read.catalogs {
        let Some(c) = &p.summary else { continue };
        println!(
            "{:<10} {:<18} {:<14} {:<11} {:>5}  {} / {}",
            p.publisher,
            c.code,
            c.sharing_type,
            c.update_cycle,
            c.item_count,
            c.name,
            c.provider_name
        );
        if !p.matched_items.is_empty() {
            println!("{:<10} matching items: {}", "", p.matched_items.join(", "));
        }
    }
    println!("{} catalog(s)", read.catalogs.len());
    Ok(())
}

/// Prints a node's view of the directory's raft: leader, term, log, and every replica's progress.
pub async fn print_status(client: &mut DirectoryClient<Channel>) -> Result<(), CliError> {
    let s = client
        .status(StatusRequest {})
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let meta = s.meta.clone().unwrap_or_default();
    println!(
        "node {}: {} in term {}; leader {}",
        meta.node,
        s.state,
        s.term,
        leader_or(&meta.leader, "none known")
    );
    println!(
        "log: last index {}, applied {}, snapshot at {}; {}",
        s.last_log_index,
        meta.applied_index,
        s.snapshot_index,
        freshness(Some(meta.clone()))
    );
    let head = s.replicas.iter().filter_map(|r| r.matched_index).max();
    println!(
        "{:<10} {:<8} {:>10} {:>6}",
        "replica", "role", "replicated", "behind"
    );
    for r in &s.replicas {
        let (replicated, behind) = match (r.matched_index, head) {
            (Some(m), Some(h)) => (m.to_string(), (h - m).to_string()),
            _ => ("?".into(), "?".into()),
        };
        let role = if r.voter { "voter" } else { "learner" };
        println!(
            "{:<10} {:<8} {:>10} {:>6}",
            r.code, role, replicated, behind
        );
    }
    if !s.not_replicating.is_empty() {
        println!(
            "members not replicating (pending or suspended): {}",
            s.not_replicating.join(", ")
        );
    }
    if s.refused_raft_messages > 0 {
        println!(
            "refused {} raft message(s) from nodes that are not voters since this node started",
            s.refused_raft_messages
        );
    }
    let now = chrono::Utc::now().timestamp();
    for e in &s.expiring {
        let day = chrono::DateTime::from_timestamp(e.expires_unix, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let when = if e.expires_unix < now {
            "expired".to_owned()
        } else {
            format!("expires in {} day(s)", (e.expires_unix - now) / 86_400)
        };
        println!(
            "certificate: {}'s {} certificate {when} ({day}): rotate it with `tierlink cert rotate`",
            e.code, e.certificate
        );
    }
    Ok(())
}

/// `tierlink catalog publish|withdraw CODE`: the node publishes its catalog's shared view.
pub async fn publish(node: &Path, code: &str, withdraw: bool) -> Result<(), CliError> {
    if withdraw {
        return propose(node, vec![DirectoryCommand::Withdraw(code.to_owned())], "").await;
    }
    let revision = NodeClient::open(NodeDir::load(node)?)?
        .publish(&[code])
        .await?;
    println!("applied: directory revision {revision}");
    Ok(())
}
