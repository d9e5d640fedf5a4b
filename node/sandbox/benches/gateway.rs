//! Records per second of one read of the street's 100,000 residents by the city's analyst
//! (zhao@420500, under the city-security grant: relayed by the city, sealed, signed, keys
//! hashed), taken two ways from the same running federation in one run:
//!
//! - gRPC `Query` through the command line's client, which verifies and opens every batch;
//! - the city's REST gateway as NDJSON over HTTPS (the gateway verifies and opens the batches and
//!   writes one JSON line a record; the client reads the lines and counts them).
//!
//! Three runs each, alternating; the table gives each run and the median.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench gateway` (prints a table).

use std::time::Instant;

use tierlink_client::NodeClient;
use tierlink_core::catalog::EXAMPLES;
use tierlink_core::identity::tokens::{Issue, Scope};
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::{Credential, QueryRequest, ReadScope};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_sandbox::sample::{self, RESIDENTS_CATALOG, SECURITY_CHECK};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RESIDENTS: usize = 100_000;
const RUNS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(measure());
}

async fn measure() {
    let root = tempfile::tempdir().unwrap();
    let f = LocalFederation::create(root.path(), default_units())
        .await
        .unwrap();
    let clients: Vec<NodeClient> = f
        .nodes
        .iter()
        .map(|n| NodeClient::open(n.dir.clone()).unwrap())
        .collect();
    let (city, district, street) = (&clients[0], &clients[1], &clients[2]);
    for (file, json) in EXAMPLES {
        if *file == "residents.json" {
            street.put_catalog(json.to_string()).await.unwrap();
        }
    }
    let columns: Vec<String> = sample::RESIDENT_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .collect();
    for chunk in sample::residents("420502001", RESIDENTS, 5).chunks(10_000) {
        street
            .put_records(RESIDENTS_CATALOG, columns.clone(), chunk.to_vec())
            .await
            .unwrap();
    }
    let revision = street.publish(&[RESIDENTS_CATALOG]).await.unwrap();
    f.wait_for_revision(revision).await.unwrap();
    for (issuer, command) in
        sample::three_tier_policies(city.code(), district.code(), street.code(), "2099-12-31")
    {
        f.issue(&issuer, vec![DirectoryCommand::Policy(command)])
            .await
            .unwrap();
    }
    let role = format!("{}/ps-analyst", city.code());
    let personal = f
        .add_principal(city.code(), "zhao", &[role.as_str()])
        .unwrap();
    let api = f
        .add_token(
            city.code(),
            Issue::new("zhao", Scope::Read, "2099-12-31".parse().unwrap()),
        )
        .unwrap();
    let node = &f.nodes[0];
    let ca = std::fs::read(node.dir.path(&node.dir.config.files.ca)).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let url = format!(
        "{}/v1/catalogs/{RESIDENTS_CATALOG}/records",
        node.gateway_url().unwrap()
    );

    let grpc = || async {
        let request = QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS_CATALOG.into(),
                target: street.code().to_string(),
                credential: Some(Credential {
                    principal: "zhao".into(),
                    token: personal.clone(),
                    role: role.clone(),
                    purpose: SECURITY_CHECK.into(),
                    grant: String::new(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = Instant::now();
        let summary = city.read(None, request, |_, _| Ok(())).await.unwrap();
        (summary.records as usize, started.elapsed())
    };
    let gateway = || async {
        let started = Instant::now();
        let mut response = http
            .get(&url)
            .bearer_auth(&api)
            .header("Tierlink-Purpose", SECURITY_CHECK.replace(' ', "%20"))
            .header("Accept", "application/x-ndjson")
            .query(&[("target", street.code().as_str())])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let mut lines = 0;
        while let Some(chunk) = response.chunk().await.unwrap() {
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        (lines, started.elapsed())
    };
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (n, (records, took)) in [grpc().await, gateway().await].into_iter().enumerate() {
            assert_eq!(records, RESIDENTS);
            rates[n].push(records as f64 / took.as_secs_f64());
        }
    }
    println!(
        "{RESIDENTS} residents read by zhao@420500 through the city, {RUNS} runs each, records/s"
    );
    println!("| path | runs | median |");
    println!("|---|---|---|");
    for (name, runs) in [
        ("gRPC Query (client opens)", &rates[0]),
        ("REST NDJSON over HTTPS", &rates[1]),
    ] {
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let shown: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "| {name} | {} | {:.0} |",
            shown.join(", "),
            sorted[RUNS / 2]
        );
    }
    f.stop().await.unwrap();
}
