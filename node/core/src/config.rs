//! A node directory: `node.toml` and the key and certificate files beside it.
//!
//! ```text
//! node.toml      unit, listen address, endpoint, peers; file paths relative to the directory
//! ca.crt         federation CA certificate
//! tls.crt/.key   TLS certificate and key (key 0600)
//! signing.crt/.key  batch-signing certificate and Ed25519 key (key 0600)
//! encryption.key X25519 keys that open the batches sealed to this node, current first (0600)
//! principals.toml, tokens.toml  principals and their API tokens, hashes only (0600)
//! calendar/      working-day calendar files YYYY.toml, when [cases] calendar names it
//! data/          the sled store
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::calendar::{Calendar, CalendarError};
use crate::identity::{
    CertError, EncryptionKeys, NodeCode, NodeKey, PrincipalFiles, TrustedCa, Unit, UnitError,
};
use crate::limits::{
    DEFAULT_BATCH_BYTES, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, MIN_BATCH_BYTES, human_bytes,
};
use crate::policy::HashKey;

mod reference;

pub use reference::reference;

/// Name of the configuration file in a node directory.
pub const CONFIG_FILE: &str = "node.toml";

/// Contents of `node.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The unit this node serves.
    pub node: Unit,
    /// Where it listens and how others reach it.
    pub server: ServerConfig,
    /// Credential files, relative to the node directory.
    #[serde(default)]
    pub files: Files,
    /// How this node's replica of the federation directory keeps time and compacts its log.
    #[serde(default)]
    pub directory: DirectorySettings,
    /// How this node cuts the answers it produces.
    #[serde(default)]
    pub exchange: ExchangeSettings,
    /// What callers may hold on this node: open reads, time without progress, request sizes,
    /// handshakes and calls.
    #[serde(default)]
    pub limits: LimitSettings,
    /// The store's page cache and how long it keeps superseded versions. Defaults when absent.
    #[serde(default, skip_serializing_if = "StoreSettings::is_default")]
    pub store: StoreSettings,
    /// The REST/JSON gateway: HTTPS for systems that do not speak gRPC. No gateway when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySettings>,
    /// Where the node may deliver webhooks, and how it retries them. No receivers when absent.
    #[serde(default, skip_serializing_if = "WebhookSettings::is_default")]
    pub webhooks: WebhookSettings,
    /// Residents' cases: the working-day calendar, deadlines in working days and what an overdue
    /// case does. Defaults when absent.
    #[serde(default, skip_serializing_if = "CaseSettings::is_default")]
    pub cases: CaseSettings,
    /// How `tierlink serve` writes its log. Text when absent.
    #[serde(default, skip_serializing_if = "LogSettings::is_default")]
    pub log: LogSettings,
    /// Other nodes this one can reach before the directory knows them (the directory's members
    /// are found there).
    #[serde(default, rename = "peer", skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
}

/// Timing and compaction of the directory replica. Every voter should use the same timings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorySettings {
    /// Leader heartbeat interval, milliseconds.
    pub heartbeat_ms: u64,
    /// Shortest election timeout, milliseconds, longer than `heartbeat_ms` and at most 60,000;
    /// the longest is twice this. Also how long a node goes without hearing from a leader before
    /// it calls its reads stale.
    pub election_timeout_ms: u64,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Entries kept in the log behind the last snapshot, for replicas that lag a little; a
    /// replica further behind receives the snapshot instead.
    pub kept_after_snapshot: u64,
    /// How often the node anchors its audit chain's head in the directory, milliseconds.
    pub audit_anchor_ms: u64,
    /// Whether street offices follow their district's replica (which relays each entry it
    /// applies) instead of being replicas of the leader's raft: the leader then feeds only the
    /// city and the districts. Every node of a federation must agree.
    pub streets_follow_district: bool,
}

/// Longest election timeout `[directory]` takes, milliseconds: a minute.
pub const MAX_ELECTION_TIMEOUT_MS: u64 = 60_000;

