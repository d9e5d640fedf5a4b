//! The behaviour every [`Store`] must show, run against each engine.

use tierlink_core::catalog::parse_catalogs;

use super::*;

fn buildings() -> Catalog {
    parse_catalogs(
        include_str!("../../../schema/examples/buildings.json"),
        "buildings.json",
    )
    .unwrap()
    .remove(0)
}

fn row(key: &str, name: &str) -> Row {
    Row {
        key: key.into(),
        values: vec![key.into(), name.into()],
    }
}

fn keys(iter: RecordIter) -> Vec<String> {
    iter.map(|r| r.unwrap().decode().unwrap().key).collect()
}

/// Runs the suite; `open` must reopen the same data on every call.
pub fn run<S: Store>(open: impl Fn() -> S) {
    let catalog = buildings();
    let code = catalog.code.clone();
    {
        let store = open();
        assert!(!store.put_catalog(&catalog).unwrap());
        assert!(store.put_catalog(&catalog).unwrap(), "second put replaces");
        assert_eq!(store.catalog(&code).unwrap().unwrap(), catalog);
        assert!(store.catalog("101001001/999999").unwrap().is_none());

        let first = store
            .put_records(
                &code,
                vec![row("B2", "two"), row("B1", "one"), row("B3", "three")],
            )
            .unwrap();
        assert_eq!(
            first,
            PutOutcome {
                created: 3,
                ..Default::default()
            }
        );
        let second = store
            .put_records(
                &code,
                vec![
                    row("B2", "two, renamed"),
                    row("B4", "four"),
                    row("B3", "three"),
                ],
            )
            .unwrap();
        assert_eq!(
            second,
            PutOutcome {
                created: 1,
                updated: 1,
                unchanged: 1
            }
        );
        // The same rows again store nothing: an import run twice adds no version.
        let again = store
            .put_records(&code, vec![row("B2", "two, renamed"), row("B4", "four")])
            .unwrap();
        assert_eq!(
            again,
            PutOutcome {
                unchanged: 2,
                ..Default::default()
            }
        );
        assert_eq!(store.record_count(&code).unwrap(), 4);
    }
    // Everything acknowledged survives a reopen.
    let store = open();
    assert_eq!(store.catalogs().unwrap(), vec![catalog]);
    assert_eq!(keys(store.scan(&code, "", None)), ["B1", "B2", "B3", "B4"]);
    assert_eq!(keys(store.scan(&code, "B2", Some("B4"))), ["B2", "B3"]);
    assert!(
        keys(store.scan("103001001/000002", "", None)).is_empty(),
        "other catalogs are separate"
    );

    let history: Vec<_> = store
        .history(&code, "B2")
        .unwrap()
        .iter()
        .map(|r| r.decode().unwrap())
        .collect();
    let versions: Vec<(u64, &str)> = history
        .iter()
        .map(|r| (r.version, r.values[1].as_str()))
        .collect();
    assert_eq!(versions, [(1, "two"), (2, "two, renamed")]);
    assert!(history[0].updated_at_micros <= history[1].updated_at_micros);
    assert!(store.history(&code, "B9").unwrap().is_empty());
    assert_eq!(
        store.history(&code, "B3").unwrap().len(),
        1,
        "unchanged: no version"
    );
    let current = store.get(&code, "B2").unwrap().unwrap().decode().unwrap();
    assert_eq!(
        (current.version, current.values[1].as_str()),
        (2, "two, renamed")
    );
    assert!(store.get(&code, "B9").unwrap().is_none());
    assert!(store.get("103001001/000002", "B2").unwrap().is_none());
    assert_eq!(store.record_count(&code).unwrap(), 4);
}
