use prost::Message;
use tierlink_core::catalog::{SharingType, parse_catalogs};
use tierlink_core::policy::{HashKey, ItemDecision, RowScope, Rule};
use tierlink_proto::v1::{FieldEquals, Record, RecordList};

use super::*;

fn residents() -> Catalog {
    parse_catalogs(
        include_str!("../../../../../schema/examples/residents.json"),
        "r",
    )
    .unwrap()
    .remove(0)
}

fn record(n: usize, width: usize) -> StoredRecord {
    let values = (0..width).map(|i| format!("{n}-{i}")).collect();
    Record {
        key: format!("{n:04}"),
        version: 1 + n as u64 % 3,
        updated_at_micros: n as i64,
        values,
        deleted: false,
    }
    .into()
}

/// A decision giving each item `action(item)`, as a grant would.
fn decision(catalog: &Catalog, action: impl Fn(&str) -> Action) -> Decision {
    Decision {
        grant: "g1".into(),
        items: catalog
            .items
            .iter()
            .map(|i| ItemDecision {
                item: i.code.clone(),
                action: if i.sharing == SharingType::NotShared {
                    Action::Withhold
                } else {
                    action(&i.code)
                },
                rule: Rule::Named,
            })
            .collect(),
        rows: None,
    }
}

fn redactor() -> Redactor {
    Redactor::new(Some(HashKey::generate().unwrap()))
}

fn plan(catalog: &Catalog, action: impl Fn(&str) -> Action) -> Plan {
    Plan::new(catalog, &decision(catalog, action), redactor()).unwrap()
}

/// Runs `plan` over `records` and decodes what a consumer would get.
fn apply(plan: &Plan, records: &[StoredRecord]) -> Vec<Record> {
    let (mut list, mut scratch) = (Vec::new(), Scratch::default());
    for r in records {
        plan.append_visible(r.bytes(), &mut list, &mut scratch)
            .unwrap();
    }
    RecordList::decode(list.as_slice()).unwrap().records
}

#[test]
fn each_item_is_sent_as_decided_and_the_manifest_says_so() {
    let catalog = residents();
    let width = catalog.items.len();
    let plan = plan(&catalog, |code| match code {
        "id_number" => Action::Mask { first: 2, last: 1 },
        "name" => Action::Hash,
        "phone" => Action::Withhold,
        _ => Action::Clear,
    });
    let out = apply(&plan, &[record(1, width)]);
    let header = plan.header("420500", &catalog.code, "query", "r", None);
    assert!(!header.columns.contains(&"phone".to_string()));
    assert!(header.withheld.contains(&"religion".to_string()));
    let sent: Vec<&str> = header.columns.iter().map(String::as_str).collect();
    let value = |item: &str| &out[0].values[sent.iter().position(|c| *c == item).unwrap()];
    let n = |item: &str| catalog.item_index(item).unwrap();
    let mask = Action::Mask { first: 2, last: 1 };
    let id = format!("1-{}", n("id_number"));
    assert_eq!(
        value("id_number"),
        &Redactor::new(None).apply_str(mask, &id)
    );
    assert_ne!(value("id_number"), &id);
    assert_eq!(value("name").len(), 16);
    assert_eq!(value("sex"), &format!("1-{}", n("sex")));
    assert!(!out[0].values.contains(&format!("1-{}", n("phone"))));
    assert!(!out[0].values.contains(&format!("1-{}", n("religion"))));
    let manifest: Vec<String> = header
        .manifest
        .iter()
        .map(|m| format!("{} {}", m.item, m.action))
        .collect();
    assert!(manifest.contains(&"phone withhold".to_string()));
    assert!(manifest.contains(&"id_number mask:2:1".to_string()));
    assert_eq!(
        (
            out[0].key.as_str(),
            out[0].version,
            out[0].updated_at_micros
        ),
        ("0001", 2, 1)
    );
    assert!(!header.key_hashed);
}

#[test]
fn a_long_redacted_value_gets_a_longer_length_prefix() {
    let catalog = residents();
    let plan = plan(&catalog, |_| Action::Mask { first: 1, last: 1 });
    let long = "地".repeat(100);
    let mut stored = record(3, catalog.items.len()).decode().unwrap();
    stored.values[2] = long.clone();
    let out = apply(&plan, &[stored.into()]);
    let name = &out[0].values[2];
    assert_eq!(name.chars().count(), 100);
    assert!(name.starts_with('地') && name.ends_with('地') && name.contains("**"));
}

