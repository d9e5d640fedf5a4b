//! Making a federation's files: the CA directory, and node directories with their keys,
//! certificates and `node.toml`. Nothing existing is overwritten.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{CONFIG_FILE, Files, NodeConfig, NodeDir, Peer, ServerConfig};
use crate::identity::{
    CaFiles, CertError, EncryptionKeys, NodeCredentials, TrustedCa, Unit, UnitError, generate_ca,
    issue_node_certificates, write_private,
};
use crate::policy::HashKey;

/// CA certificate file name in a CA directory.
pub const CA_CERT: &str = "ca.crt";
/// CA key file name in a CA directory.
pub const CA_KEY: &str = "ca.key";
/// The federation's hash key in a CA directory.
pub const HASH_KEY: &str = "federation.key";

/// Files that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A file is in the way.
    #[error("{0} already exists: choose another directory, or remove it if it is truly unused")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The unit is not valid.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// The CA directory given is not one `tierlink ca init` made.
    #[error(
        "cannot read the federation CA in {dir}: {source}; give the directory made by `tierlink ca init` (with ca.crt and ca.key)"
    )]
    MissingCa {
        /// The directory given.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A key or certificate could not be made.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// No randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// The hash key file is not a key.
    #[error("{path}: {problem}; it holds the federation's hash key as 64 hex digits")]
    BadHashKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `node.toml` could not be written.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_new(path: &Path, contents: &str, private: bool) -> Result<(), ProvisionError> {
    if path.exists() {
        return Err(ProvisionError::Exists(path.to_owned()));
    }
    if private {
        write_private(path, contents)
    } else {
        std::fs::write(path, contents)
    }
    .map_err(io(path))
}

/// Creates a federation CA in `dir` (`ca.crt`, and `ca.key` readable by its owner only), with
/// the federation's hash key beside it (`federation.key`, owner only).
pub fn init_ca(dir: &Path, federation: &str) -> Result<CaFiles, ProvisionError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca = generate_ca(federation)?;
    let hash_key = HashKey::generate().map_err(|e| ProvisionError::Random(e.to_string()))?;
    write_new(&dir.join(CA_KEY), &ca.key_pem, true)?;
    write_new(&dir.join(CA_CERT), &ca.cert_pem, false)?;
    write_new(&dir.join(HASH_KEY), &hash_key.to_hex(), true)?;
    Ok(ca)
}

/// The federation's hash key kept with the CA in `dir`, if there is one.
pub fn load_hash_key(dir: &Path) -> Result<Option<HashKey>, ProvisionError> {
    let path = dir.join(HASH_KEY);
    match std::fs::read_to_string(&path) {
        Ok(text) => HashKey::from_hex(&text)
            .map(Some)
            .map_err(|problem| ProvisionError::BadHashKey { path, problem }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Reads the CA in `dir`.
pub fn load_ca(dir: &Path) -> Result<CaFiles, ProvisionError> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|source| ProvisionError::MissingCa {
            dir: dir.to_owned(),
            source,
        })
    };
    Ok(CaFiles {
        cert_pem: read(CA_CERT)?,
        key_pem: read(CA_KEY)?,
    })
}

/// Who certifies a new node.
pub enum Certifier<'a> {
    /// The federation CA, whose key is at hand: certificates are issued at once.
    Ca(&'a CaFiles),
    /// An external CA: certificate signing requests are written for it, next to its certificate.
    External {
        /// The external CA's certificate (PEM).
        ca_cert_pem: String,
    },
}

/// Everything `tierlink init` needs to know about a new node.
pub struct NodeSpec {
    /// Its unit.
    pub unit: Unit,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// URL others reach it at.
    pub endpoint: String,
    /// Host names and addresses for its TLS certificate.
    pub hosts: Vec<String>,
    /// Nodes it can reach.
    pub peers: Vec<Peer>,
    /// The federation's hash key, installed as `federation.key` when given.
    pub hash_key: Option<HashKey>,
}

/// Creates a node directory. With an external CA it also writes `tls.csr` and `signing.csr`: have
/// them signed into `tls.crt` and `signing.crt` before serving.
pub fn init_node(
    dir: &Path,
    spec: NodeSpec,
    certifier: Certifier<'_>,
) -> Result<NodeDir, ProvisionError> {
    spec.unit.validate()?;
    if dir.join(CONFIG_FILE).exists() {
        return Err(ProvisionError::Exists(dir.join(CONFIG_FILE)));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = Files::default();
    let keys = NodeCredentials::generate()?;
    write_new(&dir.join(&files.tls_key), &keys.tls_key_pem, true)?;
    write_new(&dir.join(&files.signing_key), &keys.signing_key_pem, true)?;
    let encryption = EncryptionKeys::generate()?;
    write_new(
        &dir.join(&files.encryption_key),
        &encryption.to_text(),
        true,
    )?;
    if let Some(key) = &spec.hash_key {
        write_new(&dir.join(&files.hash_key), &key.to_hex(), true)?;
    }
    match certifier {
        Certifier::Ca(ca) => {
            let certs = issue_node_certificates(ca, &spec.unit, &spec.hosts, &keys)?;
            write_new(&dir.join(&files.ca), &ca.cert_pem, false)?;
            write_new(&dir.join(&files.tls_cert), &certs.tls_pem, false)?;
            write_new(&dir.join(&files.signing_cert), &certs.signing_pem, false)?;
        }
        Certifier::External { ca_cert_pem } => {
            TrustedCa::from_pem(&ca_cert_pem)?;
            let requests = keys.requests(&spec.unit, &spec.hosts)?;
            write_new(&dir.join(&files.ca), &ca_cert_pem, false)?;
            write_new(&dir.join("tls.csr"), &requests.tls_pem, false)?;
            write_new(&dir.join("signing.csr"), &requests.signing_pem, false)?;
        }
    }
    let node = NodeDir {
        dir: dir.to_owned(),
        config: NodeConfig {
            node: spec.unit,
            server: ServerConfig {
                listen: spec.listen,
                endpoint: spec.endpoint,
            },
            files,
            directory: Default::default(),
            exchange: Default::default(),
            limits: Default::default(),
            store: Default::default(),
            gateway: None,
            webhooks: Default::default(),
            cases: Default::default(),
            log: Default::default(),
            peers: spec.peers,
        },
    };
    node.save()?;
    Ok(node)
}

#[cfg(test)]
mod tests;
