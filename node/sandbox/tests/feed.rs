//! Change feeds on real nodes over loopback mutual TLS: a principal of the city follows the
//! street's residents through its own node; every version arrives once, in write order, from the
//! resume token it asks for; tokens that would leave a gap are refused as "resync needed"; every
//! batch is audited at the producer; a grant revoked ends the feed with the reason.

mod util;

use tierlink_client::ClientError;
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::{ReadScope, SubscribeRequest};
use tierlink_sandbox::sample;
use tierlink_store::audit::AuditFilter;
use util::*;

const STREET_CODE: &str = "420502001";

fn subscribe(credential: &Option<tierlink_proto::v1::Credential>, token: &str) -> SubscribeRequest {
    SubscribeRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: STREET_CODE.into(),
            credential: credential.clone(),
            ..Default::default()
        }),
        resume_token: token.into(),
        batch_size: 0,
    }
}

/// One batch of a feed, as the reader checked and opened it: its resume token and the versions,
/// `(key, version)`, in the order sent.
type Batch = (String, Vec<(String, u64)>);

/// Follows the feed `request` until `wanted` versions have arrived, in a task of its own.
fn follow(
    f: &Fixture,
    request: SubscribeRequest,
    wanted: usize,
) -> tokio::task::JoinHandle<Result<Vec<Batch>, ClientError>> {
    let dir = f.federation.nodes[CITY].dir.clone();
    tokio::spawn(async move {
        let client = tierlink_client::NodeClient::open(dir).unwrap();
        let mut batches = Vec::new();
        let mut got = 0;
        let followed = client
            .read(None, request, |_, verified| {
                let versions: Vec<(String, u64)> = verified
                    .records
                    .iter()
                    .map(|r| (r.key.clone(), r.version))
                    .collect();
                got += versions.len();
                batches.push((verified.header.resume_token.clone(), versions));
                if got >= wanted {
                    return Err(ClientError::Io("followed far enough".into()));
                }
                Ok(())
            })
            .await;
        match followed {
            Err(ClientError::Io(_)) => Ok(batches),
            Err(e) => Err(e),
            Ok(_) => panic!("a feed never ends by itself"),
        }
    })
}

/// Writes `n` new residents (numbered from `from`) at the street, and renames the first.
async fn write(f: &Fixture, from: usize, n: usize) -> Vec<String> {
    let rows = sample::residents(STREET_CODE, from + n, 7).split_off(from);
    let keys: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let name = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "name")
        .unwrap();
    let mut renamed = rows[0].clone();
    renamed[name] = format!("{} (renamed)", renamed[name]);
    for rows in [rows, vec![renamed]] {
        f.clients[STREET]
            .put_records(RESIDENTS, columns(sample::RESIDENT_COLUMNS), rows)
            .await
            .unwrap();
    }
    keys
}

