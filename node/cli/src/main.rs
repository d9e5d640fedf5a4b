//! The `tierlink` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use tierlink_core::config::LogFormat;
use tracing_subscriber::util::SubscriberInitExt;
mod cli;

use cli::{Cli, Command, run};

// glibc's allocator spends over half of a streamed query in malloc bookkeeping (measured with
// perf on the exchange benchmark); mimalloc more than doubles throughput.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own summary; servers log what they do. openraft reports routine
    // races of its own replication (messages overtaken by newer ones) as warnings.
    let default = if matches!(cli.command, Command::Serve(_) | Command::Connect(_)) {
        "info,openraft=warn"
    } else {
        "warn,openraft=error"
    };
    let format = match &cli.command {
        Command::Serve(args) => args.log_format(),
        _ => LogFormat::Text,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tierlink_node::logs::subscriber(format, filter, std::io::stderr).init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
