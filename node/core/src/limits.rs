//! The sizes every path shares, and how they nest: whatever a node stores it can serve, because a
//! record fits in a batch and a batch fits in a message.
//!
//! ```text
//! message (gRPC, 64 MiB) ⊇ signed batch: header + certificate + records
//!   records of one batch ≤ the node's [exchange] batch_bytes (default 4 MiB, at most 32 MiB),
//!                          or one record alone when it is larger
//!   one record ≤ its catalog's maximum record size ≤ 16 MiB
//! ```
//!
//! Writers cut what they send the same way: a `PutRecords` request holds at most
//! [`DEFAULT_BATCH_BYTES`] of rows unless its writer asks for a record count, and never more
//! than [`MAX_MESSAGE_BYTES`].

/// Largest gRPC message a node sends or accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Most bytes one record may take, encoded (`tierlink.v1.Record`): a quarter of a message, so a
/// record alone in its batch always fits with its header and certificate. A catalog whose items'
/// lengths allow more is refused.
pub const MAX_RECORD_BYTES: u64 = (MAX_MESSAGE_BYTES / 4) as u64;

/// Bytes of records a signed batch holds when the node's configuration does not say; a write
/// request holds as many when its writer does not ask for a record count.
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;

/// Fewest bytes of records a node may be configured to put in a batch.
pub const MIN_BATCH_BYTES: usize = 64 << 10;

/// Most bytes of records a node may be configured to put in a batch: half a message, leaving
/// room for the header and the producer's certificate.
pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES / 2;

// A record alone fits in a batch; a batch, with a header and a certificate of some kilobytes,
// fits in a message.
const _: () = assert!(
    MIN_BATCH_BYTES <= DEFAULT_BATCH_BYTES
        && DEFAULT_BATCH_BYTES <= MAX_BATCH_BYTES
        && MAX_RECORD_BYTES as usize <= MAX_BATCH_BYTES
        && MAX_BATCH_BYTES + (1 << 20) < MAX_MESSAGE_BYTES
);

/// Characters of a message that repeats what a caller sent (a refusal's detail, an audit
/// entry's reason): a message about a 60 MB cell need not be 60 MB.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// Most characters of a purpose: a read's, a grant's, an access request's. A purpose names a use
/// as grants state it ("subsistence allowance review"); it rides in every signed requester and
/// audit entry, and refusals repeat it.
pub const MAX_PURPOSE_CHARS: usize = 256;

/// Most characters of a role a read names, `UNIT/NAME`: a division code and a name of at most
/// 64 characters fit well within it.
pub const MAX_ROLE_CHARS: usize = 128;

/// Most characters of a name: a principal's, a grant's or a request's id.
pub const MAX_NAME_CHARS: usize = 64;

/// `text`, cut after `max` characters with `…` and how many more there were.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((at, _)) => {
            let more = text[at..].chars().count();
            std::borrow::Cow::Owned(format!(
                "{}… ({} more characters)",
                &text[..at],
                thousands(more as u64)
            ))
        }
    }
}

/// `n` with a comma between thousands: `20,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count as people read it: `120.1 MB`, `64 MiB` for exact binary sizes.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        return format!("{} MiB", bytes / MIB);
    }
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests;
