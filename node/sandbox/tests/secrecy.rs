//! Field-level secrecy end to end: three principals at three tiers read the same street's
//! residents under their grants, on every path (query, history, relay, export, the REST
//! gateway); refusals; and the audit each exchange leaves on both ends.

mod util;

use std::collections::BTreeMap;

use prost::Message;
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::identity::Principals;
use tierlink_core::identity::tokens::{self, ApiTokens, Issue, Scope};
use tierlink_core::signed::VerifiedBatch;
use tierlink_core::signed::file::{BatchWriter, verify_file};
use tierlink_proto::v1::{
    BatchHeader, HistoryRequest, QueryRequest, ReadScope, Record, RecordList,
};
use tierlink_store::audit::{AuditFilter, Outcome, Side, anchor_head};
use util::http;
use util::*;

/// What one read received: the first header, the records, and every byte that crossed the wire.
struct Received {
    header: BatchHeader,
    records: Vec<Record>,
    bytes: Vec<u8>,
}

impl Received {
    fn value<'a>(&self, record: &'a Record, item: &str) -> &'a str {
        let at = self.header.columns.iter().position(|c| c == item);
        at.map_or("", |n| record.values[n].as_str())
    }

    fn manifest(&self) -> BTreeMap<String, String> {
        self.header
            .manifest
            .iter()
            .map(|m| (m.item.clone(), m.action.clone()))
            .collect()
    }
}

async fn read(
    client: &NodeClient,
    via: Option<&tierlink_core::identity::NodeCode>,
    request: QueryRequest,
) -> Result<Received, ClientError> {
    let mut got = Received {
        header: BatchHeader::default(),
        records: Vec::new(),
        bytes: Vec::new(),
    };
    client
        .read(via, request, |batch, verified| {
            // What the asking node reads: the header and the records it opened.
            got.bytes.extend_from_slice(&batch.header);
            let opened = RecordList {
                records: verified.records,
            };
            got.bytes.extend_from_slice(&opened.encode_to_vec());
            if verified.header.sequence == 0 {
                got.header = verified.header;
            }
            got.records.extend(opened.records);
            Ok(())
        })
        .await?;
    Ok(got)
}

/// The residents' query, in batches of 100.
fn residents(credential: Option<tierlink_proto::v1::Credential>) -> QueryRequest {
    QueryRequest {
        batch_size: 100,
        ..residents_query(credential)
    }
}

/// The residents query sent straight to the producer with `requester` for request `id`.
fn vouched(requester: tierlink_proto::v1::SignedRequester, id: &str) -> QueryRequest {
    let mut query = residents(None);
    let scope = query.scope.get_or_insert_default();
    scope.requester = Some(requester);
    scope.request_id = id.into();
    query
}

