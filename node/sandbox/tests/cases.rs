//! Cases on real nodes: a resident's case raised at the street goes up to the district and the
//! city, down to the district's urban-management bureau, back as a result the city verifies and
//! closes, and is answered at the street; every party ends with the same chain, each move
//! audited where it was made and where it arrived. Moves by the wrong unit, in the wrong role
//! or on a closed case are refused; forged and altered chains are refused; a party that was
//! down receives the chain when it is back.

mod util;

use std::time::Duration;

use prost::Message;
use tierlink_core::cases::chain;
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{PolicyCommand, Role};
use tierlink_node::directory::DirectoryCommand;
use tierlink_proto::v1::cases_client::CasesClient;
use tierlink_proto::v1::{
    ActRequest, CaseMove, CaseView, Credential, FiguresRequest, ListCasesRequest, ShowCaseRequest,
    SignedMove,
};
use tonic::transport::Channel;
use util::*;

/// A principal of one node, in one role, with its token.
#[derive(Clone)]
struct Staff {
    node: usize,
    name: String,
    role: String,
    token: String,
}

struct Cast {
    /// wang, the street's service hall.
    hall: Staff,
    /// chen, the street's urban-management office.
    street_urban: Staff,
    /// li, the district's supervision centre.
    district: Staff,
    /// zhou, the district's urban-management bureau.
    district_urban: Staff,
    /// zhao, the city's supervision centre.
    city: Staff,
}

const URBAN_BUREAU: &str = "城市管理局 Urban Management Bureau";

/// Roles at each tier, defined by each unit, and one principal per role.
async fn cast(f: &Fixture) -> Cast {
    let code = |n: usize| f.clients[n].code().clone();
    let roles = [
        (STREET, "hall", "综合服务中心 Service Hall"),
        (STREET, "urban", "城管科 Urban Management Office"),
        (DISTRICT, "supervision", "监督指挥中心 Supervision Centre"),
        (DISTRICT, "urban", URBAN_BUREAU),
        (CITY, "supervision", "市民服务热线 City Service Centre"),
    ];
    for (n, name, department) in roles {
        let role = Role {
            unit: code(n),
            name: name.into(),
            department: department.into(),
            post: "officer".into(),
        };
        f.federation
            .issue(
                &code(n),
                vec![DirectoryCommand::Policy(PolicyCommand::DefineRole(role))],
            )
            .await
            .unwrap();
    }
    let staff = |n: usize, name: &str, role: &str| {
        let role = format!("{}/{role}", code(n));
        let token = f
            .federation
            .add_principal(&code(n), name, &[role.as_str()])
            .unwrap();
        Staff {
            node: n,
            name: name.into(),
            role,
            token,
        }
    };
    Cast {
        hall: staff(STREET, "wang", "hall"),
        street_urban: staff(STREET, "chen", "urban"),
        district: staff(DISTRICT, "li", "supervision"),
        district_urban: staff(DISTRICT, "zhou", "urban"),
        city: staff(CITY, "zhao", "supervision"),
    }
}

async fn cases(f: &Fixture, n: usize) -> CasesClient<Channel> {
    f.clients[n].cases().await.unwrap()
}

/// `who` makes `mv` on case `case` (empty: raises it).
async fn act(
    f: &Fixture,
    who: &Staff,
    case: &str,
    mut mv: CaseMove,
    promised: &str,
) -> Result<CaseView, tonic::Status> {
    mv.case_id = case.into();
    cases(f, who.node)
        .await
        .act(ActRequest {
            credential: Some(Credential {
                principal: who.name.clone(),
                token: who.token.clone(),
                role: who.role.clone(),
                ..Credential::default()
            }),
            r#move: Some(mv),
            promised: promised.into(),
        })
        .await
        .map(|r| r.into_inner())
}

fn mv(action: &str) -> CaseMove {
    CaseMove {
        action: action.into(),
        ..CaseMove::default()
    }
}

fn to(action: &str, unit: &NodeCode) -> CaseMove {
    CaseMove {
        to: unit.to_string(),
        ..mv(action)
    }
}

fn raise(class: &str) -> CaseMove {
    CaseMove {
        channel: "2".into(),
        class: class.into(),
        grid: "42050200100101".into(),
        subject: "夜间施工噪音 construction noise at night".into(),
        ..mv("raise")
    }
}

