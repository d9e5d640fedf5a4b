//! Small exchanges per second: one record read by key as a principal of another node, at 1, 16
//! and 64 concurrent clients, beside what bounds it from below and what it was.
//!
//! Two nodes of one local federation (city, district, street) serve in this process over
//! loopback mutual TLS. The district's principal li@420502 (civil affairs) reads one of the
//! street's 1,000 residents by key through its own node: the district authenticates the
//! principal and signs a requester, the street checks it against the directory, decides under
//! the grant, seals the record to the district and signs the batch, both ends keep their audit
//! entry on disk before the read's stream ends, and the client verifies and opens the batch.
//! Every client is a task sharing the district's `NodeClient` (one HTTP/2 connection to the
//! district, one from the district to the street), as a node's gateway or connector would.
//!
//! Rows, each measured for [`SECONDS`] after a short warm-up, in [`ROUNDS`] rounds taking turns
//! so that the machine's drift falls on every row alike:
//! - `read, audit group-committed`: the read as nodes run it.
//! - `read, audit flushed per read`: the same read with each audit entry flushed on its own
//!   (`AuditLog::flush_each`), as the log did before appends shared flushes.
//! - `floor: health check, 1 call`: a unary `grpc.health.v1.Health/Check` to the district over a
//!   mutual-TLS channel with the same certificate, answered without work: what one call costs.
//! - `floor: health check, 2 calls`: one to the district, then one to the street: the read's
//!   two hops with nothing done on them.
//!
//! Then the cryptography one read needs, in process on one core: the district signing the
//! requester, the street verifying it against the key the directory registers, sealing one
//! record to the district (HPKE: X25519, HKDF, AES-256-GCM) and signing the batch, the client
//! verifying the batch and opening it; their sum is the ceiling the design's cryptography sets
//! on this machine's two cores.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench small_reads` (prints tables; no criterion: the
//! figures are rates and percentiles over many concurrent calls).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use tierlink_client::NodeClient;
use tierlink_core::members::Members;
use tierlink_core::signed::{BatchSigner, Recipient, requester};
use tierlink_proto::v1::{Credential, QueryRequest, ReadScope, RecordList, Requester, SignedBatch};
use tierlink_sandbox::federation::{LocalFederation, default_units};
use tierlink_sandbox::sample::{ALLOWANCE_REVIEW, RESIDENTS_CATALOG};
use tokio::runtime::Runtime;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DISTRICT: usize = 1;
const STREET: usize = 2;
const RESIDENTS: usize = 1_000;
const CLIENTS: [usize; 3] = [1, 16, 64];
/// Rounds of every row, taking turns.
const ROUNDS: usize = 3;
/// Seconds each row is measured in each round, after [`WARM_UP`].
const SECONDS: f64 = 2.0;
const WARM_UP: Duration = Duration::from_millis(300);
/// Iterations of each cryptographic step.
const CRYPTO_ITERATIONS: u32 = 2_000;

/// What one client does in a loop.
#[derive(Clone, Copy, PartialEq)]
enum Call {
    /// One record by key, the audit group-committed.
    Read,
    /// The same, every audit entry flushed on its own.
    ReadFlushEach,
    /// A health check of the district.
    Health,
    /// A health check of the district, then of the street.
    HealthTwice,
}

impl Call {
    const ALL: [Call; 4] = [
        Call::Read,
        Call::ReadFlushEach,
        Call::Health,
        Call::HealthTwice,
    ];

    fn name(self) -> &'static str {
        match self {
            Call::Read => "read, audit group-committed",
            Call::ReadFlushEach => "read, audit flushed per read",
            Call::Health => "floor: health check, 1 call",
            Call::HealthTwice => "floor: health check, 2 calls",
        }
    }
}

/// The running federation and what the clients use.
struct Setup {
    f: LocalFederation,
    district: NodeClient,
    street_code: String,
    li: Credential,
    keys: Vec<String>,
    /// Health clients on mutual-TLS channels with the district's certificate.
    district_health: HealthClient<Channel>,
    street_health: HealthClient<Channel>,
    /// Which key the next read asks for.
    next: AtomicUsize,
}

