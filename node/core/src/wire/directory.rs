//! `tierlink.v1.Directory` messages.

use tierlink_proto::v1 as wire;

use crate::directory::{DirectoryReply, Member};

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
        }
    }
}
