//! The `tierlink` command line: argument definitions and one function per command. Every command
//! acts through the library; commands that read or write a node's data talk to the running node
//! over gRPC with the node's own certificate.

mod audit;
mod backup;
mod case;
mod catalog;
mod cert;
mod config;
mod connect;
mod crosscheck;
mod demo;
mod directory;
mod input;
mod policy;
mod records;
mod setup;
mod sim;
mod token;
mod webhook;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tierlink_core::identity::NodeCode;
use tierlink_core::read::parse_since;

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
    Ca(setup::CaCommand),
    /// Create a node directory: node.toml, keys (0600) and certificates.
    Init(setup::InitArgs),
    /// Serve a node until interrupted (Ctrl-C or SIGTERM).
    Serve(setup::ServeArgs),
    /// Publish and read resource catalogs.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Write, import, query and trace records.
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// The federation directory: members, their published catalogs, and its replicas.
    #[command(subcommand)]
    Directory(directory::DirectorySubcommand),
    /// A node's certificates: rotate, retire and revoke them through the directory.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Roles: posts in a unit's departments, which grants are given to.
    #[command(subcommand)]
    Role(policy::RoleCommand),
    /// The people and system accounts this node vouches for, and their tokens.
    #[command(subcommand)]
    Principal(policy::PrincipalCommand),
    /// API tokens for systems acting for this node's principals: create, list, revoke.
    #[command(subcommand)]
    Token(token::TokenCommand),
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
    /// Connectors to legacy systems' databases: a table read into a catalog as it changes, a
    /// catalog's feed applied into a table.
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
    /// Webhooks: a catalog's change feed POSTed to a legacy system, signed as Standard Webhooks.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Cases that move between tiers: raised, escalated, dispatched, reported, verified, closed,
    /// each move signed; deadlines in working days; supervision figures.
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Cross-checks (对比核查): compare this node's catalog with another node's without either
    /// revealing its records that do not match.
    #[command(subcommand)]
    Crosscheck(crosscheck::CrossCheckCommand),
    /// The node configuration: the `node.toml` reference.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Have a serving node take a backup: its store (every tree at one point) and directory,
    /// signed by the node, sealed with --encrypt-to.
    Backup(backup::BackupArgs),
    /// Restore a stopped node's directory from a backup, verified whole before anything is
    /// touched.
    Restore(backup::RestoreArgs),
    /// Make an X25519 key pair to seal backups to (--encrypt-to) and open them (restore --key).
    BackupKey(backup::BackupKeyArgs),
    /// Check a file of signed batches with the CA certificate alone.
    Verify(records::VerifyArgs),
    /// Run a three-tier federation on loopback and show signed exchanges between its tiers.
    Demo(demo::DemoArgs),
    /// Simulations at a city's scale, measured.
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

/// The node directory a command acts for.
#[derive(Debug, Args, Clone)]
pub struct NodeArg {
    /// Node directory (with node.toml).
    #[arg(long, env = "TIERLINK_NODE")]
    pub node: PathBuf,
}

/// A principal of this node to act as: the node checks its token and vouches for it to the
/// producer, which decides what it sees.
#[derive(Debug, Args, Clone, Default)]
pub struct ActAs {
    /// Act as this principal of the node; its token comes from $TIERLINK_TOKEN or --token-file.
    #[arg(long = "as", visible_alias = "principal", requires_all = ["role", "purpose"])]
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
    /// See the message.
    #[error(transparent)]
    Connect(#[from] tierlink_connect::ConnectError),
    /// See the message.
    #[error(transparent)]
    Restore(#[from] tierlink_node::backup::restore::RestoreError),
    /// The demo saw something it should not have.
    #[error("demo failed: {0}")]
    Demo(String),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Ca(setup::CaCommand::Init { dir, name }) => setup::ca_init(&dir, &name),
        Command::Init(args) => setup::init(args),
        Command::Serve(args) => setup::serve(&args.node.node).await,
        Command::Catalog(command) => catalog::run(command).await,
        Command::Records(command) => records::run(command).await,
        Command::Directory(command) => directory::run(command).await,
        Command::Cert(command) => cert::run(command).await,
        Command::Role(command) => policy::role(command).await,
        Command::Principal(command) => policy::principal(command),
        Command::Token(command) => token::run(command),
        Command::Grant(command) => policy::grant_command(command).await,
        Command::Access(command) => policy::access(command).await,
        Command::Explain(args) => policy::explain(args).await,
        Command::Connect(command) => connect::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Webhook(command) => webhook::run(command).await,
        Command::Case(command) => case::run(command).await,
        Command::Crosscheck(command) => crosscheck::run(command).await,
        Command::Config(command) => config::run(command),
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore_node(args),
        Command::BackupKey(args) => backup::backup_key(&args),
        Command::Verify(args) => records::verify(args),
        Command::Demo(args) => demo::run(args).await,
        Command::Sim(command) => sim::run(command).await,
    }
}
