//! The federation directory beside etcd, in one run: a three-member etcd cluster and our
//! three-voter directory on loopback, driven by the same writers, 1 and 64 at a time, each write
//! about 700 bytes acknowledged once durable on a quorum.
//!
//! - **etcd** (the `etcd` on `PATH`; Debian's `etcd-server`, 3.4 here): three processes on
//!   127.0.0.1, client and peer TLS with client certificates required on both, data directories
//!   in a temporary directory, every other setting its default (its write-ahead log is fsynced
//!   before a write is acknowledged). Each write is a `Put` of a distinct key whose value is the
//!   JSON of one of our catalogs, sent to the leader.
//! - **Our directory**: the sandbox's three voters in this process (as `benches/directory.rs`),
//!   each write publishing that catalog, signed by the node, appended and flushed to sled on a
//!   quorum and applied. Once over gRPC (`tierlink.v1.Directory/Propose` to the leader with its
//!   node certificate, as etcd's client puts to etcd's leader), once in process (the leader's
//!   replica proposes directly, as `benches/directory.rs` measures).
//!
//! Durable is not the same on both sides: etcd `fdatasync`s its write-ahead log (a device cache
//! flush), while sled 0.34's flush writes the log out with `sync_file_range` (no cache flush, no
//! file metadata), much cheaper on most disks. The table gives etcd's mean fsync time so the
//! difference can be accounted for.
//!
//! Both clients use the same mutual-TLS channel (`tierlink_client::channel`), one connection
//! shared by every writer, and the same certificates (made here with the federation's CA
//! code). Runs alternate, etcd then ours, three rounds, so the machine's drift shows in each
//! pair's ratio. Beside each run: the CPU time per write of etcd's three processes and of this
//! process (its writers, and our three voters), and the cores other processes kept busy.
//!
//! Run: `ops/bench/etcd.sh` (installs etcd with apt-get when it is missing), or
//! `cargo bench -p tierlink-sandbox --bench etcd` with `etcd` on `PATH`. Without it the
//! benchmark says how to install it and exits.

mod shared;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::{CATALOGS, Run, THREE_VOTERS, catalogs, drive, leader, publish, units};
use tierlink_client::NodeClient;
use tierlink_core::config::Credentials;
use tierlink_core::identity::{
    NodeCredentials, generate_ca, issue_node_certificates, write_private,
};
use tierlink_node::directory::{DirectoryCommand, Replica};
use tierlink_proto::v1::ProposeRequest;
use tierlink_sandbox::federation::LocalFederation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rounds of (etcd, ours) at each number of writers.
const ROUNDS: usize = 3;

/// Writers, and writes per writer, of each run.
const LOADS: [(usize, usize); 2] = [(1, 2000), (64, 400)];

/// The part of etcd's v3 API this benchmark calls, written from etcd's
/// `api/etcdserverpb/rpc.proto` (same packages, names and field numbers; fields it does not use
/// are left out, which protobuf decoding skips). Written by hand because the `etcd-client`
/// crate generates its code at build time with a `protoc` it expects installed on the machine.
mod etcdserverpb {
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::transport::Channel;
    use tonic::{Request, Status};

    /// `etcdserverpb.ResponseHeader`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        /// The cluster's ID.
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        /// The ID of the member that answered.
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        /// The key-value store's revision when the request was applied.
        #[prost(int64, tag = "3")]
        pub revision: i64,
        /// The raft term when the request was applied.
        #[prost(uint64, tag = "4")]
        pub raft_term: u64,
    }

    /// `etcdserverpb.PutRequest`, without a lease or options.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        /// The key.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// The value.
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// `etcdserverpb.PutResponse`, without the previous value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        /// Who answered, and the revision the put made.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    /// `etcdserverpb.StatusRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {}

    /// `etcdserverpb.StatusResponse`: who answered, and whom it follows.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        /// Who answered.
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        /// The member's etcd version.
        #[prost(string, tag = "2")]
        pub version: String,
        /// The leader's member ID; 0 while there is none.
        #[prost(uint64, tag = "4")]
        pub leader: u64,
        /// The member's last raft log index.
        #[prost(uint64, tag = "5")]
        pub raft_index: u64,
    }

    /// A client of one etcd member (`etcdserverpb.KV` and `etcdserverpb.Maintenance`); clones
    /// share its connection.
    #[derive(Clone)]
    pub struct Etcd(tonic::client::Grpc<Channel>);

    impl Etcd {
        /// A client on `channel`.
        pub fn new(channel: Channel) -> Self {
            Self(tonic::client::Grpc::new(channel))
        }

        async fn unary<Q, A>(&mut self, path: &'static str, request: Q) -> Result<A, Status>
        where
            Q: prost::Message + Send + 'static,
            A: prost::Message + Default + Send + 'static,
        {
            self.0
                .ready()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let codec = tierlink_proto::codec::ProstCodec::default();
            let path = PathAndQuery::from_static(path);
            let answer = self.0.unary(Request::new(request), path, codec).await?;
            Ok(answer.into_inner())
        }

        /// Puts `value` at `key`; answered once the put is committed and applied.
        pub async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<PutResponse, Status> {
            self.unary("/etcdserverpb.KV/Put", PutRequest { key, value })
                .await
        }

        /// The member's status.
        pub async fn status(&mut self) -> Result<StatusResponse, Status> {
            self.unary("/etcdserverpb.Maintenance/Status", StatusRequest {})
                .await
        }
    }
}

