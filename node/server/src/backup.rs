//! Backups of a node while it serves, and restoring a node from one.
//!
//! - [`service`]: the `tierlink.v1.Backup` service: the node dumps its store, every tree at one
//!   point, and streams the archive ([`tierlink_core::signed::backup`]) of it and of its
//!   directory's files, signed with its key, sealed when asked.
//! - [`restore`]: a stopped node's directory made again from an archive, verified whole before
//!   anything is touched, swapped in at the end.
//!
//! What goes in: the store (`store`), and under `files/` the node directory's `node.toml`, the
//! CA, TLS and signing certificates, the principals and the hashes of their tokens, and the
//! webhook CA and working-day calendar when `node.toml` names them; with `--with-keys` also the
//! TLS, signing and encryption keys and the federation's hash key. Files `node.toml` names by
//! an absolute path live outside the node directory and are not taken.

pub mod restore;
pub mod service;

use std::path::{Path, PathBuf};

use tierlink_core::config::NodeDir;

/// The name of the store's part.
pub const STORE_PART: &str = "store";
/// The prefix of the parts that are files of the node directory.
pub const FILE_PART: &str = "files/";

/// The files of the node directory a backup takes, as (path in the directory, whether it is a
/// private key), those that exist.
pub fn node_files(dir: &NodeDir) -> Vec<(PathBuf, bool)> {
    let files = &dir.config.files;
    let mut all: Vec<(PathBuf, bool)> = vec![
        (tierlink_core::config::CONFIG_FILE.into(), false),
        (files.ca.clone(), false),
        (files.tls_cert.clone(), false),
        (files.signing_cert.clone(), false),
        (files.principals.clone(), false),
        (files.tokens.clone(), false),
        (files.tls_key.clone(), true),
        (files.signing_key.clone(), true),
        (files.encryption_key.clone(), true),
        (files.hash_key.clone(), true),
    ];
    all.extend(dir.config.webhooks.ca.iter().map(|p| (p.clone(), false)));
    all.extend(dir.config.cases.calendar.iter().map(|p| (p.clone(), false)));
    all.retain(|(path, _)| within(path) && dir.path(path).is_file());
    all.dedup();
    all
}

/// Whether a path from `node.toml` lies inside the node directory: relative, without `..`.
fn within(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
}
