//! Exchange and ingestion throughput on this machine, each beside its baseline in the same run.
//!
//! - `stream_100k_residents/policy_all_clear`: 100,000 resident records streamed from a street node
//!   to a city principal over loopback mutual TLS: the city's signed requester checked, the policy
//!   decided, every shared item granted in clear, batches of the default 1,000 sealed to the city
//!   and signed, the read audited; every signature and digest checked, every batch opened with the
//!   city's key and every record decoded by the client.
//! - `stream_100k_residents/policy_third_redacted`: the same read under a realistic grant: a third
//!   of the items sent are masked or hashed. Its ratio to `policy_all_clear` is the policy's cost.
//! - `produce_100k_residents/all_clear` vs `/third_redacted`: the producer's side alone, in
//!   process: scan, the decision carried out on every record, batches cut and signed. The ratio
//!   is the policy's cost where it is paid, without the network and the client.
//! - `stream_100k_residents/unsigned`: the same scan, projection (all clear) and encoding from the
//!   same store over the same mTLS, with no policy, audit, digest, signature or verification; the
//!   client decodes every record. Its ratio to `policy_all_clear` is the cost of all of those.
//! - `seal_100k_residents/sealed` vs `/unsealed`: both ends of the stream in process, over the
//!   same store and plan (all clear): scan, projection, batches cut; then sealed to the city
//!   (HPKE) and signed, verified and opened with the city's key, every record decoded; against the
//!   same batches signed in clear (as before batches were sealed), verified, and decoded. The ratio
//!   is what sealing costs the stream.
//! - `ingest_5k_residents/checked` vs `/store_only`: a batch of 5,000 residents checked against the
//!   catalog and written durably (flushed), against the same rows written to the store unchecked.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench exchange`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::pin::Pin;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use tierlink_client::{Peers, connect, receive};
use tierlink_core::catalog::Catalog;
use tierlink_core::catalog::{EXAMPLES, RecordSchema, Row, parse_catalogs};
use tierlink_core::config::Credentials;
use tierlink_core::identity::{KEY_BYTES, NodeCode, NodeKey, Tier};
use tierlink_core::limits::DEFAULT_BATCH_BYTES;
use tierlink_core::members::{MemberList, Members, Standing};
use tierlink_core::policy::{
    Action, Asker, Decision, Grant, Grantee, HashKey, Policies, Redactor, Refusal, Role,
};
use tierlink_core::provision::init_ca;
use tierlink_core::signed::{
    BatchOpener, BatchSigner, BatchVerifier, Expected, Recipient, requester,
};
use tierlink_node::admission::AdmissionLayer;
use tierlink_node::exchange::produce::{
    Cut, DEFAULT_BATCH_SIZE, Plan, Template, record_lists, seal_all,
};
use tierlink_node::exchange::server::{ExchangeService, GrpcBatchStream as BatchStream};
use tierlink_node::read::{NodeKeys, ReadError, ReadService};
use tierlink_proto::v1::exchange_server::{Exchange, ExchangeServer};
use tierlink_proto::v1::{
    GetCatalogRequest, GetCatalogResponse, HistoryRequest, ListCatalogsRequest,
    ListCatalogsResponse, PutCatalogRequest, PutCatalogResponse, PutRecordsRequest,
    PutRecordsResponse, QueryRequest, ReadScope, RecordList, SignedBatch, SourceOffsetRequest,
    SourceOffsetResponse, SubscribeRequest,
};
use tierlink_sandbox::federation::offline_node;
use tierlink_sandbox::sample;
use tierlink_store::audit::AuditLog;
use tierlink_store::registry::Registry;
use tierlink_store::{SledStore, Store};
use tokio::runtime::Runtime;
use tokio_stream::StreamExt;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

/// Batches as a node cuts them by default.
const CUT: Cut = Cut {
    records: DEFAULT_BATCH_SIZE,
    bytes: DEFAULT_BATCH_BYTES,
};

const RECORDS: usize = 100_000;
const RESIDENTS: &str = "101001001/000001";

fn residents_catalog() -> tierlink_core::catalog::Catalog {
    parse_catalogs(EXAMPLES[0].1, EXAMPLES[0].0)
        .unwrap()
        .remove(0)
}