impl DirectorySettings {
    /// Timings raft cannot keep: no heartbeat, or an election timeout no longer than the
    /// heartbeat (followers would call elections between a leader's heartbeats).
    fn check(&self) -> Result<(), String> {
        if self.heartbeat_ms == 0 {
            return Err(
                "[directory] heartbeat_ms is 0: give the leader's heartbeat interval in milliseconds, or leave it out for the default (150)".into(),
            );
        }
        if self.election_timeout_ms > MAX_ELECTION_TIMEOUT_MS {
            return Err(format!(
                "[directory] election_timeout_ms = {} is over {MAX_ELECTION_TIMEOUT_MS} (a minute): a federation would go that long without a leader after its leader fails; the default is 1000",
                self.election_timeout_ms
            ));
        }
        if self.election_timeout_ms <= self.heartbeat_ms {
            return Err(format!(
                "[directory] election_timeout_ms = {} is not longer than heartbeat_ms = {}: followers would call elections between the leader's heartbeats; make it several heartbeats long (the defaults are 1000 and 150)",
                self.election_timeout_ms, self.heartbeat_ms
            ));
        }
        Ok(())
    }
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 150,
            election_timeout_ms: 1000,
            snapshot_every: 5000,
            kept_after_snapshot: 1000,
            audit_anchor_ms: 60_000,
            streets_follow_district: true,
        }
    }
}

/// How the node cuts the signed batches it produces (queries, histories, and so exports and
/// relays of its records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeSettings {
    /// Most bytes of records in one signed batch, from [`MIN_BATCH_BYTES`] (64 KiB) to
    /// [`MAX_BATCH_BYTES`] (32 MiB, half a gRPC message); a record larger than this goes alone
    /// in its batch. A batch also holds at most the records the consumer asks for (1,000 by
    /// default).
    pub batch_bytes: usize,
    /// Versions each catalog's change log keeps for feeds, newest first (0: all). A feed
    /// resuming from an older token is told to resync (a query, then the feed from its token).
    pub keep_changes: u64,
}

/// Versions a change log keeps by default: a day of a busy street's writes many times over.
pub const DEFAULT_KEEP_CHANGES: u64 = 1_000_000;

impl Default for ExchangeSettings {
    fn default() -> Self {
        Self {
            batch_bytes: DEFAULT_BATCH_BYTES,
            keep_changes: DEFAULT_KEEP_CHANGES,
        }
    }
}

/// The node's store (`[store]`): the memory it caches pages in, and how long it keeps what a
/// write superseded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// MiB of the store's pages the node keeps in memory (sled's `cache_capacity`), 1 to
    /// 1,048,576. What a node holds grows with this, not with its records: reading a million
    /// records streams them through the cache.
    pub cache_mb: u64,
    /// Days a superseded version is kept after the version that superseded it was written (0:
    /// every version, forever). Once a day, and when the node starts, older ones are removed in
    /// bounded steps and the removal is audited; a record's current version and a deleted
    /// record's deletion are always kept.
    pub keep_history_days: u32,
}

/// The store's page cache by default, MiB: with the rest of a node, under 200 MB however many
/// records it keeps (the `street` bench measures it), and a point lookup within a few µs of
/// raw sled's.
pub const DEFAULT_STORE_CACHE_MB: u64 = 64;

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            cache_mb: DEFAULT_STORE_CACHE_MB,
            keep_history_days: 0,
        }
    }
}

/// Largest page cache `[store]` takes, MiB: 1 TiB.
pub const MAX_STORE_CACHE_MB: u64 = 1 << 20;

impl StoreSettings {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// A cache the store cannot work with: none, or more memory than any machine has.
    fn check(&self) -> Result<(), String> {
        if !(1..=MAX_STORE_CACHE_MB).contains(&self.cache_mb) {
            return Err(format!(
                "[store] cache_mb = {} is outside 1..={MAX_STORE_CACHE_MB}: give the MiB of pages to keep in memory, or leave it out for the default ({DEFAULT_STORE_CACHE_MB})",
                self.cache_mb
            ));
        }
        Ok(())
    }
}

