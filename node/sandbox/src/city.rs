//! A whole city on loopback: one city, its districts and their streets, each a node, forming the
//! directory through the normal join and approve path, then measured — how long a directory
//! change takes to be applied on every replica, idle and under load; the leader's CPU and
//! memory; a street joining; every street restarting at once; a voting district killed.
//!
//! The city, which founds the directory and leads it, runs as its own `tierlink serve` process,
//! so its CPU time and memory are read from `/proc` alone; every district and street runs in
//! this process, each a full node (its store, gRPC server, directory replica and audit), so their
//! costs are shared and reported together. All nodes share the machine's cores.
//!
//! `tierlink sim city --districts 16 --streets 300` runs it and prints the [`Report`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tierlink_client::NodeClient;
use tierlink_core::config::{DirectorySettings, NodeDir, Peer};
use tierlink_core::directory::{DirectoryCommand, DirectoryReply};
use tierlink_core::identity::{CaFiles, NodeCode, Tier, Unit};
use tierlink_core::provision::{Certifier, NodeSpec, init_ca, init_node};
use tierlink_node::directory::Replica;
use tierlink_node::runtime::{Node, RunningNode};
use tierlink_proto::v1::{FoundRequest, ProposeRequest};
use tokio::net::TcpListener;

use crate::federation::FederationError;
use crate::sample::small_catalog;

/// The shape of the simulated city and what to measure.
#[derive(Clone, Debug)]
pub struct CityPlan {
    /// Districts under the city, 1 to 98 (codes 620102 on).
    pub districts: usize,
    /// Street offices, spread evenly over the districts (codes DISTRICT001 on).
    pub streets: usize,
    /// Changes measured one at a time, each applied everywhere before the next (at least 100
    /// for a p99).
    pub sparse_changes: usize,
    /// Changes per second of the loaded phase.
    pub load_per_second: u32,
    /// Seconds of the loaded phase, and of the quiet phase (no changes) measuring the leader.
    pub phase_seconds: u64,
    /// Every replica's directory settings.
    pub directory: DirectorySettings,
    /// The `tierlink` binary that serves the city.
    pub binary: PathBuf,
    /// Told what the run does next, as it goes.
    pub progress: fn(&str),
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Spread {
    /// How many were measured.
    pub count: usize,
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Largest, ms.
    pub max: f64,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |p: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * p).round() as usize)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        Self {
            count: samples.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} changes)",
            self.p50, self.p99, self.max, self.count
        )
    }
}

/// The leader process's use of the machine over a phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// CPU time over wall time: 1.0 is one core busy.
    pub cores: f64,
    /// Resident memory at the end of the phase, MiB.
    pub rss_mib: f64,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} cores, {:.0} MiB", self.cores, self.rss_mib)
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Nodes in the city, the city included.
    pub nodes: usize,
    /// Seconds to start every node and form the directory.
    pub formed_secs: f64,
    /// The leader with no changes (heartbeats only).
    pub quiet: Usage,
    /// Changes one at a time: until applied on every replica.
    pub sparse: Spread,
    /// The leader while changes were made one at a time.
    pub sparse_leader: Usage,
    /// Changes at `load_per_second`: until applied on every replica.
    pub loaded: Spread,
    /// The leader under load.
    pub loaded_leader: Usage,
    /// One more street: from asking to join until its replica holds the directory, ms.
    pub join_ms: f64,
    /// Every street stopped, changes made, every street started at once: until all hold them, ms.
    pub restart_ms: f64,
    /// A voting district killed: changes until applied on every running replica.
    pub voter_down: Spread,
    /// The voting district started again: until it holds every change, ms.
    pub voter_back_ms: f64,
    /// The leader at the end, as the first district knows it: the city, unless leadership
    /// moved (then the leader's figures above are the city's, not the leader's).
    pub leader: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "nodes: {} (leader at the end: {})",
            self.nodes, self.leader
        )?;
        writeln!(
            f,
            "formed (all nodes started, joined, approved): {:.1} s",
            self.formed_secs
        )?;
        writeln!(f, "leader, quiet: {}", self.quiet)?;
        writeln!(
            f,
            "change applied everywhere, one at a time: {}",
            self.sparse
        )?;
        writeln!(f, "leader, one change at a time: {}", self.sparse_leader)?;
        writeln!(f, "change applied everywhere, under load: {}", self.loaded)?;
        writeln!(f, "leader, under load: {}", self.loaded_leader)?;
        writeln!(f, "a street joins: {:.0} ms", self.join_ms)?;
        writeln!(
            f,
            "all streets restart at once and catch up: {:.0} ms",
            self.restart_ms
        )?;
        writeln!(
            f,
            "a voting district down, changes applied on every running replica: {}",
            self.voter_down
        )?;
        write!(
            f,
            "the voting district back, caught up: {:.0} ms",
            self.voter_back_ms
        )
    }
}

