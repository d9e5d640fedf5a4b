//! The demo's cases and cross-check: a resident's case raised at the street goes up to the
//! district and the city, down to the district's urban-management bureau, and back to closure
//! and the resident's answer, every move signed; an immediate case left alone shows up overdue
//! by working days; the district cross-checks its household register against the street's
//! residents and sends the mismatches back as verification cases, which close once corrected;
//! the supervision figures, at the street and recomputed by the district from the signed moves.

use std::collections::BTreeMap;

use tierlink_client::NodeClient;
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{Action, PolicyCommand, Role};
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::run_progress::Event;
use tierlink_proto::v1::{
    ActRequest, CaseMove, CaseView, Credential, FiguresRequest, ListCasesRequest,
    RunCrossCheckRequest,
};
use tierlink_sandbox::crosscheck::{PURPOSE, grant};
use tierlink_sandbox::federation::LocalFederation;
use tierlink_sandbox::sample;

use crate::cli::CliError;

/// The household register the district's public-security bureau holds.
pub const REGISTER: &str = "101002001/000001";

/// One principal of one node, in one role.
struct Staff<'a> {
    client: &'a NodeClient,
    credential: Credential,
}

impl Staff<'_> {
    async fn act(
        &self,
        case: &str,
        mut mv: CaseMove,
        promised: &str,
    ) -> Result<CaseView, CliError> {
        mv.case_id = case.into();
        let view = self
            .client
            .cases()
            .await?
            .act(ActRequest {
                credential: Some(self.credential.clone()),
                r#move: Some(mv),
                promised: promised.into(),
            })
            .await
            .map_err(|s| CliError::Demo(format!("{}: {}", self.credential.principal, s.message())))?
            .into_inner();
        Ok(view)
    }
}

fn mv(action: &str) -> CaseMove {
    CaseMove {
        action: action.into(),
        ..CaseMove::default()
    }
}

fn to(action: &str, unit: &NodeCode, department: &str, route: u32) -> CaseMove {
    CaseMove {
        to: unit.to_string(),
        to_department: department.into(),
        route,
        ..mv(action)
    }
}

fn noted(action: &str, note: &str) -> CaseMove {
    CaseMove {
        note: note.into(),
        ..mv(action)
    }
}

