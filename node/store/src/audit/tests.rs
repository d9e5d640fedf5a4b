use super::*;
use crate::SledStore;

fn entry(n: u64) -> AuditEntry {
    AuditEntry {
        at_micros: n as i64,
        side: Some(Side::Producer),
        kind: "query".into(),
        catalog: "101001001/000001".into(),
        principal: format!("p{n}@420502"),
        outcome: Some(Outcome::Served),
        records: n,
        items: [("mask:6:4".to_string(), vec!["id_number".to_string()])].into(),
        keys: vec![format!("k{n}")],
        ..Default::default()
    }
}

/// A log of five entries, and the store it lives in.
async fn five() -> (tempfile::TempDir, SledStore, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let log = AuditLog::open(store.keyspace("audit").unwrap()).unwrap();
    for n in 1..=5 {
        assert_eq!(log.append(entry(n)).await.unwrap(), n);
    }
    (dir, store, log)
}

fn stored(log: &AuditLog, n: u64) -> Vec<u8> {
    log.space().get(&n.to_be_bytes()).unwrap().unwrap()
}

fn put(log: &AuditLog, n: u64, value: Option<Vec<u8>>) {
    log.space()
        .apply([(n.to_be_bytes().to_vec(), value)])
        .unwrap();
}

#[tokio::test]
async fn an_intact_chain_verifies_against_its_anchor_and_survives_reopening() {
    let (_dir, store, log) = five().await;
    let (sequence, head) = log.head();
    assert_eq!(sequence, 5);
    assert_eq!(log.verify(Some((3, &hash_of(&log, 3)))).unwrap(), Ok(5));
    assert_eq!(log.verify(Some((5, &head))).unwrap(), Ok(5));
    drop(log);
    let log = AuditLog::open(store.keyspace("audit").unwrap()).unwrap();
    assert_eq!(log.head(), (5, head));
    assert_eq!(log.append(entry(6)).await.unwrap(), 6);
    assert_eq!(log.verify(None).unwrap(), Ok(6));
}

fn hash_of(log: &AuditLog, n: u64) -> String {
    blake3::hash(&stored(log, n)).to_hex().to_string()
}

#[tokio::test]
async fn a_changed_entry_is_named() {
    let (_dir, _store, log) = five().await;
    let mut e: AuditEntry = serde_json::from_slice(&stored(&log, 3)).unwrap();
    e.principal = "someone-else@420502".into();
    put(&log, 3, Some(serde_json::to_vec(&e).unwrap()));
    let broken = log.verify(None).unwrap().unwrap_err();
    assert_eq!(broken.sequence, 3, "{broken}");
    assert!(broken.problem.contains("altered"), "{broken}");
}

#[tokio::test]
async fn a_changed_last_entry_is_found_by_the_anchor() {
    let (_dir, _store, log) = five().await;
    let (_, head) = log.head();
    let mut e: AuditEntry = serde_json::from_slice(&stored(&log, 5)).unwrap();
    e.records = 0;
    put(&log, 5, Some(serde_json::to_vec(&e).unwrap()));
    assert_eq!(
        log.verify(None).unwrap(),
        Ok(5),
        "nothing after it records its hash"
    );
    let broken = log.verify(Some((5, &head))).unwrap().unwrap_err();
    assert_eq!(broken.sequence, 5, "{broken}");
}

#[tokio::test]
async fn a_removed_entry_is_named() {
    let (_dir, _store, log) = five().await;
    put(&log, 2, None);
    let broken = log.verify(None).unwrap().unwrap_err();
    assert_eq!(
        (broken.sequence, broken.problem.contains("missing")),
        (2, true),
        "{broken}"
    );

    let (_dir, _store, log) = five().await;
    let (_, head) = log.head();
    put(&log, 5, None);
    let broken = log.verify(Some((5, &head))).unwrap().unwrap_err();
    assert_eq!(
        broken.sequence, 5,
        "a removed tail is missing against the anchor: {broken}"
    );
}

#[tokio::test]
async fn reordered_entries_are_named() {
    let (_dir, _store, log) = five().await;
    let (two, three) = (stored(&log, 2), stored(&log, 3));
    put(&log, 2, Some(three));
    put(&log, 3, Some(two));
    let broken = log.verify(None).unwrap().unwrap_err();
    assert_eq!(broken.sequence, 2, "{broken}");
    assert!(broken.problem.contains("reordered"), "{broken}");
}

#[tokio::test]
async fn queries_filter_by_principal_item_key_and_time() {
    let (_dir, _store, log) = five().await;
    let all = log.query(&AuditFilter::default(), 100).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        log.query(&AuditFilter::default(), 2).unwrap()[0].sequence,
        4
    );
    let filter = AuditFilter {
        principal: Some("p2@420502".into()),
        item: Some("id_number".into()),
        ..Default::default()
    };
    assert_eq!(log.query(&filter, 100).unwrap()[0].sequence, 2);
    let by_key = AuditFilter {
        key: Some("k4".into()),
        since_micros: Some(3),
        ..Default::default()
    };
    assert_eq!(log.query(&by_key, 100).unwrap().len(), 1);
    let withheld = AuditFilter {
        item: Some("religion".into()),
        ..Default::default()
    };
    assert!(log.query(&withheld, 100).unwrap().is_empty());
}
