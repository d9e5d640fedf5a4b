//! Data that moves by itself, each figure beside its baseline in one run, on one federation on
//! loopback and a PostgreSQL server of its own:
//!
//! 1. **Initial load**: 1,000,000 residents from a PostgreSQL table into the street's catalog
//!    through the connector (paged reads, mapping and checks, signed gRPC writes with the
//!    offset, the store), against PostgreSQL's own `COPY … TO STDOUT` of the same table: what
//!    an integrator does today to get the rows out at all.
//! 2. **Feed against Query**: the city's analyst (zhao@420500, relayed by the city, sealed,
//!    signed, keys hashed) reads the same 1,000,000 records as a query and as a feed from the
//!    start of the change log, alternating, twice each.
//! 3. **Latency**: 200 rows committed one by one in PostgreSQL (20 ms apart), each read by the
//!    running connector (lag 0, polling every 5 ms) and arriving in zhao's feed at the city:
//!    commit to arrival, p50, p99 and max.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench feeds` (prints tables).

use std::time::{Duration, Instant};

use tierlink_client::NodeClient;
use tierlink_connect::postgres::source::{Source, SourceSpec};
use tierlink_core::catalog::EXAMPLES;
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::{Credential, QueryRequest, ReadScope, SubscribeRequest};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_sandbox::postgres::LocalPostgres;
use tierlink_sandbox::sample::{self, RESIDENT_COLUMNS, RESIDENTS_CATALOG, SECURITY_CHECK};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREET: &str = "420502001";
const ROWS: usize = 1_000_000;
/// Rows generated, then copied in PostgreSQL with new keys up to [`ROWS`].
const TEMPLATE: usize = 10_000;
const COMMITS: usize = 200;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(measure());
}

/// `CREATE TABLE` for residents as text columns, the updated-at, and the index a source reads by.
fn residents_table(name: &str) -> String {
    let columns: Vec<String> = RESIDENT_COLUMNS
        .iter()
        .map(|c| format!("{c} text"))
        .collect();
    format!(
        "CREATE TABLE {name} ({}, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (person_id));
         CREATE INDEX ON {name} (updated_at, person_id);",
        columns.join(", ")
    )
}

/// Copies `rows` into `table` with `COPY … FROM STDIN` (text format).
async fn copy_in(db: &tokio_postgres::Client, table: &str, rows: &[Vec<String>]) {
    use futures_util::SinkExt;
    let sink = db
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN",
            RESIDENT_COLUMNS.join(", ")
        ))
        .await
        .unwrap();
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(text)).await.unwrap();
    sink.close().await.unwrap();
}