fn refused(result: Result<Vec<Batch>, ClientError>, code: tonic::Code, said: &str) {
    match result {
        Err(ClientError::Status(status)) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(status.message().contains(said), "{}", status.message());
        }
        other => panic!("expected {code:?} saying {said:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_sends_each_new_version_once_in_write_order_from_its_resume_token() {
    // Reads are ended after a second without a batch; a feed waiting for writes is not.
    let f = federation_with(10, |c| c.limits.stall_ms = 1_000).await;
    let open = open_policies(&f).await;

    // A query's batches carry the token a feed follows what it read from.
    let mut read_token = String::new();
    f.clients[CITY]
        .read(None, principal_query(&open.city), |_, verified| {
            read_token = verified.header.resume_token.clone();
            Ok(())
        })
        .await
        .unwrap();
    let (epoch, position) = read_token.rsplit_once('.').unwrap();
    assert_eq!(epoch.len(), 16, "{read_token}");

    // From it, the feed sends what is written next: three new residents and a renamed one, each
    // version once, in the order written, the token advancing with the last.
    let feed = follow(&f, subscribe(&open.city, &read_token), 4);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let keys = write(&f, 10, 3).await;
    let batches = feed.await.unwrap().unwrap();
    let versions: Vec<(String, u64)> = batches.iter().flat_map(|(_, v)| v.clone()).collect();
    assert_eq!(
        versions,
        [
            (keys[0].clone(), 1),
            (keys[1].clone(), 1),
            (keys[2].clone(), 1),
            (keys[0].clone(), 2)
        ]
    );
    let last = batches.last().unwrap().0.clone();
    assert_eq!(
        last,
        format!("{epoch}.{}", position.parse::<u64>().unwrap() + 4)
    );

    // Resumed from the last token it kept, the reader gets only what came after: nothing again.
    let feed = follow(&f, subscribe(&open.city, &last), 2);
    let later = write(&f, 20, 1).await;
    let batches = feed.await.unwrap().unwrap();
    let versions: Vec<(String, u64)> = batches.iter().flat_map(|(_, v)| v.clone()).collect();
    assert_eq!(versions, [(later[0].clone(), 1), (later[0].clone(), 2)]);

    // The producer audits every batch as it sends it, naming the keys.
    let audit = f.federation.nodes[STREET].audit().unwrap();
    let entries = audit.query(&AuditFilter::default(), 1000).unwrap();
    let fed: Vec<&String> = entries
        .iter()
        .filter(|e| e.kind == "feed")
        .flat_map(|e| &e.keys)
        .collect();
    assert!(
        fed.contains(&&keys[2]) && fed.contains(&&later[0]),
        "{fed:?}"
    );

    // Tokens that would leave a gap or repeat are refused, saying what to do.
    for (token, code, said) in [
        (
            format!("0000000000000000.{position}"),
            tonic::Code::FailedPrecondition,
            "resync needed: the token is not one of catalog",
        ),
        (
            format!("{epoch}.999999"),
            tonic::Code::FailedPrecondition,
            "resync needed",
        ),
        (
            "yesterday".to_owned(),
            tonic::Code::InvalidArgument,
            "is not a resume token",
        ),
    ] {
        refused(
            follow(&f, subscribe(&open.city, &token), 1).await.unwrap(),
            code,
            said,
        );
    }

    // A grant revoked ends the feed with the reason, at the latest a recheck later.
    let feed = follow(&f, subscribe(&open.city, ""), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    f.federation
        .issue(
            f.clients[STREET].code(),
            vec![DirectoryCommand::Policy(
                tierlink_core::policy::PolicyCommand::Revoke("analyst-101".into()),
            )],
        )
        .await
        .unwrap();
    refused(
        feed.await.unwrap(),
        tonic::Code::PermissionDenied,
        "no longer holds",
    );
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_leaves_frees_its_place_a_token_names_its_catalog_and_a_node_stops() {
    let f = federation_with(10, |c| c.limits.reads_per_caller = 2).await;
    let open = open_policies(&f).await;

    // Two followers of the city, through the city to the street, leave without a word: their
    // places at both nodes come back at once, with no write to wake their feeds.
    for _ in 0..2 {
        let feed = follow(&f, subscribe(&open.city, ""), 1);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        feed.abort();
    }
    let mut read = Err(ClientError::Io("not yet".into()));
    for _ in 0..50 {
        read = f.clients[CITY]
            .read(None, principal_query(&open.city), |_, _| Ok(()))
            .await;
        if read.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    read.unwrap();

    // A token names its catalog: one the buildings' query carried is refused for residents.
    let mut buildings = principal_query(&open.city);
    buildings.scope.as_mut().unwrap().catalog = BUILDINGS.into();
    let mut token = String::new();
    f.clients[CITY]
        .read(None, buildings, |_, verified| {
            token = verified.header.resume_token.clone();
            Ok(())
        })
        .await
        .unwrap();
    refused(
        follow(&f, subscribe(&open.city, &token), 1).await.unwrap(),
        tonic::Code::FailedPrecondition,
        "is not one of catalog 101001001/000001",
    );

    // A node stops with a feed open: the feed ends, UNAVAILABLE, for the reader to resume later.
    let feed = follow(&f, subscribe(&open.city, ""), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tokio::time::timeout(std::time::Duration::from_secs(20), f.federation.stop())
        .await
        .expect("the federation stops with a feed open")
        .unwrap();
    refused(feed.await.unwrap(), tonic::Code::Unavailable, "stopping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_older_than_the_log_keeps_is_told_to_resync_and_deletions_are_fed() {
    let f = federation_with(10, |c| c.exchange.keep_changes = 5).await;
    let open = open_policies(&f).await;
    let mut read_token = String::new();
    f.clients[CITY]
        .read(None, principal_query(&open.city), |_, verified| {
            read_token = verified.header.resume_token.clone();
            Ok(())
        })
        .await
        .unwrap();
    let (epoch, _) = read_token.rsplit_once('.').unwrap();
    // Ten versions later, the street keeps the last five: the token's place is gone.
    write(&f, 10, 9).await;
    let store = f.federation.nodes[STREET].store().unwrap();
    let log = store.change_log(RESIDENTS).unwrap();
    assert_eq!((log.first, log.last), (16, 20));
    refused(
        follow(&f, subscribe(&open.city, &read_token), 1)
            .await
            .unwrap(),
        tonic::Code::FailedPrecondition,
        "resync needed: 420502001 keeps the changes of 101001001/000001 from position 16 on",
    );
    // The oldest token kept still resumes.
    let kept = format!("{epoch}.15");
    let feed = follow(&f, subscribe(&open.city, &kept), 5);
    assert_eq!(
        feed.await.unwrap().unwrap().len(),
        1,
        "the five kept, in one batch"
    );

    // A deletion reaches a follower as a version of its own, marked deleted.
    let gone = sample::residents(STREET_CODE, 1, 7).remove(0).remove(0);
    let dir = f.federation.nodes[CITY].dir.clone();
    let request = subscribe(&open.city, &format!("{epoch}.20"));
    let feed = tokio::spawn(async move {
        let client = tierlink_client::NodeClient::open(dir).unwrap();
        let mut batches = client.batches(None, request).await.unwrap();
        loop {
            let (_, batch) = batches.next().await.unwrap().unwrap();
            if let Some(r) = batch.records.first() {
                return (r.key.clone(), r.version, r.deleted);
            }
        }
    });
    let deleted = f.clients[STREET]
        .write(tierlink_proto::v1::PutRecordsRequest {
            catalog: RESIDENTS.into(),
            deleted_keys: vec![gone.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deleted.deleted, 1);
    let (key, version, was_deleted) = feed.await.unwrap();
    assert!(was_deleted);
    assert_eq!(version, 2);
    assert_eq!(key, gone);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_ends_when_its_principal_is_removed_at_its_node() {
    let f = federation(10).await;
    let open = open_policies(&f).await;
    let feed = follow(&f, subscribe(&open.city, ""), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let city = &f.federation.nodes[CITY].dir;
    tierlink_core::identity::Principals::update(&city.principal_files().principals, |p| {
        p.remove("staff")
    })
    .unwrap();
    // Ended by the principal's own node at the latest a recheck later, whatever the producer
    // still grants.
    refused(
        feed.await.unwrap(),
        tonic::Code::Unauthenticated,
        "the feed ends: its principal's credential no longer holds",
    );
    f.federation.stop().await.unwrap();
}