#[test]
fn the_owner_gets_every_item_as_stored() {
    let catalog = residents();
    let width = catalog.items.len();
    let own = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
    assert_eq!(
        apply(&own, &[record(1, width)])[0],
        record(1, width).decode().unwrap()
    );
}

#[test]
fn a_hidden_primary_key_travels_hashed_and_cannot_be_ranged() {
    let catalog = residents();
    let plan = plan(&catalog, |code| {
        if code == "person_id" {
            Action::Mask { first: 0, last: 2 }
        } else {
            Action::Clear
        }
    });
    let out = apply(&plan, &[record(7, catalog.items.len())]);
    assert_eq!(out[0].key.len(), 16);
    assert_ne!(out[0].key, "0007");
    assert!(plan.header("c", "x", "query", "r", None).key_hashed);
    assert!(plan.check_key_lookup().is_err());
    let ranged = QueryRequest {
        key_from: "0001".into(),
        ..Default::default()
    };
    assert!(matches!(
        plan.with_query(&catalog, &ranged),
        Err(PlanError::NotShared(_))
    ));
}

#[test]
fn rows_outside_the_scope_are_not_sent() {
    let catalog = residents();
    let mut d = decision(&catalog, |_| Action::Clear);
    let n = catalog.item_index("community_code").unwrap();
    d.rows = Some(RowScope {
        item: "community_code".into(),
        within: format!("7-{n}"),
    });
    let plan = Plan::new(&catalog, &d, redactor()).unwrap();
    let width = catalog.items.len();
    let out = apply(
        &plan,
        &[record(7, width), record(8, width), record(70, width)],
    );
    assert_eq!(
        out.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["0007"]
    );
    assert_eq!(
        plan.header("c", "x", "query", "r", None).row_scope,
        "community_code within 7-14"
    );
}

#[test]
fn a_deletion_is_sent_as_one_under_every_decision_that_reaches_its_record() {
    let catalog = residents();
    let width = catalog.items.len();
    let ended = |n| -> StoredRecord {
        let mut r = Record::decode(record(n, width).bytes()).unwrap();
        r.deleted = true;
        r.into()
    };
    // Keys hashed: the flag travels all the same; nothing else of the key's history does.
    let hashed = plan(&catalog, key_hashed);
    let out = apply(&hashed, &[ended(7), record(8, width)]);
    assert_eq!((out[0].deleted, out[1].deleted), (true, false));
    assert_eq!((out[0].version, out[0].updated_at_micros), (0, 0));
    // A row scope decides by the values the deletion keeps: inside it, the reader learns of
    // it; outside, it never saw the record and learns nothing.
    let mut d = decision(&catalog, |_| Action::Clear);
    let n = catalog.item_index("community_code").unwrap();
    d.rows = Some(RowScope {
        item: "community_code".into(),
        within: format!("7-{n}"),
    });
    let scoped = Plan::new(&catalog, &d, redactor()).unwrap();
    let out = apply(&scoped, &[ended(7), ended(8)]);
    assert_eq!(out.len(), 1);
    assert!(out[0].deleted && out[0].key == "0007");
}

#[test]
fn hashing_needs_the_federation_key() {
    let catalog = residents();
    let d = decision(&catalog, |_| Action::Hash);
    assert!(matches!(
        Plan::new(&catalog, &d, Redactor::new(None)),
        Err(PlanError::Unavailable(_))
    ));
}

#[test]
fn records_older_than_the_catalog_get_empty_values_for_new_items() {
    let catalog = residents();
    let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
    let out = apply(&plan, &[record(5, 3)]);
    assert_eq!(out[0].values.len(), catalog.items.len());
    assert_eq!(out[0].values[2], "5-2");
    assert!(out[0].values[3..].iter().all(String::is_empty));
}

