//! `tierlink ca init`, `tierlink init` and `tierlink serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tierlink_core::config::{LogFormat, NodeDir};
use tierlink_core::identity::{NodeCode, Tier, Unit};
use tierlink_core::provision::{self, CA_CERT, CA_KEY, Certifier, NodeSpec};
use tierlink_node::runtime::{self, Node};

use super::{CliError, NodeArg};

/// `tierlink ca …`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a federation CA: DIR/ca.crt (give it to every node) and DIR/ca.key (keep it safe).
    Init {
        /// Directory for the CA files.
        #[arg(long)]
        dir: PathBuf,
        /// Name of the federation, e.g. "Yichang".
        #[arg(long, default_value = "Tierlink federation")]
        name: String,
    },
}

/// `tierlink init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the node in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Division code of the unit: 6 digits for a city or district, 9 for a street office.
    #[arg(long)]
    pub code: NodeCode,
    /// Tier of the unit: city, district or street.
    #[arg(long)]
    pub tier: Tier,
    /// Code of the unit above (a district's city, a street's district).
    #[arg(long)]
    pub parent: Option<NodeCode>,
    /// Display name, e.g. "西陵街道 Xiling Street Office".
    #[arg(long)]
    pub name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// URL other nodes reach this one at [default: https://LISTEN].
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Host name or IP address for the TLS certificate; repeat for several [default: localhost, 127.0.0.1].
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Another node as CODE=URL; repeat for several.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<tierlink_core::config::Peer>,
    /// CA directory from `tierlink ca init`: certificates are issued at once.
    #[arg(
        long,
        conflicts_with = "external_ca",
        required_unless_present = "external_ca"
    )]
    pub ca: Option<PathBuf>,
    /// Certificate of an external CA: writes tls.csr and signing.csr for it to sign instead.
    #[arg(long)]
    pub external_ca: Option<PathBuf>,
}

fn parse_peer(s: &str) -> Result<tierlink_core::config::Peer, String> {
    let (code, endpoint) = s
        .split_once('=')
        .ok_or("write a peer as CODE=URL, e.g. 420502=https://10.0.0.2:7443")?;
    Ok(tierlink_core::config::Peer {
        code: code.parse().map_err(|e| format!("{e}"))?,
        endpoint: endpoint.to_owned(),
    })
}

pub fn ca_init(dir: &Path, name: &str) -> Result<(), CliError> {
    provision::init_ca(dir, name)?;
    println!("created federation CA {name:?}:");
    println!(
        "  {}  give it to every node (tierlink init --ca {})",
        dir.join(CA_CERT).display(),
        dir.display()
    );
    println!(
        "  {}  private (0600): keep it offline, with the federation's administrator",
        dir.join(CA_KEY).display()
    );
    Ok(())
}

pub fn init(args: InitArgs) -> Result<(), CliError> {
    let unit = Unit {
        code: args.code,
        tier: args.tier,
        parent: args.parent,
        name: args.name,
    };
    let endpoint = match args.endpoint {
        Some(endpoint) => endpoint,
        None if args.listen.ip().is_unspecified() => {
            return Err(CliError::Input(format!(
                "--listen {} accepts calls on every address, but no other node can call {}: give --endpoint https://HOST:{}",
                args.listen,
                args.listen.ip(),
                args.listen.port()
            )));
        }
        None => format!("https://{}", args.listen),
    };
    let mut hosts = if args.hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into()]
    } else {
        args.hosts
    };
    // Callers check the server's name against the endpoint's host: the certificate must carry it.
    if let Some(host) = endpoint_host(&endpoint)
        && !hosts.iter().any(|h| h == host)
    {
        hosts.push(host.to_owned());
    }
    let spec = NodeSpec {
        unit,
        listen: args.listen,
        endpoint,
        hosts,
        peers: args.peers,
        hash_key: None,
    };
    let external = match (&args.ca, &args.external_ca) {
        (Some(ca_dir), _) => {
            let ca = provision::load_ca(ca_dir)?;
            let spec = NodeSpec {
                hash_key: provision::load_hash_key(ca_dir)?,
                ..spec
            };
            let node = provision::init_node(&args.dir, spec, Certifier::Ca(&ca))?;
            println!(
                "created node {} ({}) in {}",
                node.code(),
                node.config.node.tier,
                args.dir.display()
            );
            None
        }
        (None, Some(ca_cert)) => {
            let ca_cert_pem = std::fs::read_to_string(ca_cert)
                .map_err(|e| CliError::Input(format!("{}: {e}", ca_cert.display())))?;
            let node = provision::init_node(&args.dir, spec, Certifier::External { ca_cert_pem })?;
            Some(node)
        }
        (None, None) => {
            return Err(CliError::Input(
                "give --ca DIR or --external-ca CA.crt".into(),
            ));
        }
    };
    if let Some(node) = external {
        println!(
            "created node {} in {} for an external CA. Next:",
            node.code(),
            args.dir.display()
        );
        println!("  1. have your CA sign tls.csr (server and client auth) into tls.crt");
        println!("  2. have it sign signing.csr (digital signature) into signing.crt");
        println!(
            "  3. put both certificates in {} and run `tierlink serve --node {}`",
            args.dir.display(),
            args.dir.display()
        );
    } else {
        println!(
            "start it with: tierlink serve --node {}",
            args.dir.display()
        );
    }
    Ok(())
}

/// The host of an `https://HOST:PORT/…` endpoint, without IPv6 brackets.
fn endpoint_host(endpoint: &str) -> Option<&str> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

/// `tierlink serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The node to serve.
    #[command(flatten)]
    pub node: NodeArg,
    /// How to write the log to standard error: `text`, or `json` lines for a log collector, each
    /// with the read's request id in its spans [default: node.toml's `[log] format`, else text].
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

impl ServeArgs {
    /// The log's format: the flag's, else node.toml's (text when node.toml cannot be read: the
    /// command then says why).
    pub fn log_format(&self) -> LogFormat {
        match self.log_format.as_deref() {
            Some("json") => LogFormat::Json,
            Some(_) => LogFormat::Text,
            None => NodeDir::load(&self.node.node).map_or(LogFormat::Text, |d| d.config.log.format),
        }
    }
}

pub async fn serve(dir: &Path) -> Result<(), CliError> {
    let node_dir = NodeDir::load(dir)?;
    let listener = runtime::bind(&node_dir).await?;
    let node = Node::open(node_dir).await?;
    node.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (as systemd sends on stop).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests;
