//! A street at Xihu's scale: RESIDENTS residents (default 1,000,000) at one street, each figure
//! beside its baseline in the same run.
//!
//! - **Import**: the sample residents written to the street node of a local federation as
//!   `tierlink records import` writes them (`NodeClient::write_records`: batches of 5,000 over
//!   gRPC, each checked against the catalog, audited and flushed by the node), beside the same
//!   records written to an empty store unchecked. Then 1% of them are written again with a new
//!   address: the records a `--since` read asks for.
//! - **On disk**: the street's sled directory once the node has stopped (flushed), beside the
//!   bytes of the records themselves (the sum of their encoded sizes; history included), and
//!   beside raw sled holding the current records alone.
//! - **Point lookups**: `Store::get` of random current records, beside raw sled (`sled::Tree::get`
//!   on a database of its own holding the same keys and values in one tree, with the store's
//!   cache size), alternating rounds, after a warm-up round each.
//! - **Since**: the 1% written last, read with `Store::scan_since` (from the change log) beside a
//!   scan of every record kept by its write time, as queries read them before.
//! - **Streaming**: the street node served from one child process, the city and the district
//!   from another, as `tierlink serve` serves them; a third child reads every resident as the
//!   district's principal li (relayed by the district, sealed to it, verified and opened). Peak
//!   resident memory (`VmHWM` in `/proc/PID/status`) of all three, and the read's rate; once
//!   per street page cache given (`[store] cache_mb`, the default when none is).
//!
//! Run: `cargo bench -p tierlink-sandbox --bench street [-- RESIDENTS] [--cache-mb 256,64]`
//! (prints a table).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tierlink_client::{Batching, NodeClient};
use tierlink_core::catalog::EXAMPLES;
use tierlink_core::catalog::Row;
use tierlink_core::config::{DEFAULT_STORE_CACHE_MB, NodeDir};
use tierlink_proto::v1::{Credential, QueryRequest, ReadScope};
use tierlink_sandbox::federation::{LocalFederation, cast, default_units};
use tierlink_sandbox::sample::{self, ALLOWANCE_REVIEW, RESIDENTS_CATALOG};
use tierlink_store::{SledStore, Store, StoredRecord};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Point lookups measured on each side, per round.
const LOOKUPS: usize = 100_000;
/// The store's page cache, for the raw baseline (`SledStore::open`'s).
const CACHE_BYTES: u64 = DEFAULT_STORE_CACHE_MB << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(&args[1..]),
        Some("read") => return read(Path::new(&args[1]), &args[2]),
        _ => {}
    }
    let residents: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // The street node's page cache for each streamed read, MiB: `--cache-mb 256,64`.
    let caches: Vec<u64> = args
        .iter()
        .position(|a| a == "--cache-mb")
        .map(|at| {
            args[at + 1]
                .split(',')
                .map(|c| c.parse().unwrap())
                .collect()
        })
        .unwrap_or_else(|| vec![DEFAULT_STORE_CACHE_MB]);
    let root = tempfile::tempdir().expect("a temporary directory");
    let setup = import(root.path(), residents);
    println!(
        "{residents} residents at one street; machine load {}",
        load()
    );
    println!("| what | figure | baseline in the same run | ratio |");
    println!("|---|---|---|---|");
    let data = setup.street.path(&setup.street.config.files.data);
    let store = SledStore::open(&data).expect("the street's store");
    let raw_write = raw_write(&root.path().join("raw-store"), &store);
    println!(
        "| import through the node (checked, batches of 5,000, audited, flushed) | {:.1} s, {:.0} records/s | the same records written to an empty store unchecked (`Store::put_records`, 5,000 a batch): {:.1} s, {:.0} records/s | {:.2} |",
        setup.import_seconds,
        residents as f64 / setup.import_seconds,
        raw_write,
        residents as f64 / raw_write,
        raw_write / setup.import_seconds
    );
    let (current, history) = record_bytes(&store);
    let on_disk = dir_bytes(&data);
    let raw_dir = root.path().join("raw-sled");
    let raw = raw_sled(&raw_dir, &store);
    let raw_disk = dir_bytes(&raw_dir);
    println!(
        "| on disk after import (sled directory, flushed) | {} | records' encoded bytes: {} current + {} history = {} | {:.2}× |",
        mb(on_disk),
        mb(current),
        mb(history),
        mb(current + history),
        on_disk as f64 / (current + history) as f64
    );
    println!(
        "| raw sled, the current records alone in one tree | {} | records' encoded bytes {} | {:.2}× |",
        mb(raw_disk),
        mb(current),
        raw_disk as f64 / current as f64
    );
    let (store_times, raw_times) = lookups(&store, &raw, residents);
    println!(
        "| point lookup `Store::get`, p50 / p99 | {:.1} / {:.1} µs | raw sled `Tree::get`: {:.1} / {:.1} µs | {:.2} / {:.2} |",
        store_times.0,
        store_times.1,
        raw_times.0,
        raw_times.1,
        store_times.0 / raw_times.0,
        store_times.1 / raw_times.1
    );
    let (walk, scan, found) = since(&store, setup.since_micros);
    println!(
        "| {found} records written since (1%): `scan_since` from the change log | {:.1} ms | every record scanned, kept by write time: {:.1} ms | {:.3} |",
        walk * 1e3,
        scan * 1e3,
        walk / scan
    );
    drop(raw);
    drop(store);
    for cache_mb in caches {
        let streamed = stream(&setup, residents, cache_mb);
        println!(
            "| {residents} residents streamed to li@420502 through the district, three processes; street's page cache {cache_mb} MiB | {:.1} s, {:.0} records/s | | |",
            streamed.seconds,
            residents as f64 / streamed.seconds
        );
        println!(
            "| memory: street node started (VmRSS) → peak (VmHWM) / city and district nodes' peak / reader's peak | {} → {} / {} / {} MB | | |",
            streamed.street_started_kb / 1024,
            streamed.street_kb / 1024,
            streamed.others_kb / 1024,
            streamed.reader_kb / 1024
        );
    }
}

