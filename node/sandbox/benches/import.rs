//! Bulk import against the raw store write of the same rows, in one run.
//!
//! ROWS job seekers (default 1,000,000) as a CSV file in UTF-8 with CRLF line ends are imported
//! into the street node of a local federation the way `tierlink records import` does it: read and
//! checked by `tierlink_core::import`, then written over gRPC in batches of up to 5,000 records and
//! 4 MiB, the node checking each batch again and storing it. The same rows are then written
//! straight into an empty sled store (`Store::put_records`, batches of 5,000): the raw rate. Last,
//! the import runs again, every row unchanged: the cost of resuming an interrupted import.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench import [-- ROWS]` (prints a table).

use std::time::Instant;

use tierlink_client::{Batching, NodeClient};
use tierlink_core::catalog::{EXAMPLES, RecordSchema, Row, gb11643_check_digit, parse_catalogs};
use tierlink_core::import::{self, Imported, Options};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_store::{SledStore, Store};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREET: usize = 2;
const SEEKERS: &str = "301001001/000001";

/// `rows` job seekers as CSV, each with a valid ID number agreeing with its sex and birth date.
fn csv(rows: usize) -> Vec<u8> {
    let mut text = String::from(
        "seeker_id,id_number,name,sex,birth_date,phone,education,desired_occupation,desired_wage,unemployed_since,registered_on,street_code\r\n",
    );
    for n in 0..rows {
        let day = chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap()
            + chrono::Days::new((n / 1000) as u64);
        let seq = n % 1000;
        let first17 = format!("420502{}{seq:03}", day.format("%Y%m%d"));
        let check = gb11643_check_digit(&first17).unwrap();
        let sex = if seq % 2 == 1 { 1 } else { 2 };
        text.push_str(&format!(
            "S{n:08},{first17}{check},求职者{n},{sex},{},138{:08},,保安,{},,2026-11-01,420502002\r\n",
            day.format("%Y-%m-%d"),
            n,
            3000 + n % 5000
        ));
    }
    text.into_bytes()
}

fn rate(rows: usize, seconds: f64) -> String {
    format!("{:.0}", rows as f64 / seconds)
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let bytes = csv(rows);
    let catalog_json = EXAMPLES
        .iter()
        .find(|(name, _)| *name == "job-seekers.json")
        .map(|(_, json)| *json)
        .expect("the job-seekers example");
    let catalog = parse_catalogs(catalog_json, "job-seekers.json")
        .unwrap()
        .remove(0);
    let schema = RecordSchema::new(&catalog).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{rows} job seekers, {:.1} MB of CSV (UTF-8, CRLF)",
        bytes.len() as f64 / 1e6
    );
    println!("| step | seconds | rows/s |");
    println!("|---|---|---|");
    let (raw_rows, import_seconds): (Vec<Row>, f64) = runtime.block_on(async {
        let f = LocalFederation::create(&dir.path().join("federation"), default_units())
            .await
            .unwrap();
        let client = NodeClient::open(f.nodes[STREET].dir.clone()).unwrap();
        client.put_catalog(catalog_json.to_owned()).await.unwrap();

        let run = |label: &'static str| {
            let client = &client;
            let bytes = &bytes;
            let schema = &schema;
            async move {
                let started = Instant::now();
                let imported: Imported =
                    import::import(bytes, &Options::default(), None, schema).unwrap();
                assert!(imported.rejects.is_empty(), "{:?}", imported.rejects[0]);
                let checked = started.elapsed().as_secs_f64();
                // The rows for the raw write, copied outside the import's time.
                let kept: Vec<Row> = imported.rows.iter().map(|r| r.row.clone()).collect();
                let sending = Instant::now();
                let values = imported.rows.into_iter().map(|r| r.row.values).collect();
                let written = client
                    .write_records(SEEKERS, imported.items, values, Batching::default(), |_| {})
                    .await
                    .unwrap();
                assert_eq!(written.records, rows);
                let total = checked + sending.elapsed().as_secs_f64();
                println!(
                    "| {label}: decode, parse and check | {checked:.2} | {} |",
                    rate(rows, checked)
                );
                println!(
                    "| {label}: whole import ({} new, {} unchanged) | {total:.2} | {} |",
                    written.created,
                    written.unchanged,
                    rate(rows, total)
                );
                (kept, total)
            }
        };
        let (kept, seconds) = run("import").await;
        run("import again").await;
        f.stop().await.unwrap();
        (kept, seconds)
    });

    let store = SledStore::open(&dir.path().join("raw")).unwrap();
    store.put_catalog(&catalog).unwrap();
    let started = Instant::now();
    let mut rows_left = raw_rows.into_iter().peekable();
    while rows_left.peek().is_some() {
        let batch: Vec<Row> = rows_left.by_ref().take(5000).collect();
        store.put_records(SEEKERS, batch).unwrap();
    }
    let raw = started.elapsed().as_secs_f64();
    println!(
        "| raw store write (Store::put_records, 5,000 a batch) | {raw:.2} | {} |",
        rate(rows, raw)
    );
    println!(
        "\nthe import's rate is {:.0}% of the raw write's",
        100.0 * raw / import_seconds
    );
}
