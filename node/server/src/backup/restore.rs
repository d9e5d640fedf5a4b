//! Restoring a stopped node's directory from a backup archive.
//!
//! In order, each step before anything is written:
//! 1. the archive is read through once: signature (under the federation CA: the one given, or
//!    the target directory's), every part's length and SHA-256, the store dump's framing, the
//!    part names, and a store format this build opens (an older one is upgraded when the node
//!    starts);
//! 2. the target: a node serving from it is refused, a directory that is not empty is replaced
//!    only when told, and a directory of another node only when told that too;
//! 3. private keys: from the archive when it holds them, or else kept from the target, which
//!    must have them (keys kept outside the node directory stay where they are), and which must
//!    be the restored certificates' own.
//!
//! A restore writes only inside the node directory (a symlink to it is followed): an archive
//! whose node.toml keeps the store elsewhere is refused.
//!
//! Then the archive is read again into a new directory beside the target (`.NAME.restoring`),
//! and that is renamed into the target's place, the old one moved aside first and removed last:
//! a failure at any point leaves the target as it was.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use tierlink_core::config::{CONFIG_FILE, ConfigError, NodeConfig, NodeDir};
use tierlink_core::identity::{CertError, EncryptionKeys, NodeCode, TrustedCa};
use tierlink_core::signed::backup::{Archive, BackupError, Manifest};
use tierlink_store::{Dumped, FORMAT_VERSION, SledStore, StoreError};

use super::{FILE_PART, STORE_PART, within};

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// The archive.
    pub from: PathBuf,
    /// The key file that opens a sealed archive (X25519 private keys, as `encryption.key`).
    pub key: Option<PathBuf>,
    /// The federation CA's certificate; by default the target directory's.
    pub ca: Option<PathBuf>,
    /// Restore a backup of another node than the target directory's.
    pub other_node: bool,
    /// Replace a target directory that is not empty.
    pub replace: bool,
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The archive's signed manifest.
    pub manifest: Manifest,
    /// The store as made from the archive.
    pub store: Dumped,
    /// Whether the private keys were kept from the directory replaced (the archive held none).
    pub kept_keys: bool,
}

