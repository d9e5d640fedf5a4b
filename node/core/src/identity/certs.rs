//! The federation CA and the two certificates it issues each node.
//!
//! A node holds a **TLS certificate** (ECDSA P-256, for mutual TLS; widely supported by gRPC stacks)
//! and a **signing certificate** for its Ed25519 batch-signing key. Both name the node by the URI
//! subject-alternative name `urn:tierlink:node:CODE`, so either proves which unit a key belongs to.
//! A signed batch carries its producer's signing certificate: with the CA certificate alone, anyone
//! can check who produced it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use chrono::{Datelike, Duration, Utc};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{NodeCode, Unit};

const NODE_URI_PREFIX: &str = "urn:tierlink:node:";
const ED25519_OID: &str = "1.3.101.112";

/// What went wrong with a key or certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not build or sign a certificate or key.
    #[error("cannot generate a certificate or key: {0}")]
    Generate(#[from] rcgen::Error),
    /// The bytes are not a readable X.509 certificate.
    #[error("not a readable X.509 certificate: {0}")]
    Parse(String),
    /// The certificate was not issued by this federation's CA.
    #[error(
        "certificate for {subject} was not issued by this federation's CA ({why}): check that it and the CA certificate belong to the same federation"
    )]
    NotIssuedByCa {
        /// The certificate's subject.
        subject: String,
        /// What the check reported.
        why: String,
    },
    /// The certificate is outside its validity period.
    #[error(
        "certificate for {0} is expired or not yet valid: issue a new one with `tierlink init`"
    )]
    Expired(String),
    /// The certificate does not name a node.
    #[error(
        "certificate for {0} names no Tierlink node (no subject alternative name {NODE_URI_PREFIX}CODE)"
    )]
    NoNodeCode(String),
    /// A signing certificate whose key is not Ed25519.
    #[error("signing certificate for {0} does not hold an Ed25519 key")]
    NotEd25519(String),
    /// A private key file could not be read.
    #[error("cannot read private key: {0}")]
    Key(String),
}

/// A federation CA's certificate and private key, as PEM.
pub struct CaFiles {
    /// CA certificate (PEM), distributed to every node.
    pub cert_pem: String,
    /// CA private key (PEM); stays with the federation's administrator.
    pub key_pem: String,
}

/// The private keys of a node, before or after certification.
pub struct NodeCredentials {
    /// TLS private key (PEM, PKCS#8, ECDSA P-256).
    pub tls_key_pem: String,
    /// Batch-signing private key (PEM, PKCS#8, Ed25519).
    pub signing_key_pem: String,
}

/// A node's certificates (or, for an external CA, its certificate signing requests), as PEM.
pub struct NodeCertificates {
    /// TLS certificate or request.
    pub tls_pem: String,
    /// Signing certificate or request.
    pub signing_pem: String,
}

/// A producer proven by the CA: its node code and its batch-verifying key.
#[derive(Clone, Debug)]
pub struct Producer {
    /// Node code from the certificate.
    pub code: NodeCode,
    /// Ed25519 key from the certificate.
    pub key: VerifyingKey,
}

/// The CA certificate a node trusts, used to check producers' signing certificates.
#[derive(Clone)]
pub struct TrustedCa {
    der: Vec<u8>,
}

