//! Who a node is: its administrative unit ([`NodeCode`], [`Tier`], parent) and the credentials that
//! prove it — a TLS certificate and an Ed25519 batch-signing key, both issued by the federation CA —
//! its X25519 encryption keys, which open the batches sealed to it, and the principals (people and
//! system accounts) it vouches for, with the API tokens ([`tokens`]) they give to systems.

mod certs;
mod encryption;
mod principals;
pub mod tokens;
mod unit;

pub use certs::{
    CaFiles, CertError, NodeCertificates, NodeCredentials, NodeKey, Producer, TrustedCa,
    fingerprint, generate_ca, hosts_of, issue_node_certificates, node_code_of, not_after,
    pem_to_der, write_private,
};
pub(crate) use certs::{read_toml, with_lock, write_toml};
pub use encryption::{EncryptionKey, EncryptionKeys, KEY_BYTES, RecipientKey};
pub(crate) use encryption::{Kem, rng};
pub use principals::{Principal, PrincipalError, PrincipalFiles, Principals};
pub use unit::{NodeCode, Tier, Unit, UnitError};
