//! The node's metrics, served at `/metrics` on the gateway's listener in the Prometheus text
//! exposition format (OpenMetrics 1.0 text, which Prometheus scrapes and `promtool check metrics`
//! reads), from the Prometheus project's own Rust client (`prometheus-client`). One registry per
//! node ([`Metrics::registry`]); counters are incremented where the node already does the thing
//! counted, once each, and the state of the node (directory, audit, queues, certificates, disk)
//! is read when scraped ([`state::NodeState`]).
//!
//! A scrape carries counts and codes, never record contents, principals, keys or request ids:
//! labels take only bounded values (services and methods of the node's own API, routes as
//! declared, status codes, catalogs this node holds or served, policy actions and rules, the
//! directory's members), so the endpoint asks for no token.
//!
//! | metric | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `tierlink_grpc_calls_total` | counter | service, method, code | calls | gRPC calls answered, by their gRPC status code (`OK`, `PERMISSION_DENIED`, …; `CANCELLED` when the caller left first); a path no service has is `unknown` |
//! | `tierlink_grpc_call_duration_seconds` | histogram | service, method | seconds | from a call's arrival to its last message (a stream's whole length) |
//! | `tierlink_rest_requests_total` | counter | route, method, status | requests | gateway requests by route as declared (`/v1/catalogs/{prefix}/{number}/records`; `unknown` otherwise), HTTP method (`other` for extension methods) and status |
//! | `tierlink_rest_request_duration_seconds` | histogram | route, method | seconds | from a request's arrival to its answer's headers |
//! | `tierlink_reads_total` | counter | catalog, side, outcome | reads | reads ended on this node: `side` is `producer` (produced here), `consumer` (the principal's own node, relayed onwards) or `relay` (passed on for another node); `outcome` is `served`, `refused` (before any batch), `failed` (ended by an error), `gone` (the consumer left) or `stalled` |
//! | `tierlink_read_records_total` | counter | catalog, side, outcome | records | records in the batches of those reads |
//! | `tierlink_read_bytes_total` | counter | catalog, side, outcome | bytes | bytes of their signed batches, as encoded on the wire |
//! | `tierlink_writes_total` | counter | catalog, outcome | writes | record writes (`PutRecords`, the gateway's writes and imports, connectors): `written` or `refused` |
//! | `tierlink_write_records_total` | counter | catalog, outcome | records | records and deletions in them |
//! | `tierlink_write_bytes_total` | counter | catalog, outcome | bytes | bytes of their values |
//! | `tierlink_policy_decisions_total` | counter | action, rule | items | item decisions of reads produced here (action `clear`, `mask`, `hash`, `withhold`, `generalise`; rule as manifests name it), and whole refusals (action `refuse`, rule `not-shared`, `no-grant`, …) |
//! | `tierlink_directory_has_leader` | gauge | | 0/1 | whether this replica knows a leader it heard from within twice the election timeout |
//! | `tierlink_directory_term` | gauge | | term | raft's current term (0 on a street, which follows a relay instead) |
//! | `tierlink_directory_leader_changes_total` | counter | | changes | times the leader this replica knows changed to another node |
//! | `tierlink_directory_commit_index` | gauge | | log index | last log index known committed |
//! | `tierlink_directory_applied_index` | gauge | | log index | last log index applied to the directory here |
//! | `tierlink_directory_replica_lag_entries` | gauge | replica | entries | on the leader: entries each replica has yet to take (its node code) |
//! | `tierlink_directory_log_entries` | gauge | | entries | entries in this replica's log since its last purge |
//! | `tierlink_directory_snapshot_bytes` | gauge | | bytes | size of the last directory snapshot kept |
//! | `tierlink_audit_entries_total` | counter | | entries | entries in the audit chain (its head's sequence) |
//! | `tierlink_audit_anchor_age_seconds` | gauge | | seconds | 0 when the chain's head is anchored in the directory; otherwise the age of the oldest entry not yet anchored |
//! | `tierlink_audit_chain_verified` | gauge | | 0/1 | whether the entry last anchored in the directory still hashes to the anchored head |
//! | `tierlink_webhook_deliveries_queued` | gauge | | deliveries | webhook deliveries waiting in the queues |
//! | `tierlink_webhook_dead_letters` | gauge | | deliveries | webhook deliveries on the dead-letter lists |
//! | `tierlink_webhook_deliveries_total` | counter | outcome | deliveries | webhook deliveries ended: `delivered` or `dead` |
//! | `tierlink_reads_open` | gauge | | reads | reads and feeds open on this node now |
//! | `tierlink_certificate_expiry_seconds` | gauge | certificate | seconds | time left until `node` (the node's TLS certificate) or `ca` (the federation CA) expires; negative once expired |
//! | `tierlink_store_size_bytes` | gauge | | bytes | the store's files on disk |
//!
//! # Layout
//! - [`calls`]: the tower layer over the gRPC services and the axum layer over the gateway.
//! - [`state`]: what is read from the node when scraped.

