//! `tierlink cert rotate|retire|revoke`: a node's certificates change through signed directory
//! commands, so that every node accepts a new certificate and refuses a revoked one from its own
//! replica, with no restart of theirs and no revocation service to reach.
//!
//! Rotating a TLS certificate is done in three steps with no moment where peers refuse the node:
//! `rotate` registers the new certificate beside the old and installs it in the node directory;
//! a restart of the node makes it present the new one; `retire` then revokes the old.
//!
//! A new signing key comes with a new encryption key: producers seal to it once the directory
//! has it, and the node keeps the old one in its key file to open what was sealed before.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::config::NodeDir;
use tierlink_core::directory::{DirectoryCommand, Rotation};
use tierlink_core::identity::{
    EncryptionKeys, NodeCode, NodeCredentials, NodeKey, fingerprint, hosts_of,
    issue_node_certificates, pem_to_der, write_private,
};
use tierlink_core::provision::load_ca;
use tierlink_proto::v1::{ReadRequest, StatusRequest};

use super::directory::propose;
use super::{CliError, NodeArg};

/// `tierlink cert …`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Give this node new certificates and register them in the directory. The TLS certificate
    /// replaced stays accepted until `tierlink cert retire`; restart the node to present the new
    /// ones (at once after a new signing key: until then what it signs is refused). A new signing
    /// key comes with a new encryption key; the old one stays in encryption.key.
    Rotate(RotateArgs),
    /// Revoke the TLS certificates this node rotated away from, once it presents the new one.
    Retire(NodeArg),
    /// Revoke a TLS certificate of this node or of a unit below it, by fingerprint: every node
    /// refuses it once its replica applies the change.
    Revoke {
        /// The node acting: the member itself or its parent.
        #[command(flatten)]
        node: NodeArg,
        /// The member whose certificate is revoked.
        member: NodeCode,
        /// BLAKE3 fingerprint of the certificate, hex (`tierlink directory members --certificates`).
        fingerprint: String,
    },
}

/// Which certificates to replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// The TLS certificate and the signing certificate.
    Both,
    /// The TLS certificate only.
    Tls,
    /// The signing certificate (and its key, with a new encryption key) only.
    Signing,
}

/// `tierlink cert rotate`
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The node acting.
    #[command(flatten)]
    pub node: NodeArg,
    /// CA directory from `tierlink ca init`: new keys are made and certified at once, for the
    /// hosts the current TLS certificate names.
    #[arg(long, conflicts_with_all = ["tls_cert", "signing_cert"])]
    pub ca: Option<PathBuf>,
    /// Which certificates to replace when issuing with --ca.
    #[arg(long, value_enum, default_value = "both", requires = "ca")]
    pub only: Which,
    /// A new TLS certificate issued by the federation CA (PEM), with --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The new TLS certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A new signing certificate issued by the federation CA (PEM), with --signing-key.
    #[arg(long, requires = "signing_key")]
    pub signing_cert: Option<PathBuf>,
    /// The new signing certificate's private key (PEM).
    #[arg(long, requires = "signing_cert")]
    pub signing_key: Option<PathBuf>,
}

/// A certificate and its key, PEM.
struct Pair {
    cert: String,
    key: String,
}

/// Runs `tierlink cert …`.
pub async fn run(command: CertCommand) -> Result<(), CliError> {
    match command {
        CertCommand::Rotate(args) => rotate(args).await,
        CertCommand::Retire(node) => retire(&node.node).await,
        CertCommand::Revoke {
            node,
            member,
            fingerprint,
        } => {
            let revoke = DirectoryCommand::Revoke {
                node: member,
                tls_fingerprint: fingerprint,
            };
            propose(&node.node, vec![revoke], "").await
        }
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// The new TLS and signing pairs the arguments give, issued or read.
fn new_pairs(dir: &NodeDir, args: &RotateArgs) -> Result<(Option<Pair>, Option<Pair>), CliError> {
    if let Some(ca_dir) = &args.ca {
        let ca = load_ca(ca_dir)?;
        let hosts = hosts_of(&pem_to_der(&dir.credentials()?.tls_cert_pem)?)?;
        let keys = NodeCredentials::generate()?;
        let issued = issue_node_certificates(&ca, &dir.config.node, &hosts, &keys)?;
        let tls = Pair {
            cert: issued.tls_pem,
            key: keys.tls_key_pem,
        };
        let signing = Pair {
            cert: issued.signing_pem,
            key: keys.signing_key_pem,
        };
        return Ok(match args.only {
            Which::Both => (Some(tls), Some(signing)),
            Which::Tls => (Some(tls), None),
            Which::Signing => (None, Some(signing)),
        });
    }
    let pair = |cert: &Option<PathBuf>, key: &Option<PathBuf>| -> Result<Option<Pair>, CliError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Pair {
                cert: read(cert)?,
                key: read(key)?,
            })),
            _ => Ok(None),
        }
    };
    let tls = pair(&args.tls_cert, &args.tls_key)?;
    let signing = pair(&args.signing_cert, &args.signing_key)?;
    if tls.is_none() && signing.is_none() {
        return Err(CliError::Input(
            "name the new certificates: --ca DIR to issue them, or --tls-cert/--tls-key and --signing-cert/--signing-key".into(),
        ));
    }
    Ok((tls, signing))
}

