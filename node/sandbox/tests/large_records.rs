//! Whatever a node stores it can serve: a thousand buildings of about 120 kB each (two
//! 20,000-character notes, `fixtures/grpc-large-batch/`), written with the default settings and
//! read back direct, through relays under a grant, and exported to a file; batches cut by bytes;
//! a record over its catalog's maximum record size refused on every write path; a record near the
//! largest any catalog allows served alone in its batch; catalog bounds refused before anything
//! is stored or published.

mod util;

use tierlink_client::{Batching, ClientError, WriteError, Written};
use tierlink_core::catalog::{Catalog, parse_catalogs};
use tierlink_core::identity::NodeCode;
use tierlink_core::limits::{DEFAULT_BATCH_BYTES, MAX_MESSAGE_BYTES, MAX_RECORD_BYTES};
use tierlink_core::policy::{Action, Grant, Grantee, PolicyCommand, Role};
use tierlink_core::signed::VerifiedBatch;
use tierlink_core::signed::file::{BatchWriter, verify_file};
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::{
    HistoryRequest, PutRecordsRequest, QueryRequest, ReadScope, Record, Row, SignedBatch,
};
use util::*;

const BIG: &str = "103001001/000099";
const PURPOSE: &str = "building survey";

fn big_catalog() -> String {
    include_str!("fixtures/grpc-large-batch/catalog.json").to_owned()
}

fn item_codes(catalog: &str) -> Vec<String> {
    let catalog = parse_catalogs(catalog, "catalog").unwrap().remove(0);
    catalog.items.into_iter().map(|i| i.code).collect()
}

/// Building `n` as the case writes it, values in catalog order: about 120 kB.
fn building(n: usize) -> Vec<String> {
    [
        format!("QA-HUGE-{n:04}"),
        "420502002001".into(),
        "测试楼".into(),
        "测试路1号".into(),
        "6".into(),
        "备".repeat(20_000),
        "注".repeat(20_000),
    ]
    .into()
}

