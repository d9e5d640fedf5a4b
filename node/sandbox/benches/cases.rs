//! Case moves between two nodes on loopback, beside the exchange's small read between the same
//! two nodes, in one run on one federation (city, district, street):
//!
//! - `case_moves/actors_N`: N principals of the street (wang@420502001, grid worker) each take
//!   two immediate cases (即办件) through their six moves at the street: raised, dispatched to
//!   the street's own grid office, reported, verified, closed, answered. The street signs each
//!   move, keeps and audits it, and delivers the case's chain sealed to the district, which
//!   supervises what its streets raise: the district opens it, checks every move's signature,
//!   link and tier rule, keeps the moves new to it and audits them. The principals go from one
//!   case to the other, so a move is usually delivered before the next move of its case is made
//!   (the node sends the chain as it stands when it delivers; moves made meanwhile travel
//!   together). An iteration ends when the district holds every move made in it (`Show` at the
//!   district). One element is one move.
//! - `small_reads/actors_N` (the baseline): N principals of the district (li@420502, civil
//!   affairs) each make twelve one-record reads of the street's residents by key, through the
//!   district: the district vouches for the principal with its signed requester, the street
//!   checks it, decides the policy, seals the record to the district and signs the batch, both
//!   ends audit, and the client verifies and opens the batch. One element is one read.
//! - `one_record_writes/actors_N`: twelve one-record `PutRecords` each at the street by its
//!   administrator: checked, versioned, flushed; what a move's `Act` costs the street beyond an
//!   ordinary write.
//! - `move_parts`: the parts of a delivery in process, to see where a move's time goes: signing
//!   a move, checking a six-move chain (signatures, links, tier rules), sealing it to the
//!   district and opening it, and one flushed audit entry on a store of its own.
//!
//! After the criterion output it prints a table: each figure's rate over every iteration
//! (warm-up included), the latency percentiles (a move: from its `Act` to the district's audit
//! entry of the delivery that brought it, written once the district keeps the move; a read or a
//! write: the call), the deliveries and signature checks per move, and the ratios.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench cases`

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tierlink_client::NodeClient;
use tierlink_core::cases::chain;
use tierlink_core::members::Members;
use tierlink_core::signed::Recipient;
use tierlink_node::cases::CASES_CATALOG;
use tierlink_proto::v1::cases_client::CasesClient;
use tierlink_proto::v1::{ActRequest, CaseMove, Credential, QueryRequest, ReadScope};
use tierlink_proto::v1::{ShowCaseRequest, SignedMove};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_sandbox::sample::{self, ALLOWANCE_REVIEW, RESIDENT_COLUMNS, RESIDENTS_CATALOG};
use tierlink_store::SledStore;
use tierlink_store::audit::{AuditEntry, AuditFilter, AuditLog, Side};
use tokio::runtime::Runtime;
use tonic::transport::Channel;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DISTRICT: usize = 1;
const STREET: usize = 2;
/// Cases each principal takes through their moves in one iteration, going from one to the other.
const CASES_PER_ACTOR: usize = 2;
/// Raise, dispatch, report, verify, close, reply.
const MOVES_PER_CASE: usize = 6;
/// Operations of each principal in one iteration, the same for every figure.
const PER_ACTOR: usize = CASES_PER_ACTOR * MOVES_PER_CASE;
const ACTORS: [usize; 2] = [1, 16];
const RESIDENTS: usize = 1_000;
/// The street's department its grid worker belongs to (see `sample::three_tier_policies`).
const GRID_OFFICE: &str = "Grid Office";

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Move `step` of an immediate case handled at the street `street`.
fn step(n: usize, case_id: &str, street: &str) -> CaseMove {
    let mv = CaseMove {
        case_id: case_id.into(),
        ..CaseMove::default()
    };
    match n {
        0 => CaseMove {
            action: "raise".into(),
            channel: "1".into(),
            class: "1".into(),
            grid: "42050200100101".into(),
            subject: "楼道堆物 belongings piled in a stairwell".into(),
            ..mv
        },
        1 => CaseMove {
            action: "dispatch".into(),
            to: street.into(),
            to_department: GRID_OFFICE.into(),
            route: 1,
            ..mv
        },
        2 => CaseMove {
            action: "report".into(),
            note: "已清理 cleared".into(),
            ..mv
        },
        3 => CaseMove {
            action: "verify".into(),
            passed: true,
            ..mv
        },
        4 => CaseMove {
            action: "close".into(),
            ..mv
        },
        _ => CaseMove {
            action: "reply".into(),
            rating: 1,
            ..mv
        },
    }
}