fn columns() -> Vec<String> {
    sample::RESIDENT_COLUMNS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The directory as the street sees it: the city active with its key, and the bench's grants.
struct Directory {
    members: MemberList,
    policies: Policies,
}

impl Members for Directory {
    fn standing(&self, code: &NodeCode) -> Option<Standing> {
        self.members.standing(code)
    }

    fn decide(
        &self,
        producer: &NodeCode,
        catalog: &Catalog,
        asker: &Asker,
        today: &str,
    ) -> Result<Decision, Refusal> {
        self.policies.decide(producer, catalog, asker, today)
    }
}

/// Two grants of the residents to the city's analysts: every shared item clear, and a realistic
/// one with a third of the items sent masked or hashed (keys stay clear in both).
fn policies(catalog: &Catalog) -> Policies {
    let redacted: [(&str, Action); 10] = [
        // Beside the birth year, mask:6:4 would leave month and day, about 34 candidates.
        ("id_number", Action::Mask { first: 6, last: 1 }),
        ("phone", Action::Mask { first: 3, last: 4 }),
        ("birth_date", Action::Mask { first: 4, last: 0 }),
        ("name", Action::Hash),
        ("former_name", Action::Hash),
        ("household_address", Action::Hash),
        ("current_address", Action::Hash),
        ("employer", Action::Hash),
        // Not the grid or building code: they carry the clear community code, so hashing them
        // hides nothing (the policy refuses it).
        ("household_number", Action::Hash),
        ("collector", Action::Hash),
    ];
    let grant = |id: &str, purpose: &str, redact: bool| {
        let items = catalog
            .items
            .iter()
            .map(|i| {
                let action = redacted
                    .iter()
                    .find(|(code, _)| redact && *code == i.code)
                    .map_or(Action::Clear, |(_, a)| *a);
                (i.code.clone(), action)
            })
            .collect();
        Grant {
            id: id.into(),
            producer: "420502001".parse().unwrap(),
            catalog: RESIDENTS.into(),
            grantee: Grantee::Role("420500/analyst".into()),
            purpose: purpose.into(),
            expires: "2099-12-31".into(),
            items,
            others: None,
            rows: None,
            delegated_from: None,
            access_request: None,
            issuer: None,
        }
    };
    let mut p = Policies::default();
    let role = Role {
        unit: "420500".parse().unwrap(),
        name: "analyst".into(),
        department: "Public Security Bureau".into(),
        post: "analyst".into(),
    };
    p.roles.insert(role.id(), role);
    for g in [
        grant("clear", "all clear", false),
        grant("third", "third redacted", true),
    ] {
        p.grants.insert(g.id.clone(), g);
    }
    p
}

/// A query by the city's analyst for `purpose`, with the city's signed requester.
fn query_as(city: &NodeKey, purpose: &str, n: u64) -> QueryRequest {
    let request_id = format!("bench-{purpose}-{n}");
    let signed = requester::sign(
        city,
        &tierlink_proto::v1::Requester {
            node: "420500".into(),
            principal: "bench".into(),
            role: "420500/analyst".into(),
            purpose: purpose.into(),
            producer: "420502001".into(),
            catalog: RESIDENTS.into(),
            request_id: request_id.clone(),
            issued_at_micros: chrono::Utc::now().timestamp_micros(),
            ..Default::default()
        },
    );
    QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            request_id,
            requester: Some(signed),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The baseline: the production scan, projection (every shared item clear) and encoding,
/// streamed unsigned, with no policy or audit.
struct Unsigned {
    registry: Arc<Registry>,
    decision: Decision,
}

#[tonic::async_trait]
impl Exchange for Unsigned {
    type QueryStream = BatchStream;
    type HistoryStream = BatchStream;
    type SubscribeStream = BatchStream;

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<BatchStream>, Status> {
        let catalog = request.into_inner().scope.unwrap_or_default().catalog;
        let entry = self
            .registry
            .entry(&catalog)
            .map_err(|e| Status::not_found(e.to_string()))?;
        let plan = Plan::new(&entry.catalog, &self.decision, Redactor::new(None))
            .map_err(|e| Status::from(ReadError::from(e)))?;
        let records = self.registry.store().scan(&catalog, "", None);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            for list in record_lists(records, plan, CUT, None, |_| {}) {
                let batch = list
                    .map(|(records, _)| SignedBatch {
                        records,
                        ..Default::default()
                    })
                    .map_err(|e| Status::internal(e.to_string()));
                if tx.blocking_send(batch).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as Pin<Box<_>>,
        ))
    }
    async fn list_catalogs(
        &self,
        _: Request<ListCatalogsRequest>,
    ) -> Result<Response<ListCatalogsResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn get_catalog(
        &self,
        _: Request<GetCatalogRequest>,
    ) -> Result<Response<GetCatalogResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn put_catalog(
        &self,
        _: Request<PutCatalogRequest>,
    ) -> Result<Response<PutCatalogResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn put_records(
        &self,
        _: Request<PutRecordsRequest>,
    ) -> Result<Response<PutRecordsResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn history(&self, _: Request<HistoryRequest>) -> Result<Response<BatchStream>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn subscribe(
        &self,
        _: Request<SubscribeRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        Err(Status::unimplemented("baseline"))
    }
    async fn source_offset(
        &self,
        _: Request<SourceOffsetRequest>,
    ) -> Result<Response<SourceOffsetResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
}

/// BLAKE3 of the node's TLS certificate, as the directory registers it.
fn tls_fingerprint(credentials: &Credentials) -> String {
    tierlink_core::identity::fingerprint(
        &tierlink_core::identity::pem_to_der(&credentials.tls_cert_pem).unwrap(),
    )
}

/// Serves `service` on loopback behind the node's admission, as a node serves it.
async fn serve_mtls<S>(credentials: &Credentials, members: Arc<dyn Members>, service: S) -> String
where
    S: Exchange,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let server = Server::builder()
        .tls_config(tierlink_node::runtime::server_tls(credentials))
        .unwrap()
        .layer(AdmissionLayer::new(
            "420502001".parse().unwrap(),
            tls_fingerprint(credentials),
            members,
        ))
        .add_service(ExchangeServer::new(service).max_encoding_message_size(64 << 20))
        .serve_with_incoming(tierlink_node::runtime::incoming(listener));
    tokio::spawn(server);
    endpoint
}

