//! `tierlink config`: what `node.toml` may hold.

use clap::Subcommand;

use super::CliError;

/// The node configuration.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the `node.toml` reference (Markdown): every section and key, its type, default and
    /// meaning, generated from the code (the copy in ops/config-reference.md is this output).
    Reference,
}

/// Runs a `tierlink config` command.
pub fn run(command: ConfigCommand) -> Result<(), CliError> {
    match command {
        ConfigCommand::Reference => print!("{}", tierlink_core::config::reference()),
    }
    Ok(())
}