#[test]
fn filters_apply_and_may_only_name_items_sent_in_clear() {
    let catalog = residents();
    let query = |item: &str, value: &str| QueryRequest {
        r#where: vec![FieldEquals {
            item: item.into(),
            value: value.into(),
        }],
        updated_since_micros: 5,
        ..Default::default()
    };
    let masked = |code: &str| {
        if code == "phone" {
            Action::Mask { first: 3, last: 4 }
        } else {
            Action::Clear
        }
    };
    let n = catalog.item_index("sex").unwrap();
    let filtered = plan(&catalog, masked)
        .with_query(&catalog, &query("sex", &format!("7-{n}")))
        .unwrap();
    let width = catalog.items.len();
    let out = apply(
        &filtered,
        &[record(7, width), record(8, width), record(4, width)],
    );
    assert_eq!(
        out.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["0007"]
    );
    for item in ["religion", "phone"] {
        let err = plan(&catalog, masked)
            .with_query(&catalog, &query(item, "x"))
            .unwrap_err();
        assert!(matches!(err, PlanError::NotShared(_)), "{err}");
    }
    assert!(matches!(
        plan(&catalog, masked).with_query(&catalog, &query("salary", "1")),
        Err(PlanError::BadRequest(_))
    ));
}

#[test]
fn damaged_bytes_are_reported_not_passed_on() {
    let catalog = residents();
    let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
    let good = record(1, 4);
    let cut = &good.bytes()[..good.bytes().len() - 2];
    let err = plan
        .append_visible(cut, &mut Vec::new(), &mut Scratch::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
}

/// A stored record of `bytes` bytes or a little more, keyed `n`.
fn sized(n: usize, bytes: usize) -> StoredRecord {
    Record {
        key: format!("{n:04}"),
        version: 1,
        updated_at_micros: 1,
        values: vec!["备".repeat(bytes / 3)],
        deleted: false,
    }
    .into()
}

/// The lists of `records` under the owner's plan, cut as `cut` says: (bytes, count) each, and
/// the keys in order.
fn lists(
    records: Vec<StoredRecord>,
    cut: Cut,
    limit: Option<u64>,
) -> (Vec<(usize, u64)>, Vec<String>) {
    let catalog = residents();
    let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
    let mut keys = Vec::new();
    let shape = record_lists(records.into_iter().map(Ok), plan, cut, limit, |_| {})
        .map(|l| {
            let (bytes, count) = l.unwrap();
            let list = RecordList::decode(bytes.as_slice()).unwrap();
            assert_eq!(list.records.len() as u64, count);
            keys.extend(list.records.into_iter().map(|r| r.key));
            (bytes.len(), count)
        })
        .collect();
    (shape, keys)
}

fn keys(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{n:04}")).collect()
}

const UNBOUNDED: usize = usize::MAX / 2;

#[test]
fn lists_are_cut_to_size_and_an_empty_answer_is_one_empty_list() {
    let counts = |n: usize, size: usize, limit: Option<u64>| -> Vec<u64> {
        let records = (0..n).map(|i| record(i, 1)).collect();
        let cut = Cut {
            records: size,
            bytes: UNBOUNDED,
        };
        lists(records, cut, limit)
            .0
            .into_iter()
            .map(|l| l.1)
            .collect()
    };
    assert_eq!(counts(0, 500, None), [0]);
    assert_eq!(counts(1000, 500, None), [500, 500]);
    assert_eq!(counts(1001, 500, None), [500, 500, 1]);
    assert_eq!(counts(1001, 500, Some(600)), [500, 100]);
}

#[test]
fn lists_are_cut_by_bytes_and_a_larger_record_goes_alone() {
    let cut = Cut {
        records: 1000,
        bytes: 1 << 20,
    };
    // The case's 120 kB records: eight to a megabyte, none lost, repeated or reordered.
    let (shape, got) = lists((0..100).map(|n| sized(n, 120_000)).collect(), cut, None);
    assert_eq!(
        shape.iter().map(|l| l.1).collect::<Vec<_>>(),
        [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4]
    );
    assert!(
        shape.iter().all(|(bytes, _)| *bytes <= cut.bytes),
        "{shape:?}"
    );
    assert_eq!(got, keys(0..100));

    // Many small records: cut by count, the byte budget never reached.
    let (shape, got) = lists((0..2500).map(|n| sized(n, 300)).collect(), cut, None);
    assert_eq!(
        shape.iter().map(|l| l.1).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert_eq!(got, keys(0..2500));

    // A record over the budget goes alone, whether it comes first, between or last; a limit
    // reached on a record carried to the next list still sends it.
    let sizes = [3_000_000, 300, 300, 3_000_000, 300, 3_000_000];
    let records = || {
        sizes
            .iter()
            .enumerate()
            .map(|(n, b)| sized(n, *b))
            .collect()
    };
    let (shape, got) = lists(records(), cut, None);
    assert_eq!(
        shape.iter().map(|l| l.1).collect::<Vec<_>>(),
        [1, 2, 1, 1, 1]
    );
    assert_eq!(got, keys(0..6));
    let (shape, got) = lists(records(), cut, Some(4));
    assert_eq!(shape.iter().map(|l| l.1).collect::<Vec<_>>(), [1, 2, 1]);
    assert_eq!(got, keys(0..4));
}

/// A store holding `n` residents keyed `0000`, `0001`, …: resident `i`'s values are those of
/// `values(i)`, its sex `1` for even `i`, `2` for odd.
fn store_of(
    catalog: &Catalog,
    n: usize,
    key: impl Fn(usize) -> usize,
) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = tierlink_store::SledStore::open(dir.path()).unwrap();
    let sex = catalog.item_index("sex").unwrap();
    let rows = (0..n)
        .map(|i| {
            let mut values: Vec<String> = (0..catalog.items.len())
                .map(|item| format!("{i}-{item}-{}", "x".repeat(i % 17)))
                .collect();
            values[sex] = (1 + i % 2).to_string();
            tierlink_core::catalog::Row {
                key: format!("{:04}", key(i)),
                values,
            }
        })
        .collect();
    store.put_records(&catalog.code, rows).unwrap();
    (dir, Arc::new(store))
}

/// The person id hashed (so keys travel hashed), everything else clear.
fn key_hashed(code: &str) -> Action {
    if code == "person_id" {
        Action::Hash
    } else {
        Action::Clear
    }
}

/// What a consumer receives of `request` under `plan` from `store`: the records in order and
/// each list's count.
fn read(
    store: &Arc<dyn Store>,
    catalog: &Catalog,
    plan: &Plan,
    request: &QueryRequest,
    cut: Cut,
) -> (Vec<Record>, Vec<u64>) {
    let plan = plan.clone().with_query(catalog, request).unwrap();
    let records = query_records(store.clone(), &catalog.code, &plan, request);
    let limit = (request.limit > 0).then_some(request.limit);
    let (mut got, mut counts) = (Vec::new(), Vec::new());
    for list in record_lists(records, plan, cut, limit, |_| {}) {
        let (bytes, count) = list.unwrap();
        got.extend(RecordList::decode(bytes.as_slice()).unwrap().records);
        counts.push(count);
    }
    (got, counts)
}

#[test]
fn hashed_keys_are_sent_in_hashed_order_and_a_limit_takes_the_first() {
    let catalog = residents();
    let (_dir, store) = store_of(&catalog, 3000, |i| i);
    let hashed = plan(&catalog, key_hashed);
    let cut = Cut {
        records: 100,
        bytes: UNBOUNDED,
    };
    let all = read(&store, &catalog, &hashed, &QueryRequest::default(), cut).0;
    let sent: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(sent.len(), 3000);
    assert!(sent.is_sorted(), "not in hashed-key order");
    let mut expected: Vec<String> = (0..3000)
        .map(|i| hashed.redactor.apply_str(Action::Hash, &format!("{i:04}")))
        .collect();
    expected.sort();
    assert_eq!(sent, expected);

    // A limit, below and above the ranking's trimming, takes the start of the whole answer.
    for limit in [1, 10, 700, 2999, 5000] {
        let request = QueryRequest {
            limit,
            ..Default::default()
        };
        let first = read(&store, &catalog, &hashed, &request, cut).0;
        assert_eq!(
            first[..],
            all[..all.len().min(limit as usize)],
            "limit {limit}"
        );
    }
    // A filter: the matches in the same order; with a limit, the first of them.
    let odd = QueryRequest {
        r#where: vec![FieldEquals {
            item: "sex".into(),
            value: "2".into(),
        }],
        limit: 600,
        ..Default::default()
    };
    let n = catalog.item_index("sex").unwrap();
    let matching: Vec<&Record> = all.iter().filter(|r| r.values[n] == "2").collect();
    let got = read(&store, &catalog, &hashed, &odd, cut).0;
    assert_eq!(got.iter().collect::<Vec<_>>(), matching[..600]);

    // Keys in clear: key order, as before.
    let clear = plan(&catalog, |_| Action::Clear);
    let request = QueryRequest {
        key_from: "0100".into(),
        limit: 5,
        ..Default::default()
    };
    let got = read(&store, &catalog, &clear, &request, cut).0;
    assert_eq!(
        got.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["0100", "0101", "0102", "0103", "0104"]
    );
}

