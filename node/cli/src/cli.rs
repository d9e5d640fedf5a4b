//! The `tierlink` command line: argument definitions and one function per command. Every command
//! acts through the library; commands that read or write a node's data talk to the running node
//! over gRPC with the node's own certificate.

mod audit;
mod catalog;
mod demo;
mod directory;
mod input;
mod policy;
mod records;
mod setup;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use tierlink_core::identity::{NodeCode, Tier};

/// Tierlink: catalogs, records and signed exchange between city, district and street offices.
#[derive(Debug, Parser)]
#[command(name = "tierlink", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage a federation's certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Create a node directory: node.toml, keys (0600) and certificates.
    Init(InitArgs),
    /// Serve a node until interrupted (Ctrl-C or SIGTERM).
    Serve(NodeArg),
    /// Publish and read resource catalogs.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Write, import, query and trace records.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// The federation directory: members, their published catalogs, and its replicas.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Roles: posts in a unit's departments, which grants are given to.
    #[command(subcommand)]
    Role(policy::RoleCommand),
    /// The people and system accounts this node vouches for, and their tokens.
    #[command(subcommand)]
    Principal(policy::PrincipalCommand),
    /// Grants: which role or principal sees which items of a catalog, and how.
    #[command(subcommand)]
    Grant(policy::GrantCommand),
    /// Access requests for conditional catalogs: ask, approve, reject.
    #[command(subcommand)]
    Access(policy::AccessCommand),
    /// What a principal would see of a catalog, item by item, and the rule that decides each.
    Explain(policy::ExplainArgs),
    /// This node's audit: who saw what, and whether the record of it is intact.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check a file of signed batches with the CA certificate alone.
    Verify(VerifyArgs),
    /// Run a three-tier federation on loopback and show signed exchanges between its tiers.
    Demo(DemoArgs),
}

/// `tierlink ca …`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a federation CA: DIR/ca.crt (give it to every node) and DIR/ca.key (keep it safe).
    Init {
        /// Directory for the CA files.
        #[arg(long)]
        dir: PathBuf,
        /// Name of the federation, e.g. "Yichang".
        #[arg(long, default_value = "Tierlink federation")]
        name: String,
    },
}

/// The node directory a command acts for.
#[derive(Debug, Args, Clone)]
pub struct NodeArg {
    /// Node directory (with node.toml).
    #[arg(long, env = "TIERLINK_NODE")]
    pub node: PathBuf,
}

/// `tierlink init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the node in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Division code of the unit: 6 digits for a city or district, 9 for a street office.
    #[arg(long)]
    pub code: NodeCode,
    /// Tier of the unit: city, district or street.
    #[arg(long)]
    pub tier: Tier,
    /// Code of the unit above (a district's city, a street's district).
    #[arg(long)]
    pub parent: Option<NodeCode>,
    /// Display name, e.g. "西陵街道 Xiling Street Office".
    #[arg(long)]
    pub name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// URL other nodes reach this one at [default: https://LISTEN].
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Host name or IP address for the TLS certificate; repeat for several [default: localhost, 127.0.0.1].
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Another node as CODE=URL; repeat for several.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<tierlink_core::config::Peer>,
    /// CA directory from `tierlink ca init`: certificates are issued at once.
    #[arg(
        long,
        conflicts_with = "external_ca",
        required_unless_present = "external_ca"
    )]
    pub ca: Option<PathBuf>,
    /// Certificate of an external CA: writes tls.csr and signing.csr for it to sign instead.
    #[arg(long)]
    pub external_ca: Option<PathBuf>,
}

fn parse_peer(s: &str) -> Result<tierlink_core::config::Peer, String> {
    let (code, endpoint) = s
        .split_once('=')
        .ok_or("write a peer as CODE=URL, e.g. 420502=https://10.0.0.2:7443")?;
    Ok(tierlink_core::config::Peer {
        code: code.parse().map_err(|e| format!("{e}"))?,
        endpoint: endpoint.to_owned(),
    })
}

