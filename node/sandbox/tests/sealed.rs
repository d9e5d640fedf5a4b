//! Batches sealed end to end to the node that asked: a relay verifies them and reads nothing, a
//! requester spent by anyone but its node yields records only that node opens, a batch file
//! verifies with the CA certificate alone and opens only with the asking node's key, and a node
//! that rotated its key still opens what was sealed before while it keeps the old one.

mod util;

use prost::Message;
use tierlink_client::{NodeClient, connect};
use tierlink_core::directory::{DirectoryCommand, Rotation};
use tierlink_core::identity::{EncryptionKey, write_private};
use tierlink_core::signed::file::{BatchWriter, FileVerifyError, open_file, verify_file};
use tierlink_core::signed::{BatchVerifier, VerifyError, requester};
use tierlink_proto::v1::{BatchHeader, QueryRequest, ReadScope, Requester, SignedBatch};
use tierlink_store::audit::Side;
use tokio_stream::StreamExt;
use util::*;

/// Every value of the street's residents long enough that finding it by chance in random bytes
/// is out of the question (8 bytes or more), keys included.
async fn stored_values(f: &Fixture) -> Vec<String> {
    let mut values = Vec::new();
    f.clients[STREET]
        .read(None, own_query(), |_, opened| {
            for r in opened.records {
                values.push(r.key);
                values.extend(r.values.into_iter().filter(|v| v.len() >= 8));
            }
            Ok(())
        })
        .await
        .unwrap();
    assert!(values.len() > 1000, "{}", values.len());
    values
}

/// A fresh requester the city signs for its analyst's read of the street's residents, as the
/// city would send it on towards the street.
fn city_requester(f: &Fixture, request_id: &str) -> QueryRequest {
    let city = &f.federation.nodes[CITY].dir;
    let signed = requester::sign(
        &city.signing_key().unwrap(),
        &Requester {
            node: city.code().to_string(),
            principal: "staff".into(),
            role: format!("{}/analyst", city.code()),
            purpose: EXCHANGE.into(),
            producer: f.clients[STREET].code().to_string(),
            catalog: RESIDENTS.into(),
            request_id: request_id.into(),
            issued_at_micros: chrono::Utc::now().timestamp_micros(),
            ..Default::default()
        },
    );
    QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            request_id: request_id.into(),
            requester: Some(signed),
            ..Default::default()
        }),
        batch_size: 100,
        ..Default::default()
    }
}

/// What the district, standing between the city and the street, receives for `query`: the
/// batches exactly as the street sent them.
async fn through_district(f: &Fixture, query: QueryRequest) -> Vec<SignedBatch> {
    let district = &f.federation.nodes[DISTRICT].dir;
    let street = &f.federation.nodes[STREET].dir.config.server.endpoint;
    let mut client = connect(&district.credentials().unwrap(), street)
        .await
        .unwrap();
    let stream = client.query(query).await.unwrap().into_inner();
    stream.map(Result::unwrap).collect().await
}

/// The values that appear in `bytes`: those whose first 8 bytes are among the 8-byte windows of
/// `bytes`, then checked whole.
fn found_in<'a>(bytes: &[u8], values: &'a [String]) -> Vec<&'a String> {
    let windows: std::collections::HashSet<&[u8]> = bytes.windows(8).collect();
    values
        .iter()
        .filter(|v| windows.contains(&v.as_bytes()[..8]))
        .filter(|v| bytes.windows(v.len()).any(|w| w == v.as_bytes()))
        .collect()
}

