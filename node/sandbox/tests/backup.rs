//! Backup and restore on real nodes. The drill: the street is backed up (sealed, with its keys)
//! while a writer goes on writing; the street is stopped and its directory destroyed; restored
//! from the archive, it starts, and holds exactly the writes of a prefix of the writer's
//! sequence (every tree at one point), at least every write acknowledged before the backup was
//! asked for, each record with its whole history; its audit verifies. Then the refusals: a
//! flipped byte, a signer of another federation, another node's backup, a sealed archive
//! without its key, a running node, a directory that is not empty; each leaves the target as it
//! was.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tierlink_client::NodeClient;
use tierlink_core::identity::{
    EncryptionKeys, NodeCredentials, NodeKey, TrustedCa, generate_ca, issue_node_certificates,
};
use tierlink_core::signed::backup::{BackupError, Manifest, write_archive};
use tierlink_node::backup::restore::{RestoreError, RestoreOptions, restore};
use tierlink_proto::v1::{AuditAnchorRequest, AuditVerifyRequest, TakeBackupRequest};
use tierlink_sandbox::sample;
use util::*;

const STREET_CODE: &str = "420502001";

/// The `n`th write of the drill's writer: resident `n % 40` gets a new address, so that the
/// first 40 writes make records and the later ones their history.
fn nth_write(n: usize) -> Vec<String> {
    let address = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "current_address")
        .unwrap();
    let mut row = sample::residents(STREET_CODE, 40, 3).swap_remove(n % 40);
    row[address] = format!("write {n}");
    row
}

/// The record key of the `n`th write.
fn nth_key(n: usize) -> String {
    nth_write(n)[0].clone()
}

/// A key pair to seal backups to, the private key written to `path`; returns the public key,
/// hex.
fn sealed_key(path: &Path) -> String {
    let keys = EncryptionKeys::generate().unwrap();
    std::fs::write(path, keys.to_text()).unwrap();
    keys.current().public().to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_backed_up_under_writes_destroyed_and_restored_keeps_what_was_acknowledged() {
    let mut f = federation(0).await;
    let street = &f.clients[STREET];
    // Reads for the audit to hold entries, anchored.
    street.read(None, own_query(), |_, _| Ok(())).await.unwrap();
    let mut audit = street.audit().await.unwrap();
    audit.anchor(AuditAnchorRequest {}).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let street = NodeClient::open(f.federation.nodes[STREET].dir.clone()).unwrap();
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                street
                    .put_records(
                        RESIDENTS,
                        columns(sample::RESIDENT_COLUMNS),
                        vec![nth_write(n)],
                    )
                    .await
                    .unwrap();
                n += 1;
                acknowledged.store(n, Ordering::SeqCst);
            }
            n
        })
    };
    while acknowledged.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let key_file = f.dir.path().join("backup.key");
    let public = sealed_key(&key_file);
    let archive = f.dir.path().join("street.tlbackup");
    let before_backup = acknowledged.load(Ordering::SeqCst);
    let manifest = street
        .take_backup(
            TakeBackupRequest {
                encrypt_to: hex::decode(&public).unwrap(),
                with_keys: true,
            },
            &archive,
        )
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(manifest.with_keys);
    assert!(manifest.parts.iter().any(|p| p.name == "files/signing.key"));

    // The street is lost.
    f.federation.stop_node(STREET).await.unwrap();
    let dir = f.federation.nodes[STREET].dir.dir.clone();
    std::fs::remove_dir_all(&dir).unwrap();
    let restored = restore(
        &dir,
        &RestoreOptions {
            from: archive.clone(),
            key: Some(key_file),
            ca: Some(f.dir.path().join("ca/ca.crt")),
            ..RestoreOptions::default()
        },
    )
    .unwrap();
    assert_eq!(restored.manifest, manifest);
    assert!(!restored.kept_keys);
    // Records and the audit are in the store: its directory is the node's user's alone.
    let mode = std::fs::metadata(dir.join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    f.federation.start_node(STREET).await.unwrap();

    // Exactly the first `k` writes are there, for some k from `before_backup` on.
    let store = f.federation.nodes[STREET].store().unwrap().clone();
    let address = store
        .catalog(RESIDENTS)
        .unwrap()
        .unwrap()
        .items
        .iter()
        .position(|i| i.code == "current_address")
        .unwrap();
    let versions = |key: &str| -> Vec<(u64, String)> {
        store
            .history(RESIDENTS, key)
            .unwrap()
            .iter()
            .map(|r| {
                let r = r.decode().unwrap();
                (r.version, r.values[address].clone())
            })
            .collect()
    };
    let kept: usize = (0..40).map(|i| versions(&nth_key(i)).len()).sum();
    assert!(
        (before_backup..=written).contains(&kept),
        "{kept} writes restored; {before_backup} acknowledged before the backup, {written} in all"
    );
    for n in 0..kept {
        let key = nth_key(n);
        let history = versions(&key);
        let version = (n / 40) as u64 + 1;
        assert_eq!(
            history.get(version as usize - 1),
            Some(&(version, format!("write {n}"))),
            "write {n} of {kept}"
        );
    }
    assert_eq!(store.record_count(RESIDENTS).unwrap(), kept.min(40) as u64);

    let verdict = street
        .audit()
        .await
        .unwrap()
        .verify(AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.intact, "{}", verdict.problem);
    assert!(
        verdict.entries > 0 && verdict.anchored_sequence > 0,
        "{verdict:?}"
    );
    f.federation.stop().await.unwrap();
}

