use super::*;
use crate::identity::Tier;

fn spec(code: &str) -> NodeSpec {
    NodeSpec {
        unit: Unit {
            code: code.parse().unwrap(),
            tier: Tier::City,
            parent: None,
            name: "Yichang".into(),
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        endpoint: "https://127.0.0.1:7443".into(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        peers: vec![],
        hash_key: None,
    }
}

#[test]
fn a_node_directory_loads_back_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ca = init_ca(&dir.path().join("ca"), "Yichang").unwrap();
    assert!(matches!(
        init_ca(&dir.path().join("ca"), "again"),
        Err(ProvisionError::Exists(_))
    ));
    let node = dir.path().join("city");
    init_node(&node, spec("420500"), Certifier::Ca(&ca)).unwrap();
    let loaded = NodeDir::load(&node).unwrap();
    assert_eq!(loaded.code().as_str(), "420500");
    loaded.credentials().unwrap();
    assert!(matches!(
        init_node(&node, spec("420500"), Certifier::Ca(&ca)),
        Err(ProvisionError::Exists(_))
    ));
    assert!(matches!(
        init_node(&dir.path().join("x"), spec("420502"), Certifier::Ca(&ca)),
        Err(ProvisionError::Unit(_))
    ));
}

#[test]
fn an_external_ca_gets_signing_requests() {
    let dir = tempfile::tempdir().unwrap();
    let ca = generate_ca("external").unwrap();
    init_node(
        dir.path(),
        spec("420500"),
        Certifier::External {
            ca_cert_pem: ca.cert_pem,
        },
    )
    .unwrap();
    for f in [
        "tls.csr",
        "signing.csr",
        "ca.crt",
        "tls.key",
        "signing.key",
        "node.toml",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    assert!(!dir.path().join("tls.crt").exists());
}
