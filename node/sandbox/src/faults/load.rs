//! The mixed load the faults run under, every operation recorded with its invocation and
//! completion times and outcome: record writes at the two producing streets, a city principal's
//! queries of them (straight and through the producer's district as relay), its feed of one
//! producer resumed from its last token after every failure, and directory registers — roles
//! whose post each write sets to a new value — written by a city, a district and a street and
//! read back with linearizable reads at every node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tierlink_client::{ClientError, NodeClient};
use tierlink_core::config::NodeDir;
use tierlink_core::directory::DirectoryCommand;
use tierlink_core::identity::{NodeCode, Principals};
use tierlink_core::policy::{
    AccessRequest, AccessStatus, Action, Grant, Grantee, PolicyCommand, Role,
};
use tierlink_proto::v1::{Credential, QueryRequest, ReadRequest, ReadScope, SubscribeRequest};

use super::cluster::{Cluster, applied, propose};
use super::history::{Outcome, RegisterOp, Timed};
use crate::federation::FederationError;
use crate::sample::{self, Mix, RESIDENT_COLUMNS, RESIDENTS_CATALOG};

/// The streets that produce records.
pub const PRODUCERS: [&str; 2] = ["420502001", "420503001"];
/// The producer whose feed the city principal follows.
pub const FOLLOWED: &str = "420502001";
/// The nodes that write directory registers: the city, a district, a street.
pub const REGISTER_WRITERS: [&str; 3] = ["420500", "420503", "420502002"];
/// Registers each writer keeps.
const REGISTERS_EACH: usize = 2;
/// The column whose value each record write changes.
const MARKED: &str = "current_address";
/// Residents each producer may write, new keys first.
const KEYS: usize = 5_000;
const PURPOSE: &str = "fault tolerance check";
const READER_ROLE: &str = "fault-reader";

/// A record write as the load made it.
#[derive(Clone, Debug)]
pub struct RecordWrite {
    /// The producer written to.
    pub producer: String,
    /// The record's key.
    pub key: String,
    /// The value its marked column was set to.
    pub value: String,
    /// Invocation and completion, µs since the run started.
    pub call: u64,
    /// Completion, µs since the run started.
    pub ret: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// A version the feed delivered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delivered {
    /// The record's key.
    pub key: String,
    /// Its version.
    pub version: u64,
    /// The value of its marked column.
    pub value: String,
}

/// Everything the load did.
#[derive(Default)]
pub struct History {
    /// Operations by kind: acknowledged, failed, indeterminate.
    pub counts: BTreeMap<&'static str, [u64; 3]>,
    /// Every record write.
    pub writes: Vec<RecordWrite>,
    /// Operations on each directory register, by role id, with how they ended and, for those
    /// that failed, the error.
    pub registers: BTreeMap<String, Vec<(Timed, Outcome, String)>>,
    /// Versions of [`FOLLOWED`]'s records the feed delivered.
    pub delivered: BTreeSet<Delivered>,
    /// The first error of each kind of operation, for the report.
    pub first_errors: BTreeMap<&'static str, String>,
}

impl History {
    /// Counts an operation that failed with `error`, its outcome `outcome`.
    fn failed(&mut self, kind: &'static str, outcome: Outcome, error: &impl ToString) {
        self.count(kind, outcome);
        self.first_errors
            .entry(kind)
            .or_insert_with(|| error.to_string());
    }

    fn count(&mut self, kind: &'static str, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Indeterminate => 2,
        };
        self.counts.entry(kind).or_default()[slot] += 1;
    }
}

/// How a failed call ended: known not carried out, or perhaps carried out.
fn outcome_of(e: &ClientError) -> Outcome {
    if e.not_carried_out() {
        Outcome::Failed
    } else {
        Outcome::Indeterminate
    }
}

