//! `tierlink audit query|verify|anchor`: who saw what, through this node, and whether the
//! record of it is intact.

use clap::Subcommand;
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::config::NodeDir;
use tierlink_proto::v1::audit_client::AuditClient;
use tierlink_proto::v1::{AuditAnchorRequest, AuditQuery, AuditVerifyRequest};
use tierlink_store::audit::{AuditEntry, Outcome, Side};

use super::{CliError, NodeArg, parse_since};

/// `tierlink audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Entries of this node's audit, oldest first; every condition given must hold.
    Query {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Only this catalog.
        #[arg(long)]
        catalog: Option<String>,
        /// Only this principal, NAME@UNIT.
        #[arg(long)]
        principal: Option<String>,
        /// Only reads that sent this item (clear, masked or hashed).
        #[arg(long)]
        item: Option<String>,
        /// Only reads that may have sent the record with this key.
        #[arg(long)]
        key: Option<String>,
        /// Only entries at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// Only refusals.
        #[arg(long)]
        refused: bool,
        /// The newest this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Print each entry as its stored JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain, and the head the federation directory anchors for this node.
    Verify(NodeArg),
    /// Anchor the chain's head in the directory now.
    Anchor(NodeArg),
}

async fn client(node: &NodeArg) -> Result<AuditClient<tonic::transport::Channel>, CliError> {
    Ok(NodeClient::open(NodeDir::load(&node.node)?)?
        .audit()
        .await?)
}

/// One entry as an operator reads it.
fn line(e: &AuditEntry) -> String {
    let at = chrono::DateTime::from_timestamp_micros(e.at_micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let side = match e.side {
        Some(Side::Producer) => "produced",
        Some(Side::Consumer) => "received",
        Some(Side::Owner) => return write_line(e, &at),
        None => "?",
    };
    let who = if e.principal.is_empty() {
        format!("node {} itself", e.consumer)
    } else {
        format!("{} as {}", e.principal, e.role)
    };
    let relay = if e.relay.is_empty() {
        String::new()
    } else {
        format!(" via {}", e.relay)
    };
    let mut text = format!(
        "#{} {at} {side} {} {} of {} for {who}{relay}",
        e.sequence, e.kind, e.catalog, e.producer
    );
    match e.outcome {
        Some(Outcome::Refused) => text.push_str(&format!(": REFUSED ({})", e.reason)),
        _ => {
            text.push_str(&format!(
                ": {} records under grant {}, purpose {:?}, request {}",
                e.records,
                if e.grant.is_empty() { "-" } else { &e.grant },
                e.purpose,
                e.request_id
            ));
            let items: Vec<String> = e
                .items
                .iter()
                .map(|(action, items)| {
                    if action == "withhold" {
                        format!("withheld {}", items.len())
                    } else if items.len() > 8 {
                        format!("{action} {} items", items.len())
                    } else {
                        format!("{action} {}", items.join(","))
                    }
                })
                .collect();
            if !items.is_empty() {
                text.push_str(&format!("; {}", items.join("; ")));
            }
            if !e.bounds.is_empty() {
                text.push_str(&format!("; keys not kept, it asked for {}", e.bounds));
            }
        }
    }
    text
}

/// A write's entry as an operator reads it: who wrote how many records of which catalog; or
/// what the history retention removed.
fn write_line(e: &AuditEntry, at: &str) -> String {
    if e.kind == tierlink_node::retention::AUDIT_KIND {
        return format!(
            "#{} {at} history retention of {} on {}: removed {} {}",
            e.sequence, e.catalog, e.producer, e.records, e.bounds
        );
    }
    let who = if e.principal.is_empty() {
        format!("node {} itself (or its administrator)", e.producer)
    } else {
        e.principal.clone()
    };
    let mut text = format!(
        "#{} {at} stored write of {} by {who}",
        e.sequence, e.catalog
    );
    match e.outcome {
        Some(Outcome::Refused) => text.push_str(&format!(": REFUSED ({})", e.reason)),
        _ => {
            text.push_str(&format!(": {} records", e.records));
            if let Some(items) = e.items.get("write") {
                text.push_str(&format!(", {} items sent", items.len()));
            }
            if !e.bounds.is_empty() {
                text.push_str(&format!("; keys not kept: {}", e.bounds));
            }
        }
    }
    text
}

/// Runs `tierlink audit …`.
pub async fn run(command: AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::Query {
            node,
            catalog,
            principal,
            item,
            key,
            since,
            refused,
            limit,
            json,
        } => {
            let query = AuditQuery {
                catalog: catalog.unwrap_or_default(),
                principal: principal.unwrap_or_default(),
                item: item.unwrap_or_default(),
                key: key.unwrap_or_default(),
                since_micros: since.unwrap_or(0),
                refused_only: refused,
                limit,
            };
            let entries = client(&node)
                .await?
                .entries(query)
                .await
                .map_err(ClientError::from)?
                .into_inner();
            for text in &entries.entries_json {
                if json {
                    println!("{text}");
                    continue;
                }
                let entry: AuditEntry = serde_json::from_str(text).map_err(|e| {
                    CliError::Input(format!("the node sent an unreadable entry: {e}"))
                })?;
                println!("{}", line(&entry));
            }
            let count = format!(
                "{} entr{}",
                entries.entries_json.len(),
                if entries.entries_json.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            // With --json, standard output holds JSON lines only.
            if json {
                eprintln!("{count}");
            } else {
                println!("{count}");
            }
            Ok(())
        }
        AuditCommand::Verify(node) => {
            let v = client(&node)
                .await?
                .verify(AuditVerifyRequest {})
                .await
                .map_err(ClientError::from)?
                .into_inner();
            let anchor = if v.anchored_sequence == 0 {
                "the directory anchors no entry of it yet".to_owned()
            } else {
                format!(
                    "the directory anchors entry {} (revision {})",
                    v.anchored_sequence, v.anchored_revision
                )
            };
            if v.intact {
                println!(
                    "audit chain intact: {} entries; {anchor}, and it matches",
                    v.entries
                );
                Ok(())
            } else {
                Err(CliError::Refused(format!(
                    "audit chain broken at entry {}: {}; entries 1 to {} hold; {anchor}",
                    v.first_bad, v.problem, v.entries
                )))
            }
        }
        AuditCommand::Anchor(node) => {
            let a = client(&node)
                .await?
                .anchor(AuditAnchorRequest {})
                .await
                .map_err(ClientError::from)?
                .into_inner();
            if a.sequence == 0 {
                println!("nothing new to anchor");
            } else {
                println!("anchored entry {} in the directory", a.sequence);
            }
            Ok(())
        }
    }
}
