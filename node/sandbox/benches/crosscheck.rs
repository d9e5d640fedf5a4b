//! A cross-check of 100,000 against 100,000 residents (the street's, and a district's copy
//! with a fifth of them missing, as many others added and 15 changed; join on the ID number,
//! comparing name and current address), beside two baselines, in one run:
//!
//! - `crosscheck/between_nodes`: the street's checker runs it from the street against the
//!   district over mutual TLS: both decisions, records read from both stores, both rounds of the
//!   private set intersection in chunks, both runs kept and audited.
//! - `crosscheck/in_process`: the same protocol on the same records in one process
//!   ([`tierlink_core::crosscheck::in_process`]): what the cryptography costs, without the nodes.
//! - `crosscheck/plain_hash_join`: what a system does today once one side has sent its whole
//!   catalog: a hash join on the ID number, comparing the two items in clear. It reveals every
//!   record of the sending side; the ratio to it is the price of revealing nothing unmatched.
//!
//! Per record and side, round one costs two hashes to the group and four scalar
//! multiplications (own two elements blinded, the other's two raised again); round two
//! `2 × 2` more per differing record.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench crosscheck`; `TIERLINK_BENCH_RECORDS=N` for
//! another size (default 100,000).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tierlink_client::NodeClient;
use tierlink_core::catalog::{Catalog, EXAMPLES, parse_catalogs};
use tierlink_core::crosscheck::{Party, Terms, in_process, prepare};
use tierlink_proto::v1::run_progress::Event;
use tierlink_proto::v1::{Credential, RunCrossCheckRequest};
use tierlink_sandbox::crosscheck::{
    PURPOSE, column, define_role, grant_residents, residents_and_copy,
};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_sandbox::sample::{RESIDENT_COLUMNS, RESIDENTS_CATALOG};

const STREET: &str = "420502001";
const COMPARED: [&str; 2] = ["name", "current_address"];

fn residents_catalog() -> Catalog {
    let (_, text) = EXAMPLES
        .iter()
        .find(|(f, _)| *f == "residents.json")
        .expect("the residents example");
    parse_catalogs(text, "residents.json")
        .expect("a valid example")
        .remove(0)
}

/// Rows as a catalog's records: key and values in catalog item order.
fn records(catalog: &Catalog, rows: &[Vec<String>]) -> Vec<(String, Vec<String>)> {
    let at: Vec<Option<usize>> = catalog
        .items
        .iter()
        .map(|i| RESIDENT_COLUMNS.iter().position(|c| *c == i.code))
        .collect();
    rows.iter()
        .map(|row| {
            let values = at
                .iter()
                .map(|a| a.map(|a| row[a].clone()).unwrap_or_default())
                .collect();
            (row[0].clone(), values)
        })
        .collect()
}

fn terms() -> Terms {
    Terms {
        run: "cc_0000000000000000".into(),
        initiator: format!("{STREET}:{RESIDENTS_CATALOG}"),
        counterpart: format!("420502:{RESIDENTS_CATALOG}"),
        join: "id_number".into(),
        compared: COMPARED.iter().map(|s| s.to_string()).collect(),
    }
}

fn bench(c: &mut Criterion) {
    let count: usize = std::env::var("TIERLINK_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (street_rows, district_rows) = residents_and_copy(STREET, count);
    let catalog = residents_catalog();
    let (here, there) = (
        records(&catalog, &street_rows),
        records(&catalog, &district_rows),
    );
    let root = tempfile::tempdir().expect("a temporary directory");
    let (federation, token) = runtime.block_on(async {
        let federation = LocalFederation::create(root.path(), default_units())
            .await
            .expect("a federation");
        let columns: Vec<String> = RESIDENT_COLUMNS.iter().map(|c| c.to_string()).collect();
        let residents = EXAMPLES
            .iter()
            .find(|(f, _)| *f == "residents.json")
            .expect("the residents example")
            .1;
        for (n, rows) in [(2, &street_rows), (1, &district_rows)] {
            let client = NodeClient::open(federation.nodes[n].dir.clone()).expect("a client");
            client
                .put_catalog(residents.to_string())
                .await
                .expect("the catalog");
            client
                .write_records(
                    RESIDENTS_CATALOG,
                    columns.clone(),
                    rows.clone(),
                    Default::default(),
                    |_| {},
                )
                .await
                .expect("the records");
            let revision = client
                .publish(&[RESIDENTS_CATALOG])
                .await
                .expect("published");
            federation
                .wait_for_revision(revision)
                .await
                .expect("replicated");
        }
        let street = federation.nodes[2].dir.code().clone();
        let district = federation.nodes[1].dir.code().clone();
        let role = define_role(&federation, &street, "checker")
            .await
            .expect("a role");
        for (producer, id) in [(&street, "checker-street"), (&district, "checker-district")] {
            grant_residents(&federation, (&street, &role), producer, id, &[], None)
                .await
                .expect("a grant");
        }
        let token = federation
            .add_principal(&street, "zhou", &[role.as_str()])
            .expect("a principal");
        (federation, (token, role))
    });
    let street = NodeClient::open(federation.nodes[2].dir.clone()).expect("a client");
    let request = RunCrossCheckRequest {
        catalog: RESIDENTS_CATALOG.into(),
        against_node: "420502".into(),
        against_catalog: RESIDENTS_CATALOG.into(),
        join: "id_number".into(),
        compared: COMPARED.iter().map(|s| s.to_string()).collect(),
        credential: Some(Credential {
            principal: "zhou".into(),
            token: token.0.clone(),
            role: token.1.clone(),
            purpose: PURPOSE.into(),
            grant: String::new(),
        }),
        holder: false,
        ..RunCrossCheckRequest::default()
    };

    let mut group = c.benchmark_group("crosscheck");
    group
        .throughput(Throughput::Elements(count as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(60));
    group.bench_function("between_nodes", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut client = street.crosscheck().await.expect("a client");
                let mut events = client
                    .run(request.clone())
                    .await
                    .expect("the run starts")
                    .into_inner();
                while let Some(event) = events.message().await.expect("the run goes on") {
                    if let Some(Event::Run(run)) = event.event {
                        return run;
                    }
                }
                panic!("the run ended without its result");
            })
        })
    });
    group.bench_function("in_process", |b| {
        b.iter(|| {
            let key = [7u8; 32];
            let a = prepare(&catalog, &terms(), here.clone()).expect("prepared");
            let z = prepare(&catalog, &terms(), there.clone()).expect("prepared");
            in_process(
                Party::new(terms(), a, &key).expect("a party"),
                Party::new(terms(), z, &key).expect("a party"),
            )
            .expect("a run")
        })
    });
    let (id, name, address) = (
        column("id_number"),
        column("name"),
        column("current_address"),
    );
    group.bench_function("plain_hash_join", |b| {
        b.iter(|| {
            let sent: HashMap<&str, (&str, &str)> = district_rows
                .iter()
                .map(|r| (r[id].as_str(), (r[name].as_str(), r[address].as_str())))
                .collect();
            let mut differing = 0;
            let mut only_here = 0;
            for r in &street_rows {
                match sent.get(r[id].as_str()) {
                    Some(&(n, a)) if n != r[name] || a != r[address] => differing += 1,
                    Some(_) => {}
                    None => only_here += 1,
                }
            }
            (differing, only_here)
        })
    });
    group.finish();
    runtime.block_on(async {
        drop(street);
        federation.stop().await.expect("the federation stops");
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
