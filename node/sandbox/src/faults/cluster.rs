//! The federation under test: each node a `tierlink serve` process on 127.0.0.1, its output in
//! `ROOT/CODE.log`, its faults file (`TIERLINK_FAULTS`, see `tierlink_client::faults`) at
//! `ROOT/CODE.faults`; formed as an operator forms one (the city founds the directory, each node
//! asks to join through its parent and the parent approves, the city names its districts
//! voters); killed, paused, cut off and restarted under a skewed clock on request.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tierlink_client::faults::FAULTS_ENV;
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::config::NodeDir;
use tierlink_core::directory::DirectoryCommand;
use tierlink_core::identity::{NodeCode, Tier};
use tierlink_node::directory::member_of;
use tierlink_proto::v1::{ChangeResult, FoundRequest, ProposeRequest, StatusRequest};

use crate::federation::{FederationError, demo_units, provision};

/// One node: its directory, its process while it runs, and how its clock is skewed.
pub struct Proc {
    /// The node's directory.
    pub dir: NodeDir,
    /// Its administrator's client (the node's own certificate).
    pub client: NodeClient,
    child: Option<Child>,
    log: PathBuf,
    faults: PathBuf,
    /// Seconds its clock runs ahead (negative: behind) through libfaketime, while skewed.
    pub skew: Option<i64>,
    /// Whether it is stopped with SIGSTOP.
    pub paused: bool,
}