/// Makes a new federation CA, valid for 20 years.
pub fn generate_ca(federation: &str) -> Result<CaFiles, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(
        &format!("Tierlink federation CA ({federation})"),
        federation,
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, 20);
    let cert = params.self_signed(&key)?;
    Ok(CaFiles {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl NodeCredentials {
    /// Generates a fresh TLS key and signing key.
    pub fn generate() -> Result<Self, CertError> {
        Ok(Self {
            tls_key_pem: KeyPair::generate()?.serialize_pem(),
            signing_key_pem: KeyPair::generate_for(&rcgen::PKCS_ED25519)?.serialize_pem(),
        })
    }

    fn key_pairs(&self) -> Result<(KeyPair, KeyPair), CertError> {
        let tls =
            KeyPair::from_pem(&self.tls_key_pem).map_err(|e| CertError::Key(e.to_string()))?;
        let signing =
            KeyPair::from_pem(&self.signing_key_pem).map_err(|e| CertError::Key(e.to_string()))?;
        Ok((tls, signing))
    }

    /// Certificate signing requests for an external CA to sign.
    pub fn requests(&self, unit: &Unit, hosts: &[String]) -> Result<NodeCertificates, CertError> {
        let (tls, signing) = self.key_pairs()?;
        Ok(NodeCertificates {
            tls_pem: tls_params(unit, hosts)?.serialize_request(&tls)?.pem()?,
            signing_pem: signing_params(unit)?.serialize_request(&signing)?.pem()?,
        })
    }
}

/// Issues a node's TLS and signing certificates (valid 2 years) from the federation CA.
///
/// `hosts` are the DNS names and IP addresses the node is reached at; they go into the TLS
/// certificate so that clients can check the server's name.
pub fn issue_node_certificates(
    ca: &CaFiles,
    unit: &Unit,
    hosts: &[String],
    keys: &NodeCredentials,
) -> Result<NodeCertificates, CertError> {
    let ca_key =
        KeyPair::from_pem(&ca.key_pem).map_err(|e| CertError::Key(format!("CA key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let (tls, signing) = keys.key_pairs()?;
    Ok(NodeCertificates {
        tls_pem: tls_params(unit, hosts)?.signed_by(&tls, &issuer)?.pem(),
        signing_pem: signing_params(unit)?.signed_by(&signing, &issuer)?.pem(),
    })
}

fn name(common: &str, org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationName, org);
    dn
}

fn validity(params: &mut CertificateParams, years: i32) {
    // A day of slack for clocks that lag; dates only, as certificates are issued for years.
    let from = Utc::now() - Duration::days(1);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(
        from.year() + years,
        from.month() as u8,
        from.day().min(28) as u8,
    );
}

fn node_params(unit: &Unit) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(unit.code.as_str(), &unit.name);
    params.subject_alt_names = vec![SanType::URI(
        format!("{NODE_URI_PREFIX}{}", unit.code).try_into()?,
    )];
    validity(&mut params, 2);
    Ok(params)
}

fn tls_params(unit: &Unit, hosts: &[String]) -> Result<CertificateParams, CertError> {
    let mut params = node_params(unit)?;
    for host in hosts {
        params.subject_alt_names.push(match host.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.as_str().try_into()?),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

fn signing_params(unit: &Unit) -> Result<CertificateParams, CertError> {
    let mut params = node_params(unit)?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    Ok(params)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CertError::Parse(e.to_string()))
}

fn code_in(cert: &X509Certificate<'_>) -> Result<NodeCode, CertError> {
    let subject = || cert.subject().to_string();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    san.iter()
        .flat_map(|s| s.value.general_names.iter())
        .find_map(|n| match n {
            GeneralName::URI(u) => u.strip_prefix(NODE_URI_PREFIX)?.parse().ok(),
            _ => None,
        })
        .ok_or_else(|| CertError::NoNodeCode(subject()))
}

/// The node code a certificate (DER) names. Does not check who issued it: use on certificates
/// that TLS has already verified.
pub fn node_code_of(der: &[u8]) -> Result<NodeCode, CertError> {
    code_in(&parse(der)?)
}

impl TrustedCa {
    /// Reads the CA certificate from PEM.
    pub fn from_pem(pem: &str) -> Result<Self, CertError> {
        let der = pem_to_der(pem)?;
        parse(&der)?;
        Ok(Self { der })
    }

    /// Checks that a signing certificate (DER) was issued by this CA and is valid now, and returns
    /// the producer it names with its Ed25519 key.
    pub fn verify_producer(&self, der: &[u8]) -> Result<Producer, CertError> {
        self.verify(der, true)
    }

    /// As [`TrustedCa::verify_producer`], without looking at the clock: the same answer on every
    /// replica and at any later time, as the federation directory needs when it replays its log.
    pub fn verify_issued(&self, der: &[u8]) -> Result<Producer, CertError> {
        self.verify(der, false)
    }

    /// Checks that a node certificate (DER; TLS or signing) was issued by this CA, without looking
    /// at the clock, and returns the node it names and the last second it is valid (Unix time).
    /// The directory checks a member's TLS certificate with this before recording its fingerprint.
    pub fn verify_node_certificate(&self, der: &[u8]) -> Result<(NodeCode, i64), CertError> {
        let cert = self.issued(der)?;
        Ok((code_in(&cert)?, cert.validity().not_after.timestamp()))
    }

    /// The certificate, parsed, once its issuer and the CA's signature on it are checked.
    fn issued<'a>(&self, der: &'a [u8]) -> Result<X509Certificate<'a>, CertError> {
        let ca = parse(&self.der)?;
        let cert = parse(der)?;
        if cert.issuer() != ca.subject() {
            return Err(CertError::NotIssuedByCa {
                subject: cert.subject().to_string(),
                why: format!("issuer is {}", cert.issuer()),
            });
        }
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|e| CertError::NotIssuedByCa {
                subject: cert.subject().to_string(),
                why: e.to_string(),
            })?;
        Ok(cert)
    }

    fn verify(&self, der: &[u8], now: bool) -> Result<Producer, CertError> {
        let cert = self.issued(der)?;
        let subject = cert.subject().to_string();
        if now && !cert.validity().is_valid() {
            return Err(CertError::Expired(subject));
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
            return Err(CertError::NotEd25519(subject));
        }
        let bytes: [u8; 32] = spki
            .subject_public_key
            .data
            .as_ref()
            .try_into()
            .map_err(|_| CertError::NotEd25519(subject.clone()))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| CertError::NotEd25519(subject))?;
        Ok(Producer {
            code: code_in(&cert)?,
            key,
        })
    }
}