/// What callers may hold on this node, so that neither one caller nor all of them together can
/// take its memory, threads or connections. Every limit has a default fit for a node of any tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Reads (`Query` and `History` streams, produced here or relayed) one calling node may have
    /// open on this node at once; more are refused with RESOURCE_EXHAUSTED until one ends.
    pub reads_per_caller: u32,
    /// Reads open on this node at once, all callers together.
    pub reads_per_node: u32,
    /// Threads that make batches (store scan, redaction, signing), shared by every read, at most
    /// 1,024; a read waiting its turn holds no thread.
    pub read_workers: u32,
    /// Milliseconds a read may wait for its consumer to take the next batch (or, relayed, for
    /// the next node to send one); then it is ended with DEADLINE_EXCEEDED and what it held is
    /// freed.
    pub stall_ms: u64,
    /// Largest request, in bytes, of a call that only names what it wants: reads, listings,
    /// directory reads, the audit, raft votes, health and reflection. Calls that carry data
    /// (records, catalogs, directory changes, raft entries and snapshots) take up to 64 MiB.
    pub small_request_bytes: u32,
    /// Milliseconds a new connection has to complete its TLS handshake.
    pub handshake_ms: u64,
    /// Milliseconds a call has to be answered; a stream has to start.
    pub call_ms: u64,
    /// Calls (HTTP/2 streams) open at once on one connection.
    pub calls_per_connection: u32,
    /// Milliseconds between HTTP/2 pings on each connection; a peer that does not answer one
    /// within 20 s is disconnected, and its reads end with it.
    pub keepalive_ms: u64,
    /// Wrong API tokens one source address may present a minute (IPv6 counted by its /64);
    /// once they are spent it is refused until one comes back (60 s / this).
    pub token_guesses_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            reads_per_caller: 64,
            reads_per_node: 256,
            read_workers: 8,
            stall_ms: 60_000,
            small_request_bytes: 64 << 10,
            handshake_ms: 10_000,
            call_ms: 60_000,
            calls_per_connection: 256,
            keepalive_ms: 30_000,
            token_guesses_per_minute: 10,
        }
    }
}

/// The REST/JSON gateway (`[gateway]`): its own HTTPS listener, with the node's TLS certificate
/// and no client certificate; callers present API tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Socket address to bind, e.g. `127.0.0.1:8443`; port 0 lets the OS pick one.
    pub listen: SocketAddr,
    /// Largest request body, in bytes (records written, files imported); a larger one is refused
    /// with 413 before it is read whole. Default 64 MiB, the largest gRPC message.
    #[serde(default = "default_body_bytes")]
    pub body_bytes: usize,
    /// Milliseconds a request body may pause between two pieces; a body that stalls longer is
    /// answered 408 and its connection closed. Default 30 s.
    #[serde(default = "default_body_idle_ms")]
    pub body_idle_ms: u64,
    /// Milliseconds to receive a request and answer it (a streamed answer may take longer to
    /// send); a request past it is answered 408. Default 300 s.
    #[serde(default = "default_request_ms")]
    pub request_ms: u64,
    /// Connections open at once from one source address (IPv6 counted by its /64); more are
    /// closed as they arrive, before TLS. Default 64.
    #[serde(default = "default_connections_per_source")]
    pub connections_per_source: u32,
    /// Connections open at once from all sources together. Default 1024.
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Requests that write records (records posted, files uploaded) read and checked at once,
    /// each held whole while it is; more are answered 429 with Retry-After. Default 2.
    #[serde(default = "default_writes")]
    pub writes: u32,
}

fn default_body_bytes() -> usize {
    MAX_MESSAGE_BYTES
}

fn default_body_idle_ms() -> u64 {
    30_000
}

fn default_request_ms() -> u64 {
    300_000
}

fn default_connections_per_source() -> u32 {
    64
}

fn default_connections() -> u32 {
    1024
}

fn default_writes() -> u32 {
    2
}

