//! Only registered certificates, on real nodes over loopback mutual TLS: a certificate the
//! federation CA issued for a node, but not the one the directory registered for it, acts as no
//! one — not for the exchange, not for the node's own administration, not in the directory or its
//! raft. A rotation through the directory keeps the node accepted throughout; a revocation takes
//! effect on every node from its own replica, with no restart.

use chrono::Datelike;
use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tierlink_client::{ClientError, connect};
use tierlink_core::config::{Credentials, DirectorySettings, NodeDir};
use tierlink_core::directory::{DirectoryCommand, Rotation};
use tierlink_core::identity::{
    CaFiles, NodeCredentials, Tier, fingerprint, issue_node_certificates, pem_to_der,
};
use tierlink_core::provision::load_ca;
use tierlink_node::runtime;
use tierlink_proto::v1::federation_client::FederationClient;
use tierlink_proto::v1::{
    CatalogsRequest, ListCatalogsRequest, ProposeRequest, PutRecordsRequest, RaftPayload,
    ReadRequest, StatusRequest, SubmitRequest,
};
use tierlink_sandbox::federation::cast::{CITY, WUJIA, WUJIAGANG, XILING, XILING_STREET, XUEYUAN};
use tierlink_sandbox::federation::{LocalFederation, demo_units, offline_node};
use tonic::Code;

fn settings() -> DirectorySettings {
    DirectorySettings {
        heartbeat_ms: 100,
        election_timeout_ms: 600,
        ..Default::default()
    }
}

async fn federation(root: &std::path::Path) -> (LocalFederation, CaFiles) {
    let f = LocalFederation::create_with(root, demo_units(), settings())
        .await
        .unwrap();
    let ca = load_ca(&f.root.join("ca")).unwrap();
    (f, ca)
}

fn credentials(f: &LocalFederation, code: &str) -> Credentials {
    f.node(code).unwrap().dir.credentials().unwrap()
}

fn endpoint(f: &LocalFederation, code: &str) -> String {
    f.node(code).unwrap().dir.config.server.endpoint.clone()
}

/// `code`'s credentials with a new TLS certificate and key the CA issues now: what a thief of the
/// CA's service, or a forgotten earlier issue, would hold.
fn reissued(f: &LocalFederation, ca: &CaFiles, code: &str) -> Credentials {
    reissued_for(&f.node(code).unwrap().dir, ca)
}

/// The credentials of the node in `dir` with a new TLS certificate from the CA.
fn reissued_for(dir: &NodeDir, ca: &CaFiles) -> Credentials {
    let keys = NodeCredentials::generate().unwrap();
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let issued = issue_node_certificates(ca, &dir.config.node, &hosts, &keys).unwrap();
    Credentials {
        tls_cert_pem: issued.tls_pem,
        tls_key_pem: keys.tls_key_pem,
        ..dir.credentials().unwrap()
    }
}

fn tls_fingerprint(credentials: &Credentials) -> String {
    fingerprint(&pem_to_der(&credentials.tls_cert_pem).unwrap())
}

/// Lists `target`'s catalogs with `credentials`: the exchange as a member.
async fn list(credentials: &Credentials, target: &str) -> Result<usize, tonic::Status> {
    let mut client = connect(credentials, target).await.expect("reachable");
    Ok(client
        .list_catalogs(ListCatalogsRequest::default())
        .await?
        .into_inner()
        .catalogs
        .len())
}

