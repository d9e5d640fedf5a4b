use super::*;
use crate::identity::{
    CaFiles, EncryptionKey, NodeCredentials, Tier, Unit, generate_ca, issue_node_certificates,
};

fn signer(ca: &CaFiles, code: &str) -> BatchSigner {
    let unit = Unit {
        code: code.parse().unwrap(),
        tier: Tier::District,
        parent: Some("420500".parse().unwrap()),
        name: code.into(),
    };
    let keys = NodeCredentials::generate().unwrap();
    let certs = issue_node_certificates(ca, &unit, &[], &keys).unwrap();
    BatchSigner::new(
        &keys.signing_key_pem,
        &certs.signing_pem,
        &TrustedCa::from_pem(&ca.cert_pem).unwrap(),
    )
    .unwrap()
}

fn records(n: usize) -> Vec<u8> {
    let records = (0..n)
        .map(|i| Record {
            key: format!("K{i}"),
            version: 1,
            updated_at_micros: 7,
            values: vec![format!("v{i}")],
            deleted: false,
        })
        .collect();
    RecordList { records }.encode_to_vec()
}

fn header(sequence: u32, last: bool, count: u64) -> BatchHeader {
    BatchHeader {
        consumer: "420500".into(),
        catalog: "103001001/000001".into(),
        kind: "query".into(),
        request_id: "r1".into(),
        sequence,
        last,
        record_count: count,
        columns: vec!["building_code".into()],
        ..Default::default()
    }
}

/// The node that asked (the city), with its keys.
fn city() -> (Recipient, BatchOpener) {
    let keys = EncryptionKeys::generate().unwrap();
    let recipient = Recipient {
        node: "420500".parse().unwrap(),
        key: keys.current().public().clone(),
    };
    (recipient, BatchOpener::new("420500".parse().unwrap(), keys))
}

struct Fixture {
    ca: CaFiles,
    verifier: BatchVerifier,
    street: BatchSigner,
    city: Recipient,
    opener: BatchOpener,
    batch: SignedBatch,
}

impl Fixture {
    fn seal(&self, header: BatchHeader, records: Vec<u8>) -> SignedBatch {
        self.street.seal(header, records, &self.city)
    }
}

fn fixture() -> Fixture {
    let ca = generate_ca("test").unwrap();
    let street = signer(&ca, "420502");
    let (city, opener) = city();
    let batch = street.seal(header(0, true, 3), records(3), &city);
    let verifier = BatchVerifier::new(TrustedCa::from_pem(&ca.cert_pem).unwrap());
    Fixture {
        ca,
        verifier,
        street,
        city,
        opener,
        batch,
    }
}

#[test]
fn a_sealed_batch_verifies_with_the_ca_alone_and_opens_with_the_askers_key() {
    let f = fixture();
    let header = f.verifier.verify(&f.batch).unwrap();
    assert_eq!(header.producer, "420502");
    assert_eq!(header.sealed_to, "420500");
    assert_eq!(header.recipient_key, f.city.key.as_bytes());
    let opened = f.opener.open(&f.verifier, &f.batch).unwrap();
    assert_eq!(opened.records.len(), 3);
    assert_eq!(opened.records[2].values, ["v2"]);
}

#[test]
fn the_records_travel_encrypted() {
    let f = fixture();
    let plain = records(3);
    // The ciphertext is the records' length plus the tag, and none of the values shows.
    // The AES-GCM tag follows the ciphertext.
    assert_eq!(
        f.batch.records.len(),
        plain.len() + ring::aead::AES_256_GCM.tag_len()
    );
    assert_ne!(&f.batch.records[..plain.len()], plain.as_slice());
    for value in ["v0", "v1", "v2", "K0", "K2"] {
        assert!(
            !f.batch
                .records
                .windows(value.len())
                .any(|w| w == value.as_bytes()),
            "{value} shows in the sealed records"
        );
    }
    // Each batch gets its own encapsulation: the same records seal differently.
    let again = f.seal(header(0, true, 3), records(3));
    assert_ne!(again.records, f.batch.records);
}

#[test]
fn only_the_asking_node_opens_a_batch() {
    let f = fixture();
    // Another node, even with the same kind of key, is told whose batch it is.
    let (_, other) = city();
    let district = BatchOpener::new(
        "420502".parse().unwrap(),
        EncryptionKeys::generate().unwrap(),
    );
    let err = district.open(&f.verifier, &f.batch).unwrap_err();
    assert!(
        matches!(&err, VerifyError::SealedToAnother { sealed_to, .. } if sealed_to == "420500"),
        "{err}"
    );
    assert!(err.to_string().contains("sealed to node 420500"), "{err}");
    // A node directory of the same node without the key the batch names.
    let err = other.open(&f.verifier, &f.batch).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotHeld { .. }), "{err}");
    // A node that claims the asker's key but holds another private key cannot open either: the
    // producer sealed to the public key, not to the claim.
    let stolen = Recipient {
        node: "420500".parse().unwrap(),
        key: EncryptionKey::generate().unwrap().public().clone(),
    };
    let mine = f.street.seal(header(0, true, 3), records(3), &stolen);
    assert!(f.opener.open(&f.verifier, &mine).is_err());
}

