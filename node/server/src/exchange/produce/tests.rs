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

#[test]
fn lists_are_cut_to_size_and_an_empty_answer_is_one_empty_list() {
    let catalog = residents();
    let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
    let counts = |n: usize, size: usize, limit: Option<u64>| -> Vec<u64> {
        record_lists(
            (0..n).map(|i| Ok(record(i, 1))),
            plan.clone(),
            size,
            limit,
            |_| {},
        )
        .map(|l| l.unwrap().1)
        .collect()
    };
    assert_eq!(counts(0, 500, None), [0]);
    assert_eq!(counts(1000, 500, None), [500, 500]);
    assert_eq!(counts(1001, 500, None), [500, 500, 1]);
    assert_eq!(counts(1001, 500, Some(600)), [500, 100]);
}
