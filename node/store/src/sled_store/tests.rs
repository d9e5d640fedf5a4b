use super::*;

#[test]
fn sled_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    crate::suite::run(|| SledStore::open(&dir.path().join("data")).unwrap());
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
