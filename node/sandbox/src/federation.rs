//! A local federation on loopback: a CA and a city, district and street nodes in one directory,
//! each served on a 127.0.0.1 port the OS picks (and its REST gateway on another), linked by the federation directory: the city
//! founds it, every other node joins under its parent and is approved, and the city and its
//! districts vote. `tierlink demo` runs on it, and so do the end-to-end tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tierlink_core::config::{DirectorySettings, GatewaySettings, NodeConfig, NodeDir, Peer};
use tierlink_core::identity::tokens::{ApiTokens, Issue};
use tierlink_core::identity::{CaFiles, NodeCode, PrincipalError, Principals, Tier, Unit};
use tierlink_core::provision::{
    CA_CERT, Certifier, NodeSpec, ProvisionError, init_ca, init_node, load_hash_key,
};
use tierlink_node::directory::{DirectoryCommand, DirectoryReply, Replica};
use tierlink_node::runtime::{self, Node, RunningNode, RuntimeError};
use tierlink_store::StoreError;
use tierlink_store::audit::AuditLog;

/// A federation that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// Its files could not be made.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// A node could not start or stop.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A port could not be bound or the manifest written.
    #[error("{0}")]
    Io(String),
    /// The directory could not be formed.
    #[error("forming the directory: {0}")]
    Directory(String),
}

/// The units of the default three-tier federation: Yichang city, Xiling district, Xiling street.
pub fn default_units() -> Vec<Unit> {
    let unit = |code: &str, tier, parent: Option<&str>, name: &str| Unit {
        code: code.parse().expect("valid built-in code"),
        tier,
        parent: parent.map(|p| p.parse().expect("valid built-in code")),
        name: name.into(),
    };
    vec![
        unit("420500", Tier::City, None, "宜昌市 Yichang City"),
        unit(
            "420502",
            Tier::District,
            Some("420500"),
            "西陵区 Xiling District",
        ),
        unit(
            "420502001",
            Tier::Street,
            Some("420502"),
            "西陵街道 Xiling Street Office",
        ),
    ]
}

/// The units of the demo federation: Yichang city, two districts, three street offices.
pub fn demo_units() -> Vec<Unit> {
    let mut units = default_units();
    let more = [
        (
            "420503",
            Tier::District,
            "420500",
            "伍家岗区 Wujiagang District",
        ),
        (
            "420502002",
            Tier::Street,
            "420502",
            "学院街道 Xueyuan Street Office",
        ),
        (
            "420503001",
            Tier::Street,
            "420503",
            "伍家街道 Wujia Street Office",
        ),
    ];
    units.extend(more.into_iter().map(|(code, tier, parent, name)| Unit {
        code: code.parse().expect("valid built-in code"),
        tier,
        parent: Some(parent.parse().expect("valid built-in code")),
        name: name.into(),
    }));
    units
}

/// A node directory for unit `code` (of `tier`, under `parent`) in `root/CODE`, issued by `ca`,
/// that serves nowhere: for tests and benchmarks that run a node's parts in process.
pub fn offline_node(
    root: &Path,
    ca: &CaFiles,
    code: &str,
    tier: Tier,
    parent: Option<&str>,
) -> Result<NodeDir, FederationError> {
    let code: NodeCode = code
        .parse()
        .map_err(|e| FederationError::Io(format!("{e}")))?;
    let parent = parent
        .map(str::parse)
        .transpose()
        .map_err(|e| FederationError::Io(format!("{e}")))?;
    let spec = NodeSpec {
        unit: Unit {
            name: code.to_string(),
            code: code.clone(),
            tier,
            parent,
        },
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        endpoint: "https://127.0.0.1:1".into(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        peers: vec![],
        hash_key: None,
    };
    Ok(init_node(
        &root.join(code.as_str()),
        spec,
        Certifier::Ca(ca),
    )?)
}

/// The members of [`demo_units`] by name, so that code using the demo federation says whom it
/// means instead of where in a list it stands.
pub mod cast {
    /// 宜昌市 Yichang City.
    pub const CITY: &str = "420500";
    /// 西陵区 Xiling District, the city's first district.
    pub const XILING: &str = "420502";
    /// 西陵街道 Xiling Street Office, under Xiling: the street of the default federation.
    pub const XILING_STREET: &str = "420502001";
    /// 伍家岗区 Wujiagang District.
    pub const WUJIAGANG: &str = "420503";
    /// 学院街道 Xueyuan Street Office, under Xiling.
    pub const XUEYUAN: &str = "420502002";
    /// 伍家街道 Wujia Street Office, under Wujiagang.
    pub const WUJIA: &str = "420503001";
}

/// One node of a local federation.
pub struct LocalNode {
    /// Its directory.
    pub dir: NodeDir,
    running: Option<RunningNode>,
}

impl LocalNode {
    /// Its directory replica, while it runs.
    pub fn directory(&self) -> Option<&Arc<Replica>> {
        self.running.as_ref().map(|r| &r.directory)
    }

    /// The address its REST gateway listens on, while it runs and serves one.
    pub fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.gateway_addr)
    }

    /// Its REST gateway's base URL, `https://127.0.0.1:PORT`, while it runs and serves one.
    pub fn gateway_url(&self) -> Option<String> {
        self.gateway_addr()
            .map(|a| format!("https://{}:{}", a.ip(), a.port()))
    }

    /// Its audit log, while it runs.
    pub fn audit(&self) -> Option<&Arc<AuditLog>> {
        self.running.as_ref().map(|r| &r.audit)
    }

    /// The cross-check runs it took part in, while it runs.
    pub fn cross_checks(&self) -> Option<&Arc<tierlink_node::crosscheck::CrossChecks>> {
        self.running.as_ref().map(|r| &r.cross_checks)
    }

    /// Its store, while it runs.
    pub fn store(&self) -> Option<&Arc<dyn tierlink_store::Store>> {
        self.running.as_ref().map(|r| r.registry.store())
    }
}

