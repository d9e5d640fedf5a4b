use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use tempfile::TempDir;
use tierlink_core::catalog::{EXAMPLES, parse_catalogs};
use tierlink_core::identity::{NodeKey, Tier, TrustedCa, Unit};
use tierlink_core::provision::{Certifier, NodeSpec, init_ca, init_node};
use tierlink_store::SledStore;

use super::*;

/// A CA and nodes it certified, with their keys and member records.
struct Federation {
    dir: TempDir,
    ca: tierlink_core::identity::CaFiles,
}

struct Signer {
    key: NodeKey,
    member: Member,
}

impl Federation {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(&dir.path().join("ca"), "test").unwrap();
        Self { dir, ca }
    }

    fn trusted(&self) -> TrustedCa {
        TrustedCa::from_pem(&self.ca.cert_pem).unwrap()
    }

    fn node(&self, code: &str, tier: Tier, parent: Option<&str>) -> Signer {
        let unit = Unit {
            code: code.parse().unwrap(),
            tier,
            parent: parent.map(|p| p.parse().unwrap()),
            name: code.into(),
        };
        let spec = NodeSpec {
            unit,
            listen: "127.0.0.1:7443".parse().unwrap(),
            endpoint: "https://127.0.0.1:7443".into(),
            hosts: vec!["127.0.0.1".into()],
            peers: vec![],
            hash_key: None,
        };
        let node = init_node(&self.dir.path().join(code), spec, Certifier::Ca(&self.ca)).unwrap();
        let credentials = node.credentials().unwrap();
        let key = node.signing_key().unwrap();
        let member = member_of(&node, &credentials, &key).unwrap();
        Signer { key, member }
    }
}

impl Signer {
    fn sign(&self, sequence: u64, commands: Vec<DirectoryCommand>) -> SignedCommands {
        let batch = CommandBatch {
            issuer: self.member.unit.code.clone(),
            sequence,
            commands,
        };
        SignedCommands::sign(&batch, &self.key)
    }
}

struct InTempDir(TrustedCa);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for InTempDir {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SledStore::open(dir.path()).expect("store opens");
        let log = LogStore::new(store.keyspace("raft-log").expect("keyspace"));
        let sm = StateMachine::open(
            store.keyspace("directory").expect("keyspace"),
            self.0.clone(),
        )?;
        Ok((dir, log, sm))
    }
}

#[test]
fn log_store_and_state_machine_pass_openraft_storage_suite() {
    Suite::test_all(InTempDir(Federation::new().trusted())).unwrap();
}

fn applied(replies: &[DirectoryReply]) -> bool {
    replies
        .iter()
        .all(|r| matches!(r, DirectoryReply::Applied { .. }))
}