impl Proc {
    /// Its node code.
    pub fn code(&self) -> &NodeCode {
        self.dir.code()
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The nodes of the federation, in the order of [`demo_units`]: the city, two districts, three
/// streets.
pub struct Cluster {
    binary: PathBuf,
    /// The nodes.
    pub nodes: Vec<Proc>,
}

fn io(e: impl std::fmt::Display) -> FederationError {
    FederationError::Io(e.to_string())
}

impl Cluster {
    /// Makes the node directories under `root` (no REST gateway) and starts each node as
    /// `binary serve`.
    pub async fn start(root: &Path, binary: PathBuf) -> Result<Self, FederationError> {
        let units = demo_units();
        let mut addrs = Vec::new();
        for _ in &units {
            // Bound and released: the node binds it again a moment later.
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
            addrs.push(l.local_addr().map_err(io)?);
        }
        let dirs = provision(root, &units, &addrs, |config| config.gateway = None)?;
        let mut nodes = Vec::new();
        for dir in dirs {
            let code = dir.code().to_string();
            nodes.push(Proc {
                client: NodeClient::open(dir.clone()).map_err(io)?,
                dir,
                child: None,
                log: root.join(format!("{code}.log")),
                faults: root.join(format!("{code}.faults")),
                skew: None,
                paused: false,
            });
        }
        let mut cluster = Self { binary, nodes };
        for n in 0..cluster.nodes.len() {
            cluster.spawn(n)?;
        }
        Ok(cluster)
    }

    /// Starts node `n`'s process, under libfaketime when its clock is skewed.
    pub fn spawn(&mut self, n: usize) -> Result<(), FederationError> {
        let node = &mut self.nodes[n];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(io)?;
        let mut command = Command::new(&self.binary);
        if let Some(seconds) = node.skew {
            // libfaketime preloaded into the node itself (not through the `faketime` wrapper,
            // whose child a SIGKILL would miss): its wall clock off by `seconds`, its monotonic
            // clock, which timers and timeouts use, left true.
            command
                .env("LD_PRELOAD", faketime_library())
                .env("FAKETIME", format!("{seconds:+}"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        command
            .arg("serve")
            .arg("--node")
            .arg(&node.dir.dir)
            .env(FAULTS_ENV, &node.faults)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log);
        node.child = Some(command.spawn().map_err(|e| {
            FederationError::Io(format!("starting {}: {e}", self.binary.display()))
        })?);
        node.paused = false;
        Ok(())
    }

    /// Kills node `n` with SIGKILL (a paused node too) and reaps it.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[n].paused = false;
    }

    /// Sends node `n` SIGSTOP (`pause`) or SIGCONT.
    pub fn pause(&mut self, n: usize, pause: bool) -> Result<(), FederationError> {
        let Some(pid) = self.nodes[n].pid() else {
            return Ok(());
        };
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .map_err(io)?;
        if !status.success() {
            return Err(FederationError::Io(format!("kill {signal} {pid} failed")));
        }
        self.nodes[n].paused = pause;
        Ok(())
    }

    /// Cuts the nodes of `side` off from every other node, both ways, through their faults
    /// files; an empty `side` heals every partition.
    pub fn partition(&self, side: &BTreeSet<usize>) -> Result<(), FederationError> {
        let line = |p: &Proc| format!("{} {}\n", p.code(), p.dir.config.server.endpoint);
        for (n, node) in self.nodes.iter().enumerate() {
            let others: String = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(m, _)| side.contains(&n) != side.contains(m))
                .map(|(_, p)| line(p))
                .collect();
            // Written whole, then renamed: a node never reads half a file.
            let temporary = node.faults.with_extension("new");
            std::fs::write(&temporary, others).map_err(io)?;
            std::fs::rename(&temporary, &node.faults).map_err(io)?;
        }
        Ok(())
    }

    /// Index of the node of `code`.
    pub fn index(&self, code: &str) -> usize {
        self.nodes
            .iter()
            .position(|p| p.code().as_str() == code)
            .expect("a node of the federation")
    }

    /// Indices of the nodes of `tier`.
    pub fn of_tier(&self, tier: Tier) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].dir.config.node.tier == tier)
            .collect()
    }

    /// Waits until node `n` accepts connections (up to `limit`).
    pub async fn wait_serving(&self, n: usize, limit: Duration) -> Result<(), FederationError> {
        let deadline = Instant::now() + limit;
        loop {
            let answered = match self.nodes[n].client.directory().await {
                Ok(mut d) => d.status(StatusRequest::default()).await.is_ok(),
                Err(_) => false,
            };
            if answered {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FederationError::Io(format!(
                    "node {} does not answer after {} s (see {})",
                    self.nodes[n].code(),
                    limit.as_secs(),
                    self.nodes[n].log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The raft leader as node `n` knows it.
    pub async fn leader(&self, n: usize) -> Option<String> {
        let mut d = self.nodes[n].client.directory().await.ok()?;
        let status = d.status(StatusRequest::default()).await.ok()?.into_inner();
        status.meta.map(|m| m.leader).filter(|l| !l.is_empty())
    }

    /// Forms the directory through the normal path: the city founds it, each other node asks
    /// to join through its parent and the parent approves it, the city names itself and the two
    /// districts voters.
    pub async fn form(&self) -> Result<(), FederationError> {
        for n in 0..self.nodes.len() {
            self.wait_serving(n, Duration::from_secs(60)).await?;
        }
        let failed = |e: String| FederationError::Directory(e);
        let mut city = self.nodes[0]
            .client
            .directory()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let founded = city
            .found(FoundRequest {})
            .await
            .map_err(|e| failed(e.message().to_owned()))?
            .into_inner();
        applied(&founded.results)?;
        for n in 1..self.nodes.len() {
            let dir = &self.nodes[n].dir;
            let parent = dir
                .config
                .node
                .parent
                .clone()
                .ok_or_else(|| failed(format!("{} has no parent", dir.code())))?;
            let p = self.index(parent.as_str());
            let me = member_of(
                dir,
                &dir.credentials().map_err(io)?,
                &dir.signing_key().map_err(io)?,
            )
            .map_err(failed)?;
            let via = self.nodes[p].dir.config.server.endpoint.clone();
            // A parent approved a moment ago may not know the leader yet: asked again, as a
            // joining node's administrator would.
            let mut attempts = 0;
            loop {
                let asked = propose(
                    &self.nodes[n].client,
                    &[DirectoryCommand::Register(me.clone())],
                    &via,
                )
                .await;
                match asked
                    .map_err(|e| e.to_string())
                    .and_then(|r| applied(&r).map_err(|e| e.to_string()))
                {
                    Ok(_) => break,
                    Err(_) if attempts < 40 => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => return Err(failed(format!("{} joining: {e}", dir.code()))),
                }
            }
            let approve = [DirectoryCommand::Approve(dir.code().clone())];
            let approved = propose(&self.nodes[p].client, &approve, "")
                .await
                .map_err(|e| failed(e.to_string()))?;
            applied(&approved)?;
        }
        let voters: BTreeSet<NodeCode> = std::iter::once(0)
            .chain(self.of_tier(Tier::District))
            .map(|n| self.nodes[n].code().clone())
            .collect();
        let set = propose(
            &self.nodes[0].client,
            &[DirectoryCommand::SetVoters(voters)],
            "",
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        applied(&set).map(|_| ())
    }

    /// Stops every node: SIGKILL, as a power cut would, so that reopening their stores shows
    /// what a crash leaves.
    pub fn kill_all(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }
}

/// Where Debian's libfaketime package puts the library (`apt-get install faketime`).
pub fn faketime_library() -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1",
        std::env::consts::ARCH
    ))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Issues `commands` as the node `client` acts for (submitted through `via` when not empty);
/// one result per command.
pub async fn propose(
    client: &NodeClient,
    commands: &[DirectoryCommand],
    via: &str,
) -> Result<Vec<ChangeResult>, ClientError> {
    let mut d = client.directory().await?;
    let commands_json =
        serde_json::to_string(commands).map_err(|e| ClientError::Io(e.to_string()))?;
    Ok(d.propose(ProposeRequest {
        commands_json,
        via: via.to_owned(),
    })
    .await?
    .into_inner()
    .results)
}

/// The revision of the last result when every one applied; the first refusal otherwise.
pub fn applied(results: &[ChangeResult]) -> Result<u64, FederationError> {
    let mut revision = 0;
    for r in results {
        if !r.applied {
            return Err(FederationError::Directory(r.reason.clone()));
        }
        revision = r.revision;
    }
    Ok(revision)
}