/// A restore of `from` into `dir`, with the federation's CA.
fn restore_into(
    f: &Fixture,
    dir: &Path,
    from: &Path,
    change: impl FnOnce(&mut RestoreOptions),
) -> Result<(), RestoreError> {
    let mut options = RestoreOptions {
        from: from.to_owned(),
        ca: Some(f.dir.path().join("ca/ca.crt")),
        ..RestoreOptions::default()
    };
    change(&mut options);
    restore(dir, &options).map(|_| ())
}

/// A plain backup of the street, written to `out` (its owner's alone: records are in it in
/// clear); its manifest.
async fn plain_backup(f: &Fixture, out: &Path) -> Manifest {
    let manifest = f.clients[STREET]
        .take_backup(TakeBackupRequest::default(), out)
        .await
        .unwrap();
    let mode = std::fs::metadata(out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", out.display());
    manifest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_refuses_what_does_not_verify_or_does_not_fit_and_leaves_the_target() {
    let f = federation(20).await;
    let root = f.dir.path();
    let plain = root.join("plain.tlbackup");
    let manifest = plain_backup(&f, &plain).await;
    assert!(!manifest.with_keys);
    assert!(
        !manifest.parts.iter().any(|p| p.name.ends_with(".key")),
        "{manifest:?}"
    );

    // Keys only encrypted: the node refuses them in a plain archive.
    let err = f.clients[STREET]
        .take_backup(
            TakeBackupRequest {
                with_keys: true,
                ..Default::default()
            },
            &root.join("keys.tlbackup"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be encrypted"), "{err}");
    assert!(!root.join("keys.tlbackup").exists());

    let empty = root.join("empty");
    // A plain backup restores into an empty directory only with the node's keys there.
    let err = restore_into(&f, &empty, &plain, |_| {}).unwrap_err();
    assert!(matches!(err, RestoreError::NoKeys { .. }), "{err}");
    assert!(!empty.exists(), "nothing made");

    // One byte flipped, anywhere in the parts (the store's dump among them, whose framing it
    // may break before its digest is checked): refused naming the part.
    let bytes = std::fs::read(&plain).unwrap();
    let header = bytes.len() - manifest.parts.iter().map(|p| p.bytes).sum::<u64>() as usize;
    for at in [header + 1, header + 50, bytes.len() / 2, bytes.len() - 100] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 1;
        let bad = root.join(format!("flipped-{at}.tlbackup"));
        std::fs::write(&bad, &flipped).unwrap();
        let err = restore_into(&f, &empty, &bad, |_| {}).unwrap_err();
        assert!(
            matches!(
                &err,
                RestoreError::Archive {
                    source: BackupError::Part(_),
                    from,
                } if *from == bad
            ),
            "{at}: {err}"
        );
        assert!(err.to_string().contains("was altered"), "{err}");
        assert!(!empty.exists(), "nothing made");
    }

    // Cut short anywhere, in the store's dump or after it: refused as cut short, naming the file.
    for keep in [header + 1000, bytes.len() / 2, bytes.len() - 1] {
        let cut = root.join(format!("cut-{keep}.tlbackup"));
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let err = restore_into(&f, &empty, &cut, |_| {}).unwrap_err();
        assert!(
            matches!(
                &err,
                RestoreError::Archive { source: BackupError::CutShort(_), from } if *from == cut
            ),
            "{keep}: {err}"
        );
        assert!(err.to_string().contains("copy it again"), "{err}");
        assert!(!empty.exists(), "nothing made");
    }

    // Signed by a node of another federation's CA.
    let elsewhere = generate_ca("elsewhere").unwrap();
    let keys = NodeCredentials::generate().unwrap();
    let unit = f.federation.nodes[STREET].dir.config.node.clone();
    let certs = issue_node_certificates(&elsewhere, &unit, &[], &keys).unwrap();
    let impostor = NodeKey::load(
        &keys.signing_key_pem,
        &certs.signing_pem,
        &TrustedCa::from_pem(&elsewhere.cert_pem).unwrap(),
    )
    .unwrap();
    let forged = root.join("forged.tlbackup");
    let mut out = std::fs::File::create(&forged).unwrap();
    let mut rest = &bytes[header..];
    write_archive(&mut out, &manifest, &impostor, &mut |part, out| {
        let (this, after) = rest.split_at(part.bytes as usize);
        out.write_all(this)?;
        rest = after;
        Ok(part.bytes)
    })
    .unwrap();
    drop(out);
    let err = restore_into(&f, &empty, &forged, |_| {}).unwrap_err();
    assert!(
        matches!(
            &err,
            RestoreError::Archive {
                source: BackupError::Signer(_),
                ..
            }
        ),
        "{err}"
    );

    // Another node's directory: the district's node.toml in a stopped copy.
    let district = root.join("district-copy");
    std::fs::create_dir(&district).unwrap();
    let district_dir = &f.federation.nodes[DISTRICT].dir;
    std::fs::copy(district_dir.config_path(), district.join("node.toml")).unwrap();
    let err = restore_into(&f, &district, &plain, |o| o.replace = true).unwrap_err();
    assert!(matches!(err, RestoreError::AnotherNode { .. }), "{err}");
    assert!(err.to_string().contains("--other-node"), "{err}");

    // Sealed, and no key given; then the wrong key.
    let key_file = root.join("backup.key");
    let public = sealed_key(&key_file);
    let sealed = root.join("sealed.tlbackup");
    f.clients[STREET]
        .take_backup(
            TakeBackupRequest {
                encrypt_to: hex::decode(&public).unwrap(),
                with_keys: true,
            },
            &sealed,
        )
        .await
        .unwrap();
    let err = restore_into(&f, &empty, &sealed, |_| {}).unwrap_err();
    assert!(
        err.to_string().contains(&public) && err.to_string().contains("--key"),
        "{err}"
    );
    let other_key = root.join("other.key");
    sealed_key(&other_key);
    let err = restore_into(&f, &empty, &sealed, |o| o.key = Some(other_key)).unwrap_err();
    assert!(
        matches!(&err, RestoreError::Archive { source: BackupError::WrongKey(k), .. } if *k == public),
        "{err}"
    );

    let mut altered = std::fs::read(&sealed).unwrap();
    let at = altered.len() / 2;
    altered[at] ^= 1;
    let bad = root.join("altered.tlbackup");
    std::fs::write(&bad, altered).unwrap();
    let err = restore_into(&f, &empty, &bad, |o| o.key = Some(key_file.clone())).unwrap_err();
    assert!(
        matches!(
            &err,
            RestoreError::Archive {
                source: BackupError::Altered(_),
                ..
            }
        ),
        "{err}"
    );

    // The running street itself, and a directory that is not empty.
    let street_dir = f.federation.nodes[STREET].dir.dir.clone();
    let err = restore_into(&f, &street_dir, &sealed, |o| {
        o.key = Some(key_file.clone());
        o.replace = true;
    })
    .unwrap_err();
    assert!(matches!(err, RestoreError::Running(..)), "{err}");
    let occupied = root.join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "kept").unwrap();
    let err = restore_into(&f, &occupied, &sealed, |o| o.key = Some(key_file.clone())).unwrap_err();
    assert!(matches!(err, RestoreError::NotEmpty(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(occupied.join("notes.txt")).unwrap(),
        "kept"
    );

    // With everything right, the sealed backup with keys restores into an empty directory.
    restore_into(&f, &empty, &sealed, |o| o.key = Some(key_file.clone())).unwrap();
    assert!(empty.join("node.toml").is_file() && empty.join("signing.key").is_file());
    assert!(!root.join(".empty.restoring").exists());

    // A plain backup over that node keeps every secret it holds, the federation's hash key
    // among them: without it every read whose grant hashes an item would fail.
    let hash_key = std::fs::read(empty.join("federation.key")).unwrap();
    restore_into(&f, &empty, &plain, |o| o.replace = true).unwrap();
    for key in ["tls.key", "signing.key", "encryption.key"] {
        assert!(empty.join(key).is_file(), "{key}");
    }
    assert_eq!(
        std::fs::read(empty.join("federation.key")).unwrap(),
        hash_key
    );

    // Through a symlink: the directory it points to is restored, the link left a link.
    let link = root.join("link");
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    restore_into(&f, &link, &plain, |o| o.replace = true).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(empty.join("node.toml").is_file());

    // Kept keys that are not the backup's certificates' own: refused, the target untouched.
    let own = std::fs::read(empty.join("signing.key")).unwrap();
    let district_key =
        std::fs::read(district_dir.path(&district_dir.config.files.signing_key)).unwrap();
    std::fs::write(empty.join("signing.key"), &district_key).unwrap();
    let err = restore_into(&f, &empty, &plain, |o| o.replace = true).unwrap_err();
    assert!(matches!(err, RestoreError::KeysDoNotMatch { .. }), "{err}");
    assert_eq!(
        std::fs::read(empty.join("signing.key")).unwrap(),
        district_key
    );
    std::fs::write(empty.join("signing.key"), &own).unwrap();

    // The node's own backup naming a key outside the node directory: the key stays where it
    // is, untouched (a copy onto itself would empty it).
    let outside = root.join("keys-elsewhere/tls.key");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::copy(empty.join("tls.key"), &outside).unwrap();
    let tls_key = std::fs::read(&outside).unwrap();
    let street_key = f.federation.nodes[STREET].dir.signing_key().unwrap();
    let resigned = |name: &str, from: &str, to: &str| {
        let path = root.join(name);
        let mut parts = Vec::new();
        let mut rest = &bytes[header..];
        for part in &manifest.parts {
            let (this, after) = rest.split_at(part.bytes as usize);
            rest = after;
            let mut this = this.to_vec();
            if part.name == "files/node.toml" {
                let text = String::from_utf8(this).unwrap();
                assert!(text.contains(from), "{text}");
                this = text.replace(from, to).into_bytes();
            }
            parts.push(this);
        }
        let mut edited = manifest.clone();
        for (part, this) in edited.parts.iter_mut().zip(&parts) {
            part.bytes = this.len() as u64;
            part.sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(this));
        }
        let mut out = std::fs::File::create(&path).unwrap();
        let mut each = parts.iter();
        write_archive(&mut out, &edited, &street_key, &mut |_, out| {
            let this = each.next().unwrap();
            out.write_all(this)?;
            Ok(this.len() as u64)
        })
        .unwrap();
        path
    };
    let absolute = format!("tls_key = \"{}\"", outside.display());
    let archive = resigned("outside-key.tlbackup", "tls_key = \"tls.key\"", &absolute);
    restore_into(&f, &empty, &archive, |o| o.replace = true).unwrap();
    assert_eq!(std::fs::read(&outside).unwrap(), tls_key);
    // Its store outside the node directory: refused, nothing written there.
    let elsewhere = root.join("store-elsewhere");
    let data = format!("data = \"{}\"", elsewhere.display());
    let archive = resigned("outside-store.tlbackup", "data = \"data\"", &data);
    let err = restore_into(&f, &empty, &archive, |o| o.replace = true).unwrap_err();
    assert!(matches!(err, RestoreError::StoreOutside(_)), "{err}");
    assert!(!elsewhere.exists());
}
