//! `tierlink case raise|escalate|approve|dispatch|report|verify|close|reopen|reply|list|show|
//! figures`: residents' and grid-management cases that move between the city, its districts
//! and their street offices (see the README's "Cases"). A principal acts through its own node,
//! which signs the move and delivers the case to every unit party to it.

use clap::{Args, Subcommand};
use tierlink_core::config::NodeDir;
use tierlink_proto::v1::{
    ActRequest, CaseMove, CaseSummary, CaseView, Credential, FiguresRequest, FiguresResponse,
    ListCasesRequest, RecordRef, ShowCaseRequest,
};

use super::{ActAs, CliError, NodeArg};

const EXAMPLES: &str = "Examples:
  export TIERLINK_TOKEN=tlk_…   # the principal's token
  tierlink case raise --node street --as wang --role 420502001/hall \\
      --channel 1 --class 1 --grid 42050200100101 --subject \"路灯不亮 street light out\"
  tierlink case dispatch --node street --as wang --role 420502001/hall \\
      420502001-20261201-00001 --to 420502001 --department 城管科 --route 1
  tierlink case report --node street --as li --role 420502001/urban 420502001-20261201-00001 \\
      --note \"灯已修复 lamp replaced\"
  tierlink case verify --node street --as wang --role 420502001/hall 420502001-20261201-00001 --passed
  tierlink case close --node street --as wang --role 420502001/hall 420502001-20261201-00001
  tierlink case list --node street --mine
  tierlink case figures --node district --by unit,class";

/// Who acts: a principal of the node, in one of its roles.
#[derive(Debug, Args, Clone)]
pub struct Actor {
    /// The principal acting; its token comes from $TIERLINK_TOKEN or --token-file.
    #[arg(long = "as")]
    pub principal: String,
    /// The role it acts in, UNIT/NAME: a role of this node's unit.
    #[arg(long)]
    pub role: String,
    /// File holding the principal's token.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
}

impl Actor {
    fn credential(&self) -> Result<Credential, CliError> {
        let act_as = ActAs {
            principal: Some(self.principal.clone()),
            role: Some(self.role.clone()),
            token_file: self.token_file.clone(),
            ..ActAs::default()
        };
        Ok(act_as.credential()?.unwrap_or_default())
    }
}

/// A move on a case this node must act on.
#[derive(Debug, Args)]
pub struct On {
    /// The node acting.
    #[command(flatten)]
    node: NodeArg,
    /// Who acts.
    #[command(flatten)]
    actor: Actor,
    /// The case, UNIT-YYYYMMDD-NNNNN.
    case: String,
    /// A remark; for reopen, a failed verification and report, required.
    #[arg(long, default_value = "")]
    note: String,
}

/// `tierlink case …`
#[derive(Debug, Subcommand)]
#[command(after_help = EXAMPLES)]
pub enum CaseCommand {
    /// Raise a case at this node, as it arrived from a resident or an inspector. Its deadline
    /// follows its class: immediate the same working day, promised the date promised, missing
    /// documents and verification tasks their working days ([cases.deadlines]).
    Raise {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Who acts.
        #[command(flatten)]
        actor: Actor,
        /// Intake channel: 1 service hall, 2 call centre, 3 mailbox/hotline/web, 4 information
        /// officers' visits, 5 representatives' liaison stations.
        #[arg(long)]
        channel: String,
        /// Class: 1 immediate (即办件), 2 promised (承诺件), 3 missing documents (补办件), 4
        /// escalated (上报件), 5 referred (建议件).
        #[arg(long)]
        class: String,
        /// Grid cell code.
        #[arg(long, default_value = "")]
        grid: String,
        /// What the resident asks.
        #[arg(long)]
        subject: String,
        /// The date promised, YYYY-MM-DD, for class 2.
        #[arg(long, default_value = "")]
        promised: String,
        /// A record the case concerns, NODE:CATALOG:KEY (repeatable); read under the usual
        /// grants.
        #[arg(long = "record", value_name = "NODE:CATALOG:KEY")]
        records: Vec<String>,
    },
    /// Send an open case up to this unit's parent (上报): it answers within its working days of
    /// approving it.
    Escalate(On),
    /// Take on a case a unit below escalated; its deadline runs from now.
    Approve(On),
    /// Send an open case to the unit that handles it: this unit, one below it, or one beside it
    /// under the same parent, and the department there. The route sets the deadline (Nanchang's
    /// "123").
    Dispatch {
        #[command(flatten)]
        on: On,
        /// The handling unit's division code.
        #[arg(long)]
        to: String,
        /// The department there that handles it, as the directory's roles name it.
        #[arg(long, default_value = "")]
        department: String,
        /// 1 this unit's own remit, 2 one department, 3 several departments.
        #[arg(long, default_value_t = 1)]
        route: u32,
    },
    /// Report the result of a case dispatched here (the note is the result).
    Report(On),
    /// Check the result of a case this unit dispatched: --passed, or not, saying why in --note.
    Verify {
        #[command(flatten)]
        on: On,
        /// The result holds.
        #[arg(long)]
        passed: bool,
    },
    /// Close a verified case (only the unit that verified it closes it).
    Close(On),
    /// Open a closed case again (the unit where it was raised), saying why.
    Reopen(On),
    /// Answer the resident of a closed case (the unit where it was raised), with their rating:
    /// 1 satisfied, 2 fairly satisfied, 3 dissatisfied.
    Reply {
        #[command(flatten)]
        on: On,
        /// The resident's rating.
        #[arg(long)]
        rating: u32,
    },
    /// The cases this node keeps, newest first.
    List {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Only those this node must act on next.
        #[arg(long)]
        mine: bool,
        /// Only those past their deadline.
        #[arg(long)]
        overdue: bool,
        /// At most this many (0: the node's default, 1,000).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// As the cases will stand at the end of this day, YYYY-MM-DD (China Standard Time)
        /// [default: now].
        #[arg(long, value_parser = end_of_day)]
        at: Option<i64>,
    },
    /// One case and its chain of signed moves.
    Show {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// The case.
        case: String,
    },
    /// Supervision figures from the chains this node keeps, each move's signature checked:
    /// received, on time, overdue, closed, reopened, on-time and closure rates.
    Figures {
        /// The node acting.
        #[command(flatten)]
        node: NodeArg,
        /// Group by any of unit, tier, class, channel, period (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "unit")]
        by: Vec<String>,
        /// Cases raised on or after this day, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        from: String,
        /// Cases raised on or before this day, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        to: String,
        /// Only cases raised by this unit.
        #[arg(long, default_value = "")]
        unit: String,
        /// As the cases will stand at the end of this day, YYYY-MM-DD (China Standard Time)
        /// [default: now].
        #[arg(long, value_parser = end_of_day)]
        at: Option<i64>,
    },
}

