use super::*;
use crate::identity::Tier;

fn street() -> Unit {
    Unit {
        code: "420502001".parse().unwrap(),
        tier: Tier::Street,
        parent: Some("420502".parse().unwrap()),
        name: "Xiling Street".into(),
    }
}

#[test]
fn issued_certificates_name_the_node_and_verify_against_their_ca() {
    let ca = generate_ca("test").unwrap();
    let keys = NodeCredentials::generate().unwrap();
    let certs = issue_node_certificates(
        &ca,
        &street(),
        &["localhost".into(), "127.0.0.1".into()],
        &keys,
    )
    .unwrap();
    let tls_der = pem_to_der(&certs.tls_pem).unwrap();
    assert_eq!(node_code_of(&tls_der).unwrap().as_str(), "420502001");

    let trusted = TrustedCa::from_pem(&ca.cert_pem).unwrap();
    let producer = trusted
        .verify_producer(&pem_to_der(&certs.signing_pem).unwrap())
        .unwrap();
    assert_eq!(producer.code.as_str(), "420502001");

    // The TLS certificate is not an Ed25519 signing certificate.
    assert!(matches!(
        trusted.verify_producer(&tls_der),
        Err(CertError::NotEd25519(_))
    ));

    // Another federation's CA does not vouch for this node.
    let other = TrustedCa::from_pem(&generate_ca("other").unwrap().cert_pem).unwrap();
    assert!(matches!(
        other.verify_producer(&pem_to_der(&certs.signing_pem).unwrap()),
        Err(CertError::NotIssuedByCa { .. })
    ));
}

#[test]
fn requests_are_produced_for_an_external_ca() {
    let keys = NodeCredentials::generate().unwrap();
    let csrs = keys.requests(&street(), &["localhost".into()]).unwrap();
    assert!(csrs.tls_pem.contains("BEGIN CERTIFICATE REQUEST"));
    assert!(csrs.signing_pem.contains("BEGIN CERTIFICATE REQUEST"));
}

#[cfg(unix)]
#[test]
fn private_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, "old").unwrap();
    write_private(&path, "secret").unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
}
