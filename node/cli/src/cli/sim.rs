//! `tierlink sim city`: a whole city on loopback — the city in its own process, its districts and
//! streets in this one — formed through the normal join and approve path, and measured (see
//! `tierlink_sandbox::city`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tierlink_core::config::DirectorySettings;
use tierlink_sandbox::city::{City, CityPlan};

use super::CliError;

/// `tierlink sim`
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A city, its districts and their streets as nodes on loopback: how long a directory change
    /// takes to reach every replica, the leader's CPU and memory, a street joining, every street
    /// restarting at once, a voting district killed.
    City(CityArgs),
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
    let SimCommand::City(args) = command;
    let temp;
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().map_err(|e| CliError::Input(e.to_string()))?;
            temp.path().to_owned()
        }
    };
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