#[test]
fn batch_counts_with_hashed_keys_do_not_depend_on_the_real_keys() {
    // Two producers with the same residents, keyed in opposite orders.
    let catalog = residents();
    let (_a, forward) = store_of(&catalog, 1000, |i| i);
    let (_b, backward) = store_of(&catalog, 1000, |i| 999 - i);
    let hashed = plan(&catalog, key_hashed);
    let odd = QueryRequest {
        r#where: vec![FieldEquals {
            item: "sex".into(),
            value: "2".into(),
        }],
        ..Default::default()
    };
    for request in [QueryRequest::default(), odd] {
        let cut = Cut {
            records: 7,
            bytes: UNBOUNDED,
        };
        let (a, a_counts) = read(&forward, &catalog, &hashed, &request, cut);
        let (b, b_counts) = read(&backward, &catalog, &hashed, &request, cut);
        assert_ne!(a, b, "the same keys hold other residents");
        assert_eq!(a_counts, b_counts);
        let total = a.len() as u64;
        let mut by_total = vec![7; (total / 7) as usize];
        by_total.extend((!total.is_multiple_of(7)).then_some(total % 7));
        assert_eq!(a_counts, by_total);
    }

    // Cut by bytes, the counts follow from the sizes of the records as sent, in the order sent.
    let cut = Cut {
        records: 1000,
        bytes: 4000,
    };
    let (got, counts) = read(&forward, &catalog, &hashed, &QueryRequest::default(), cut);
    let sizes = got.iter().map(|r| {
        let len = r.encoded_len();
        1 + prost::encoding::encoded_len_varint(len as u64) + len
    });
    let mut recut = vec![0u64];
    let mut bytes = 0;
    for size in sizes {
        if bytes + size > cut.bytes && *recut.last().unwrap() > 0 {
            recut.push(0);
            bytes = 0;
        }
        bytes += size;
        *recut.last_mut().unwrap() += 1;
    }
    assert!(counts.len() > 10);
    assert_eq!(counts, recut);
}