fn stream(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(&root.path().join("ca"), "bench").unwrap();
    let street = offline_node(root.path(), &ca, "420502001", Tier::Street, Some("420502")).unwrap();
    let city = offline_node(root.path(), &ca, "420500", Tier::City, None).unwrap();
    let street_credentials = street.credentials().unwrap();
    let city_credentials = city.credentials().unwrap();

    let store = SledStore::open(&street.path(&street.config.files.data)).unwrap();
    let audit = Arc::new(AuditLog::open(store.keyspace("audit").unwrap()).unwrap());
    let registry = Arc::new(Registry::open(Arc::new(store)).unwrap());
    registry.put_catalog(residents_catalog()).unwrap();
    for chunk in sample::residents("420502001", RECORDS, 11).chunks(10_000) {
        registry
            .put_records(RESIDENTS, &columns(), chunk.to_vec())
            .unwrap();
    }

    let trusted = street.trusted_ca().unwrap();
    let signer = BatchSigner::new(
        &street_credentials.signing_key_pem,
        &street_credentials.signing_cert_pem,
        &trusted,
    )
    .unwrap();
    let city_key = NodeKey::load(
        &city_credentials.signing_key_pem,
        &city_credentials.signing_cert_pem,
        &trusted,
    )
    .unwrap();
    let city_keys = city.encryption_keys().unwrap();
    let to_city = Recipient {
        node: "420500".parse().unwrap(),
        key: city_keys.current().public().clone(),
    };
    let city_opener = BatchOpener::new("420500".parse().unwrap(), city_keys);
    let members = MemberList::default();
    members.replace(
        [(
            "420500".parse().unwrap(),
            Standing {
                endpoint: "https://127.0.0.1:1".into(),
                signing_key: hex::encode(city_key.verifying_key().as_bytes()),
                status: "active".into(),
                encryption_key: to_city.key.to_hex(),
                // Admission accepts the city only with the TLS certificate registered for it.
                tls_fingerprints: vec![tls_fingerprint(&city_credentials)],
                ..Default::default()
            },
        )]
        .into(),
    );
    let catalog = residents_catalog();
    let directory = Directory {
        members,
        policies: policies(&catalog),
    };
    let asker = |purpose: &str| Asker {
        node: "420500".parse().unwrap(),
        principal: "bench".into(),
        role: "420500/analyst".into(),
        purpose: purpose.into(),
        grant: None,
    };
    let all_clear = directory
        .policies
        .decide(
            &"420502001".parse().unwrap(),
            &catalog,
            &asker("all clear"),
            "2026-01-01",
        )
        .unwrap();
    let members: Arc<dyn Members> = Arc::new(directory);
    let peers = Arc::new(Peers::new(
        street.clone(),
        street_credentials.clone(),
        members.clone(),
    ));
    let (signed_endpoint, unsigned_endpoint, mut signed, mut unsigned) = rt.block_on(async {
        let signed_endpoint = serve_mtls(
            &street_credentials,
            members.clone(),
            ExchangeService::new(
                registry.clone(),
                Arc::new(ReadService::new(
                    registry.clone(),
                    NodeKeys {
                        signer: Arc::new(signer),
                        encryption: street.encryption_keys().unwrap().current().public().clone(),
                    },
                    peers,
                    audit.clone(),
                    Redactor::new(Some(HashKey::generate().unwrap())),
                    street.principal_files(),
                    &tierlink_core::config::LimitSettings::default(),
                )),
                audit,
            ),
        )
        .await;
        let unsigned_endpoint = serve_mtls(
            &street_credentials,
            members.clone(),
            Unsigned {
                registry: registry.clone(),
                decision: all_clear.clone(),
            },
        )
        .await;
        let signed = connect(&city_credentials, &signed_endpoint).await.unwrap();
        let unsigned = connect(&city_credentials, &unsigned_endpoint)
            .await
            .unwrap();
        (signed_endpoint, unsigned_endpoint, signed, unsigned)
    });
    eprintln!("street serving on {signed_endpoint} (signed) and {unsigned_endpoint} (unsigned)");
    let verifier = BatchVerifier::new(trusted);
    let mut n = 0u64;
    let mut read_as = |purpose: &str| {
        n += 1;
        let request = query_as(&city_key, purpose, n);
        rt.block_on(async {
            let stream = signed.query(request).await.unwrap().into_inner();
            let mut records = 0;
            let expected = Expected {
                producer: Some("420502001".into()),
                ..Default::default()
            };
            receive(stream, &verifier, &city_opener, expected, |_, v| {
                records += v.records.len();
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(records, RECORDS);
        })
    };
    // Both streams cut batches at the producer's default size.
    let request = QueryRequest {
        scope: Some(ReadScope {
            catalog: RESIDENTS.into(),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut group = c.benchmark_group("produce_100k_residents");
    group
        .throughput(Throughput::Elements(RECORDS as u64))
        .sample_size(20);
    let signer = BatchSigner::new(
        &street_credentials.signing_key_pem,
        &street_credentials.signing_cert_pem,
        &street.trusted_ca().unwrap(),
    )
    .unwrap();
    let redactor = Redactor::new(Some(HashKey::generate().unwrap()));
    for (name, purpose) in [
        ("all_clear", "all clear"),
        ("third_redacted", "third redacted"),
    ] {
        let decision = policies(&catalog)
            .decide(
                &"420502001".parse().unwrap(),
                &catalog,
                &asker(purpose),
                "2026-01-01",
            )
            .unwrap();
        let plan = Plan::new(&catalog, &decision, redactor.clone()).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let records = registry.store().scan(RESIDENTS, "", None);
                let template = Template {
                    header: plan.header("420500", RESIDENTS, "query", "bench", None),
                    to: to_city.clone(),
                };
                let lists = record_lists(records, plan.clone(), CUT, None, |_| {});
                let mut n = 0;
                for sealed in seal_all(&signer, template, lists) {
                    n += sealed.unwrap().record_count;
                }
                assert_eq!(n, RECORDS as u64);
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("seal_100k_residents");
    group
        .throughput(Throughput::Elements(RECORDS as u64))
        .sample_size(20);
    let plan = Plan::new(&catalog, &all_clear, redactor.clone()).unwrap();
    let header = plan.header("420500", RESIDENTS, "query", "bench", None);
    let plain_verifier = BatchVerifier::new(street.trusted_ca().unwrap());
    group.bench_function("sealed", |b| {
        b.iter(|| {
            let records = registry.store().scan(RESIDENTS, "", None);
            let template = Template {
                header: header.clone(),
                to: to_city.clone(),
            };
            let lists = record_lists(records, plan.clone(), CUT, None, |_| {});
            let mut n = 0;
            for sealed in seal_all(&signer, template, lists) {
                let opened = city_opener
                    .open(&plain_verifier, &sealed.unwrap().batch)
                    .unwrap();
                n += opened.records.len();
            }
            assert_eq!(n, RECORDS);
        })
    });
    // As batches were before sealing: the same lists signed in clear. The header names a
    // recipient only so that the verifier runs the same checks.
    let in_clear = tierlink_proto::v1::BatchHeader {
        sealed_to: "420500".into(),
        recipient_key: vec![0; KEY_BYTES],
        encapsulated_key: vec![0; KEY_BYTES],
        ..header.clone()
    };
    group.bench_function("unsealed", |b| {
        b.iter(|| {
            let records = registry.store().scan(RESIDENTS, "", None);
            let mut n = 0;
            for (sequence, list) in
                record_lists(records, plan.clone(), CUT, None, |_| {}).enumerate()
            {
                let header = tierlink_proto::v1::BatchHeader {
                    sequence: sequence as u32,
                    record_count: list.as_ref().unwrap().1,
                    ..in_clear.clone()
                };
                let batch = signer.sign(header, list.unwrap().0);
                plain_verifier.verify(&batch).unwrap();
                n += RecordList::decode(batch.records.as_slice())
                    .unwrap()
                    .records
                    .len();
            }
            assert_eq!(n, RECORDS);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("stream_100k_residents");
    group
        .throughput(Throughput::Elements(RECORDS as u64))
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(15));
    group.bench_function("policy_all_clear", |b| b.iter(|| read_as("all clear")));
    group.bench_function("policy_third_redacted", |b| {
        b.iter(|| read_as("third redacted"))
    });
    group.bench_function("unsigned", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut stream = unsigned.query(request.clone()).await.unwrap().into_inner();
                let mut n = 0;
                while let Some(batch) = stream.next().await {
                    n += RecordList::decode(batch.unwrap().records.as_slice())
                        .unwrap()
                        .records
                        .len();
                }
                assert_eq!(n, RECORDS);
            })
        })
    });
    group.finish();
}

fn ingest(c: &mut Criterion) {
    const BATCH: usize = 5_000;
    let catalog = residents_catalog();
    let schema = RecordSchema::new(&catalog).unwrap();
    let cols = schema.columns(&columns()).unwrap();
    let mut group = c.benchmark_group("ingest_5k_residents");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(20);

    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(Arc::new(
        SledStore::open(&dir.path().join("checked")).unwrap(),
    ))
    .unwrap();
    registry.put_catalog(catalog.clone()).unwrap();
    let store = SledStore::open(&dir.path().join("raw")).unwrap();
    // The same keys every time: after the first round both sides write new versions.
    let rows = sample::residents("420502001", BATCH, 3);
    let width = catalog.items.len();
    let unchecked = |rows: Vec<Vec<String>>| -> Vec<Row> {
        rows.into_iter()
            .map(|row| {
                let mut values = vec![String::new(); width];
                for (value, &n) in row.into_iter().zip(&cols) {
                    values[n] = value;
                }
                Row {
                    key: values[0].clone(),
                    values,
                }
            })
            .collect()
    };
    group.bench_function("checked", |b| {
        b.iter(|| {
            registry
                .put_records(RESIDENTS, &columns(), rows.clone())
                .unwrap()
        })
    });
    group.bench_function("store_only", |b| {
        b.iter(|| {
            store
                .put_records(RESIDENTS, unchecked(rows.clone()))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, stream, ingest);
criterion_main!(benches);
