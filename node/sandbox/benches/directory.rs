//! Federation directory benchmark: commit latency and throughput of directory writes with three
//! voters on loopback (mutual TLS, every entry signed, flushed to sled before it counts), at 1 and
//! 64 concurrent writers, beside the same writes to a directory with a single voter (no
//! replication) as the baseline; then the time an offline learner takes to catch up 100,000
//! directory changes.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench directory` (prints a table; no criterion: latency
//! percentiles and a one-off catch-up time are what is measured).

mod shared;

use std::path::Path;
use std::time::Instant;

use shared::{Run, THREE_VOTERS, catalogs, leader, publish, units};
use tierlink_core::config::DirectorySettings;
use tierlink_sandbox::federation::LocalFederation;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn row(setup: &str, writers: usize, run: &Run) {
    println!(
        "{setup:<28} {writers:>7} {:>8} {:>10.0} {:>9.2} {:>9.2}",
        run.writes,
        run.per_second(),
        run.percentile(0.5),
        run.percentile(0.99)
    );
}

async fn commit_latency(root: &Path) {
    let three = LocalFederation::create(&root.join("three"), units(&THREE_VOTERS))
        .await
        .unwrap();
    let one = LocalFederation::create(&root.join("one"), units(&["420500"]))
        .await
        .unwrap();
    let (three_leader, one_leader) = (leader(&three), leader(&one));
    let catalogs = catalogs();
    // Warm up connections and caches.
    publish(&three_leader, &catalogs, 8, 50).await;
    publish(&one_leader, &catalogs, 8, 50).await;
    println!(
        "{:<28} {:>7} {:>8} {:>10} {:>9} {:>9}",
        "directory", "writers", "writes", "commits/s", "p50 ms", "p99 ms"
    );
    for (writers, per_writer) in [(1, 2000), (64, 400)] {
        let replicated = publish(&three_leader, &catalogs, writers, per_writer).await;
        let baseline = publish(&one_leader, &catalogs, writers, per_writer).await;
        row("3 voters, replicated", writers, &replicated);
        row("1 voter (baseline)", writers, &baseline);
        println!(
            "{:<28} {writers:>7} {:>8} {:>10.2} {:>9.2} {:>9.2}",
            "ratio replicated/baseline",
            "",
            replicated.per_second() / baseline.per_second(),
            replicated.percentile(0.5) / baseline.percentile(0.5),
            replicated.percentile(0.99) / baseline.percentile(0.99)
        );
    }
    three.stop().await.unwrap();
    one.stop().await.unwrap();
}

/// A learner offline while 100,000 changes are written, then restarted: the time until it has
/// applied them all. `snapshot_every` decides whether it replays the log or installs a snapshot.
async fn catch_up(root: &Path, how: &str, snapshot_every: u64) {
    let codes = ["420500", "420502", "420503", "420502001"];
    let settings = DirectorySettings {
        snapshot_every,
        ..Default::default()
    };
    let mut f = LocalFederation::create_with(&root.join(how), units(&codes), settings)
        .await
        .unwrap();
    let street = 3;
    f.stop_node(street).await.unwrap();
    let leader = leader(&f);
    let before = leader.metrics().last_log_index.unwrap_or(0);
    let writes = publish(&leader, &catalogs(), 64, 100_000 / 64 + 1).await;
    let m = leader.metrics();
    let last = m.last_log_index.unwrap_or(0);
    let revision = leader.view(|s| s.revision);
    let started = Instant::now();
    f.start_node(street).await.unwrap();
    f.wait_for_revision(revision).await.unwrap();
    let took = started.elapsed();
    let learner = f.nodes[street].directory().unwrap().metrics();
    println!(
        "learner catch-up {how}: {} directory changes in {} log entries (snapshot at {:?}, log purged to {:?}); \
         the learner restarted and applied them in {:.2} s (installed a snapshot: {})",
        writes.writes,
        last - before,
        m.snapshot.map(|s| s.index),
        m.purged.map(|p| p.index),
        took.as_secs_f64(),
        learner.snapshot.is_some_and(|s| s.index > before)
    );
    f.stop().await.unwrap();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    // `cargo bench --bench directory -- latency` (or `catch-up`) runs one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    runtime.block_on(async {
        if run("latency") {
            commit_latency(root.path()).await;
        }
        if run("catch-up") {
            println!();
            catch_up(root.path(), "through the log", u64::MAX / 2).await;
            catch_up(root.path(), "through a snapshot", 5000).await;
        }
    });
}
