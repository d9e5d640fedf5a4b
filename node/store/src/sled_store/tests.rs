use super::*;

#[test]
fn sled_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    crate::suite::run(|| SledStore::open(&dir.path().join("data")).unwrap());
}

#[cfg(unix)]
#[test]
fn the_store_directory_is_its_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _store = SledStore::open(&data).unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("format", &7u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(dir.path())
        .err()
        .expect("format 7 must be refused");
    assert!(
        matches!(
            err,
            StoreError::Format {
                found: 7,
                supported: FORMAT_VERSION
            }
        ),
        "{err}"
    );
}

#[test]
fn a_change_log_keeps_the_newest_positions_it_is_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let catalog = tierlink_core::catalog::parse_catalogs(
        include_str!("../../../../schema/examples/buildings.json"),
        "buildings.json",
    )
    .unwrap()
    .remove(0);
    store.put_catalog(&catalog).unwrap();
    let code = catalog.code.clone();
    let rows = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| tierlink_core::catalog::Row {
                key: format!("B{i}"),
                values: vec![format!("B{i}"), "x".into()],
            })
            .collect::<Vec<_>>()
    };
    store.put_records(&code, rows(0, 10)).unwrap();
    store.keep_changes(4);
    store.put_records(&code, rows(10, 2)).unwrap();
    let log = store.change_log(&code).unwrap();
    assert_eq!((log.first, log.last), (9, 12));
    let kept: Vec<Position> = store
        .changes(&code, log.first - 1, 100)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(kept, [9, 10, 11, 12]);
    // What was retired from the log is still each record's history and current version.
    assert!(store.get(&code, "B0").unwrap().is_some());
    drop(store);
    let reopened = SledStore::open(dir.path()).unwrap();
    assert_eq!(reopened.change_log(&code).unwrap().first, 9);
    // A long log is shortened a bounded step per write, never all at once.
    reopened.keep_changes(1);
    reopened.put_records(&code, rows(12, 1)).unwrap();
    assert_eq!(reopened.change_log(&code).unwrap().first, 13);
}

pub(super) fn buildings(store: &SledStore) -> String {
    let catalog = tierlink_core::catalog::parse_catalogs(
        include_str!("../../../../schema/examples/buildings.json"),
        "buildings.json",
    )
    .unwrap()
    .remove(0);
    store.put_catalog(&catalog).unwrap();
    catalog.code
}

pub(super) fn building(key: &str, name: &str) -> tierlink_core::catalog::Row {
    tierlink_core::catalog::Row {
        key: key.into(),
        values: vec![key.into(), name.into()],
    }
}

/// (key, version) of each record.
fn versions(records: RecordIter) -> Vec<(String, u64)> {
    records
        .map(|r| {
            let r = r.unwrap().decode().unwrap();
            (r.key, r.version)
        })
        .collect()
}

/// Every write time of the catalog's versions, and one past each.
fn write_times(store: &SledStore, code: &str) -> Vec<i64> {
    let mut times: Vec<i64> = store
        .changes(code, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .flat_map(|(_, r)| {
            let t = r.updated_at_micros().unwrap();
            [t, t + 1]
        })
        .collect();
    times.sort_unstable();
    times.dedup();
    times
}

/// What a time-bounded read must give: the scan's records written at or after `since`.
fn scanned_since(
    store: &SledStore,
    code: &str,
    since: i64,
    to: Option<&str>,
) -> Vec<(String, u64)> {
    versions(Box::new(store.scan(code, "B1", to).filter(move |r| {
        r.as_ref().unwrap().updated_at_micros().unwrap() >= since
    })))
}

#[test]
fn a_time_bounded_read_from_the_change_log_finds_what_the_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let code = buildings(&store);
    let all: Vec<_> = (0..400)
        .map(|i| building(&format!("B{i:03}"), "x"))
        .collect();
    store.put_records(&code, all).unwrap();
    // Rewrites of the same key in several writes, deletions, a key deleted and written again.
    for step in 0..6 {
        let rows = vec![
            building("B007", &format!("seven {step}")),
            building(&format!("B1{step}0"), "later"),
        ];
        store
            .write(
                &code,
                Write {
                    rows,
                    deletes: vec![format!("B2{step}0"), "B300".into()],
                    mark: None,
                },
            )
            .unwrap();
    }
    store
        .put_records(&code, vec![building("B300", "again")])
        .unwrap();
    store
        .write(
            &code,
            Write {
                deletes: vec!["B150".into()],
                ..Write::default()
            },
        )
        .unwrap();
    let mut walked = 0;
    for since in write_times(&store, &code) {
        if matches!(store.since(&code, since).unwrap(), Since::Walk(_)) {
            walked += 1;
        }
        for to in [None, Some("B2")] {
            assert_eq!(
                versions(store.scan_since(&code, "B1", to, since)),
                scanned_since(&store, &code, since, to),
                "written since {since}, to {to:?}"
            );
        }
    }
    assert!(
        walked >= 8,
        "the small writes' times are read from the change log ({walked})"
    );
    // Since the first write, every record: more than a walk is worth, so a scan.
    let first = write_times(&store, &code)[0];
    assert!(matches!(store.since(&code, first).unwrap(), Since::Scan));
    let last = *write_times(&store, &code).last().unwrap();
    assert!(matches!(store.since(&code, last).unwrap(), Since::Nothing));
    assert!(store.scan_since(&code, "", None, last).next().is_none());
}

