//! When keys travel hashed, the shape of an answer reveals nothing hidden: the handed case
//! `hashed-key-order-leak` as our test. A district analyst reads the street's 5,000 residents,
//! keyed by sequential person ids, under a grant that hashes the person id (so keys travel
//! hashed), the name and the phone, sends the birth date, community, current address and the
//! floating flag in clear and withholds the rest. Records used to arrive in real-key order, so
//! the i-th record was the i-th person id and `limit N` returned the N smallest.

mod util;

use std::collections::HashMap;

use tierlink_client::NodeClient;
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{
    AccessRequest, AccessStatus, Action, Grant, Grantee, HASH_KEY_BYTES, HashKey, PolicyCommand,
    Redactor, Role, RowScope,
};
use tierlink_node::directory::DirectoryCommand::Policy;
use tierlink_proto::v1::{BatchHeader, FieldEquals, QueryRequest, ReadScope, Record};
use util::*;

const ROLE: &str = "420502/statistics";
const STATISTICS: &str = "population statistics";
/// The purpose of the second grant, the same items for one community's rows.
const COMMUNITY: &str = "community statistics";
const ONE_COMMUNITY: &str = "420502001001";
const RESIDENTS_READ: usize = 5000;

/// A federation hash key fixed for these tests, so that the order they check is the same on
/// every run (under random keys |rho| over 5,000 records has a standard deviation of 0.014).
fn hash_key() -> HashKey {
    let bytes: Vec<u8> = (0..HASH_KEY_BYTES as u8)
        .map(|b| b.wrapping_mul(37))
        .collect();
    HashKey::from_hex(&hex::encode(bytes)).unwrap()
}

/// The street's 5,000 residents, every node holding [`hash_key`], and the district's analyst
/// granted the case's items for [`STATISTICS`] and, for [`COMMUNITY`], the same items in one
/// community's rows. Returns the fixture, the analyst's token and the folder of the key.
async fn case() -> (Fixture, String, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("federation.key");
    std::fs::write(&key_file, hash_key().to_hex()).unwrap();
    let f = federation_with(RESIDENTS_READ, |config| {
        config.files.hash_key = key_file.clone();
    })
    .await;
    let catalogs = publish(&f).await;
    let residents = &catalogs[0];
    let district = f.clients[DISTRICT].code().clone();
    let street = f.clients[STREET].code().clone();
    let define = PolicyCommand::DefineRole(Role {
        unit: district.clone(),
        name: "statistics".into(),
        department: "Statistics Bureau".into(),
        post: "analyst".into(),
    });
    f.federation
        .issue(&district, vec![Policy(define)])
        .await
        .unwrap();
    let action = |item: &str| match item {
        "person_id" | "name" | "phone" => Action::Hash,
        "birth_date" | "community_code" | "grid_code" | "current_address" | "floating" => {
            Action::Clear
        }
        _ => Action::Withhold,
    };
    for (id, purpose, rows) in [
        ("statistics", STATISTICS, None),
        (
            "community",
            COMMUNITY,
            Some(RowScope {
                item: "community_code".into(),
                within: ONE_COMMUNITY.into(),
            }),
        ),
    ] {
        let grantee = Grantee::Role(ROLE.into());
        let ask = PolicyCommand::RequestAccess(AccessRequest {
            id: id.into(),
            producer: street.clone(),
            catalog: RESIDENTS.into(),
            grantee: grantee.clone(),
            purpose: purpose.into(),
            items: Vec::new(),
            requester: None,
            status: AccessStatus::Pending,
        });
        f.federation
            .issue(&district, vec![Policy(ask)])
            .await
            .unwrap();
        let approve = PolicyCommand::ApproveAccess(Grant {
            id: id.into(),
            producer: street.clone(),
            catalog: RESIDENTS.into(),
            grantee,
            purpose: purpose.into(),
            expires: "2099-12-31".into(),
            items: residents
                .items
                .iter()
                .map(|i| (i.code.clone(), action(&i.code)))
                .collect(),
            others: Some(Action::Withhold),
            rows,
            delegated_from: None,
            access_request: Some(id.into()),
            issuer: None,
        });
        f.federation
            .issue(&street, vec![Policy(approve)])
            .await
            .unwrap();
    }
    let token = f
        .federation
        .add_principal(&district, "analyst1", &[ROLE])
        .unwrap();
    (f, token, keys)
}