/// One move made: its case, its sequence in the chain, when its `Act` was sent (µs).
struct Made {
    case_id: String,
    sequence: u64,
    sent_micros: i64,
}

/// What a figure's iterations did, warm-up included.
#[derive(Default)]
struct Tally {
    operations: usize,
    elapsed: Duration,
    /// Each operation's latency (reads, writes); moves are timed from the district's audit.
    latencies: Vec<Duration>,
    moves: Vec<Made>,
}

impl Tally {
    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }
}

/// The running federation and what each figure's principals use.
struct Setup {
    f: LocalFederation,
    street: NodeClient,
    district: NodeClient,
    street_cases: CasesClient<Channel>,
    district_cases: CasesClient<Channel>,
    wang: Credential,
    li: Credential,
    keys: Vec<String>,
}

async fn setup(root: &std::path::Path) -> Setup {
    let f = LocalFederation::create(root, default_units())
        .await
        .unwrap();
    let clients: Vec<NodeClient> = f
        .nodes
        .iter()
        .map(|n| NodeClient::open(n.dir.clone()).unwrap())
        .collect();
    let (city, district, street) = (&clients[0], &clients[DISTRICT], &clients[STREET]);
    let keys = f
        .residents_under_policies([city, district, street], RESIDENTS)
        .await
        .unwrap();
    let credential = |node: &NodeClient, name: &str, role: &str, purpose: &str| {
        let role = format!("{}/{role}", node.code());
        let token = f
            .add_principal(node.code(), name, &[role.as_str()])
            .unwrap();
        Credential {
            principal: name.into(),
            token,
            role,
            purpose: purpose.into(),
            grant: String::new(),
        }
    };
    let wang = credential(street, "wang", "grid-worker", "");
    let li = credential(district, "li", "civil-affairs", ALLOWANCE_REVIEW);
    let street_cases = street.cases().await.unwrap();
    let district_cases = district.cases().await.unwrap();
    let mut clients = clients.into_iter();
    let _city = clients.next();
    Setup {
        f,
        district: clients.next().unwrap(),
        street: clients.next().unwrap(),
        street_cases,
        district_cases,
        wang,
        li,
        keys,
    }
}

