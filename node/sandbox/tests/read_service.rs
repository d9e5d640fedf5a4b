//! The read service on its own, with no transport in between: the same `Read` a gRPC handler or
//! a gateway hands it, an admitted caller, and signed batches out that verify. A read vouched
//! for by another node is decided in one look at the directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tierlink_client::Peers;
use tierlink_core::catalog::{Catalog, EXAMPLES, parse_catalogs};
use tierlink_core::config::LimitSettings;
use tierlink_core::identity::{NodeCode, NodeKey, Tier};
use tierlink_core::members::{MemberList, Members, Produced, ReadTerms, Standing};
use tierlink_core::policy::{
    Action, Asker, Decision, Grant, Grantee, Policies, Redactor, Refusal, Role,
};
use tierlink_core::provision::init_ca;
use tierlink_core::read::Read;
use tierlink_core::signed::{
    BatchOpener, BatchSigner, BatchVerifier, Expected, StreamCheck, requester,
};
use tierlink_node::admission::Caller;
use tierlink_node::read::{NodeKeys, ReadErrorKind, ReadService};
use tierlink_proto::v1::{QueryRequest, ReadScope, Requester};
use tierlink_sandbox::federation::offline_node;
use tierlink_sandbox::sample;
use tierlink_store::SledStore;
use tierlink_store::audit::AuditLog;
use tierlink_store::registry::Registry;
use tokio_stream::StreamExt;

const RESIDENTS: &str = "101001001/000001";
const STREET: &str = "420502001";
const CITY: &str = "420500";

/// The street's directory, counting how often the read path looks at it.
struct Counting {
    members: MemberList,
    policies: Policies,
    looks: AtomicUsize,
}

impl Members for Counting {
    fn standing(&self, code: &NodeCode) -> Option<Standing> {
        self.looks.fetch_add(1, Ordering::SeqCst);
        self.members.standing(code)
    }

    fn decide(
        &self,
        producer: &NodeCode,
        catalog: &Catalog,
        asker: &Asker,
        today: &str,
    ) -> Result<Decision, Refusal> {
        self.looks.fetch_add(1, Ordering::SeqCst);
        self.policies.decide(producer, catalog, asker, today)
    }

    fn terms(&self, voucher: &NodeCode, produced: Option<Produced<'_>>) -> ReadTerms {
        self.looks.fetch_add(1, Ordering::SeqCst);
        ReadTerms {
            voucher: self.members.standing(voucher),
            decision: produced.map(|(producer, catalog, asker, today)| {
                self.policies.decide(producer, catalog, asker, today)
            }),
        }
    }
}

fn policies() -> Policies {
    let mut p = Policies::default();
    let role = Role {
        unit: CITY.parse().unwrap(),
        name: "analyst".into(),
        department: "Public Security Bureau".into(),
        post: "analyst".into(),
    };
    p.roles.insert(role.id(), role);
    let grant = Grant {
        // The birth date only to the month, and the ID number's sequence digits hidden too:
        // beside the day alone, the check digit leaves about 3 candidates.
        items: [
            ("id_number", Action::Mask { first: 6, last: 1 }),
            ("birth_date", "year-month".parse().unwrap()),
        ]
        .into_iter()
        .map(|(i, a)| (i.to_string(), a))
        .collect(),
        others: Some(Action::Clear),
        ..Grant::new(
            "g1",
            STREET.parse().unwrap(),
            RESIDENTS,
            Grantee::Role(format!("{CITY}/analyst")),
            "checks",
            "2099-12-31",
        )
    };
    p.grants.insert(grant.id.clone(), grant);
    p
}

fn query(city: &NodeKey, request_id: &str, producer: &str) -> Read {
    query_for(city, request_id, producer, "checks")
}