/// What one read received: the first header, the records in order and each batch's count.
struct Received {
    header: BatchHeader,
    records: Vec<Record>,
    counts: Vec<u64>,
}

impl Received {
    fn keys(&self) -> Vec<&str> {
        self.records.iter().map(|r| r.key.as_str()).collect()
    }

    fn value<'a>(&self, record: &'a Record, item: &str) -> &'a str {
        let at = self.header.columns.iter().position(|c| c == item).unwrap();
        &record.values[at]
    }
}

/// The analyst's query for `purpose` as `change` makes it, through `via` if given.
async fn read(
    client: &NodeClient,
    via: Option<&NodeCode>,
    token: &str,
    purpose: &str,
    change: impl FnOnce(&mut QueryRequest),
) -> Received {
    let mut request = QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            target: "420502001".into(),
            credential: credential("analyst1", token, ROLE, purpose),
            ..Default::default()
        }),
        ..Default::default()
    };
    change(&mut request);
    let mut got = Received {
        header: BatchHeader::default(),
        records: Vec::new(),
        counts: Vec::new(),
    };
    client
        .read(via, request, |_, verified| {
            if verified.header.sequence == 0 {
                got.header = verified.header.clone();
            }
            got.counts.push(verified.header.record_count);
            got.records.extend(verified.records);
            Ok(())
        })
        .await
        .unwrap();
    got
}

/// The rank of each received record's real key among all the street's keys, in the order
/// received. The reader's hashed key is matched to the real one by hashing every stored key
/// with the federation's key, as any member could.
fn real_ranks(got: &Received, rank_of: &HashMap<String, usize>) -> Vec<usize> {
    got.keys()
        .iter()
        .map(|k| *rank_of.get(*k).expect("every hashed key is a resident's"))
        .collect()
}

