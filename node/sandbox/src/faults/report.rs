//! What a run reports: operations by kind and outcome, the faults injected, what the checks
//! found; and every node's resident memory and open file descriptors, sampled through the run
//! into `ROOT/samples.csv` (`seconds,node,pid,rss_kib,fds`) for the soak to judge.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::cluster::Cluster;
use super::nemesis::Faults;
use crate::federation::FederationError;

/// The samples file of a run.
pub struct Samples(std::fs::File);

impl Samples {
    /// Creates `ROOT/samples.csv` with its header line.
    pub fn create(root: &Path) -> Result<Self, FederationError> {
        let mut file = std::fs::File::create(root.join("samples.csv"))
            .map_err(|e| FederationError::Io(e.to_string()))?;
        writeln!(file, "seconds,node,pid,rss_kib,fds")
            .map_err(|e| FederationError::Io(e.to_string()))?;
        Ok(Self(file))
    }

    /// Appends a line per running node: its resident memory (`VmRSS`, proc(5)) and the entries
    /// of `/proc/PID/fd`.
    pub fn take(&mut self, cluster: &Cluster, started: Instant) -> Result<(), FederationError> {
        let at = started.elapsed().as_secs_f64();
        for node in &cluster.nodes {
            let Some(pid) = node.pid() else { continue };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss_kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            writeln!(self.0, "{at:.1},{},{pid},{rss_kib},{fds}", node.code())
                .map_err(|e| FederationError::Io(e.to_string()))?;
        }
        Ok(())
    }
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Seconds of faults.
    pub seconds: u64,
    /// The seed that chose the faults and the load.
    pub seed: u64,
    /// Operations by kind: acknowledged, failed, indeterminate.
    pub operations: BTreeMap<&'static str, [u64; 3]>,
    /// The first error of each kind of operation that failed.
    pub first_errors: BTreeMap<&'static str, String>,
    /// The faults injected.
    pub faults: Faults,
    /// Acknowledged record writes checked at their producers.
    pub writes_checked: usize,
    /// Acknowledged writes missing at their producer, or from the feed.
    pub lost: usize,
    /// Directory registers checked, and operations on them.
    pub registers: (usize, usize),
    /// Nodes whose store reopened and whose audit chain verified, with its length.
    pub stores: Vec<(String, u64)>,
    /// Whether clocks were skewed (libfaketime installed).
    pub skewed_clocks: bool,
    /// Every violation found; none when the run passed.
    pub violations: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {}, {} s of faults", self.seed, self.seconds)?;
        writeln!(
            f,
            "{:<28} {:>8} {:>8} {:>14}",
            "operations", "acked", "failed", "indeterminate"
        )?;
        for (kind, [ok, failed, unknown]) in &self.operations {
            writeln!(f, "{kind:<28} {ok:>8} {failed:>8} {unknown:>14}")?;
        }
        for (kind, error) in &self.first_errors {
            writeln!(f, "  first {kind} failure: {error}")?;
        }
        let skews = if self.skewed_clocks {
            self.faults.skews.to_string()
        } else {
            "0 (libfaketime is not installed)".into()
        };
        writeln!(
            f,
            "faults: kills {}, pauses {}, partitions {}, clock skews {}",
            self.faults.kills, self.faults.pauses, self.faults.partitions, skews
        )?;
        writeln!(
            f,
            "acknowledged record writes checked at their producers and in the feed: {}, lost = {}",
            self.writes_checked, self.lost
        )?;
        writeln!(
            f,
            "directory registers: {} ({} operations), linearizable = {}",
            self.registers.0,
            self.registers.1,
            if self.violations.iter().any(|v| v.starts_with("register")) {
                "NO"
            } else {
                "yes"
            }
        )?;
        let chains: Vec<String> = self
            .stores
            .iter()
            .map(|(code, entries)| format!("{code} ({entries} entries)"))
            .collect();
        writeln!(
            f,
            "stores reopened after SIGKILL, audit chains verified: {}",
            chains.join(", ")
        )?;
        if self.violations.is_empty() {
            write!(f, "violations: none")
        } else {
            writeln!(f, "VIOLATIONS ({}):", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  {v}")?;
            }
            Ok(())
        }
    }
}
