//! The history retention on a real node: versions superseded longer ago than `[store]
//! keep_history_days` are removed, never a current version or a deletion; the removal is in the
//! street's audit (which catalog, how many versions, superseded before when); a history read
//! gives the versions kept, and a feed that reaches for a removed version is told why it is gone.

mod util;

use tierlink_client::ClientError;
use tierlink_proto::v1::{HistoryRequest, ReadScope, SubscribeRequest};
use tierlink_sandbox::sample;
use util::*;

const STREET_CODE: &str = "420502001";
const DAY_MICROS: i64 = 86_400_000_000;

fn scope() -> Option<ReadScope> {
    Some(ReadScope {
        catalog: RESIDENTS.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_retention_removes_old_superseded_versions_and_audits_it() {
    let f = federation_with(20, |c| c.store.keep_history_days = 30).await;
    let street = &f.clients[STREET];
    // Where a feed of everything written from here on starts.
    let mut token = String::new();
    street
        .read(None, own_query(), |_, verified| {
            token = verified.header.resume_token.clone();
            Ok(())
        })
        .await
        .unwrap();
    // Three residents move twice; a fourth is deleted.
    let address = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "current_address")
        .unwrap();
    for n in 1..=2 {
        let mut moved = sample::residents(STREET_CODE, 3, 7);
        for row in &mut moved {
            row[address] = format!("夷陵大道 {n} 号");
        }
        street
            .put_records(RESIDENTS, columns(sample::RESIDENT_COLUMNS), moved)
            .await
            .unwrap();
    }
    let gone = sample::residents(STREET_CODE, 4, 7)[3][0].clone();
    street
        .write(tierlink_proto::v1::PutRecordsRequest {
            catalog: RESIDENTS.into(),
            deleted_keys: vec![gone.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let node = &f.federation.nodes[STREET];
    let (store, audit) = (node.store().unwrap(), node.audit().unwrap());
    let history = |key: &str| {
        store
            .history(RESIDENTS, key)
            .unwrap()
            .iter()
            .map(|r| r.decode().unwrap().version)
            .collect::<Vec<u64>>()
    };
    let moved = sample::residents(STREET_CODE, 1, 7)[0][0].clone();
    assert_eq!(history(&moved), [1, 2, 3]);

    // Today nothing is 30 days old; in 31 days the superseded versions are.
    let now = chrono::Utc::now().timestamp_micros();
    // `compact` blocks on the audit flush, as it does in its blocking task when the node runs it.
    let compact = |now| {
        tokio::task::block_in_place(|| {
            tierlink_node::retention::compact(store.as_ref(), audit, STREET_CODE, 30, now)
        })
    };
    assert!(compact(now).unwrap().is_empty());
    let removed = compact(now + 31 * DAY_MICROS).unwrap();
    assert_eq!(removed, [(RESIDENTS.to_owned(), 3 * 2 + 1)]);
    assert_eq!(history(&moved), [3]);
    assert_eq!(history(&gone), [2], "the deletion stays");
    assert_eq!(store.record_count(RESIDENTS).unwrap(), 19);

    let entry = audited(audit, |e| e.kind == "retention").await;
    assert_eq!(
        (
            entry.catalog.as_str(),
            entry.records,
            entry.producer.as_str()
        ),
        (RESIDENTS, 7, STREET_CODE)
    );
    assert!(
        entry.bounds.starts_with("versions superseded before ")
            && entry.bounds.ends_with("(keep_history_days = 30)"),
        "{}",
        entry.bounds
    );

    // A history read gives what is kept; a feed from before the removal is told why.
    let mut versions = Vec::new();
    street
        .read(
            None,
            HistoryRequest {
                scope: scope(),
                key: moved.clone(),
            },
            |_, verified| {
                versions.extend(verified.records.iter().map(|r| r.version));
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(versions, [3]);
    let feed = SubscribeRequest {
        scope: scope(),
        resume_token: token,
        batch_size: 0,
    };
    let err = street.read(None, feed, |_, _| Ok(())).await.unwrap_err();
    let ClientError::Status(status) = &err else {
        panic!("{err}");
    };
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(
        status
            .message()
            .contains("removed by the history retention"),
        "{err}"
    );
    f.federation.stop().await.unwrap();
}
