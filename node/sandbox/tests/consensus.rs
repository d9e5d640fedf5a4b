//! Consensus among voters only, on real nodes over loopback mutual TLS: raft messages from a node
//! that is not a voter — a street (a learner), a suspended member, a pending member, a node with a
//! CA-issued certificate that never joined — are refused, whatever they say, and the directory
//! keeps its leader, its term, its voters and its log. The attacks are those of a member holding an
//! ordinary federation certificate: a vote at a high term, append-entries claiming leadership, and
//! append-entries carrying a membership in which the attacker alone votes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde_json::{Value, json};
use tierlink_core::config::{Credentials, DirectorySettings};
use tierlink_core::directory::{CommandBatch, DirectoryCommand, MemberStatus, SignedCommands};
use tierlink_core::identity::Tier;
use tierlink_core::provision::load_ca;
use tierlink_node::directory::{Replica, member_of};
use tierlink_node::runtime;
use tierlink_proto::v1::federation_client::FederationClient;
use tierlink_proto::v1::federation_server::{Federation, FederationServer};
use tierlink_proto::v1::{RaftPayload, SubmitRequest};
use tierlink_sandbox::federation::cast::{CITY, WUJIA, WUJIAGANG, XILING, XILING_STREET, XUEYUAN};
use tierlink_sandbox::federation::{LocalFederation, demo_units, offline_node};
use tierlink_sandbox::sample::small_catalog;
use tonic::Code;

const VOTERS: [&str; 3] = [CITY, XILING, WUJIAGANG];
/// A street of Xiling that registers itself and is never approved.
const PENDING: &str = "420502003";
/// A street of Xiling with a certificate from the federation CA that never joins.
const STRANGER: &str = "420502004";

/// Settings fast enough for tests; the streets are replicas of raft (learners), as every
/// member is when `streets_follow_district` is off, so that raft's own rules are tried on them.
fn settings() -> DirectorySettings {
    DirectorySettings {
        heartbeat_ms: 100,
        election_timeout_ms: 600,
        streets_follow_district: false,
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    Vote,
    AppendEntries,
    InstallSnapshot,
}

/// What a voter's raft looks like from outside: term, leader, voters and learners, last log
/// index.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    term: u64,
    leader: Option<u64>,
    voters: BTreeSet<u64>,
    nodes: BTreeSet<u64>,
    last_log_index: Option<u64>,
}

fn seen(replica: &Replica) -> Seen {
    let m = replica.metrics();
    let membership = m.membership_config.membership();
    Seen {
        term: m.current_term,
        leader: m.current_leader,
        voters: membership.voter_ids().collect(),
        nodes: membership.nodes().map(|(id, _)| *id).collect(),
        last_log_index: m.last_log_index,
    }
}

