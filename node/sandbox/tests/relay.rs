//! Streets that follow their district's replica (`[directory] streets_follow_district`, the
//! default) on real nodes over loopback mutual TLS: the leader's raft holds only the city and
//! the districts, yet every street holds the same directory, writes through its district, reads
//! with how fresh it is, follows a voter while its district is cut off, and catches up after a
//! restart, through the relay's snapshot when the relay no longer keeps the entries it lacks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tierlink_core::config::DirectorySettings;
use tierlink_node::directory::{DirectoryCommand, DirectoryReply, Replica, code_of};
use tierlink_sandbox::federation::{LocalFederation, demo_units};
use tierlink_sandbox::sample::small_catalog;

const CITY: usize = 0;
const XILING_STREET: usize = 2;
const WUJIAGANG: usize = 3;
const WUJIA: usize = 5;

fn settings() -> DirectorySettings {
    DirectorySettings {
        heartbeat_ms: 100,
        election_timeout_ms: 600,
        snapshot_every: 100,
        kept_after_snapshot: 10,
        ..Default::default()
    }
}

async fn federation() -> (tempfile::TempDir, LocalFederation) {
    let dir = tempfile::tempdir().unwrap();
    let f = LocalFederation::create_with(dir.path(), demo_units(), settings())
        .await
        .unwrap();
    (dir, f)
}

fn replica(f: &LocalFederation, n: usize) -> Arc<Replica> {
    f.nodes[n].directory().expect("node runs").clone()
}

async fn publish(replica: &Replica, n: usize) -> u64 {
    match replica
        .propose(vec![DirectoryCommand::Publish(small_catalog(n))])
        .await
        .unwrap()
        .remove(0)
    {
        DirectoryReply::Applied { revision } => revision,
        DirectoryReply::Rejected { reason } => panic!("{reason}"),
    }
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn same_directory_everywhere(f: &LocalFederation) {
    let states: Vec<_> = (0..f.nodes.len())
        .filter_map(|n| f.nodes[n].directory())
        .map(|r| r.view(|s| s.clone()))
        .collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "replicas differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_feeds_the_districts_and_each_street_follows_its_own() {
    let (_dir, f) = federation().await;
    let leader = (0..f.nodes.len())
        .map(|n| replica(&f, n))
        .find(|r| r.is_leader())
        .expect("a leader");

    // Raft holds the city and the two districts; no street.
    let membership = leader.metrics().membership_config.clone();
    let mut raft_nodes: Vec<String> = membership
        .membership()
        .nodes()
        .map(|(id, _)| code_of(*id).to_string())
        .collect();
    raft_nodes.sort();
    assert_eq!(raft_nodes, ["420500", "420502", "420503"]);

    // A street writes through its district; every replica, streets included, applies it.
    let street = replica(&f, WUJIA);
    let revision = publish(&street, 7).await;
    f.wait_for_revision(revision).await.unwrap();
    same_directory_everywhere(&f);

    // A street's reads name the leader and say they are fresh, from its district's keep-alives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let meta = street.read_meta(false);
    assert_eq!(meta.leader, code_of(leader.metrics().id).to_string());
    assert!(
        !meta.stale && meta.millis_since_leader >= 0,
        "a street following its district reads fresh: {meta:?}"
    );
    // A street takes no raft messages at all.
    let refused = street.admit_raft(&"420500".parse().unwrap()).unwrap_err();
    assert!(refused.contains("follows its district"), "{refused}");
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_whose_district_is_cut_off_follows_a_voter_and_a_cut_off_street_catches_up() {
    let (_dir, f) = federation().await;
    let city = replica(&f, CITY);

    // Wujiagang, Wujia's district, is cut off: Wujia follows a voter and keeps up.
    replica(&f, WUJIAGANG).link().set_isolated(true);
    let revision = publish(&city, 1).await;
    let wujia = replica(&f, WUJIA);
    eventually("Wujia to apply the change through a voter", || {
        wujia.view(|s| s.revision) >= revision
    })
    .await;
    replica(&f, WUJIAGANG).link().set_isolated(false);

    // Xiling's street is cut off: it reads its replica, stale, and catches up once reconnected.
    let street = replica(&f, XILING_STREET);
    street.link().set_isolated(true);
    let revision = publish(&city, 2).await;
    eventually("the cut-off street's reads to turn stale", || {
        street.read_meta(false).stale
    })
    .await;
    assert!(street.read_meta(false).revision < revision);
    assert!(
        !street.view(|s| s.members.is_empty()),
        "it still reads its replica"
    );
    street.link().set_isolated(false);
    f.wait_for_revision(revision).await.unwrap();
    eventually("fresh reads again", || !street.read_meta(false).stale).await;
    same_directory_everywhere(&f);
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_offline_past_its_districts_log_catches_up_through_a_snapshot_and_restarts() {
    let (_dir, mut f) = federation().await;
    let city = replica(&f, CITY);
    f.stop_node(WUJIA).await.unwrap();

    // 600 changes while it is down: the district snapshots every 100 entries and keeps 10.
    let mut revision = 0;
    for n in 0..600 {
        revision = publish(&city, n % 50).await;
    }
    f.start_node(WUJIA).await.unwrap();
    f.wait_for_revision(revision).await.unwrap();
    same_directory_everywhere(&f);

    // Restarted, it reopens at its own snapshot, re-applies its own log and follows on.
    let at = replica(&f, WUJIA).view(|s| s.revision);
    f.stop_node(WUJIA).await.unwrap();
    f.start_node(WUJIA).await.unwrap();
    let wujia = replica(&f, WUJIA);
    eventually("the restarted street to hold what it held", || {
        wujia.view(|s| s.revision) >= at
    })
    .await;
    let revision = publish(&city, 51).await;
    f.wait_for_revision(revision).await.unwrap();
    same_directory_everywhere(&f);
    f.stop().await.unwrap();
}