pub mod calls;
pub mod state;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tierlink_core::policy::{Action, Decision, Refusal};

/// The content type of a scrape: OpenMetrics 1.0 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of a scrape in the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label catalogs outside what a node can vouch for are counted under.
pub const OTHER_CATALOG: &str = "other";

/// A gRPC call's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcCall {
    /// The gRPC service, e.g. `tierlink.v1.Exchange`.
    pub service: String,
    /// Its method, e.g. `Query`.
    pub method: String,
    /// The gRPC status code's name, e.g. `OK`.
    pub code: &'static str,
}

/// A gRPC method's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcMethod {
    /// The gRPC service.
    pub service: String,
    /// Its method.
    pub method: String,
}

/// A gateway request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestCall {
    /// The route as declared, or `unknown`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The HTTP status code.
    pub status: u16,
}

/// A gateway route's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestRoute {
    /// The route as declared, or `unknown`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
}

/// A read's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    /// The catalog's resource code, or [`OTHER_CATALOG`].
    pub catalog: String,
    /// `producer`, `consumer` or `relay`.
    pub side: &'static str,
    /// `served`, `refused`, `failed`, `gone` or `stalled`.
    pub outcome: &'static str,
}

/// A write's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The catalog's resource code, or [`OTHER_CATALOG`].
    pub catalog: String,
    /// `written` or `refused`.
    pub outcome: &'static str,
}

/// A policy decision's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// What the item gets, or `refuse` for a whole read refused.
    pub action: &'static str,
    /// Why.
    pub rule: &'static str,
}

/// An outcome's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// How it ended.
    pub outcome: &'static str,
}

/// What a read moved, counted when it ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moved {
    /// Records in its batches.
    pub records: u64,
    /// Bytes of its signed batches as encoded.
    pub bytes: u64,
}

fn call_buckets() -> Histogram {
    // 1 ms to about 33 s: a one-record read on loopback to a whole catalog streamed.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The node's counters, shared (cheap clones of the same counters) by every place that counts.
#[derive(Clone, Debug)]
pub struct Metrics {
    grpc_calls: Family<GrpcCall, Counter>,
    grpc_seconds: Family<GrpcMethod, Histogram, fn() -> Histogram>,
    rest_calls: Family<RestCall, Counter>,
    rest_seconds: Family<RestRoute, Histogram, fn() -> Histogram>,
    reads: Family<ReadLabels, Counter>,
    read_records: Family<ReadLabels, Counter>,
    read_bytes: Family<ReadLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    write_records: Family<WriteLabels, Counter>,
    write_bytes: Family<WriteLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    leader_changes: Counter,
    webhook_deliveries: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            grpc_calls: Family::default(),
            grpc_seconds: Family::new_with_constructor(call_buckets),
            rest_calls: Family::default(),
            rest_seconds: Family::new_with_constructor(call_buckets),
            reads: Family::default(),
            read_records: Family::default(),
            read_bytes: Family::default(),
            writes: Family::default(),
            write_records: Family::default(),
            write_bytes: Family::default(),
            decisions: Family::default(),
            leader_changes: Counter::default(),
            webhook_deliveries: Family::default(),
        };
        // Known outcomes are served from the start at 0, so that a rate over them has a series
        // to start from (Prometheus's instrumentation advice on missing metrics).
        for outcome in ["delivered", "dead"] {
            metrics
                .webhook_deliveries
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(0);
        }
        metrics
    }
}

