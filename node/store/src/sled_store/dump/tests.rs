use super::*;
use crate::Store;
use crate::sled_store::tests::{building, buildings};

#[test]
fn a_store_made_from_a_dump_holds_every_tree_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("a")).unwrap();
    let code = buildings(&store);
    store
        .put_records(&code, vec![building("B1", "one")])
        .unwrap();
    store
        .put_records(&code, vec![building("B1", "two")])
        .unwrap();
    let audit = store.keyspace("audit").unwrap();
    audit
        .apply([(b"e1".to_vec(), Some(b"entry".to_vec()))])
        .unwrap();
    let mut dump = Vec::new();
    let dumped = store.dump(&mut dump).unwrap();
    assert_eq!(dumped.bytes, dump.len() as u64);
    let epoch = store.change_log(&code).unwrap().epoch;
    drop(store);

    let copy = dir.path().join("b");
    let loaded = SledStore::load(&copy, &mut dump.as_slice()).unwrap();
    assert_eq!(
        (loaded.trees, loaded.entries),
        (dumped.trees, dumped.entries)
    );
    let store = SledStore::open(&copy).unwrap();
    assert!(store.upgrades().is_empty());
    assert_eq!(
        store.change_log(&code).unwrap().epoch,
        epoch,
        "the epoch travels"
    );
    let history: Vec<u64> = store
        .history(&code, "B1")
        .unwrap()
        .iter()
        .map(|r| r.decode().unwrap().version)
        .collect();
    assert_eq!(history, [1, 2]);
    assert_eq!(
        store
            .keyspace("audit")
            .unwrap()
            .get(b"e1")
            .unwrap()
            .as_deref(),
        Some(&b"entry"[..])
    );
}

#[test]
fn a_dump_cut_short_or_with_a_bad_tag_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("a")).unwrap();
    buildings(&store);
    let mut dump = Vec::new();
    store.dump(&mut dump).unwrap();
    let short = &dump[..dump.len() - 1];
    let err = SledStore::read_dump(&mut &short[..], |_, _, _| Ok(())).unwrap_err();
    assert!(matches!(err, StoreError::Dump(_)), "{err}");
    let mut bad = dump.clone();
    bad[0] = 7;
    let err = SledStore::read_dump(&mut bad.as_slice(), |_, _, _| Ok(())).unwrap_err();
    assert!(err.to_string().contains("tag 7"), "{err}");
}

#[test]
fn writes_wait_while_a_dump_runs_and_none_is_half_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(&dir.path().join("a")).unwrap());
    let code = buildings(&store);
    let writer = {
        let store = store.clone();
        let code = code.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                store
                    .put_records(&code, vec![building(&format!("B{i}"), "x")])
                    .unwrap();
            }
        })
    };
    let mut dump = Vec::new();
    store.dump(&mut dump).unwrap();
    writer.join().unwrap();
    // Whatever number of writes the dump caught, its records, counts and change log agree.
    let copy = dir.path().join("b");
    SledStore::load(&copy, &mut dump.as_slice()).unwrap();
    let copy = SledStore::open(&copy).unwrap();
    let records = copy.scan(&code, "", None).count() as u64;
    assert_eq!(copy.record_count(&code).unwrap(), records);
    assert_eq!(copy.change_log(&code).unwrap().last, records);
}
