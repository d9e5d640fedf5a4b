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
                unchanged: 1,
                deleted: 0
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

    // Every version stored has a position in the catalog's write order, kept across a reopen;
    // unchanged rows have none. A superseded version is found where it now is, in the history.
    let log = store.change_log(&code).unwrap();
    assert_eq!((log.first, log.last), (1, 5));
    assert_eq!(log.epoch.len(), 16);
    let changes = |after, max| -> Vec<(Position, String, u64, String)> {
        store
            .changes(&code, after, max)
            .unwrap()
            .into_iter()
            .map(|(p, r)| {
                let r = r.decode().unwrap();
                (p, r.key, r.version, r.values[1].clone())
            })
            .collect()
    };
    let all = changes(0, 100);
    let written: Vec<(Position, &str, u64, &str)> = all
        .iter()
        .map(|(p, k, v, n)| (*p, k.as_str(), *v, n.as_str()))
        .collect();
    assert_eq!(
        written,
        [
            (1, "B2", 1, "two"),
            (2, "B1", 1, "one"),
            (3, "B3", 1, "three"),
            (4, "B2", 2, "two, renamed"),
            (5, "B4", 1, "four"),
        ]
    );
    assert_eq!(changes(3, 1), all[3..4]);
    assert!(changes(5, 100).is_empty());
    let other = store.change_log("103001001/000002").unwrap();
    assert_eq!(
        (other.first, other.last),
        (1, 0),
        "each catalog has its own log"
    );
    drop(store);
    let reopened = open();
    assert_eq!(reopened.change_log(&code).unwrap(), log);
    let next = reopened
        .put_records(&code, vec![row("B5", "five")])
        .unwrap();
    assert_eq!(next.created, 1);
    let after = reopened.changes(&code, 5, 100).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0, 6);
    deletions_and_marks(&reopened, &code);
}

/// A deletion ends a record with a version of its own, in the change log and the history; a
/// key written again goes on from there. A source mark is stored with its write, and only over
/// the offset the write expected.
fn deletions_and_marks<S: Store>(store: &S, code: &str) {
    let count = store.record_count(code).unwrap();
    let write = |rows, deletes: &[&str], mark| {
        store.write(
            code,
            Write {
                rows,
                deletes: deletes.iter().map(|k| k.to_string()).collect(),
                mark,
            },
        )
    };
    let mark = |offset: &str, expected: &str| {
        Some(SourceMark {
            source: "postgres:public.buildings".into(),
            offset: offset.into(),
            expected: expected.into(),
        })
    };
    let out = write(vec![row("B6", "six")], &["B1", "B9"], mark("t1", "")).unwrap();
    assert_eq!((out.created, out.deleted), (1, 1), "B9 was never written");
    assert_eq!(store.record_count(code).unwrap(), count);
    assert!(store.get(code, "B1").unwrap().is_none());
    assert!(!keys(store.scan(code, "", None)).contains(&"B1".to_owned()));
    let history: Vec<Record> = store
        .history(code, "B1")
        .unwrap()
        .iter()
        .map(|r| r.decode().unwrap())
        .collect();
    assert_eq!(history.len(), 2);
    assert!(history[1].deleted && history[1].version == 2);
    assert_eq!(history[1].values, history[0].values, "the values it ends");
    let log = store.change_log(code).unwrap();
    let ended = store.changes(code, log.last - 1, 10).unwrap();
    let ended = ended[0].1.decode().unwrap();
    assert!(ended.deleted && ended.key == "B1");
    // Written again: a new version after the deletion, not version 1 again.
    let again = write(vec![row("B1", "one again")], &[], None).unwrap();
    assert_eq!(again.created, 1);
    assert_eq!(
        store
            .get(code, "B1")
            .unwrap()
            .unwrap()
            .decode()
            .unwrap()
            .version,
        3
    );
    // Written and deleted in one write: deleted.
    let both = write(vec![row("B7", "seven")], &["B7"], None).unwrap();
    assert_eq!((both.created, both.deleted), (1, 1));
    assert!(store.get(code, "B7").unwrap().is_none());

    assert_eq!(
        store
            .source_offset(code, "postgres:public.buildings")
            .unwrap()
            .as_deref(),
        Some("t1")
    );
    // A stale connector's write is refused whole: neither its rows nor its offset are kept.
    let last = store.change_log(code).unwrap().last;
    let stale = write(vec![row("B8", "eight")], &[], mark("t2", "t0")).unwrap_err();
    assert!(matches!(stale, StoreError::MarkMoved { .. }), "{stale}");
    assert!(store.get(code, "B8").unwrap().is_none());
    assert_eq!(store.change_log(code).unwrap().last, last);
    // A mark moves with nothing else changed.
    let same = write(vec![row("B6", "six")], &[], mark("t2", "t1")).unwrap();
    assert_eq!(same.unchanged, 1);
    assert_eq!(
        store
            .source_offset(code, "postgres:public.buildings")
            .unwrap()
            .as_deref(),
        Some("t2")
    );
    assert!(store.source_offset(code, "other").unwrap().is_none());
}
