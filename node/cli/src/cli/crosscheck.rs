//! `tierlink crosscheck run|show`: compare this node's catalog with another node's on a join item
//! (对比核查), each side learning only its own mismatches, and read a kept run.

use clap::Subcommand;
use tierlink_client::NodeClient;
use tierlink_core::config::NodeDir;
use tierlink_core::limits::thousands;
use tierlink_proto::v1::run_progress::Event;
use tierlink_proto::v1::{CrossCheckRun, RunCrossCheckRequest, ShowCrossCheckRequest};

use super::{ActAs, CliError, NodeArg};

/// `tierlink crosscheck …`
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once per process: boxing would only blur the arguments.
pub enum CrossCheckCommand {
    /// Compare this node's catalog with another node's, for one of this node's principals (its
    /// grants on both catalogs must give the join item and every compared item); print the counts
    /// and this node's mismatches.
    Run {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The principal the run is for.
        #[command(flatten)]
        act_as: ActAs,
        /// This node's catalog.
        #[arg(long)]
        catalog: String,
        /// The other node's catalog, NODE:CODE (e.g. 420502:101001001/000001).
        #[arg(long, value_name = "NODE:CODE")]
        against: String,
        /// The item both catalogs join on (e.g. id_number).
        #[arg(long = "on", value_name = "ITEM")]
        join: String,
        /// The items compared, comma-separated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "ITEM,ITEM")]
        compare: Vec<String>,
        /// This node holds the register the other node's collection is checked against
        /// [default: this node collected, and its mismatches come back to it].
        #[arg(long)]
        holder: bool,
        /// With --holder: send each new mismatch back to the collector as a verification case
        /// with its deadline, and settle the earlier runs' cases it reported on (closed where
        /// the mismatch no longer stands). The principal acts on the cases.
        #[arg(long, requires = "holder")]
        send_back: bool,
        /// The collector's department that verifies [default: the unit itself].
        #[arg(long, default_value = "", requires = "send_back")]
        department: String,
    },
    /// A run this node took part in (on either side): its counts, and its mismatches as this
    /// node knows them: its own records by key, the other node's by reference.
    Show {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The run's id, cc_….
        run: String,
    },
}

fn status(s: tonic::Status) -> CliError {
    CliError::Client(s.into())
}

/// A run as an operator reads it: what was compared, the counts, then one line per mismatch.
fn print_run(run: &CrossCheckRun) {
    let c = run.counts.unwrap_or_default();
    println!(
        "run {}: {} ({}) against {} on {}, comparing {}",
        run.run,
        run.here,
        run.role,
        run.there,
        run.join,
        run.compared.join(",")
    );
    println!(
        "for {} as {}, purpose {:?}, grant {}",
        run.principal, run.principal_role, run.purpose, run.grant
    );
    println!(
        "records here {}, there {}: matched {}, differing {}, only here {}, only there {}, not compared here {}",
        thousands(c.here),
        thousands(c.there),
        thousands(c.matched),
        thousands(c.differing),
        thousands(c.only_here),
        thousands(c.only_there),
        thousands(c.not_compared)
    );
    for m in &run.mismatches {
        let key = if m.key.is_empty() { "-" } else { &m.key };
        println!(
            "{:<18} {:<24} {:<32} {}",
            m.kind,
            key,
            m.reference,
            m.items.join(",")
        );
    }
    println!("{} mismatch(es)", run.mismatches.len());
}

/// Runs `tierlink crosscheck …`.
pub async fn run(command: CrossCheckCommand) -> Result<(), CliError> {
    match command {
        CrossCheckCommand::Run {
            node,
            act_as,
            catalog,
            against,
            join,
            compare,
            holder,
            send_back,
            department,
        } => {
            let credential = act_as.credential()?.ok_or_else(|| {
                CliError::Input(
                    "a cross-check is run for a principal of this node: give --as NAME --role UNIT/NAME --purpose TEXT, and its token in $TIERLINK_TOKEN or --token-file".into(),
                )
            })?;
            let (against_node, against_catalog) = against.split_once(':').ok_or_else(|| {
                CliError::Input(format!(
                    "--against names the other node's catalog as NODE:CODE, e.g. 420502:101001001/000001 (got {against:?})"
                ))
            })?;
            let mut client = NodeClient::open(NodeDir::load(&node.node)?)?
                .crosscheck()
                .await?;
            let request = RunCrossCheckRequest {
                catalog,
                against_node: against_node.to_owned(),
                against_catalog: against_catalog.to_owned(),
                join,
                compared: compare,
                credential: Some(credential),
                holder,
                send_back,
                department,
            };
            let mut events = client.run(request).await.map_err(status)?.into_inner();
            while let Some(event) = events.message().await.map_err(status)? {
                match event.event {
                    Some(Event::Step(step)) => eprintln!("{step}"),
                    Some(Event::Run(run)) => {
                        print_run(&run);
                        return Ok(());
                    }
                    None => {}
                }
            }
            Err(CliError::Input(
                "the node ended the run without its result: see its log, and run it again".into(),
            ))
        }
        CrossCheckCommand::Show { node, run } => {
            let mut client = NodeClient::open(NodeDir::load(&node.node)?)?
                .crosscheck()
                .await?;
            let run = client
                .show(ShowCrossCheckRequest { run })
                .await
                .map_err(status)?
                .into_inner();
            print_run(&run);
            Ok(())
        }
    }
}