impl Metrics {
    /// The registry a scrape encodes: these counters, and `state` read at each scrape.
    pub fn registry(&self, state: state::NodeState) -> Registry {
        let mut r = Registry::with_prefix("tierlink");
        // Counters are registered without `_total` and units without their suffix: the
        // client appends both, as OpenMetrics names them.
        r.register("grpc_calls", "gRPC calls answered", self.grpc_calls.clone());
        r.register_with_unit(
            "grpc_call_duration",
            "gRPC calls from arrival to last message",
            Unit::Seconds,
            self.grpc_seconds.clone(),
        );
        r.register(
            "rest_requests",
            "Gateway requests answered",
            self.rest_calls.clone(),
        );
        r.register_with_unit(
            "rest_request_duration",
            "Gateway requests from arrival to the answer's headers",
            Unit::Seconds,
            self.rest_seconds.clone(),
        );
        r.register("reads", "Reads ended on this node", self.reads.clone());
        r.register(
            "read_records",
            "Records in the batches of reads ended on this node",
            self.read_records.clone(),
        );
        r.register_with_unit(
            "read",
            "Bytes of the signed batches of reads ended on this node",
            Unit::Bytes,
            self.read_bytes.clone(),
        );
        r.register("writes", "Record writes", self.writes.clone());
        r.register(
            "write_records",
            "Records and deletions in record writes",
            self.write_records.clone(),
        );
        r.register_with_unit(
            "write",
            "Bytes of the values in record writes",
            Unit::Bytes,
            self.write_bytes.clone(),
        );
        r.register(
            "policy_decisions",
            "Item decisions and whole refusals of reads produced here",
            self.decisions.clone(),
        );
        r.register(
            "directory_leader_changes",
            "Times the directory leader this replica knows changed",
            self.leader_changes.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook deliveries ended",
            self.webhook_deliveries.clone(),
        );
        r.register_collector(Box::new(state));
        r
    }

    /// Counts a gRPC call of `service`/`method` that ended with `code` after `seconds`.
    pub fn grpc_call(&self, method: GrpcMethod, code: tonic::Code, seconds: f64) {
        self.grpc_seconds.get_or_create(&method).observe(seconds);
        let call = GrpcCall {
            service: method.service,
            method: method.method,
            code: code_name(code),
        };
        self.grpc_calls.get_or_create(&call).inc();
    }

    /// Counts a gateway request to `route` answered `status` after `seconds`.
    pub fn rest_call(&self, route: RestRoute, status: u16, seconds: f64) {
        self.rest_seconds.get_or_create(&route).observe(seconds);
        let call = RestCall {
            route: route.route,
            method: route.method,
            status,
        };
        self.rest_calls.get_or_create(&call).inc();
    }

    /// Counts a read that ended.
    pub fn read(&self, labels: ReadLabels, moved: Moved) {
        self.read_records
            .get_or_create(&labels)
            .inc_by(moved.records);
        self.read_bytes.get_or_create(&labels).inc_by(moved.bytes);
        self.reads.get_or_create(&labels).inc();
    }

    /// Counts a write of `records` records and deletions holding `bytes` bytes of values.
    pub fn write(&self, labels: WriteLabels, records: u64, bytes: u64) {
        self.write_records.get_or_create(&labels).inc_by(records);
        self.write_bytes.get_or_create(&labels).inc_by(bytes);
        self.writes.get_or_create(&labels).inc();
    }

