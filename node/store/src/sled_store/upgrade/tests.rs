use super::*;
use crate::Store;
use crate::sled_store::SledStore;
use crate::sled_store::tests::{building, buildings};

/// The catalog's time index: (write time, first position written at it).
fn index(records: &sled::Tree, code: &str) -> Vec<(Vec<u8>, u64)> {
    records
        .range(catalog_prefix(WRITE_TIME, code)..catalog_end(WRITE_TIME, code))
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), be_u64(&v).unwrap())
        })
        .collect()
}

/// A store with a catalog written in several writes (updates and a deletion among them), and
/// its time index as the writes made it.
fn written(path: &std::path::Path) -> (String, Vec<(Vec<u8>, u64)>) {
    let store = SledStore::open(path).unwrap();
    let code = buildings(&store);
    for round in 0..4 {
        let rows = (0..3)
            .map(|i| building(&format!("B{i}"), &format!("round {round}")))
            .collect();
        store.put_records(&code, rows).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    store
        .write(
            &code,
            crate::Write {
                deletes: vec!["B1".into()],
                ..crate::Write::default()
            },
        )
        .unwrap();
    let index = index(&store.records, &code);
    assert_eq!(index.len(), 5, "one entry per write");
    (code, index)
}

/// Makes the store at `path` look as format 1 left it, its index kept from `kept` on: apply
/// `more` to `meta` as well.
fn as_format_1(
    path: &std::path::Path,
    code: &str,
    kept: &[(Vec<u8>, u64)],
    more: &[(&str, Vec<u8>)],
) {
    let db = sled::open(path).unwrap();
    let records = db.open_tree("records").unwrap();
    for (k, _) in index(&records, code) {
        records.remove(k).unwrap();
    }
    records.remove(catalog_prefix(LATEST_TIME, code)).unwrap();
    for (k, v) in kept {
        records.insert(k, &v.to_be_bytes()).unwrap();
    }
    let meta = db.open_tree("meta").unwrap();
    meta.insert(FORMAT_KEY, &1u32.to_be_bytes()).unwrap();
    for (k, v) in more {
        meta.insert(k, v.clone()).unwrap();
    }
    db.flush().unwrap();
}

fn format_of(store: &SledStore) -> u32 {
    let meta = store.engine.db().open_tree("meta").unwrap();
    u32::from_be_bytes(
        meta.get(FORMAT_KEY)
            .unwrap()
            .unwrap()
            .as_ref()
            .try_into()
            .unwrap(),
    )
}

#[test]
fn a_format_1_store_gets_its_whole_change_log_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, full) = written(dir.path());
    // Written before the index existed, then indexed from the last two writes on.
    as_format_1(dir.path(), &code, &full[3..], &[]);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(index(&store.records, &code), full);
    assert_eq!(format_of(&store), 2);
    let [upgraded] = store.upgrades() else {
        panic!("one catalog upgraded: {:?}", store.upgrades());
    };
    assert_eq!((upgraded.from, upgraded.to, upgraded.entries), (1, 2, 5));
    assert_eq!(upgraded.catalog, code);
    let latest = store.latest_time(&code).unwrap().unwrap();
    assert_eq!(time_key(&code, latest), full[4].0);
    drop(store);
    let again = SledStore::open(dir.path()).unwrap();
    assert!(again.upgrades().is_empty(), "{:?}", again.upgrades());
    assert_eq!(index(&again.records, &code), full);
}

#[test]
fn an_upgrade_stopped_part_way_resumes_from_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (code, full) = written(dir.path());
    // Killed after indexing positions 1 to 6 (the first two writes, three versions each).
    let latest = i64::from_be_bytes(full[1].0[full[1].0.len() - 8..].try_into().unwrap());
    let progress = Progress {
        catalog: code.clone(),
        next: 7,
        latest: Some(latest),
    };
    as_format_1(
        dir.path(),
        &code,
        &full[..2],
        &[(PROGRESS_KEY, progress.encode())],
    );
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(index(&store.records, &code), full);
    assert_eq!(store.upgrades()[0].entries, 3, "only what was left");
    assert!(
        store
            .engine
            .db()
            .open_tree("meta")
            .unwrap()
            .get(PROGRESS_KEY)
            .unwrap()
            .is_none()
    );
    assert_eq!(format_of(&store), 2);
}

#[test]
fn a_newer_or_unknown_format_is_refused_saying_what_to_do() {
    for (format, expect) in [(3u32, "newer than this build's format 2"), (0, "unknown")] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(FORMAT_KEY, &format.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains(expect), "{err}");
    }
}
