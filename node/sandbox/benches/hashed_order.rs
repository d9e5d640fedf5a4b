//! What sending records in hashed-key order costs the producer, beside keys in clear in the same
//! run. Both read the street's residents under the hashed-key case's grant (name and phone
//! hashed; birth date, community, current address and the floating flag clear; the rest
//! withheld); they differ only in the person id, the key: clear (records in key order, one scan)
//! or hashed (a ranking pass over the scan, then one lookup per record in hashed-key order).
//! In process: records chosen and ordered, the decision carried out, batches of 1,000 cut and
//! signed.
//!
//! - `query_residents/keys_clear` vs `/keys_hashed`: every record.
//! - `query_residents_limit_100/keys_clear` vs `/keys_hashed`: `limit 100`. In key order the scan
//!   stops after 100 records; in hashed order every record is ranked to find the first 100.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench hashed_order`; `TIERLINK_BENCH_RECORDS=1000000`
//! for another street size (default 100,000).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tierlink_core::catalog::{EXAMPLES, parse_catalogs};
use tierlink_core::identity::Tier;
use tierlink_core::limits::DEFAULT_BATCH_BYTES;
use tierlink_core::policy::{Action, Decision, HashKey, Redactor};
use tierlink_core::provision::init_ca;
use tierlink_core::signed::{BatchSigner, Recipient};
use tierlink_node::exchange::produce::{
    Cut, DEFAULT_BATCH_SIZE, Plan, Template, query_records, record_lists, seal_all,
};
use tierlink_proto::v1::QueryRequest;
use tierlink_sandbox::federation::offline_node;
use tierlink_sandbox::sample;
use tierlink_store::registry::Registry;
use tierlink_store::{SledStore, Store};

const RESIDENTS: &str = "101001001/000001";

/// The case's grant, with the person id as `key`.
fn decision(catalog: &tierlink_core::catalog::Catalog, key: Action) -> Decision {
    let mut decision = Decision::owner(catalog);
    for d in &mut decision.items {
        d.action = match d.item.as_str() {
            "person_id" => key,
            "name" | "phone" => Action::Hash,
            "birth_date" | "community_code" | "grid_code" | "current_address" | "floating" => {
                Action::Clear
            }
            _ => Action::Withhold,
        };
    }
    decision
}

fn query(c: &mut Criterion) {
    let records: usize = std::env::var("TIERLINK_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let root = tempfile::tempdir().unwrap();
    let ca = init_ca(&root.path().join("ca"), "bench").unwrap();
    let street = offline_node(root.path(), &ca, "420502001", Tier::Street, Some("420502")).unwrap();
    let credentials = street.credentials().unwrap();
    let signer = BatchSigner::new(
        &credentials.signing_key_pem,
        &credentials.signing_cert_pem,
        &street.trusted_ca().unwrap(),
    )
    .unwrap();
    // The street reads for itself: its batches are sealed to its own key.
    let to = Recipient {
        node: "420502001".parse().unwrap(),
        key: street.encryption_keys().unwrap().current().public().clone(),
    };
    let store = SledStore::open(&street.path(&street.config.files.data)).unwrap();
    let registry = Registry::open(Arc::new(store)).unwrap();
    let catalog = parse_catalogs(EXAMPLES[0].1, EXAMPLES[0].0)
        .unwrap()
        .remove(0);
    registry.put_catalog(catalog.clone()).unwrap();
    let columns: Vec<String> = sample::RESIDENT_COLUMNS
        .iter()
        .map(|s| s.to_string())
        .collect();
    for chunk in sample::residents("420502001", records, 11).chunks(10_000) {
        registry
            .put_records(RESIDENTS, &columns, chunk.to_vec())
            .unwrap();
    }
    let store: Arc<dyn Store> = registry.store().clone();
    let redactor = Redactor::new(Some(HashKey::generate().unwrap()));
    let cut = Cut {
        records: DEFAULT_BATCH_SIZE,
        bytes: DEFAULT_BATCH_BYTES,
    };

    for (group, limit) in [("query_residents", 0), ("query_residents_limit_100", 100)] {
        let sent = if limit == 0 { records } else { limit };
        let mut group = c.benchmark_group(group);
        group
            .throughput(Throughput::Elements(sent as u64))
            .sample_size(10);
        for (name, key) in [("keys_clear", Action::Clear), ("keys_hashed", Action::Hash)] {
            let request = QueryRequest {
                limit: limit as u64,
                ..Default::default()
            };
            let plan = Plan::new(&catalog, &decision(&catalog, key), redactor.clone())
                .unwrap()
                .with_query(&catalog, &request)
                .unwrap();
            let template = plan.header("420502", RESIDENTS, "query", "bench", None);
            assert_eq!(template.key_hashed, key == Action::Hash);
            group.bench_function(name, |b| {
                b.iter(|| {
                    let ordered = query_records(store.clone(), RESIDENTS, &plan, &request);
                    let limit = (limit > 0).then_some(limit as u64);
                    let lists = record_lists(ordered, plan.clone(), cut, limit, |_| {});
                    let mut n = 0;
                    let template = Template {
                        header: template.clone(),
                        to: to.clone(),
                    };
                    for sealed in seal_all(&signer, template, lists) {
                        n += sealed.unwrap().record_count;
                    }
                    assert_eq!(n, sent as u64);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, query);
criterion_main!(benches);