#[test]
fn a_record_changed_between_the_passes_is_checked_again() {
    let catalog = residents();
    let (_dir, store) = store_of(&catalog, 50, |i| i);
    let request = QueryRequest {
        r#where: vec![FieldEquals {
            item: "sex".into(),
            value: "1".into(),
        }],
        ..Default::default()
    };
    let hashed = plan(&catalog, key_hashed)
        .with_query(&catalog, &request)
        .unwrap();
    let mut records = query_records(store.clone(), &catalog.code, &hashed, &request);
    // The first record asked for ranks the 25 matches and looks the first of them up.
    let first = records.next().unwrap().unwrap();
    // The match ranked last now has another sex.
    let last = (0..50)
        .step_by(2)
        .map(|i| format!("{i:04}"))
        .max_by_key(|k| hashed.redactor.apply_str(Action::Hash, k))
        .unwrap();
    let mut changed = store.get(&catalog.code, &last).unwrap().unwrap();
    let mut record = changed.decode().unwrap();
    record.values[catalog.item_index("sex").unwrap()] = "2".into();
    store
        .put_records(
            &catalog.code,
            vec![tierlink_core::catalog::Row {
                key: last.clone(),
                values: record.values,
            }],
        )
        .unwrap();
    changed = store.get(&catalog.code, &last).unwrap().unwrap();
    assert_eq!(changed.decode().unwrap().version, 2);
    let cut = Cut {
        records: 1000,
        bytes: UNBOUNDED,
    };
    let mut sent = Vec::new();
    let rest = std::iter::once(Ok(first)).chain(records);
    for list in record_lists(rest, hashed, cut, None, |r| {
        sent.push(r.decode().unwrap().key)
    }) {
        list.unwrap();
    }
    assert_eq!(sent.len(), 24);
    assert!(!sent.contains(&last));
}