fn spec(table: &str) -> SourceSpec {
    SourceSpec {
        catalog: RESIDENTS_CATALOG.into(),
        table: table.into(),
        key: "person_id".into(),
        updated_at: "updated_at".into(),
        lag: Duration::ZERO,
        page_rows: 5_000,
        mapping: None,
    }
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
    let token = f
        .add_principal(city.code(), "zhao", &[role.as_str()])
        .unwrap();
    let scope = ReadScope {
        catalog: RESIDENTS_CATALOG.into(),
        target: street.code().to_string(),
        credential: Some(Credential {
            principal: "zhao".into(),
            token,
            role: role.clone(),
            purpose: SECURITY_CHECK.into(),
            grant: String::new(),
        }),
        ..Default::default()
    };

    // 1. Initial load against COPY TO STDOUT.
    let pg = LocalPostgres::start().expect("a local PostgreSQL server");
    let db = tierlink_connect::postgres::connect(&pg.url())
        .await
        .unwrap();
    db.batch_execute(&residents_table("template"))
        .await
        .unwrap();
    copy_in(&db, "template", &sample::residents(STREET, TEMPLATE, 5)).await;
    db.batch_execute(&residents_table("bulk")).await.unwrap();
    // Each copy of the template gets new keys: P, the street, a seven-digit number.
    let columns: Vec<String> = RESIDENT_COLUMNS
        .iter()
        .map(|c| match *c {
            "person_id" => format!(
                "'P{STREET}' || lpad((g * {TEMPLATE} + substr(person_id, 11)::int)::text, 7, '0')"
            ),
            other => other.to_owned(),
        })
        .collect();
    db.batch_execute(&format!(
        "INSERT INTO bulk ({}) SELECT {} FROM template, generate_series(0, {}) g; ANALYZE bulk;",
        RESIDENT_COLUMNS.join(", "),
        columns.join(", "),
        ROWS / TEMPLATE - 1
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let stream = db.copy_out("COPY bulk TO STDOUT").await.unwrap();
    futures_util::pin_mut!(stream);
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let copy = started.elapsed();
    assert_eq!(lines, ROWS);
    let started = Instant::now();
    let mut source = Source::open(spec("bulk"), &pg.url(), street).await.unwrap();
    let mut loaded = 0;
    loop {
        match source.step().await.unwrap() {
            0 => break,
            n => loaded += n,
        }
    }
    let load = started.elapsed();
    assert_eq!(loaded, ROWS);
    println!(
        "\n{ROWS} residents out of PostgreSQL ({} MB as COPY text)",
        bytes >> 20
    );
    println!("| path | seconds | rows/s |");
    println!("|---|---|---|");
    for (name, took) in [
        (
            "`COPY bulk TO STDOUT` (tokio-postgres, bytes counted)",
            copy,
        ),
        ("connector initial load into the street's catalog", load),
    ] {
        println!(
            "| {name} | {:.2} | {:.0} |",
            took.as_secs_f64(),
            ROWS as f64 / took.as_secs_f64()
        );
    }
    println!(
        "connector / COPY time: {:.1}×",
        load.as_secs_f64() / copy.as_secs_f64()
    );

    // 2. Feed against Query, the same records.
    let query = || async {
        let request = QueryRequest {
            scope: Some(scope.clone()),
            ..Default::default()
        };
        let started = Instant::now();
        let summary = city.read(None, request, |_, _| Ok(())).await.unwrap();
        assert_eq!(summary.records as usize, ROWS);
        (summary.records as usize, started.elapsed())
    };
    // The change log from its start: the epoch of any token the catalog's batches carry.
    let epoch = {
        let mut token = String::new();
        let request = QueryRequest {
            scope: Some(scope.clone()),
            limit: 1,
            ..Default::default()
        };
        city.read(None, request, |_, batch| {
            token = batch.header.resume_token;
            Ok(())
        })
        .await
        .unwrap();
        token.rsplit_once('.').unwrap().0.to_owned()
    };
    let feed = || async {
        let request = SubscribeRequest {
            scope: Some(scope.clone()),
            resume_token: format!("{epoch}.0"),
            batch_size: 0,
        };
        let started = Instant::now();
        let mut batches = city.batches(None, request).await.unwrap();
        let mut records = 0;
        while records < ROWS {
            let (_, batch) = batches.next().await.unwrap().unwrap();
            records += batch.records.len();
        }
        (records, started.elapsed())
    };
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        for (n, (records, took)) in [query().await, feed().await].into_iter().enumerate() {
            rates[n].push(records as f64 / took.as_secs_f64());
        }
    }
    println!("\n{ROWS} residents read by zhao@420500 through the city, records/s");
    println!("| read | runs | best |");
    println!("|---|---|---|");
    for (name, runs) in [
        ("Query", &rates[0]),
        ("Subscribe from position 0", &rates[1]),
    ] {
        let shown: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
        let best = runs.iter().copied().fold(0.0, f64::max);
        println!("| {name} | {} | {best:.0} |", shown.join(", "));
    }
    let best = |r: &Vec<f64>| r.iter().copied().fold(0.0, f64::max);
    println!(
        "feed / query: {:.0}%",
        100.0 * best(&rates[1]) / best(&rates[0])
    );

    // 3. Commit in PostgreSQL to arrival in a feed at another node.
    db.batch_execute(&residents_table("live")).await.unwrap();
    let url = pg.url();
    let street_dir = f.nodes[2].dir.clone();
    let connector = tokio::spawn(async move {
        let client = NodeClient::open(street_dir).unwrap();
        let mut source = Source::open(spec("live"), &url, &client).await.unwrap();
        source
            .run(Duration::from_millis(5), None, std::future::pending())
            .await
    });
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let city_dir = f.nodes[0].dir.clone();
    let follow = scope.clone();
    let follower = tokio::spawn(async move {
        let client = NodeClient::open(city_dir).unwrap();
        let request = SubscribeRequest {
            scope: Some(follow),
            resume_token: String::new(),
            batch_size: 0,
        };
        let mut batches = client.batches(None, request).await.unwrap();
        while let Ok(Some((_, batch))) = batches.next().await {
            let now = Instant::now();
            for _ in &batch.records {
                let _ = arrived_tx.send(now);
            }
        }
    });
    // The feed is open before the first commit: its first batch is the tail it starts after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = sample::residents(STREET, COMMITS, 11);
    let mut latencies = Vec::with_capacity(COMMITS);
    for row in &rows {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            row.iter().map(|v| v as _).collect();
        let placeholders: Vec<String> = (1..=row.len()).map(|n| format!("${n}")).collect();
        db.execute(
            &format!(
                "INSERT INTO live ({}) VALUES ({})",
                RESIDENT_COLUMNS.join(", "),
                placeholders.join(", ")
            ),
            &params,
        )
        .await
        .unwrap();
        let committed = Instant::now();
        let at = tokio::time::timeout(Duration::from_secs(30), arrived.recv())
            .await
            .expect("the version arrives")
            .unwrap();
        latencies.push(at.saturating_duration_since(committed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n{COMMITS} rows committed one by one in PostgreSQL, to arrival in zhao's feed at the city"
    );
    println!("| p50 ms | p99 ms | max ms |");
    println!("|---|---|---|");
    println!(
        "| {:.1} | {:.1} | {:.1} |",
        ms(latencies[COMMITS / 2]),
        ms(latencies[COMMITS * 99 / 100]),
        ms(latencies[COMMITS - 1])
    );
    connector.abort();
    follower.abort();
    drop(pg);
    f.stop().await.unwrap();
}
