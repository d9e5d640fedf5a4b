//! Memory and threads of a serving node while one member holds 600 reads it never reads, and the
//! latency of another member's read meanwhile: the slow-consumer case, measured.
//!
//! The federation (city, district, street; the street holding 5,000 residents) runs in a child
//! process of this binary, as `tierlink serve` would run it, so that its resident memory and
//! threads (`/proc/PID/status`) are the nodes' alone. The street opens 600 `Query` streams of
//! its own residents (batches of 100) on 6 connections and reads none; meanwhile the district's
//! principal li reads 500 of the street's residents through the district, 20 times. Then the
//! streams are cancelled. Two runs: the default `[limits]` (64 reads per caller), and the
//! per-caller and per-node limits raised to 1,000 so that all 600 streams are held.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench unread_reads` (prints a table).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tierlink_client::{NodeClient, connect};
use tierlink_core::catalog::EXAMPLES;
use tierlink_core::config::NodeDir;
use tierlink_proto::v1::{Credential, QueryRequest, ReadScope, SignedBatch};
use tierlink_sandbox::federation::{LocalFederation, cast, default_units};
use tierlink_sandbox::sample::{self, ALLOWANCE_REVIEW};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREAMS: usize = 600;
const CONNECTIONS: usize = 6;
const READS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve(Path::new(&args[2]), args[3].parse().ok());
    }
    println!(
        "{STREAMS} unread Query streams (batch_size 100) of the street's own residents on {CONNECTIONS} connections; \
         the district's principal reads 500 of them through the district {READS} times"
    );
    println!(
        "| limits | streams held / refused | node memory (VmRSS): before → held → cancelled | threads | other member's read p50 / max: before → meanwhile |"
    );
    println!("|---|---|---|---|---|");
    for (name, limit) in [
        ("default (64 per caller)", None),
        ("raised to 1,000", Some(1000)),
    ] {
        println!("| {name} | {} |", measure(limit));
    }
}

/// Serves a federation in `root` until stdin closes; prints li's token once it is ready.
fn serve(root: &Path, reads: Option<u32>) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let f = LocalFederation::create_configured(root, default_units(), |config| {
            if let Some(reads) = reads {
                config.limits.reads_per_caller = reads;
                config.limits.reads_per_node = reads;
            }
        })
        .await
        .expect("a federation");
        let node = |code: &str| NodeClient::open(f.node(code).unwrap().dir.clone()).unwrap();
        let street = node(cast::XILING_STREET);
        let catalog = |file: &str| EXAMPLES.iter().find(|(f, _)| *f == file).unwrap().1;
        street
            .put_catalog(catalog("residents.json").into())
            .await
            .unwrap();
        let columns = sample::RESIDENT_COLUMNS.iter().map(|c| c.to_string());
        street
            .put_records(
                sample::RESIDENTS_CATALOG,
                columns.collect(),
                sample::residents(cast::XILING_STREET, 5000, 7),
            )
            .await
            .unwrap();
        let revision = street.publish(&[sample::RESIDENTS_CATALOG]).await.unwrap();
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
        println!("{token}");
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
            .await
            .unwrap()
            .unwrap();
        f.stop().await.unwrap();
    });
}

/// `VmRSS` (MB) and `Threads` of process `pid`.
fn status(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:") / 1024, field("Threads:"))
}

/// Median and largest of `READS` reads by li of 500 residents through the district, ms.
async fn other_member(district: &NodeClient, token: &str) -> (f64, f64) {
    let mut times = Vec::new();
    for _ in 0..READS {
        let request = QueryRequest {
            scope: Some(ReadScope {
                catalog: sample::RESIDENTS_CATALOG.into(),
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
            limit: 500,
            ..Default::default()
        };
        let started = Instant::now();
        let summary = district.read(None, request, |_, _| Ok(())).await.unwrap();
        assert_eq!(summary.records, 500);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() - 1])
}

/// Starts the federation with `reads` as both read limits (the defaults when `None`), runs the
/// case against it and returns the table's cells.
fn measure(reads: Option<u32>) -> String {
    let root = tempfile::tempdir().unwrap();
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .arg(root.path())
        .arg(reads.map(|r| r.to_string()).unwrap_or("-".into()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut token = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut token)
        .unwrap();
    let token = token.trim().to_owned();
    let pid = child.id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cells = runtime.block_on(async {
        let dir = |name: &str| NodeDir::load(&root.path().join(name)).unwrap();
        let street = dir(&format!("street-{}", cast::XILING_STREET));
        let district = NodeClient::open(dir(&format!("district-{}", cast::XILING))).unwrap();
        let credentials = street.credentials().unwrap();
        let before_read = other_member(&district, &token).await;
        let before = status(pid);

        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS {
            let client = connect(&credentials, &street.config.server.endpoint);
            connections.push(client.await.unwrap());
        }
        let mut held: Vec<tonic::Streaming<SignedBatch>> = Vec::new();
        let mut refused = 0;
        for n in 0..STREAMS {
            let request = QueryRequest {
                scope: Some(ReadScope {
                    catalog: sample::RESIDENTS_CATALOG.into(),
                    ..Default::default()
                }),
                batch_size: 100,
                ..Default::default()
            };
            match connections[n % CONNECTIONS].query(request).await {
                Ok(response) => held.push(response.into_inner()),
                Err(_) => refused += 1,
            }
        }
        tokio::time::sleep(Duration::from_secs(8)).await;
        let holding = status(pid);
        let meanwhile = other_member(&district, &token).await;
        let holding_after_reads = status(pid);
        let held_count = held.len();
        drop(held);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = status(pid);
        format!(
            "{held_count} / {refused} | {} → {} → {} MB | {} → {} → {} | {:.0} / {:.0} ms → {:.0} / {:.0} ms",
            before.0,
            holding.0.max(holding_after_reads.0),
            after.0,
            before.1,
            holding.1.max(holding_after_reads.1),
            after.1,
            before_read.0,
            before_read.1,
            meanwhile.0,
            meanwhile.1,
        )
    });
    drop(child.stdin.take());
    child.wait().unwrap();
    cells
}