/// A CA and nodes under one directory, serving on loopback.
pub struct LocalFederation {
    /// The federation's directory.
    pub root: PathBuf,
    /// Its nodes, in the order of the units given.
    pub nodes: Vec<LocalNode>,
}

/// One line of `federation.json`.
#[derive(Serialize)]
struct ManifestNode<'a> {
    code: &'a str,
    tier: Tier,
    parent: Option<&'a str>,
    name: &'a str,
    endpoint: &'a str,
    /// The REST gateway's base URL, when it serves one.
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    dir: PathBuf,
    ca_cert: PathBuf,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    signing_cert: PathBuf,
}

/// Creates a CA in `root/ca` and a node directory per unit in `root/TIER-CODE`, the node of
/// `units[n]` listening on `addrs[n]` with its REST gateway on a port the OS picks, every node
/// knowing every other as a peer; `configure` changes each `node.toml` before it is saved.
pub fn provision(
    root: &Path,
    units: &[Unit],
    addrs: &[std::net::SocketAddr],
    configure: impl Fn(&mut NodeConfig),
) -> Result<Vec<NodeDir>, FederationError> {
    let ca = init_ca(&root.join("ca"), "local federation")?;
    let hash_key = load_hash_key(&root.join("ca"))?;
    let endpoint = |addr: std::net::SocketAddr| format!("https://127.0.0.1:{}", addr.port());
    let mut dirs = Vec::new();
    for (unit, &addr) in units.iter().zip(addrs) {
        let peers = units
            .iter()
            .zip(addrs)
            .filter(|(u, _)| u.code != unit.code)
            .map(|(u, addr)| Peer {
                code: u.code.clone(),
                endpoint: endpoint(*addr),
            })
            .collect();
        let spec = NodeSpec {
            unit: unit.clone(),
            listen: addr,
            endpoint: endpoint(addr),
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
            peers,
            hash_key: hash_key.clone(),
        };
        let mut dir = init_node(
            &root.join(format!("{}-{}", unit.tier, unit.code)),
            spec,
            Certifier::Ca(&ca),
        )?;
        dir.config.gateway = Some(GatewaySettings::on(
            "127.0.0.1:0".parse().expect("a valid address"),
        ));
        configure(&mut dir.config);
        dir.save().map_err(ProvisionError::from)?;
        dirs.push(dir);
    }
    Ok(dirs)
}

impl LocalFederation {
    /// Creates a CA and one node per unit under `root`, every node knowing every other as a
    /// peer, starts them all and forms the directory.
    pub async fn create(root: &Path, units: Vec<Unit>) -> Result<Self, FederationError> {
        Self::create_with(root, units, DirectorySettings::default()).await
    }

    /// As [`LocalFederation::create`], every node's directory replica with `settings`.
    pub async fn create_with(
        root: &Path,
        units: Vec<Unit>,
        settings: DirectorySettings,
    ) -> Result<Self, FederationError> {
        Self::create_configured(root, units, |config| config.directory = settings.clone()).await
    }