impl Setup {
    /// One principal's cases through their moves, going from one case to the other.
    async fn move_cases(&self) -> Vec<Made> {
        let mut client = self.street_cases.clone();
        let street = self.street.code().to_string();
        let mut ids = vec![String::new(); CASES_PER_ACTOR];
        let mut made = Vec::with_capacity(PER_ACTOR);
        for n in 0..MOVES_PER_CASE {
            for id in ids.iter_mut() {
                let sent_micros = now_micros();
                let view = client
                    .act(ActRequest {
                        credential: Some(self.wang.clone()),
                        r#move: Some(step(n, id, &street)),
                        promised: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if n == 0 {
                    *id = view.summary.unwrap().case_id;
                }
                made.push(Made {
                    case_id: id.clone(),
                    sequence: n as u64,
                    sent_micros,
                });
            }
        }
        made
    }

    /// Waits until the district holds every move of `case_id`.
    async fn held_at_district(&self, case_id: &str) {
        let mut client = self.district_cases.clone();
        for _ in 0..10_000 {
            let shown = client
                .show(ShowCaseRequest {
                    case_id: case_id.into(),
                })
                .await;
            if let Ok(view) = shown
                && view.into_inner().moves.len() == MOVES_PER_CASE
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the district did not receive every move of {case_id}");
    }

    /// One principal's one-record reads at the street through the district; each read's time.
    async fn read_records(&self, actor: usize) -> Vec<Duration> {
        let mut latencies = Vec::with_capacity(PER_ACTOR);
        for n in 0..PER_ACTOR {
            let key = &self.keys[(actor * PER_ACTOR + n) % self.keys.len()];
            let request = QueryRequest {
                scope: Some(ReadScope {
                    catalog: RESIDENTS_CATALOG.into(),
                    target: self.street.code().to_string(),
                    credential: Some(self.li.clone()),
                    ..ReadScope::default()
                }),
                key_from: key.clone(),
                limit: 1,
                ..QueryRequest::default()
            };
            let started = Instant::now();
            let summary = self
                .district
                .read(None, request, |_, _| Ok(()))
                .await
                .unwrap();
            latencies.push(started.elapsed());
            assert_eq!(summary.records, 1);
        }
        latencies
    }

    /// One principal's one-record writes at the street; each write's time.
    async fn write_records(&self, actor: usize) -> Vec<Duration> {
        let columns: Vec<String> = RESIDENT_COLUMNS.iter().map(|c| c.to_string()).collect();
        let rows = sample::residents(self.street.code().as_str(), PER_ACTOR, actor as u64);
        let mut latencies = Vec::with_capacity(PER_ACTOR);
        for row in rows {
            let started = Instant::now();
            self.street
                .put_records(RESIDENTS_CATALOG, columns.clone(), vec![row])
                .await
                .unwrap();
            latencies.push(started.elapsed());
        }
        latencies
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Moves,
    Reads,
    Writes,
}

/// One iteration of `work` by `actors` principals at once; moves count once the district holds
/// them all.
async fn iteration(setup: &Arc<Setup>, work: Work, actors: usize, tally: &mut Tally) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for actor in 0..actors {
        let s = setup.clone();
        tasks.spawn(async move {
            match work {
                Work::Moves => (s.move_cases().await, Vec::new()),
                Work::Reads => (Vec::new(), s.read_records(actor).await),
                Work::Writes => (Vec::new(), s.write_records(actor).await),
            }
        });
    }
    let mut made = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (moves, latencies) = done.unwrap();
        made.extend(moves);
        tally.latencies.extend(latencies);
    }
    for m in made.iter().filter(|m| m.sequence == 0) {
        setup.held_at_district(&m.case_id).await;
    }
    let elapsed = started.elapsed();
    tally.operations += actors * PER_ACTOR;
    tally.elapsed += elapsed;
    tally.moves.extend(made);
    elapsed
}

/// What the district's audit says of the moves in `tally`: each move's latency until the
/// district kept it, the deliveries that brought moves, and the signatures the district checked
/// (each delivery carries, and the district checks, the whole chain).
struct Arrivals {
    latencies: Vec<Duration>,
    deliveries: usize,
    signature_checks: u64,
}

fn arrivals(district: &AuditLog, street: &str, tally: &Tally) -> Arrivals {
    let since = tally.moves.iter().map(|m| m.sent_micros).min().unwrap_or(0);
    let mine: HashSet<&str> = tally.moves.iter().map(|m| m.case_id.as_str()).collect();
    let entries = district
        .query(
            &AuditFilter {
                catalog: Some(CASES_CATALOG.into()),
                since_micros: Some(since),
                ..AuditFilter::default()
            },
            usize::MAX,
        )
        .unwrap();
    // Per case: when the district held how many moves.
    let mut held: HashMap<&str, Vec<(u64, i64)>> = HashMap::new();
    let mut deliveries = 0;
    let mut signature_checks = 0;
    for e in &entries {
        if e.side != Some(Side::Consumer) || e.producer != street || e.records == 0 {
            continue;
        }
        let Some(case) = e.keys.first().filter(|c| mine.contains(c.as_str())) else {
            continue;
        };
        let arrived = held.entry(case.as_str()).or_default();
        let total = arrived.last().map_or(0, |(n, _)| *n) + e.records;
        arrived.push((total, e.at_micros));
        deliveries += 1;
        signature_checks += total;
    }
    let latencies = tally
        .moves
        .iter()
        .map(|m| {
            let at = held[m.case_id.as_str()]
                .iter()
                .find(|(n, _)| *n > m.sequence)
                .expect("the district audited every move it holds")
                .1;
            Duration::from_micros((at - m.sent_micros).max(0) as u64)
        })
        .collect();
    Arrivals {
        latencies,
        deliveries,
        signature_checks,
    }
}

fn percentile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort();
    let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[i].as_secs_f64() * 1000.0
}

fn cases(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let setup = Arc::new(rt.block_on(setup(root.path())));
    let street_code = setup.street.code().to_string();
    let mut tallies: HashMap<(&str, usize), Tally> = HashMap::new();

    for (name, work) in [
        ("case_moves", Work::Moves),
        ("small_reads", Work::Reads),
        ("one_record_writes", Work::Writes),
    ] {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for actors in ACTORS {
            let tally = tallies.entry((name, actors)).or_default();
            group.throughput(Throughput::Elements((actors * PER_ACTOR) as u64));
            group.bench_function(format!("actors_{actors}"), |b| {
                b.iter_custom(|iterations| {
                    rt.block_on(async {
                        let mut took = Duration::ZERO;
                        for _ in 0..iterations {
                            took += iteration(&setup, work, actors, tally).await;
                        }
                        took
                    })
                })
            });
        }
        group.finish();
    }

    // The parts of a delivery, in process, on a six-move chain the district holds.
    let district_node = &setup.f.nodes[DISTRICT];
    let members = district_node.directory().unwrap().clone();
    let moves: Vec<SignedMove> = {
        let case_id = &tallies[&("case_moves", 1)].moves[0].case_id;
        let mut client = setup.district_cases.clone();
        rt.block_on(client.show(ShowCaseRequest {
            case_id: case_id.clone(),
        }))
        .unwrap()
        .into_inner()
        .moves
    };
    assert_eq!(moves.len(), MOVES_PER_CASE);
    let street_key = setup.f.nodes[STREET].dir.signing_key().unwrap();
    let district_keys = district_node.dir.encryption_keys().unwrap();
    let district_code = setup.district.code().clone();
    let to = Recipient {
        key: members
            .standing(&district_code)
            .unwrap()
            .recipient(&district_code)
            .unwrap(),
        node: district_code.clone(),
    };
    let case_id = chain::read(&moves[0]).unwrap().case_id;
    let audit_dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(audit_dir.path()).unwrap();
    let audit = AuditLog::open(store.keyspace("audit").unwrap()).unwrap();

    let mut group = c.benchmark_group("move_parts");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let last = chain::read(moves.last().unwrap()).unwrap();
    group.bench_function("sign_one_move", |b| {
        b.iter(|| chain::sign(&street_key, &last))
    });
    group.bench_function("check_six_move_chain", |b| {
        b.iter(|| chain::check(members.as_ref(), &moves).unwrap())
    });
    group.bench_function("seal_and_open_six_move_chain", |b| {
        b.iter(|| {
            let sealed = chain::seal_delivery(setup.street.code(), &to, &case_id, moves.clone());
            chain::open_delivery(&district_code, &district_keys, &sealed).unwrap()
        })
    });
    group.bench_function("flushed_audit_entry", |b| {
        b.iter(|| {
            rt.block_on(audit.append(AuditEntry {
                kind: "case".into(),
                catalog: CASES_CATALOG.into(),
                keys: vec![case_id.clone()],
                ..AuditEntry::default()
            }))
            .unwrap()
        })
    });
    group.finish();

    let district_audit = district_node.audit().unwrap();
    println!(
        "\nwhat                                actors  operations     per s   p50 ms   p99 ms"
    );
    let mut rates: HashMap<(&str, usize), f64> = HashMap::new();
    for (name, what) in [
        ("case_moves", "case moves held by the district"),
        ("small_reads", "one-record reads (baseline)"),
        ("one_record_writes", "one-record writes at the street"),
    ] {
        for actors in ACTORS {
            let tally = tallies.get_mut(&(name, actors)).unwrap();
            let mut extra = String::new();
            if name == "case_moves" {
                let a = arrivals(district_audit, &street_code, tally);
                tally.latencies = a.latencies;
                extra = format!(
                    "   {:.2} deliveries and {:.2} signature checks at the district per move",
                    a.deliveries as f64 / tally.moves.len() as f64,
                    a.signature_checks as f64 / tally.moves.len() as f64
                );
            }
            rates.insert((name, actors), tally.per_second());
            println!(
                "{what:<35} {actors:>6} {:>11} {:>9.0} {:>8.2} {:>8.2}{extra}",
                tally.operations,
                tally.per_second(),
                percentile_ms(&mut tally.latencies, 0.5),
                percentile_ms(&mut tally.latencies, 0.99),
            );
        }
    }
    for actors in ACTORS {
        println!(
            "actors {actors}: moves / reads {:.2}, moves / writes {:.2}",
            rates[&("case_moves", actors)] / rates[&("small_reads", actors)],
            rates[&("case_moves", actors)] / rates[&("one_record_writes", actors)],
        );
    }
    drop(tallies);
    let setup = Arc::into_inner(setup).expect("no iteration holds the set-up any more");
    rt.block_on(setup.f.stop()).unwrap();
}

criterion_group!(benches, cases);
criterion_main!(benches);
