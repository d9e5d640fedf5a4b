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

/// The store's files as they are now, copied to another directory and opened there: what a
/// node stopped at this instant (its process killed) would find.
fn as_on_disk(from: &std::path::Path) -> (tempfile::TempDir, AuditLog) {
    let copy = tempfile::tempdir().unwrap();
    let mut dirs = vec![from.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let to = copy.path().join(path.strip_prefix(from).unwrap());
            if path.is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                dirs.push(path);
            } else {
                std::fs::copy(&path, &to).unwrap();
            }
        }
    }
    let store = SledStore::open(copy.path()).unwrap();
    let log = AuditLog::open(store.keyspace("audit").unwrap()).unwrap();
    (copy, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_on_disk_when_they_return_and_chain_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let log = std::sync::Arc::new(AuditLog::open(store.keyspace("audit").unwrap()).unwrap());

    // An entry written but not flushed is not in the files yet: what the copy shows is the disk.
    log.append_unflushed(entry(1)).unwrap();
    let (_copy, unflushed) = as_on_disk(dir.path());
    assert_eq!(
        unflushed.head().0,
        0,
        "sled keeps unflushed writes in memory"
    );
    drop(unflushed);

    let mut appends = tokio::task::JoinSet::new();
    for n in 2..=65 {
        let log = log.clone();
        appends.spawn(async move { log.append(entry(n)).await.unwrap() });
    }
    let mut sequences = Vec::new();
    while let Some(sequence) = appends.join_next().await {
        sequences.push(sequence.unwrap());
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (2..=65).collect::<Vec<_>>());

    let (_copy, on_disk) = as_on_disk(dir.path());
    let (sequence, head) = log.head();
    assert_eq!(on_disk.head(), (65, head.clone()));
    assert_eq!(on_disk.verify(Some((sequence, &head))).unwrap(), Ok(65));
    assert_eq!(log.verify(Some((sequence, &head))).unwrap(), Ok(65));
}

#[test]
fn a_blocking_append_is_on_disk_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let log = AuditLog::open(store.keyspace("audit").unwrap()).unwrap();
    let appended: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (1..=8)
            .map(|n| {
                let log = &log;
                s.spawn(move || log.append_blocking(entry(n)).unwrap())
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(appended.len(), 8);
    let (_copy, on_disk) = as_on_disk(dir.path());
    assert_eq!(on_disk.verify(None).unwrap(), Ok(8));
    assert_eq!(on_disk.head(), log.head());
}

#[test]
fn a_failed_flush_fails_every_caller_waiting_for_it_and_the_next_flush_serves_the_rest() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};

    let (started, first_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<bool>();
    let released = std::sync::Mutex::new(released);
    let flushes = Arc::new(AtomicUsize::new(0));
    let counted = flushes.clone();
    // Each flush says it started, then fails or succeeds as the test releases it.
    let commit = commit::GroupCommit::start(Box::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let _ = started.send(());
        match released.lock().unwrap().recv().unwrap() {
            true => Ok(()),
            false => Err(crate::StoreError::Engine("disk full".into())),
        }
    }))
    .unwrap();

    let first = commit.register();
    first_started.recv().unwrap();
    // Registered while the first flush runs: these wait for the next one, all together.
    let group: Vec<_> = (0..5).map(|_| commit.register()).collect();
    release.send(true).unwrap();
    assert!(first.blocking_recv().unwrap().is_ok());
    first_started.recv().unwrap();
    release.send(false).unwrap();
    for waiter in group {
        let failed = waiter.blocking_recv().unwrap().unwrap_err();
        assert!(failed.to_string().contains("disk full"), "{failed}");
    }
    assert_eq!(flushes.load(Ordering::SeqCst), 2, "five callers, one flush");

    // The committer goes on after a failure.
    let later = commit.register();
    first_started.recv().unwrap();
    release.send(true).unwrap();
    assert!(later.blocking_recv().unwrap().is_ok());
}