async fn client(
    node: &NodeArg,
) -> Result<tierlink_proto::v1::cases_client::CasesClient<tonic::transport::Channel>, CliError> {
    let dir = NodeDir::load(&node.node)?;
    let channel =
        tierlink_client::channel(&dir.credentials()?, &dir.config.server.endpoint).await?;
    Ok(tierlink_client::cases_client(channel))
}

/// The end of `day` (YYYY-MM-DD) in China Standard Time, µs since the Unix epoch.
fn end_of_day(day: &str) -> Result<i64, String> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| format!("{day:?} is not a day: give YYYY-MM-DD"))?;
    let next = date.succ_opt().ok_or("a day within the calendar")?;
    Ok(next
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_micros()
        - 8 * 3_600_000_000
        - 1)
}

fn status(s: tonic::Status) -> CliError {
    CliError::Client(s.into())
}

/// A time in microseconds as an operator reads it, in China Standard Time.
fn at(micros: i64) -> String {
    let zone = chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn record(text: &str) -> Result<RecordRef, CliError> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(node), Some(catalog), Some(key)) if !key.is_empty() => Ok(RecordRef {
            node: node.into(),
            catalog: catalog.into(),
            key: key.into(),
        }),
        _ => Err(CliError::Input(format!(
            "--record {text:?} is not NODE:CATALOG:KEY, e.g. 420502001:101001001/000001:420502199001011234"
        ))),
    }
}

/// One line per case: id, status, who acts next, deadline.
pub(super) fn line(c: &CaseSummary) -> String {
    let due = if c.due_micros == 0 {
        "no deadline".to_owned()
    } else if c.status == "closed" || c.status == "replied" {
        format!("due {}", at(c.due_micros))
    } else if c.overdue {
        format!("OVERDUE since {}", at(c.due_micros))
    } else {
        format!(
            "due {} ({} working days left)",
            at(c.due_micros),
            c.working_days_left
        )
    };
    let next = if c.next_department.is_empty() {
        c.next.clone()
    } else {
        format!("{} {}", c.next, c.next_department)
    };
    format!(
        "{}  {:<17} next: {:<22} {}{}  class {} channel {}  {}",
        c.case_id,
        c.status,
        next,
        due,
        if c.due_provisional {
            " (provisional)"
        } else {
            ""
        },
        c.class,
        c.channel,
        c.subject
    )
}

