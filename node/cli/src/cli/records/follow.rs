//! `tierlink records follow`: a catalog's change feed, printed as JSON lines as versions arrive.
//!
//! Each batch is verified as a query's is; its records are printed and flushed, and only then is
//! its resume token kept (`--resume-file`, replaced whole), so a follower stopped at any point and
//! started again with the same file loses nothing; stopped between printing a batch and keeping
//! its token, it prints that batch again (at least once: each line's `_key` and `_version` tell
//! a repeat). `--snapshot` reads
//! the catalog's current records first (a query) and follows from where that read began,
//! leaving out the versions it already printed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use tierlink_client::{ClientError, NodeClient};
use tierlink_core::config::NodeDir;
use tierlink_core::signed::VerifiedBatch;
use tierlink_proto::v1::{QueryRequest, ReadScope, SubscribeRequest};

use super::{print_records, scope};
use crate::cli::{ActAs, CliError, NodeArg, Route};

/// `tierlink records follow`
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The node acting.
    #[command(flatten)]
    node: NodeArg,
    /// Where to read from.
    #[command(flatten)]
    route: Route,
    /// Catalog to follow.
    #[arg(long)]
    catalog: String,
    /// Resume after this token (a batch header's `resume_token`) [default: the --resume-file's,
    /// or from now].
    #[arg(long = "from", value_name = "TOKEN")]
    from: Option<String>,
    /// Keep the last resume token in FILE once each batch is printed, and resume from it when it
    /// exists.
    #[arg(long, value_name = "FILE")]
    resume_file: Option<PathBuf>,
    /// Print the catalog's current records first, then follow from where they were read.
    #[arg(long)]
    snapshot: bool,
    /// Records per signed batch at most [default: the producer's, 1,000].
    #[arg(long)]
    batch_size: Option<u32>,
    /// Who asks.
    #[command(flatten)]
    act_as: ActAs,
}

/// Replaces `path` with `token` whole: written beside it, then renamed over it.
fn keep_token(path: &Path, token: &str) -> Result<(), ClientError> {
    let fresh = path.with_extension("tmp");
    std::fs::write(&fresh, format!("{token}\n"))
        .and_then(|()| std::fs::rename(&fresh, path))
        .map_err(|e| ClientError::Io(format!("{}: {e}", path.display())))
}

/// Runs `tierlink records follow` until the feed ends (an error, or the process is stopped).
pub async fn run(args: FollowArgs) -> Result<(), CliError> {
    let FollowArgs {
        node,
        route,
        catalog,
        from,
        resume_file,
        snapshot,
        batch_size,
        act_as,
    } = args;
    let saved = match &resume_file {
        Some(path) if path.exists() => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?
                .trim()
                .to_owned(),
        ),
        _ => None,
    };
    let mut token = from.or(saved).unwrap_or_default();
    if snapshot && !token.is_empty() {
        return Err(CliError::Input(
            "--snapshot starts from the current records: leave out --from (and the resume file's token) to use it".into(),
        ));
    }
    let scope: ReadScope = scope(catalog, &route, &act_as)?;
    let client = NodeClient::open(NodeDir::load(&node.node)?)?;
    let via = route.via.as_ref();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let print = |out: &mut std::io::BufWriter<std::io::Stdout>, batch: &VerifiedBatch| {
        print_records(out, batch).map_err(|e| ClientError::Io(format!("stdout: {e}")))
    };
    // The versions the snapshot printed, by key: the feed from its start may bring them again.
    let mut printed: HashMap<String, u64> = HashMap::new();
    if snapshot {
        let query = QueryRequest {
            scope: Some(scope.clone()),
            batch_size: batch_size.unwrap_or(0),
            ..Default::default()
        };
        client
            .read(via, query, |_, verified| {
                token.clone_from(&verified.header.resume_token);
                for record in &verified.records {
                    printed.insert(record.key.clone(), record.version);
                }
                print(&mut out, &verified)
            })
            .await?;
        if let Some(path) = &resume_file {
            keep_token(path, &token)?;
        }
    }
    let request = SubscribeRequest {
        scope: Some(scope),
        resume_token: token,
        batch_size: batch_size.unwrap_or(0),
    };
    client
        .read(via, request, |_, mut verified| {
            if !printed.is_empty() {
                // Versions travel with clear keys only; hashed ones cannot be told apart.
                verified.records.retain(|r| {
                    r.version == 0 || printed.get(&r.key).is_none_or(|&v| r.version > v)
                });
            }
            print(&mut out, &verified)?;
            out.flush()
                .map_err(|e| ClientError::Io(format!("stdout: {e}")))?;
            match &resume_file {
                Some(path) => keep_token(path, &verified.header.resume_token),
                None => Ok(()),
            }
        })
        .await?;
    Ok(())
}
