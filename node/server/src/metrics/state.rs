//! What a scrape reads from the node as it is now: the directory replica, the audit chain and its
//! anchor, the webhook queues, reads open, certificates and the store's size on disk. Each is a
//! look at state the node keeps anyway (one key of the store at most), so a scrape costs a few
//! microseconds plus a listing of the store's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use tierlink_store::audit::{AnchorBoard, AuditLog};

use crate::directory::Replica;
use crate::read::ReadService;
use crate::webhooks::Webhooks;

/// A certificate the node watches the expiry of: its label and its end of validity, seconds
/// since the Unix epoch.
#[derive(Clone, Debug)]
pub struct Expiry {
    /// `node` or `ca`.
    pub certificate: &'static str,
    /// Its `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

/// The node's parts a scrape reads.
pub struct NodeState {
    /// Its directory replica, which is also the board its audit head is anchored on.
    pub directory: Arc<Replica>,
    /// Its audit log.
    pub audit: Arc<AuditLog>,
    /// Its read service, for the reads open.
    pub reads: Arc<ReadService>,
    /// Its webhooks, for their queues.
    pub webhooks: Arc<Webhooks>,
    /// The store's directory.
    pub store: PathBuf,
    /// Its TLS certificate's and the CA's expiry.
    pub certificates: Vec<Expiry>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("node", self.directory.code())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Bytes of the files under `dir`, subdirectories included; what cannot be read counts 0.
fn size_on_disk(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_on_disk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl NodeState {
    /// Seconds the oldest entry not yet anchored has waited (0 when the head is anchored), and
    /// whether the entry last anchored still hashes to the anchored head (true before any).
    fn audit(&self, now_micros: i64) -> (f64, bool) {
        let (head, _) = self.audit.head();
        let anchored = self.directory.anchored();
        let anchored_sequence = anchored.as_ref().map_or(0, |(s, _, _)| *s);
        let verified = anchored.is_none_or(|(sequence, hash, _)| {
            matches!(self.audit.entry(sequence), Ok(Some((_, kept))) if kept == hash)
        });
        let age = if head <= anchored_sequence {
            0.0
        } else {
            match self.audit.entry(anchored_sequence + 1) {
                Ok(Some((entry, _))) => (now_micros - entry.at_micros).max(0) as f64 / 1e6,
                _ => 0.0,
            }
        };
        (age, verified)
    }
}

/// Writes one unlabelled gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> std::fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

impl Collector for NodeState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let now = chrono::Utc::now();
        let d = self.directory.gauges();
        let e = &mut encoder;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        gauge(
            e,
            "directory_has_leader",
            "Whether this replica knows a leader heard from within twice the election timeout",
            None,
            flag(d.has_leader),
        )?;
        gauge(
            e,
            "directory_term",
            "Raft's current term",
            None,
            d.term as f64,
        )?;
        gauge(
            e,
            "directory_commit_index",
            "Last directory log index known committed",
            None,
            d.commit_index as f64,
        )?;
        gauge(
            e,
            "directory_applied_index",
            "Last directory log index applied here",
            None,
            d.applied_index as f64,
        )?;
        gauge(
            e,
            "directory_log_entries",
            "Entries in this replica's log since its last purge",
            None,
            d.log_entries as f64,
        )?;
        gauge(
            e,
            "directory_snapshot",
            "Size of the last directory snapshot kept",
            Some(&Unit::Bytes),
            d.snapshot_bytes as f64,
        )?;
        {
            let mut lags = e.encode_descriptor(
                "directory_replica_lag_entries",
                "On the leader: entries each replica has yet to take",
                None,
                MetricType::Gauge,
            )?;
            for (replica, lag) in &d.lags {
                let labels = [("replica", replica.to_string())];
                ConstGauge::new(*lag as f64).encode(lags.encode_family(&labels)?)?;
            }
        }
        let (head, _) = self.audit.head();
        let entries = ConstCounter::new(head);
        entries.encode(e.encode_descriptor(
            "audit_entries",
            "Entries in the audit chain",
            None,
            entries.metric_type(),
        )?)?;
        let (age, verified) = self.audit(now.timestamp_micros());
        gauge(
            e,
            "audit_anchor_age",
            "0 when the audit head is anchored; otherwise the age of the oldest entry not yet anchored",
            Some(&Unit::Seconds),
            age,
        )?;
        gauge(
            e,
            "audit_chain_verified",
            "Whether the entry last anchored still hashes to the anchored head",
            None,
            flag(verified),
        )?;
        let (queued, dead) = self.webhooks.list().map_or((0, 0), |hooks| {
            hooks.iter().fold((0, 0), |(q, d), (_, _, queued, dead)| {
                (q + queued, d + dead)
            })
        });
        gauge(
            e,
            "webhook_deliveries_queued",
            "Webhook deliveries waiting in the queues",
            None,
            queued as f64,
        )?;
        gauge(
            e,
            "webhook_dead_letters",
            "Webhook deliveries on the dead-letter lists",
            None,
            dead as f64,
        )?;
        gauge(
            e,
            "reads_open",
            "Reads and feeds open on this node",
            None,
            f64::from(self.reads.open_reads()),
        )?;
        {
            let mut expiry = e.encode_descriptor(
                "certificate_expiry",
                "Time left until the certificate expires",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for c in &self.certificates {
                let left = (c.not_after - now.timestamp()) as f64;
                let labels = [("certificate", c.certificate)];
                ConstGauge::new(left).encode(expiry.encode_family(&labels)?)?;
            }
        }
        gauge(
            e,
            "store_size",
            "The store's files on disk",
            Some(&Unit::Bytes),
            size_on_disk(&self.store) as f64,
        )
    }
}