#[test]
fn a_batch_sealed_before_a_rotation_opens_while_the_node_keeps_the_retired_key() {
    let f = fixture();
    let keys = EncryptionKeys::parse(&f.opener.keys.to_text()).unwrap();
    let rotated = keys.rotated(EncryptionKey::generate().unwrap());
    let after = Recipient {
        node: "420500".parse().unwrap(),
        key: rotated.current().public().clone(),
    };
    let text = rotated.to_text();
    let opener = BatchOpener::new("420500".parse().unwrap(), rotated);
    // Sealed before the rotation, to the key now retired; and after, to the new one.
    opener.open(&f.verifier, &f.batch).unwrap();
    opener
        .open(
            &f.verifier,
            &f.street.seal(header(0, true, 3), records(3), &after),
        )
        .unwrap();
    // Once the retired key is dropped from the file, what was sealed to it no longer opens.
    let kept = EncryptionKeys::parse(text.lines().next().unwrap()).unwrap();
    let err = BatchOpener::new("420500".parse().unwrap(), kept)
        .open(&f.verifier, &f.batch)
        .unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotHeld { .. }), "{err}");
}

#[test]
fn records_moved_to_another_batch_do_not_open() {
    let f = fixture();
    // A producer's own records of batch 0, presented as batch 1 of another request: the
    // signature and digest hold (the producer signed it), but the HPKE info binds the
    // ciphertext to the batch it was sealed for.
    let first = BatchHeader::decode(f.batch.header.as_slice()).unwrap();
    let moved = BatchHeader {
        request_id: "r2".into(),
        ..first
    };
    let resigned = f.street.sign(moved, f.batch.records.clone());
    f.verifier.verify(&resigned).unwrap();
    let err = f.opener.open(&f.verifier, &resigned).unwrap_err();
    assert!(matches!(err, VerifyError::Open(_)), "{err}");
}

#[test]
fn a_batch_that_names_no_recipient_is_refused() {
    let f = fixture();
    let plain = f.street.sign(header(0, true, 3), records(3));
    let err = f.verifier.verify(&plain).unwrap_err();
    assert!(err.to_string().contains("sealed to"), "{err}");
}

#[test]
fn any_changed_byte_is_caught() {
    let f = fixture();
    for i in 0..f.batch.records.len() {
        let mut b = f.batch.clone();
        b.records[i] ^= 0x01;
        assert!(
            matches!(f.verifier.verify(&b), Err(VerifyError::Digest(_))),
            "records byte {i}"
        );
    }
    for i in 0..f.batch.header.len() {
        let mut b = f.batch.clone();
        b.header[i] ^= 0x01;
        assert!(
            matches!(f.verifier.verify(&b), Err(VerifyError::Signature(_))),
            "header byte {i}"
        );
    }
    for i in 0..f.batch.signature.len() {
        let mut b = f.batch.clone();
        b.signature[i] ^= 0x01;
        assert!(
            matches!(f.verifier.verify(&b), Err(VerifyError::Signature(_))),
            "signature byte {i}"
        );
    }
    let mut b = f.batch.clone();
    b.producer_certificate[40] ^= 0x01;
    assert!(matches!(
        f.verifier.verify(&b),
        Err(VerifyError::Certificate(_))
    ));
}

#[test]
fn a_batch_signed_by_another_node_is_caught() {
    let f = fixture();
    let other = signer(&f.ca, "420503");
    // The other node signs, then passes the batch off as the street's.
    let mut forged = other.seal(header(0, true, 3), records(3), &f.city);
    forged.producer_certificate = f.batch.producer_certificate.clone();
    assert!(matches!(
        f.verifier.verify(&forged),
        Err(VerifyError::Signature(_))
    ));

    // A node of another federation is not trusted at all.
    let outsider = signer(&generate_ca("elsewhere").unwrap(), "420502");
    let err = f
        .verifier
        .verify(&outsider.seal(header(0, true, 3), records(3), &f.city))
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Certificate(CertError::NotIssuedByCa { .. })
        ),
        "{err}"
    );
}

#[test]
fn a_wrong_count_is_caught() {
    let f = fixture();
    let b = f.seal(header(0, true, 4), records(3));
    f.verifier.verify(&b).unwrap();
    assert!(matches!(
        f.opener.open(&f.verifier, &b),
        Err(VerifyError::Records(_))
    ));
}

#[test]
fn a_signer_refuses_a_certificate_for_another_key() {
    let ca = generate_ca("test").unwrap();
    let unit = Unit {
        code: "420500".parse().unwrap(),
        tier: Tier::City,
        parent: None,
        name: "c".into(),
    };
    let keys = NodeCredentials::generate().unwrap();
    let certs =
        issue_node_certificates(&ca, &unit, &[], &NodeCredentials::generate().unwrap()).unwrap();
    let trusted = TrustedCa::from_pem(&ca.cert_pem).unwrap();
    let err = BatchSigner::new(&keys.signing_key_pem, &certs.signing_pem, &trusted)
        .err()
        .unwrap();
    assert!(err.to_string().contains("another key"), "{err}");
}

