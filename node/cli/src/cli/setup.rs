//! `tierlink ca init`, `tierlink init` and `tierlink serve`.

use std::path::Path;

use super::{CliError, InitArgs};
use tierlink_core::config::NodeDir;
use tierlink_core::identity::Unit;
use tierlink_core::provision::{self, CA_CERT, CA_KEY, Certifier, NodeSpec};
use tierlink_node::runtime::{self, Node};

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
    if let Some(host) = endpoint_host(&endpoint) {
        if !hosts.iter().any(|h| h == host) {
            hosts.push(host.to_owned());
        }
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