/// Waits until `client`'s node holds `moves` moves of `case`.
async fn held(client: &NodeClient, case: &str, moves: u64) -> Result<CaseView, CliError> {
    for _ in 0..300 {
        let shown = client
            .cases()
            .await?
            .show(tierlink_proto::v1::ShowCaseRequest {
                case_id: case.into(),
            })
            .await;
        if let Ok(view) = shown {
            let view = view.into_inner();
            if view.summary.as_ref().is_some_and(|s| s.moves >= moves) {
                return Ok(view);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(CliError::Demo(format!(
        "{} did not receive move {moves} of case {case}",
        client.code()
    )))
}

fn id(view: &CaseView) -> String {
    view.summary
        .as_ref()
        .map(|s| s.case_id.clone())
        .unwrap_or_default()
}

/// Runs the cases and the cross-check on the demo federation.
pub async fn show(
    federation: &LocalFederation,
    (city, district, street): (&NodeClient, &NodeClient, &NodeClient),
    residents: &[Vec<String>],
    register_rows: &sample::Register,
) -> Result<(), CliError> {
    let (city_code, district_code, street_code) = (
        city.code().clone(),
        district.code().clone(),
        street.code().clone(),
    );
    let urban_bureau = "城市管理局 Urban Management Bureau";
    let roles = [
        (&street_code, "hall", "综合服务中心 Service Hall"),
        (&street_code, "inspector", "网格 Grid Office"),
        (
            &district_code,
            "supervision",
            "监督指挥中心 Supervision Centre",
        ),
        (&district_code, "urban", urban_bureau),
        (
            &district_code,
            "register",
            "公安分局 Public Security Bureau",
        ),
        (
            &city_code,
            "supervision",
            "12345 市民服务热线 City Service Centre",
        ),
    ];
    for (unit, name, department) in roles {
        let role = Role {
            unit: unit.clone(),
            name: name.into(),
            department: department.into(),
            post: "officer".into(),
        };
        federation
            .issue(
                unit,
                vec![DirectoryCommand::Policy(PolicyCommand::DefineRole(role))],
            )
            .await?;
    }
    let staff = |client, code: &NodeCode, name: &str, role: &str| {
        let role = format!("{code}/{role}");
        let token = federation.add_principal(code, name, &[role.as_str()])?;
        Ok::<_, CliError>(Staff {
            client,
            credential: Credential {
                principal: name.into(),
                token,
                role,
                purpose: PURPOSE.into(),
                grant: String::new(),
            },
        })
    };
    let hall = staff(street, &street_code, "chen", "hall")?;
    let inspector = staff(street, &street_code, "liu", "inspector")?;
    let supervision = staff(district, &district_code, "he", "supervision")?;
    let urban = staff(district, &district_code, "guo", "urban")?;
    let register = staff(district, &district_code, "tang", "register")?;
    let hotline = staff(city, &city_code, "ma", "supervision")?;

    // A resident calls the hotline about a street light out across a district boundary road:
    // the street cannot fix it alone.
    println!(
        "\ncases: a resident's request raised at the street, escalated twice, dispatched down, verified, closed, answered"
    );
    let raised = hall
        .act(
            "",
            CaseMove {
                channel: "2".into(),
                class: "4".into(),
                grid: format!("{street_code}00101"),
                subject: "夷陵大道路灯不亮 street lights out on Yiling Avenue".into(),
                ..mv("raise")
            },
            "",
        )
        .await?;
    let case = id(&raised);
    hall.act(&case, to("escalate", &district_code, "", 0), "")
        .await?;
    held(district, &case, 2).await?;
    supervision.act(&case, mv("approve"), "").await?;
    supervision
        .act(&case, to("escalate", &city_code, "", 0), "")
        .await?;
    held(city, &case, 4).await?;
    hotline.act(&case, mv("approve"), "").await?;
    hotline
        .act(&case, to("dispatch", &district_code, urban_bureau, 2), "")
        .await?;
    held(district, &case, 6).await?;
    urban
        .act(
            &case,
            noted("report", "更换灯具12盏 twelve lamps replaced"),
            "",
        )
        .await?;
    held(city, &case, 7).await?;
    hotline
        .act(
            &case,
            CaseMove {
                passed: true,
                ..noted("verify", "回访确认 checked with the resident")
            },
            "",
        )
        .await?;
    hotline.act(&case, mv("close"), "").await?;
    held(street, &case, 9).await?;
    hall.act(
        &case,
        CaseMove {
            rating: 1,
            ..noted("reply", "已电话告知 told by telephone")
        },
        "",
    )
    .await?;
    held(city, &case, 10).await?;
    println!("$ tierlink case show --node <city> {case}");
    super::super::case::print_view(&held(city, &case, 10).await?)?;

    // An immediate case nobody acts on, and a promised one.
    let manhole = inspector
        .act(
            "",
            CaseMove {
                channel: "4".into(),
                class: "1".into(),
                grid: format!("{street_code}00102"),
                subject: "井盖缺失 a manhole cover is missing".into(),
                ..mv("raise")
            },
            "",
        )
        .await?;
    let promised_day = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    hall.act(
        "",
        CaseMove {
            channel: "1".into(),
            class: "2".into(),
            subject: "低保复核材料 allowance review papers".into(),
            ..mv("raise")
        },
        &promised_day,
    )
    .await?;
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    println!(
        "\n$ tierlink case list --node <street> --overdue --at {}   (as the cases will stand in a week if nobody acts)",
        week.format("%Y-%m-%d")
    );
    let overdue = street
        .cases()
        .await?
        .list(ListCasesRequest {
            overdue: true,
            at_micros: week.timestamp_micros(),
            ..ListCasesRequest::default()
        })
        .await
        .map_err(|s| CliError::Demo(s.message().to_owned()))?
        .into_inner();
    for c in &overdue.cases {
        println!("{}", super::super::case::line(c));
    }
    if !overdue.cases.iter().any(|c| c.case_id == id(&manhole)) {
        return Err(CliError::Demo(
            "the untouched immediate case is not overdue".into(),
        ));
    }

    // The cross-check: the district's household register against the street's residents. The
    // checker is granted the join and compared items of both (and what the ID number gives
    // away anyway: sex and birth date).
    let compared = ["id_number", "name", "household_number"];
    let granted = |extra: &[&str]| -> BTreeMap<String, Action> {
        compared
            .iter()
            .chain(["sex", "birth_date"].iter())
            .chain(extra)
            .map(|i| (i.to_string(), Action::Clear))
            .collect()
    };
    let role = register.credential.role.clone();
    grant(
        federation,
        (&district_code, &role),
        (&street_code, sample::RESIDENTS_CATALOG),
        "register-check-street",
        granted(&["person_id"]),
        None,
    )
    .await?;
    grant(
        federation,
        (&district_code, &role),
        (&district_code, REGISTER),
        "register-check-own",
        granted(&[]),
        None,
    )
    .await?;
    let run_request = RunCrossCheckRequest {
        catalog: REGISTER.into(),
        against_node: street_code.to_string(),
        against_catalog: sample::RESIDENTS_CATALOG.into(),
        join: "id_number".into(),
        compared: compared[1..].iter().map(|s| s.to_string()).collect(),
        credential: Some(register.credential.clone()),
        holder: true,
        send_back: true,
        department: "网格 Grid Office".into(),
    };
    let run = |request: RunCrossCheckRequest| async move {
        let mut events = district
            .crosscheck()
            .await?
            .run(request)
            .await
            .map_err(|s| CliError::Demo(s.message().to_owned()))?
            .into_inner();
        while let Some(event) = events
            .message()
            .await
            .map_err(|s| CliError::Demo(s.message().to_owned()))?
        {
            match event.event {
                Some(Event::Step(step)) if step.starts_with("verification") => {
                    println!("  {step}")
                }
                Some(Event::Run(run)) => return Ok(run),
                _ => {}
            }
        }
        Err(CliError::Demo(
            "the cross-check ended without its result".into(),
        ))
    };
    println!(
        "\n$ tierlink crosscheck run --node <district> --catalog {REGISTER} --against {street_code}:{} --on id_number --compare name,household_number --holder --send-back",
        sample::RESIDENTS_CATALOG
    );
    let first = run(run_request.clone()).await?;
    let counts = first.counts.unwrap_or_default();
    println!(
        "  run {}: {} register entries against {} residents: {} match, {} differ, {} only in the register, {} only at the street; nothing of the unmatched records crossed",
        first.run,
        counts.here,
        counts.there,
        counts.matched,
        counts.differing,
        counts.only_here,
        counts.only_there
    );

    // The street's inspector checks each on site: names are corrected through the normal write
    // path (the register's spelling is the right one here); the rest are reported as checked.
    let expected = (counts.differing + counts.only_here + counts.only_there) as usize;
    let mut tasks = Vec::new();
    for _ in 0..300 {
        tasks = street
            .cases()
            .await?
            .list(ListCasesRequest {
                mine: true,
                ..ListCasesRequest::default()
            })
            .await
            .map_err(|s| CliError::Demo(s.message().to_owned()))?
            .into_inner()
            .cases;
        tasks.retain(|c| c.class == "6");
        if tasks.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!(
        "  the street holds {} verification cases, due in {} working days",
        tasks.len(),
        tasks.first().map_or(0, |t| t.working_days_left)
    );
    let corrections: Vec<&String> = register_rows
        .mismatches
        .iter()
        .filter_map(|m| match m {
            sample::Mismatch::Name(id) => Some(id),
            _ => None,
        })
        .collect();
    let name = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "name")
        .ok_or_else(|| CliError::Demo("no name column".into()))?;
    let id_number = sample::RESIDENT_COLUMNS
        .iter()
        .position(|c| *c == "id_number")
        .ok_or_else(|| CliError::Demo("no id_number column".into()))?;
    let corrected: Vec<Vec<String>> = residents
        .iter()
        .filter(|r| corrections.contains(&&r[id_number]))
        .map(|r| {
            let mut row = r.clone();
            if let Some(registered) = register_rows.rows.iter().find(|g| g[0] == r[id_number]) {
                row[name] = registered[1].clone();
            }
            row
        })
        .collect();
    street
        .put_records(
            sample::RESIDENTS_CATALOG,
            sample::RESIDENT_COLUMNS
                .iter()
                .map(|c| c.to_string())
                .collect(),
            corrected,
        )
        .await?;
    for task in &tasks {
        inspector
            .act(
                &task.case_id,
                noted("report", "已上门核实 checked on site"),
                "",
            )
            .await?;
    }
    for task in &tasks {
        held(district, &task.case_id, 3).await?;
    }
    let second = run(run_request).await?;
    let counts = second.counts.unwrap_or_default();
    println!(
        "  run {} after the corrections: {} differ, {} only in the register, {} only at the street",
        second.run, counts.differing, counts.only_here, counts.only_there
    );

    // The figures: at the street, and recomputed by the district from the moves it received.
    let figures = FiguresRequest {
        unit: street_code.to_string(),
        by: vec!["unit".into(), "class".into()],
        ..FiguresRequest::default()
    };
    for (who, client) in [("street", street), ("district", district)] {
        println!("\n$ tierlink case figures --node <{who}> --unit {street_code} --by unit,class");
        let answer = client
            .cases()
            .await?
            .figures(figures.clone())
            .await
            .map_err(|s| CliError::Demo(s.message().to_owned()))?
            .into_inner();
        super::super::case::print_figures(&["unit".into(), "class".into()], &answer);
    }
    Ok(())
}