fn query(
    catalog: &str,
    target: &NodeCode,
    credential: Option<tierlink_proto::v1::Credential>,
) -> QueryRequest {
    QueryRequest {
        scope: Some(ReadScope {
            catalog: catalog.into(),
            target: target.to_string(),
            credential,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The street publishes `catalog`.
async fn publish(f: &Fixture, catalog: &str) {
    let revision = f.clients[STREET].publish(&[catalog]).await.unwrap();
    f.federation.wait_for_revision(revision).await.unwrap();
}

/// `unit` defines a role that the street grants every item of `catalog` in clear, and adds a
/// principal in it. Returns the principal's credential.
async fn surveyor(
    f: &Fixture,
    catalog: &str,
    unit: usize,
) -> Option<tierlink_proto::v1::Credential> {
    let street = f.clients[STREET].code().clone();
    let unit = f.clients[unit].code().clone();
    let role = format!("{unit}/surveyor");
    let define = PolicyCommand::DefineRole(Role {
        unit: unit.clone(),
        name: "surveyor".into(),
        department: "Housing Office".into(),
        post: "surveyor".into(),
    });
    f.federation
        .issue(&unit, vec![DirectoryCommand::Policy(define)])
        .await
        .unwrap();
    let mut grant = Grant::new(
        format!("survey-{unit}"),
        street.clone(),
        catalog,
        Grantee::Role(role.clone()),
        PURPOSE,
        "2099-12-31",
    );
    grant.others = Some(Action::Clear);
    let grant = DirectoryCommand::Policy(PolicyCommand::Grant(grant));
    f.federation.issue(&street, vec![grant]).await.unwrap();
    let token = f.federation.add_principal(&unit, "sun", &[&role]).unwrap();
    credential("sun", &token, &role, PURPOSE)
}

/// What a read received: its records, and the size of each batch's records.
#[derive(Default)]
struct Received {
    records: Vec<Record>,
    batch_bytes: Vec<usize>,
}

impl Received {
    fn take(&mut self, batch: &SignedBatch, verified: VerifiedBatch) {
        self.batch_bytes.push(batch.records.len());
        self.records.extend(verified.records);
    }
}

async fn read(
    f: &Fixture,
    reader: usize,
    via: Option<&NodeCode>,
    request: impl Into<tierlink_core::read::Read>,
) -> Received {
    let mut got = Received::default();
    f.clients[reader]
        .read(via, request, |batch, verified| {
            got.take(&batch, verified);
            Ok(())
        })
        .await
        .unwrap();
    got
}

/// Every one of the thousand buildings, in order, as written, in batches of at most 4 MiB of
/// records: 34 of about 120 kB to a batch.
fn assert_all_buildings(got: &Received) {
    assert_eq!(got.records.len(), 1000);
    for (n, record) in got.records.iter().enumerate() {
        assert_eq!(record.key, format!("QA-HUGE-{n:04}"));
        assert!(record.values == building(n), "record {n} differs");
    }
    assert_eq!(got.batch_bytes.len(), 30, "{:?}", got.batch_bytes);
    assert!(got.batch_bytes.iter().all(|b| *b <= DEFAULT_BATCH_BYTES));
}

/// Records of `catalog` stored on the street.
async fn stored(f: &Fixture, catalog: &str) -> u64 {
    let listing = f.clients[STREET].list_catalogs(None, "").await.unwrap();
    let summary = listing.catalogs.into_iter().find(|c| c.code == catalog);
    summary.map_or(0, |c| c.record_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_records_of_120_kb_are_imported_and_read_back_on_every_path() {
    let f = federation(0).await;
    let street = f.clients[STREET].code().clone();
    let district = f.clients[DISTRICT].code().clone();
    f.clients[STREET].put_catalog(big_catalog()).await.unwrap();
    let catalog = parse_catalogs(&big_catalog(), "big").unwrap().remove(0);
    assert_eq!(catalog.max_record_bytes(), 161_550, "as the README says");
    let columns = item_codes(&big_catalog());
    let rows: Vec<Vec<String>> = (0..1000).map(building).collect();

    // All in one request, or a thousand to a batch, would not fit in a message: refused before
    // anything is sent.
    let err = f.clients[STREET]
        .put_records(BIG, columns.clone(), rows.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::TooLarge(n) if n > MAX_MESSAGE_BYTES),
        "{err}"
    );
    let forced = Batching::Exactly(1000);
    let err = f.clients[STREET]
        .write_records(BIG, columns.clone(), rows.clone(), forced, |_| {})
        .await
        .unwrap_err();
    let WriteError::Oversized(over) = &err else {
        panic!("{err}")
    };
    assert_eq!((over.records.clone(), over.fits), (0..1000, 558));
    assert_eq!(stored(&f, BIG).await, 0, "nothing was written");

    // The default settings cut the import by size.
    let mut progress = Vec::new();
    let written = f.clients[STREET]
        .write_records(BIG, columns, rows, Batching::default(), |n| {
            progress.push(n)
        })
        .await
        .unwrap();
    let all_new = Written {
        records: 1000,
        created: 1000,
        ..Default::default()
    };
    assert_eq!(written, all_new);
    assert_eq!(progress.len(), 30, "{progress:?}");
    assert_eq!(stored(&f, BIG).await, 1000);

    // The street reads its own records.
    assert_all_buildings(&read(&f, STREET, None, query(BIG, &street, None)).await);

    // A district principal under a grant, relayed by its node.
    publish(&f, BIG).await;
    let district_surveyor = surveyor(&f, BIG, DISTRICT).await;
    let request = query(BIG, &street, district_surveyor);
    assert_all_buildings(&read(&f, DISTRICT, None, request).await);

    // A city principal through the district, the batches exported to a file as received.
    let city_surveyor = surveyor(&f, BIG, CITY).await;
    let path = f.dir.path().join("big.tlb");
    let mut writer = BatchWriter::create(&path).unwrap();
    let mut got = Received::default();
    let summary = f.clients[CITY]
        .read(
            Some(&district),
            query(BIG, &street, city_surveyor),
            |batch, verified| {
                got.take(&batch, verified);
                writer
                    .write(&batch)
                    .map_err(|e| ClientError::Io(e.to_string()))
            },
        )
        .await
        .unwrap();
    writer.finish().unwrap();
    assert_all_buildings(&got);

    // The file verifies offline with the CA alone.
    let offline = verify_file(&path, f.clients[CITY].verifier()).unwrap();
    assert_eq!(offline, summary);
    assert_eq!((offline.records, offline.batches), (1000, 30));
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_longer_than_its_catalog_allows_is_refused_on_every_write_path() {
    let f = federation(0).await;
    let street = f.clients[STREET].code().clone();
    f.clients[STREET].put_catalog(big_catalog()).await.unwrap();
    let columns = item_codes(&big_catalog());
    let mut rows = vec![building(0), building(1)];
    rows[1][5].push('备');
    let named = "record 2 (key \"QA-HUGE-0001\"): notes: is 20,001 characters long, over the item's length of 20,000 characters";

    // gRPC PutRecords, as any client sends it.
    let mut grpc = f.clients[STREET].connect(&street).await.unwrap();
    let request = PutRecordsRequest {
        catalog: BIG.into(),
        columns: columns.clone(),
        rows: rows.iter().map(|v| Row { values: v.clone() }).collect(),
        ..PutRecordsRequest::default()
    };
    let status = grpc.put_records(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains(named) && status.message().contains("nothing was stored"),
        "{}",
        status.message()
    );

    // The node client's writes, one request or in batches.
    let err = f.clients[STREET]
        .put_records(BIG, columns.clone(), rows.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(named), "{err}");
    let err = f.clients[STREET]
        .write_records(BIG, columns, rows, Batching::default(), |_| {})
        .await
        .unwrap_err();
    let WriteError::Stopped {
        written,
        failed,
        maybe_stored,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (written.records, failed.clone(), *maybe_stored),
        (0, 0..2, false)
    );
    assert!(
        err.to_string().contains("none of them is stored") && err.to_string().contains(named),
        "{err}"
    );
    assert_eq!(stored(&f, BIG).await, 0);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_and_the_batch_sent_after_it_are_reported_together() {
    let f = federation(0).await;
    f.clients[STREET].put_catalog(big_catalog()).await.unwrap();
    let columns = item_codes(&big_catalog());
    let mut rows: Vec<Vec<String>> = (0..6).map(building).collect();
    rows[2][5].push('备');

    // Batches of two, two in flight: the second is refused while the third is already sent,
    // and the third is stored. Neither is counted as written, and the error says the node may
    // have stored some of them.
    let err = f.clients[STREET]
        .write_records(BIG, columns, rows, Batching::Exactly(2), |_| {})
        .await
        .unwrap_err();
    let WriteError::Stopped {
        written,
        failed,
        maybe_stored,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (written.records, failed.clone(), *maybe_stored),
        (2, 2..6, true)
    );
    assert!(
        err.to_string().starts_with(
            "writing records 3–6 failed, and the node may have stored some or all of them: "
        ),
        "{err}"
    );
    assert_eq!(stored(&f, BIG).await, 4, "the first and third batches");
    f.federation.stop().await.unwrap();
}

/// The case's catalog coded `code`, with its key and one text item of each of `lengths`
/// characters.
fn one_text_item(code: &str, lengths: &[u32]) -> String {
    let mut catalog: serde_json::Value = serde_json::from_str(&big_catalog()).unwrap();
    catalog["code"] = code.into();
    let key = catalog["items"][0].clone();
    let mut items = vec![key];
    for (n, length) in lengths.iter().enumerate() {
        let mut text = catalog["items"][5].clone();
        text["code"] = format!("text_{n}").into();
        text["name"] = format!("text {n}").into();
        text["length"] = (*length).into();
        items.push(text);
    }
    catalog["items"] = items.into();
    catalog.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_near_the_largest_any_catalog_allows_goes_alone_in_its_batch() {
    const NEAR: &str = "103001001/000097";
    let f = federation(0).await;
    let street = f.clients[STREET].code().clone();
    let json = one_text_item(NEAR, &[4_000_000]);
    let catalog = parse_catalogs(&json, "near").unwrap().remove(0);
    assert!(catalog.max_record_bytes() > 16_000_000);
    assert!(catalog.max_record_bytes() <= MAX_RECORD_BYTES);
    f.clients[STREET].put_catalog(json.clone()).await.unwrap();

    // 4,000,000 four-byte characters: 16 MB, four times a batch's budget.
    let largest = "𠮷".repeat(4_000_000);
    let row = |key: &str, text: &str| vec![key.to_owned(), text.to_owned()];
    let rows = vec![
        row("A", "small"),
        row("B", &largest),
        row("C", "small"),
        row("D", &largest),
    ];
    let columns = item_codes(&json);
    let mut requests = 0;
    f.clients[STREET]
        .write_records(
            NEAR,
            columns.clone(),
            rows.clone(),
            Batching::default(),
            |_| requests += 1,
        )
        .await
        .unwrap();
    assert_eq!(requests, 4, "each large record is sent alone");

    let got = read(&f, STREET, None, query(NEAR, &street, None)).await;
    assert_eq!(got.batch_bytes.len(), 4, "{:?}", got.batch_bytes);
    assert!(got.batch_bytes[1] > 16_000_000 && got.batch_bytes[3] > 16_000_000);
    let values: Vec<Vec<String>> = got.records.into_iter().map(|r| r.values).collect();
    assert!(values == rows, "every record arrives whole");

    // A history of two such versions (the second differs: equal values store no version): one
    // batch each.
    let changed = format!("{}x", "𠮷".repeat(3_999_999));
    f.clients[STREET]
        .put_records(NEAR, columns, vec![row("B", &changed)])
        .await
        .unwrap();
    let history = HistoryRequest {
        scope: Some(ReadScope {
            catalog: NEAR.into(),
            target: street.to_string(),
            ..Default::default()
        }),
        key: "B".into(),
    };
    let got = read(&f, STREET, None, history).await;
    let versions: Vec<u64> = got.records.iter().map(|r| r.version).collect();
    assert_eq!((versions, got.batch_bytes.len()), (vec![1, 2], 2));
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_beyond_their_bounds_are_refused_when_added_and_when_published() {
    let f = federation(0).await;
    let street = f.clients[STREET].code().clone();
    let published = || {
        f.federation.nodes[STREET]
            .directory()
            .unwrap()
            .view(|s| s.catalogs.get(&street).cloned())
    };
    let before = (stored_catalogs(&f).await, published());

    let too_large = one_text_item("103001001/000096", &[2_100_000, 2_100_000]);
    let mut long_name: serde_json::Value = serde_json::from_str(&big_catalog()).unwrap();
    long_name["name"] = "长".repeat(201).into();
    let mut many_items: serde_json::Value = serde_json::from_str(&big_catalog()).unwrap();
    let item = many_items["items"][2].clone();
    let items = many_items["items"].as_array_mut().unwrap();
    items.extend((0..1000).map(|n| {
        let mut i = item.clone();
        i["code"] = format!("extra_{n}").into();
        i["name"] = format!("extra {n}").into();
        i
    }));
    let cases = [
        (
            too_large,
            "entry 103001001/000096: items: a record of this catalog can take 16.8 MB",
            "over the 16 MiB a record may take",
        ),
        (
            long_name.to_string(),
            "entry 103001001/000099: name: is 201 characters long",
            "over the 200 allowed",
        ),
        (
            many_items.to_string(),
            "entry 103001001/000099: items: has 1,007 information items",
            "over the 1,000 an entry may have",
        ),
    ];
    for (json, field, bound) in cases {
        let err = f.clients[STREET]
            .put_catalog(json.clone())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(field) && text.contains(bound), "{text}");
        // The directory refuses the same entry published by a node that skipped its own checks.
        let catalog: Catalog = serde_json::from_str(&json).unwrap();
        let publish = vec![DirectoryCommand::Publish(catalog)];
        let reason = f
            .federation
            .issue(&street, publish)
            .await
            .unwrap_err()
            .to_string();
        assert!(reason.contains(bound), "{reason}");
    }
    assert_eq!((stored_catalogs(&f).await, published()), before);
    f.federation.stop().await.unwrap();
}

/// Codes of the catalogs the street holds.
async fn stored_catalogs(f: &Fixture) -> Vec<String> {
    let listing = f.clients[STREET].list_catalogs(None, "").await.unwrap();
    listing.catalogs.into_iter().map(|c| c.code).collect()
}
