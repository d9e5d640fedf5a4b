//! Record exchange between nodes: the producing side of a read (the plan carried out on stored
//! bytes) and the `tierlink.v1.Exchange` gRPC service. The signed formats are `tierlink-core`'s
//! (`tierlink_core::signed`); the client side is `tierlink-client`.

pub mod produce;
pub mod server;