/// A principal of this node to act as: the node checks its token and vouches for it to the
/// producer, which decides what it sees.
#[derive(Debug, Args, Clone, Default)]
pub struct ActAs {
    /// Act as this principal of the node; its token comes from $TIERLINK_TOKEN or --token-file.
    #[arg(long = "as", requires_all = ["role", "purpose"])]
    pub principal: Option<String>,
    /// The role to act in, UNIT/NAME (e.g. 420502/civil-affairs).
    #[arg(long)]
    pub role: Option<String>,
    /// Why the records are wanted; a grant for the same purpose must exist.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Decide under this grant [default: the producer picks the principal's or role's grant].
    #[arg(long)]
    pub grant: Option<String>,
    /// File holding the principal's token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

impl ActAs {
    /// The credential to give this node, if acting as a principal.
    pub fn credential(&self) -> Result<Option<tierlink_proto::v1::Credential>, CliError> {
        let Some(principal) = &self.principal else {
            return Ok(None);
        };
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
            None => std::env::var("TIERLINK_TOKEN").map_err(|_| {
                CliError::Input(format!(
                    "--as {principal} needs the principal's token: set TIERLINK_TOKEN or give --token-file"
                ))
            })?,
        };
        Ok(Some(tierlink_proto::v1::Credential {
            principal: principal.clone(),
            token: token.trim().to_owned(),
            role: self.role.clone().unwrap_or_default(),
            purpose: self.purpose.clone().unwrap_or_default(),
            grant: self.grant.clone().unwrap_or_default(),
        }))
    }
}

/// Which node to read from, and through which node.
#[derive(Debug, Args, Clone)]
pub struct Route {
    /// Node to read from [default: this node].
    #[arg(long)]
    pub target: Option<NodeCode>,
    /// Ask this node to relay to the target instead of connecting to the target directly.
    #[arg(long)]
    pub via: Option<NodeCode>,
}

/// `tierlink catalog …`
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Publish catalog entries from JSON files (one entry or an array per file) on this node.
    Add {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog files, e.g. schema/examples/residents.json.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List a node's catalogs.
    List {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
    },
    /// Publish one of this node's catalogs in the federation directory (its shared view: items
    /// that are not shared stay behind), or republish it after a change.
    Publish {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Resource code, e.g. 101001001/000001.
        code: String,
    },
    /// Withdraw one of this node's catalogs from the federation directory.
    Withdraw {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Resource code.
        code: String,
    },
    /// Print one catalog entry as JSON.
    Show {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
        /// Resource code, e.g. 101001001/000001.
        code: String,
    },
}

/// `tierlink directory …`
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Found the federation directory on the city node (once, on a running node).
    Init(NodeArg),
    /// Ask to join the directory under this node's parent, through the parent's node.
    Join {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The parent node's endpoint, e.g. https://district.example.gov.cn:7443.
        #[arg(long)]
        via: String,
    },
    /// Approve a unit below this one that asked to join.
    Approve {
        /// The node acting (the unit's parent).
        #[command(flatten)]
        node: NodeArg,
        /// Code of the unit.
        code: NodeCode,
    },
    /// Suspend a unit below this one: no exchange with it, and it stops replicating.
    Suspend {
        /// The node acting (the unit's parent).
        #[command(flatten)]
        node: NodeArg,
        /// Code of the unit.
        code: NodeCode,
    },
    /// Name the directory's voters: the city and 0, 2 or 4 of its districts (run on the city).
    Voters {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Codes of the voting districts.
        districts: Vec<NodeCode>,
    },
    /// List the members of the federation.
    Members {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Read through the leader, seeing every committed change.
        #[arg(long)]
        linearizable: bool,
    },
    /// List the catalogs published across every tier.
    Catalogs {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Only this publisher's.
        #[arg(long)]
        publisher: Option<NodeCode>,
        /// Read through the leader, seeing every committed change.
        #[arg(long)]
        linearizable: bool,
    },
    /// Find published catalogs by resource code, name, provider or information-item name.
    Search {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Text to look for (case-insensitive).
        text: String,
        /// Read through the leader, seeing every committed change.
        #[arg(long)]
        linearizable: bool,
    },
    /// Who leads, term, voters, learners, and how far each replica has applied the log.
    Status(NodeArg),
}