/// The street's own records, as stored, by key.
async fn stored(f: &Fixture) -> (Vec<String>, BTreeMap<String, Record>) {
    let own = read(
        &f.clients[STREET],
        None,
        QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(own.header.principal, "", "the node's own read");
    let columns = own.header.columns.clone();
    (
        columns,
        own.records
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect(),
    )
}

/// No value of an item the manifest does not send in clear appears in `got.bytes` (unless the
/// same text is also the value of an item sent in clear, e.g. two addresses alike, or the row
/// scope the grant states).
fn nothing_hidden_leaks(got: &Received, columns: &[String], stored: &BTreeMap<String, Record>) {
    let manifest = got.manifest();
    let clear: std::collections::HashSet<&str> = stored
        .values()
        .flat_map(|r| columns.iter().zip(&r.values))
        .filter(|(item, _)| manifest[*item] == "clear")
        .map(|(_, v)| v.as_str())
        .collect();
    let text = String::from_utf8_lossy(&got.bytes);
    let mut checked = 0;
    for record in stored.values() {
        for (item, value) in columns.iter().zip(&record.values) {
            let known =
                clear.contains(value.as_str()) || got.header.row_scope.ends_with(value.as_str());
            if manifest[item] != "clear" && value.chars().count() >= 6 && !known {
                checked += 1;
                assert!(
                    !text.contains(value.as_str()),
                    "{item} value {value:?} left the street under {} for {:?}",
                    manifest[item],
                    got.header.principal
                );
            }
        }
    }
    assert!(checked > 0, "nothing hidden to check");
}

/// The read `got` again, by principal `name` of node `n` through that node's REST gateway as
/// NDJSON: the same values as over gRPC, and nothing hidden in the body.
async fn over_gateway(
    f: &Fixture,
    n: usize,
    name: &str,
    purpose: &str,
    got: &Received,
    columns: &[String],
    stored: &BTreeMap<String, Record>,
) {
    let token = http::token(f, n, name, Scope::Read);
    let gateway = http::Gateway::of(f, n);
    let request = gateway
        .get("/v1/catalogs/101001001/000001/records")
        .query(&[("target", "420502001")]);
    let (records, body) = http::ndjson(http::reader(request, &token, purpose)).await;
    let expected: Vec<_> = VerifiedBatch {
        header: got.header.clone(),
        records: got.records.clone(),
    }
    .json_records()
    .collect();
    assert_eq!(records, expected, "{name} reads other values over HTTP");
    let received = Received {
        header: got.header.clone(),
        records: Vec::new(),
        bytes: body,
    };
    nothing_hidden_leaks(&received, columns, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_principals_see_what_their_grants_allow_on_every_path() {
    let f = federation(300).await;
    let tokens = with_policies(&f).await;
    let (columns, stored) = stored(&f).await;
    let at = |item: &str| columns.iter().position(|c| c == item).unwrap();

    // The city's analyst: ID number (and so the birth date and sex it holds), name and address
    // in clear, the phone hashed, nothing else.
    let city_as = credential("zhao", &tokens.city, "420500/ps-analyst", SECURITY);
    let city = read(&f.clients[CITY], None, residents(city_as.clone()))
        .await
        .unwrap();
    assert_eq!(
        city.header.columns,
        [
            "id_number",
            "name",
            "sex",
            "birth_date",
            "phone",
            "current_address",
            "residence_permit"
        ]
    );
    assert_eq!(
        (city.header.principal.as_str(), city.header.grant.as_str()),
        ("zhao@420500", "city-security")
    );
    assert_eq!(
        (city.header.producer.as_str(), city.header.consumer.as_str()),
        ("420502001", "420500")
    );
    assert_eq!(city.records.len(), 300);
    // The person id is not granted, so the record keys travel hashed; the ID number finds the
    // resident.
    assert!(city.header.key_hashed);
    let first = &city.records[0];
    assert!(!stored.contains_key(&first.key));
    let original = stored
        .values()
        .find(|r| r.values[at("id_number")] == city.value(first, "id_number"))
        .expect("the ID number is sent in clear");
    assert_eq!(city.value(first, "name"), original.values[at("name")]);
    let phone = city.value(first, "phone");
    assert!(
        phone.len() == 16
            && phone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)),
        "{phone}"
    );
    assert_eq!(city.manifest()["religion"], "withhold");
    assert_eq!(city.manifest()["ethnicity"], "withhold");
    nothing_hidden_leaks(&city, &columns, &stored);
    over_gateway(&f, CITY, "zhao", SECURITY, &city, &columns, &stored).await;

    // The same read relayed by the district arrives exactly as the street signed it.
    let district_code = f.clients[DISTRICT].code().clone();
    let relayed = read(
        &f.clients[CITY],
        Some(&district_code),
        residents(city_as.clone()),
    )
    .await
    .unwrap();
    assert_eq!(relayed.records, city.records);
    assert_eq!(relayed.header.manifest, city.header.manifest);
    nothing_hidden_leaks(&relayed, &columns, &stored);

    // The district's officer: ID number and phone masked, the district's rows, the rest clear but
    // core, sensitive and not-shared items.
    let district_as = credential("li", &tokens.district, "420502/civil-affairs", ALLOWANCE);
    let district = read(&f.clients[DISTRICT], None, residents(district_as.clone()))
        .await
        .unwrap();
    assert_eq!(district.records.len(), 300);
    assert_eq!(district.header.row_scope, "community_code within 420502");
    let id = district.value(&district.records[0], "id_number");
    let original_id = &stored[&district.records[0].key].values[at("id_number")];
    assert_eq!(
        id,
        format!("{}***********{}", &original_id[..6], &original_id[17..])
    );
    assert!(
        regex::Regex::new(r"^\d{3}\*{4}\d{4}$")
            .unwrap()
            .is_match(district.value(&district.records[0], "phone"))
    );
    assert_eq!(
        district.value(&district.records[0], "name"),
        stored[&district.records[0].key].values[at("name")]
    );
    for item in ["residence_permit", "religion", "special_population"] {
        assert!(
            !district.header.columns.contains(&item.to_string()),
            "{item} was sent"
        );
    }
    nothing_hidden_leaks(&district, &columns, &stored);
    over_gateway(&f, DISTRICT, "li", ALLOWANCE, &district, &columns, &stored).await;

    // The street's grid worker, by the district's delegation: one community's rows, the ID
    // number's region, names hashed — and hashed the same as anywhere in the federation.
    let street_as = credential("wang", &tokens.street, "420502001/grid-worker", ALLOWANCE);
    let street = read(&f.clients[STREET], None, residents(street_as))
        .await
        .unwrap();
    let community = stored
        .values()
        .filter(|r| r.values[at("community_code")] == "420502001001")
        .count();
    assert!(community > 0 && community < 300);
    assert_eq!(street.records.len(), community);
    let expected: std::collections::BTreeSet<String> = stored
        .values()
        .filter(|r| r.values[at("community_code")] == "420502001001")
        .map(|r| format!("{}{}", &r.values[at("id_number")][..6], "*".repeat(12)))
        .collect();
    assert!(
        street
            .records
            .iter()
            .all(|r| expected.contains(street.value(r, "id_number")))
    );
    assert!(
        street.header.key_hashed,
        "the person id is hashed under the delegation"
    );
    assert!(!street.header.columns.contains(&"phone".to_string()));
    nothing_hidden_leaks(&street, &columns, &stored);
    over_gateway(&f, STREET, "wang", ALLOWANCE, &street, &columns, &stored).await;

    // History is decided the same way.
    let key = district.records[0].key.clone();
    let mut versions = Vec::new();
    let history = HistoryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: "420502001".into(),
            credential: district_as.clone(),
            ..Default::default()
        }),
        key: key.clone(),
    };
    f.clients[DISTRICT]
        .read(None, history, |_, v| {
            assert_eq!(v.header.kind, "history");
            versions.extend(v.records);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].values, district.records[0].values);

    // An export keeps the redacted batches and their manifest, and verifies offline.
    let path = f.dir.path().join("city.tlb");
    let mut writer = BatchWriter::create(&path).unwrap();
    f.clients[CITY]
        .read(Some(&district_code), residents(city_as), |batch, _| {
            writer
                .write(&batch)
                .map_err(|e| ClientError::Io(e.to_string()))
        })
        .await
        .unwrap();
    writer.finish().unwrap();
    let offline = verify_file(&path, f.clients[CITY].verifier()).unwrap();
    assert_eq!(offline.records, 300);
    let exported = Received {
        header: city.header.clone(),
        records: Vec::new(),
        bytes: std::fs::read(&path).unwrap(),
    };
    nothing_hidden_leaks(&exported, &columns, &stored);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_without_a_vouched_principal_and_grant_are_refused_and_revocation_is_immediate() {
    let f = federation(50).await;
    let tokens = with_policies(&f).await;
    let refused = |r: Result<Received, ClientError>, code: tonic::Code, text: &str| match r {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), code, "{s:?}");
            assert!(s.message().contains(text), "{}", s.message());
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("served; expected {text}"),
    };
    // A node reading another node's records without a principal: default deny.
    refused(
        read(&f.clients[CITY], None, residents(None)).await,
        tonic::Code::PermissionDenied,
        "without naming a principal",
    );
    // A wrong token, a mistyped one, another node's, or a role the principal does not hold.
    let guess = tokens::new_secret().unwrap();
    let wrong = credential("zhao", &guess, "420500/ps-analyst", SECURITY);
    refused(
        read(&f.clients[CITY], None, residents(wrong)).await,
        tonic::Code::Unauthenticated,
        "token is wrong",
    );
    let typo = credential("zhao", "tlk_guess", "420500/ps-analyst", SECURITY);
    refused(
        read(&f.clients[CITY], None, residents(typo)).await,
        tonic::Code::Unauthenticated,
        "not a Tierlink token",
    );
    let district_dir = &f.federation.nodes[DISTRICT].dir;
    let district_principals = Principals::load(&district_dir.principals_path()).unwrap();
    let mut district_tokens = ApiTokens::load(&district_dir.tokens_path()).unwrap();
    let now = chrono::Utc::now();
    let issued = district_tokens
        .create(
            &district_principals,
            Issue::new("li", Scope::Read, now.date_naive()),
            now,
        )
        .unwrap();
    district_tokens.save(&district_dir.tokens_path()).unwrap();
    let foreign = credential("zhao", &issued.secret, "420500/ps-analyst", SECURITY);
    refused(
        read(&f.clients[CITY], None, residents(foreign)).await,
        tonic::Code::Unauthenticated,
        "token is wrong",
    );
    let other_role = credential("zhao", &tokens.city, "420502/civil-affairs", SECURITY);
    refused(
        read(&f.clients[CITY], None, residents(other_role)).await,
        tonic::Code::PermissionDenied,
        "does not hold role",
    );
    // Another purpose than the grant's.
    let purpose = credential("zhao", &tokens.city, "420500/ps-analyst", "curiosity");
    refused(
        read(&f.clients[CITY], None, residents(purpose)).await,
        tonic::Code::PermissionDenied,
        SECURITY,
    );
    // The street's node vouching for a city role: the street cannot claim it.
    let street = f.clients[STREET].code().clone();
    let token = f
        .federation
        .add_principal(&street, "mallory", &["420500/ps-analyst"])
        .unwrap();
    let claimed = credential("mallory", &token, "420500/ps-analyst", SECURITY);
    refused(
        read(&f.clients[STREET], None, residents(claimed)).await,
        tonic::Code::PermissionDenied,
        "may not act in role 420500/ps-analyst",
    );
    // A requester signed by another node than the one it names.
    let key = district_dir.signing_key().unwrap();
    let forged = tierlink_core::signed::requester::sign(
        &key,
        &tierlink_proto::v1::Requester {
            node: "420500".into(),
            principal: "zhao".into(),
            role: "420500/ps-analyst".into(),
            purpose: SECURITY.into(),
            producer: "420502001".into(),
            catalog: RESIDENTS.into(),
            request_id: "r1".into(),
            issued_at_micros: chrono::Utc::now().timestamp_micros(),
            ..Default::default()
        },
    );
    let mut raw = f.clients[DISTRICT].connect(&street).await.unwrap();
    let status = raw.query(vouched(forged, "r1")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("not signed by 420500's registered key"),
        "{}",
        status.message()
    );
    // A requester is good for one read: played again, it is refused.
    let genuine = tierlink_core::signed::requester::sign(
        &key,
        &tierlink_proto::v1::Requester {
            node: "420502".into(),
            principal: "li".into(),
            role: "420502/civil-affairs".into(),
            purpose: ALLOWANCE.into(),
            producer: "420502001".into(),
            catalog: RESIDENTS.into(),
            request_id: "r2".into(),
            issued_at_micros: chrono::Utc::now().timestamp_micros(),
            ..Default::default()
        },
    );
    let once = vouched(genuine, "r2");
    let mut served = raw.query(once.clone()).await.unwrap().into_inner();
    while let Some(batch) = tokio_stream::StreamExt::next(&mut served).await {
        batch.unwrap();
    }
    let status = raw.query(once).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("already served"),
        "{}",
        status.message()
    );
    // A credential sent to another node than the principal's own.
    let status = raw
        .query(residents(credential(
            "li",
            &tokens.district,
            "420502/civil-affairs",
            ALLOWANCE,
        )))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("only to its own node"),
        "{}",
        status.message()
    );

    // Revoking the district's grant takes the street's delegation with it, on the next request.
    let district_as = credential("li", &tokens.district, "420502/civil-affairs", ALLOWANCE);
    read(&f.clients[DISTRICT], None, residents(district_as.clone()))
        .await
        .unwrap();
    f.federation
        .issue(
            &street,
            vec![tierlink_node::directory::DirectoryCommand::Policy(
                tierlink_core::policy::PolicyCommand::Revoke("district-allowance".into()),
            )],
        )
        .await
        .unwrap();
    refused(
        read(&f.clients[DISTRICT], None, residents(district_as)).await,
        tonic::Code::PermissionDenied,
        "no grant",
    );
    let street_as = credential("wang", &tokens.street, "420502001/grid-worker", ALLOWANCE);
    refused(
        read(&f.clients[STREET], None, residents(street_as)).await,
        tonic::Code::PermissionDenied,
        "no grant",
    );
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_is_audited_on_both_ends_and_anchored_in_the_directory() {
    let f = federation(20).await;
    let tokens = with_policies(&f).await;
    let city_as = credential("zhao", &tokens.city, "420500/ps-analyst", SECURITY);
    let district_code = f.clients[DISTRICT].code().clone();
    let mut request = residents(city_as.clone());
    request.scope.get_or_insert_default().request_id = "audit-1".into();
    read(&f.clients[CITY], Some(&district_code), request)
        .await
        .unwrap();
    let wrong = credential("zhao", &tokens.city, "420500/ps-analyst", "curiosity");
    assert!(
        read(&f.clients[CITY], None, residents(wrong))
            .await
            .is_err()
    );

    let street_log = f.federation.nodes[STREET].audit().unwrap();
    let city_log = f.federation.nodes[CITY].audit().unwrap();
    // A read that ended has been audited at both ends: each end's entry is on disk before its
    // stream ends, so it is there as soon as the read returns.
    for log in [street_log, city_log] {
        let entries = log.query(&AuditFilter::default(), 1000).unwrap();
        assert!(entries.iter().any(|e| e.request_id == "audit-1"));
    }
    // Who saw the residents' ID numbers, under which grant: one query.
    let key = read(
        &f.clients[STREET],
        None,
        QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS.into(),
                ..Default::default()
            }),
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .records[0]
        .key
        .clone();
    let who = AuditFilter {
        item: Some("id_number".into()),
        key: Some(key),
        principal: Some("zhao@420500".into()),
        ..Default::default()
    };
    let seen = street_log.query(&who, 100).unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let e = &seen[0];
    assert_eq!(
        (e.side, e.outcome),
        (Some(Side::Producer), Some(Outcome::Served))
    );
    assert_eq!(
        (e.grant.as_str(), e.purpose.as_str(), e.request_id.as_str()),
        ("city-security", SECURITY, "audit-1")
    );
    assert_eq!(
        (e.consumer.as_str(), e.relay.as_str(), e.records),
        ("420500", "420502", 20)
    );
    assert!(e.items["clear"].contains(&"id_number".to_string()) && e.items["hash"] == ["phone"]);

    // Kept once the relayed stream has ended at the city.
    let mine = &audited(city_log, |c| c.request_id == "audit-1").await;
    assert_eq!(
        (mine.side, mine.records, mine.grant.as_str()),
        (Some(Side::Consumer), 20, "city-security")
    );
    let refusal = street_log
        .query(
            &AuditFilter {
                refused_only: true,
                ..Default::default()
            },
            100,
        )
        .unwrap();
    assert!(
        refusal
            .iter()
            .any(|r| r.purpose == "curiosity" && r.reason.contains("no grant")),
        "{refusal:?}"
    );

    // The street anchors its head in the directory; its chain verifies against the anchor.
    let replica = f.federation.nodes[STREET].directory().unwrap();
    let anchored = anchor_head(street_log, replica.as_ref())
        .await
        .unwrap()
        .unwrap();
    let (sequence, head) = street_log.head();
    assert_eq!(anchored, sequence);
    let revision = replica.view(|s| s.revision);
    f.federation.wait_for_revision(revision).await.unwrap();
    let at_city = f.federation.nodes[CITY]
        .directory()
        .unwrap()
        .view(|s| s.anchors[f.clients[STREET].code()].clone());
    assert_eq!(
        (at_city.sequence, at_city.head.as_str()),
        (sequence, head.as_str())
    );
    assert_eq!(
        street_log.verify(Some((sequence, &head))).unwrap(),
        Ok(sequence)
    );
    f.federation.stop().await.unwrap();
}