/// Why a restore refused or failed; the target directory is then as it was.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The archive did not verify.
    #[error("{from}: {source}")]
    Archive {
        /// The archive.
        from: PathBuf,
        /// Why.
        source: BackupError,
    },
    /// No CA to verify with.
    #[error(
        "{0} holds no node whose CA could verify the backup: give --ca FILE, the federation's CA certificate (ca.crt)"
    )]
    NoCa(PathBuf),
    /// A CA or key file is not usable.
    #[error("{path}: {source}")]
    Credential {
        /// The file.
        path: PathBuf,
        /// Why.
        source: CertError,
    },
    /// The archive's store is in a format this build does not open.
    #[error(
        "the backup holds store format {found}, newer than this build's format {FORMAT_VERSION}: restore it with the Tierlink version that took it, or a newer one"
    )]
    NewerStore {
        /// The format.
        found: u32,
    },
    /// A part this code does not know, or a file that would land outside the directory.
    #[error("the backup holds a part named {0:?}, which no backup writes: use an intact copy")]
    UnknownPart(String),
    /// The archive lacks its store or node.toml.
    #[error("the backup has no {0} part: it is not a whole backup; use another")]
    Missing(&'static str),
    /// The archive's node.toml does not load.
    #[error("the backup's node.toml: {0}")]
    Config(String),
    /// The archive's node.toml puts the store outside the node directory.
    #[error(
        "the backup's node.toml puts the store at {0}, outside the node directory, and a restore writes only inside it: restore into a node directory whose node.toml keeps [files] data relative (e.g. \"data\"), then move the store if it must live elsewhere"
    )]
    StoreOutside(PathBuf),
    /// The target's own node.toml does not load.
    #[error(
        "{path}: {message}: a restore must read the node there (to see that it is stopped, and whose it is); fix the file, or move the directory aside and restore into an empty one"
    )]
    Target {
        /// The target's node.toml.
        path: PathBuf,
        /// Why it does not load.
        message: String,
    },
    /// The private keys kept from the target are not the restored node's.
    #[error(
        "the private keys in {dir} are not those of the certificates in the backup ({why}): restore a backup taken with --with-keys, or put node {node}'s own keys there first"
    )]
    KeysDoNotMatch {
        /// The node.
        node: NodeCode,
        /// The target.
        dir: PathBuf,
        /// What does not match.
        why: String,
    },
    /// The node serves from the target.
    #[error(
        "node {0} is running from {1}: stop it (systemctl stop, or Ctrl-C on `tierlink serve`) before restoring it"
    )]
    Running(String, PathBuf),
    /// The target is not empty.
    #[error(
        "{0} is not empty: give --replace to replace it with the backup (it is moved aside and removed only once the restore is complete)"
    )]
    NotEmpty(PathBuf),
    /// A backup of another node.
    #[error(
        "the backup is of node {archive}, but {dir} is node {target}'s: give --other-node to replace node {target} with node {archive} (restoring a node onto another server)"
    )]
    AnotherNode {
        /// The node backed up.
        archive: NodeCode,
        /// The target's node.
        target: NodeCode,
        /// The target.
        dir: PathBuf,
    },
    /// Neither the archive nor the target holds the node's private keys.
    #[error(
        "the backup holds no private keys (it was taken without --with-keys), and {dir} has no {missing} of node {node} to keep: put the node's keys there first, or restore a backup taken with --with-keys"
    )]
    NoKeys {
        /// The node.
        node: NodeCode,
        /// The target.
        dir: PathBuf,
        /// The first key file missing.
        missing: String,
    },
    /// The store could not be checked or made.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<BackupError> for RestoreError {
    fn from(source: BackupError) -> Self {
        RestoreError::Archive {
            from: PathBuf::new(),
            source,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a part through, keeping the archive's own refusal (a sealed chunk that does not
/// open, bytes cut short) when one stops the reading, so that it is reported rather than what
/// the store made of the missing bytes.
struct PartReader<'a> {
    input: &'a mut dyn Read,
    refused: Option<BackupError>,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<BackupError>()) {
                let inner = e.into_inner().expect("checked above");
                self.refused = inner.downcast::<BackupError>().ok().map(|b| *b);
                std::io::Error::other("the archive was refused")
            } else {
                e
            }
        })
    }
}

/// Hands `input` to `use_it`; a failure is the archive's refusal when one stopped the reading.
fn through<T>(
    input: &mut dyn Read,
    use_it: impl FnOnce(&mut dyn Read) -> Result<T, RestoreError>,
) -> Result<T, RestoreError> {
    let mut part = PartReader {
        input,
        refused: None,
    };
    let result = use_it(&mut part);
    match (result, part.refused) {
        (Err(_), Some(refused)) => Err(refused.into()),
        (result, _) => result,
    }
}

/// The archive's manifest and `node.toml`, once read through and verified.
struct Checked {
    manifest: Manifest,
    config: NodeConfig,
}

/// Where a part goes in the node directory: `None` for the store.
fn destination(name: &str) -> Result<Option<PathBuf>, RestoreError> {
    if name == STORE_PART {
        return Ok(None);
    }
    match name.strip_prefix(FILE_PART).map(PathBuf::from) {
        Some(path) if within(&path) && path.components().next().is_some() => Ok(Some(path)),
        _ => Err(RestoreError::UnknownPart(name.to_owned())),
    }
}

/// Opens the archive at `from` and verifies its header.
fn open(
    from: &Path,
    keys: Option<&EncryptionKeys>,
    ca: &TrustedCa,
) -> Result<Archive, RestoreError> {
    let file = std::fs::File::open(from).map_err(io(from))?;
    Archive::open(Box::new(BufReader::new(file)), keys, ca).map_err(|source| {
        RestoreError::Archive {
            from: from.to_owned(),
            source,
        }
    })
}

/// Names the archive in a refusal met while reading its parts.
fn naming(from: &Path) -> impl FnOnce(RestoreError) -> RestoreError + '_ {
    move |e| match e {
        RestoreError::Archive { source, .. } => RestoreError::Archive {
            from: from.to_owned(),
            source,
        },
        other => other,
    }
}

