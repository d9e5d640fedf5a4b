//! The federation directory replicated between real nodes over loopback mutual TLS: a leader is
//! elected, writes reach every replica, and after the leader stops a new one takes over with
//! every acknowledged write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, Raft};
use tierlink::directory::{
    DirectoryCommand, DirectoryReply, DirectoryRequest, FederationService, LogStore, Member,
    MemberStatus, Network, NodeId, StateMachine, TypeConfig, node_id,
};
use tierlink::identity::{Tier, Unit};
use tierlink::provision::{Certifier, NodeSpec, init_ca, init_node};
use tierlink::store::SledStore;
use tierlink_proto::v1::federation_server::FederationServer;
use tokio::sync::oneshot;

struct Replica {
    id: NodeId,
    endpoint: String,
    credentials: tierlink::config::Credentials,
    raft: Raft<TypeConfig>,
    state: StateMachine,
    stop: Option<oneshot::Sender<()>>,
}

fn units() -> Vec<Unit> {
    let unit = |code: &str, tier, parent: Option<&str>| Unit {
        code: code.parse().unwrap(),
        tier,
        parent: parent.map(|p| p.parse().unwrap()),
        name: code.into(),
    };
    vec![
        unit("420500", Tier::City, None),
        unit("420502", Tier::District, Some("420500")),
        unit("420503", Tier::District, Some("420500")),
    ]
}

async fn start(root: &std::path::Path) -> (Vec<Replica>, BTreeMap<NodeId, BasicNode>) {
    let ca = init_ca(&root.join("ca"), "test").unwrap();
    let config = Arc::new(
        openraft::Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let mut replicas = Vec::new();
    let mut members = BTreeMap::new();
    for unit in units() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let spec = NodeSpec {
            unit: unit.clone(),
            listen: listener.local_addr().unwrap(),
            endpoint: endpoint.clone(),
            hosts: vec!["127.0.0.1".into()],
            peers: vec![],
        };
        let dir = init_node(&root.join(unit.code.as_str()), spec, Certifier::Ca(&ca)).unwrap();
        let credentials = dir.credentials().unwrap();
        let store = SledStore::open(&dir.path(&dir.config.files.data)).unwrap();
        let log = LogStore::new(store.keyspace("raft-log").unwrap());
        let state = StateMachine::open(store.keyspace("directory").unwrap()).unwrap();
        let id = node_id(&unit.code);
        let raft = Raft::new(
            id,
            config.clone(),
            Network::new(credentials.clone()),
            log,
            state.clone(),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .tls_config(tierlink::runtime::server_tls(&credentials))
            .unwrap()
            .add_service(FederationServer::new(FederationService::new(raft.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            );
        tokio::spawn(server);
        members.insert(
            id,
            BasicNode {
                addr: endpoint.clone(),
            },
        );
        replicas.push(Replica {
            id,
            endpoint,
            credentials,
            raft,
            state,
            stop: Some(stop),
        });
    }
    (replicas, members)
}

async fn leader(replicas: &[Replica], except: Option<NodeId>) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leaders: BTreeSet<NodeId> = replicas
            .iter()
            .filter(|r| Some(r.id) != except)
            .filter_map(|r| r.raft.metrics().borrow().current_leader)
            .filter(|l| Some(*l) != except)
            .collect();
        if leaders.len() == 1 {
            return *leaders.first().unwrap();
        }
        assert!(Instant::now() < deadline, "no single leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn converge(replicas: &[Replica], except: Option<NodeId>, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for r in replicas.iter().filter(|r| Some(r.id) != except) {
        while r.state.read().await.0.revision < revision {
            assert!(
                Instant::now() < deadline,
                "replica {} stuck below revision {revision}",
                r.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn register(unit: &Unit, by: &str) -> DirectoryRequest {
    let member = Member {
        unit: unit.clone(),
        endpoint: String::new(),
        signing_key: String::new(),
        tls_fingerprint: String::new(),
        status: MemberStatus::Pending,
    };
    DirectoryRequest {
        issuer: by.parse().unwrap(),
        command: DirectoryCommand::Register(member),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_every_replica_and_survive_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let (mut replicas, members) = start(root.path()).await;
    replicas[0].raft.initialize(members).await.unwrap();

    let first = leader(&replicas, None).await;
    let leader_raft = replicas
        .iter()
        .find(|r| r.id == first)
        .unwrap()
        .raft
        .clone();
    let units = units();
    for (unit, by) in [(&units[0], "420500"), (&units[1], "420500")] {
        let reply = leader_raft
            .client_write(register(unit, by))
            .await
            .unwrap()
            .data;
        assert!(matches!(reply, DirectoryReply::Applied { .. }), "{reply:?}");
    }
    // A rejected command is replicated as a rejection: nothing changes anywhere.
    let refused = leader_raft
        .client_write(register(&units[2], "420502"))
        .await
        .unwrap()
        .data;
    assert!(
        matches!(refused, DirectoryReply::Rejected { .. }),
        "{refused:?}"
    );
    converge(&replicas, None, 2).await;
    let states: Vec<_> = replica_states(&replicas, None).await;
    assert!(states.windows(2).all(|w| w[0] == w[1]), "replicas differ");
    assert_eq!(states[0].members.len(), 2);

    // Stop the leader: the other two elect a new one, which holds every acknowledged write.
    let old = replicas.iter_mut().find(|r| r.id == first).unwrap();
    let _ = old.stop.take().unwrap().send(());
    old.raft.shutdown().await.unwrap();
    let second = leader(&replicas, Some(first)).await;
    assert_ne!(second, first);
    let new_raft = replicas
        .iter()
        .find(|r| r.id == second)
        .unwrap()
        .raft
        .clone();
    let reply = new_raft
        .client_write(register(&units[2], "420500"))
        .await
        .unwrap()
        .data;
    assert!(
        matches!(reply, DirectoryReply::Applied { revision: 3 }),
        "{reply:?}"
    );
    converge(&replicas, Some(first), 3).await;
    for state in replica_states(&replicas, Some(first)).await {
        assert_eq!(state.members.len(), 3);
    }
    for r in replicas.iter().filter(|r| r.id != first) {
        r.raft.shutdown().await.unwrap();
    }
}

async fn replica_states(
    replicas: &[Replica],
    except: Option<NodeId>,
) -> Vec<tierlink::directory::DirectoryState> {
    let mut states = Vec::new();
    for r in replicas.iter().filter(|r| Some(r.id) != except) {
        states.push(r.state.read().await.0);
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_speak_for_another() {
    let root = tempfile::tempdir().unwrap();
    let (replicas, members) = start(root.path()).await;
    replicas[0].raft.initialize(members).await.unwrap();
    leader(&replicas, None).await;

    // 420502 asks 420503 for its vote in 420500's name.
    let (impostor, victim) = (&replicas[1], &replicas[2]);
    let channel = tierlink::exchange::client::channel(&impostor.credentials, &victim.endpoint)
        .await
        .unwrap();
    let mut client = tierlink_proto::v1::federation_client::FederationClient::new(channel);
    let forged = openraft::raft::VoteRequest::<NodeId> {
        vote: openraft::Vote::new(99, replicas[0].id),
        last_log_id: None,
    };
    let json = serde_json::to_vec(&forged).unwrap();
    let err = client
        .vote(tierlink_proto::v1::RaftPayload { json })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    for r in &replicas {
        assert!(
            r.raft.metrics().borrow().current_term < 99,
            "the forged vote took effect"
        );
        r.raft.shutdown().await.unwrap();
    }
}