    /// Counts a read's policy decision: each item's, or the refusal of the whole.
    pub fn decided(&self, decided: &Result<Decision, Refusal>) {
        match decided {
            Ok(decision) => {
                for item in &decision.items {
                    let labels = DecisionLabels {
                        action: action_name(&item.action),
                        rule: item.rule.as_str(),
                    };
                    self.decisions.get_or_create(&labels).inc();
                }
            }
            Err(refusal) => {
                let labels = DecisionLabels {
                    action: "refuse",
                    rule: refusal_rule(refusal),
                };
                self.decisions.get_or_create(&labels).inc();
            }
        }
    }

    /// Counts a change of the directory's leader.
    pub fn leader_changed(&self) {
        self.leader_changes.inc();
    }

    /// Counts a webhook delivery that ended: `delivered`, or `dead` (to the dead letters).
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

/// An item action's kind, without its parameters (a mask's widths, a band's width).
fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Clear => "clear",
        Action::Mask { .. } => "mask",
        Action::Hash => "hash",
        Action::Withhold => "withhold",
        Action::Generalise(_) => "generalise",
    }
}

/// The rule behind a read refused as a whole.
fn refusal_rule(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NotShared(_) => "not-shared",
        Refusal::UnknownRole(_) => "unknown-role",
        Refusal::ForeignRole { .. } => "foreign-role",
        Refusal::NoGrant { .. } => "no-grant",
        Refusal::Leaks(_) => "leaks",
        Refusal::Lapsed { .. } => "lapsed",
    }
}

/// A gRPC status code's name as the gRPC specification writes it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Counts the changes of the directory leader `directory` knows, as raft reports its view (and,
/// for a street, as its relay names the leader: looked at every second), until aborted. The first
/// leader a node learns of is no change; a leader lost and found again is none either.
pub fn count_leader_changes(
    directory: std::sync::Arc<crate::directory::Replica>,
    metrics: Metrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut views = directory.raft().metrics();
        let mut known = String::new();
        loop {
            let leader = directory.read_meta(false).leader;
            if !leader.is_empty() && leader != known {
                if !known.is_empty() {
                    metrics.leader_changed();
                }
                known = leader;
            }
            let every = std::time::Duration::from_secs(1);
            if let Ok(Err(_)) = tokio::time::timeout(every, views.changed()).await {
                // Raft has stopped: a street's relay may still name leaders.
                tokio::time::sleep(every).await;
            }
        }
    })
}

/// Encodes `registry` as a scrape's body.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// `openmetrics` (as [`encode`] writes it) in the Prometheus text format 0.0.4, for scrapers and
/// tools that read only that (`promtool check metrics`): the samples are the same, a counter's
/// `# HELP` and `# TYPE` name it with its `_total` as its samples do, and `# UNIT` and `# EOF`
/// lines, which 0.0.4 does not have, go.
pub fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match described {
            Some((prefix, rest)) => {
                let (name, after) = rest.split_once(' ').unwrap_or((rest, ""));
                text.push_str(prefix);
                text.push_str(name);
                if counters.contains(name) {
                    text.push_str("_total");
                }
                text.push(' ');
                text.push_str(after);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_with_their_total_and_drops_units_and_eof() {
        let metrics = Metrics::default();
        let labels = WriteLabels {
            catalog: "101001001/000001".into(),
            outcome: "written",
        };
        metrics.write(labels, 3, 120);
        let mut registry = Registry::with_prefix("tierlink");
        registry.register("writes", "Record writes", metrics.writes.clone());
        registry.register_with_unit("write", "Bytes", Unit::Bytes, metrics.write_bytes.clone());
        let open = encode(&registry);
        assert!(open.contains("# TYPE tierlink_writes counter\n"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        let text = classic(&open);
        assert_eq!(
            text,
            "# HELP tierlink_writes_total Record writes.\n\
             # TYPE tierlink_writes_total counter\n\
             tierlink_writes_total{catalog=\"101001001/000001\",outcome=\"written\"} 1\n\
             # HELP tierlink_write_bytes_total Bytes.\n\
             # TYPE tierlink_write_bytes_total counter\n\
             tierlink_write_bytes_total{catalog=\"101001001/000001\",outcome=\"written\"} 120\n"
        );
    }
}