/// The units of a city of `districts` districts and `streets` streets: Lanzhou's codes, the
/// streets spread evenly.
pub fn city_units(districts: usize, streets: usize) -> Result<Vec<Unit>, FederationError> {
    if !(1..=98).contains(&districts) || streets > districts * 999 {
        return Err(FederationError::Io(format!(
            "a city of {districts} districts and {streets} streets cannot be numbered: 1 to 98 districts, at most 999 streets each"
        )));
    }
    let unit = |code: String, tier, parent: Option<&NodeCode>| -> Result<Unit, FederationError> {
        Ok(Unit {
            name: code.clone(),
            code: code
                .parse()
                .map_err(|e| FederationError::Io(format!("{e}")))?,
            tier,
            parent: parent.cloned(),
        })
    };
    let city = unit("620100".into(), Tier::City, None)?;
    let mut units = vec![city.clone()];
    for d in 0..districts {
        units.push(unit(
            format!("6201{:02}", d + 2),
            Tier::District,
            Some(&city.code),
        )?);
    }
    for s in 0..streets {
        let district = units[1 + s % districts].code.clone();
        units.push(unit(
            format!("{district}{:03}", s / districts + 1),
            Tier::Street,
            Some(&district),
        )?);
    }
    Ok(units)
}

/// The city's own process, serving its node.
struct CityProcess {
    child: std::process::Child,
    dir: NodeDir,
}

impl CityProcess {
    fn usage(&self) -> Result<(Duration, f64), FederationError> {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| FederationError::Io(format!("the city's process: {e}")))?;
        // Fields after the command name, which is in parentheses: utime and stime are the 12th
        // and 13th after it, in USER_HZ ticks (100 a second on Linux, proc(5)).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        Ok((Duration::from_millis(ticks * 10), rss_kib / 1024.0))
    }
}

impl Drop for CityProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The revisions a replica applied, and when.
type AppliedLog = Arc<Mutex<Vec<(u64, Instant)>>>;

/// A simulated city: the city's process and every other node in this one.
pub struct City {
    plan: CityPlan,
    ca: CaFiles,
    root: PathBuf,
    city: CityProcess,
    nodes: Vec<(NodeDir, Option<RunningNode>)>,
    /// For each node of `nodes`, the revisions it applied and when.
    applied: Vec<AppliedLog>,
    /// Catalogs published so far: each change publishes a new one.
    published: std::sync::atomic::AtomicUsize,
}

async fn listener() -> Result<(TcpListener, String), FederationError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| FederationError::Io(e.to_string()))?;
    let port = l
        .local_addr()
        .map_err(|e| FederationError::Io(e.to_string()))?
        .port();
    Ok((l, format!("https://127.0.0.1:{port}")))
}