/// A node's Ed25519 signing key with the CA-issued certificate that names the node for it.
#[derive(Clone)]
pub struct NodeKey {
    code: NodeCode,
    key: SigningKey,
    certificate: Vec<u8>,
}

impl NodeKey {
    /// Loads the signing key and its certificate, checking that the CA issued the certificate for
    /// this very key.
    pub fn load(key_pem: &str, cert_pem: &str, ca: &TrustedCa) -> Result<Self, CertError> {
        let key = SigningKey::from_pkcs8_pem(key_pem)
            .map_err(|e| CertError::Key(format!("signing key: {e}")))?;
        let certificate = pem_to_der(cert_pem)?;
        let producer = ca.verify_producer(&certificate)?;
        if producer.key != key.verifying_key() {
            return Err(CertError::Key(format!(
                "the signing certificate of {} was issued for another key: reissue it with `tierlink init`",
                producer.code
            )));
        }
        Ok(Self {
            code: producer.code,
            key,
            certificate,
        })
    }

    /// The node the key speaks for.
    pub fn code(&self) -> &NodeCode {
        &self.code
    }

    /// The signing certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `context` followed by `message`; the context keeps one kind of signed message from
    /// being taken for another.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.key.sign(&[context, message].concat()).to_bytes()
    }
}

/// The fingerprint the directory records for a TLS certificate: BLAKE3 of its DER bytes, hex
/// (64 characters).
pub fn fingerprint(der: &[u8]) -> String {
    blake3::hash(der).to_hex().to_string()
}

/// The last second a certificate (DER) is valid, Unix time; it is not checked otherwise.
pub fn not_after(der: &[u8]) -> Result<i64, CertError> {
    Ok(parse(der)?.validity().not_after.timestamp())
}

/// The DNS names and IP addresses a TLS certificate (DER) names, to issue its successor for the
/// same hosts.
pub fn hosts_of(der: &[u8]) -> Result<Vec<String>, CertError> {
    let cert = parse(der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    Ok(san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(name.to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, CertError> {
    let parsed = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertError::Parse(format!("not PEM: {e}")))?
        .1;
    Ok(parsed.contents)
}

/// Writes a secret file readable by its owner only (0600), replacing any file there. The text
/// goes to a temporary file beside it, synced, then renamed over it: a crash leaves the old file
/// or the new one, never a truncated one.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = std::path::PathBuf::from(temporary);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut f = options.open(&temporary)?;
        // mode() applies only to new files; tighten a leftover one too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let mut f = options.open(&temporary)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

/// Reads a node's TOML file (its principals, its API tokens); a missing file reads as
/// `T::default()`. The error is the reason, for the caller to name its file.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
) -> Result<T, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `change` holding an exclusive lock on `PATH.lock`, for a read, change and write of a
/// node's file that two administrators may make at once (issuing tokens, adding principals):
/// the second waits for the first, so both keep their change. The error is the reason the lock
/// could not be taken.
pub(crate) fn with_lock<T>(path: &Path, change: impl FnOnce() -> T) -> Result<T, String> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| {
            format!(
                "cannot lock it ({}): {e}",
                std::path::PathBuf::from(&lock_path).display()
            )
        })?;
    let changed = change();
    drop(lock);
    Ok(changed)
}

/// Writes `value` as TOML with [`write_private`].
pub(crate) fn write_toml<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = toml::to_string(value).map_err(|e| e.to_string())?;
    write_private(path, &text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