#[tokio::test]
async fn a_relay_verifies_every_batch_and_reads_nothing() {
    let f = federation(1000).await;
    let open = open_policies(&f).await;
    let values = stored_values(&f).await;

    // The city's analyst reads through the district, which relays: the city opens every batch.
    let via = f.clients[DISTRICT].code().clone();
    let summary = f.clients[CITY]
        .read(Some(&via), principal_query(&open.city), |_, _| Ok(()))
        .await
        .unwrap();
    assert_eq!(
        (summary.records, summary.sealed_to.as_str()),
        (1000, "420500")
    );

    // What the relay passes on, byte for byte: it verifies each batch with the CA and the
    // directory, yet no value of any record appears in it, nor in what it could decode.
    let batches = through_district(&f, city_requester(&f, "relay-1")).await;
    assert_eq!(batches.len(), 10);
    let verifier = f.clients[DISTRICT].verifier();
    let (mut sealed, mut signed) = (Vec::new(), Vec::new());
    for batch in &batches {
        let header = verifier.verify(batch).unwrap();
        assert_eq!(
            (header.sealed_to.as_str(), header.consumer.as_str()),
            ("420500", "420500")
        );
        sealed.extend_from_slice(&batch.records);
        signed.extend_from_slice(
            &SignedBatch {
                records: Vec::new(),
                ..batch.clone()
            }
            .encode_to_vec(),
        );
    }
    for bytes in [&sealed, &signed] {
        let leaked = found_in(bytes, &values);
        assert!(leaked.is_empty(), "the relay can read {leaked:?}");
    }
    // The check finds what is there: the street's own read, in clear, holds every value.
    let mut in_clear = Vec::new();
    f.clients[STREET]
        .read(None, own_query(), |_, opened| {
            let list = tierlink_proto::v1::RecordList {
                records: opened.records,
            };
            in_clear.extend_from_slice(&list.encode_to_vec());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(found_in(&in_clear, &values[..100]).len(), 100);
    // The same bytes, opened by the node that asked, hold every value.
    let opened: Vec<_> = batches
        .iter()
        .flat_map(|b| f.clients[CITY].opener().open(verifier, b).unwrap().records)
        .collect();
    assert_eq!(opened.len(), 1000);
}

#[tokio::test]
async fn a_requester_spent_by_a_relay_yields_records_only_its_node_opens() {
    let f = federation(300).await;
    open_policies(&f).await;

    // The district captured the city's fresh requester and spends it for itself.
    let batches = through_district(&f, city_requester(&f, "captured-1")).await;
    assert_eq!(batches.len(), 3);
    let verifier = f.clients[DISTRICT].verifier();
    for batch in &batches {
        let err = f.clients[DISTRICT]
            .opener()
            .open(verifier, batch)
            .unwrap_err();
        assert!(
            matches!(&err, VerifyError::SealedToAnother { sealed_to, .. } if sealed_to == "420500"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("sealed to node 420500, not to 420502"),
            "{err}"
        );
        // Only the city, whose requester it was, could read what the district got.
        f.clients[CITY].opener().open(verifier, batch).unwrap();
    }

    // The street's audit says whom the read was for, and who carried it (kept once its stream
    // has ended, after the last batch reached the district).
    let street_log = f.federation.nodes[STREET].audit().unwrap();
    let entry = audited(street_log, |e| e.request_id == "captured-1").await;
    assert_eq!(
        (
            entry.side,
            entry.consumer.as_str(),
            entry.relay.as_str(),
            entry.records
        ),
        (Some(Side::Producer), "420500", "420502", 300)
    );
}

/// The city analyst's read of the street's residents, written to `path` as received.
async fn export(client: &NodeClient, query: QueryRequest, path: &std::path::Path) {
    let mut writer = BatchWriter::create(path).unwrap();
    client
        .read(None, query, |batch, _| {
            writer.write(&batch).unwrap();
            Ok(())
        })
        .await
        .unwrap();
    writer.finish().unwrap();
}

#[tokio::test]
async fn a_batch_file_verifies_with_the_ca_alone_and_opens_only_with_the_asking_nodes_key() {
    let f = federation(300).await;
    let open = open_policies(&f).await;
    let path = f.dir.path().join("city.tlb");
    export(&f.clients[CITY], principal_query(&open.city), &path).await;

    // Anyone with ca.crt checks it, and learns whom it is sealed to.
    let ca_only = BatchVerifier::new(f.federation.nodes[STREET].dir.trusted_ca().unwrap());
    let offline = verify_file(&path, &ca_only).unwrap();
    assert_eq!(
        (offline.records, offline.batches, offline.sealed_to.as_str()),
        (300, 3, "420500")
    );

    // The city's key opens it; the district's does not, and says whose it is.
    let mut records = 0;
    open_file(&path, &ca_only, f.clients[CITY].opener(), |batch| {
        records += batch.records.len();
        Ok(())
    })
    .unwrap();
    assert_eq!(records, 300);
    let err = open_file(&path, &ca_only, f.clients[DISTRICT].opener(), |_| Ok(())).unwrap_err();
    assert!(
        matches!(
            &err,
            FileVerifyError::Batch {
                batch: 0,
                source: VerifyError::SealedToAnother { .. }
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("sealed to node 420500"), "{err}");

    // One changed byte of ciphertext, anywhere, fails verification before anyone opens it.
    let mut batches = tierlink_core::signed::file::read_batches(&path).unwrap();
    let at = batches[1].records.len() / 2;
    batches[1].records[at] ^= 0x01;
    let tampered = f.dir.path().join("tampered.tlb");
    let mut writer = BatchWriter::create(&tampered).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    let err = verify_file(&tampered, &ca_only).unwrap_err();
    assert!(
        matches!(
            &err,
            FileVerifyError::Batch {
                batch: 1,
                source: VerifyError::Digest(_)
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_rotated_node_still_opens_batches_sealed_before_the_rotation() {
    let f = federation(200).await;
    let open = open_policies(&f).await;
    let before = f.dir.path().join("before.tlb");
    export(&f.clients[CITY], principal_query(&open.city), &before).await;

    // The city rotates its encryption key: the directory gets the new public key through a
    // signed change, and the key file keeps the old private key after the new one.
    let city_dir = &f.federation.nodes[CITY].dir;
    let old = city_dir.encryption_keys().unwrap();
    let new = EncryptionKey::generate().unwrap();
    let rotation = Rotation {
        node: city_dir.code().clone(),
        tls_certificate: None,
        signing_certificate: None,
        encryption_key: Some(new.public().to_hex()),
        at_micros: chrono::Utc::now().timestamp_micros(),
    };
    f.federation
        .issue(city_dir.code(), vec![DirectoryCommand::Rotate(rotation)])
        .await
        .unwrap();
    let keys_path = city_dir.path(&city_dir.config.files.encryption_key);
    let rotated = old.clone().rotated(new.clone());
    write_private(&keys_path, &rotated.to_text()).unwrap();

    // The street now seals to the new key, and the city opens both the new read and the file
    // sealed before the rotation.
    let city = NodeClient::open(city_dir.clone()).unwrap();
    let after = f.dir.path().join("after.tlb");
    export(&city, principal_query(&open.city), &after).await;
    let first = &tierlink_core::signed::file::read_batches(&after).unwrap()[0];
    let header = BatchHeader::decode(first.header.as_slice()).unwrap();
    assert_eq!(header.recipient_key, new.public().as_bytes());
    for file in [&before, &after] {
        let summary = open_file(file, city.verifier(), city.opener(), |_| Ok(())).unwrap();
        assert_eq!(summary.records, 200);
    }

    // Once the node drops the retired key, what was sealed to it no longer opens.
    write_private(&keys_path, rotated.to_text().lines().next().unwrap()).unwrap();
    let forgot = NodeClient::open(city_dir.clone()).unwrap();
    let err = open_file(&before, forgot.verifier(), forgot.opener(), |_| Ok(())).unwrap_err();
    assert!(
        matches!(
            &err,
            FileVerifyError::Batch {
                source: VerifyError::KeyNotHeld { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&old.current().public().to_hex()),
        "{err}"
    );
}
