//! The nemesis, after Jepsen's: one fault at a time, chosen and timed by a seeded generator and
//! logged — SIGKILL and restart (a producer, a relay, the raft leader, a street), a pause
//! (SIGSTOP, then SIGCONT), a partition (one node, or a district with its streets, cut off from
//! the rest through the nodes' fault hook), a clock skew (the node restarted under libfaketime,
//! then restarted on the true clock).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tierlink_core::identity::Tier;

use super::cluster::Cluster;
use super::load::PRODUCERS;
use super::report::Samples;
use crate::federation::FederationError;
use crate::sample::Mix;

/// What the nemesis did.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Nodes killed with SIGKILL and restarted.
    pub kills: u64,
    /// Nodes paused with SIGSTOP and continued.
    pub pauses: u64,
    /// Partitions made and healed.
    pub partitions: u64,
    /// Nodes restarted under a skewed clock.
    pub skews: u64,
    /// Each fault as it happened: seconds since the run started, and what.
    pub log: Vec<(f64, String)>,
}

/// Whether libfaketime is installed.
pub fn faketime_installed() -> bool {
    super::cluster::faketime_library().exists()
}

/// The nemesis over `cluster` until `until`.
pub struct Nemesis<'c> {
    cluster: &'c mut Cluster,
    rng: Mix,
    started: Instant,
    skew: bool,
    progress: fn(&str),
    /// The kinds of fault still to come in this round: every kind once a round, in an order
    /// the generator shuffles, so a short run still sees each.
    round: Vec<usize>,
    /// What it did.
    pub faults: Faults,
}

impl<'c> Nemesis<'c> {
    /// A nemesis seeded with `seed`; it skews clocks when `skew` (libfaketime is installed).
    pub fn new(
        cluster: &'c mut Cluster,
        seed: u64,
        started: Instant,
        skew: bool,
        progress: fn(&str),
    ) -> Self {
        Self {
            cluster,
            // Its own stream, apart from the load's generators seeded from the same seed.
            rng: Mix(seed ^ 0x006E_656D_6573_6973),
            started,
            skew,
            progress,
            round: Vec::new(),
            faults: Faults::default(),
        }
    }