/// The shared state of the load's workers.
#[derive(Clone)]
pub struct Load {
    started: Instant,
    dirs: Arc<Vec<NodeDir>>,
    history: Arc<Mutex<History>>,
    stop: Arc<AtomicBool>,
    reader: Credential,
    feed_token: Arc<Mutex<String>>,
    /// When the feed's first token was read, µs since the run started: the feed owes every
    /// write invoked from then on.
    pub feed_from: u64,
    seed: u64,
}

impl Load {
    /// µs since the run started.
    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn record<T>(&self, f: impl FnOnce(&mut History) -> T) -> T {
        f(&mut self.history.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn dir(&self, code: &str) -> NodeDir {
        self.dirs
            .iter()
            .find(|d| d.code().as_str() == code)
            .expect("a node of the federation")
            .clone()
    }

    /// Publishes the residents catalog at each producer, writes one resident there, opens it to
    /// a city principal (a role, access requests approved with every item in clear), and starts
    /// the feed's token from a first query. `started` is the run's clock.
    pub async fn prepare(
        cluster: &Cluster,
        started: Instant,
        seed: u64,
    ) -> Result<Self, FederationError> {
        let failed = |e: String| FederationError::Directory(e);
        let city = &cluster.nodes[0];
        let (_, json) = tierlink_core::catalog::EXAMPLES
            .iter()
            .find(|(file, _)| *file == "residents.json")
            .expect("the residents example is built in");
        let role = format!("{}/{READER_ROLE}", city.code());
        let define = PolicyCommand::DefineRole(Role {
            unit: city.code().clone(),
            name: READER_ROLE.into(),
            department: "Data Office".into(),
            post: "reader".into(),
        });
        issue(&city.client, DirectoryCommand::Policy(define)).await?;
        for producer in PRODUCERS {
            let p = &cluster.nodes[cluster.index(producer)].client;
            p.put_catalog(json.to_string())
                .await
                .map_err(|e| failed(e.to_string()))?;
            p.publish(&[RESIDENTS_CATALOG])
                .await
                .map_err(|e| failed(e.to_string()))?;
            let id = format!("fault-{producer}");
            let grantee = Grantee::Role(role.clone());
            let request = PolicyCommand::RequestAccess(AccessRequest {
                id: id.clone(),
                producer: p.code().clone(),
                catalog: RESIDENTS_CATALOG.into(),
                grantee: grantee.clone(),
                purpose: PURPOSE.into(),
                items: Vec::new(),
                requester: None,
                status: AccessStatus::Pending,
            });
            issue(&city.client, DirectoryCommand::Policy(request)).await?;
            let approve = PolicyCommand::ApproveAccess(Grant {
                others: Some(Action::Clear),
                access_request: Some(id.clone()),
                ..Grant::new(
                    id,
                    p.code().clone(),
                    RESIDENTS_CATALOG,
                    grantee,
                    PURPOSE,
                    "2099-12-31",
                )
            });
            issue(p, DirectoryCommand::Policy(approve)).await?;
        }
        let token = Principals::update(&city.dir.principals_path(), |principals| {
            principals.add("zhao", BTreeSet::from([role.clone()]))
        })
        .map_err(|e| FederationError::Io(e.to_string()))?;
        let mut load = Self {
            started,
            dirs: Arc::new(cluster.nodes.iter().map(|p| p.dir.clone()).collect()),
            history: Default::default(),
            stop: Default::default(),
            reader: Credential {
                principal: "zhao".into(),
                token,
                role,
                purpose: PURPOSE.into(),
                grant: String::new(),
            },
            feed_token: Default::default(),
            feed_from: 0,
            seed,
        };
        // The feed starts from where a first query of the first write left off.
        let mut rng = Mix(seed);
        for producer in PRODUCERS {
            let client = NodeClient::open(load.dir(producer)).map_err(|e| failed(e.to_string()))?;
            load.write_record(&client, &mut rng, &mut Vec::new(), 0)
                .await
                .map_err(|e| failed(format!("the first write at {producer}: {e}")))?;
        }
        let city_client =
            NodeClient::open(load.dir("420500")).map_err(|e| failed(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut token = String::new();
            let read = city_client
                .read(None, load.query(FOLLOWED, 1), |_, verified| {
                    token = verified.header.resume_token.clone();
                    Ok(())
                })
                .await;
            match read {
                Ok(_) if !token.is_empty() => {
                    *load.feed_token.lock().unwrap_or_else(|p| p.into_inner()) = token;
                    load.feed_from = load.now();
                    break;
                }
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => {
                    return Err(failed(format!(
                        "the city's principal cannot read {FOLLOWED}: {other:?}"
                    )));
                }
            }
        }
        Ok(load)
    }

    /// Every current record of `producer`, read by the city principal straight from it: key,
    /// version, and the value of the marked column.
    pub async fn current(
        &self,
        producer: &str,
    ) -> Result<BTreeMap<String, (u64, String)>, ClientError> {
        let city = NodeClient::open(self.dir("420500"))?;
        let mut current = BTreeMap::new();
        city.read(None, self.query(producer, 0), |_, verified| {
            let marked = marked_column(&verified.header.columns)?;
            for r in &verified.records {
                let value = r.values.get(marked).cloned().unwrap_or_default();
                current.insert(r.key.clone(), (r.version, value));
            }
            Ok(())
        })
        .await?;
        Ok(current)
    }

    fn query(&self, producer: &str, limit: u64) -> QueryRequest {
        QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS_CATALOG.into(),
                target: producer.into(),
                credential: Some(self.reader.clone()),
                ..Default::default()
            }),
            limit,
            ..Default::default()
        }
    }

