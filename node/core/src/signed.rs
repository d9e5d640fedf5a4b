//! The signed formats that carry records between nodes and stay verifiable through relays and in
//! files: the signed batch, the signed requester, batch files, and backup archives.

pub mod backup;
pub mod batch;
pub mod file;
pub mod requester;
pub(crate) mod seal;

pub use batch::{
    BatchOpener, BatchSigner, BatchVerifier, Expected, Recipient, StreamCheck, StreamSummary,
    VerifiedBatch, VerifyError,
};
