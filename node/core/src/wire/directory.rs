//! `tierlink.v1.Directory` messages.

use tierlink_proto::v1 as wire;

use crate::directory::{DirectoryReply, Member};
use crate::identity::{not_after, pem_to_der};
use crate::members::{Standing, accepted_tls};

impl From<DirectoryReply> for wire::ChangeResult {
    fn from(reply: DirectoryReply) -> Self {
        match reply {
            DirectoryReply::Applied { revision } => wire::ChangeResult {
                applied: true,
                revision,
                reason: String::new(),
            },
            DirectoryReply::Rejected { reason } => wire::ChangeResult {
                applied: false,
                revision: 0,
                reason,
            },
        }
    }
}

impl From<wire::ChangeResult> for DirectoryReply {
    fn from(r: wire::ChangeResult) -> Self {
        if r.applied {
            DirectoryReply::Applied {
                revision: r.revision,
            }
        } else {
            DirectoryReply::Rejected { reason: r.reason }
        }
    }
}

/// A member as listed; `voter` is the directory's to say (false here).
impl From<&Member> for wire::Member {
    fn from(m: &Member) -> Self {
        wire::Member {
            code: m.unit.code.to_string(),
            tier: m.unit.tier.as_str().to_owned(),
            parent: m
                .unit
                .parent
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            name: m.unit.name.clone(),
            endpoint: m.endpoint.clone(),
            status: m.status.as_str().to_owned(),
            signing_key: m.signing_key.clone(),
            tls_fingerprint: m.tls_fingerprint.clone(),
            voter: false,
            retiring_tls: m.retiring_tls.clone(),
            retired_keys: m
                .retired_keys
                .iter()
                .map(|k| wire::RetiredKey {
                    signing_key: k.signing_key.clone(),
                    until_micros: k.until_micros,
                })
                .collect(),
            tls_expires_unix: expiry(&m.tls_certificate),
            signing_expires_unix: expiry(&m.signing_certificate),
            encryption_key: m.encryption_key.clone(),
        }
    }
}

/// When a certificate (PEM) expires, Unix seconds; 0 when there is none or it is unreadable.
fn expiry(pem: &str) -> i64 {
    pem_to_der(pem).and_then(|der| not_after(&der)).unwrap_or(0)
}

/// A member as the exchange sees it, from a directory's listing.
impl From<wire::Member> for Standing {
    fn from(m: wire::Member) -> Self {
        Standing {
            endpoint: m.endpoint,
            signing_key: m.signing_key,
            status: m.status,
            tls_fingerprints: accepted_tls(m.tls_fingerprint, m.retiring_tls),
            retired_keys: m
                .retired_keys
                .into_iter()
                .map(|k| (k.signing_key, k.until_micros))
                .collect(),
            encryption_key: m.encryption_key,
        }
    }
}