#[test]
fn a_time_bounded_read_scans_when_the_change_log_no_longer_reaches_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let code = buildings(&store);
    let all: Vec<_> = (0..400)
        .map(|i| building(&format!("B{i:03}"), "x"))
        .collect();
    store.put_records(&code, all).unwrap();
    for step in 0..4 {
        store
            .put_records(&code, vec![building(&format!("B00{step}"), "later")])
            .unwrap();
    }
    let times = write_times(&store, &code);
    // The second small write's time: found from the log while it keeps every position.
    let since = times[4];
    assert!(matches!(
        store.since(&code, since).unwrap(),
        Since::Walk(402)
    ));
    store.keep_changes(2);
    store
        .put_records(&code, vec![building("B100", "last")])
        .unwrap();
    assert_eq!(store.change_log(&code).unwrap().first, 404);
    assert!(matches!(store.since(&code, since).unwrap(), Since::Scan));
    let expected = [("B001", 2), ("B002", 2), ("B003", 2), ("B100", 2)];
    let expected: Vec<(String, u64)> = expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(versions(store.scan_since(&code, "", None, since)), expected);
    // Later times are still in the part of the log kept.
    let recent = *write_times(&store, &code).iter().rev().nth(1).unwrap();
    assert!(matches!(
        store.since(&code, recent).unwrap(),
        Since::Walk(405)
    ));
    assert_eq!(
        versions(store.scan_since(&code, "", None, recent)),
        [("B100".to_string(), 2)]
    );
}

/// (version, deleted) of each version kept of `key`.
fn kept(store: &SledStore, code: &str, key: &str) -> Vec<(u64, bool)> {
    store
        .history(code, key)
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.decode().unwrap();
            (r.version, r.deleted)
        })
        .collect()
}

#[test]
fn history_compaction_removes_only_versions_superseded_before_its_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let code = buildings(&store);
    store
        .put_records(
            &code,
            vec![
                building("B1", "v1"),
                building("B2", "v1"),
                building("B3", "v1"),
            ],
        )
        .unwrap();
    store
        .put_records(&code, vec![building("B1", "v2")])
        .unwrap();
    store
        .write(
            &code,
            Write {
                deletes: vec!["B2".into()],
                ..Write::default()
            },
        )
        .unwrap();
    store
        .put_records(&code, vec![building("B1", "v3")])
        .unwrap();
    let at = |key: &str, version: usize| {
        store.history(&code, key).unwrap()[version - 1]
            .updated_at_micros()
            .unwrap()
    };
    // Before B1's third version: its first (superseded by the second) goes, and B2's first,
    // superseded by its deletion; the second, superseded at the cutoff itself, stays.
    let cutoff = at("B1", 3);
    let step = store.compact_history(&code, cutoff, "", 100).unwrap();
    assert_eq!(
        step,
        Compacted {
            removed: 2,
            next: None
        }
    );
    assert_eq!(kept(&store, &code, "B1"), [(2, false), (3, false)]);
    assert_eq!(kept(&store, &code, "B2"), [(2, true)]);
    assert_eq!(kept(&store, &code, "B3"), [(1, false)]);
    // A feed reaching for a removed version is told why it is gone.
    let err = store.changes(&code, 0, 100).unwrap_err();
    assert!(
        matches!(&err, StoreError::Removed { key, version: 1, .. } if key == "B1"),
        "{err}"
    );
    assert!(
        err.to_string().contains("removed by the history retention"),
        "{err}"
    );
    // Later, in steps of one: nothing but the current versions and the deletion stays.
    store
        .put_records(&code, vec![building("B3", "v2")])
        .unwrap();
    let mut steps = 0;
    let mut from = String::new();
    loop {
        let step = store.compact_history(&code, i64::MAX, &from, 1).unwrap();
        assert!(step.removed <= 1);
        steps += 1;
        match step.next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert!(steps >= 2, "{steps} steps");
    assert_eq!(kept(&store, &code, "B1"), [(3, false)]);
    assert_eq!(kept(&store, &code, "B2"), [(2, true)]);
    assert_eq!(kept(&store, &code, "B3"), [(2, false)]);
    assert_eq!(
        store
            .compact_history(&code, i64::MAX, "", 100)
            .unwrap()
            .removed,
        0
    );
    // A deleted key written again goes on from its deletion's version.
    store
        .put_records(&code, vec![building("B2", "back")])
        .unwrap();
    assert_eq!(kept(&store, &code, "B2"), [(2, true), (3, false)]);
    assert_eq!(store.record_count(&code).unwrap(), 3);
}