/// A query of the street's residents that the city vouches for, stating `purpose`.
fn query_for(city: &NodeKey, request_id: &str, producer: &str, purpose: &str) -> Read {
    let signed = requester::sign(
        city,
        &Requester {
            node: CITY.into(),
            principal: "zhao".into(),
            role: format!("{CITY}/analyst"),
            purpose: purpose.into(),
            producer: producer.into(),
            catalog: RESIDENTS.into(),
            request_id: request_id.into(),
            issued_at_micros: chrono::Utc::now().timestamp_micros(),
            ..Default::default()
        },
    );
    Read::Query(QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            request_id: request_id.into(),
            requester: Some(signed),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_vouched_read_is_decided_in_one_look_at_the_directory_and_its_batches_verify() {
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(&root.path().join("ca"), "test").unwrap();
    let street = offline_node(root.path(), &ca, STREET, Tier::Street, Some("420502")).unwrap();
    let city = offline_node(root.path(), &ca, CITY, Tier::City, None).unwrap();
    let trusted = street.trusted_ca().unwrap();
    let credentials = street.credentials().unwrap();
    let city_key = city.signing_key().unwrap();
    let city_keys = city.encryption_keys().unwrap();

    let store = SledStore::open(&street.path(&street.config.files.data)).unwrap();
    let audit = Arc::new(AuditLog::open(store.keyspace("audit").unwrap()).unwrap());
    let registry = Arc::new(Registry::open(Arc::new(store)).unwrap());
    let residents = EXAMPLES
        .iter()
        .find(|(f, _)| *f == "residents.json")
        .unwrap();
    registry
        .put_catalog(parse_catalogs(residents.1, residents.0).unwrap().remove(0))
        .unwrap();
    let columns: Vec<String> = sample::RESIDENT_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .collect();
    registry
        .put_records(RESIDENTS, &columns, sample::residents(STREET, 30, 3))
        .unwrap();

    let directory = Arc::new(Counting {
        members: MemberList::default(),
        policies: policies(),
        looks: AtomicUsize::new(0),
    });
    directory.members.replace(
        [(
            CITY.parse().unwrap(),
            Standing {
                endpoint: "https://127.0.0.1:1".into(),
                signing_key: hex::encode(city_key.verifying_key().as_bytes()),
                status: "active".into(),
                encryption_key: city_keys.current().public().to_hex(),
                ..Default::default()
            },
        )]
        .into(),
    );
    let signer = BatchSigner::new(
        &credentials.signing_key_pem,
        &credentials.signing_cert_pem,
        &trusted,
    )
    .unwrap();
    let peers = Arc::new(Peers::new(street.clone(), credentials, directory.clone()));
    let reads = ReadService::new(
        registry,
        NodeKeys {
            signer: Arc::new(signer),
            encryption: street.encryption_keys().unwrap().current().public().clone(),
        },
        peers,
        audit.clone(),
        Redactor::new(None),
        street.principal_files(),
        &LimitSettings::default(),
    );
    let caller = Caller {
        node: CITY.parse().unwrap(),
        is_self: false,
        is_member: true,
    };

    let stream = reads
        .read(&caller, query(&city_key, "r1", STREET))
        .await
        .unwrap();
    assert_eq!(
        directory.looks.load(Ordering::SeqCst),
        1,
        "the requester's check and the decision share one look at the directory"
    );
    let batches: Vec<_> = stream.collect().await;
    let verifier = BatchVerifier::new(trusted);
    let opener = BatchOpener::new(CITY.parse().unwrap(), city_keys);
    let mut check = StreamCheck::new(Expected {
        producer: Some(STREET.into()),
        catalog: Some(RESIDENTS.into()),
        request_id: Some("r1".into()),
    });
    let mut records = 0;
    for batch in batches {
        let verified = check.open(&verifier, &opener, &batch.unwrap()).unwrap();
        let id = verified
            .header
            .columns
            .iter()
            .position(|c| c == "id_number")
            .unwrap();
        for r in &verified.records {
            assert!(
                r.values[id].contains('*'),
                "id_number is masked: {:?}",
                r.values[id]
            );
        }
        records += verified.records.len();
    }
    check.finish().unwrap();
    assert_eq!(records, 30);

    // The same requester again: refused, whatever carries it.
    let again = reads
        .read(&caller, query(&city_key, "r1", STREET))
        .await
        .err()
        .unwrap();
    assert_eq!(again.kind, ReadErrorKind::PermissionDenied, "{again}");
    assert!(again.message.contains("requester is refused"), "{again}");

    // A member's signed requester is held to the lengths a credential is.
    let long = "核".repeat(300);
    let refused = reads
        .read(&caller, query_for(&city_key, "r2", STREET, &long))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.kind, ReadErrorKind::InvalidArgument, "{refused}");
    assert!(
        refused
            .message
            .contains("purpose is at most 256 characters"),
        "{refused}"
    );
}