    /// As [`LocalFederation::create`], every node's `node.toml` changed by `configure` before
    /// the node first starts (e.g. its `[limits]`).
    pub async fn create_configured(
        root: &Path,
        units: Vec<Unit>,
        configure: impl Fn(&mut NodeConfig),
    ) -> Result<Self, FederationError> {
        let mut listeners = Vec::new();
        for _ in &units {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| FederationError::Io(e.to_string()))?;
            let addr = l
                .local_addr()
                .map_err(|e| FederationError::Io(e.to_string()))?;
            listeners.push((l, addr));
        }
        let addrs: Vec<std::net::SocketAddr> = listeners.iter().map(|(_, a)| *a).collect();
        let mut nodes: Vec<LocalNode> = provision(root, &units, &addrs, configure)?
            .into_iter()
            .map(|dir| LocalNode { dir, running: None })
            .collect();
        for (node, (listener, _)) in nodes.iter_mut().zip(listeners) {
            node.running = Some(Node::open(node.dir.clone()).await?.start(listener)?);
        }
        let federation = Self {
            root: root.to_owned(),
            nodes,
        };
        federation.form_directory().await?;
        Ok(federation)
    }

    /// The node of unit `code`.
    pub fn node(&self, code: &str) -> Result<&LocalNode, FederationError> {
        self.nodes
            .iter()
            .find(|n| n.dir.code().as_str() == code)
            .ok_or_else(|| FederationError::Directory(format!("no node {code} in this federation")))
    }

    /// The directory replica of running node `code`.
    pub fn replica(&self, code: &NodeCode) -> Result<&Arc<Replica>, FederationError> {
        self.nodes
            .iter()
            .find(|n| n.dir.code() == code)
            .and_then(LocalNode::directory)
            .ok_or_else(|| FederationError::Directory(format!("node {code} is not running")))
    }

    /// The city founds the directory; each other node, parents first, asks to join through its
    /// parent and the parent approves; the city names itself and up to two districts voters.
    async fn form_directory(&self) -> Result<(), FederationError> {
        let failed = |e: String| FederationError::Directory(e);
        let applied = |replies: Vec<DirectoryReply>| match replies.into_iter().next() {
            Some(DirectoryReply::Applied { revision }) => Ok(revision),
            other => Err(failed(format!("{other:?}"))),
        };
        let city = self.nodes[0].dir.code().clone();
        let mut revision = applied(
            self.replica(&city)?
                .found()
                .await
                .map_err(|e| failed(e.to_string()))?,
        )?;
        let mut voters = BTreeSet::from([city.clone()]);
        for node in &self.nodes[1..] {
            let unit = &node.dir.config.node;
            let parent = unit
                .parent
                .as_ref()
                .ok_or_else(|| failed(format!("{} has no parent", unit.code)))?;
            let replica = self.replica(&unit.code)?;
            let parent_replica = self.replica(parent)?;
            let via = parent_replica.member().endpoint.clone();
            let join = vec![DirectoryCommand::Register(replica.member().clone())];
            applied(
                replica
                    .propose_via(&via, join)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            )?;
            let approve = vec![DirectoryCommand::Approve(unit.code.clone())];
            revision = applied(
                parent_replica
                    .propose(approve)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            )?;
            if unit.tier == Tier::District && voters.len() < 3 {
                voters.insert(unit.code.clone());
            }
        }
        if voters.len() == 3 {
            let set = vec![DirectoryCommand::SetVoters(voters)];
            revision = applied(
                self.replica(&city)?
                    .propose(set)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            )?;
        }
        self.wait_for_revision(revision).await
    }

    /// Issues `commands` from node `code`, refusing them all at the first rejection, and waits
    /// until every running node has applied them.
    pub async fn issue(
        &self,
        code: &NodeCode,
        commands: Vec<DirectoryCommand>,
    ) -> Result<(), FederationError> {
        let replies = self
            .replica(code)?
            .propose(commands)
            .await
            .map_err(|e| FederationError::Directory(e.to_string()))?;
        let mut revision = 0;
        for reply in replies {
            match reply {
                DirectoryReply::Applied { revision: r } => revision = r,
                DirectoryReply::Rejected { reason } => {
                    return Err(FederationError::Directory(reason));
                }
            }
        }
        self.wait_for_revision(revision).await
    }

    /// At `street`: the residents catalog with `count` sample residents, published; then the
    /// three-tier policies of [`crate::sample::three_tier_policies`] issued by `city`, `district`
    /// and `street`. The residents' keys (`person_id`), in the order written.
    pub async fn residents_under_policies(
        &self,
        [city, district, street]: [&tierlink_client::NodeClient; 3],
        count: usize,
    ) -> Result<Vec<String>, FederationError> {
        use crate::sample::{self, RESIDENT_COLUMNS, RESIDENTS_CATALOG};
        let failed = |e: tierlink_client::ClientError| FederationError::Io(e.to_string());
        let (_, json) = tierlink_core::catalog::EXAMPLES
            .iter()
            .find(|(file, _)| *file == "residents.json")
            .expect("the residents example is built in");
        street.put_catalog(json.to_string()).await.map_err(failed)?;
        let rows = sample::residents(street.code().as_str(), count, 3);
        let key_column = RESIDENT_COLUMNS
            .iter()
            .position(|c| *c == "person_id")
            .expect("residents have a person_id");
        let keys = rows.iter().map(|r| r[key_column].clone()).collect();
        let columns: Vec<String> = RESIDENT_COLUMNS.iter().map(|c| c.to_string()).collect();
        street
            .put_records(RESIDENTS_CATALOG, columns, rows)
            .await
            .map_err(failed)?;
        let revision = street.publish(&[RESIDENTS_CATALOG]).await.map_err(failed)?;
        self.wait_for_revision(revision).await?;
        for (issuer, command) in
            sample::three_tier_policies(city.code(), district.code(), street.code(), "2099-12-31")
        {
            self.issue(&issuer, vec![DirectoryCommand::Policy(command)])
                .await?;
        }
        Ok(keys)
    }

    /// Adds a principal holding `roles` to node `code`, returning its token.
    pub fn add_principal(
        &self,
        code: &NodeCode,
        name: &str,
        roles: &[&str],
    ) -> Result<String, FederationError> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.dir.code() == code)
            .ok_or_else(|| FederationError::Io(format!("no node {code}")))?;
        let path = node.dir.principals_path();
        let fail = |e: PrincipalError| FederationError::Io(e.to_string());
        Principals::update(&path, |principals| {
            principals.add(name, roles.iter().map(|r| r.to_string()).collect())
        })
        .map_err(fail)
    }

    /// Issues the API token `issue` describes on node `code`; returns the token.
    pub fn add_token(&self, code: &NodeCode, issue: Issue) -> Result<String, FederationError> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.dir.code() == code)
            .ok_or_else(|| FederationError::Io(format!("no node {code}")))?;
        let fail = |e: String| FederationError::Io(e);
        let principals =
            Principals::load(&node.dir.principals_path()).map_err(|e| fail(e.to_string()))?;
        let path = node.dir.tokens_path();
        let issued = ApiTokens::update(&path, |tokens| {
            tokens.create(&principals, issue, chrono::Utc::now())
        })
        .map_err(|e| fail(e.to_string()))?;
        Ok(issued.secret)
    }

    /// Waits until every running node's replica has applied `revision`.
    pub async fn wait_for_revision(&self, revision: u64) -> Result<(), FederationError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            let Some(replica) = node.directory() else {
                continue;
            };
            while replica.view(|s| s.revision) < revision {
                if tokio::time::Instant::now() > deadline {
                    return Err(FederationError::Directory(format!(
                        "node {} has not caught up with revision {revision} after 30 s",
                        node.dir.code()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Stops node `n` (its store is closed and flushed).
    pub async fn stop_node(&mut self, n: usize) -> Result<(), FederationError> {
        if let Some(running) = self.nodes[n].running.take() {
            running.stop().await?;
        }
        Ok(())
    }

    /// Starts node `n` again on its configured address. In one process, the store of a node
    /// just stopped may still be held a moment by tasks that end as they are dropped: its
    /// opening is tried again for up to 10 s while it is.
    pub async fn start_node(&mut self, n: usize) -> Result<(), FederationError> {
        let dir = self.nodes[n].dir.clone();
        let listener = runtime::bind(&dir).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let node = loop {
            match Node::open(dir.clone()).await {
                Err(RuntimeError::Store(StoreError::Locked(_)))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                opened => break opened?,
            }
        };
        self.nodes[n].running = Some(node.start(listener)?);
        Ok(())
    }

    /// Stops every node.
    pub async fn stop(mut self) -> Result<(), FederationError> {
        for n in 0..self.nodes.len() {
            self.stop_node(n).await?;
        }
        Ok(())
    }

    /// Writes `federation.json`: for each node its code, tier, parent, endpoint, gateway URL and
    /// the paths of its certificate, key and the CA certificate, so any gRPC or HTTPS client can
    /// connect.
    pub fn write_manifest(&self) -> Result<PathBuf, FederationError> {
        let nodes: Vec<ManifestNode<'_>> = self
            .nodes
            .iter()
            .map(|n| {
                let c = &n.dir.config;
                ManifestNode {
                    code: c.node.code.as_str(),
                    tier: c.node.tier,
                    parent: c.node.parent.as_ref().map(|p| p.as_str()),
                    name: &c.node.name,
                    endpoint: &c.server.endpoint,
                    gateway: n.gateway_url(),
                    dir: n.dir.dir.clone(),
                    ca_cert: n.dir.path(&c.files.ca),
                    tls_cert: n.dir.path(&c.files.tls_cert),
                    tls_key: n.dir.path(&c.files.tls_key),
                    signing_cert: n.dir.path(&c.files.signing_cert),
                }
            })
            .collect();
        let manifest =
            serde_json::json!({ "ca_cert": self.root.join("ca").join(CA_CERT), "nodes": nodes });
        let path = self.root.join("federation.json");
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| FederationError::Io(e.to_string()))?;
        std::fs::write(&path, text + "\n")
            .map_err(|e| FederationError::Io(format!("{}: {e}", path.display())))?;
        Ok(path)
    }
}