/// Seconds `Store::put_records` takes to write `store`'s current records, 5,000 a batch, into an
/// empty store in `dir` (reading them out of `store` not counted).
fn raw_write(dir: &Path, store: &SledStore) -> f64 {
    let raw = SledStore::open(dir).unwrap();
    let catalog = store.catalog(RESIDENTS_CATALOG).unwrap().unwrap();
    raw.put_catalog(&catalog).unwrap();
    let mut records = store.scan(RESIDENTS_CATALOG, "", None).peekable();
    let mut writing = Duration::ZERO;
    while records.peek().is_some() {
        let rows: Vec<Row> = records
            .by_ref()
            .take(5000)
            .map(|r| {
                let r = r.unwrap().decode().unwrap();
                Row {
                    key: r.key,
                    values: r.values,
                }
            })
            .collect();
        let started = Instant::now();
        raw.put_records(RESIDENTS_CATALOG, rows).unwrap();
        writing += started.elapsed();
    }
    writing.as_secs_f64()
}

/// What the set-up leaves for the measurements.
struct Setup {
    street: NodeDir,
    district: NodeDir,
    others: Vec<NodeDir>,
    token: String,
    import_seconds: f64,
    /// The time before the 1% were written again.
    since_micros: i64,
}

/// Forms the federation, gives the district's principal li its grant, imports `residents` into
/// the street and writes 1% of them again; stops every node.
fn import(root: &Path, residents: usize) -> Setup {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let f = LocalFederation::create(&root.join("federation"), default_units())
            .await
            .expect("a federation");
        let node = |code: &str| NodeClient::open(f.node(code).unwrap().dir.clone()).unwrap();
        let street = node(cast::XILING_STREET);
        let catalog = EXAMPLES
            .iter()
            .find(|(f, _)| *f == "residents.json")
            .unwrap()
            .1;
        street.put_catalog(catalog.into()).await.unwrap();
        let revision = street.publish(&[RESIDENTS_CATALOG]).await.unwrap();
        f.wait_for_revision(revision).await.unwrap();
        let code = |c: &str| c.parse().unwrap();
        let policies = sample::three_tier_policies(
            &code(cast::CITY),
            &code(cast::XILING),
            &code(cast::XILING_STREET),
            "2099-12-31",
        );
        for (issuer, command) in policies {
            let policy = tierlink_node::directory::DirectoryCommand::Policy(command);
            f.issue(&issuer, vec![policy]).await.unwrap();
        }
        let role = format!("{}/civil-affairs", cast::XILING);
        let token = f
            .add_principal(&code(cast::XILING), "li", &[&role])
            .unwrap();
        let columns: Vec<String> = sample::RESIDENT_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut rows = sample::residents(cast::XILING_STREET, residents, 7);
        let started = Instant::now();
        let written = street
            .write_records(
                RESIDENTS_CATALOG,
                columns.clone(),
                rows.clone(),
                Batching::default(),
                |_| {},
            )
            .await
            .unwrap();
        let import_seconds = started.elapsed().as_secs_f64();
        assert_eq!(written.created as usize, residents);
        let since_micros = chrono::Utc::now().timestamp_micros();
        let address = columns.iter().position(|c| c == "current_address").unwrap();
        let again: Vec<Vec<String>> = rows
            .iter_mut()
            .step_by(100)
            .map(|row| {
                row[address] = "夷陵大道 9 号".into();
                row.clone()
            })
            .collect();
        street
            .write_records(
                RESIDENTS_CATALOG,
                columns,
                again,
                Batching::default(),
                |_| {},
            )
            .await
            .unwrap();
        let dir = |code: &str| f.node(code).unwrap().dir.clone();
        let setup = Setup {
            street: dir(cast::XILING_STREET),
            district: dir(cast::XILING),
            others: vec![dir(cast::CITY), dir(cast::XILING)],
            token,
            import_seconds,
            since_micros,
        };
        f.stop().await.unwrap();
        setup
    })
}