impl GatewaySettings {
    /// A gateway on `listen` with the default limits.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            body_bytes: default_body_bytes(),
            body_idle_ms: default_body_idle_ms(),
            request_ms: default_request_ms(),
            connections_per_source: default_connections_per_source(),
            connections: default_connections(),
            writes: default_writes(),
        }
    }

    /// The first limit that would stop the gateway from serving anything: a zero.
    fn check(&self) -> Result<(), String> {
        let counts = [
            ("body_bytes", self.body_bytes as u64),
            ("body_idle_ms", self.body_idle_ms),
            ("request_ms", self.request_ms),
            (
                "connections_per_source",
                u64::from(self.connections_per_source),
            ),
            ("connections", u64::from(self.connections)),
            ("writes", u64::from(self.writes)),
        ];
        match counts.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(format!(
                "[gateway] {name} is 0, which would refuse every request: give it a positive value or leave it out for the default"
            )),
            None => Ok(()),
        }
    }
}

/// Webhook deliveries (`[webhooks]`): the receivers the administrator allows, and how each
/// delivery is retried. Deliveries follow the Standard Webhooks specification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// URL prefixes a webhook may deliver to, e.g. `https://erp.example.gov.cn:8443/hooks/`: a
    /// webhook's URL has the same scheme, host and port, and a path under the prefix's. None
    /// by default, so no webhook can be added until the administrator names its receiver.
    pub receivers: Vec<String>,
    /// Milliseconds to wait before each attempt of a delivery, the first (0: at once)
    /// included; after the last attempt fails the delivery goes to the dead-letter list.
    /// Default: the specification's example schedule, at once, 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 14 h, 20 h and 24 h.
    pub retry_ms: Vec<u64>,
    /// Milliseconds one attempt may take, connecting and answering; default 15 s.
    pub timeout_ms: u64,
    /// A PEM file of extra root certificates for receivers on a private CA (relative to the
    /// node directory); the webpki roots are trusted either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        const MINUTE: u64 = 60_000;
        const HOUR: u64 = 60 * MINUTE;
        Self {
            receivers: Vec::new(),
            retry_ms: vec![
                0,
                5_000,
                5 * MINUTE,
                30 * MINUTE,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                14 * HOUR,
                20 * HOUR,
                24 * HOUR,
            ],
            timeout_ms: 15_000,
            ca: None,
        }
    }
}

impl WebhookSettings {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// The first setting that would stop every delivery.
    fn check(&self) -> Result<(), String> {
        if self.retry_ms.is_empty() {
            return Err("[webhooks] retry_ms is empty, so no delivery would ever be attempted: give at least one delay (0 for at once), or leave it out for the default schedule".into());
        }
        if self.timeout_ms == 0 {
            return Err("[webhooks] timeout_ms is 0, which would fail every attempt: give a positive value or leave it out for the default".into());
        }
        Ok(())
    }
}

/// Residents' cases (`[cases]`): the working-day calendar their deadlines are counted on, the
/// deadlines, and what the node does when a case it holds is overdue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CaseSettings {
    /// A directory of `YYYY.toml` calendar files (relative to the node directory) replacing the
    /// built-in years and adding others (format: `schema/calendar/README.md`). The built-in
    /// years alone when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<PathBuf>,
    /// What the node does when a case it holds is overdue: `warn` (default) or `escalate`.
    pub overdue: OverdueAction,
    /// How often the node looks for overdue cases, milliseconds; default 60 s.
    pub check_ms: u64,
    /// Deadlines in working days, by class and route.
    pub deadlines: Deadlines,
}

impl Default for CaseSettings {
    fn default() -> Self {
        Self {
            calendar: None,
            overdue: OverdueAction::Warn,
            check_ms: 60_000,
            deadlines: Deadlines::default(),
        }
    }
}

impl CaseSettings {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// The first setting that would stop overdue cases from ever being looked for.
    fn check(&self) -> Result<(), String> {
        if self.check_ms == 0 {
            return Err("[cases] check_ms is 0, which would look for overdue cases without pause: give a positive value or leave it out for the default (60000)".into());
        }
        Ok(())
    }