/// Reads the archive through: every check of step 1.
fn check(
    from: &Path,
    keys: Option<&EncryptionKeys>,
    ca: &TrustedCa,
) -> Result<Checked, RestoreError> {
    let archive = open(from, keys, ca)?;
    if archive.manifest.store_format > FORMAT_VERSION {
        return Err(RestoreError::NewerStore {
            found: archive.manifest.store_format,
        });
    }
    let mut config = None;
    let mut store = false;
    let manifest = archive
        .read_parts(|part, input| {
            match destination(&part.name)? {
                None => {
                    through(input, |input| {
                        Ok(SledStore::read_dump(input, |_, _, _| Ok(()))?)
                    })?;
                    store = true;
                }
                Some(path) if path == Path::new(CONFIG_FILE) => {
                    let mut text = String::new();
                    input
                        .read_to_string(&mut text)
                        .map_err(|e| RestoreError::Config(e.to_string()))?;
                    config = Some(
                        toml::from_str::<NodeConfig>(&text)
                            .map_err(|e| RestoreError::Config(e.to_string()))?,
                    );
                }
                Some(_) => {}
            }
            Ok::<_, RestoreError>(())
        })
        .map_err(naming(from))?;
    if !store {
        return Err(RestoreError::Missing("store"));
    }
    let config = config.ok_or(RestoreError::Missing("files/node.toml"))?;
    if !within(&config.files.data) {
        return Err(RestoreError::StoreOutside(config.files.data.clone()));
    }
    Ok(Checked { manifest, config })
}

/// The private key files a node cannot start without.
fn key_files(config: &NodeConfig) -> [&Path; 3] {
    let f = &config.files;
    [&f.tls_key, &f.signing_key, &f.encryption_key]
}