use etcdserverpb::Etcd;

/// etcd's member processes, killed when dropped (also when a start fails half-way).
struct Members {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Members {
    /// Panics, with its log, if a member has exited.
    fn check_running(&mut self) {
        for (child, log) in self.children.iter_mut().zip(&self.logs) {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("an etcd member exited ({status}):\n{text}");
            }
        }
    }

    fn pids(&self) -> Vec<String> {
        self.children.iter().map(|c| c.id().to_string()).collect()
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A three-member etcd cluster on 127.0.0.1.
struct EtcdCluster {
    members: Members,
    /// A client of the leader.
    leader: Etcd,
    /// The leader's version.
    version: String,
    /// Where the leader serves its Prometheus metrics (plain HTTP).
    leader_metrics: SocketAddr,
}

/// Certificates for mutual TLS, as our nodes have them (ECDSA P-256, for 127.0.0.1 and
/// localhost, server and client use), from a CA made for the run.
fn certificates(count: usize) -> Vec<Credentials> {
    let ca = generate_ca("etcd beside the directory").expect("a CA");
    units(&THREE_VOTERS)
        .iter()
        .take(count)
        .map(|unit| {
            let keys = NodeCredentials::generate().expect("keys");
            let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
            let certs = issue_node_certificates(&ca, unit, &hosts, &keys).expect("certificates");
            Credentials {
                ca_pem: ca.cert_pem.clone(),
                tls_cert_pem: certs.tls_pem,
                tls_key_pem: keys.tls_key_pem,
                signing_cert_pem: certs.signing_pem,
                signing_key_pem: keys.signing_key_pem,
            }
        })
        .collect()
}

/// `count` ports free on 127.0.0.1 now, as the OS chose them (all held until all are chosen, so
/// they differ).
fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

impl EtcdCluster {
    /// Starts three members of `etcd` with data and certificates under `root`, and waits until
    /// every member answers and names the same leader.
    async fn start(etcd: &Path, root: &Path) -> Self {
        std::fs::create_dir_all(root).expect("the etcd directory");
        let credentials = certificates(3);
        let ca = root.join("ca.crt");
        std::fs::write(&ca, &credentials[0].ca_pem).expect("ca.crt");
        let ports = free_ports(9);
        let peer_url = |m: usize| format!("https://127.0.0.1:{}", ports[3 * m]);
        let client_url = |m: usize| format!("https://127.0.0.1:{}", ports[3 * m + 1]);
        let metrics = |m: usize| SocketAddr::from(([127, 0, 0, 1], ports[3 * m + 2]));
        let initial_cluster = (0..3)
            .map(|m| format!("m{m}={}", peer_url(m)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Members {
            children: Vec::new(),
            logs: Vec::new(),
        };
        for (m, c) in credentials.iter().enumerate() {
            let (cert, key) = (
                root.join(format!("m{m}.crt")),
                root.join(format!("m{m}.key")),
            );
            std::fs::write(&cert, &c.tls_cert_pem).expect("member certificate");
            write_private(&key, &c.tls_key_pem).expect("member key");
            let log = root.join(format!("m{m}.log"));
            let path = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();
            let args = [
                ("--name", format!("m{m}")),
                ("--data-dir", path(&root.join(format!("m{m}.etcd")))),
                ("--listen-peer-urls", peer_url(m)),
                ("--initial-advertise-peer-urls", peer_url(m)),
                ("--listen-client-urls", client_url(m)),
                ("--advertise-client-urls", client_url(m)),
                ("--listen-metrics-urls", format!("http://{}", metrics(m))),
                ("--initial-cluster", initial_cluster.clone()),
                ("--initial-cluster-state", "new".into()),
                ("--initial-cluster-token", "tierlink-bench".into()),
                ("--cert-file", path(&cert)),
                ("--key-file", path(&key)),
                ("--trusted-ca-file", path(&ca)),
                ("--client-cert-auth", "true".into()),
                ("--peer-cert-file", path(&cert)),
                ("--peer-key-file", path(&key)),
                ("--peer-trusted-ca-file", path(&ca)),
                ("--peer-client-cert-auth", "true".into()),
                ("--logger", "zap".into()),
                ("--log-outputs", "stderr".into()),
                ("--log-level", "warn".into()),
            ];
            let child = Command::new(etcd)
                .args(args.iter().map(|(flag, value)| format!("{flag}={value}")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("member log"))
                .spawn()
                .expect("etcd starts");
            members.children.push(child);
            members.logs.push(log);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            members.check_running();
            if let Some((m, leader, version)) = leader_of(&credentials, client_url).await {
                return Self {
                    members,
                    leader,
                    version,
                    leader_metrics: metrics(m),
                };
            }
            assert!(
                Instant::now() < deadline,
                "etcd formed no cluster in 30 s; see its logs in {}",
                root.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The leader's number, a client of it and its version, once every member answers and names the
/// same leader; members are reached at `client_url(m)`, member `m` with `credentials[m]`.
async fn leader_of(
    credentials: &[Credentials],
    client_url: impl Fn(usize) -> String,
) -> Option<(usize, Etcd, String)> {
    let mut named = Vec::new();
    for (m, c) in credentials.iter().enumerate() {
        let mut member = Etcd::new(tierlink_client::channel(c, &client_url(m)).await.ok()?);
        let status = member.status().await.ok()?;
        let me = status.header.as_ref()?.member_id;
        named.push((status.leader, me == status.leader, member, status.version));
    }
    let leader = named[0].0;
    if leader == 0 || named.iter().any(|(l, ..)| *l != leader) {
        return None;
    }
    named
        .into_iter()
        .enumerate()
        .find(|(_, (_, leads, ..))| *leads)
        .map(|(m, (_, _, member, version))| (m, member, version))
}

impl EtcdCluster {
    /// The leader's last log index, and the fsyncs of its write-ahead log so far.
    async fn position(&self) -> (u64, Fsyncs) {
        let index = self.leader.clone().status().await.expect("etcd's status");
        let mut metrics = String::new();
        let mut http = TcpStream::connect(self.leader_metrics)
            .await
            .expect("etcd's metrics");
        http.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("a metrics request");
        http.read_to_string(&mut metrics)
            .await
            .expect("etcd's metrics");
        let metric = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("etcd's metrics have no {name}"))
        };
        let fsyncs = Fsyncs {
            count: metric("etcd_disk_wal_fsync_duration_seconds_count"),
            seconds: metric("etcd_disk_wal_fsync_duration_seconds_sum"),
        };
        (index.raft_index, fsyncs)
    }
}

/// fsyncs of etcd's write-ahead log, and the time they took, from its metrics
/// (`etcd_disk_wal_fsync_duration_seconds`).
#[derive(Clone, Copy)]
struct Fsyncs {
    count: f64,
    seconds: f64,
}

impl std::ops::Sub for Fsyncs {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            count: self.count - earlier.count,
            seconds: self.seconds - earlier.seconds,
        }
    }
}

/// The leader a run writes to, for its log's length before and after.
enum Leader<'a> {
    Etcd(&'a EtcdCluster),
    Directory(&'a Replica),
}

impl Leader<'_> {
    /// The leader's last log index, and for etcd its write-ahead log's fsyncs so far.
    async fn position(&self) -> (u64, Option<Fsyncs>) {
        match self {
            Leader::Etcd(etcd) => {
                let (index, fsyncs) = etcd.position().await;
                (index, Some(fsyncs))
            }
            Leader::Directory(replica) => (replica.metrics().last_log_index.unwrap_or(0), None),
        }
    }
}

/// Linux's `USER_HZ`: the unit of CPU times in `/proc` (fixed by its ABI).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user and system, every thread) process `pid` (or `self`) has used, in ticks: fields
/// 14 and 15 of `/proc/PID/stat` (proc(5)).
fn process_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it start with field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

/// Ticks the machine's CPUs have spent busy (user, nice, system, irq, softirq, steal), from the
/// `cpu` line of `/proc/stat` (proc(5)).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum()
}

/// CPU used during a run, in ticks.
struct Usage {
    /// By this process: the writers, the clients, our three voters.
    this: u64,
    /// By etcd's three processes.
    etcd: u64,
    /// By the whole machine.
    machine: u64,
}

impl Usage {
    fn now(etcd: &[String]) -> Self {
        Self {
            this: process_ticks("self"),
            etcd: etcd.iter().map(|p| process_ticks(p)).sum(),
            machine: machine_busy_ticks(),
        }
    }

    fn since(&self, etcd: &[String]) -> Self {
        let now = Self::now(etcd);
        Self {
            this: now.this - self.this,
            etcd: now.etcd - self.etcd,
            machine: now.machine - self.machine,
        }
    }
}

/// A run, the CPU it took, and the log entries (and for etcd the fsyncs) its leader made.
struct Measured {
    run: Run,
    usage: Usage,
    entries: u64,
    fsyncs: Option<Fsyncs>,
}

impl Measured {
    /// Microseconds of CPU per write, in `ticks`.
    fn per_write(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e6 / TICKS_PER_SECOND as f64 / self.run.writes as f64
    }

    /// Cores kept busy on average by processes other than this one and etcd's.
    fn others(&self) -> f64 {
        let own = self.usage.this + self.usage.etcd;
        let ticks = self.usage.machine.saturating_sub(own);
        ticks as f64 / TICKS_PER_SECOND as f64 / self.run.elapsed.as_secs_f64()
    }
}

async fn measure(etcd: &[String], leader: Leader<'_>, run: impl Future<Output = Run>) -> Measured {
    let (index, fsyncs) = leader.position().await;
    let before = Usage::now(etcd);
    let run = run.await;
    let usage = before.since(etcd);
    let (index_after, fsyncs_after) = leader.position().await;
    Measured {
        run,
        usage,
        entries: index_after - index,
        fsyncs: fsyncs
            .zip(fsyncs_after)
            .map(|(before, after)| after - before),
    }
}

fn header() {
    println!(
        "{:<36} {:>7} {:>6} {:>9} {:>7} {:>7} {:>8} {:>9} {:>7} {:>7} {:>8} {:>6}",
        "system",
        "writers",
        "writes",
        "commits/s",
        "p50 ms",
        "p99 ms",
        "cpu µs/w",
        "etcd µs/w",
        "w/entry",
        "w/fsync",
        "fsync ms",
        "others"
    );
}

fn row(system: &str, writers: usize, m: &Measured) {
    let (etcd, per_fsync, fsync_ms) = match m.fsyncs {
        Some(f) => (
            format!("{:.0}", m.per_write(m.usage.etcd)),
            format!("{:.1}", m.run.writes as f64 / f.count.max(1.0)),
            format!("{:.2}", f.seconds * 1000.0 / f.count.max(1.0)),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    println!(
        "{system:<36} {writers:>7} {:>6} {:>9.0} {:>7.2} {:>7.2} {:>8.0} {etcd:>9} {:>7.1} {per_fsync:>7} {fsync_ms:>8} {:>6.2}",
        m.run.writes,
        m.run.per_second(),
        m.run.percentile(0.5),
        m.run.percentile(0.99),
        m.per_write(m.usage.this + m.usage.etcd),
        m.run.writes as f64 / m.entries.max(1) as f64,
        m.others(),
    );
}

/// Ours against etcd: throughput, and p50 and p99 latency.
struct Ratio([f64; 3]);

impl Ratio {
    fn of(ours: &Run, etcd: &Run) -> Self {
        Self([
            ours.per_second() / etcd.per_second(),
            ours.percentile(0.5) / etcd.percentile(0.5),
            ours.percentile(0.99) / etcd.percentile(0.99),
        ])
    }

    fn print(&self, what: &str, writers: usize) {
        let [throughput, p50, p99] = self.0;
        println!(
            "{what:<36} {writers:>7} {:>6} {throughput:>9.2} {p50:>7.2} {p99:>7.2}",
            ""
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `etcd` executable on `PATH`.
fn etcd_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

async fn side_by_side(etcd_bin: &Path, root: &Path) {
    let etcd = EtcdCluster::start(etcd_bin, &root.join("etcd")).await;
    let pids = etcd.members.pids();
    let federation = LocalFederation::create(&root.join("directory"), units(&THREE_VOTERS))
        .await
        .expect("the directory's three voters");
    let replica = leader(&federation);
    let leading = federation
        .nodes
        .iter()
        .find(|n| n.directory().is_some_and(|r| r.is_leader()))
        .expect("a leading node");
    let node = NodeClient::open(leading.dir.clone()).expect("the leader's own client");
    let directory = node
        .directory()
        .await
        .expect("the leader's Directory service");

    let catalogs = catalogs();
    let values: Arc<Vec<Vec<u8>>> = Arc::new(
        catalogs
            .iter()
            .map(|c| serde_json::to_vec(c).expect("JSON"))
            .collect(),
    );
    let proposals: Arc<Vec<String>> = Arc::new(
        catalogs
            .iter()
            .map(|c| serde_json::to_string(&[DirectoryCommand::Publish(c.clone())]).expect("JSON"))
            .collect(),
    );
    let mean = |sizes: &mut dyn Iterator<Item = usize>| {
        let sizes: Vec<usize> = sizes.collect();
        sizes.iter().sum::<usize>() / sizes.len()
    };

    // Distinct keys in every run of etcd.
    let mut etcd_runs = 0;
    let mut put = |writers, per_writer| {
        etcd_runs += 1;
        let (client, values, run) = (etcd.leader.clone(), values.clone(), etcd_runs);
        drive(writers, per_writer, move |n| {
            let mut client = client.clone();
            let key = format!("/directory/catalogs/{run}/{n:07}").into_bytes();
            let value = values[n % CATALOGS].clone();
            async move {
                client
                    .put(key, value)
                    .await
                    .expect("etcd committed the put");
            }
        })
    };
    let propose = |writers, per_writer| {
        let (client, proposals) = (directory.clone(), proposals.clone());
        drive(writers, per_writer, move |n| {
            let mut client = client.clone();
            let commands_json = proposals[n % CATALOGS].clone();
            async move {
                let request = ProposeRequest {
                    commands_json,
                    via: String::new(),
                };
                let answer = client.propose(request).await.expect("committed");
                let results = answer.into_inner().results;
                assert!(results.iter().all(|r| r.applied), "refused: {results:?}");
            }
        })
    };

    // Warm up connections and caches.
    put(8, 50).await;
    propose(8, 50).await;
    publish(&replica, &catalogs, 8, 50).await;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "etcd {} (three processes) beside our directory (three voters in this process); \
         etcd's value {} bytes, our Propose request's commands {} bytes; load average {}",
        etcd.version,
        mean(&mut values.iter().map(Vec::len)),
        mean(&mut proposals.iter().map(String::len)),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "cpu µs/w: CPU per write of etcd's processes and this one together; etcd µs/w: of etcd's \
         alone; w/entry: writes per entry of the leader's log; w/fsync, fsync ms: writes per fsync \
         of etcd's leader's WAL, and an fsync's mean time; others: cores other processes kept busy"
    );
    println!();
    header();
    let mut summary = Vec::new();
    for (writers, per_writer) in LOADS {
        let (mut over_grpc, mut in_process) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            let etcd_run = measure(&pids, Leader::Etcd(&etcd), put(writers, per_writer)).await;
            let ours = Leader::Directory(&replica);
            let grpc = measure(&pids, ours, propose(writers, per_writer)).await;
            let ours = Leader::Directory(&replica);
            let local = measure(
                &pids,
                ours,
                publish(&replica, &catalogs, writers, per_writer),
            )
            .await;
            row(&format!("etcd, 3 members ({round})"), writers, &etcd_run);
            row(
                &format!("directory, 3 voters, gRPC ({round})"),
                writers,
                &grpc,
            );
            row(&format!("directory, in process ({round})"), writers, &local);
            let ratio = Ratio::of(&grpc.run, &etcd_run.run);
            ratio.print("  ratio gRPC / etcd", writers);
            Ratio::of(&local.run, &etcd_run.run).print("  ratio in process / etcd", writers);
            over_grpc.push(ratio.0[0]);
            in_process.push(Ratio::of(&local.run, &etcd_run.run).0[0]);
        }
        summary.push((writers, median(over_grpc), median(in_process)));
    }
    println!();
    for (writers, grpc, local) in summary {
        println!(
            "{writers:>2} writers: our directory's commits/s over etcd's, median of {ROUNDS} rounds: \
             {grpc:.2} over gRPC, {local:.2} in process"
        );
    }
    drop(etcd);
    federation.stop().await.expect("the directory stops");
}

fn main() {
    let Some(etcd) = etcd_on_path() else {
        eprintln!(
            "etcd is not on PATH, so this benchmark cannot run. Install it and run the benchmark \
             with `ops/bench/etcd.sh` (Debian's etcd-server package, with apt-get), or install \
             etcd 3.4 or later by other means and run it again."
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let root = tempfile::tempdir().expect("a temporary directory");
    runtime.block_on(side_by_side(&etcd, root.path()));
}