    /// The working-day calendar of the node in `node_dir`: the built-in years, replaced and
    /// extended by the files in [`calendar`](Self::calendar) (resolved against `node_dir`).
    ///
    /// # Errors
    /// [`CalendarError`] naming the directory or file that could not be used.
    pub fn load_calendar(&self, node_dir: &Path) -> Result<Calendar, CalendarError> {
        Calendar::load(self.calendar.as_ref().map(|c| node_dir.join(c)).as_deref())
    }
}

/// How a serving node writes its log (`[log]`), to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (the default), or `json`: one JSON object a line, each with the spans it happened
    /// in and their fields, for a log collector. `tierlink serve --log-format` overrides it.
    pub format: LogFormat,
}

impl LogSettings {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// The form of a node's log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people: time, level, where, message and fields.
    #[default]
    Text,
    /// One JSON object a line (tracing-subscriber's JSON format): `timestamp`, `level`,
    /// `fields` (the message among them), `target`, `span` (the innermost) and `spans` (each
    /// enclosing span with its fields, outermost first).
    Json,
}

/// What a node does when a case it holds is overdue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverdueAction {
    /// Report it (log, figures, the case's listing), and nothing more.
    #[default]
    Warn,
    /// Report it and escalate the case to the tier above.
    Escalate,
}

/// Case deadlines in working days (`[cases.deadlines]`), counted as [`crate::calendar`] says:
/// the day a period starts from is not counted, and 0 is the end of that day (or of the next
/// working day). Defaults are Nanchang's "123" and the people's-requests pipeline's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    /// An immediate case (即办件); default 0, the same working day.
    pub immediate: u32,
    /// A case waiting for missing documents (补办件); default 5.
    pub missing_documents: u32,
    /// An escalated case (上报件), from the upper tier's approval; default 3.
    pub escalated: u32,
    /// A case within the street's own remit ("123": 1); default 1.
    pub own_unit: u32,
    /// A case one department must act on ("123": 2); default 2.
    pub one_department: u32,
    /// A case several departments must act on ("123": 3); default 3.
    pub several_departments: u32,
    /// A cross-check's verification task, sent back to the collecting unit; default 5.
    pub verification: u32,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            immediate: 0,
            missing_documents: 5,
            escalated: 3,
            own_unit: 1,
            one_department: 2,
            several_departments: 3,
            verification: 5,
        }
    }
}

impl ExchangeSettings {
    /// Checks the settings are within their bounds; the error says which and what to write.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_BATCH_BYTES..=MAX_BATCH_BYTES).contains(&self.batch_bytes) {
            return Err(format!(
                "[exchange] batch_bytes = {} is outside {MIN_BATCH_BYTES}..={MAX_BATCH_BYTES} (64 KiB to 32 MiB, so that a batch fits in a {} message); the default is {DEFAULT_BATCH_BYTES} (4 MiB)",
                self.batch_bytes,
                human_bytes(MAX_MESSAGE_BYTES as u64)
            ));
        }
        Ok(())
    }
}

/// Most read workers `[limits]` takes: each is an OS thread.
pub const MAX_READ_WORKERS: u32 = 1024;

impl LimitSettings {
    /// The first limit that would stop the node from serving anything: a zero.
    fn check(&self) -> Result<(), String> {
        let counts = [
            ("reads_per_caller", u64::from(self.reads_per_caller)),
            ("reads_per_node", u64::from(self.reads_per_node)),
            ("read_workers", u64::from(self.read_workers)),
            ("stall_ms", self.stall_ms),
            ("small_request_bytes", u64::from(self.small_request_bytes)),
            ("handshake_ms", self.handshake_ms),
            ("call_ms", self.call_ms),
            ("calls_per_connection", u64::from(self.calls_per_connection)),
            ("keepalive_ms", self.keepalive_ms),
            (
                "token_guesses_per_minute",
                u64::from(self.token_guesses_per_minute),
            ),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(format!(
                "[limits] {name} is 0, which would refuse every call: give it a positive value or leave it out for the default"
            ));
        }
        if self.read_workers > MAX_READ_WORKERS {
            return Err(format!(
                "[limits] read_workers = {} is over {MAX_READ_WORKERS}: each is a thread, and reads gain nothing from more threads than cores; the default is 8",
                self.read_workers
            ));
        }
        Ok(())
    }
}