/// Restores the node directory `dir` from a backup (see the module's steps).
pub fn restore(dir: &Path, options: &RestoreOptions) -> Result<Restored, RestoreError> {
    // A symlinked node directory is restored where it points, the link left as it is.
    let real = dir.canonicalize().ok();
    let dir = real.as_deref().unwrap_or(dir);
    let existing = match NodeDir::load(dir) {
        Ok(node) => Some(node),
        Err(ConfigError::NotANode(_)) => None,
        Err(e) => {
            return Err(RestoreError::Target {
                path: dir.join(CONFIG_FILE),
                message: e.to_string(),
            });
        }
    };
    let ca_path = match (&options.ca, &existing) {
        (Some(ca), _) => ca.clone(),
        (None, Some(node)) => node.path(&node.config.files.ca),
        (None, None) => return Err(RestoreError::NoCa(dir.to_owned())),
    };
    let ca = std::fs::read_to_string(&ca_path).map_err(io(&ca_path))?;
    let ca = TrustedCa::from_pem(&ca).map_err(|source| RestoreError::Credential {
        path: ca_path.clone(),
        source,
    })?;
    let keys = match &options.key {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            Some(
                EncryptionKeys::parse(&text).map_err(|source| RestoreError::Credential {
                    path: path.clone(),
                    source,
                })?,
            )
        }
    };
    let checked = check(&options.from, keys.as_ref(), &ca)?;
    let node = checked.manifest.node.clone();

    if let Some(target) = &existing {
        SledStore::ensure_unused(&target.path(&target.config.files.data)).map_err(|e| match e {
            StoreError::Locked(_) => {
                RestoreError::Running(target.code().to_string(), dir.to_owned())
            }
            other => other.into(),
        })?;
        if *target.code() != node && !options.other_node {
            return Err(RestoreError::AnotherNode {
                archive: node,
                target: target.code().clone(),
                dir: dir.to_owned(),
            });
        }
    }
    let occupied = dir.read_dir().is_ok_and(|mut d| d.next().is_some());
    if occupied && !options.replace {
        return Err(RestoreError::NotEmpty(dir.to_owned()));
    }
    let kept_keys = !checked.manifest.with_keys;
    if kept_keys {
        let missing = match existing {
            None => Some(CONFIG_FILE.to_owned()),
            Some(_) => key_files(&checked.config)
                .into_iter()
                .find(|file| !dir.join(file).is_file())
                .map(|file| file.display().to_string()),
        };
        if let Some(missing) = missing {
            return Err(RestoreError::NoKeys {
                node,
                dir: dir.to_owned(),
                missing,
            });
        }
        if existing.as_ref().is_some_and(|t| *t.code() != node) {
            // The keys there are another node's: they would not match the certificates.
            return Err(RestoreError::NoKeys {
                node,
                dir: dir.to_owned(),
                missing: "private key".into(),
            });
        }
    }

    let name = dir
        .file_name()
        .ok_or_else(|| RestoreError::Config(format!("{} names no directory", dir.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(".{name}.restoring"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    let made = build(
        &staging,
        dir,
        &checked,
        keys.as_ref(),
        &ca,
        options,
        kept_keys,
    );
    let store = match made {
        Ok(store) => store,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    swap(&staging, dir, parent, &name)?;
    Ok(Restored {
        manifest: checked.manifest,
        store,
        kept_keys,
    })
}

/// Writes the node directory from the archive into `staging`.
fn build(
    staging: &Path,
    dir: &Path,
    checked: &Checked,
    keys: Option<&EncryptionKeys>,
    ca: &TrustedCa,
    options: &RestoreOptions,
    kept_keys: bool,
) -> Result<Dumped, RestoreError> {
    std::fs::create_dir_all(staging).map_err(io(staging))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o700))
            .map_err(io(staging))?;
    }
    let data = staging.join(&checked.config.files.data);
    let mut store = None;
    open(&options.from, keys, ca)?
        .read_parts(|part, input| {
            match destination(&part.name)? {
                None => store = Some(through(input, |input| Ok(SledStore::load(&data, input)?))?),
                Some(path) => {
                    let path = staging.join(path);
                    through(input, |input| write_private(&path, input))?
                }
            }
            Ok::<_, RestoreError>(())
        })
        .map_err(naming(&options.from))?;
    if kept_keys {
        // The federation's hash key is a secret too, and optional: kept when the node has one,
        // or every read whose grant hashes an item would fail after the restore. A key kept
        // outside the node directory (an absolute path, or one through `..`) is not in what
        // the restore replaces: it stays where it is.
        let hash_key = &checked.config.files.hash_key;
        let kept = key_files(&checked.config)
            .into_iter()
            .chain(dir.join(hash_key).exists().then_some(hash_key.as_path()))
            .filter(|file| within(file));
        for file in kept {
            let to = staging.join(file);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(dir.join(file), &to).map_err(io(&to))?;
        }
        let node = NodeDir::load(staging).map_err(|e| RestoreError::Config(e.to_string()))?;
        let matching = node.signing_key().and_then(|_| node.encryption_keys());
        if let Err(e) = matching {
            return Err(RestoreError::KeysDoNotMatch {
                node: checked.manifest.node.clone(),
                dir: dir.to_owned(),
                why: e.to_string(),
            });
        }
    }
    store.ok_or(RestoreError::Missing("store"))
}

/// Writes a file only its user reads (the archive does not say which files are keys: all are
/// written 0600, as `tierlink init` writes keys).
fn write_private(path: &Path, input: &mut dyn Read) -> Result<(), RestoreError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    std::io::copy(input, &mut file).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Puts `staging` in `dir`'s place: the old directory moved aside first, back if the move in
/// fails, removed once the new one is in place.
fn swap(staging: &Path, dir: &Path, parent: &Path, name: &str) -> Result<(), RestoreError> {
    if !dir.exists() {
        return std::fs::rename(staging, dir).map_err(io(dir));
    }
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let aside = parent.join(format!(".{name}.replaced-{nanos}"));
    std::fs::rename(dir, &aside).map_err(io(dir))?;
    if let Err(source) = std::fs::rename(staging, dir) {
        let _ = std::fs::rename(&aside, dir);
        return Err(RestoreError::Io {
            path: dir.to_owned(),
            source,
        });
    }
    std::fs::remove_dir_all(&aside).map_err(io(&aside))
}
