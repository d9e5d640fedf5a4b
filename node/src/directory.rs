//! The federation directory: one replicated log (openraft) whose state machine holds the members
//! of the federation and the catalogs each has published, with every command checked against the
//! tier rules identically on every replica.
//!
//! Laid out as openraft's own examples: the type config, the commands and their rules, the log
//! store and the state machine, each in its own file. Both stores live in the node's sled
//! database, behind this module.

// openraft's traits fix the error type (`StorageError`, over 200 bytes); openraft allows this
// lint for the same reason.
#![allow(clippy::result_large_err)]

mod command;
mod log_store;
mod network;
mod service;
mod state;
mod state_machine;
mod type_config;

pub use command::{DirectoryCommand, DirectoryReply, DirectoryRequest, Member, MemberStatus};
pub use log_store::LogStore;
pub use network::Network;
pub use service::FederationService;
pub use state::{DirectoryState, PublishedCatalog};
pub use state_machine::StateMachine;
pub use type_config::{NodeId, TypeConfig, node_id};

/// A failure of the directory's storage, in openraft's terms.
pub type StorageError = openraft::StorageError<NodeId>;

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use tempfile::TempDir;

    use super::*;
    use crate::store::SledStore;

    struct InTempDir;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for InTempDir {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = SledStore::open(dir.path()).expect("store opens");
            let log = LogStore::new(store.keyspace("raft-log").expect("keyspace"));
            let sm = StateMachine::open(store.keyspace("directory").expect("keyspace"))?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn log_store_and_state_machine_pass_openraft_storage_suite() {
        Suite::test_all(InTempDir).unwrap();
    }

    #[tokio::test]
    async fn a_snapshot_carries_the_directory_to_another_replica_and_survives_a_restart() {
        use openraft::storage::RaftStateMachine;
        use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder};

        use crate::catalog::{EXAMPLES, parse_catalogs};
        use crate::identity::{Tier, Unit};

        let (_a, _, mut leader) = InTempDir.build().await.unwrap();
        let city: crate::identity::NodeCode = "420500".parse().unwrap();
        let unit = Unit {
            code: city.clone(),
            tier: Tier::City,
            parent: None,
            name: "c".into(),
        };
        let member = Member {
            unit,
            endpoint: "https://c:1".into(),
            signing_key: String::new(),
            tls_fingerprint: String::new(),
            status: MemberStatus::Pending,
        };
        let catalog = parse_catalogs(EXAMPLES[1].1, EXAMPLES[1].0)
            .unwrap()
            .remove(0);
        let requests = [
            DirectoryCommand::Register(member),
            DirectoryCommand::Publish(catalog),
        ];
        let entries = requests.into_iter().enumerate().map(|(i, command)| {
            let request = DirectoryRequest {
                issuer: city.clone(),
                command,
            };
            Entry::<TypeConfig> {
                log_id: LogId::new(Default::default(), i as u64 + 1),
                payload: EntryPayload::Normal(request),
            }
        });
        let replies = leader.apply(entries.collect::<Vec<_>>()).await.unwrap();
        assert!(
            replies
                .iter()
                .all(|r| matches!(r, DirectoryReply::Applied { .. })),
            "{replies:?}"
        );
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        let (dir, _, mut follower) = InTempDir.build().await.unwrap();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        let (state, last) = follower.read().await;
        assert_eq!(state, leader.read().await.0);
        assert_eq!(last.map(|l| l.index), Some(2));
        assert_eq!(state.catalogs[&city].len(), 1);

        // Reopened from its store, the follower starts from the installed snapshot.
        drop(follower);
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let reopened = StateMachine::open(store.keyspace("directory").unwrap()).unwrap();
        assert_eq!(reopened.read().await.0, state);
    }
}