#[test]
fn streams_must_be_complete_and_in_order() {
    let f = fixture();
    let batches: Vec<SignedBatch> = (0..3)
        .map(|s| f.seal(header(s, s == 2, 1), records(1)))
        .collect();
    let check = |order: &[usize]| -> Result<StreamSummary, VerifyError> {
        let mut stream = StreamCheck::new(Expected {
            producer: Some("420502".into()),
            ..Default::default()
        });
        for &i in order {
            stream.accept(&f.verifier.verify(&batches[i])?)?;
        }
        stream.finish()
    };
    let summary = check(&[0, 1, 2]).unwrap();
    assert_eq!(
        (summary.batches, summary.records, summary.producer.as_str()),
        (3, 3, "420502")
    );
    for bad in [
        &[0, 2][..],
        &[1, 0, 2],
        &[0, 1],
        &[0, 0, 1, 2],
        &[0, 1, 2, 2],
    ] {
        assert!(
            matches!(check(bad), Err(VerifyError::Unexpected(_))),
            "{bad:?}"
        );
    }
    let mut other_catalog = StreamCheck::new(Expected {
        catalog: Some("101001001/000001".into()),
        ..Default::default()
    });
    assert!(
        other_catalog
            .accept(&f.verifier.verify(&batches[0]).unwrap())
            .is_err()
    );
}

#[test]
fn the_directory_admits_only_active_producers_with_their_registered_key() {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::members::{MemberList, Standing};

    let f = fixture();
    let members = Arc::new(MemberList::default());
    let verifier = BatchVerifier::new(TrustedCa::from_pem(&f.ca.cert_pem).unwrap())
        .with_members(members.clone());
    let key = hex::encode(f.street.key().verifying_key().as_bytes());
    let set = |status: &str, signing_key: &str| {
        let standing = Standing {
            endpoint: "https://127.0.0.1:1".into(),
            signing_key: signing_key.into(),
            status: status.into(),
            ..Default::default()
        };
        members.replace(HashMap::from([("420502".parse().unwrap(), standing)]));
    };
    // Unknown to the directory: the CA-issued certificate decides.
    verifier.verify(&f.batch).unwrap();
    set("active", &key);
    verifier.verify(&f.batch).unwrap();
    for (status, signing_key, why) in [
        ("suspended", key.as_str(), "is suspended"),
        ("pending", key.as_str(), "is pending"),
        ("active", &"00".repeat(32), "other than the one registered"),
    ] {
        set(status, signing_key);
        let err = verifier.verify(&f.batch).unwrap_err();
        assert!(
            matches!(&err, VerifyError::NotAdmitted(m) if m.contains(why)),
            "{err}"
        );
    }
    // Once the directory has members, a producer it does not know has no registered key.
    members.replace(HashMap::from([(
        "420500".parse().unwrap(),
        Standing::default(),
    )]));
    let err = verifier.verify(&f.batch).unwrap_err();
    assert!(
        matches!(&err, VerifyError::NotAdmitted(m) if m.contains("not a member")),
        "{err}"
    );
}

#[test]
fn a_batch_signed_before_a_key_rotation_verifies_and_one_signed_after_does_not() {
    use crate::members::{MemberList, Standing};

    let f = fixture();
    let members = Arc::new(MemberList::default());
    let verifier = BatchVerifier::new(TrustedCa::from_pem(&f.ca.cert_pem).unwrap())
        .with_members(members.clone());
    let old = hex::encode(f.street.key().verifying_key().as_bytes());
    let made = BatchHeader::decode(f.batch.header.as_slice())
        .unwrap()
        .created_at_micros;
    let rotated_at = |until: i64| {
        let standing = Standing {
            status: "active".into(),
            signing_key: "11".repeat(32),
            retired_keys: vec![(old.clone(), until)],
            ..Default::default()
        };
        members.replace(HashMap::from([("420502".parse().unwrap(), standing)]));
    };
    rotated_at(made + 1);
    verifier.verify(&f.batch).unwrap();
    rotated_at(made);
    let err = verifier.verify(&f.batch).unwrap_err();
    assert!(
        matches!(&err, VerifyError::NotAdmitted(m) if m.contains("when the batch was made")),
        "{err}"
    );
}

#[test]
fn a_manifest_that_does_not_match_the_columns_is_caught() {
    let f = fixture();
    let line = |item: &str, action: &str| tierlink_proto::v1::ItemRedaction {
        item: item.into(),
        action: action.into(),
        rule: "named-in-grant".into(),
    };
    let with = |manifest| BatchHeader {
        manifest,
        ..header(0, true, 3)
    };
    let honest = with(vec![
        line("building_code", "hash"),
        line("floors", "withhold"),
    ]);
    f.verifier.verify(&f.seal(honest, records(3))).unwrap();
    // A producer claiming to have withheld the column it sent.
    let lying = with(vec![line("building_code", "withhold")]);
    let err = f.verifier.verify(&f.seal(lying, records(3))).unwrap_err();
    assert!(matches!(err, VerifyError::Header(_)), "{err}");
}