/// Bytes of the current records and of the superseded versions, as encoded.
fn record_bytes(store: &SledStore) -> (u64, u64) {
    let mut current = 0;
    let mut history = 0;
    for record in store.scan(RESIDENTS_CATALOG, "", None) {
        let record = record.unwrap();
        current += record.bytes().len() as u64;
        if record.decode().unwrap().version > 1 {
            let key = record.decode().unwrap().key;
            let versions = store.history(RESIDENTS_CATALOG, &key).unwrap();
            history += versions[..versions.len() - 1]
                .iter()
                .map(|v| v.bytes().len() as u64)
                .sum::<u64>();
        }
    }
    (current, history)
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The one-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().next().unwrap_or("?").to_owned())
        .unwrap_or_default()
}

/// A sled database of its own in `dir` holding the store's current records, key to encoded
/// record, in one tree, written in batches of 5,000 and flushed.
fn raw_sled(dir: &Path, store: &SledStore) -> sled::Tree {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .open()
        .unwrap();
    let tree = db.open_tree("records").unwrap();
    let mut batch = sled::Batch::default();
    for (n, record) in store.scan(RESIDENTS_CATALOG, "", None).enumerate() {
        let record = record.unwrap();
        batch.insert(record.decode().unwrap().key.as_bytes(), record.bytes());
        if n % 5000 == 4999 {
            tree.apply_batch(std::mem::take(&mut batch)).unwrap();
        }
    }
    tree.apply_batch(batch).unwrap();
    db.flush().unwrap();
    tree
}

/// The key of resident `n` (as `sample::residents` makes them).
fn resident_key(n: usize) -> String {
    format!("P{}{:07}", cast::XILING_STREET, n)
}

/// p50 and p99 in µs of `Store::get` and of raw sled's `get`, over the same random keys.
fn lookups(store: &SledStore, raw: &sled::Tree, residents: usize) -> ((f64, f64), (f64, f64)) {
    let mut seed = 0x5EED_u64;
    let mut keys = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        // SplitMix64: uniform over the residents.
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        keys.push(resident_key(((z ^ (z >> 31)) % residents as u64) as usize));
    }
    let time_store = |keys: &[String], times: &mut Vec<Duration>| {
        for key in keys {
            let started = Instant::now();
            let found: Option<StoredRecord> = store.get(RESIDENTS_CATALOG, key).unwrap();
            times.push(started.elapsed());
            assert!(found.is_some(), "{key}");
        }
    };
    let time_raw = |keys: &[String], times: &mut Vec<Duration>| {
        for key in keys {
            let started = Instant::now();
            let found = raw.get(key.as_bytes()).unwrap();
            times.push(started.elapsed());
            assert!(found.is_some(), "{key}");
        }
    };
    // A warm-up round each, then two rounds alternating.
    time_store(&keys, &mut Vec::new());
    time_raw(&keys, &mut Vec::new());
    let (mut on_store, mut on_raw) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        time_store(&keys, &mut on_store);
        time_raw(&keys, &mut on_raw);
    }
    (percentiles(on_store), percentiles(on_raw))
}

