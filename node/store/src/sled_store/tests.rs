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
fn another_format_is_refused() {
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
