//! What the directory benchmarks share: the three-voter directory they write to, the catalogs
//! they publish (made before any clock starts), and concurrent writers that time each write.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tierlink_core::catalog::Catalog;
use tierlink_core::identity::Unit;
use tierlink_node::directory::{DirectoryCommand, DirectoryReply, Replica};
use tierlink_sandbox::federation::{LocalFederation, demo_units};
use tierlink_sandbox::sample::small_catalog;

/// The city and the two districts of the demo federation: the directory's three voters.
pub const THREE_VOTERS: [&str; 3] = ["420500", "420502", "420503"];

/// Distinct catalogs the writers publish, in turn (each about 700 bytes of JSON).
pub const CATALOGS: usize = 1000;

/// The units with the given codes, from the demo federation.
pub fn units(codes: &[&str]) -> Vec<Unit> {
    demo_units()
        .into_iter()
        .filter(|u| codes.contains(&u.code.as_str()))
        .collect()
}

/// The directory replica that leads in `f`.
pub fn leader(f: &LocalFederation) -> Arc<Replica> {
    f.nodes
        .iter()
        .filter_map(|n| n.directory())
        .find(|r| r.is_leader())
        .expect("a leader")
        .clone()
}

/// The [`CATALOGS`] small catalogs writers publish, write `n` publishing number `n % CATALOGS`.
pub fn catalogs() -> Arc<Vec<Catalog>> {
    Arc::new((0..CATALOGS).map(small_catalog).collect())
}

/// The writes of one run, each write's latency, and how long the run took.
pub struct Run {
    /// Writes acknowledged.
    pub writes: usize,
    /// From the first write's start to the last one's acknowledgement.
    pub elapsed: Duration,
    /// Every write's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Run {
    /// The latency at quantile `p` (0.0 to 1.0), in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    /// Acknowledged writes per second.
    pub fn per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
}

/// `writers` concurrent tasks, each making `per_writer` writes one after the other: write `n`
/// (0 to `writers * per_writer - 1`, distinct across tasks) is `write(n)`, timed from its call
/// until its future completes. A write that fails panics: the run means nothing then.
pub async fn drive<F, Fut>(writers: usize, per_writer: usize, write: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let write = write.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let t = Instant::now();
                write(w * per_writer + i).await;
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.expect("a writer panicked"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run {
        writes: writers * per_writer,
        elapsed,
        latencies,
    }
}

/// Publishes catalogs through `replica` (in process, as the node itself issues them), with
/// `writers` concurrent writers making `per_writer` publishes each, acknowledged once applied.
pub async fn publish(
    replica: &Arc<Replica>,
    catalogs: &Arc<Vec<Catalog>>,
    writers: usize,
    per_writer: usize,
) -> Run {
    let (replica, catalogs) = (replica.clone(), catalogs.clone());
    drive(writers, per_writer, move |n| {
        let (replica, catalogs) = (replica.clone(), catalogs.clone());
        async move {
            let command = DirectoryCommand::Publish(catalogs[n % CATALOGS].clone());
            let replies = replica.propose(vec![command]).await.expect("committed");
            assert!(matches!(replies[0], DirectoryReply::Applied { .. }));
        }
    })
    .await
}
