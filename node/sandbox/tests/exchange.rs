//! End-to-end exchange between real nodes on loopback: mutual TLS, signed batches, relays,
//! authorization and secrecy of items that are not shared.

mod util;

use prost::Message;
use tierlink_client::{ClientError, connect};
use tierlink_core::signed::VerifyError;
use tierlink_core::signed::file::{BatchWriter, FileVerifyError, verify_file};
use tierlink_proto::v1::{
    FieldEquals, ListCatalogsRequest, QueryRequest, ReadScope, Record, RecordList,
};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use util::*;

/// A query of `catalog` on `target`, asked by `asker` (`None`: the node itself).
fn query(
    target: &str,
    catalog: &str,
    asker: &Option<tierlink_proto::v1::Credential>,
) -> QueryRequest {
    QueryRequest {
        scope: Some(ReadScope {
            catalog: catalog.into(),
            target: target.into(),
            credential: asker.clone(),
            ..Default::default()
        }),
        batch_size: 100,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn district_and_city_read_the_street_directly_and_through_a_relay() {
    let f = federation(1000).await;
    let open = open_policies(&f).await;
    let street = f.clients[STREET].code().clone();

    let mut records: Vec<Record> = Vec::new();
    let direct = f.clients[DISTRICT]
        .read(
            None,
            query(street.as_str(), RESIDENTS, &open.district),
            |_, v| {
                records.extend(v.records);
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (direct.producer.as_str(), direct.consumer.as_str()),
        ("420502001", "420502")
    );
    assert_eq!((direct.records, direct.batches), (1000, 10));
    assert_eq!(records.len(), 1000);
    assert!(
        records.windows(2).all(|w| w[0].key < w[1].key),
        "records arrive in key order"
    );

    let district = f.clients[DISTRICT].code().clone();
    let relayed = f.clients[CITY]
        .read(
            Some(&district),
            query(street.as_str(), RESIDENTS, &open.city),
            |_, _| Ok(()),
        )
        .await
        .unwrap();
    assert_eq!(
        relayed.producer, "420502001",
        "a relayed batch is still the street's"
    );
    assert_eq!(
        relayed.consumer, "420500",
        "the street served the city's principal, through the relay"
    );
    assert_eq!(relayed.records, 1000);

    let city_direct = f.clients[CITY]
        .read(
            None,
            query(street.as_str(), BUILDINGS, &open.city),
            |_, _| Ok(()),
        )
        .await
        .unwrap();
    assert_eq!(
        (city_direct.consumer.as_str(), city_direct.records),
        ("420500", 50)
    );
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_that_are_not_shared_never_leave_the_street() {
    let f = federation(300).await;
    let open = open_policies(&f).await;
    let street = f.clients[STREET].code().clone();
    let mut bytes = Vec::new();
    let summary = f.clients[CITY]
        .read(
            None,
            query(street.as_str(), RESIDENTS, &open.city),
            |batch, opened| {
                // What the city reads: the header and the records it opened.
                let records = RecordList {
                    records: opened.records,
                };
                bytes.extend_from_slice(&records.encode_to_vec());
                bytes.extend_from_slice(&batch.header);
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(
        summary.withheld,
        ["religion", "health_status", "special_population"]
    );
    for item in &summary.withheld {
        assert!(!summary.columns.contains(item));
    }
    // The generated values of those items appear nowhere in what crossed the wire.
    for secret in ["佛教", "慢性病"] {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{secret} left the node"
        );
    }
    // The street itself sees them.
    let mut own = Vec::new();
    let mine = f.clients[STREET]
        .read(None, query("", RESIDENTS, &None), |_, v| {
            own.extend(v.records);
            Ok(())
        })
        .await
        .unwrap();
    assert!(mine.withheld.is_empty());
    let religion = mine.columns.iter().position(|c| c == "religion").unwrap();
    assert!(
        own.iter().any(|r| r.values[religion] == "佛教"),
        "the sample holds the value checked above"
    );

    // Filtering on a withheld item would reveal it: refused.
    let mut probe = query(street.as_str(), RESIDENTS, &open.city);
    probe.r#where = vec![FieldEquals {
        item: "religion".into(),
        value: "佛教".into(),
    }];
    let err = f.clients[CITY]
        .read(None, probe, |_, _| Ok(()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Status(s) if s.code() == tonic::Code::PermissionDenied),
        "{err}"
    );
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_filter_by_key_range_field_and_time() {
    let f = federation(200).await;
    let open = open_policies(&f).await;
    let street = f.clients[STREET].code().as_str().to_owned();
    let count = |req: QueryRequest| {
        let client = &f.clients[DISTRICT];
        async move { client.read(None, req, |_, _| Ok(())).await.unwrap().records }
    };
    let mut by_key = query(&street, RESIDENTS, &open.district);
    by_key.key_from = "P4205020010000010".into();
    by_key.key_to = "P4205020010000020".into();
    assert_eq!(count(by_key).await, 10);

    let mut by_sex = query(&street, RESIDENTS, &open.district);
    by_sex.r#where = vec![FieldEquals {
        item: "sex".into(),
        value: "2".into(),
    }];
    let women = count(by_sex).await;
    assert!(women > 50 && women < 150, "{women}");

    let later = chrono::Utc::now().timestamp_micros();
    let mut since = query(&street, RESIDENTS, &open.district);
    since.updated_since_micros = later;
    assert_eq!(count(since.clone()).await, 0);
    // Three residents get a new address (rows equal to the stored ones would store nothing).
    let mut moved = tierlink_sandbox::sample::residents("420502001", 3, 7);
    for row in &mut moved {
        row[12] = "夷陵大道 9 号".into();
    }
    f.clients[STREET]
        .put_records(
            RESIDENTS,
            columns(tierlink_sandbox::sample::RESIDENT_COLUMNS),
            moved,
        )
        .await
        .unwrap();
    assert_eq!(count(since).await, 3);

    let mut limited = query(&street, RESIDENTS, &open.district);
    limited.limit = 42;
    assert_eq!(count(limited).await, 42);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_node_itself_writes_and_every_write_is_checked() {
    let f = federation(0).await;
    let open = open_policies(&f).await;
    let street = f.clients[STREET].code().clone();
    // The district's certificate may not write to the street.
    let mut as_district = f.clients[DISTRICT].connect(&street).await.unwrap();
    let err = as_district
        .put_catalog(tierlink_proto::v1::PutCatalogRequest {
            catalog_json: example("cases.json"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let err = as_district
        .put_records(tierlink_proto::v1::PutRecordsRequest {
            catalog: BUILDINGS.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // Nor publish the street's catalogs in the directory for it.
    let district_dir = &f.federation.nodes[DISTRICT].dir;
    let mut district_to_street = tierlink_client::directory::connect(
        &district_dir.credentials().unwrap(),
        &f.federation.nodes[STREET].dir.config.server.endpoint,
    )
    .await
    .unwrap();
    let err = district_to_street
        .publish(tierlink_proto::v1::PublishRequest {
            codes: vec![BUILDINGS.into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // The street publishes only catalogs it holds, and says which one it does not.
    let published = || {
        f.federation.nodes[STREET]
            .directory()
            .unwrap()
            .view(|s| s.catalogs.get(&street).cloned())
    };
    let before = published();
    let err = f.clients[STREET]
        .publish(&[BUILDINGS, "199999999/000001"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("199999999/000001"), "{err}");
    assert_eq!(published(), before, "a refused publication changes nothing");

    // An invalid catalog is refused and not stored.
    let bad = example("cases.json").replace("\"case_class\"", "\"Case Class\"");
    let err = f.clients[STREET].put_catalog(bad).await.unwrap_err();
    assert!(err.to_string().contains("items[2].code"), "{err}");
    let listing = as_district
        .list_catalogs(ListCatalogsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listing.catalogs.len(), 2);

    // A batch with one bad record stores none.
    let mut rows = tierlink_sandbox::sample::buildings("420502001", 20, 99);
    rows[13][8] = "many".into();
    let before = f.clients[DISTRICT]
        .read(
            None,
            query(street.as_str(), BUILDINGS, &open.district),
            |_, _| Ok(()),
        )
        .await
        .unwrap()
        .records;
    let err = f.clients[STREET]
        .put_records(
            BUILDINGS,
            columns(tierlink_sandbox::sample::BUILDING_COLUMNS),
            rows,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(r#"record 14 (key "420502001006-B0013"): floors"#)
            && text.contains("nothing was stored"),
        "{text}"
    );
    let after = f.clients[DISTRICT]
        .read(
            None,
            query(street.as_str(), BUILDINGS, &open.district),
            |_, _| Ok(()),
        )
        .await
        .unwrap()
        .records;
    assert_eq!(before, after);
    f.federation.stop().await.unwrap();
}

/// The call never reached the service: the TLS layer refused it (the exact error depends on
/// which side notices first), rather than the service answering with a status of its own.
fn assert_refused_by_transport<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    match result {
        Err(ClientError::Connect { .. }) => {}
        Err(ClientError::Status(s))
            if matches!(
                s.code(),
                tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable
            ) => {}
        other => panic!("expected a transport-level refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_federation_is_refused_at_the_handshake() {
    let f = federation(0).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = LocalFederation::create(other_dir.path(), default_units())
        .await
        .unwrap();
    let stranger = other.nodes[CITY].dir.credentials().unwrap();
    let endpoint = &f.federation.nodes[STREET].dir.config.server.endpoint;
    // The stranger does not trust our CA either; give it ours so only our server's check decides.
    let mut stranger_with_our_ca = stranger.clone();
    stranger_with_our_ca.ca_pem = f.federation.nodes[STREET].dir.credentials().unwrap().ca_pem;
    let stranger_call = match connect(&stranger_with_our_ca, endpoint).await {
        Err(e) => Err(e),
        Ok(mut client) => client
            .list_catalogs(ListCatalogsRequest::default())
            .await
            .map_err(ClientError::from),
    };
    assert_refused_by_transport(stranger_call);

    // A client with no certificate at all is refused too (a channel the client crate would
    // never build).
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(&stranger_with_our_ca.ca_pem),
    );
    #[allow(clippy::disallowed_methods)]
    let channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await;
    let anonymous_call = match channel {
        Err(e) => Err(ClientError::Connect {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        }),
        Ok(channel) => tierlink_proto::v1::exchange_client::ExchangeClient::new(channel)
            .list_catalogs(ListCatalogsRequest::default())
            .await
            .map_err(ClientError::from),
    };
    assert_refused_by_transport(anonymous_call);

    // A member connects fine to the same endpoint.
    let ours = f.federation.nodes[CITY].dir.credentials().unwrap();
    connect(&ours, endpoint)
        .await
        .unwrap()
        .list_catalogs(ListCatalogsRequest::default())
        .await
        .unwrap();
    other.stop().await.unwrap();
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_batches_verify_offline_and_tampering_is_caught() {
    let f = federation(250).await;
    let open = open_policies(&f).await;
    let path = f.dir.path().join("residents.tlb");
    let mut writer = BatchWriter::create(&path).unwrap();
    let district = f.clients[DISTRICT].code().clone();
    let summary = f.clients[CITY]
        .read(
            Some(&district),
            query("420502001", RESIDENTS, &open.city),
            |batch, _| {
                writer
                    .write(&batch)
                    .map_err(|e| ClientError::Io(e.to_string()))
            },
        )
        .await
        .unwrap();
    writer.finish().unwrap();
    let verifier = f.clients[CITY].verifier();
    let offline = verify_file(&path, verifier).unwrap();
    assert_eq!(offline, summary);

    let bytes = std::fs::read(&path).unwrap();
    // Flip one byte deep inside the records of the first batch.
    let mut tampered = bytes.clone();
    let at = bytes.len() / 5;
    tampered[at] ^= 0x20;
    std::fs::write(&path, &tampered).unwrap();
    match verify_file(&path, verifier) {
        Err(FileVerifyError::Batch {
            source: VerifyError::Digest(_) | VerifyError::Signature(_),
            ..
        }) => {}
        Err(FileVerifyError::File(_)) => {} // the flip broke the framing: also refused
        other => panic!("tampering not caught: {other:?}"),
    }
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_returns_every_acknowledged_record_and_its_history() {
    let mut f = federation(500).await;
    let open = open_policies(&f).await;
    let street = f.clients[STREET].code().clone();
    // A second version of the first ten residents.
    let mut changed = tierlink_sandbox::sample::residents("420502001", 10, 7);
    for row in &mut changed {
        row[12] = "夷陵大道 8 号".into();
    }
    f.clients[STREET]
        .put_records(
            RESIDENTS,
            columns(tierlink_sandbox::sample::RESIDENT_COLUMNS),
            changed,
        )
        .await
        .unwrap();

    f.federation.stop_node(STREET).await.unwrap();
    let err = f.clients[DISTRICT]
        .read(
            None,
            query(street.as_str(), RESIDENTS, &open.district),
            |_, _| Ok(()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Connect { .. } | ClientError::Status(_)),
        "{err}"
    );
    f.federation.start_node(STREET).await.unwrap();

    let client =
        tierlink_client::NodeClient::open(f.federation.nodes[DISTRICT].dir.clone()).unwrap();
    let total = client
        .read(
            None,
            query(street.as_str(), RESIDENTS, &open.district),
            |_, _| Ok(()),
        )
        .await
        .unwrap();
    assert_eq!(total.records, 500);
    let mut versions = Vec::new();
    let history = tierlink_proto::v1::HistoryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: street.to_string(),
            credential: open.district.clone(),
            ..Default::default()
        }),
        key: "P4205020010000003".into(),
    };
    client
        .read(None, history, |_, v| {
            versions.extend(v.records);
            Ok(())
        })
        .await
        .unwrap();
    let at = total
        .columns
        .iter()
        .position(|c| c == "current_address")
        .unwrap();
    let address = |r: &Record| r.values[at].clone();
    assert_eq!(
        versions.iter().map(|r| r.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_ne!(address(&versions[0]), "夷陵大道 8 号");
    assert_eq!(address(&versions[1]), "夷陵大道 8 号");
    f.federation.stop().await.unwrap();
}