pub(super) fn print_view(view: &CaseView) -> Result<(), CliError> {
    let Some(summary) = &view.summary else {
        return Ok(());
    };
    println!("{}", line(summary));
    for signed in &view.moves {
        let mv = tierlink_core::cases::chain::read(signed)
            .map_err(|e| CliError::Input(e.to_string()))?;
        let to = if mv.to.is_empty() {
            String::new()
        } else {
            format!(" → {} {}", mv.to, mv.to_department)
        };
        let by = if mv.principal.is_empty() {
            "the node".to_owned()
        } else {
            mv.principal.clone()
        };
        let line = format!(
            "  {:>2} {}  {:<9} by {} at {}{}  {}",
            mv.sequence,
            at(mv.at_micros),
            mv.action,
            by,
            mv.node,
            to.trim_end(),
            mv.note
        );
        println!("{}", line.trim_end());
    }
    if !view.undelivered.is_empty() {
        println!("  not yet delivered to: {}", view.undelivered.join(", "));
    }
    Ok(())
}

async fn act(on: On, mut mv: CaseMove) -> Result<(), CliError> {
    mv.case_id = on.case;
    mv.note = on.note;
    let view = client(&on.node)
        .await?
        .act(ActRequest {
            credential: Some(on.actor.credential()?),
            r#move: Some(mv),
            promised: String::new(),
        })
        .await
        .map_err(status)?
        .into_inner();
    print_view(&view)
}

fn action(name: &str) -> CaseMove {
    CaseMove {
        action: name.into(),
        ..CaseMove::default()
    }
}

/// The figures as a table, one row per group, and what was checked.
pub(super) fn print_figures(by: &[String], figures: &FiguresResponse) {
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>7} {:>9} {:>8} {:>8}",
        by.join("/"),
        "received",
        "on time",
        "overdue",
        "closed",
        "reopened",
        "on-time%",
        "closed%"
    );
    for r in &figures.rows {
        println!(
            "{:<28} {:>9} {:>8} {:>8} {:>7} {:>9} {:>7.1}% {:>7.1}%",
            r.group.join("/"),
            r.received,
            r.on_time,
            r.overdue,
            r.closed,
            r.reopened,
            100.0 * r.on_time_rate,
            100.0 * r.closure_rate
        );
    }
    println!(
        "({} cases, {} signed moves checked against their units' registered keys)",
        figures.cases, figures.moves_checked
    );
}

/// Runs `tierlink case …`.
pub async fn run(command: CaseCommand) -> Result<(), CliError> {
    match command {
        CaseCommand::Raise {
            node,
            actor,
            channel,
            class,
            grid,
            subject,
            promised,
            records,
        } => {
            let mv = CaseMove {
                action: "raise".into(),
                channel,
                class,
                grid,
                subject,
                records: records
                    .iter()
                    .map(|r| record(r))
                    .collect::<Result<_, _>>()?,
                ..CaseMove::default()
            };
            let view = client(&node)
                .await?
                .act(ActRequest {
                    credential: Some(actor.credential()?),
                    r#move: Some(mv),
                    promised,
                })
                .await
                .map_err(status)?
                .into_inner();
            print_view(&view)
        }
        CaseCommand::Escalate(on) => {
            let mut mv = action("escalate");
            let dir = NodeDir::load(&on.node.node)?;
            mv.to = tierlink_core::cases::parent_of(dir.code())
                .map(|p| p.to_string())
                .unwrap_or_default();
            act(on, mv).await
        }
        CaseCommand::Approve(on) => act(on, action("approve")).await,
        CaseCommand::Dispatch {
            on,
            to,
            department,
            route,
        } => {
            let mut mv = action("dispatch");
            mv.to = to;
            mv.to_department = department;
            mv.route = route;
            act(on, mv).await
        }
        CaseCommand::Report(on) => act(on, action("report")).await,
        CaseCommand::Verify { on, passed } => {
            let mut mv = action("verify");
            mv.passed = passed;
            act(on, mv).await
        }
        CaseCommand::Close(on) => act(on, action("close")).await,
        CaseCommand::Reopen(on) => act(on, action("reopen")).await,
        CaseCommand::Reply { on, rating } => {
            let mut mv = action("reply");
            mv.rating = rating;
            act(on, mv).await
        }
        CaseCommand::List {
            node,
            mine,
            overdue,
            limit,
            at,
        } => {
            let list = client(&node)
                .await?
                .list(ListCasesRequest {
                    mine,
                    overdue,
                    limit,
                    at_micros: at.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            if list.cases.is_empty() {
                eprintln!("no cases");
            }
            for c in &list.cases {
                println!("{}", line(c));
            }
            Ok(())
        }
        CaseCommand::Show { node, case } => {
            let view = client(&node)
                .await?
                .show(ShowCaseRequest { case_id: case })
                .await
                .map_err(status)?
                .into_inner();
            print_view(&view)
        }
        CaseCommand::Figures {
            node,
            by,
            from,
            to,
            unit,
            at,
        } => {
            let figures = client(&node)
                .await?
                .figures(FiguresRequest {
                    from,
                    to,
                    unit,
                    by: by.clone(),
                    at_micros: at.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            print_figures(&by, &figures);
            Ok(())
        }
    }
}