/// p50 and p99, µs.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort_unstable();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// Median seconds of `scan_since` and of the scan kept by write time (three runs each,
/// alternating), and the records found.
fn since(store: &SledStore, since_micros: i64) -> (f64, f64, usize) {
    let (mut walks, mut scans) = (Vec::new(), Vec::new());
    let mut found = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let walked = store
            .scan_since(RESIDENTS_CATALOG, "", None, since_micros)
            .map(Result::unwrap)
            .count();
        walks.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let scanned = store
            .scan(RESIDENTS_CATALOG, "", None)
            .map(Result::unwrap)
            .filter(|r| r.updated_at_micros().unwrap() >= since_micros)
            .count();
        scans.push(started.elapsed().as_secs_f64());
        assert_eq!(walked, scanned);
        found = walked;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    (median(walks), median(scans), found)
}

/// What the streamed read measured.
struct Streamed {
    seconds: f64,
    street_started_kb: u64,
    street_kb: u64,
    others_kb: u64,
    reader_kb: u64,
}

/// A child process of this binary, serving the nodes in `dirs` until its stdin closes.
fn spawn_nodes(dirs: &[&NodeDir]) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .args(dirs.iter().map(|d| d.path(Path::new(""))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "serving", "the nodes started");
    child
}

/// `VmHWM` of process `pid`, KB.
fn peak_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

/// A memory figure of process `pid` (`field` of `/proc/PID/status`), KB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// Streams every resident to li with the street's page cache at `cache_mb` MiB.
fn stream(setup: &Setup, residents: usize, cache_mb: u64) -> Streamed {
    let mut street_dir = setup.street.clone();
    street_dir.config.store.cache_mb = cache_mb;
    street_dir.save().unwrap();
    let mut street = spawn_nodes(&[&street_dir]);
    let street_started_kb = status_kb(street.id(), "VmRSS:");
    let others: Vec<&NodeDir> = setup.others.iter().collect();
    let mut others = spawn_nodes(&others);
    let reader = Command::new(std::env::current_exe().unwrap())
        .arg("read")
        .arg(setup.district.path(Path::new("")))
        .arg(&setup.token)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let out = String::from_utf8(reader.stdout).unwrap();
    let mut fields = out.split_whitespace().map(|f| f.parse::<f64>().unwrap());
    let (records, seconds, reader_kb) = (
        fields.next().unwrap(),
        fields.next().unwrap(),
        fields.next().unwrap(),
    );
    assert_eq!(records as usize, residents, "every resident read");
    let streamed = Streamed {
        seconds,
        street_started_kb,
        street_kb: peak_kb(street.id()),
        others_kb: peak_kb(others.id()),
        reader_kb: reader_kb as u64,
    };
    for child in [&mut street, &mut others] {
        drop(child.stdin.take());
        child.wait().unwrap();
    }
    streamed
}

/// Child: serves the nodes in `dirs` until stdin closes, printing `serving` once they are.
fn serve(dirs: &[String]) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut running = Vec::new();
        for dir in dirs {
            let dir = NodeDir::load(Path::new(dir)).unwrap();
            let listener = tierlink_node::runtime::bind(&dir).await.unwrap();
            let node = tierlink_node::runtime::Node::open(dir).await.unwrap();
            running.push(node.start(listener).unwrap());
        }
        println!("serving");
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
            .await
            .unwrap()
            .unwrap();
        for node in running {
            node.stop().await.unwrap();
        }
    });
}

/// Child: reads every resident of the street as li at the district in `district`; prints the
/// records read, the seconds taken and its own peak memory (KB).
fn read(district: &Path, token: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let client = NodeClient::open(NodeDir::load(district).unwrap()).unwrap();
        let request = QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS_CATALOG.into(),
                target: cast::XILING_STREET.into(),
                credential: Some(Credential {
                    principal: "li".into(),
                    token: token.into(),
                    role: format!("{}/civil-affairs", cast::XILING),
                    purpose: ALLOWANCE_REVIEW.into(),
                    grant: String::new(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = Instant::now();
        let mut records = 0usize;
        let summary = client
            .read(None, request, |_, verified| {
                records += verified.records.len();
                Ok(())
            })
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let _ = summary;
        println!("{records} {seconds} {}", peak_kb(std::process::id()));
    });
}
