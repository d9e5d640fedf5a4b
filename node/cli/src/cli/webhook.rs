//! `tierlink webhook add|list|remove|dead|replay`: a catalog's change feed delivered to a legacy
//! system's HTTP endpoint, signed as Standard Webhooks (see the README's "Webhooks"). The node
//! keeps the webhooks and their queues; these commands manage them over gRPC with the node's own
//! certificate.

use clap::Subcommand;
use tierlink_core::config::NodeDir;
use tierlink_proto::v1::webhooks_client::WebhooksClient;
use tierlink_proto::v1::{
    AddWebhookRequest, DeadLettersRequest, ListWebhooksRequest, RemoveWebhookRequest,
    ReplayRequest, ResumeWebhookRequest,
};

use super::{ActAs, CliError, NodeArg};

const EXAMPLES: &str = "Examples:
  export TIERLINK_TOKEN=tlk_…   # an API token of scope read, made for the webhook
  tierlink webhook add --node street --catalog 101001001/000001 --as erp \\
      --role 420502001/grid-worker --purpose \"grid register sync\" \\
      --url https://erp.example.gov.cn:8443/hooks/residents --hmac
  tierlink webhook list --node street
  tierlink webhook dead --node street wh_0123456789abcdef
  tierlink webhook replay --node street wh_0123456789abcdef
  tierlink webhook remove --node street wh_0123456789abcdef";

/// `tierlink webhook …`
#[derive(Debug, Subcommand)]
#[command(after_help = EXAMPLES)]
pub enum WebhookCommand {
    /// Deliver a catalog's change feed, as a principal of this node reads it, to a URL under one
    /// of node.toml's [webhooks] receivers. Refused at once when the principal may not read it.
    #[command(after_help = EXAMPLES)]
    Add {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog to follow, e.g. 101001001/000001.
        #[arg(long)]
        catalog: String,
        /// The node producing it [default: this node].
        #[arg(long)]
        target: Option<String>,
        /// Who reads the feed; the node keeps the token to read it after a restart, and the
        /// webhook stops once the token no longer works.
        #[command(flatten)]
        act_as: ActAs,
        /// Where to POST deliveries.
        #[arg(long)]
        url: String,
        /// Also sign with HMAC-SHA256 (`v1`) under a new `whsec_` secret, printed once.
        #[arg(long)]
        hmac: bool,
        /// Start after this resume token (a batch header's, or `webhook list`'s) [default: from
        /// now].
        #[arg(long = "from", value_name = "TOKEN")]
        from: Option<String>,
    },
    /// This node's webhooks: where each delivers, where its feed stands, its queue, and why it
    /// stopped if it did.
    List(NodeArg),
    /// Stop a webhook and forget it, with its queued deliveries and dead letters.
    Remove {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The webhook's id, as `webhook list` shows it.
        id: String,
    },
    /// Deliveries whose last attempt failed, with the last status or error [default: of every
    /// webhook].
    Dead {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Only this webhook's.
        id: Option<String>,
    },
    /// Deliver dead letters again, at the end of the webhook's queue with the same webhook-id.
    /// A receiver keeps the highest `_version` of each `_key`, so an older version replayed
    /// after a newer one changes nothing.
    Replay {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The webhook's id.
        id: String,
        /// Only this delivery (its webhook-id, `msg_…`) [default: every dead letter].
        #[arg(long, value_name = "MSG_ID")]
        delivery: Option<String>,
    },
    /// Start a stopped webhook again where it stopped: its queued deliveries first, then its
    /// feed from its resume token. After a revoked token, give the principal's new one in
    /// $TIERLINK_TOKEN or --token-file.
    Resume {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The webhook's id.
        id: String,
        /// File holding a new token for the webhook's principal [default: $TIERLINK_TOKEN, or
        /// the token it holds].
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
    },
}

