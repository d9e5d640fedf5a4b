//! Cross-checks on real nodes: the street (the collector) checks its residents against a copy
//! the district holds and has changed, for the street's checker. Matched, differing and missing
//! records are counted right on both sides; what only one side holds crosses to the other as
//! nothing but a count and a reference (the other node's store and both audit logs hold none of
//! its keys or ID numbers); a grant that withholds a compared item refuses the run naming it; a
//! row scope limits the records; a forged or replayed requester is refused; a node stopped
//! mid-run ends the run with a clear error, and a rerun succeeds.

mod util;

use std::collections::HashSet;

use tierlink_core::crosscheck::MismatchKind;
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{Action, RowScope};
use tierlink_core::signed::requester;
use tierlink_proto::v1::compare_request::Message as Request_;
use tierlink_proto::v1::compare_response::Message as Response_;
use tierlink_proto::v1::cross_check_client::CrossCheckClient;
use tierlink_proto::v1::run_progress::Event;
use tierlink_proto::v1::{
    CompareOpen, CompareRequest, CrossCheckRun, Requester, RunCrossCheckRequest, RunProgress,
    ShowCrossCheckRequest,
};
use tierlink_sandbox::crosscheck::{
    PURPOSE, column, define_role, grant_residents, residents_and_copy,
};
use tierlink_sandbox::sample;
use tierlink_store::audit::{AuditEntry, AuditFilter, Side};
use util::*;

const ROLE: &str = "420502001/checker";
const COMPARED: [&str; 2] = ["name", "current_address"];

fn rows(count: usize) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    residents_and_copy("420502001", count)
}

/// A federation whose street holds `count` residents and whose district holds its changed copy
/// ([`residents_and_copy`]), both published; the street's checker is granted both (the district's
/// grant with `district_items` overriding some items, and rows within `rows_scope`). Returns the
/// checker's token.
async fn checked(
    count: usize,
    district_items: &[(&str, Action)],
    rows_scope: Option<RowScope>,
) -> (Fixture, String) {
    let f = federation(0).await;
    let (street_rows, district_rows) = rows(count);
    let columns = columns(sample::RESIDENT_COLUMNS);
    f.clients[STREET]
        .put_records(RESIDENTS, columns.clone(), street_rows)
        .await
        .unwrap();
    let district = &f.clients[DISTRICT];
    district
        .put_catalog(example("residents.json"))
        .await
        .unwrap();
    district
        .put_records(RESIDENTS, columns, district_rows)
        .await
        .unwrap();
    publish(&f).await;
    let revision = district.publish(&[RESIDENTS]).await.unwrap();
    f.federation.wait_for_revision(revision).await.unwrap();
    let street = f.clients[STREET].code().clone();
    let role = define_role(&f.federation, &street, "checker")
        .await
        .unwrap();
    assert_eq!(role, ROLE);
    let checker = (&street, ROLE);
    // The street's grant gives the phone too: only the district's may withhold it.
    let phone = [("phone", Action::Clear)];
    grant_residents(
        &f.federation,
        checker,
        &street,
        "checker-street",
        &phone,
        None,
    )
    .await
    .unwrap();
    let district = district.code().clone();
    grant_residents(
        &f.federation,
        checker,
        &district,
        "checker-district",
        district_items,
        rows_scope,
    )
    .await
    .unwrap();
    let token = f
        .federation
        .add_principal(&street, "zhou", &[ROLE])
        .unwrap();
    (f, token)
}

fn request(token: &str, compared: &[&str]) -> RunCrossCheckRequest {
    RunCrossCheckRequest {
        catalog: RESIDENTS.into(),
        against_node: "420502".into(),
        against_catalog: RESIDENTS.into(),
        join: "id_number".into(),
        compared: compared.iter().map(|s| s.to_string()).collect(),
        credential: credential("zhou", token, ROLE, PURPOSE),
        holder: false,
        ..RunCrossCheckRequest::default()
    }
}

async fn client(f: &Fixture, n: usize) -> CrossCheckClient<tonic::transport::Channel> {
    f.clients[n].crosscheck().await.unwrap()
}

/// Runs a cross-check from the street; the run as the street keeps it, or the refusal.
async fn run(f: &Fixture, request: RunCrossCheckRequest) -> Result<CrossCheckRun, tonic::Status> {
    let mut events = client(f, STREET).await.run(request).await?.into_inner();
    while let Some(event) = events.message().await? {
        if let Some(Event::Run(run)) = event.event {
            return Ok(run);
        }
    }
    panic!("the run ended without its result");
}