    /// Starts every worker; they run until [`Load::stop`].
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut workers = Vec::new();
        for (n, producer) in PRODUCERS.into_iter().enumerate() {
            let load = self.clone();
            workers.push(tokio::spawn(async move { load.writer(producer, n).await }));
        }
        for n in 0..2 {
            let load = self.clone();
            workers.push(tokio::spawn(async move { load.register_writer(n).await }));
            let load = self.clone();
            workers.push(tokio::spawn(async move { load.register_reader(n).await }));
        }
        let load = self.clone();
        workers.push(tokio::spawn(async move { load.querier().await }));
        workers
    }

    /// Starts the feed's worker; it runs until aborted.
    pub fn follow(&self) -> tokio::task::JoinHandle<()> {
        let load = self.clone();
        tokio::spawn(async move { load.follower().await })
    }

    /// Stops the workers [`Load::start`] started.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// What the load did so far.
    pub fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Writes one resident at `client`'s node: a new key, or again one of `written`, its
    /// marked column set to a value never written before.
    async fn write_record(
        &self,
        client: &NodeClient,
        rng: &mut Mix,
        written: &mut Vec<usize>,
        op: u64,
    ) -> Result<(), ClientError> {
        let producer = client.code().to_string();
        let rows = sample::residents(&producer, 1, self.seed ^ op);
        let index = if written.is_empty() || written.len() < KEYS && rng.below(3) == 0 {
            written.len()
        } else {
            written[rng.below(written.len())]
        };
        // A key of its own per index: the producer's code and the index, as person ids are
        // written (6 to 20 digits or capitals).
        let mut row = rows.into_iter().next().expect("one row");
        row[0] = format!("{producer}{index:06}");
        let value = format!("{producer} write {op}");
        let marked = RESIDENT_COLUMNS
            .iter()
            .position(|c| *c == MARKED)
            .expect("residents have the marked column");
        row[marked] = value.clone();
        let columns = RESIDENT_COLUMNS.iter().map(|c| c.to_string()).collect();
        let call = self.now();
        let result = client
            .put_records(RESIDENTS_CATALOG, columns, vec![row.clone()])
            .await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => outcome_of(e),
        };
        if index == written.len() && outcome != Outcome::Failed {
            written.push(index);
        }
        let ret = self.now();
        self.record(|h| {
            match &result {
                Ok(_) => h.count("record write", outcome),
                Err(e) => h.failed("record write", outcome, e),
            }
            h.writes.push(RecordWrite {
                producer,
                key: row[0].clone(),
                value,
                call,
                ret,
                outcome,
            });
        });
        result.map(|_| ())
    }

    async fn writer(self, producer: &str, n: usize) {
        let Ok(client) = NodeClient::open(self.dir(producer)) else {
            return;
        };
        let mut rng = Mix(self.seed.wrapping_add(n as u64 + 1));
        let mut written = vec![0];
        let mut op = 1;
        while !self.stopped() {
            // Failures are recorded with their outcome; the load goes on.
            let _ = self.write_record(&client, &mut rng, &mut written, op).await;
            op += 1;
            tokio::time::sleep(Duration::from_millis(50 + rng.below(100) as u64)).await;
        }
    }

    /// Sets registers (roles' posts) of the writers, one at a time.
    async fn register_writer(self, n: usize) {
        let mut rng = Mix(self.seed.wrapping_add(100 + n as u64));
        let mut op = 0;
        while !self.stopped() {
            let issuer = REGISTER_WRITERS[rng.below(REGISTER_WRITERS.len())];
            let name = format!("register-{}", rng.below(REGISTERS_EACH));
            let value = format!("w{n}.{op}");
            op += 1;
            if let Ok(client) = NodeClient::open(self.dir(issuer)) {
                let key = format!("{issuer}/{name}");
                let define = PolicyCommand::DefineRole(Role {
                    unit: client.code().clone(),
                    name,
                    department: "Fault Office".into(),
                    post: value.clone(),
                });
                let call = self.now();
                let result = propose(&client, &[DirectoryCommand::Policy(define)], "").await;
                let outcome = match &result {
                    Ok(results) if applied(results).is_ok() => Outcome::Ok,
                    Ok(_) => Outcome::Failed,
                    Err(e) => outcome_of(e),
                };
                let ret = self.now();
                let error = match &result {
                    Err(e) => e.to_string(),
                    Ok(results) => results
                        .iter()
                        .find(|r| !r.applied)
                        .map(|r| r.reason.clone())
                        .unwrap_or_default(),
                };
                self.record(|h| {
                    match &result {
                        Err(e) => h.failed("directory write", outcome, e),
                        Ok(results) => match results.iter().find(|r| !r.applied) {
                            Some(refused) => h.failed("directory write", outcome, &refused.reason),
                            None => h.count("directory write", outcome),
                        },
                    }
                    h.registers.entry(key).or_default().push((
                        Timed {
                            op: RegisterOp::Write(value),
                            call,
                            ret: (outcome == Outcome::Ok).then_some(ret),
                        },
                        outcome,
                        error,
                    ));
                });
            }
            tokio::time::sleep(Duration::from_millis(100 + rng.below(200) as u64)).await;
        }
    }

    /// Reads every register at once, linearizably, at a node picked at random.
    async fn register_reader(self, n: usize) {
        let mut rng = Mix(self.seed.wrapping_add(200 + n as u64));
        let clients: Vec<NodeClient> = self
            .dirs
            .iter()
            .filter_map(|d| NodeClient::open(d.clone()).ok())
            .collect();
        while !self.stopped() {
            let client = &clients[rng.below(clients.len())];
            let call = self.now();
            let read = async {
                let mut d = client.directory().await?;
                let policies = d
                    .policies(ReadRequest { linearizable: true })
                    .await?
                    .into_inner()
                    .policies_json;
                serde_json::from_str::<tierlink_core::policy::Policies>(&policies)
                    .map_err(|e| ClientError::Io(e.to_string()))
            }
            .await;
            let ret = self.now();
            match read {
                Ok(policies) => self.record(|h| {
                    h.count("directory read", Outcome::Ok);
                    for issuer in REGISTER_WRITERS {
                        for r in 0..REGISTERS_EACH {
                            let key = format!("{issuer}/register-{r}");
                            let value = policies.roles.get(&key).map(|role| role.post.clone());
                            h.registers.entry(key).or_default().push((
                                Timed {
                                    op: RegisterOp::Read(value),
                                    call,
                                    ret: Some(ret),
                                },
                                Outcome::Ok,
                                String::new(),
                            ));
                        }
                    }
                }),
                // A read changes nothing: failed, whatever happened to it.
                Err(e) => self.record(|h| h.failed("directory read", Outcome::Failed, &e)),
            }
            tokio::time::sleep(Duration::from_millis(100 + rng.below(150) as u64)).await;
        }
    }

    /// The city principal's queries of the producers, straight or through their district.
    async fn querier(self) {
        let mut rng = Mix(self.seed.wrapping_add(300));
        let Ok(city) = NodeClient::open(self.dir("420500")) else {
            return;
        };
        while !self.stopped() {
            let producer = PRODUCERS[rng.below(PRODUCERS.len())];
            let relay: Option<NodeCode> =
                (rng.below(2) == 0).then(|| producer[..6].parse().expect("a district code"));
            let kind = if relay.is_some() {
                "query through a relay"
            } else {
                "query"
            };
            let read = city
                .read(relay.as_ref(), self.query(producer, 20), |_, _| Ok(()))
                .await;
            self.record(|h| match &read {
                Ok(_) => h.count(kind, Outcome::Ok),
                Err(e) => h.failed(kind, Outcome::Failed, e),
            });
            tokio::time::sleep(Duration::from_millis(100 + rng.below(200) as u64)).await;
        }
    }

    /// The city principal's feed of [`FOLLOWED`], resumed from the last token it received
    /// after every failure.
    async fn follower(self) {
        let Ok(city) = NodeClient::open(self.dir("420500")) else {
            return;
        };
        loop {
            let token = self
                .feed_token
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let request = SubscribeRequest {
                scope: Some(ReadScope {
                    catalog: RESIDENTS_CATALOG.into(),
                    target: FOLLOWED.into(),
                    credential: Some(self.reader.clone()),
                    ..Default::default()
                }),
                resume_token: token,
                batch_size: 0,
            };
            let followed = city
                .read(None, request, |_, verified| {
                    let marked = marked_column(&verified.header.columns)?;
                    self.record(|h| {
                        h.count("feed batch", Outcome::Ok);
                        for r in &verified.records {
                            h.delivered.insert(Delivered {
                                key: r.key.clone(),
                                version: r.version,
                                value: r.values.get(marked).cloned().unwrap_or_default(),
                            });
                        }
                    });
                    *self.feed_token.lock().unwrap_or_else(|p| p.into_inner()) =
                        verified.header.resume_token.clone();
                    Ok(())
                })
                .await;
            let kind = "feed subscription ended";
            self.record(|h| match &followed {
                Ok(_) => h.count(kind, Outcome::Ok),
                Err(e) => h.failed(kind, Outcome::Failed, e),
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Where the marked column is among a batch's `columns`.
fn marked_column(columns: &[String]) -> Result<usize, ClientError> {
    columns
        .iter()
        .position(|c| c == MARKED)
        .ok_or_else(|| ClientError::Io(format!("the batch has no {MARKED} column")))
}

/// Issues one command as `client`'s node, asked again for up to 60 s while the directory
/// settles (a leader being elected, a new member's replica catching up).
async fn issue(client: &NodeClient, command: DirectoryCommand) -> Result<u64, FederationError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = propose(client, std::slice::from_ref(&command), "").await;
        match result
            .map_err(|e| e.to_string())
            .and_then(|r| applied(&r).map_err(|e| e.to_string()))
        {
            Ok(revision) => return Ok(revision),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(FederationError::Directory(format!(
                    "{} issuing {command:?}: {e}",
                    client.code()
                )));
            }
        }
    }
}