async fn setup(root: &std::path::Path) -> Setup {
    // 64 clients of one node keep 64 reads open at both nodes, the default limit per calling
    // node: a new read can start before the server has dropped the last one's stream.
    let f = LocalFederation::create_configured(root, default_units(), |config| {
        config.limits.reads_per_caller = 256;
    })
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
    let role = format!("{}/civil-affairs", district.code());
    let token = f
        .add_principal(district.code(), "li", &[role.as_str()])
        .unwrap();
    let li = Credential {
        principal: "li".into(),
        token,
        role,
        purpose: ALLOWANCE_REVIEW.into(),
        grant: String::new(),
    };
    let credentials = f.nodes[DISTRICT].dir.credentials().unwrap();
    let health = |n: usize| {
        let endpoint = f.nodes[n].dir.config.server.endpoint.clone();
        let credentials = &credentials;
        async move {
            HealthClient::new(
                tierlink_client::channel(credentials, &endpoint)
                    .await
                    .unwrap(),
            )
        }
    };
    let district_health = health(DISTRICT).await;
    let street_health = health(STREET).await;
    let street_code = street.code().to_string();
    let district = clients.into_iter().nth(DISTRICT).unwrap();
    Setup {
        f,
        district,
        street_code,
        li,
        keys,
        district_health,
        street_health,
        next: AtomicUsize::new(0),
    }
}

impl Setup {
    /// The read of one record, by the next key.
    fn request(&self) -> QueryRequest {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        QueryRequest {
            scope: Some(ReadScope {
                catalog: RESIDENTS_CATALOG.into(),
                target: self.street_code.clone(),
                credential: Some(self.li.clone()),
                ..ReadScope::default()
            }),
            key_from: self.keys[n % self.keys.len()].clone(),
            limit: 1,
            ..QueryRequest::default()
        }
    }

