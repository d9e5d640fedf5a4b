//! `tierlink backup`, `tierlink restore` and `tierlink backup-key`: a signed archive of a serving
//! node's store and directory, a stopped node made again from one, and a key pair to seal
//! archives to.

use std::path::{Path, PathBuf};

use clap::Args;
use tierlink_client::NodeClient;
use tierlink_core::config::NodeDir;
use tierlink_core::identity::{EncryptionKeys, RecipientKey, write_private};
use tierlink_core::limits::human_bytes;
use tierlink_core::signed::backup::Manifest;
use tierlink_node::backup::restore::{RestoreOptions, restore};
use tierlink_proto::v1::TakeBackupRequest;

use super::{CliError, NodeArg};

/// `tierlink backup`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The node to back up; it must be serving (it takes the backup).
    #[command(flatten)]
    pub node: NodeArg,
    /// The archive to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Seal the archive to this X25519 public key: 64 hex digits, or a file holding them (the
    /// `.pub` file of `tierlink backup-key`).
    #[arg(long)]
    pub encrypt_to: Option<String>,
    /// Include the node's private keys (TLS, signing, encryption, the federation hash key);
    /// only in a sealed archive.
    #[arg(long, requires = "encrypt_to")]
    pub with_keys: bool,
}

/// `tierlink restore`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The node directory to restore; the node must be stopped.
    #[command(flatten)]
    pub node: NodeArg,
    /// The archive.
    #[arg(long)]
    pub from: PathBuf,
    /// The key file that opens a sealed archive (from `tierlink backup-key`).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The federation CA's certificate [default: the node directory's].
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Restore a backup of another node than the directory's, replacing it.
    #[arg(long)]
    pub other_node: bool,
    /// Replace a node directory that is not empty.
    #[arg(long)]
    pub replace: bool,
}

/// `tierlink backup-key`
#[derive(Debug, Args)]
pub struct BackupKeyArgs {
    /// The private key file to write (0600); the public key goes to FILE.pub.
    #[arg(long)]
    pub out: PathBuf,
}

/// The recipient `--encrypt-to` names.
fn recipient(text: &str) -> Result<RecipientKey, CliError> {
    let hex = match std::fs::read_to_string(text) {
        Ok(file) => file,
        Err(_) => text.to_owned(),
    };
    RecipientKey::from_hex(&hex).map_err(|e| {
        CliError::Input(format!(
            "--encrypt-to {text}: {e}; give 64 hex digits, or the .pub file of `tierlink backup-key`"
        ))
    })
}

fn summary(manifest: &Manifest) -> String {
    let bytes: u64 = manifest.parts.iter().map(|p| p.bytes).sum();
    format!(
        "node {}, store format {}, taken at {}: {} parts, {}{}",
        manifest.node,
        manifest.store_format,
        manifest.taken_at,
        manifest.parts.len(),
        human_bytes(bytes),
        if manifest.with_keys {
            ", private keys included"
        } else {
            ", no private keys"
        }
    )
}

pub async fn backup(args: BackupArgs) -> Result<(), CliError> {
    let to = args.encrypt_to.as_deref().map(recipient).transpose()?;
    let client = NodeClient::open(NodeDir::load(&args.node.node)?)?;
    let request = TakeBackupRequest {
        encrypt_to: to
            .as_ref()
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_default(),
        with_keys: args.with_keys,
    };
    let manifest = client.take_backup(request, &args.out).await?;
    println!("wrote {}: {}", args.out.display(), summary(&manifest));
    println!(
        "writes to the store waited {:.1} ms while it was dumped; signed by {}{}",
        manifest.writes_waited_micros as f64 / 1e3,
        manifest.node,
        match &to {
            Some(key) => format!("; sealed to {}", key.to_hex()),
            None => "; not encrypted".into(),
        }
    );
    Ok(())
}

pub fn restore_node(args: RestoreArgs) -> Result<(), CliError> {
    let options = RestoreOptions {
        from: args.from,
        key: args.key,
        ca: args.ca,
        other_node: args.other_node,
        replace: args.replace,
    };
    let restored = restore(&args.node.node, &options)?;
    println!(
        "verified {}: {}",
        options.from.display(),
        summary(&restored.manifest)
    );
    println!(
        "restored {}: {} keys in {} trees of the store{}; start the node with `tierlink serve`",
        args.node.node.display(),
        restored.store.entries,
        restored.store.trees,
        if restored.kept_keys {
            ", the private keys kept from the directory replaced"
        } else {
            ", the private keys from the backup"
        }
    );
    Ok(())
}

pub fn backup_key(args: &BackupKeyArgs) -> Result<(), CliError> {
    let keys = EncryptionKeys::generate()?;
    let public = keys.current().public().to_hex();
    let pub_path = public_path(&args.out);
    for path in [&args.out, &pub_path] {
        if path.exists() {
            return Err(CliError::Input(format!(
                "{} exists: choose another --out, a key is never overwritten",
                path.display()
            )));
        }
    }
    write_private(&args.out, &keys.to_text())
        .map_err(|e| CliError::Input(format!("{}: {e}", args.out.display())))?;
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| CliError::Input(format!("{}: {e}", pub_path.display())))?;
    println!(
        "wrote {} (private: keep it away from the node, it opens the backups) and {}",
        args.out.display(),
        pub_path.display()
    );
    println!("tierlink backup --encrypt-to {public}");
    Ok(())
}

fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}