/// `tierlink records …`
#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Write records given as JSON objects (arguments, or one per line on stdin), all or none.
    Put {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog to write to.
        #[arg(long)]
        catalog: String,
        /// Records as JSON objects keyed by item code; read from stdin when none are given.
        records: Vec<String>,
    },
    /// Import a JSON-lines or CSV file (header row of item codes or names). The whole file is
    /// checked first; then it is written in batches, each all or none.
    Import {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Catalog to write to.
        #[arg(long)]
        catalog: String,
        /// File to import: .csv, or JSON lines (.jsonl, .json, .ndjson).
        file: PathBuf,
        /// Records per batch.
        #[arg(long, default_value_t = 5000)]
        batch_size: usize,
    },
    /// Query records; every batch is verified. Prints JSON lines, or writes signed batches to --out.
    Query {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
        /// Catalog to read.
        #[arg(long)]
        catalog: String,
        /// Smallest primary key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Primary key to stop before (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Condition ITEM=VALUE; repeat for several (all must hold).
        #[arg(long = "where", value_parser = parse_condition)]
        conditions: Vec<(String, String)>,
        /// Only records written at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Records per signed batch [default: the producer's, 1,000].
        #[arg(long)]
        batch_size: Option<u32>,
        /// Write the signed batches to FILE (check them later with `tierlink verify FILE`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Who asks.
        #[command(flatten)]
        act_as: ActAs,
    },
    /// Every stored version of one record.
    History {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Where to read from.
        #[command(flatten)]
        route: Route,
        /// Catalog of the record.
        #[arg(long)]
        catalog: String,
        /// Primary key of the record.
        #[arg(long)]
        key: String,
        /// Write the signed batches to FILE.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Who asks.
        #[command(flatten)]
        act_as: ActAs,
    },
}

fn parse_condition(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("write a condition as ITEM=VALUE, e.g. sex=2 (got {s:?})"))
}

fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_micros()
        })
        .map_err(|_| {
            format!(
                "{s:?} is not a time: write RFC 3339 (2026-11-28T08:00:00Z) or a date (2026-11-28)"
            )
        })
}

/// `tierlink verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// File written by `records query --out` or `records history --out`.
    pub file: PathBuf,
    /// Federation CA certificate [default: the node's, with --node].
    #[arg(long, required_unless_present = "node")]
    pub ca: Option<PathBuf>,
    /// Node directory whose CA certificate to use.
    #[arg(long, env = "TIERLINK_NODE")]
    pub node: Option<PathBuf>,
}

/// `tierlink demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the federation's files [default: a temporary directory, removed at exit].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep serving after the demo, until interrupted; writes DIR/federation.json.
    #[arg(long, requires = "dir")]
    pub serve: bool,
    /// Residents to generate at the street.
    #[arg(long, default_value_t = 5000)]
    pub residents: usize,
    /// Buildings to generate at the street.
    #[arg(long, default_value_t = 1210)]
    pub buildings: usize,
}

/// Why a command failed; printed as `error: …` with exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// See the message.
    #[error(transparent)]
    Config(#[from] tierlink_core::config::ConfigError),
    /// See the message.
    #[error(transparent)]
    Client(#[from] tierlink_client::ClientError),
    /// See the message.
    #[error(transparent)]
    Provision(#[from] tierlink_core::provision::ProvisionError),
    /// See the message.
    #[error(transparent)]
    Runtime(#[from] tierlink_node::runtime::RuntimeError),
    /// See the message.
    #[error(transparent)]
    Federation(#[from] tierlink_sandbox::federation::FederationError),
    /// See the message.
    #[error(transparent)]
    Catalog(#[from] tierlink_core::catalog::CatalogError),
    /// Some directory changes were refused.
    #[error("{0}")]
    Refused(String),
    /// See the message.
    #[error(transparent)]
    BatchFile(#[from] tierlink_core::signed::file::BatchFileError),
    /// See the message.
    #[error(transparent)]
    FileVerify(#[from] tierlink_core::signed::file::FileVerifyError),
    /// A certificate could not be read.
    #[error(transparent)]
    Cert(#[from] tierlink_core::identity::CertError),
    /// An input file or argument is not usable.
    #[error("{0}")]
    Input(String),
    /// The demo saw something it should not have.
    #[error("demo failed: {0}")]
    Demo(String),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Ca(CaCommand::Init { dir, name }) => setup::ca_init(&dir, &name),
        Command::Init(args) => setup::init(args),
        Command::Serve(node) => setup::serve(&node.node).await,
        Command::Catalog(command) => catalog::run(command).await,
        Command::Records(command) => records::run(command).await,
        Command::Directory(command) => directory::run(command).await,
        Command::Role(command) => policy::role(command).await,
        Command::Principal(command) => policy::principal(command),
        Command::Grant(command) => policy::grant_command(command).await,
        Command::Access(command) => policy::access(command).await,
        Command::Explain(args) => policy::explain(args).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Verify(args) => records::verify(args),
        Command::Demo(args) => demo::run(args).await,
    }
}
