use super::*;
use crate::identity::{
    CaFiles, EncryptionKey, NodeCredentials, Tier, Unit, generate_ca, issue_node_certificates,
};

fn node_key(ca: &CaFiles, code: &str) -> NodeKey {
    let unit = Unit {
        code: code.parse().unwrap(),
        tier: Tier::Street,
        parent: Some("420502".parse().unwrap()),
        name: code.into(),
    };
    let keys = NodeCredentials::generate().unwrap();
    let certs = issue_node_certificates(ca, &unit, &[], &keys).unwrap();
    NodeKey::load(
        &keys.signing_key_pem,
        &certs.signing_pem,
        &TrustedCa::from_pem(&ca.cert_pem).unwrap(),
    )
    .unwrap()
}

const PARTS: [(&str, &[u8]); 2] = [
    ("store", b"the store's dump"),
    ("files/node.toml", b"[node]\n"),
];

/// A plain archive of [`PARTS`] signed by `key`.
fn archive(key: &NodeKey) -> Vec<u8> {
    let parts = PARTS
        .iter()
        .map(|(name, bytes)| Part {
            name: (*name).into(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        })
        .collect();
    let manifest = Manifest {
        archive_format: ARCHIVE_FORMAT,
        node: key.code().clone(),
        tierlink: "test".into(),
        store_format: 2,
        taken_at: "2026-12-01T00:00:00Z".into(),
        writes_waited_micros: 5,
        with_keys: false,
        parts,
    };
    let mut out = Vec::new();
    write_archive(&mut out, &manifest, key, &mut |part, out| {
        let bytes = PARTS.iter().find(|(n, _)| *n == part.name).unwrap().1;
        out.write_all(bytes)?;
        Ok(bytes.len() as u64)
    })
    .unwrap();
    out
}

fn sealed(plain: &[u8], to: &RecipientKey) -> Vec<u8> {
    let mut writer = SealingWriter::new(Vec::new(), to).unwrap();
    writer.write_all(plain).unwrap();
    writer.finish().unwrap()
}

/// Opens and reads through `bytes`: the parts' contents, or the refusal.
fn read(
    bytes: Vec<u8>,
    keys: Option<&EncryptionKeys>,
    ca: &CaFiles,
) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let ca = TrustedCa::from_pem(&ca.cert_pem).unwrap();
    let archive = Archive::open(Box::new(std::io::Cursor::new(bytes)), keys, &ca)?;
    let mut parts = Vec::new();
    archive.read_parts(|part, input| {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        parts.push((part.name.clone(), bytes));
        Ok::<_, BackupError>(())
    })?;
    Ok(parts)
}

#[test]
fn a_plain_archive_verifies_with_the_ca_alone_and_gives_back_its_parts() {
    let ca = generate_ca("test").unwrap();
    let key = node_key(&ca, "420502001");
    let parts = read(archive(&key), None, &ca).unwrap();
    let expected: Vec<(String, Vec<u8>)> = PARTS
        .iter()
        .map(|(n, b)| ((*n).into(), b.to_vec()))
        .collect();
    assert_eq!(parts, expected);
}

#[test]
fn any_byte_flipped_in_a_plain_archive_is_refused() {
    let ca = generate_ca("test").unwrap();
    let plain = archive(&node_key(&ca, "420502001"));
    for at in (0..plain.len()).step_by(7) {
        let mut bad = plain.clone();
        bad[at] ^= 0x20;
        assert!(
            read(bad, None, &ca).is_err(),
            "byte {at} flipped was accepted"
        );
    }
    let mut bad = plain.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(read(bad, None, &ca), Err(BackupError::Part(p)) if p == "files/node.toml"));
    let mut longer = plain.clone();
    longer.push(0);
    assert!(matches!(
        read(longer, None, &ca),
        Err(BackupError::Trailing)
    ));
    let short = plain[..plain.len() - 1].to_vec();
    assert!(matches!(
        read(short, None, &ca),
        Err(BackupError::CutShort(_))
    ));
}

#[test]
fn an_archive_signed_under_another_ca_is_refused() {
    let ca = generate_ca("test").unwrap();
    let elsewhere = generate_ca("elsewhere").unwrap();
    let err = read(archive(&node_key(&elsewhere, "420502001")), None, &ca).unwrap_err();
    assert!(matches!(err, BackupError::Signer(_)), "{err}");
}

#[test]
fn a_sealed_archive_opens_only_with_its_key_and_refuses_any_change() {
    let ca = generate_ca("test").unwrap();
    let plain = archive(&node_key(&ca, "420502001"));
    let keys = EncryptionKeys::generate().unwrap();
    let other = EncryptionKeys::generate().unwrap();
    let bytes = sealed(&plain, keys.current().public());
    assert_eq!(read(bytes.clone(), Some(&keys), &ca).unwrap().len(), 2);
    // A retired key in the file opens it too.
    let rotated = keys.clone().rotated(EncryptionKey::generate().unwrap());
    assert!(read(bytes.clone(), Some(&rotated), &ca).is_ok());
    let to = keys.current().public().to_hex();
    assert!(matches!(read(bytes.clone(), None, &ca), Err(BackupError::Sealed(k)) if k == to));
    assert!(
        matches!(read(bytes.clone(), Some(&other), &ca), Err(BackupError::WrongKey(k)) if k == to)
    );
    let mut bad = bytes.clone();
    bad[100] ^= 1;
    assert!(matches!(
        read(bad, Some(&keys), &ca),
        Err(BackupError::Altered(0))
    ));
    let short = bytes[..bytes.len() - 1].to_vec();
    assert!(read(short, Some(&keys), &ca).is_err());
}

#[test]
fn a_sealed_stream_of_several_chunks_opens_whole_and_not_without_its_last() {
    let keys = EncryptionKeys::generate().unwrap();
    let plain: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| i as u8).collect();
    let bytes = sealed(&plain, keys.current().public());
    let open = |bytes: &[u8]| {
        let mut reader = open_sealed(
            Box::new(std::io::Cursor::new(bytes[16..].to_vec())),
            Some(&keys),
        )?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok::<_, BackupError>(out)
    };
    assert_eq!(open(&bytes).unwrap(), plain);
    // Cut at a chunk's end: every chunk left opens, but none was the last.
    let last_chunk = 4 + 10 + 16;
    let err = open(&bytes[..bytes.len() - last_chunk]).unwrap_err();
    assert!(matches!(err, BackupError::CutShort(_)), "{err}");
}
