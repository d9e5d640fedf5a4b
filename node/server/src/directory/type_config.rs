//! The directory's openraft types: requests in, replies out, nodes named by their division code.

use std::io::Cursor;

use tierlink_core::directory::{DirectoryReply, SignedCommands};
use tierlink_core::identity::NodeCode;

openraft::declare_raft_types!(
    /// Raft types of the federation directory.
    pub TypeConfig:
        D = SignedCommands,
        R = Vec<DirectoryReply>,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A raft node id: the node's division code read as a number (6 and 9 digits never collide).
pub type NodeId = u64;

/// The raft node id of a node.
pub fn node_id(code: &NodeCode) -> NodeId {
    code.as_str().parse().expect("division codes are digits")
}

/// The division code of a raft node id.
pub fn code_of(id: NodeId) -> NodeCode {
    id.to_string()
        .parse()
        .expect("raft node ids are division codes")
}
