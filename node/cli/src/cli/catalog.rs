//! `tierlink catalog add|list|show` (publish and withdraw act on the directory).

use std::path::PathBuf;

use clap::Subcommand;
use tierlink_client::NodeClient;
use tierlink_core::catalog::parse_catalogs;
use tierlink_core::config::NodeDir;

use super::{CliError, NodeArg, Route};

/// `tierlink catalog …`
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Publish catalog entries from JSON files (one entry or an array per file) on this node.
    Add {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog files, e.g. schema/examples/residents.json.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List a node's catalogs.
    List {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
    },
    /// Publish one of this node's catalogs in the federation directory (its shared view: items
    /// that are not shared stay behind), or republish it after a change.
    Publish {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Resource code, e.g. 101001001/000001.
        code: String,
    },
    /// Withdraw one of this node's catalogs from the federation directory.
    Withdraw {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Resource code.
        code: String,
    },
    /// Print one catalog entry as JSON.
    Show {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
        /// Resource code, e.g. 101001001/000001.
        code: String,
    },
}

pub async fn run(command: CatalogCommand) -> Result<(), CliError> {
    match command {
        CatalogCommand::Add { node, files } => {
            let client = NodeClient::open(NodeDir::load(&node.node)?)?;
            // Check every file before publishing any, so a typo in the third leaves nothing half done.
            let mut entries = Vec::new();
            for file in &files {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
                entries.extend(parse_catalogs(&text, &file.display().to_string())?);
            }
            for catalog in entries {
                let json =
                    serde_json::to_string(&catalog).map_err(|e| CliError::Input(e.to_string()))?;
                let done = client.put_catalog(json).await?;
                let verb = if done.replaced {
                    "replaced"
                } else {
                    "published"
                };
                println!(
                    "{verb} {catalog} ({} items) on {}",
                    catalog.items.len(),
                    client.code()
                );
            }
            Ok(())
        }
        CatalogCommand::List { node, route } => {
            let client = NodeClient::open(NodeDir::load(&node.node)?)?;
            let list = client
                .list_catalogs(route.via.as_ref(), &target(&route))
                .await?;
            println!("catalogs of {}:", list.node);
            println!(
                "{:<18} {:<14} {:<11} {:>5} {:>9}  name",
                "code", "sharing", "cycle", "items", "records"
            );
            for c in list.catalogs {
                println!(
                    "{:<18} {:<14} {:<11} {:>5} {:>9}  {}",
                    c.code, c.sharing_type, c.update_cycle, c.item_count, c.record_count, c.name
                );
            }
            Ok(())
        }
        CatalogCommand::Publish { node, code } => {
            super::directory::publish(&node.node, &code, false).await
        }
        CatalogCommand::Withdraw { node, code } => {
            super::directory::publish(&node.node, &code, true).await
        }
        CatalogCommand::Show { node, route, code } => {
            let client = NodeClient::open(NodeDir::load(&node.node)?)?;
            println!(
                "{}",
                client
                    .get_catalog(route.via.as_ref(), &target(&route), &code)
                    .await?
            );
            Ok(())
        }
    }
}

/// The route's target code, or "" for this node.
pub fn target(route: &Route) -> String {
    route
        .target
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default()
}