fn dispatch(unit: &NodeCode, department: &str, route: u32) -> CaseMove {
    CaseMove {
        to_department: department.into(),
        route,
        ..to("dispatch", unit)
    }
}

fn noted(action: &str, note: &str) -> CaseMove {
    CaseMove {
        note: note.into(),
        ..mv(action)
    }
}

/// Every entry of node `n`'s audit.
fn audit_entries(f: &Fixture, n: usize) -> Vec<tierlink_store::audit::AuditEntry> {
    f.federation.nodes[n]
        .audit()
        .unwrap()
        .query(&tierlink_store::audit::AuditFilter::default(), 10_000)
        .unwrap()
}

async fn show(f: &Fixture, n: usize, case: &str) -> Option<CaseView> {
    cases(f, n)
        .await
        .show(ShowCaseRequest {
            case_id: case.into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Waits until node `n` holds `moves` moves of `case`; returns its view.
async fn held(f: &Fixture, n: usize, case: &str, moves: u64) -> CaseView {
    for _ in 0..300 {
        if let Some(view) = show(f, n, case).await
            && view.summary.as_ref().unwrap().moves >= moves
        {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {n} did not receive move {moves} of {case}");
}

fn status(view: &CaseView) -> &str {
    &view.summary.as_ref().unwrap().status
}

fn refused(result: Result<CaseView, tonic::Status>, code: tonic::Code, says: &str) {
    let e = result.expect_err("the move is refused");
    assert_eq!(e.code(), code, "{}", e.message());
    assert!(e.message().contains(says), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_goes_up_three_tiers_down_to_a_bureau_and_back_to_closure() {
    let f = federation(0).await;
    let cast = cast(&f).await;
    let (city, district, street) = (
        f.clients[CITY].code().clone(),
        f.clients[DISTRICT].code().clone(),
        f.clients[STREET].code().clone(),
    );

    let raised = act(&f, &cast.hall, "", raise("4"), "").await.unwrap();
    let case = raised.summary.as_ref().unwrap().case_id.clone();
    assert!(case.starts_with("420502001-"), "{case}");
    assert_eq!(status(&raised), "open");
    // The district supervises what its streets raise: it keeps the chain from the start.
    held(&f, DISTRICT, &case, 1).await;

    act(&f, &cast.hall, &case, to("escalate", &district), "")
        .await
        .unwrap();
    held(&f, DISTRICT, &case, 2).await;
    let approved = act(&f, &cast.district, &case, mv("approve"), "")
        .await
        .unwrap();
    let summary = approved.summary.as_ref().unwrap();
    assert_eq!(summary.next, district.as_str());
    assert!(
        summary.due_micros > 0,
        "an approved escalation runs to a deadline"
    );
    assert!((0..=3).contains(&summary.working_days_left), "{summary:?}");

    act(&f, &cast.district, &case, to("escalate", &city), "")
        .await
        .unwrap();
    held(&f, CITY, &case, 4).await;
    act(&f, &cast.city, &case, mv("approve"), "").await.unwrap();
    let dispatched = act(
        &f,
        &cast.city,
        &case,
        dispatch(&district, URBAN_BUREAU, 2),
        "",
    )
    .await
    .unwrap();
    assert_eq!(status(&dispatched), "dispatched");
    held(&f, DISTRICT, &case, 6).await;
    act(
        &f,
        &cast.district_urban,
        &case,
        noted("report", "工地已停工整改 the site stopped night work"),
        "",
    )
    .await
    .unwrap();
    held(&f, CITY, &case, 7).await;
    let verified = act(
        &f,
        &cast.city,
        &case,
        CaseMove {
            passed: true,
            ..mv("verify")
        },
        "",
    )
    .await
    .unwrap();
    assert_eq!(status(&verified), "verified");
    act(&f, &cast.city, &case, mv("close"), "").await.unwrap();
    held(&f, STREET, &case, 9).await;
    let replied = act(
        &f,
        &cast.hall,
        &case,
        CaseMove {
            rating: 1,
            ..noted("reply", "已电话回复 answered by telephone")
        },
        "",
    )
    .await
    .unwrap();
    assert_eq!(status(&replied), "replied");

    // Every party ends with the same chain, byte for byte, and it checks out.
    let views = [
        held(&f, CITY, &case, 10).await,
        held(&f, DISTRICT, &case, 10).await,
        held(&f, STREET, &case, 10).await,
    ];
    for view in &views {
        assert_eq!(view.moves, views[0].moves);
        assert!(view.undelivered.is_empty(), "{:?}", view.undelivered);
    }
    let members = f.federation.replica(&street).unwrap().clone();
    let checked = chain::check(members.as_ref(), &views[0].moves).unwrap();
    assert_eq!(checked.moves, 10);
    assert_eq!(checked.result, "工地已停工整改 the site stopped night work");
    assert_eq!(checked.rating, Some(1));

    // Each move is audited where it was made and where it arrived.
    for (n, made) in [(CITY, 4), (DISTRICT, 3), (STREET, 3)] {
        let entries = audit_entries(&f, n);
        let cases: Vec<_> = entries.iter().filter(|e| e.kind == "case").collect();
        let mine = cases
            .iter()
            .filter(|e| e.producer == f.clients[n].code().as_str())
            .count();
        assert_eq!(mine, made, "node {n}: {cases:?}");
        assert!(
            cases
                .iter()
                .any(|e| e.producer != f.clients[n].code().as_str()),
            "node {n} audits the moves it received"
        );
        assert!(cases.iter().all(|e| e.keys == vec![case.clone()]));
    }

    // The figures, computed from the chains each keeps, agree between the street and the
    // district that supervises it.
    let request = FiguresRequest {
        unit: street.to_string(),
        by: vec!["unit".into(), "class".into()],
        ..FiguresRequest::default()
    };
    let mut figures = Vec::new();
    for n in [STREET, DISTRICT] {
        let answer = cases(&f, n).await.figures(request.clone()).await.unwrap();
        figures.push(answer.into_inner());
    }
    let (at_street, at_district) = (&figures[0], &figures[1]);
    assert_eq!(at_street.rows, at_district.rows);
    let row = &at_street.rows[0];
    assert_eq!(row.group, vec![street.to_string(), "4".to_owned()]);
    assert_eq!((row.received, row.on_time, row.closed), (1, 1, 1));
    assert_eq!(at_street.moves_checked, 10);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn moves_by_the_wrong_unit_role_or_state_are_refused() {
    let f = federation(0).await;
    let cast = cast(&f).await;
    let (city, district, street) = (
        f.clients[CITY].code().clone(),
        f.clients[DISTRICT].code().clone(),
        f.clients[STREET].code().clone(),
    );
    use tonic::Code::{FailedPrecondition, InvalidArgument, Unauthenticated};

    // Wrong tier: a street escalates to its parent, not past it.
    let case = act(&f, &cast.hall, "", raise("1"), "").await.unwrap();
    let case = case.summary.unwrap().case_id;
    refused(
        act(&f, &cast.hall, &case, to("escalate", &city), "").await,
        FailedPrecondition,
        "escalates to its parent 420502",
    );
    // A street dispatches to itself, below or beside it: not up to the district.
    refused(
        act(
            &f,
            &cast.hall,
            &case,
            dispatch(&district, URBAN_BUREAU, 2),
            "",
        )
        .await,
        FailedPrecondition,
        "none of these",
    );
    // A department the directory does not know at that unit.
    refused(
        act(
            &f,
            &cast.hall,
            &case,
            dispatch(&street, "no such office", 1),
            "",
        )
        .await,
        InvalidArgument,
        "departments are",
    );
    // The district cannot act on a case the street holds.
    refused(
        act(&f, &cast.district, &case, dispatch(&street, "", 1), "").await,
        FailedPrecondition,
        "420502001 acts next, not 420502",
    );

    // The district dispatches a case of its own to the street's urban office.
    let district_case = act(&f, &cast.district, "", raise("5"), "").await.unwrap();
    let district_case = district_case.summary.unwrap().case_id;
    act(
        &f,
        &cast.district,
        &district_case,
        dispatch(&street, "城管科 Urban Management Office", 2),
        "",
    )
    .await
    .unwrap();
    held(&f, STREET, &district_case, 2).await;
    // Wrong role: the street's service hall is not the department it was dispatched to.
    refused(
        act(&f, &cast.hall, &district_case, noted("report", "done"), "").await,
        FailedPrecondition,
        "a principal of that department reports on it",
    );
    // A street cannot close a case the district dispatched to it.
    refused(
        act(&f, &cast.street_urban, &district_case, mv("close"), "").await,
        FailedPrecondition,
        "may report it, not close it",
    );
    act(
        &f,
        &cast.street_urban,
        &district_case,
        noted("report", "路面已修补 road patched"),
        "",
    )
    .await
    .unwrap();
    held(&f, DISTRICT, &district_case, 3).await;
    // Only the verifying unit closes, and only once verified.
    refused(
        act(&f, &cast.district, &district_case, mv("close"), "").await,
        FailedPrecondition,
        "may verify it, not close it",
    );
    // A failed verification sends it back to the handler, saying why.
    refused(
        act(&f, &cast.district, &district_case, mv("verify"), "").await,
        InvalidArgument,
        "says why",
    );
    let back = act(
        &f,
        &cast.district,
        &district_case,
        noted("verify", "裂缝仍在 the crack is still there"),
        "",
    )
    .await
    .unwrap();
    assert_eq!(status(&back), "dispatched");
    held(&f, STREET, &district_case, 4).await;
    act(
        &f,
        &cast.street_urban,
        &district_case,
        noted("report", "已重新修补 patched again"),
        "",
    )
    .await
    .unwrap();
    held(&f, DISTRICT, &district_case, 5).await;
    let pass = CaseMove {
        passed: true,
        ..mv("verify")
    };
    act(&f, &cast.district, &district_case, pass, "")
        .await
        .unwrap();
    act(&f, &cast.district, &district_case, mv("close"), "")
        .await
        .unwrap();
    // A closed case takes no more dispatches; its raising unit may reopen it, saying why.
    refused(
        act(
            &f,
            &cast.district,
            &district_case,
            dispatch(&street, "", 1),
            "",
        )
        .await,
        FailedPrecondition,
        "may reply or reopen it",
    );
    let reopened = act(
        &f,
        &cast.district,
        &district_case,
        noted("reopen", "居民再次投诉 the resident complained again"),
        "",
    )
    .await
    .unwrap();
    let summary = reopened.summary.unwrap();
    assert_eq!((summary.status.as_str(), summary.reopened), ("open", 1));

    // A promised case needs its date; a wrong token is refused before anything is made.
    refused(
        act(&f, &cast.hall, "", raise("2"), "").await,
        InvalidArgument,
        "YYYY-MM-DD",
    );
    let wrong = Staff {
        token: cast.street_urban.token.clone(),
        ..cast.hall.clone()
    };
    refused(
        act(&f, &wrong, "", raise("1"), "").await,
        Unauthenticated,
        "wang",
    );
    // Nothing refused was kept: the street holds its two cases, with the moves made.
    let list = cases(&f, STREET)
        .await
        .list(ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.cases.len(), 2);
    f.federation.stop().await.unwrap();
}

/// Delivers `chain` of `case` to node `to` as node `from`, sealed to `to`.
async fn deliver(
    f: &Fixture,
    from: usize,
    to: usize,
    case: &str,
    chain_: Vec<SignedMove>,
) -> Result<u64, tonic::Status> {
    let (from_code, to_code) = (f.clients[from].code(), f.clients[to].code());
    let standing = f
        .federation
        .replica(from_code)
        .unwrap()
        .view(|s| s.members[to_code].clone());
    let recipient = tierlink_core::signed::Recipient {
        node: to_code.clone(),
        key: tierlink_core::identity::RecipientKey::from_hex(&standing.encryption_key).unwrap(),
    };
    let delivery = chain::seal_delivery(from_code, &recipient, case, chain_);
    let node = f.federation.nodes[from].dir.clone();
    let channel = tierlink_client::channel(
        &node.credentials().unwrap(),
        &f.federation.nodes[to].dir.config.server.endpoint,
    )
    .await
    .unwrap();
    tierlink_client::cases_client(channel)
        .deliver(delivery)
        .await
        .map(|r| r.into_inner().added)
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_altered_chains_are_refused_and_audited() {
    let f = federation(0).await;
    let cast = cast(&f).await;
    let district = f.clients[DISTRICT].code().clone();
    let case = act(&f, &cast.hall, "", raise("1"), "").await.unwrap();
    let case = case.summary.unwrap().case_id;
    act(&f, &cast.hall, &case, to("escalate", &district), "")
        .await
        .unwrap();
    let genuine = held(&f, DISTRICT, &case, 2).await.moves;

    // The street claims the district approved: a move naming the district, signed by the street.
    let mut approve: CaseMove = chain::read(&genuine[1]).unwrap();
    approve.sequence = 2;
    approve.previous = chain::link(&genuine[1]);
    approve.node = district.to_string();
    approve.action = "approve".into();
    approve.role = String::new();
    let street_key = f.federation.nodes[STREET].dir.signing_key().unwrap();
    let forged = chain::sign(&street_key, &approve);
    let mut chain_ = genuine.clone();
    chain_.push(forged);
    let e = deliver(&f, STREET, CITY, &case, chain_).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    assert!(
        e.message()
            .contains("not signed by 420502's registered key"),
        "{}",
        e.message()
    );

    // A move altered after signing.
    let mut altered = genuine.clone();
    let mut raised = chain::read(&altered[0]).unwrap();
    raised.subject = "altered".into();
    altered[0].r#move = raised.encode_to_vec();
    let e = deliver(&f, STREET, DISTRICT, &case, altered)
        .await
        .unwrap_err();
    assert!(e.message().contains("not signed by"), "{}", e.message());

    // A chain that drops a move and links past it.
    let e = deliver(&f, STREET, DISTRICT, &case, vec![genuine[1].clone()])
        .await
        .unwrap_err();
    assert!(e.message().contains("does not link"), "{}", e.message());

    // A street delivering a chain that forks from the one the district keeps.
    let mut fork = chain::read(&genuine[1]).unwrap();
    fork.note = "another escalation".into();
    let street_fork = vec![genuine[0].clone(), chain::sign(&street_key, &fork)];
    let e = deliver(&f, STREET, DISTRICT, &case, street_fork)
        .await
        .unwrap_err();
    assert!(
        e.message().contains("differs from the one kept here"),
        "{}",
        e.message()
    );

    // The genuine chain again changes nothing; the refusals are in the district's audit.
    assert_eq!(
        deliver(&f, STREET, DISTRICT, &case, genuine).await.unwrap(),
        0
    );
    let refusals = audit_entries(&f, DISTRICT)
        .into_iter()
        .filter(|e| e.kind == "case" && !e.reason.is_empty())
        .count();
    assert_eq!(refusals, 3);
    let kept = show(&f, DISTRICT, &case).await.unwrap();
    assert_eq!(kept.summary.unwrap().moves, 2);
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_party_that_was_down_receives_the_chain_when_it_is_back() {
    let mut f = federation(0).await;
    let cast = cast(&f).await;
    let district = f.clients[DISTRICT].code().clone();
    let case = act(&f, &cast.hall, "", raise("1"), "").await.unwrap();
    let case = case.summary.unwrap().case_id;
    held(&f, DISTRICT, &case, 1).await;

    f.federation.stop_node(DISTRICT).await.unwrap();
    let escalated = act(&f, &cast.hall, &case, to("escalate", &district), "")
        .await
        .unwrap();
    assert_eq!(status(&escalated), "awaiting_approval");
    // The street keeps the move and says whom it has not reached yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = show(&f, STREET, &case).await.unwrap();
    assert_eq!(waiting.undelivered, vec![district.to_string()]);

    f.federation.start_node(DISTRICT).await.unwrap();
    let arrived = held(&f, DISTRICT, &case, 2).await;
    assert_eq!(status(&arrived), "awaiting_approval");
    act(&f, &cast.district, &case, mv("approve"), "")
        .await
        .unwrap();
    for _ in 0..200 {
        if show(&f, STREET, &case)
            .await
            .unwrap()
            .undelivered
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        show(&f, STREET, &case)
            .await
            .unwrap()
            .undelivered
            .is_empty()
    );
    held(&f, STREET, &case, 3).await;
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn overdue_cases_show_up_by_working_days() {
    let f = federation(0).await;
    let cast = cast(&f).await;
    let now = chrono::Utc::now();
    let immediate = act(&f, &cast.hall, "", raise("1"), "").await.unwrap();
    let immediate = immediate.summary.unwrap();
    assert!(immediate.due_micros > now.timestamp_micros());
    assert!(!immediate.overdue);
    let in_a_month = (now + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let promised = act(&f, &cast.hall, "", raise("2"), &in_a_month)
        .await
        .unwrap();
    let promised = promised.summary.unwrap();
    assert!(promised.working_days_left >= 15, "{promised:?}");

    // A fortnight on, the immediate case is overdue and the promised one is not.
    let later = (now + chrono::Duration::days(14)).timestamp_micros();
    let overdue = cases(&f, STREET)
        .await
        .list(ListCasesRequest {
            overdue: true,
            at_micros: later,
            ..ListCasesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = overdue.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, [immediate.case_id.as_str()]);
    assert!(overdue.cases[0].working_days_left < 0);
    let figures = cases(&f, STREET)
        .await
        .figures(FiguresRequest {
            at_micros: later,
            ..FiguresRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let row = &figures.rows[0];
    assert_eq!((row.received, row.on_time, row.overdue), (2, 0, 1));
    f.federation.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_centre_system_raises_and_moves_cases_over_the_gateway() {
    use serde_json::{Value, json};
    use tierlink_core::identity::tokens::Scope;
    use util::http::{FetchJson, Gateway, token, writer};
    let f = federation(0).await;
    let cast = cast(&f).await;
    let street = Gateway::of(&f, STREET);
    let system = writer(&f, STREET, "wang", &["201001001/000001"]);
    let read_only = token(&f, STREET, "wang", Scope::Read);

    let new_case = json!({
        "channel": "2", "class": "1", "grid": "42050200100101",
        "subject": "楼道灯坏了 stairwell light broken",
    });
    let refused = street
        .post("/v1/cases")
        .bearer_auth(&read_only)
        .json(&new_case)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let raised: Value = street
        .post("/v1/cases")
        .bearer_auth(&system)
        .json(&new_case)
        .fetch_json()
        .await;
    let case = raised["case"]["case_id"].as_str().unwrap().to_owned();
    assert_eq!(raised["case"]["status"], "open");
    assert!(raised["case"]["due"].is_string());

    // A move the rules refuse is a problem document naming why.
    let closing = street
        .post(&format!("/v1/cases/{case}/moves"))
        .bearer_auth(&system)
        .json(&json!({"action": "close"}))
        .send()
        .await
        .unwrap();
    let (status, problem) = util::http::problem(closing).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("may escalate or dispatch it")
    );

    let escalated: Value = street
        .post(&format!("/v1/cases/{case}/moves"))
        .bearer_auth(&system)
        .json(&json!({"action": "escalate", "note": "跨街道 spans two streets"}))
        .fetch_json()
        .await;
    assert_eq!(escalated["case"]["status"], "awaiting_approval");
    assert_eq!(escalated["case"]["next"], "420502");

    // Each move comes with its signed bytes: checked here with the street's registered key.
    let members = f
        .federation
        .replica(f.clients[STREET].code())
        .unwrap()
        .clone();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let moves: Vec<SignedMove> = escalated["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| SignedMove {
            r#move: b64(&m["signed_move"]),
            signature: b64(&m["signature"]),
        })
        .collect();
    assert_eq!(chain::check(members.as_ref(), &moves).unwrap().moves, 2);

    // The district approves; both list it, and the figures agree.
    held(&f, DISTRICT, &case, 2).await;
    act(&f, &cast.district, &case, mv("approve"), "")
        .await
        .unwrap();
    let listed: Vec<Value> = Gateway::of(&f, DISTRICT)
        .get("/v1/cases?mine=true")
        .bearer_auth(token(&f, DISTRICT, "li", Scope::Read))
        .fetch_json()
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["case_id"], case.as_str());
    let figures: Vec<Value> = street
        .get("/v1/cases/figures?by=unit,channel")
        .bearer_auth(&read_only)
        .fetch_json()
        .await;
    assert_eq!(figures[0]["group"], json!(["420502001", "2"]));
    assert_eq!(figures[0]["received"], 1);
    f.federation.stop().await.unwrap();
}