/// Listening address and public endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to bind, e.g. `0.0.0.0:7443`.
    pub listen: SocketAddr,
    /// URL other nodes use, e.g. `https://street-xiling.example.gov.cn:7443`.
    pub endpoint: String,
}

/// Paths of the credential and data files, relative to the node directory; each left out is
/// its default.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Files {
    /// Federation CA certificate.
    pub ca: PathBuf,
    /// TLS certificate.
    pub tls_cert: PathBuf,
    /// TLS private key.
    pub tls_key: PathBuf,
    /// Signing certificate.
    pub signing_cert: PathBuf,
    /// Ed25519 signing key.
    pub signing_key: PathBuf,
    /// X25519 encryption keys (HPKE), current first: they open the batches sealed to this node.
    pub encryption_key: PathBuf,
    /// Store directory.
    pub data: PathBuf,
    /// The federation's hash key (hex), the same on every node; without it nothing is hashed.
    pub hash_key: PathBuf,
    /// The principals this node vouches for.
    pub principals: PathBuf,
    /// The API tokens of its principals (hashes only).
    pub tokens: PathBuf,
}

impl Default for Files {
    fn default() -> Self {
        Self {
            ca: "ca.crt".into(),
            tls_cert: "tls.crt".into(),
            tls_key: "tls.key".into(),
            signing_cert: "signing.crt".into(),
            signing_key: "signing.key".into(),
            encryption_key: "encryption.key".into(),
            data: "data".into(),
            hash_key: "federation.key".into(),
            principals: "principals.toml".into(),
            tokens: "tokens.toml".into(),
        }
    }
}

/// Another node and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its division code.
    #[schemars(with = "String")]
    pub code: NodeCode,
    /// Its endpoint URL.
    pub endpoint: String,
}

/// A node directory that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds no `node.toml`.
    #[error(
        "{0} is not a node directory (it has no node.toml): create one with `tierlink init`, or point --node (or TIERLINK_NODE) at one"
    )]
    NotANode(PathBuf),
    /// `node.toml` is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The unit is not valid.
    #[error("{path}: {source}")]
    Unit {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: UnitError,
    },
    /// A certificate or key is not usable.
    #[error("{path}: {source}")]
    Credential {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: CertError,
    },
    /// The hash key file is not a key.
    #[error("{path}: {reason}; copy the federation's federation.key from the CA directory")]
    HashKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No peer with this code is configured.
    #[error("node {node} has no peer {code}: add a [[peer]] with its code and endpoint to {path}")]
    UnknownPeer {
        /// This node.
        node: NodeCode,
        /// The code asked for.
        code: NodeCode,
        /// The configuration file.
        path: PathBuf,
    },
}

/// The PEM texts of a node's credentials.
#[derive(Clone)]
pub struct Credentials {
    /// Federation CA certificate.
    pub ca_pem: String,
    /// TLS certificate.
    pub tls_cert_pem: String,
    /// TLS private key.
    pub tls_key_pem: String,
    /// Signing certificate.
    pub signing_cert_pem: String,
    /// Signing key.
    pub signing_key_pem: String,
}

/// A node directory with its configuration loaded.
#[derive(Clone, Debug)]
pub struct NodeDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its `node.toml`.
    pub config: NodeConfig,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