async fn rotate(args: RotateArgs) -> Result<(), CliError> {
    let dir = NodeDir::load(&args.node.node)?;
    let code = dir.code().clone();
    let trusted = dir.trusted_ca()?;
    let (tls, signing) = new_pairs(&dir, &args)?;
    // Checked here too, so a wrong file is named before anything is registered.
    if let Some(tls) = &tls {
        let (named, _) = trusted.verify_node_certificate(&pem_to_der(&tls.cert)?)?;
        if named != code {
            return Err(CliError::Input(format!(
                "the new TLS certificate names {named}, not this node {code}"
            )));
        }
    }
    if let Some(signing) = &signing {
        NodeKey::load(&signing.key, &signing.cert, &trusted)?;
    }
    let encryption = signing
        .as_ref()
        .map(|_| EncryptionKeys::generate())
        .transpose()?;
    let rotation = Rotation {
        node: code.clone(),
        tls_certificate: tls.as_ref().map(|p| p.cert.clone()),
        signing_certificate: signing.as_ref().map(|p| p.cert.clone()),
        encryption_key: encryption.as_ref().map(|k| k.current().public().to_hex()),
        at_micros: chrono::Utc::now().timestamp_micros(),
    };
    propose(
        &args.node.node,
        vec![DirectoryCommand::Rotate(rotation)],
        "",
    )
    .await?;
    let files = &dir.config.files;
    if let Some(tls) = &tls {
        install(&dir, &files.tls_cert, &files.tls_key, tls)?;
        println!(
            "{code}'s TLS certificate is now {}; the one it replaces stays accepted until `tierlink cert retire --node {}`",
            fingerprint(&pem_to_der(&tls.cert)?),
            args.node.node.display()
        );
    }
    if let Some(signing) = &signing {
        install(&dir, &files.signing_cert, &files.signing_key, signing)?;
        println!(
            "{code} signs with a new key: batches signed before now still verify under the old one"
        );
    }
    if let Some(new) = encryption {
        let path = dir.path(&files.encryption_key);
        // A node directory made before batches were sealed has no key file yet.
        let keys = if path.exists() {
            dir.encryption_keys()?.rotated(new.current().clone())
        } else {
            new
        };
        write_private(&path, &keys.to_text())
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        println!(
            "{code} is sealed to with a new encryption key: batches sealed to the old one still open while {} keeps it",
            path.display()
        );
    }
    println!(
        "restart the node (`tierlink serve --node {}`) to present and sign with the new certificates",
        args.node.node.display()
    );
    Ok(())
}

/// Writes a new certificate and key over the node's, keeping the old ones beside them (`.old`).
fn install(dir: &NodeDir, cert: &Path, key: &Path, pair: &Pair) -> Result<(), CliError> {
    let io = |path: &Path, e: std::io::Error| CliError::Input(format!("{}: {e}", path.display()));
    for file in [cert, key] {
        let path = dir.path(file);
        let mut old = path.clone().into_os_string();
        old.push(".old");
        std::fs::copy(&path, &old).map_err(|e| io(&path, e))?;
    }
    let cert = dir.path(cert);
    std::fs::write(&cert, &pair.cert).map_err(|e| io(&cert, e))?;
    let key = dir.path(key);
    write_private(&key, &pair.key).map_err(|e| io(&key, e))
}

async fn retire(node: &Path) -> Result<(), CliError> {
    let dir = NodeDir::load(node)?;
    let code = dir.code().clone();
    let presented = fingerprint(&pem_to_der(&dir.credentials()?.tls_cert_pem)?);
    let mut client = NodeClient::open(dir.clone())?.directory().await?;
    let members = client
        .members(ReadRequest { linearizable: true })
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .members;
    let me = members
        .into_iter()
        .find(|m| m.code == code.as_str())
        .ok_or_else(|| CliError::Input(format!("{code} is not a member of the directory")))?;
    if me.tls_fingerprint != presented {
        return Err(CliError::Input(format!(
            "this node's TLS certificate ({presented}) is not the one registered for it ({}): rotate first with `tierlink cert rotate`",
            me.tls_fingerprint
        )));
    }
    let running = client
        .status(StatusRequest {})
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .presents_tls;
    if running != presented {
        return Err(CliError::Input(format!(
            "the running node still presents its old TLS certificate ({running}): restart it (`tierlink serve --node {}`) before retiring the old one",
            node.display()
        )));
    }
    if me.retiring_tls.is_empty() {
        println!("{code} is accepted with its registered TLS certificate only: nothing to retire");
        return Ok(());
    }
    let revoke = me
        .retiring_tls
        .into_iter()
        .map(|tls_fingerprint| DirectoryCommand::Revoke {
            node: code.clone(),
            tls_fingerprint,
        })
        .collect();
    propose(node, revoke, "").await
}