async fn show(f: &Fixture, n: usize, run: &str) -> CrossCheckRun {
    client(f, n)
        .await
        .show(ShowCrossCheckRequest { run: run.into() })
        .await
        .unwrap()
        .into_inner()
}

fn crosscheck_entries(f: &Fixture, n: usize) -> Vec<AuditEntry> {
    f.federation.nodes[n]
        .audit()
        .unwrap()
        .query(&AuditFilter::default(), 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "crosscheck")
        .collect()
}

/// Every byte of node `n`'s store files, to search for what must not be there.
fn store_bytes(f: &Fixture, n: usize) -> Vec<u8> {
    let dir = &f.federation.nodes[n].dir;
    let mut bytes = Vec::new();
    let mut dirs = vec![dir.path(&dir.config.files.data)];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
    }
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatches_are_counted_on_both_sides_and_nothing_unmatched_crosses() {
    let (f, token) = checked(250, &[], None).await;
    let (street_rows, district_rows) = rows(250);
    let street_run = run(&f, request(&token, &COMPARED)).await.unwrap();
    let c = street_run.counts.unwrap();
    assert_eq!(
        (
            c.here,
            c.there,
            c.matched,
            c.differing,
            c.only_here,
            c.only_there
        ),
        (250, 262, 185, 15, 50, 62)
    );
    assert_eq!(street_run.role, "collector");

    // The district keeps the same run, with the counts seen from its side.
    let district_run = show(&f, DISTRICT, &street_run.run).await;
    let d = district_run.counts.unwrap();
    assert_eq!(
        (
            d.here,
            d.there,
            d.matched,
            d.differing,
            d.only_here,
            d.only_there
        ),
        (262, 250, 185, 15, 62, 50)
    );
    assert_eq!(district_run.role, "holder");

    // Each side names its own records by key; the other's unmatched ones by reference only.
    let by_kind = |run: &CrossCheckRun, kind: &str| -> Vec<(String, String, Vec<String>)> {
        run.mismatches
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| (m.key.clone(), m.reference.clone(), m.items.clone()))
            .collect()
    };
    let key = |row: &Vec<String>| row[0].clone();
    let street_only: Vec<String> = street_rows[..50].iter().map(key).collect();
    let district_only: Vec<String> = district_rows[200..].iter().map(key).collect();
    let here: HashSet<String> = by_kind(&street_run, "only-at-collector")
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(here, street_only.iter().cloned().collect());
    let there = by_kind(&street_run, "only-at-holder");
    assert_eq!(there.len(), 62);
    assert!(there.iter().all(|(k, r, _)| k.is_empty() && r.len() == 32));
    let at_district: HashSet<String> = by_kind(&district_run, "only-at-holder")
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(at_district, district_only.iter().cloned().collect());
    // The street's references of the district's records are the district's own.
    let district_refs: HashSet<String> = by_kind(&district_run, "only-at-holder")
        .into_iter()
        .map(|(_, r, _)| r)
        .collect();
    assert_eq!(
        there.into_iter().map(|(_, r, _)| r).collect::<HashSet<_>>(),
        district_refs
    );
    let differing = by_kind(&street_run, "differing");
    assert_eq!(differing.len(), 15);
    let moved = &street_rows[50][0];
    assert!(
        differing
            .iter()
            .any(|(k, _, items)| k == moved && items == &["current_address".to_string()])
    );
    let renamed = &street_rows[60][0];
    assert!(
        differing
            .iter()
            .any(|(k, _, items)| k == renamed && items == &["name".to_string()])
    );

    // Nothing of the street's unmatched residents is in the district's store, nor of the
    // district's unmatched residents in the street's: not their keys, not their ID numbers.
    let district_store = store_bytes(&f, DISTRICT);
    for row in &street_rows[..50] {
        assert!(
            !holds(&district_store, &row[0]),
            "{} at the district",
            row[0]
        );
        assert!(
            !holds(&district_store, &row[1]),
            "{} at the district",
            row[1]
        );
    }
    let street_store = store_bytes(&f, STREET);
    for row in &district_rows[200..] {
        assert!(!holds(&street_store, &row[0]), "{} at the street", row[0]);
        assert!(!holds(&street_store, &row[1]), "{} at the street", row[1]);
    }

    // Both audit logs keep the run: the items compared, the counts, and keys only of records
    // both hold.
    for (n, side, unmatched) in [
        (STREET, Side::Consumer, &street_only),
        (DISTRICT, Side::Producer, &district_only),
    ] {
        let entries = crosscheck_entries(&f, n);
        assert_eq!(entries.len(), 1, "{entries:?}");
        let e = &entries[0];
        assert_eq!(e.side, Some(side));
        assert_eq!(e.request_id, street_run.run);
        assert_eq!(e.principal, "zhou@420502001");
        assert_eq!(
            e.items["equality"],
            ["id_number", "name", "current_address"]
        );
        assert!(
            e.bounds.contains("matched 185, differing 15"),
            "{}",
            e.bounds
        );
        assert_eq!(e.keys.len(), 200);
        assert!(unmatched.iter().all(|k| !e.keys.contains(k)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_run_tells_which_mismatches_still_stand() {
    let (f, token) = checked(250, &[], None).await;
    let (street_rows, _) = rows(250);
    let first = run(&f, request(&token, &COMPARED)).await.unwrap();
    // The collector corrects one moved resident's address as the district has it.
    let mut corrected = street_rows[50].clone();
    corrected[column("current_address")] = "夷陵大道0号".into();
    f.clients[STREET]
        .put_records(
            RESIDENTS,
            columns(sample::RESIDENT_COLUMNS),
            vec![corrected.clone()],
        )
        .await
        .unwrap();
    let later = run(&f, request(&token, &COMPARED)).await.unwrap();
    assert_eq!(later.counts.unwrap().differing, 14);
    let runs = f.federation.nodes[STREET].cross_checks().unwrap();
    let mismatches = runs.mismatches(&first.run).unwrap();
    let moved = mismatches
        .iter()
        .find(|m| m.key.as_deref() == Some(corrected[0].as_str()))
        .unwrap();
    assert!(matches!(moved.kind, MismatchKind::Differing { .. }));
    assert!(!runs.still_stands(moved, &later.run).unwrap());
    let other = mismatches
        .iter()
        .find(|m| m.key.as_deref() == Some(street_rows[51][0].as_str()))
        .unwrap();
    assert!(runs.still_stands(other, &later.run).unwrap());
    let held_only_there = mismatches.iter().find(|m| m.key.is_none()).unwrap();
    assert!(runs.still_stands(held_only_there, &later.run).unwrap());
    // The district, and only it, resolves the reference to its resident's key.
    let at_district = f.federation.nodes[DISTRICT].cross_checks().unwrap();
    let key = at_district
        .resolve(&first.run, &held_only_there.reference)
        .unwrap()
        .unwrap();
    let (_, district_rows) = rows(250);
    assert!(district_rows[200..].iter().any(|r| r[0] == key));
    assert_eq!(
        runs.resolve(&first.run, &held_only_there.reference)
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_decide_which_items_and_records_take_part() {
    // The district's grant withholds the phone, masks the former name, and gives only one
    // community's records.
    let community = "420502001003";
    let (f, token) = checked(
        250,
        &[
            ("phone", Action::Withhold),
            ("former_name", Action::Mask { first: 1, last: 0 }),
        ],
        Some(RowScope {
            item: "community_code".into(),
            within: community.into(),
        }),
    )
    .await;
    let refused = run(&f, request(&token, &["name", "phone"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("does not give item phone of catalog 101001001/000001 of 420502 in clear"),
        "{refused:?}"
    );
    // Matching candidates of one's own against a masked item would recover it: refused too.
    let masked = run(&f, request(&token, &["name", "former_name"]))
        .await
        .unwrap_err();
    assert_eq!(masked.code(), tonic::Code::PermissionDenied, "{masked:?}");
    assert!(
        masked.message().contains("item former_name") && masked.message().contains("in clear"),
        "{masked:?}"
    );
    let entries = crosscheck_entries(&f, DISTRICT);
    assert!(
        entries.iter().any(|e| e.reason.contains("phone")),
        "{entries:?}"
    );

    let scoped = run(&f, request(&token, &COMPARED)).await.unwrap();
    let (_, district_rows) = rows(250);
    let in_scope = district_rows
        .iter()
        .filter(|r| r[column("community_code")].starts_with(community))
        .count() as u64;
    assert!(in_scope > 0 && in_scope < 262);
    assert_eq!(scoped.counts.unwrap().there, in_scope);
}

/// A `Compare` stream to the district with the street's own certificate, opened with `open`;
/// the district's first answer.
async fn compare(f: &Fixture, open: CompareOpen) -> Result<Response_, tonic::Status> {
    let street = &f.federation.nodes[STREET].dir;
    let district = &f.federation.nodes[DISTRICT].dir;
    let channel = tierlink_client::channel(
        &street.credentials().unwrap(),
        &district.config.server.endpoint,
    )
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(CompareRequest {
        message: Some(Request_::Open(open)),
    })
    .await
    .unwrap();
    let mut answers = CrossCheckClient::new(channel)
        .compare(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = answers.message().await?.and_then(|m| m.message).unwrap();
    drop(tx);
    Ok(first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_requesters_are_refused() {
    let (f, _) = checked(20, &[], None).await;
    let street: NodeCode = "420502001".parse().unwrap();
    let requester = Requester {
        node: street.to_string(),
        principal: "zhou".into(),
        role: ROLE.into(),
        purpose: PURPOSE.into(),
        grant: String::new(),
        producer: "420502".into(),
        catalog: RESIDENTS.into(),
        request_id: "cc_00112233445566aa".into(),
        issued_at_micros: chrono::Utc::now().timestamp_micros(),
    };
    let open = |signed| CompareOpen {
        run: "cc_00112233445566aa".into(),
        requester: Some(signed),
        catalog: RESIDENTS.into(),
        initiator_catalog: format!("{street}:{RESIDENTS}"),
        join: "id_number".into(),
        compared: vec!["name".into()],
        records: 0,
        initiator_holds: false,
    };
    // Signed by the city's key, claiming the street.
    let city_key = f.federation.nodes[CITY].dir.signing_key().unwrap();
    let forged = compare(&f, open(requester::sign(&city_key, &requester)))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::PermissionDenied);
    assert!(
        forged
            .message()
            .contains("not signed by 420502001's registered key"),
        "{forged:?}"
    );
    // Signed by the street: accepted once, refused when played again.
    let street_key = f.federation.nodes[STREET].dir.signing_key().unwrap();
    let signed = requester::sign(&street_key, &requester);
    let accepted = compare(&f, open(signed.clone())).await.unwrap();
    assert!(matches!(accepted, Response_::Accepted(_)));
    let replayed = compare(&f, open(signed)).await.unwrap_err();
    assert_eq!(replayed.code(), tonic::Code::PermissionDenied);
    assert!(
        replayed.message().contains("already served"),
        "{replayed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_run_ends_it_clearly_and_a_rerun_succeeds() {
    let (mut f, token) = checked(20_000, &[], None).await;
    let mut events = client(&f, STREET)
        .await
        .run(request(&token, &COMPARED))
        .await
        .unwrap()
        .into_inner();
    // Once the district has accepted, it stops.
    loop {
        let event = events.message().await.unwrap().unwrap();
        if let Some(Event::Step(step)) = event.event
            && step.contains("accepted")
        {
            break;
        }
    }
    f.federation.stop_node(DISTRICT).await.unwrap();
    let ended = loop {
        match events.message().await {
            Ok(Some(RunProgress {
                event: Some(Event::Run(run)),
            })) => {
                panic!("the run went on without the district: {run:?}")
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the run ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("run it again"), "{ended:?}");
    f.federation.start_node(DISTRICT).await.unwrap();
    let rerun = run(&f, request(&token, &COMPARED)).await.unwrap();
    let c = rerun.counts.unwrap();
    assert_eq!(c.here + c.not_compared, 20_000);
    assert!(c.matched > 15_000 && c.only_here > 3_000, "{c:?}");
}

/// The district, holding the register, runs against the street's collection and sends each
/// mismatch back as a verification case; the street corrects most records through the normal
/// write path and reports on every case; the district's next run closes the corrected ones and
/// sends back the ones that still stand, raising nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn mismatches_go_back_to_the_collector_as_cases_and_close_once_corrected() {
    use tierlink_proto::v1::{ActRequest, CaseMove, Credential, ListCasesRequest};
    let f = federation(0).await;
    let (street_rows, register) = rows(10);
    let cols = columns(sample::RESIDENT_COLUMNS);
    f.clients[STREET]
        .put_records(RESIDENTS, cols.clone(), street_rows)
        .await
        .unwrap();
    let (street, district) = (
        f.clients[STREET].code().clone(),
        f.clients[DISTRICT].code().clone(),
    );
    f.clients[DISTRICT]
        .put_catalog(example("residents.json"))
        .await
        .unwrap();
    f.clients[DISTRICT]
        .put_records(RESIDENTS, cols.clone(), register.clone())
        .await
        .unwrap();
    publish(&f).await;
    let revision = f.clients[DISTRICT].publish(&[RESIDENTS]).await.unwrap();
    f.federation.wait_for_revision(revision).await.unwrap();
    let checker = define_role(&f.federation, &district, "checker")
        .await
        .unwrap();
    for (producer, id) in [(&street, "register-street"), (&district, "register-own")] {
        grant_residents(
            &f.federation,
            (&district, &checker),
            producer,
            id,
            &[],
            None,
        )
        .await
        .unwrap();
    }
    let sun = f
        .federation
        .add_principal(&district, "sun", &[checker.as_str()])
        .unwrap();
    let street_role = define_role(&f.federation, &street, "collector")
        .await
        .unwrap();
    let zhou = f
        .federation
        .add_principal(&street, "zhou", &[street_role.as_str()])
        .unwrap();
    let send_back = RunCrossCheckRequest {
        catalog: RESIDENTS.into(),
        against_node: street.to_string(),
        against_catalog: RESIDENTS.into(),
        join: "id_number".into(),
        compared: COMPARED.iter().map(|s| s.to_string()).collect(),
        credential: credential("sun", &sun, &checker, PURPOSE),
        holder: true,
        send_back: true,
        department: String::new(),
    };
    let run_at_district = async |request: RunCrossCheckRequest| {
        let mut steps = Vec::new();
        let mut events = client(&f, DISTRICT)
            .await
            .run(request)
            .await
            .unwrap()
            .into_inner();
        while let Some(event) = events.message().await.unwrap() {
            match event.event {
                Some(Event::Step(step)) => steps.push(step),
                Some(Event::Run(run)) => return (run, steps),
                None => {}
            }
        }
        panic!("the run ended without its result");
    };
    let (first, steps) = run_at_district(send_back.clone()).await;
    let counts = first.counts.unwrap();
    let mismatches = counts.differing + counts.only_here + counts.only_there;
    assert_eq!(mismatches, 12, "{counts:?}");
    assert!(steps.iter().any(|s| s.contains("12 raised")), "{steps:?}");

    // The street receives one verification case per mismatch, with its deadline, naming the
    // run and a reference: no value of the district's register.
    let mut street_cases = f.clients[STREET].cases().await.unwrap();
    let mine = ListCasesRequest {
        mine: true,
        ..ListCasesRequest::default()
    };
    let mut waiting = Vec::new();
    for _ in 0..200 {
        waiting = street_cases.list(mine).await.unwrap().into_inner().cases;
        if waiting.len() == 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(waiting.len(), 12);
    let address = column("current_address");
    for case in &waiting {
        assert_eq!(case.class, "6");
        assert!(
            case.records.is_empty(),
            "no key of the register's: {case:?}"
        );
        assert!(case.due_micros > 0 && case.crosscheck.starts_with(&first.run));
        assert!(register.iter().all(|r| !case.subject.contains(&r[address])));
    }

    // The street corrects the eight differing records and records the two it lacked, through
    // the normal write path; the two only it holds stay as they are. It reports on every case.
    f.clients[STREET]
        .put_records(RESIDENTS, cols, register[..10].to_vec())
        .await
        .unwrap();
    for case in &waiting {
        street_cases
            .act(ActRequest {
                credential: Some(Credential {
                    principal: "zhou".into(),
                    token: zhou.clone(),
                    role: street_role.clone(),
                    ..Credential::default()
                }),
                r#move: Some(CaseMove {
                    case_id: case.case_id.clone(),
                    action: "report".into(),
                    note: "已核实 checked on site".into(),
                    ..CaseMove::default()
                }),
                promised: String::new(),
            })
            .await
            .unwrap();
    }

    // The next run closes what was corrected and sends back what still stands.
    let mut district_cases = f.clients[DISTRICT].cases().await.unwrap();
    for _ in 0..200 {
        let reported = district_cases
            .list(mine)
            .await
            .unwrap()
            .into_inner()
            .cases
            .iter()
            .filter(|c| c.status == "reported")
            .count();
        if reported == 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (second, steps) = run_at_district(send_back).await;
    let counts = second.counts.unwrap();
    assert_eq!(
        (counts.differing, counts.only_here + counts.only_there),
        (0, 2)
    );
    assert!(
        steps.iter().any(|s| s.contains("0 raised")
            && s.contains("10 closed")
            && s.contains("2 sent back")),
        "{steps:?}"
    );
    let all = district_cases
        .list(ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cases;
    let closed = all.iter().filter(|c| c.status == "closed").count();
    let back = all.iter().filter(|c| c.status == "dispatched").count();
    assert_eq!((all.len(), closed, back), (12, 10, 2));
    f.federation.stop().await.unwrap();
}
