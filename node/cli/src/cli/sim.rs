//! `tierlink sim city`: a whole city on loopback — the city in its own process, its districts and
//! streets in this one — formed through the normal join and approve path, and measured (see
//! `tierlink_sandbox::city`). `tierlink sim faults`: a federation of node processes under load
//! while nodes are killed, paused, partitioned and their clocks skewed, its history checked
//! afterwards (see `tierlink_sandbox::faults`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tierlink_core::config::DirectorySettings;
use tierlink_sandbox::city::{City, CityPlan};
use tierlink_sandbox::faults::FaultPlan;

use super::CliError;

/// `tierlink sim`
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A city, its districts and their streets as nodes on loopback: how long a directory change
    /// takes to reach every replica, the leader's CPU and memory, a street joining, every street
    /// restarting at once, a voting district killed.
    City(CityArgs),
    /// A city, two districts and three streets, each a `tierlink serve` process on loopback,
    /// under a mixed load while nodes are killed (SIGKILL), paused (SIGSTOP), partitioned and
    /// restarted with a skewed clock; then checks that nothing acknowledged was lost, that
    /// directory reads were linearizable and that every store reopens with its audit chain
    /// intact. Fails on any violation.
    Faults(FaultsArgs),
}

/// `tierlink sim faults`
#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// Seconds of faults.
    #[arg(long, default_value_t = 150)]
    pub seconds: u64,
    /// Seed of the faults and the load [default: from the clock, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the nodes' files, logs and samples [default: a temporary directory,
    /// removed at exit].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `tierlink sim city`
#[derive(Debug, Args)]
pub struct CityArgs {
    /// Districts under the city.
    #[arg(long, default_value_t = 16)]
    pub districts: usize,
    /// Street offices, spread evenly over the districts.
    #[arg(long, default_value_t = 300)]
    pub streets: usize,
    /// Changes measured one at a time.
    #[arg(long, default_value_t = 100)]
    pub changes: usize,
    /// Changes per second under load.
    #[arg(long, default_value_t = 10)]
    pub rate: u32,
    /// Seconds of the quiet and the loaded phases.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Streets as replicas of the leader's raft (learners), as before streets followed their
    /// district: for comparison.
    #[arg(long)]
    pub streets_as_learners: bool,
    /// Directory for the nodes' files [default: a temporary directory, removed at exit].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Runs `tierlink sim`.
pub async fn run(command: SimCommand) -> Result<(), CliError> {
    match command {
        SimCommand::City(args) => city(args).await,
        SimCommand::Faults(args) => faults(args).await,
    }
}

/// `dir`, or a temporary directory removed when the guard returned is dropped.
fn root(dir: &Option<PathBuf>) -> Result<(PathBuf, Option<tempfile::TempDir>), CliError> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
            Ok((dir.clone(), None))
        }
        None => {
            let temp = tempfile::tempdir().map_err(|e| CliError::Input(e.to_string()))?;
            Ok((temp.path().to_owned(), Some(temp)))
        }
    }
}

async fn faults(args: FaultsArgs) -> Result<(), CliError> {
    let (root, _temp) = root(&args.dir)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let plan = FaultPlan {
        seconds: args.seconds,
        seed,
        binary: std::env::current_exe().map_err(|e| CliError::Input(e.to_string()))?,
        progress: |step| println!("{step}"),
    };
    let report = tierlink_sandbox::faults::run(&root, plan).await?;
    println!("{report}");
    if report.violations.is_empty() {
        Ok(())
    } else {
        let files = match &args.dir {
            Some(dir) => format!("the nodes' files and logs are in {}", dir.display()),
            None => "run again with --dir to keep the nodes' files and logs".into(),
        };
        Err(CliError::Input(format!(
            "{} violations under faults (seed {seed}; {files})",
            report.violations.len()
        )))
    }
}

async fn city(args: CityArgs) -> Result<(), CliError> {
    let (root, _temp) = root(&args.dir)?;
    let plan = CityPlan {
        districts: args.districts,
        streets: args.streets,
        sparse_changes: args.changes,
        load_per_second: args.rate,
        phase_seconds: args.seconds,
        directory: DirectorySettings {
            streets_follow_district: !args.streets_as_learners,
            ..DirectorySettings::default()
        },
        binary: std::env::current_exe().map_err(|e| CliError::Input(e.to_string()))?,
        progress: |step| println!("… {step}"),
    };
    println!(
        "forming a city of 1 + {} districts + {} streets on loopback (the city in its own process)…",
        args.districts, args.streets
    );
    let report = City::run(&root, plan).await?;
    println!("{report}");
    Ok(())
}