fn node_dir(
    root: &Path,
    ca: &CaFiles,
    unit: &Unit,
    endpoint: &str,
    peers: Vec<Peer>,
    directory: &DirectorySettings,
) -> Result<NodeDir, FederationError> {
    let listen = endpoint
        .trim_start_matches("https://")
        .parse()
        .map_err(|e| FederationError::Io(format!("{endpoint}: {e}")))?;
    let spec = NodeSpec {
        unit: unit.clone(),
        listen,
        endpoint: endpoint.to_owned(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        peers,
        hash_key: None,
    };
    let mut dir = init_node(&root.join(unit.code.as_str()), spec, Certifier::Ca(ca))?;
    dir.config.directory = directory.clone();
    dir.save()
        .map_err(tierlink_core::provision::ProvisionError::from)?;
    Ok(dir)
}

fn applied_revision(replies: Vec<DirectoryReply>) -> Result<u64, FederationError> {
    match replies.into_iter().next() {
        Some(DirectoryReply::Applied { revision }) => Ok(revision),
        other => Err(FederationError::Directory(format!("{other:?}"))),
    }
}

impl City {
    /// Starts the city's process and every other node, and forms the directory: the city founds
    /// it, each district and then each street asks to join through its parent and the parent
    /// approves (districts' streets concurrently), and the city names itself and two districts
    /// voters.
    pub async fn form(root: &Path, plan: CityPlan) -> Result<(Self, f64), FederationError> {
        let started = Instant::now();
        let units = city_units(plan.districts, plan.streets)?;
        let ca = init_ca(&root.join("ca"), "simulated city")?;
        let (city_listener, city_endpoint) = listener().await?;
        let city_dir = node_dir(
            root,
            &ca,
            &units[0],
            &city_endpoint,
            vec![],
            &plan.directory,
        )?;
        drop(city_listener);
        let log = std::fs::File::create(root.join("city.log"))
            .map_err(|e| FederationError::Io(e.to_string()))?;
        let child = std::process::Command::new(&plan.binary)
            .arg("serve")
            .arg("--node")
            .arg(&city_dir.dir)
            .stdout(
                log.try_clone()
                    .map_err(|e| FederationError::Io(e.to_string()))?,
            )
            .stderr(log)
            .spawn()
            .map_err(|e| FederationError::Io(format!("{}: {e}", plan.binary.display())))?;
        let city = CityProcess {
            child,
            dir: city_dir,
        };
        let city_peer = Peer {
            code: units[0].code.clone(),
            endpoint: city_endpoint.clone(),
        };
        let mut nodes = Vec::new();
        let mut applied = Vec::new();
        for unit in &units[1..] {
            let (l, endpoint) = listener().await?;
            let dir = node_dir(
                root,
                &ca,
                unit,
                &endpoint,
                vec![city_peer.clone()],
                &plan.directory,
            )?;
            let running = Node::open(dir.clone()).await?.start(l)?;
            applied.push(watch_applied(&running.directory));
            nodes.push((dir, Some(running)));
        }
        let me = Self {
            plan,
            ca,
            root: root.to_owned(),
            city,
            nodes,
            applied,
            published: Default::default(),
        };
        me.found().await?;
        let districts: Vec<usize> = (0..me.nodes.len())
            .filter(|&n| me.nodes[n].0.config.node.tier == Tier::District)
            .collect();
        for &d in &districts {
            me.join(d).await?;
        }
        let voters: BTreeSet<NodeCode> = std::iter::once(units[0].code.clone())
            .chain(districts.iter().take(2).map(|&d| me.code(d).clone()))
            .collect();
        me.as_city(vec![DirectoryCommand::SetVoters(voters)])
            .await?;
        let mut joins = tokio::task::JoinSet::new();
        let me = Arc::new(me);
        for &d in &districts {
            let streets: Vec<usize> = (0..me.nodes.len())
                .filter(|&n| me.nodes[n].0.config.node.parent.as_ref() == Some(me.code(d)))
                .collect();
            let city = me.clone();
            joins.spawn(async move {
                for s in streets {
                    city.join(s).await?;
                }
                Ok::<_, FederationError>(())
            });
        }
        while let Some(joined) = joins.join_next().await {
            joined.map_err(|e| FederationError::Io(e.to_string()))??;
        }
        let me = Arc::into_inner(me).expect("every join has ended");
        let revision = me.city_revision().await?;
        me.wait_all(revision, Duration::from_secs(600)).await?;
        Ok((me, started.elapsed().as_secs_f64()))
    }

    fn code(&self, n: usize) -> &NodeCode {
        self.nodes[n].0.code()
    }

    fn replica(&self, n: usize) -> Result<&Arc<Replica>, FederationError> {
        self.nodes[n]
            .1
            .as_ref()
            .map(|r| &r.directory)
            .ok_or_else(|| FederationError::Directory(format!("{} is stopped", self.code(n))))
    }

    fn parent_endpoint(&self, n: usize) -> Result<String, FederationError> {
        let parent = self.nodes[n].0.config.node.parent.clone();
        if parent.as_ref() == Some(self.city.dir.code()) {
            return Ok(self.city.dir.config.server.endpoint.clone());
        }
        self.nodes
            .iter()
            .find(|(d, _)| Some(d.code()) == parent.as_ref())
            .map(|(d, _)| d.config.server.endpoint.clone())
            .ok_or_else(|| FederationError::Directory(format!("{} has no parent", self.code(n))))
    }

    async fn found(&self) -> Result<(), FederationError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = NodeClient::open(self.city.dir.clone())
            .map_err(|e| FederationError::Io(e.to_string()))?;
        loop {
            match client.directory().await {
                Ok(mut d) => {
                    let r = d
                        .found(FoundRequest {})
                        .await
                        .map_err(|e| FederationError::Directory(e.message().to_owned()))?;
                    return match r.into_inner().results.first() {
                        Some(r) if r.applied => Ok(()),
                        other => Err(FederationError::Directory(format!("{other:?}"))),
                    };
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(FederationError::Io(format!(
                        "the city's process did not answer: {e} (see {})",
                        self.root.join("city.log").display()
                    )));
                }
            }
        }
    }

    /// Issues `commands` as the city, through its process.
    async fn as_city(&self, commands: Vec<DirectoryCommand>) -> Result<u64, FederationError> {
        let client = NodeClient::open(self.city.dir.clone())
            .map_err(|e| FederationError::Io(e.to_string()))?;
        let mut d = client
            .directory()
            .await
            .map_err(|e| FederationError::Io(e.to_string()))?;
        let commands_json =
            serde_json::to_string(&commands).map_err(|e| FederationError::Io(e.to_string()))?;
        let response = d
            .propose(ProposeRequest {
                commands_json,
                via: String::new(),
            })
            .await
            .map_err(|e| FederationError::Directory(e.message().to_owned()))?
            .into_inner();
        match response.results.first() {
            Some(r) if r.applied => Ok(r.revision),
            other => Err(FederationError::Directory(format!("{other:?}"))),
        }
    }

    /// A change no replica has seen: a catalog published for the first time.
    fn change(&self) -> DirectoryCommand {
        let n = self
            .published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        DirectoryCommand::Publish(small_catalog(n))
    }

    /// Makes a change as the city; the revision it applied.
    async fn city_revision(&self) -> Result<u64, FederationError> {
        self.as_city(vec![self.change()]).await
    }

    /// Node `n` asks to join through its parent, and the parent approves.
    async fn join(&self, n: usize) -> Result<(), FederationError> {
        let replica = self.replica(n)?;
        let via = self.parent_endpoint(n)?;
        let join = vec![DirectoryCommand::Register(replica.member().clone())];
        // A parent approved a moment ago may not know the leader yet: asked again, as a
        // joining node's administrator would.
        let mut attempts = 0;
        let joined = loop {
            match replica.propose_via(&via, join.clone()).await {
                Err(e) if attempts < 40 => {
                    attempts += 1;
                    tracing::debug!(error = %e, "joining again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other,
            }
        };
        applied_revision(joined.map_err(|e| FederationError::Directory(e.to_string()))?)?;
        let approve = vec![DirectoryCommand::Approve(self.code(n).clone())];
        let parent = self.nodes[n].0.config.node.parent.clone();
        if parent.as_ref() == Some(self.city.dir.code()) {
            self.as_city(approve).await?;
        } else {
            let p = (0..self.nodes.len())
                .find(|&p| Some(self.code(p)) == parent.as_ref())
                .ok_or_else(|| FederationError::Directory("no parent".into()))?;
            applied_revision(
                self.replica(p)?
                    .propose(approve)
                    .await
                    .map_err(|e| FederationError::Directory(e.to_string()))?,
            )?;
        }
        Ok(())
    }

    /// Waits until every running node of this process has applied `revision`.
    async fn wait_all(&self, revision: u64, limit: Duration) -> Result<(), FederationError> {
        let deadline = Instant::now() + limit;
        for n in 0..self.nodes.len() {
            let Ok(replica) = self.replica(n) else {
                continue;
            };
            let mut revisions = replica.revisions();
            while *revisions.borrow_and_update() < revision {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, revisions.changed())
                    .await
                    .is_err()
                {
                    return Err(FederationError::Directory(format!(
                        "{} had not applied revision {revision} after {} s",
                        self.code(n),
                        limit.as_secs()
                    )));
                }
            }
        }
        Ok(())
    }

    /// When every running node of this process first held `revision`, or `None` if one has not.
    fn all_applied_at(&self, revision: u64) -> Option<Instant> {
        let mut last = None;
        for (n, log) in self.applied.iter().enumerate() {
            if self.nodes[n].1.is_none() {
                continue;
            }
            let log = log.lock().unwrap_or_else(|p| p.into_inner());
            let at = log.iter().find(|(r, _)| *r >= revision)?.1;
            last = Some(last.map_or(at, |l: Instant| l.max(at)));
        }
        last
    }

    /// The leader's CPU and memory while `phase` runs.
    async fn leader_during<T>(
        &self,
        phase: impl Future<Output = Result<T, FederationError>>,
    ) -> Result<(T, Usage), FederationError> {
        let (cpu0, _) = self.city.usage()?;
        let t0 = Instant::now();
        let out = phase.await?;
        let (cpu1, rss) = self.city.usage()?;
        let usage = Usage {
            cores: (cpu1 - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64(),
            rss_mib: rss,
        };
        Ok((out, usage))
    }

    /// Changes issued from the first district, `per_second` a second for `count` changes (or
    /// each after the last is applied everywhere, when `per_second` is 0); each one's time until
    /// applied on every running replica.
    async fn changes(&self, count: usize, per_second: u32) -> Result<Spread, FederationError> {
        let issuer = (0..self.nodes.len())
            .find(|&n| {
                self.nodes[n].1.is_some() && self.nodes[n].0.config.node.tier == Tier::District
            })
            .ok_or_else(|| FederationError::Directory("no district runs".into()))?;
        let replica = self.replica(issuer)?.clone();
        let mut issued = tokio::task::JoinSet::new();
        let mut tick = (per_second > 0)
            .then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second))));
        for _ in 0..count {
            let r = replica.clone();
            let change = self.change();
            let issue = async move {
                let t0 = Instant::now();
                let replies = r
                    .propose(vec![change])
                    .await
                    .map_err(|e| FederationError::Directory(e.to_string()))?;
                Ok::<_, FederationError>((t0, applied_revision(replies)?))
            };
            match &mut tick {
                Some(tick) => {
                    tick.tick().await;
                    issued.spawn(issue);
                }
                None => {
                    let (t0, revision) = issue.await?;
                    self.wait_all(revision, Duration::from_secs(60)).await?;
                    issued.spawn(async move { Ok((t0, revision)) });
                }
            }
        }
        let mut times = Vec::new();
        while let Some(done) = issued.join_next().await {
            let (t0, revision) = done.map_err(|e| FederationError::Io(e.to_string()))??;
            self.wait_all(revision, Duration::from_secs(60)).await?;
            // Each node's watcher notes the time as it wakes, a moment after the replica applied.
            let at = loop {
                match self.all_applied_at(revision) {
                    Some(at) => break at,
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            };
            times.push(at.saturating_duration_since(t0));
        }
        Ok(Spread::of(times))
    }

    async fn stop(&mut self, n: usize) -> Result<(), FederationError> {
        if let Some(running) = self.nodes[n].1.take() {
            running.stop().await?;
        }
        Ok(())
    }

    async fn start(&mut self, n: usize) -> Result<(), FederationError> {
        let dir = self.nodes[n].0.clone();
        let listener = tierlink_node::runtime::bind(&dir).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let node = loop {
            match Node::open(dir.clone()).await {
                Err(tierlink_node::runtime::RuntimeError::Store(
                    tierlink_store::StoreError::Locked(_),
                )) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                opened => break opened?,
            }
        };
        let running = node.start(listener)?;
        self.applied[n] = watch_applied(&running.directory);
        self.nodes[n].1 = Some(running);
        Ok(())
    }

    /// Runs every measurement of `plan` on a city formed under `root`.
    pub async fn run(root: &Path, plan: CityPlan) -> Result<Report, FederationError> {
        (plan.progress)("starting the nodes and forming the directory");
        let (mut city, formed_secs) = City::form(root, plan.clone()).await?;
        let mut report = Report {
            nodes: city.nodes.len() + 1,
            formed_secs,
            ..Report::default()
        };
        (plan.progress)("measuring the leader with no changes");
        let quiet = Duration::from_secs(plan.phase_seconds);
        ((), report.quiet) = city
            .leader_during(async {
                tokio::time::sleep(quiet).await;
                Ok(())
            })
            .await?;
        (plan.progress)("changes one at a time");
        (report.sparse, report.sparse_leader) = city
            .leader_during(city.changes(plan.sparse_changes, 0))
            .await?;
        (plan.progress)("changes under load");
        let loaded = plan.phase_seconds as usize * plan.load_per_second as usize;
        (report.loaded, report.loaded_leader) = city
            .leader_during(city.changes(loaded, plan.load_per_second))
            .await?;
        (plan.progress)("one more street joins");
        report.join_ms = city.one_more_street().await?;
        (plan.progress)("every street restarts at once");
        report.restart_ms = city.restart_streets().await?;
        (plan.progress)("a voting district is killed");
        (report.voter_down, report.voter_back_ms) = city.voter_down().await?;
        report.leader = city.leader();
        Ok(report)
    }

    /// One more street under the first district: from asking to join until it holds the
    /// directory the city holds then, ms.
    async fn one_more_street(&mut self) -> Result<f64, FederationError> {
        let district = self
            .nodes
            .iter()
            .position(|(d, _)| d.config.node.tier == Tier::District)
            .ok_or_else(|| FederationError::Directory("no district".into()))?;
        let parent = self.code(district).clone();
        let unit = Unit {
            code: format!("{parent}999")
                .parse()
                .map_err(|e| FederationError::Io(format!("{e}")))?,
            tier: Tier::Street,
            parent: Some(parent),
            name: "joining street".into(),
        };
        let (l, endpoint) = listener().await?;
        let city_peer = Peer {
            code: self.city.dir.code().clone(),
            endpoint: self.city.dir.config.server.endpoint.clone(),
        };
        let dir = node_dir(
            &self.root,
            &self.ca,
            &unit,
            &endpoint,
            vec![city_peer],
            &self.plan.directory,
        )?;
        let running = Node::open(dir.clone()).await?.start(l)?;
        self.applied.push(watch_applied(&running.directory));
        self.nodes.push((dir, Some(running)));
        let t0 = Instant::now();
        self.join(self.nodes.len() - 1).await?;
        let revision = self.city_revision().await?;
        self.wait_all(revision, Duration::from_secs(120)).await?;
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    }

    /// Stops every street, makes 20 changes, starts every street at once: until all hold them.
    async fn restart_streets(&mut self) -> Result<f64, FederationError> {
        let streets: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].0.config.node.tier == Tier::Street)
            .collect();
        for &s in &streets {
            self.stop(s).await?;
        }
        for _ in 0..20 {
            self.city_revision().await?;
        }
        let revision = self.city_revision().await?;
        let t0 = Instant::now();
        for &s in &streets {
            self.start(s).await?;
        }
        self.wait_all(revision, Duration::from_secs(600)).await?;
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    }

    /// The leader as the first running district knows it.
    fn leader(&self) -> String {
        (0..self.nodes.len())
            .find_map(|n| self.replica(n).ok())
            .and_then(|r| r.metrics().current_leader)
            .map_or_else(|| "none".into(), |l| l.to_string())
    }

    /// Kills the second voter (a district), measures changes at the loaded rate while it is
    /// down, starts it again: until it holds them, ms.
    async fn voter_down(&mut self) -> Result<(Spread, f64), FederationError> {
        let voters = self.replica(0)?.view(|s| s.active_voters());
        let voter = (0..self.nodes.len())
            .find(|&n| voters.contains(self.code(n)))
            .ok_or_else(|| FederationError::Directory("no district votes".into()))?;
        self.stop(voter).await?;
        let count = self.plan.phase_seconds as usize * self.plan.load_per_second as usize;
        let down = self.changes(count, self.plan.load_per_second).await?;
        let revision = self.city_revision().await?;
        let t0 = Instant::now();
        self.start(voter).await?;
        self.wait_all(revision, Duration::from_secs(120)).await?;
        Ok((down, t0.elapsed().as_secs_f64() * 1000.0))
    }
}

/// Records, for `replica`, each revision it applies and when.
fn watch_applied(replica: &Arc<Replica>) -> AppliedLog {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut revisions = replica.revisions();
    let kept = log.clone();
    tokio::spawn(async move {
        loop {
            let r = *revisions.borrow_and_update();
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((r, Instant::now()));
            if revisions.changed().await.is_err() {
                return;
            }
        }
    });
    log
}
