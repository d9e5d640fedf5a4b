//! The fault harness: a federation of `tierlink serve` processes on 127.0.0.1 under a mixed
//! load while a nemesis kills, pauses, partitions and skews its nodes; then, healed, the
//! history is checked — in the manner of Jepsen and of etcd's robustness tests.
//!
//! A run: start the six nodes of the demo federation (`cluster`: the city, which leads the
//! directory's raft, two voting districts that relay to their streets, three streets that
//! follow their district, two of them producing records) and form the directory; start the
//! load (`load`) and the nemesis (`nemesis`) for the seconds asked; heal every fault, let the
//! load run a little longer and stop it; then check:
//! - nothing acknowledged is lost: every acknowledged record write is at its producer, as its
//!   current value or followed only by writes whose outcome is unknown, with as many versions
//!   as writes took effect; and the feed delivered every acknowledged write of the followed
//!   producer;
//! - every directory register's history is linearizable (`history`);
//! - every node, killed with SIGKILL at the end, reopens its store, and its audit chain
//!   verifies.
//!
//! `tierlink sim faults --seconds N --seed S` runs it and prints the [`Report`]; a violation
//! makes it fail.

mod cluster;
pub mod history;
mod load;
mod nemesis;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tierlink_store::SledStore;
use tierlink_store::audit::AuditLog;
use tierlink_store::registry::Registry;

use crate::federation::FederationError;
use cluster::Cluster;
use history::{Outcome, Timed, check_register};
use load::{FOLLOWED, Load, PRODUCERS, RecordWrite};
use nemesis::{Nemesis, faketime_installed};
pub use report::Report;
use report::Samples;

/// What to run.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    /// Seconds of faults.
    pub seconds: u64,
    /// Chooses the faults, their targets and timing, and the load's keys.
    pub seed: u64,
    /// The `tierlink` binary the nodes run.
    pub binary: PathBuf,
    /// Told what happens, as it happens.
    pub progress: fn(&str),
}

/// Runs the harness in `root` (node directories, logs, `samples.csv`).
///
/// # Errors
/// A federation that could not be started or formed, or a node that did not come back after a
/// fault; violations are not errors but the [`Report`]'s `violations`.
pub async fn run(root: &Path, plan: FaultPlan) -> Result<Report, FederationError> {
    let progress = plan.progress;
    let started = Instant::now();
    progress("starting six nodes as separate processes and forming the directory…");
    let mut cluster = Cluster::start(root, plan.binary.clone()).await?;
    cluster.form().await?;
    progress("publishing the producers' catalogs and opening them to a city principal…");
    let load = Load::prepare(&cluster, started, plan.seed).await?;
    let workers = load.start();
    let feed = load.follow();
    let skew = faketime_installed();
    if !skew {
        progress("libfaketime is not installed (apt-get install faketime): clocks are not skewed");
    }
    let mut samples = Samples::create(root)?;
    progress(&format!(
        "{} s of faults (seed {})…",
        plan.seconds, plan.seed
    ));
    let mut nemesis = Nemesis::new(&mut cluster, plan.seed, started, skew, progress);
    let until = Instant::now() + Duration::from_secs(plan.seconds);
    let ran = nemesis.run(until, &mut samples).await;
    let faults = nemesis.faults.clone();
    ran?;
    progress("healed; the load runs 5 s more, then the checks…");
    tokio::time::sleep(Duration::from_secs(5)).await;
    load.stop();
    for w in workers {
        let _ = w.await;
    }
    samples.take(&cluster, started)?;
    let mut report = Report {
        seconds: plan.seconds,
        seed: plan.seed,
        faults,
        skewed_clocks: skew,
        ..Report::default()
    };
    check_records(&load, &mut report).await;
    feed.abort();
    check_registers(root, &load, &mut report);
    report.operations = load.history().counts.clone();
    report.first_errors = load.history().first_errors.clone();
    cluster.kill_all();
    check_stores(&cluster, &mut report);
    Ok(report)
}

