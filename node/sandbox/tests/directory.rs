//! The federation directory on real nodes over loopback mutual TLS: one directory on every node,
//! leader failover in the middle of writes, a street cut off from the others, and a learner that
//! was offline catching up through a snapshot. A monitor checks throughout that no term ever has
//! two leaders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tierlink_core::config::DirectorySettings;
use tierlink_node::directory::{
    DirectoryCommand, DirectoryError, DirectoryReply, Replica, code_of,
};
use tierlink_proto::v1::{CatalogsRequest, ReadRequest, StatusRequest};
use tierlink_sandbox::federation::{LocalFederation, demo_units};
use tierlink_sandbox::sample::small_catalog;
use tokio::task::JoinHandle;

const CITY: usize = 0;
const XILING: usize = 1;
const XILING_STREET: usize = 2;
const WUJIAGANG_STREET: usize = 5;

/// Settings fast enough for tests, and a short log so a lagging replica needs a snapshot. The
/// streets are replicas of raft (learners), as every member is when `streets_follow_district` is
/// off; `relay.rs` tries the same with streets following their districts.
fn settings() -> DirectorySettings {
    DirectorySettings {
        heartbeat_ms: 100,
        election_timeout_ms: 600,
        snapshot_every: 100,
        kept_after_snapshot: 10,
        streets_follow_district: false,
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

fn revision(replies: Result<Vec<DirectoryReply>, DirectoryError>) -> Result<u64, String> {
    match replies.map_err(|e| e.to_string())?.remove(0) {
        DirectoryReply::Applied { revision } => Ok(revision),
        DirectoryReply::Rejected { reason } => Err(reason),
    }
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Samples the raft metrics of the replicas it watches and records each term's leaders. It holds
/// them weakly, so a stopped node's store is released and the node can start again.
struct LeaderMonitor {
    watched: Arc<Mutex<Vec<Weak<Replica>>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<BTreeMap<u64, BTreeSet<u64>>>,
}

impl LeaderMonitor {
    fn start(f: &LocalFederation) -> Self {
        let watched = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (list, flag) = (watched.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut seen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
            while !flag.load(Ordering::SeqCst) {
                let replicas: Vec<Arc<Replica>> = list
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                for r in replicas {
                    let m = r.metrics();
                    if m.state == ServerState::Leader {
                        seen.entry(m.current_term).or_default().insert(m.id);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        });
        let monitor = Self {
            watched,
            stop,
            task,
        };
        for n in 0..f.nodes.len() {
            monitor.watch(f, n);
        }
        monitor
    }

    fn watch(&self, f: &LocalFederation, n: usize) {
        let r = Arc::downgrade(f.nodes[n].directory().expect("node runs"));
        self.watched.lock().unwrap().push(r);
    }

    async fn assert_one_leader_per_term(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self.task.await.unwrap();
        for (term, leaders) in &seen {
            assert_eq!(leaders.len(), 1, "term {term} had leaders {leaders:?}");
        }
        seen.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_holds_one_directory_and_answers_from_it() {
    let (_dir, f) = federation().await;
    let replicas: Vec<_> = (0..f.nodes.len()).map(|n| replica(&f, n)).collect();
    let states: Vec<_> = replicas.iter().map(|r| r.view(|s| s.clone())).collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "replicas differ");
    assert_eq!(states[0].members.len(), 6);
    let codes = |ns: &[usize]| -> BTreeSet<String> {
        ns.iter()
            .map(|n| f.nodes[*n].dir.code().to_string())
            .collect()
    };
    let voters: BTreeSet<String> = states[0].voters.iter().map(|c| c.to_string()).collect();
    assert_eq!(voters, codes(&[CITY, XILING, 3]));

    // Raft follows the directory: three voters, the streets learners.
    let leader = replicas.iter().find(|r| r.is_leader()).expect("a leader");
    // Learners are added first, then the voters named: wait for both.
    eventually(
        "streets added as learners and the districts made voters",
        || {
            let membership = leader.metrics().membership_config;
            membership.membership().nodes().count() == 6
                && membership.membership().voter_ids().count() == voters.len()
        },
    )
    .await;
    let m = leader.metrics();
    let raft_voters: BTreeSet<String> = m
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| code_of(id).to_string())
        .collect();
    assert_eq!(raft_voters, voters);

    // A street publishes; the city finds it by an information item's name.
    let street = &replicas[XILING_STREET];
    let rev = revision(
        street
            .propose(vec![DirectoryCommand::Publish(small_catalog(7))])
            .await,
    )
    .unwrap();
    f.wait_for_revision(rev).await.unwrap();
    let city = &f.nodes[CITY];
    let credentials = city.dir.credentials().unwrap();
    let mut client =
        tierlink_client::directory::connect(&credentials, &city.dir.config.server.endpoint)
            .await
            .unwrap();
    let found = client
        .catalogs(CatalogsRequest {
            read: None,
            text: "GRID CELL CODE".into(),
            publisher: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.catalogs.len(), 1, "{found:?}");
    assert_eq!(found.catalogs[0].publisher, "420502001");
    assert_eq!(found.catalogs[0].matched_items, ["网格编码 grid cell code"]);
    let meta = found.meta.unwrap();
    assert!(
        meta.applied_index > 0 && !meta.leader.is_empty() && !meta.stale,
        "{meta:?}"
    );

    // A linearizable read asked of a street is answered by the leader.
    let street_dir = &f.nodes[XILING_STREET].dir;
    let mut at_street =
        tierlink_client::directory::connect(&credentials, &street_dir.config.server.endpoint)
            .await
            .unwrap();
    let read = at_street
        .members(ReadRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    let meta = read.meta.unwrap();
    assert!(meta.linearizable);
    assert_eq!(meta.node, meta.leader);
    assert!(meta.revision >= rev);

    // Status at a street shows the leader's view of every replica (progress of a replica the
    // leader has not heard from since its last entry is unknown for a moment: wait for it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = at_street
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if status.replicas.iter().all(|r| r.matched_index.is_some()) || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.state, "learner");
    assert_eq!(status.replicas.len(), 6, "{status:?}");
    assert!(
        status.replicas.iter().all(|r| r.matched_index.is_some()),
        "{status:?}"
    );
    assert_eq!(status.replicas.iter().filter(|r| r.voter).count(), 3);
    f.stop().await.unwrap();
}

/// Publishes `count` small catalogs from `replica`, 16 at a time, returning the codes whose
/// publication was acknowledged.
async fn publish_many(replica: Arc<Replica>, range: std::ops::Range<usize>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut pending = tokio::task::JoinSet::new();
    for n in range {
        if pending.len() >= 16
            && let Some(done) = pending.join_next().await
            && let Some(code) = done.unwrap()
        {
            acknowledged.push(code);
        }
        let r = replica.clone();
        pending.spawn(async move {
            let catalog = small_catalog(n);
            let code = catalog.code.clone();
            revision(r.propose(vec![DirectoryCommand::Publish(catalog)]).await)
                .ok()
                .map(|_| code)
        });
    }
    while let Some(done) = pending.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_stops_mid_writes_and_no_acknowledged_write_is_lost() {
    let (_dir, mut f) = federation().await;
    let monitor = LeaderMonitor::start(&f);
    let leader = (0..f.nodes.len())
        .find(|n| replica(&f, *n).is_leader())
        .expect("a leader");
    let street = replica(&f, XILING_STREET);
    let writer = tokio::spawn(publish_many(street.clone(), 0..400));
    eventually("writes under way", || {
        street.view(|s| s.catalogs.values().map(|c| c.len()).sum::<usize>()) >= 50
    })
    .await;
    f.stop_node(leader).await.unwrap();
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() > 50,
        "{} acknowledged",
        acknowledged.len()
    );

    // A new leader, and every acknowledged write on every running node.
    let after = revision(
        street
            .propose(vec![DirectoryCommand::Withdraw(acknowledged[0].clone())])
            .await,
    )
    .unwrap();
    f.wait_for_revision(after).await.unwrap();
    let publisher = street.code().clone();
    for n in (0..f.nodes.len()).filter(|n| *n != leader) {
        let published: BTreeSet<String> =
            replica(&f, n).view(|s| s.catalogs[&publisher].keys().cloned().collect());
        for code in &acknowledged[1..] {
            assert!(
                published.contains(code),
                "node {n} lacks acknowledged {code}"
            );
        }
    }

    // The stopped voter restarts and catches up.
    f.start_node(leader).await.unwrap();
    monitor.watch(&f, leader);
    f.wait_for_revision(after).await.unwrap();
    let states: Vec<_> = (0..f.nodes.len())
        .map(|n| replica(&f, n).view(|s| s.clone()))
        .collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "replicas differ");
    let terms = monitor.assert_one_leader_per_term().await;
    assert!(terms >= 2, "no new term after the leader stopped");
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_street_reads_stale_refuses_writes_and_catches_up() {
    let (_dir, f) = federation().await;
    let monitor = LeaderMonitor::start(&f);
    let replicas: Vec<_> = (0..f.nodes.len()).map(|n| replica(&f, n)).collect();
    let street = &replicas[WUJIAGANG_STREET];
    street.link().set_isolated(true);
    let rev = revision(
        replicas[XILING]
            .propose(vec![DirectoryCommand::Publish(small_catalog(1))])
            .await,
    )
    .unwrap();

    // Reads keep working from the replica, marked stale once a leader has not been heard from.
    eventually("the street's reads to turn stale", || {
        street.read_meta(false).stale
    })
    .await;
    let meta = street.read_meta(false);
    assert!(
        meta.revision < rev && meta.millis_since_leader > 1200,
        "{meta:?}"
    );
    let err = street
        .propose(vec![DirectoryCommand::Publish(small_catalog(2))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::NoLeader { .. }) && err.to_string().contains("cut off"),
        "{err}"
    );

    // The others carry on; reconnected, the street catches up.
    street.link().set_isolated(false);
    f.wait_for_revision(rev).await.unwrap();
    eventually("fresh reads", || !street.read_meta(false).stale).await;
    revision(
        street
            .propose(vec![DirectoryCommand::Publish(small_catalog(2))])
            .await,
    )
    .unwrap();
    monitor.assert_one_leader_per_term().await;
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_offline_during_10000_writes_catches_up_through_a_snapshot() {
    let (_dir, mut f) = federation().await;
    let offline_at = replica(&f, WUJIAGANG_STREET)
        .metrics()
        .last_log_index
        .unwrap();
    f.stop_node(WUJIAGANG_STREET).await.unwrap();

    // 10,000 publications from the city (over 50 resource codes), 64 writers at a time.
    let city = replica(&f, CITY);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..64 {
        let city = city.clone();
        writers.spawn(async move {
            let mut last = 0;
            for i in (w..10_000).step_by(64) {
                let catalog = small_catalog(i % 50);
                last =
                    revision(city.propose(vec![DirectoryCommand::Publish(catalog)]).await).unwrap();
            }
            last
        });
    }
    let mut rev = 0;
    while let Some(last) = writers.join_next().await {
        rev = rev.max(last.unwrap());
    }
    let leader = (0..f.nodes.len())
        .filter(|n| *n != WUJIAGANG_STREET)
        .map(|n| replica(&f, n))
        .find(|r| r.is_leader())
        .unwrap();
    eventually("the log compacted past the offline learner", || {
        leader
            .metrics()
            .purged
            .is_some_and(|p| p.index > offline_at)
    })
    .await;

    f.start_node(WUJIAGANG_STREET).await.unwrap();
    f.wait_for_revision(rev).await.unwrap();
    let street = replica(&f, WUJIAGANG_STREET);
    let snapshot = street.metrics().snapshot.expect("installed a snapshot");
    assert!(snapshot.index > offline_at);
    assert_eq!(street.view(|s| s.clone()), city.view(|s| s.clone()));
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_finds_members_in_the_directory_and_refuses_a_suspended_one() {
    use tierlink_client::{ClientError, NodeClient};

    let (_dir, f) = federation().await;
    // No [[peer]] is needed: the city reaches a street it never configured through the directory.
    let mut city_dir = f.nodes[CITY].dir.clone();
    city_dir.config.peers.clear();
    let city = NodeClient::open(city_dir).unwrap();
    let xueyuan = f.nodes[4].dir.code().to_string();
    let listed = city.list_catalogs(None, &xueyuan).await.unwrap();
    assert_eq!(listed.node, xueyuan);

    // Its district suspends it: nobody exchanges with it, in either direction.
    let rev = revision(
        replica(&f, XILING)
            .propose(vec![DirectoryCommand::Suspend(xueyuan.parse().unwrap())])
            .await,
    )
    .unwrap();
    f.wait_for_revision(rev).await.unwrap();
    let city = NodeClient::open(f.nodes[CITY].dir.clone()).unwrap();
    let err = city.list_catalogs(None, &xueyuan).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::NotAdmitted(m) if m.contains("suspended")),
        "{err}"
    );
    let street = NodeClient::open(f.nodes[4].dir.clone()).unwrap();
    let err = street.list_catalogs(None, "420500").await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    assert!(err.to_string().contains("suspended"), "{err}");
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_the_fault_hook_blocks_are_cut_off_both_ways_until_unblocked() {
    use tierlink_client::faults::BlockedPeers;
    let (_dir, f) = federation().await;
    let replicas: Vec<_> = (0..f.nodes.len()).map(|n| replica(&f, n)).collect();
    let line = |n: usize| {
        let dir = &f.nodes[n].dir;
        format!("{} {}\n", dir.code(), dir.config.server.endpoint)
    };
    // The street and everyone else block each other, as their faults files would say.
    let others: Vec<usize> = (0..f.nodes.len())
        .filter(|&n| n != WUJIAGANG_STREET)
        .collect();
    let everyone_else: String = others.iter().map(|&n| line(n)).collect();
    replicas[WUJIAGANG_STREET]
        .link()
        .blocked()
        .set(BlockedPeers::parse(&everyone_else));
    for &n in &others {
        replicas[n]
            .link()
            .blocked()
            .set(BlockedPeers::parse(&line(WUJIAGANG_STREET)));
    }
    let rev = revision(
        replicas[XILING]
            .propose(vec![DirectoryCommand::Publish(small_catalog(1))])
            .await,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        replicas[WUJIAGANG_STREET].view(|s| s.revision) < rev,
        "the blocked street applied a change made while it was cut off"
    );
    // A call in from a blocked node is answered as if it never arrived.
    let city = tierlink_client::NodeClient::open(f.nodes[CITY].dir.clone()).unwrap();
    let refused = city
        .list_catalogs(None, f.nodes[WUJIAGANG_STREET].dir.code().as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, tierlink_client::ClientError::Status(s)
            if s.code() == tonic::Code::Unavailable && s.message().contains("fault hook")),
        "{refused}"
    );

    // Unblocked, the street catches up.
    for replica in &replicas {
        replica.link().blocked().set(BlockedPeers::default());
    }
    f.wait_for_revision(rev).await.unwrap();
    city.list_catalogs(None, f.nodes[WUJIAGANG_STREET].dir.code().as_str())
        .await
        .unwrap();
    f.stop().await.unwrap();
}
