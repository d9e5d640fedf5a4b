use super::*;
use crate::identity::{CaFiles, NodeCredentials, Tier, Unit, generate_ca, issue_node_certificates};

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

struct Fixture {
    ca: CaFiles,
    verifier: BatchVerifier,
    street: BatchSigner,
    batch: SignedBatch,
}

fn fixture() -> Fixture {
    let ca = generate_ca("test").unwrap();
    let street = signer(&ca, "420502");
    let batch = street.seal(header(0, true, 3), records(3));
    let verifier = BatchVerifier::new(TrustedCa::from_pem(&ca.cert_pem).unwrap());
    Fixture {
        ca,
        verifier,
        street,
        batch,
    }
}

#[test]
fn a_sealed_batch_verifies_with_the_ca_alone() {
    let f = fixture();
    let verified = f.verifier.verify(&f.batch).unwrap();
    assert_eq!(verified.header.producer, "420502");
    assert_eq!(verified.records.len(), 3);
    assert_eq!(verified.records[2].values, ["v2"]);
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
    let mut forged = other.seal(header(0, true, 3), records(3));
    forged.producer_certificate = f.batch.producer_certificate.clone();
    assert!(matches!(
        f.verifier.verify(&forged),
        Err(VerifyError::Signature(_))
    ));

    // A node of another federation is not trusted at all.
    let outsider = signer(&generate_ca("elsewhere").unwrap(), "420502");
    let err = f
        .verifier
        .verify(&outsider.seal(header(0, true, 3), records(3)))
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
    let b = f.street.seal(header(0, true, 4), records(3));
    assert!(matches!(
        f.verifier.verify(&b),
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
        .map(|s| f.street.seal(header(s, s == 2, 1), records(1)))
        .collect();
    let check = |order: &[usize]| -> Result<StreamSummary, VerifyError> {
        let mut stream = StreamCheck::new(Expected {
            producer: Some("420502".into()),
            ..Default::default()
        });
        for &i in order {
            stream.accept(&f.verifier.verify(&batches[i])?.header)?;
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
            .accept(&f.verifier.verify(&batches[0]).unwrap().header)
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
    f.verifier
        .verify(&f.street.seal(honest, records(3)))
        .unwrap();
    // A producer claiming to have withheld the column it sent.
    let lying = with(vec![line("building_code", "withhold")]);
    let err = f
        .verifier
        .verify(&f.street.seal(lying, records(3)))
        .unwrap_err();
    assert!(matches!(err, VerifyError::Header(_)), "{err}");
}