/// Every acknowledged write is at its producer (current, or followed only by writes of unknown
/// outcome, with a version per write that took effect) and, for the followed producer, was
/// delivered by the feed if made after the feed's first token (waited for up to 60 s).
async fn check_records(load: &Load, report: &mut Report) {
    let writes = load.history().writes.clone();
    for producer in PRODUCERS {
        let current = match load.current(producer).await {
            Ok(current) => current,
            Err(e) => {
                report.violations.push(format!(
                    "records: {producer} could not be read after healing: {e}"
                ));
                continue;
            }
        };
        let mut by_key: BTreeMap<&str, Vec<&RecordWrite>> = BTreeMap::new();
        for w in writes.iter().filter(|w| w.producer == producer) {
            by_key.entry(&w.key).or_default().push(w);
        }
        // One writer per producer: each key's writes in the order they were invoked.
        for writes in by_key.values_mut() {
            writes.sort_by_key(|w| w.call);
        }
        for (key, writes) in by_key {
            let acked = writes.iter().filter(|w| w.outcome == Outcome::Ok).count() as u64;
            let unknown = writes
                .iter()
                .filter(|w| w.outcome == Outcome::Indeterminate)
                .count() as u64;
            report.writes_checked += acked as usize;
            let Some(last) = writes.iter().rposition(|w| w.outcome == Outcome::Ok) else {
                continue;
            };
            let Some((version, value)) = current.get(key) else {
                report.lost += acked as usize;
                report.violations.push(format!(
                    "records: {producer} lost key {key}: {acked} acknowledged writes, the last {}",
                    described(writes[last])
                ));
                continue;
            };
            let possible = std::iter::once(writes[last]).chain(
                writes[last..]
                    .iter()
                    .copied()
                    .filter(|w| w.outcome == Outcome::Indeterminate),
            );
            if !possible.clone().any(|w| &w.value == value) {
                report.lost += 1;
                report.violations.push(format!(
                    "records: {producer} key {key} holds {value:?}, not the last acknowledged write {} nor a later one of unknown outcome",
                    described(writes[last])
                ));
            }
            if *version < acked || *version > acked + unknown {
                report.violations.push(format!(
                    "records: {producer} key {key} is at version {version}, but {acked} acknowledged and {unknown} unknown writes were made"
                ));
            }
        }
    }
    let followed: Vec<&RecordWrite> = writes
        .iter()
        .filter(|w| w.producer == FOLLOWED && w.outcome == Outcome::Ok && w.call >= load.feed_from)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<&RecordWrite> = {
            let history = load.history();
            let delivered: std::collections::BTreeSet<(&str, &str)> = history
                .delivered
                .iter()
                .map(|d| (d.key.as_str(), d.value.as_str()))
                .collect();
            followed
                .iter()
                .copied()
                .filter(|w| !delivered.contains(&(w.key.as_str(), w.value.as_str())))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            report.lost += missing.len();
            report.violations.push(format!(
                "feed: {} acknowledged writes of {FOLLOWED} never delivered after 60 s, the first {} of key {}",
                missing.len(),
                described(missing[0]),
                missing[0].key
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A write as a violation names it: its value and when it was made.
fn described(w: &RecordWrite) -> String {
    format!(
        "{:?} (invoked {:.3} s, acknowledged {:.3} s into the run)",
        w.value,
        w.call as f64 / 1e6,
        w.ret as f64 / 1e6
    )
}

/// Each register's history, writes known not to have taken effect left out, is linearizable.
/// A history that is not is written to `ROOT/register-UNIT-NAME.history`, an operation a line
/// (`call_us ret_us|- op outcome error`), to be read or checked again.
fn check_registers(root: &Path, load: &Load, report: &mut Report) {
    let history = load.history();
    for (key, ops) in &history.registers {
        let timed: Vec<Timed> = ops
            .iter()
            .filter(|(_, outcome, _)| *outcome != Outcome::Failed)
            .map(|(t, _, _)| t.clone())
            .collect();
        report.registers.0 += 1;
        report.registers.1 += timed.len();
        if let Err(e) = check_register(&timed) {
            let path = root.join(format!("register-{}.history", key.replace('/', "-")));
            let lines: String = ops
                .iter()
                .map(|(t, outcome, error)| {
                    let ret = t.ret.map_or("-".into(), |r| r.to_string());
                    format!("{} {ret} {:?} {outcome:?} {error}\n", t.call, t.op)
                })
                .collect();
            let kept = match std::fs::write(&path, lines) {
                Ok(()) => format!("history in {}", path.display()),
                Err(e) => format!(
                    "its history could not be written to {}: {e}",
                    path.display()
                ),
            };
            report
                .violations
                .push(format!("register {key}: {e} ({kept})"));
        }
    }
}

/// Every node's store reopens (its registry too) and its audit chain verifies.
fn check_stores(cluster: &Cluster, report: &mut Report) {
    for node in &cluster.nodes {
        let code = node.code().to_string();
        let dir = &node.dir;
        let reopened = (|| -> Result<u64, String> {
            let store =
                SledStore::open(&dir.path(&dir.config.files.data)).map_err(|e| e.to_string())?;
            let audit = AuditLog::open(store.keyspace("audit").map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let entries = audit
                .verify(None)
                .map_err(|e| e.to_string())?
                .map_err(|b| format!("the audit chain breaks: {b:?}"))?;
            Registry::open(Arc::new(store)).map_err(|e| e.to_string())?;
            Ok(entries)
        })();
        match reopened {
            Ok(entries) => report.stores.push((code, entries)),
            Err(e) => report
                .violations
                .push(format!("store: {code} does not reopen after SIGKILL: {e}")),
        }
    }
}