    /// One record read, verified and opened; its signed batch.
    async fn read(&self) -> SignedBatch {
        let mut got = None;
        let summary = self
            .district
            .read(None, self.request(), |batch, _| {
                got = Some(batch);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(summary.records, 1);
        got.expect("one batch")
    }

    async fn call(&self, call: Call) {
        let check = |mut client: HealthClient<Channel>| async move {
            client
                .check(HealthCheckRequest::default())
                .await
                .unwrap()
                .into_inner()
        };
        match call {
            Call::Read | Call::ReadFlushEach => drop(self.read().await),
            Call::Health => drop(check(self.district_health.clone()).await),
            Call::HealthTwice => {
                check(self.district_health.clone()).await;
                check(self.street_health.clone()).await;
            }
        }
    }

    /// Flushes every audit entry on its own at both nodes, or lets them share flushes.
    fn flush_each(&self, on: bool) {
        for n in [DISTRICT, STREET] {
            self.f.nodes[n].audit().unwrap().flush_each(on);
        }
    }
}

/// What one row measured over its rounds.
#[derive(Default)]
struct Tally {
    /// Calls a second, one figure per round.
    rates: Vec<f64>,
    latencies: Vec<Duration>,
}

impl Tally {
    fn median_rate(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// `clients` tasks making `call` in a loop for `time`; the calls made and each one's latency.
async fn run(setup: &Arc<Setup>, call: Call, clients: usize, time: Duration) -> Vec<Duration> {
    let until = Instant::now() + time;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let setup = setup.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                setup.call(call).await;
                latencies.push(started.elapsed());
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies.unwrap());
    }
    all
}

/// Microseconds per iteration of `step`.
fn micros(mut step: impl FnMut()) -> f64 {
    for _ in 0..CRYPTO_ITERATIONS / 10 {
        step();
    }
    let started = Instant::now();
    for _ in 0..CRYPTO_ITERATIONS {
        step();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(CRYPTO_ITERATIONS)
}

/// The cryptography of one read, each step on its own, with the nodes' own keys and the batch
/// one read received; microseconds per step.
fn crypto(setup: &Setup, batch: &SignedBatch) -> Vec<(&'static str, f64)> {
    let district = &setup.f.nodes[DISTRICT];
    let street = &setup.f.nodes[STREET];
    let members = district.directory().unwrap().clone();
    let district_code = district.dir.code().clone();
    let street_code = street.dir.code().clone();
    let district_key = district.dir.signing_key().unwrap();
    let street_signer = BatchSigner::from(street.dir.signing_key().unwrap());
    let verifier = setup.district.verifier();
    let opener = setup.district.opener();
    let standing = members.standing(&district_code);
    let to = Recipient {
        key: standing
            .as_ref()
            .unwrap()
            .recipient(&district_code)
            .unwrap(),
        node: district_code.clone(),
    };

    let asked = Requester {
        node: district_code.to_string(),
        principal: "li".into(),
        role: setup.li.role.clone(),
        purpose: setup.li.purpose.clone(),
        producer: street_code.to_string(),
        catalog: RESIDENTS_CATALOG.into(),
        request_id: "0123456789abcdef0123456789abcdef".into(),
        issued_at_micros: chrono::Utc::now().timestamp_micros(),
        ..Requester::default()
    };
    let signed = requester::sign(&district_key, &asked);
    let opened = opener.open(verifier, batch).unwrap();
    let records = RecordList {
        records: opened.records,
    }
    .encode_to_vec();
    let header = opened.header;
    let now = chrono::Utc::now().timestamp_micros();
    vec![
        (
            "district signs the requester (Ed25519)",
            micros(|| drop(std::hint::black_box(requester::sign(&district_key, &asked)))),
        ),
        (
            "street verifies it (Ed25519, the key the directory registers)",
            micros(|| {
                requester::claim(&signed)
                    .unwrap()
                    .verify(
                        &signed,
                        standing.as_ref(),
                        &street_code,
                        RESIDENTS_CATALOG,
                        &asked.request_id,
                        now,
                    )
                    .unwrap();
            }),
        ),
        (
            "street seals the record to the district (HPKE) and signs the batch",
            micros(|| {
                std::hint::black_box(street_signer.seal(header.clone(), records.clone(), &to));
            }),
        ),
        (
            "client verifies the batch (Ed25519) and opens it (HPKE)",
            micros(|| drop(std::hint::black_box(opener.open(verifier, batch).unwrap()))),
        ),
    ]
}

fn main() {
    let rt = Runtime::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let setup = Arc::new(rt.block_on(setup(root.path())));
    let mut tallies: Vec<((Call, usize), Tally)> = Call::ALL
        .iter()
        .flat_map(|&call| CLIENTS.map(|clients| ((call, clients), Tally::default())))
        .collect();
    for round in 0..ROUNDS {
        for ((call, clients), tally) in &mut tallies {
            setup.flush_each(*call == Call::ReadFlushEach);
            rt.block_on(run(&setup, *call, *clients, WARM_UP));
            let started = Instant::now();
            let latencies = rt.block_on(run(
                &setup,
                *call,
                *clients,
                Duration::from_secs_f64(SECONDS),
            ));
            tally
                .rates
                .push(latencies.len() as f64 / started.elapsed().as_secs_f64());
            tally.latencies.extend(latencies);
        }
        eprintln!("round {} of {ROUNDS} done", round + 1);
    }
    setup.flush_each(false);

    println!(
        "\n| what | clients | per s (median; rounds) | p50 ms | p99 ms | share of the read's time in the floor |"
    );
    println!("|---|---|---|---|---|---|");
    let read_rate = |tallies: &[((Call, usize), Tally)], clients: usize| {
        tallies
            .iter()
            .find(|((c, n), _)| *c == Call::Read && *n == clients)
            .map(|(_, t)| t.median_rate())
            .unwrap()
    };
    let rates: Vec<(usize, f64)> = CLIENTS.map(|n| (n, read_rate(&tallies, n))).to_vec();
    for ((call, clients), tally) in &mut tallies {
        let rounds: Vec<String> = tally.rates.iter().map(|r| format!("{r:.0}")).collect();
        let read = rates.iter().find(|(n, _)| n == clients).unwrap().1;
        let share = match call {
            Call::Health | Call::HealthTwice => {
                format!("{:.0}%", 100.0 * read / tally.median_rate())
            }
            _ => String::new(),
        };
        println!(
            "| {} | {clients} | {:.0} ({}) | {:.2} | {:.2} | {share} |",
            call.name(),
            tally.median_rate(),
            rounds.join(", "),
            tally.percentile_ms(0.5),
            tally.percentile_ms(0.99),
        );
    }

    let batch = rt.block_on(setup.read());
    let steps = crypto(&setup, &batch);
    let total: f64 = steps.iter().map(|(_, us)| us).sum();
    println!("\n| the cryptography of one read, one core | µs |");
    println!("|---|---|");
    for (what, us) in &steps {
        println!("| {what} | {us:.1} |");
    }
    println!(
        "| all of it, per read | {total:.1} |\n\non 2 cores the cryptography alone allows {:.0} reads/s; the read with 64 clients ran at {:.0}/s, so it spent {:.0}% of the machine on it",
        2e6 / total,
        rates.last().unwrap().1,
        100.0 * rates.last().unwrap().1 * total / 2e6,
    );
    let setup = Arc::into_inner(setup).expect("no client holds the set-up any more");
    rt.block_on(setup.f.stop()).unwrap();
}