    fn log(&mut self, what: String) {
        let at = self.started.elapsed().as_secs_f64();
        (self.progress)(&format!("[{at:7.1} s] {what}"));
        self.faults.log.push((at, what));
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.rng.below((to - from) as usize) as u64)
    }

    /// Injects faults one at a time until `until`, sampling every node's memory and file
    /// descriptors into `samples` between them.
    pub async fn run(
        &mut self,
        until: Instant,
        samples: &mut Samples,
    ) -> Result<(), FederationError> {
        while Instant::now() < until {
            let rest = self.millis(500, 2_500);
            tokio::time::sleep(rest).await;
            samples.take(self.cluster, self.started)?;
            if self.round.is_empty() {
                // Fisher–Yates over the kinds: producer, relay and leader kills, pause,
                // partition, and clock skew when libfaketime is there.
                self.round = (0..if self.skew { 6 } else { 5 }).collect();
                for i in (1..self.round.len()).rev() {
                    let j = self.rng.below(i + 1);
                    self.round.swap(i, j);
                }
            }
            let kind = self.round.pop().expect("a round is never empty");
            match kind {
                0 => {
                    let p = PRODUCERS[self.rng.below(PRODUCERS.len())];
                    let n = self.cluster.index(p);
                    self.kill(n, "producer").await?;
                }
                1 => {
                    let districts = self.cluster.of_tier(Tier::District);
                    let n = districts[self.rng.below(districts.len())];
                    self.kill(n, "relay").await?;
                }
                2 => {
                    let leader = self.leader().await;
                    self.kill(leader, "leader").await?;
                }
                3 => {
                    let n = self.rng.below(self.cluster.nodes.len());
                    self.pause(n).await?;
                }
                4 => self.partition().await?,
                _ => {
                    let n = self.rng.below(self.cluster.nodes.len());
                    self.skew(n).await?;
                }
            }
        }
        Ok(())
    }

    /// The leader's index as the first voter that knows one says; the city's if none does.
    async fn leader(&self) -> usize {
        let mut voters = vec![0];
        voters.extend(self.cluster.of_tier(Tier::District));
        for n in voters {
            if let Some(code) = self.cluster.leader(n).await {
                return self.cluster.index(&code);
            }
        }
        0
    }

    /// Restarts node `n` and waits until it serves.
    async fn restart(&mut self, n: usize) -> Result<(), FederationError> {
        self.cluster.spawn(n)?;
        self.cluster
            .wait_serving(n, Duration::from_secs(60))
            .await
            .map_err(|e| FederationError::Io(format!("node did not come back: {e}")))
    }

    async fn kill(&mut self, n: usize, role: &str) -> Result<(), FederationError> {
        let code = self.cluster.nodes[n].code().clone();
        self.log(format!("kill -9 {code} ({role})"));
        self.cluster.kill(n);
        self.faults.kills += 1;
        let down = self.millis(200, 3_000);
        tokio::time::sleep(down).await;
        self.restart(n).await?;
        self.log(format!("{code} restarted"));
        Ok(())
    }

    async fn pause(&mut self, n: usize) -> Result<(), FederationError> {
        let code = self.cluster.nodes[n].code().clone();
        let hold = self.millis(500, 5_000);
        self.log(format!("SIGSTOP {code} for {} ms", hold.as_millis()));
        self.cluster.pause(n, true)?;
        self.faults.pauses += 1;
        tokio::time::sleep(hold).await;
        self.cluster.pause(n, false)?;
        self.log(format!("SIGCONT {code}"));
        Ok(())
    }

    async fn partition(&mut self) -> Result<(), FederationError> {
        let count = self.cluster.nodes.len();
        let side: BTreeSet<usize> = if self.rng.below(3) == 0 {
            // A district with its streets, away from the city and the other district.
            let districts = self.cluster.of_tier(Tier::District);
            let d = districts[self.rng.below(districts.len())];
            let code = self.cluster.nodes[d].code().clone();
            (0..count)
                .filter(|&n| {
                    n == d || self.cluster.nodes[n].dir.config.node.parent.as_ref() == Some(&code)
                })
                .collect()
        } else {
            BTreeSet::from([self.rng.below(count)])
        };
        let hold = self.millis(1_000, 8_000);
        let names: Vec<String> = side
            .iter()
            .map(|&n| self.cluster.nodes[n].code().to_string())
            .collect();
        self.log(format!(
            "partition {{{}}} from the rest for {} ms",
            names.join(", "),
            hold.as_millis()
        ));
        self.cluster.partition(&side)?;
        self.faults.partitions += 1;
        tokio::time::sleep(hold).await;
        self.cluster.partition(&BTreeSet::new())?;
        self.log("partition healed".into());
        Ok(())
    }

    async fn skew(&mut self, n: usize) -> Result<(), FederationError> {
        let code = self.cluster.nodes[n].code().clone();
        // Up to two minutes either way, as Jepsen's clock nemesis bumps clocks by minutes.
        let seconds = self.rng.below(240) as i64 - 120;
        let seconds = if seconds == 0 { 1 } else { seconds };
        let hold = self.millis(2_000, 10_000);
        self.log(format!(
            "{code} restarted with its clock {seconds:+} s off for {} ms",
            hold.as_millis()
        ));
        self.cluster.kill(n);
        self.cluster.nodes[n].skew = Some(seconds);
        self.restart(n).await?;
        self.faults.skews += 1;
        tokio::time::sleep(hold).await;
        self.cluster.kill(n);
        self.cluster.nodes[n].skew = None;
        self.restart(n).await?;
        self.log(format!("{code} back on the true clock"));
        Ok(())
    }
}
