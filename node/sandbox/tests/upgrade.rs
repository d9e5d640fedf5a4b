//! A store written in format 1 by an earlier build (`fixtures/format-1-street`, made by commit
//! 9f05d16, before the time index: see its README) opens with this build: the upgrade to
//! format 2 indexes the change log of its one catalog, and every record, its history, the
//! records written since a time, and the audit chain read as they were written; opened again,
//! nothing is upgraded.

use std::path::Path;

use tierlink_store::audit::AuditLog;
use tierlink_store::{SledStore, Store};

const BUILDINGS: &str = "103001001/000001";
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/format-1-street"
);
/// Between the fixture's first write and its second (its README).
const BETWEEN: &str = "2026-12-01T17:16:05.280184717Z";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn building(key: &str) -> String {
    format!("420502001001-{key}")
}

/// Floors of each version of a building, oldest first.
fn floors(store: &SledStore, key: &str) -> Vec<(u64, String)> {
    store
        .history(BUILDINGS, &building(key))
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.decode().unwrap();
            (r.version, r.values[8].clone())
        })
        .collect()
}

/// The keys of the current records written at or after `since`.
fn written_since(store: &SledStore, since: i64) -> Vec<String> {
    store
        .scan_since(BUILDINGS, "", None, since)
        .map(|r| r.unwrap().decode().unwrap().key)
        .collect()
}

/// What the fixture holds, read through `store`.
fn check(store: &SledStore) {
    let keys: Vec<String> = store
        .scan(BUILDINGS, "", None)
        .map(|r| r.unwrap().decode().unwrap().key)
        .collect();
    let all: Vec<String> = ["B0001", "B0002", "B0003", "B0004"].map(building).to_vec();
    assert_eq!(keys, all);
    assert_eq!(store.record_count(BUILDINGS).unwrap(), 4);
    assert_eq!(
        floors(store, "B0002"),
        [(1, "7".into()), (2, "9".into()), (3, "10".into())]
    );
    assert_eq!(floors(store, "B0001"), [(1, "6".into())]);
    let between = chrono::DateTime::parse_from_rfc3339(BETWEEN)
        .unwrap()
        .timestamp_micros();
    assert_eq!(
        written_since(store, between),
        ["B0002", "B0004"].map(building)
    );
    assert_eq!(written_since(store, 0), all);
    assert!(written_since(store, chrono::Utc::now().timestamp_micros()).is_empty());
    let log = store.change_log(BUILDINGS).unwrap();
    assert_eq!((log.first, log.last), (1, 6));
    let audit = AuditLog::open(store.keyspace("audit").unwrap()).unwrap();
    assert_eq!(
        audit.verify(None).unwrap().unwrap(),
        5,
        "the audit chain holds its 5 entries"
    );
}

#[test]
fn a_format_1_store_is_upgraded_once_and_reads_as_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&Path::new(FIXTURE).join("data"), &data);

    let store = SledStore::open(&data).unwrap();
    let [upgraded] = store.upgrades() else {
        panic!("one catalog upgraded: {:?}", store.upgrades());
    };
    assert_eq!((upgraded.from, upgraded.to), (1, 2));
    assert_eq!(upgraded.catalog, BUILDINGS);
    // Three writes, each at a later time: three index entries.
    assert_eq!(upgraded.entries, 3, "{}", upgraded.what);
    check(&store);
    drop(store);

    let again = SledStore::open(&data).unwrap();
    assert!(again.upgrades().is_empty(), "{:?}", again.upgrades());
    check(&again);
}