fn assert_not_registered(result: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    assert!(
        status.message().contains("not the one registered for")
            || status.message().contains("no TLS certificate registered"),
        "{what}: {}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_the_ca_issued_but_the_directory_did_not_register_acts_as_no_one() {
    let root = tempfile::tempdir().unwrap();
    let (f, ca) = federation(root.path()).await;
    let forged = reissued(&f, &ca, XUEYUAN);
    let registered = credentials(&f, XUEYUAN);

    // The exchange with another member.
    assert_not_registered(
        list(&forged, &endpoint(&f, XILING_STREET)).await,
        "catalogs of another street",
    );
    assert!(
        list(&registered, &endpoint(&f, XILING_STREET))
            .await
            .is_ok()
    );
    // The node's own administration: writes and directory changes.
    let own = endpoint(&f, XUEYUAN);
    let write = connect(&forged, &own)
        .await
        .unwrap()
        .put_records(PutRecordsRequest {
            catalog: "103001001/000001".into(),
            ..Default::default()
        })
        .await;
    assert_not_registered(write, "a write to the node it names");
    let mut directory = tierlink_client::directory::connect(&forged, &own)
        .await
        .unwrap();
    let propose = directory
        .propose(ProposeRequest {
            commands_json: "[]".into(),
            via: String::new(),
        })
        .await;
    assert_not_registered(propose, "a directory change on the node it names");
    // The directory of another node, and its raft.
    let mut directory = tierlink_client::directory::connect(&forged, &endpoint(&f, XILING))
        .await
        .unwrap();
    let members = directory
        .members(ReadRequest {
            linearizable: false,
        })
        .await;
    assert_not_registered(members, "the directory's members");
    let channel = tierlink_client::channel(&forged, &endpoint(&f, CITY))
        .await
        .unwrap();
    let vote = FederationClient::new(channel)
        .vote(RaftPayload {
            json: b"{}".to_vec(),
        })
        .await;
    assert_not_registered(vote, "a raft vote");
    f.stop().await.unwrap();
}

/// A client certificate for `code` from the CA with the given validity (days from now) and
/// extended key usages: what the handshake itself must refuse.
fn odd_certificate(
    f: &LocalFederation,
    ca: &CaFiles,
    code: &str,
    days: (i64, i64),
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Credentials {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![
        SanType::URI(format!("urn:tierlink:node:{code}").try_into().unwrap()),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    let day = |offset: i64| {
        let d = chrono::Utc::now() + chrono::Duration::days(offset);
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(days.0);
    params.not_after = day(days.1);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, KeyPair::from_pem(&ca.key_pem).unwrap()).unwrap();
    Credentials {
        tls_cert_pem: params.signed_by(&key, &issuer).unwrap().pem(),
        tls_key_pem: key.serialize_pem(),
        ..credentials(f, code)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_not_yet_valid_and_server_only_certificates_are_refused_at_the_handshake() {
    let root = tempfile::tempdir().unwrap();
    let (f, ca) = federation(root.path()).await;
    let client = vec![ExtendedKeyUsagePurpose::ClientAuth];
    for (what, credentials) in [
        (
            "expired",
            odd_certificate(&f, &ca, XUEYUAN, (-60, -1), client.clone()),
        ),
        (
            "not yet valid",
            odd_certificate(&f, &ca, XUEYUAN, (1, 30), client),
        ),
        (
            "server-auth only",
            odd_certificate(
                &f,
                &ca,
                XUEYUAN,
                (-1, 30),
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            ),
        ),
    ] {
        let call = match connect(&credentials, &endpoint(&f, XILING_STREET)).await {
            Err(e) => Err(e),
            Ok(mut client) => client
                .list_catalogs(ListCatalogsRequest::default())
                .await
                .map_err(ClientError::from),
        };
        match call {
            Err(ClientError::Connect { .. }) => {}
            Err(ClientError::Status(s))
                if matches!(
                    s.code(),
                    Code::Unknown | Code::Cancelled | Code::Unavailable
                ) => {}
            other => panic!("{what}: expected a refusal at the handshake, got {other:?}"),
        }
    }
    f.stop().await.unwrap();
}

fn rotation(code: &str, tls: &Credentials) -> DirectoryCommand {
    DirectoryCommand::Rotate(Rotation {
        node: code.parse().unwrap(),
        tls_certificate: Some(tls.tls_cert_pem.clone()),
        signing_certificate: None,
        encryption_key: None,
        at_micros: chrono::Utc::now().timestamp_micros(),
    })
}

fn revocation(code: &str, tls: &Credentials) -> DirectoryCommand {
    DirectoryCommand::Revoke {
        node: code.parse().unwrap(),
        tls_fingerprint: tls_fingerprint(tls),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_keeps_the_node_accepted_throughout_and_a_revocation_holds_on_every_node() {
    let root = tempfile::tempdir().unwrap();
    let (f, ca) = federation(root.path()).await;
    let (xueyuan, xiling) = (XUEYUAN.parse().unwrap(), XILING.parse().unwrap());
    let old = credentials(&f, XUEYUAN);
    let new = reissued(&f, &ca, XUEYUAN);
    let others = [CITY, XILING, XILING_STREET, WUJIA];

    // Before the rotation the new certificate is nobody's.
    assert_not_registered(list(&new, &endpoint(&f, WUJIA)).await, "before rotating");
    // The node rotates: old and new are both accepted everywhere.
    f.issue(&xueyuan, vec![rotation(XUEYUAN, &new)])
        .await
        .unwrap();
    for other in others {
        list(&old, &endpoint(&f, other)).await.unwrap();
        list(&new, &endpoint(&f, other)).await.unwrap();
    }
    // It revokes the old one: refused on every node as soon as its replica applied it, on
    // connections made before the revocation too.
    let mut kept = connect(&old, &endpoint(&f, WUJIA)).await.unwrap();
    kept.list_catalogs(ListCatalogsRequest::default())
        .await
        .unwrap();
    f.issue(&xiling, vec![revocation(XUEYUAN, &old)])
        .await
        .unwrap();
    for other in others {
        assert_not_registered(list(&old, &endpoint(&f, other)).await, other);
        list(&new, &endpoint(&f, other)).await.unwrap();
    }
    assert_not_registered(
        kept.list_catalogs(ListCatalogsRequest::default()).await,
        "a connection opened before the revocation",
    );

    // Only the member and its parent change its certificates.
    let wujiagang = WUJIAGANG.parse().unwrap();
    let refused = f
        .issue(&wujiagang, vec![revocation(XUEYUAN, &new)])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("only 420502002 itself or its parent"),
        "{refused}"
    );
    // A certificate naming another node, or one already registered, is refused.
    let street_cert = reissued(&f, &ca, XILING_STREET);
    let refused = f
        .issue(&xiling, vec![rotation(XUEYUAN, &street_cert)])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("names 420502001, not 420502002"),
        "{refused}"
    );
    let refused = f
        .issue(&xiling, vec![rotation(XUEYUAN, &new)])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("already holds"), "{refused}");

    // The parent revokes the member's only certificate: it acts as no one until the parent
    // rotates a new one in.
    f.issue(&xiling, vec![revocation(XUEYUAN, &new)])
        .await
        .unwrap();
    for other in others {
        assert_not_registered(list(&new, &endpoint(&f, other)).await, other);
    }
    let third = reissued(&f, &ca, XUEYUAN);
    f.issue(&xiling, vec![rotation(XUEYUAN, &third)])
        .await
        .unwrap();
    for other in others {
        list(&third, &endpoint(&f, other)).await.unwrap();
    }

    // A certificate that expires in ten days is reported by every node's status.
    let short = odd_certificate(
        &f,
        &ca,
        XUEYUAN,
        (-1, 10),
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    f.issue(&xiling, vec![rotation(XUEYUAN, &short)])
        .await
        .unwrap();
    for other in others {
        let status = tierlink_client::directory::connect(&third, &endpoint(&f, other))
            .await
            .unwrap()
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        let expiring: Vec<(&str, &str)> = status
            .expiring
            .iter()
            .map(|e| (e.code.as_str(), e.certificate.as_str()))
            .collect();
        assert_eq!(expiring, [(XUEYUAN, "tls")], "{other}");
    }
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_never_joined_reads_nothing_but_what_joining_needs() {
    let root = tempfile::tempdir().unwrap();
    let (f, ca) = federation(root.path()).await;
    let stranger = offline_node(&f.root, &ca, "420502004", Tier::Street, Some(XILING))
        .unwrap()
        .credentials()
        .unwrap();
    let refused = list(&stranger, &endpoint(&f, XILING_STREET))
        .await
        .expect_err("the exchange");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("not a member"), "{refused:?}");
    let mut directory = tierlink_client::directory::connect(&stranger, &endpoint(&f, XILING))
        .await
        .unwrap();
    let read = ReadRequest {
        linearizable: false,
    };
    let catalogs = directory
        .catalogs(CatalogsRequest {
            read: Some(read),
            ..Default::default()
        })
        .await
        .expect_err("the published catalogs");
    let policies = directory.policies(read).await.expect_err("the policies");
    for refused in [catalogs, policies] {
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("not a member"), "{refused:?}");
    }
    // What a node needs to join: who the members and voters are, and a small signed entry.
    directory.members(read).await.unwrap();
    let large = directory
        .submit(SubmitRequest {
            entry_json: "x".repeat(100 << 10),
            hops: 0,
        })
        .await
        .expect_err("100 KB from a node that is not a member");
    assert_eq!(large.code(), Code::ResourceExhausted, "{large:?}");
    f.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_not_yet_in_the_directory_is_administered_only_with_its_own_certificate() {
    let root = tempfile::tempdir().unwrap();
    let ca = tierlink_core::provision::init_ca(&root.path().join("ca"), "test").unwrap();
    let dir = offline_node(root.path(), &ca, "420502007", Tier::Street, Some(XILING)).unwrap();
    let mut dir_on_port = dir.clone();
    let listener = runtime::bind(&dir).await.unwrap();
    dir_on_port.config.server.endpoint = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let node = runtime::Node::open(dir_on_port.clone())
        .await
        .unwrap()
        .start(listener)
        .unwrap();
    let endpoint = dir_on_port.config.server.endpoint.clone();
    let catalog = || tierlink_proto::v1::PutCatalogRequest {
        catalog_json: tierlink_core::catalog::EXAMPLES
            .iter()
            .find(|(f, _)| *f == "buildings.json")
            .unwrap()
            .1
            .to_owned(),
    };
    let forged = reissued_for(&dir, &ca);
    let refused = connect(&forged, &endpoint)
        .await
        .unwrap()
        .put_catalog(catalog())
        .await
        .expect_err("a second certificate for the node");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("not node 420502007's own"),
        "{refused:?}"
    );
    connect(&dir.credentials().unwrap(), &endpoint)
        .await
        .unwrap()
        .put_catalog(catalog())
        .await
        .unwrap();
    node.stop().await.unwrap();
}
