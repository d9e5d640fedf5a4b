//! Tierlink's public contract: the `tierlink.v1` protobuf messages and gRPC services.
//!
//! The `.proto` files beside this crate are the source of truth; outside tools build their own
//! clients from them. Everything here is generated at build time with a vendored `protoc`.
#![forbid(unsafe_code)]

#[cfg(feature = "services")]
pub mod codec;

/// Package `tierlink.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/tierlink.v1.rs"));
}

/// Encoded `FileDescriptorSet` of every Tierlink service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tierlink_descriptor.bin"));