fn reasons(replies: &[DirectoryReply]) -> String {
    replies
        .iter()
        .map(|r| match r {
            DirectoryReply::Rejected { reason } => reason.as_str(),
            DirectoryReply::Applied { .. } => "applied",
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn every_entry_is_checked_against_its_issuers_key_and_sequence() {
    let f = Federation::new();
    let ca = f.trusted();
    let city = f.node("420500", Tier::City, None);
    let district = f.node("420502", Tier::District, Some("420500"));
    let mut s = DirectoryState::default();
    let found = city.sign(1, vec![DirectoryCommand::Register(city.member.clone())]);
    let first = s.apply_signed(&found, &ca);
    assert!(applied(&first));
    assert!(!super::replica::replayed(&first));

    // The same entry again, or any older sequence, is a replay; resubmitted after an attempt
    // cut off before its answer, the submitter reads it as most likely applied, not refused.
    let before = s.clone();
    let replies = s.apply_signed(&found, &ca);
    assert!(reasons(&replies).contains("replayed"), "{replies:?}");
    assert!(super::replica::replayed(&replies), "{replies:?}");
    assert_eq!(s, before);

    // Tampered body, or signed by another node's key: refused, nothing changes.
    let approve = DirectoryCommand::Register(district.member.clone());
    let mut tampered = city.sign(2, vec![approve.clone()]);
    tampered.body = tampered.body.replace("420502", "420503");
    let forged = {
        let batch = CommandBatch {
            issuer: "420500".parse().unwrap(),
            sequence: 3,
            commands: vec![approve.clone()],
        };
        SignedCommands::sign(&batch, &district.key)
    };
    for entry in [tampered, forged] {
        let replies = s.apply_signed(&entry, &ca);
        assert!(reasons(&replies).contains("signature"), "{replies:?}");
        assert!(
            !super::replica::replayed(&replies),
            "a forgery is refused, not replayed"
        );
        assert_eq!(s, before);
    }

    // A node that is not a member may only register itself, with its own CA-issued certificate.
    let replies = s.apply_signed(
        &district.sign(
            1,
            vec![DirectoryCommand::Approve("420502".parse().unwrap())],
        ),
        &ca,
    );
    assert!(reasons(&replies).contains("not a member"), "{replies:?}");
    let mut wrong_cert = district.member.clone();
    wrong_cert.signing_certificate = city.member.signing_certificate.clone();
    let replies = s.apply_signed(
        &district.sign(1, vec![DirectoryCommand::Register(wrong_cert)]),
        &ca,
    );
    assert!(
        reasons(&replies).contains("420500's signing certificate"),
        "{replies:?}"
    );
    let other = Federation::new();
    let stranger = other.node("420502", Tier::District, Some("420500"));
    let replies = s.apply_signed(
        &stranger.sign(1, vec![DirectoryCommand::Register(stranger.member.clone())]),
        &ca,
    );
    assert!(
        reasons(&replies).contains("not issued by this federation's CA"),
        "{replies:?}"
    );
    assert_eq!(s, before);

    // Joining under its parent, properly signed: pending until the city approves.
    let join = district.sign(5, vec![DirectoryCommand::Register(district.member.clone())]);
    assert!(applied(&s.apply_signed(&join, &ca)));
    let approve = city.sign(
        6,
        vec![DirectoryCommand::Approve("420502".parse().unwrap())],
    );
    assert!(applied(&s.apply_signed(&approve, &ca)));
    assert_eq!(s.members.len(), 2);
    assert!(s.members.values().all(|m| m.status == MemberStatus::Active));
}

#[tokio::test]
async fn a_snapshot_carries_the_directory_to_another_replica_and_survives_a_restart() {
    let f = Federation::new();
    let builder = InTempDir(f.trusted());
    let city = f.node("420500", Tier::City, None);
    let (_a, _, mut leader) = builder.build().await.unwrap();
    let catalog = parse_catalogs(EXAMPLES[1].1, EXAMPLES[1].0)
        .unwrap()
        .remove(0)
        .shared_view();
    let entries = [
        city.sign(1, vec![DirectoryCommand::Register(city.member.clone())]),
        city.sign(2, vec![DirectoryCommand::Publish(catalog)]),
    ];
    let entries = entries
        .into_iter()
        .enumerate()
        .map(|(i, signed)| Entry::<TypeConfig> {
            log_id: LogId::new(Default::default(), i as u64 + 1),
            payload: EntryPayload::Normal(signed),
        });
    let replies = leader.apply(entries.collect::<Vec<_>>()).await.unwrap();
    assert!(replies.iter().all(|r| applied(r)), "{replies:?}");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let (dir, _, mut follower) = builder.build().await.unwrap();
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    let (state, last) = follower.read();
    assert_eq!(state, leader.read().0);
    assert_eq!(last.map(|l| l.index), Some(2));
    assert_eq!(state.catalogs[&city.member.unit.code].len(), 1);

    // Reopened from its store, the follower starts from the installed snapshot.
    drop(follower);
    let store = SledStore::open(dir.path()).unwrap();
    let reopened = StateMachine::open(store.keyspace("directory").unwrap(), f.trusted()).unwrap();
    assert_eq!(reopened.read().0, state);
}

#[tokio::test]
async fn a_street_takes_relayed_entries_in_order_refuses_a_gap_and_applies_no_forgery() {
    use super::relay::{Follower, Relayed};
    let f = Federation::new();
    let builder = InTempDir(f.trusted());
    let city = f.node("420500", Tier::City, None);
    let district = f.node("420502", Tier::District, Some("420500"));
    let (dir, log, state) = builder.build().await.unwrap();
    let follower = Follower::new(log, state.clone(), &Default::default());
    let entry = |index: u64, signed: SignedCommands| Entry::<TypeConfig> {
        log_id: LogId::new(Default::default(), index),
        payload: EntryPayload::Normal(signed),
    };
    let relayed = |entries: Vec<Entry<TypeConfig>>| Relayed {
        snapshot: None,
        entries,
        leader: None,
        millis_since_leader: None,
    };
    let register = city.sign(1, vec![DirectoryCommand::Register(city.member.clone())]);
    follower
        .take(relayed(vec![Entry::<TypeConfig> {
            log_id: LogId::new(Default::default(), 0),
            payload: EntryPayload::Blank,
        }]))
        .await
        .unwrap();
    follower
        .take(relayed(vec![entry(1, register)]))
        .await
        .unwrap();
    assert_eq!(state.read().0.members.len(), 1);

    // An entry the relay skipped ahead to is refused, and nothing of the batch is taken.
    let join = district.sign(2, vec![DirectoryCommand::Register(district.member.clone())]);
    let err = follower
        .take(relayed(vec![entry(3, join.clone())]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs 2 next"), "{err}");
    assert_eq!(follower.next_index(), 2);

    // A forged entry takes its place in the log, as on every replica, and changes nothing.
    let mut forged = join.clone();
    forged.body = forged.body.replace("420502", "420503");
    let before = state.read().0;
    follower
        .take(relayed(vec![entry(2, forged)]))
        .await
        .unwrap();
    assert_eq!(state.read().0.members, before.members);
    follower.take(relayed(vec![entry(3, join)])).await.unwrap();
    assert_eq!(state.read().0.members.len(), 2);

    // Reopened from its store, the street re-applies its own log past its snapshot.
    let held = state.read().0;
    drop((follower, state));
    let store = SledStore::open(dir.path()).unwrap();
    let reopened = StateMachine::open(store.keyspace("directory").unwrap(), f.trusted()).unwrap();
    let log = LogStore::new(store.keyspace("raft-log").unwrap());
    let follower = Follower::new(log, reopened.clone(), &Default::default());
    follower.replay().await.unwrap();
    assert_eq!(reopened.read().0, held);
}