async fn client(node: &NodeArg) -> Result<WebhooksClient<tonic::transport::Channel>, CliError> {
    let dir = NodeDir::load(&node.node)?;
    let channel =
        tierlink_client::channel(&dir.credentials()?, &dir.config.server.endpoint).await?;
    Ok(WebhooksClient::new(channel))
}

fn status(s: tonic::Status) -> CliError {
    CliError::Client(s.into())
}

/// A time in microseconds as an operator reads it, UTC.
fn at(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Runs `tierlink webhook …`.
pub async fn run(command: WebhookCommand) -> Result<(), CliError> {
    match command {
        WebhookCommand::Resume {
            node,
            id,
            token_file,
        } => {
            let token = match token_file {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
                None => std::env::var("TIERLINK_TOKEN").unwrap_or_default(),
            };
            let resumed = client(&node)
                .await?
                .resume(ResumeWebhookRequest {
                    webhook: id.clone(),
                    token: token.trim().to_owned(),
                })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "webhook {id} resumed ({} deliveries queued); it had stopped: {}",
                resumed.pending, resumed.stopped
            );
            Ok(())
        }
        WebhookCommand::Add {
            node,
            catalog,
            target,
            act_as,
            url,
            hmac,
            from,
        } => {
            let credential = act_as.credential()?.ok_or_else(|| {
                CliError::Input(
                    "name the principal the feed is read as: --as NAME --role UNIT/NAME --purpose TEXT"
                        .into(),
                )
            })?;
            let added = client(&node)
                .await?
                .add(AddWebhookRequest {
                    catalog,
                    target: target.unwrap_or_default(),
                    credential: Some(credential),
                    url,
                    hmac,
                    from: from.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "webhook {} added, following from {}",
                added.id, added.resume_token
            );
            if !added.secret.is_empty() {
                println!(
                    "HMAC secret (shown once; the receiver checks v1 signatures with it): {}",
                    added.secret
                );
            }
            Ok(())
        }
        WebhookCommand::List(node) => {
            let list = client(&node)
                .await?
                .list(ListWebhooksRequest {})
                .await
                .map_err(status)?
                .into_inner();
            for w in &list.webhooks {
                let state = if w.stopped.is_empty() {
                    "running".to_owned()
                } else {
                    format!("STOPPED: {}", w.stopped)
                };
                println!(
                    "{} {} of {} as {} ({}, {:?}) -> {}{}: {} pending, {} dead, at {}; added {}; {state}",
                    w.id,
                    w.catalog,
                    w.target,
                    w.principal,
                    w.role,
                    w.purpose,
                    w.url,
                    if w.hmac { " (v1a+v1)" } else { " (v1a)" },
                    w.pending,
                    w.dead,
                    w.resume_token,
                    at(w.created_at_micros),
                );
            }
            println!("{} webhook(s)", list.webhooks.len());
            Ok(())
        }
        WebhookCommand::Remove { node, id } => {
            let removed = client(&node)
                .await?
                .remove(RemoveWebhookRequest { id: id.clone() })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "webhook {id} removed, with {} deliveries queued or dead",
                removed.dropped
            );
            Ok(())
        }
        WebhookCommand::Dead { node, id } => {
            let dead = client(&node)
                .await?
                .dead_letters(DeadLettersRequest {
                    webhook: id.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            for d in &dead.letters {
                println!(
                    "{} {} {}: {} records up to {}, {} attempts, last: {}",
                    d.webhook,
                    d.id,
                    at(d.dead_at_micros),
                    d.records,
                    d.resume_token,
                    d.attempts,
                    d.last_error
                );
            }
            println!("{} dead letter(s)", dead.letters.len());
            Ok(())
        }
        WebhookCommand::Replay { node, id, delivery } => {
            let replayed = client(&node)
                .await?
                .replay(ReplayRequest {
                    webhook: id.clone(),
                    delivery: delivery.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("{} dead letter(s) of {id} queued again", replayed.replayed);
            Ok(())
        }
    }
}
