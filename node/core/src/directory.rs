//! The federation directory's state and its rules: members, their published catalogs, voters and
//! policies, changed only by signed commands that every replica checks identically. The node
//! replicates it with openraft (`tierlink-node`'s `directory`); here it is plain data and rules.

mod command;
mod state;

pub use command::{
    CommandBatch, DirectoryCommand, DirectoryReply, DirectoryRequest, Member, MemberStatus,
    RetiredKey, Rotation, SignedCommands,
};
pub use state::{DirectoryState, PublishedCatalog, REPLAYED};