/// Spearman's rank correlation between position received and real rank, for distinct ranks.
fn spearman(ranks: &[usize]) -> f64 {
    // Ranks among those received, so that a subset is measured like the whole.
    let mut order: Vec<usize> = (0..ranks.len()).collect();
    order.sort_by_key(|&i| ranks[i]);
    let mut own = vec![0; ranks.len()];
    for (r, &i) in order.iter().enumerate() {
        own[i] = r;
    }
    let n = ranks.len() as f64;
    let d2: f64 = own
        .iter()
        .enumerate()
        .map(|(i, &r)| (i as f64 - r as f64).powi(2))
        .sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// rank.py's measure: how many records sit at the rank of their real key.
fn at_real_rank(ranks: &[usize]) -> usize {
    ranks.iter().enumerate().filter(|(i, r)| i == *r).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_keys_arrive_in_an_order_that_says_nothing_of_the_real_ones() {
    let (f, token, _keys) = case().await;
    let district = &f.clients[DISTRICT];
    let redactor = Redactor::new(Some(hash_key()));
    let mut real: Vec<String> = (0..RESIDENTS_READ)
        .map(|n| format!("P420502001{n:07}"))
        .collect();
    real.sort();
    let rank_of: HashMap<String, usize> = real
        .iter()
        .enumerate()
        .map(|(rank, key)| (redactor.apply_str(Action::Hash, key), rank))
        .collect();

    let all = read(district, None, &token, STATISTICS, |_| {}).await;
    assert!(all.header.key_hashed);
    assert_eq!(all.records.len(), RESIDENTS_READ);
    assert!(all.keys().is_sorted(), "records go in hashed-key order");
    assert!(
        all.records
            .iter()
            .all(|r| r.version == 0 && r.updated_at_micros == 0),
        "write history follows the key, so it does not travel with a hashed one"
    );
    let ranks = real_ranks(&all, &rank_of);
    let rho = spearman(&ranks);
    assert!(rho.abs() < 0.05, "rank correlation {rho}");
    let hits = at_real_rank(&ranks);
    assert!(
        hits * 100 <= RESIDENTS_READ,
        "{hits} of {RESIDENTS_READ} records sit at the rank of their real key"
    );

    // `limit 100`: the first 100 of that order, their real keys spread over the street.
    let first = read(district, None, &token, STATISTICS, |q| {
        q.limit = 100;
        q.scope.get_or_insert_default().request_id = "limit-100".into();
    })
    .await;
    assert_eq!(first.records[..], all.records[..100]);
    let first_ranks = real_ranks(&first, &rank_of);
    let mean = first_ranks.iter().sum::<usize>() as f64 / 100.0;
    assert!((1750.0..3250.0).contains(&mean), "mean real rank {mean}");
    // The street's audit keeps the real keys it sent, in the order sent.
    let street_log = f.federation.nodes[STREET].audit().unwrap();
    let entry = audited(street_log, |e| e.request_id == "limit-100").await;
    let sent: Vec<&str> = first_ranks.iter().map(|&r| real[r].as_str()).collect();
    assert_eq!(entry.keys, sent);

    // Through a relay: the city passes the same answer on, in the same order.
    let city = f.clients[CITY].code().clone();
    let relayed = read(district, Some(&city), &token, STATISTICS, |_| {}).await;
    assert_eq!(relayed.records, all.records);
    assert_eq!(relayed.counts, all.counts);

    // Small batches: the same order, cut by count alone, so the counts follow from the total.
    let small = read(district, None, &token, STATISTICS, |q| q.batch_size = 7).await;
    assert_eq!(small.records, all.records);
    let mut by_total = vec![7; RESIDENTS_READ / 7];
    by_total.push((RESIDENTS_READ % 7) as u64);
    assert_eq!(small.counts, by_total);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_or_a_row_scope_keeps_the_hashed_order_and_the_limit_its_start() {
    let (f, token, _keys) = case().await;
    let district = &f.clients[DISTRICT];
    let all = read(district, None, &token, STATISTICS, |_| {}).await;
    let order = |got: &Received| got.keys().iter().map(|k| k.to_string()).collect::<Vec<_>>();

    // `where floating = true`: the floating residents of the whole answer, in its order.
    let floating_only = |q: &mut QueryRequest| {
        q.r#where = vec![FieldEquals {
            item: "floating".into(),
            value: "true".into(),
        }];
    };
    let floating = read(district, None, &token, STATISTICS, floating_only).await;
    let expected: Vec<&Record> = all
        .records
        .iter()
        .filter(|r| all.value(r, "floating") == "true")
        .collect();
    assert!(expected.len() > 500 && expected.len() < 2500);
    assert!(floating.keys().is_sorted());
    assert_eq!(floating.records.iter().collect::<Vec<_>>(), expected);
    let limited = read(district, None, &token, STATISTICS, |q| {
        floating_only(q);
        q.limit = 100;
    })
    .await;
    assert_eq!(limited.records.iter().collect::<Vec<_>>(), expected[..100]);

    // A row scope: one community's residents, in the same order.
    let community = read(district, None, &token, COMMUNITY, |_| {}).await;
    assert_eq!(
        community.header.row_scope,
        format!("community_code within {ONE_COMMUNITY}")
    );
    let expected: Vec<String> = all
        .records
        .iter()
        .filter(|r| all.value(r, "community_code") == ONE_COMMUNITY)
        .map(|r| r.key.clone())
        .collect();
    assert!(expected.len() > 300 && expected.len() < 1000);
    assert!(community.keys().is_sorted());
    assert_eq!(order(&community), expected);
    let small = read(district, None, &token, COMMUNITY, |q| {
        q.batch_size = 9;
        q.limit = 50;
    })
    .await;
    assert_eq!(order(&small), expected[..50]);
    assert_eq!(small.counts, [9, 9, 9, 9, 9, 5]);

    // Key ranges stay refused with hashed keys, and so does a bound on write times, which
    // follow the key: asked for time after time, it would sort the hashed keys.
    let bounded = [
        (
            QueryRequest {
                key_from: "P4205020010000100".into(),
                ..Default::default()
            },
            "key range",
        ),
        (
            QueryRequest {
                updated_since_micros: 1,
                ..Default::default()
            },
            "write time",
        ),
    ];
    for (query, refusal) in bounded {
        let refused = district
            .read(
                None,
                QueryRequest {
                    scope: Some(ReadScope {
                        catalog: RESIDENTS.into(),
                        target: "420502001".into(),
                        credential: credential("analyst1", &token, ROLE, STATISTICS),
                        ..Default::default()
                    }),
                    ..query
                },
                |_, _| Ok(()),
            )
            .await
            .unwrap_err();
        assert!(refused.to_string().contains(refusal), "{refused}");
    }
    f.federation.stop().await.unwrap();
}