/// The views of every voter and of the learner Wujia, once they agree on a leader, a log and a
/// membership that has only active members.
async fn settled(f: &LocalFederation) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<Seen> = VOTERS
            .iter()
            .chain([&WUJIA])
            .map(|c| seen(f.replica(&c.parse().unwrap()).unwrap()))
            .collect();
        let active: BTreeSet<u64> = f.replica(&CITY.parse().unwrap()).unwrap().view(|s| {
            s.members
                .iter()
                .filter(|(_, m)| m.status == MemberStatus::Active)
                .map(|(c, _)| c.as_str().parse().unwrap())
                .collect()
        });
        let first = &views[0];
        if first.leader.is_some()
            && first.nodes == active
            && views.iter().all(|v| {
                (v.leader, &v.nodes, v.last_log_index)
                    == (first.leader, &first.nodes, first.last_log_index)
            })
        {
            return views;
        }
        assert!(Instant::now() < deadline, "no settled leader: {views:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A view's term, leader, voters and nodes.
type Standing = (u64, Option<u64>, BTreeSet<u64>, BTreeSet<u64>);

/// What forged raft messages would change had they taken hold. Not the log's length: the
/// directory's own entries (audit anchors, publications) go on meanwhile, and the views agree on
/// it once settled.
fn standing(views: Vec<Seen>) -> Vec<Standing> {
    views
        .into_iter()
        .map(|s| (s.term, s.leader, s.voters, s.nodes))
        .collect()
}

async fn send(
    credentials: &Credentials,
    endpoint: &str,
    rpc: Rpc,
    json: Vec<u8>,
) -> Result<String, tonic::Status> {
    let channel = tierlink_client::channel(credentials, endpoint)
        .await
        .expect("the node is reachable");
    let mut client = FederationClient::new(channel);
    let payload = RaftPayload { json };
    let reply = match rpc {
        Rpc::Vote => client.vote(payload).await,
        Rpc::AppendEntries => client.append_entries(payload).await,
        Rpc::InstallSnapshot => client.install_snapshot(payload).await,
    }?;
    Ok(String::from_utf8_lossy(&reply.into_inner().json).into_owned())
}

/// The attacks of the handed case, as `sender` would make them against a voter whose last log id
/// is `last`.
fn attacks(sender: u64, endpoint: &str, last: &Value) -> Vec<(Rpc, Value)> {
    let leader = |term: u64| json!({"term": term, "node_id": sender});
    let next = last["index"].as_u64().unwrap_or(0) + 1;
    let entry = json!({
        "log_id": {"leader_id": leader(5000), "index": next},
        "payload": {"Membership": {
            "configs": [[sender]],
            "nodes": {sender.to_string(): {"addr": endpoint}},
        }},
    });
    vec![
        (
            Rpc::Vote,
            json!({"vote": {"leader_id": leader(1000), "committed": false},
                   "last_log_id": {"leader_id": leader(1000), "index": 1_000_000_000u64}}),
        ),
        (
            Rpc::AppendEntries,
            json!({"vote": {"leader_id": leader(2000), "committed": true},
                   "prev_log_id": null, "entries": [], "leader_commit": null}),
        ),
        (
            Rpc::AppendEntries,
            json!({"vote": {"leader_id": leader(5000), "committed": true},
                   "prev_log_id": last, "entries": [entry], "leader_commit": entry["log_id"]}),
        ),
        (
            Rpc::InstallSnapshot,
            json!({"vote": {"leader_id": leader(3000), "committed": true},
                   "meta": {"last_log_id": {"leader_id": leader(3000), "index": next},
                            "last_membership": {"log_id": null, "membership": {
                                "configs": [[sender]], "nodes": {sender.to_string(): {"addr": endpoint}}}},
                            "snapshot_id": "x"},
                   "offset": 0, "data": [], "done": true}),
        ),
    ]
}

/// The federation of the demo with, besides, a suspended street (Xueyuan), a pending one and a
/// stranger; returns each non-voter with its credentials.
async fn federation_with_non_voters(
    root: &std::path::Path,
) -> (LocalFederation, Vec<(&'static str, Credentials)>) {
    let mut f = LocalFederation::create_with(root, demo_units(), settings())
        .await
        .unwrap();
    let xiling = XILING.parse().unwrap();
    f.issue(
        &xiling,
        vec![DirectoryCommand::Suspend(XUEYUAN.parse().unwrap())],
    )
    .await
    .unwrap();
    // A suspended member no longer replicates: its node is stopped, its certificate kept.
    let suspended = f
        .nodes
        .iter()
        .position(|n| n.dir.code().as_str() == XUEYUAN)
        .unwrap();
    f.stop_node(suspended).await.unwrap();
    let ca = load_ca(&f.root.join("ca")).unwrap();
    let pending = offline_node(&f.root, &ca, PENDING, Tier::Street, Some(XILING)).unwrap();
    let stranger = offline_node(&f.root, &ca, STRANGER, Tier::Street, Some(XILING)).unwrap();
    // The pending street registers itself through Xiling, as `tierlink directory join` does.
    let credentials = pending.credentials().unwrap();
    let key = pending.signing_key().unwrap();
    let batch = CommandBatch {
        issuer: pending.code().clone(),
        sequence: 1,
        commands: vec![DirectoryCommand::Register(
            member_of(&pending, &credentials, &key).unwrap(),
        )],
    };
    let entry = serde_json::to_string(&SignedCommands::sign(&batch, &key)).unwrap();
    let endpoint = &f.node(XILING).unwrap().dir.config.server.endpoint;
    let mut client = tierlink_client::directory::connect(&credentials, endpoint)
        .await
        .unwrap();
    let results = client
        .submit(SubmitRequest {
            entry_json: entry,
            hops: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(results[0].applied, "{results:?}");
    f.wait_for_revision(results[0].revision).await.unwrap();
    let non_voters = vec![
        (
            XILING_STREET,
            f.node(XILING_STREET).unwrap().dir.credentials().unwrap(),
        ),
        (XUEYUAN, f.node(XUEYUAN).unwrap().dir.credentials().unwrap()),
        (PENDING, credentials),
        (STRANGER, stranger.credentials().unwrap()),
    ];
    (f, non_voters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_a_suspended_a_pending_and_a_stranger_neither_vote_nor_lead_nor_change_the_voters()
 {
    let root = tempfile::tempdir().unwrap();
    let (f, non_voters) = federation_with_non_voters(root.path()).await;
    let city = CITY.parse().unwrap();
    for (attacker, credentials) in &non_voters {
        let before = settled(&f).await;
        let sender: u64 = attacker.parse().unwrap();
        // Every voter, and a learner: a learner whose term a non-voter raised would make the
        // leader step down when it next replicates to it.
        for target in VOTERS.iter().chain([&WUJIA]) {
            let node = f.node(target).unwrap();
            let endpoint = &node.dir.config.server.endpoint;
            let last =
                serde_json::to_value(f.replica(node.dir.code()).unwrap().metrics().last_applied)
                    .unwrap();
            for (rpc, message) in attacks(sender, endpoint, &last) {
                let json = serde_json::to_vec(&message).unwrap();
                let refused = send(credentials, endpoint, rpc, json)
                    .await
                    .expect_err("a non-voter's raft message is refused");
                assert_eq!(
                    refused.code(),
                    Code::PermissionDenied,
                    "{attacker} {rpc:?} to {target}: {refused:?}"
                );
                assert!(
                    refused.message().contains(attacker)
                        && (refused.message().contains("not a voter")
                            || refused.message().contains("suspended")),
                    "{attacker} {rpc:?} to {target}: {}",
                    refused.message()
                );
            }
        }
        assert_eq!(
            standing(settled(&f).await),
            standing(before),
            "after the attacks of {attacker}"
        );
        // A directory write right after succeeds.
        f.issue(&city, vec![DirectoryCommand::Publish(small_catalog(1))])
            .await
            .unwrap_or_else(|e| panic!("a write after the attacks of {attacker}: {e}"));
    }
    for voter in VOTERS {
        let refused = f
            .replica(&voter.parse().unwrap())
            .unwrap()
            .refused_raft_messages();
        assert!(
            refused >= 4 * non_voters.len() as u64,
            "{voter} counted {refused} refusals"
        );
    }
    f.stop().await.unwrap();
}

/// Arbitrary raft messages from a street: any method, term, claimed sender, log position,
/// entries and membership, or bytes that are no raft message at all.
fn arbitrary_message(sender: u64, others: Vec<u64>) -> impl Strategy<Value = (Rpc, Vec<u8>)> {
    let rpc = prop_oneof![
        Just(Rpc::Vote),
        Just(Rpc::AppendEntries),
        Just(Rpc::InstallSnapshot)
    ];
    let node = prop_oneof![Just(sender), proptest::sample::select(others.clone())];
    let log_id = (0u64..u64::MAX / 2, node.clone(), 0u64..1 << 40)
        .prop_map(|(t, n, i)| json!({"leader_id": {"term": t, "node_id": n}, "index": i}));
    let membership = proptest::collection::btree_set(node.clone(), 1..4).prop_map(|ids| {
        let nodes: serde_json::Map<String, Value> = ids
            .iter()
            .map(|id| (id.to_string(), json!({"addr": "https://127.0.0.1:1"})))
            .collect();
        json!({"configs": [ids], "nodes": nodes})
    });
    let message = (
        rpc,
        0u64..u64::MAX / 2,
        node,
        any::<bool>(),
        proptest::option::of(log_id.clone()),
        log_id,
        membership,
    )
        .prop_map(|(rpc, term, from, committed, prev, at, membership)| {
            let vote =
                json!({"leader_id": {"term": term, "node_id": from}, "committed": committed});
            let message = match rpc {
                Rpc::Vote => json!({"vote": vote, "last_log_id": prev}),
                Rpc::AppendEntries => json!({
                    "vote": vote, "prev_log_id": prev, "leader_commit": at,
                    "entries": [{"log_id": at, "payload": {"Membership": membership}}],
                }),
                Rpc::InstallSnapshot => json!({
                    "vote": vote, "offset": 0, "data": [], "done": true,
                    "meta": {"last_log_id": at, "snapshot_id": "x",
                             "last_membership": {"log_id": prev, "membership": membership}},
                }),
            };
            (rpc, serde_json::to_vec(&message).unwrap())
        });
    prop_oneof![
        9 => message,
        1 => (Just(Rpc::AppendEntries), proptest::collection::vec(any::<u8>(), 0..64)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_arbitrary_raft_messages_from_a_street_change_nothing_on_any_voter() {
    let root = tempfile::tempdir().unwrap();
    let f = LocalFederation::create_with(root.path(), demo_units(), settings())
        .await
        .unwrap();
    let before = settled(&f).await;
    let street = f.node(XILING_STREET).unwrap().dir.credentials().unwrap();
    let sender: u64 = XILING_STREET.parse().unwrap();
    let others = VOTERS.iter().map(|c| c.parse().unwrap()).collect();
    let strategy = arbitrary_message(sender, others);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let endpoints: Vec<String> = VOTERS
        .iter()
        .map(|c| f.node(c).unwrap().dir.config.server.endpoint.clone())
        .collect();
    for n in 0..300 {
        let (rpc, json) = strategy.new_tree(&mut runner).unwrap().current();
        let endpoint = &endpoints[n % endpoints.len()];
        let refused = send(&street, endpoint, rpc, json)
            .await
            .expect_err("a street's raft message is refused");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    assert_eq!(standing(settled(&f).await), standing(before));
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_membership_the_directory_did_not_name_is_refused_whoever_sends_it() {
    let root = tempfile::tempdir().unwrap();
    let (f, non_voters) = federation_with_non_voters(root.path()).await;
    let before = settled(&f).await;
    // The city is a voter and leads: its own certificate passes the sender check.
    let city = f.node(CITY).unwrap().dir.credentials().unwrap();
    let target = f.node(XILING).unwrap();
    let endpoint = &target.dir.config.server.endpoint;
    let id = |code: &str| code.parse::<u64>().unwrap();
    let node = |code: &str| (code.to_owned(), json!({"addr": "https://127.0.0.1:1"}));
    let membership = |configs: Vec<Vec<&str>>, nodes: Vec<&str>| {
        json!({
            "configs": configs.iter().map(|c| c.iter().map(|n| id(n)).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "nodes": nodes.into_iter().map(node).collect::<serde_json::Map<_, _>>(),
        })
    };
    // A SetVoters naming the street, signed by the street as if by the city: every replica
    // refuses to apply it, so it names no voters.
    let street_key = f.node(XILING_STREET).unwrap().dir.signing_key().unwrap();
    let forged = SignedCommands::sign(
        &CommandBatch {
            issuer: CITY.parse().unwrap(),
            sequence: u64::MAX / 2,
            commands: vec![DirectoryCommand::SetVoters(BTreeSet::from([
                CITY.parse().unwrap(),
                XILING_STREET.parse().unwrap(),
            ]))],
        },
        &street_key,
    );
    let all = vec![CITY, XILING, WUJIAGANG, XILING_STREET, WUJIA];
    // Each case's entries, placed after the target's last applied entry (`at(n)`).
    let cases = |at: &dyn Fn(u64) -> serde_json::Value| {
        vec![
            (
                "the street alone votes",
                vec![
                    json!({"log_id": at(1), "payload": {"Membership": membership(vec![vec![XILING_STREET]], all.clone())}}),
                ],
                "never named",
            ),
            (
                "a joint change to the city and the street",
                vec![
                    json!({"log_id": at(1), "payload": {"Membership": membership(
                    vec![vec![CITY, XILING, WUJIAGANG], vec![CITY, XILING_STREET]], all.clone())}}),
                ],
                "never named",
            ),
            (
                "after a forged SetVoters",
                vec![
                    json!({"log_id": at(1), "payload": {"Normal": forged.clone()}}),
                    json!({"log_id": at(2), "payload": {"Membership": membership(
                        vec![vec![CITY, XILING_STREET]], all.clone())}}),
                ],
                "never named",
            ),
            (
                "the named voters replicating to a stranger",
                vec![
                    json!({"log_id": at(1), "payload": {"Membership": membership(
                    vec![vec![CITY, XILING, WUJIAGANG]], [all.clone(), vec![STRANGER]].concat())}}),
                ],
                "not a member",
            ),
        ]
    };
    for case in 0..4 {
        let mut stale = 0;
        loop {
            let metrics = f.replica(target.dir.code()).unwrap().metrics();
            let (term, last) = (metrics.current_term, metrics.last_applied.unwrap());
            let leader = json!({"term": term, "node_id": CITY.parse::<u64>().unwrap()});
            let at = |n: u64| json!({"leader_id": leader, "index": last.index + n});
            let (what, entries, why) = cases(&at).swap_remove(case);
            let message = json!({
                "vote": {"leader_id": leader, "committed": true},
                "prev_log_id": last, "entries": entries, "leader_commit": last,
            });
            let json = serde_json::to_vec(&message).unwrap();
            match send(&city, endpoint, Rpc::AppendEntries, json).await {
                Err(refused) => {
                    assert_eq!(
                        refused.code(),
                        Code::PermissionDenied,
                        "{what}: {refused:?}"
                    );
                    assert!(
                        refused.message().contains(why),
                        "{what}: {}",
                        refused.message()
                    );
                    break;
                }
                // Made before an entry the target then applied, the message is stale: raft
                // already holds that index, keeps what it holds, and answers success. Made again.
                Ok(reply) => {
                    let now = f.replica(target.dir.code()).unwrap().metrics();
                    let moved = now.last_applied.is_some_and(|l| l.index > last.index);
                    stale += 1;
                    assert!(moved && stale < 10, "{what}: accepted: {reply}");
                }
            }
        }
    }
    // Nothing of the forged entries took hold.
    assert_eq!(standing(settled(&f).await), standing(before));
    drop(non_voters);
    f.stop().await.unwrap();
}

/// The position of `code` among the federation's nodes.
fn index(f: &LocalFederation, code: &str) -> usize {
    f.nodes
        .iter()
        .position(|n| n.dir.code().as_str() == code)
        .unwrap()
}

async fn voters_are(f: &LocalFederation, on: &[&str], voters: &[&str]) {
    let wanted: BTreeSet<u64> = voters.iter().map(|c| c.parse().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !on.iter().all(|c| {
        let m = seen(f.replica(&c.parse().unwrap()).unwrap());
        m.voters == wanted && m.leader.is_some()
    }) {
        assert!(Instant::now() < deadline, "voters never became {voters:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_that_slept_through_a_change_of_voters_follows_the_new_leader() {
    let root = tempfile::tempdir().unwrap();
    let mut f = LocalFederation::create_with(root.path(), demo_units(), settings())
        .await
        .unwrap();
    let city = CITY.parse().unwrap();
    let set = |voters: &[&str]| {
        vec![DirectoryCommand::SetVoters(
            voters.iter().map(|c| c.parse().unwrap()).collect(),
        )]
    };
    f.issue(&city, set(&[CITY])).await.unwrap();
    voters_are(&f, &[CITY, XILING, WUJIAGANG, WUJIA], &[CITY]).await;
    // Wujia sleeps while the districts become voters and the city goes down.
    f.stop_node(index(&f, WUJIA)).await.unwrap();
    f.issue(&city, set(&VOTERS)).await.unwrap();
    voters_are(&f, &VOTERS, &VOTERS).await;
    f.stop_node(index(&f, CITY)).await.unwrap();
    let xiling = XILING.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The first write after the city is gone waits for a new leader.
    while f
        .issue(&xiling, vec![DirectoryCommand::Publish(small_catalog(2))])
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no leader among the districts");
    }
    let revision = f.replica(&xiling).unwrap().view(|s| s.revision);
    // Wujia knows only the city as a voter: it asks its parent who votes now, and follows the
    // district that leads.
    f.start_node(index(&f, WUJIA)).await.unwrap();
    f.wait_for_revision(revision).await.unwrap();
    f.stop().await.unwrap();
}

/// A learner's node that answers every raft message with `appended` for append-entries, and a
/// term far above the leader's otherwise.
struct Impostor {
    appended: String,
}

const HIGH_VOTE: &str = r#"{"leader_id":{"term":1000000,"node_id":420503001},"committed":false}"#;

fn answer(json: String) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
    Ok(tonic::Response::new(RaftPayload {
        json: json.into_bytes(),
    }))
}

#[tonic::async_trait]
impl Federation for Impostor {
    async fn append_entries(
        &self,
        _: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        answer(self.appended.clone())
    }

    async fn vote(
        &self,
        _: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        answer(format!(
            r#"{{"Ok":{{"vote":{HIGH_VOTE},"vote_granted":false,"last_log_id":null}}}}"#
        ))
    }

    async fn install_snapshot(
        &self,
        _: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        answer(format!(r#"{{"Ok":{{"vote":{HIGH_VOTE}}}}}"#))
    }
}

/// Replaces Wujia's node with an impostor holding its certificate, makes five directory writes
/// while it answers, and checks the voters' term and leader did not move; then starts Wujia's
/// real node again and checks it catches up (the leader still replicates to it).
async fn impostor_learner(appended: String) {
    let root = tempfile::tempdir().unwrap();
    let mut f = LocalFederation::create_with(root.path(), demo_units(), settings())
        .await
        .unwrap();
    let before: Vec<Seen> = settled(&f).await.into_iter().take(VOTERS.len()).collect();
    let wujia = index(&f, WUJIA);
    f.stop_node(wujia).await.unwrap();
    let dir = f.nodes[wujia].dir.clone();
    let listener = runtime::bind(&dir).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let impostor = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(runtime::server_tls(&dir.credentials().unwrap()))
            .unwrap()
            .add_service(FederationServer::new(Impostor { appended }))
            .serve_with_incoming_shutdown(runtime::incoming(listener), async {
                let _ = stopped.await;
            }),
    );
    let city = CITY.parse().unwrap();
    for n in 0..5 {
        f.issue(&city, vec![DirectoryCommand::Publish(small_catalog(n))])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (voter, was) in VOTERS.iter().zip(&before) {
        let now = seen(f.replica(&voter.parse().unwrap()).unwrap());
        assert_eq!((now.term, now.leader), (was.term, was.leader), "{voter}");
    }
    let _ = stop.send(());
    impostor.await.unwrap().unwrap();
    let revision = f.replica(&city).unwrap().view(|s| s.revision);
    f.start_node(wujia).await.unwrap();
    f.wait_for_revision(revision).await.unwrap();
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_answering_with_a_higher_term_does_not_depose_the_leader() {
    impostor_learner(format!(r#"{{"Ok":{{"HigherVote":{HIGH_VOTE}}}}}"#)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_claiming_entries_it_was_never_sent_is_still_replicated_to() {
    let far = r#"{"leader_id":{"term":1,"node_id":420500},"index":1000000000}"#;
    impostor_learner(format!(r#"{{"Ok":{{"PartialSuccess":{far}}}}}"#)).await;
}