impl NodeDir {
    /// Loads `DIR/node.toml` and checks the unit.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ConfigError::NotANode(dir.to_owned()),
            _ => ConfigError::Io {
                path: path.clone(),
                source,
            },
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.node.validate().map_err(|source| ConfigError::Unit {
            path: path.clone(),
            source,
        })?;
        config
            .exchange
            .validate()
            .and_then(|()| config.directory.check())
            .and_then(|()| config.store.check())
            .and_then(|()| config.limits.check())
            .and_then(|()| {
                config
                    .gateway
                    .as_ref()
                    .map_or(Ok(()), GatewaySettings::check)
            })
            .and_then(|()| config.webhooks.check())
            .and_then(|()| config.cases.check())
            .map_err(|message| ConfigError::Parse {
                path: path.clone(),
                message,
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
        })
    }

    /// Writes `node.toml`.
    pub fn save(&self) -> Result<(), ConfigError> {
        let path = self.config_path();
        let text = toml::to_string(&self.config).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|source| ConfigError::Io { path, source })
    }

    /// Path of `node.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// A path from the configuration, resolved against the directory.
    pub fn path(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }

    /// The node's code.
    pub fn code(&self) -> &NodeCode {
        &self.config.node.code
    }

    /// Reads every credential file.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let f = &self.config.files;
        Ok(Credentials {
            ca_pem: read(&self.path(&f.ca))?,
            tls_cert_pem: read(&self.path(&f.tls_cert))?,
            tls_key_pem: read(&self.path(&f.tls_key))?,
            signing_cert_pem: read(&self.path(&f.signing_cert))?,
            signing_key_pem: read(&self.path(&f.signing_key))?,
        })
    }

    /// The federation's hash key, if installed.
    pub fn hash_key(&self) -> Result<Option<HashKey>, ConfigError> {
        let path = self.path(&self.config.files.hash_key);
        if !path.exists() {
            return Ok(None);
        }
        HashKey::from_hex(&read(&path)?)
            .map(Some)
            .map_err(|reason| ConfigError::HashKey { path, reason })
    }

    /// Where this node's principals are kept.
    pub fn principals_path(&self) -> PathBuf {
        self.path(&self.config.files.principals)
    }

    /// Where its principals' API tokens are kept.
    pub fn tokens_path(&self) -> PathBuf {
        self.path(&self.config.files.tokens)
    }

    /// Both files that say whom this node vouches for.
    pub fn principal_files(&self) -> PrincipalFiles {
        PrincipalFiles {
            principals: self.principals_path(),
            tokens: self.tokens_path(),
        }
    }

    /// The CA this node trusts.
    pub fn trusted_ca(&self) -> Result<TrustedCa, ConfigError> {
        let path = self.path(&self.config.files.ca);
        TrustedCa::from_pem(&read(&path)?)
            .map_err(|source| ConfigError::Credential { path, source })
    }

    /// The node's batch-signing key, checked against its signing certificate and the CA.
    pub fn signing_key(&self) -> Result<NodeKey, ConfigError> {
        let credentials = self.credentials()?;
        NodeKey::load(
            &credentials.signing_key_pem,
            &credentials.signing_cert_pem,
            &self.trusted_ca()?,
        )
        .map_err(|source| ConfigError::Credential {
            path: self.path(&self.config.files.signing_key),
            source,
        })
    }

    /// The node's encryption keys, current first: what opens the batches sealed to it.
    pub fn encryption_keys(&self) -> Result<EncryptionKeys, ConfigError> {
        let path = self.path(&self.config.files.encryption_key);
        EncryptionKeys::parse(&read(&path)?)
            .map_err(|source| ConfigError::Credential { path, source })
    }

    /// The endpoint of a node: this node's own, or a configured peer's.
    pub fn endpoint_of(&self, code: &NodeCode) -> Result<&str, ConfigError> {
        if code == self.code() {
            return Ok(&self.config.server.endpoint);
        }
        self.config
            .peers
            .iter()
            .find(|p| &p.code == code)
            .map(|p| p.endpoint.as_str())
            .ok_or_else(|| ConfigError::UnknownPeer {
                node: self.code().clone(),
                code: code.clone(),
                path: self.config_path(),
            })
    }
}

#[cfg(test)]
mod tests;
