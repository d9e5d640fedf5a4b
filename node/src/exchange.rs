//! Record exchange between nodes: the signed batch, the producing side of a query, the gRPC
//! service and client, batch files, and what the exchange asks of the federation directory.

pub mod batch;
pub mod client;
pub mod file;
pub mod members;
pub mod produce;
pub mod requester;
pub mod server;

pub use batch::{
    BatchSigner, BatchVerifier, Expected, StreamCheck, StreamSummary, VerifiedBatch, VerifyError,
};
