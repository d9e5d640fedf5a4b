//! The tier rules and the figures, move by move, without nodes.

use tierlink_proto::v1::CaseMove;

use super::state::{Case, Status, apply, parent_of};
use super::{CaseError, Dimension, figures};

const DAY: i64 = 86_400_000_000;

/// 2026-12-01 02:00 UTC, the day the test cases' ids name.
const BASE: i64 = 1796090400000000;

fn mv(case: &Case, node: &str, action: &str) -> CaseMove {
    CaseMove {
        case_id: case.id.clone(),
        sequence: case.moves,
        node: node.into(),
        action: action.into(),
        at_micros: case.raised_at_micros + case.moves as i64 * 1000,
        ..CaseMove::default()
    }
}

fn raised(node: &str, class: &str, due: i64) -> Case {
    apply(
        None,
        &CaseMove {
            case_id: format!("{node}-20261201-00001"),
            node: node.into(),
            action: "raise".into(),
            channel: "1".into(),
            class: class.into(),
            subject: "路灯不亮".into(),
            at_micros: BASE,
            due_micros: due,
            ..CaseMove::default()
        },
    )
    .unwrap()
}

fn step(case: &Case, m: CaseMove) -> Result<Case, CaseError> {
    apply(Some(case), &m)
}

#[test]
fn parents_follow_the_division_codes() {
    let p = |c: &str| parent_of(&c.parse().unwrap()).map(|p| p.to_string());
    assert_eq!(p("420502001").as_deref(), Some("420502"));
    assert_eq!(p("420502").as_deref(), Some("420500"));
    assert_eq!(p("420500"), None);
}

#[test]
fn a_raised_case_is_kept_by_its_unit_and_the_tier_above() {
    let case = raised("420502001", "1", 0);
    assert_eq!(case.status, Status::Open);
    let parties: Vec<String> = case.parties.iter().map(|p| p.to_string()).collect();
    assert_eq!(parties, ["420502", "420502001"]);
    let bad = apply(
        None,
        &CaseMove {
            case_id: "420502002-20261201-00001".into(),
            sequence: 0,
            channel: "1".into(),
            class: "1".into(),
            subject: "s".into(),
            ..mv(&case, "420502001", "raise")
        },
    );
    assert!(matches!(bad, Err(CaseError::Invalid(m)) if m.contains("raising unit's code")));
}

#[test]
fn each_state_has_one_unit_that_acts_and_the_moves_it_may_make() {
    let case = raised("420502001", "4", 0);
    // Only the holder acts, only up to its parent.
    let up = CaseMove {
        to: "420500".into(),
        ..mv(&case, "420502001", "escalate")
    };
    assert!(
        matches!(step(&case, up), Err(CaseError::Refused(m)) if m.contains("its parent 420502"))
    );
    let by_district = CaseMove {
        to: "420500".into(),
        ..mv(&case, "420502", "escalate")
    };
    assert!(
        matches!(step(&case, by_district), Err(CaseError::Refused(m)) if m.contains("acts next"))
    );
    let escalated = step(
        &case,
        CaseMove {
            to: "420502".into(),
            ..mv(&case, "420502001", "escalate")
        },
    )
    .unwrap();
    assert_eq!(
        (escalated.status, escalated.next().as_str()),
        (Status::AwaitingApproval, "420502")
    );
    let approved = step(
        &escalated,
        CaseMove {
            due_micros: BASE + 3 * DAY,
            ..mv(&escalated, "420502", "approve")
        },
    )
    .unwrap();
    assert_eq!(approved.due_micros, Some(BASE + 3 * DAY));
    assert!(approved.approved_at_micros.is_some());
    // Dispatch across to a sibling street is allowed for a street; a district dispatches below.
    let across = raised("420502001", "1", 0);
    let sibling = CaseMove {
        to: "420502002".into(),
        route: 2,
        ..mv(&across, "420502001", "dispatch")
    };
    assert_eq!(step(&across, sibling).unwrap().status, Status::Dispatched);
    let other_district = CaseMove {
        to: "420503001".into(),
        route: 2,
        ..mv(&approved, "420502", "dispatch")
    };
    assert!(matches!(
        step(&approved, other_district),
        Err(CaseError::Refused(_))
    ));
    let dispatched = step(
        &approved,
        CaseMove {
            to: "420502001".into(),
            to_department: "城管科".into(),
            route: 2,
            ..mv(&approved, "420502", "dispatch")
        },
    )
    .unwrap();
    assert_eq!(dispatched.next_department(), "城管科");
    // The street's other department may not report; the handler's may.
    let wrong = CaseMove {
        note: "done".into(),
        department: "综合服务中心".into(),
        ..mv(&dispatched, "420502001", "report")
    };
    assert!(
        matches!(step(&dispatched, wrong), Err(CaseError::Refused(m)) if m.contains("that department"))
    );
    let closing = mv(&dispatched, "420502001", "close");
    assert!(
        matches!(step(&dispatched, closing), Err(CaseError::Refused(m)) if m.contains("may report it, not close it"))
    );
    let reported = step(
        &dispatched,
        CaseMove {
            note: "done".into(),
            department: "城管科".into(),
            ..mv(&dispatched, "420502001", "report")
        },
    )
    .unwrap();
    let verified = step(
        &reported,
        CaseMove {
            passed: true,
            ..mv(&reported, "420502", "verify")
        },
    )
    .unwrap();
    let closed = step(&verified, mv(&verified, "420502", "close")).unwrap();
    assert_eq!(closed.status, Status::Closed);
    // Answered and reopened by the raising unit only, back at the supervisor.
    assert!(step(&closed, mv(&closed, "420502", "reopen")).is_err());
    let reopened = step(
        &closed,
        CaseMove {
            note: "complained again".into(),
            ..mv(&closed, "420502001", "reopen")
        },
    )
    .unwrap();
    assert_eq!(
        (reopened.status, reopened.next().as_str(), reopened.reopened),
        (Status::Open, "420502", 1)
    );
    // A move out of sequence is refused.
    let stale = CaseMove {
        sequence: 2,
        ..mv(&closed, "420502001", "reply")
    };
    assert!(
        matches!(step(&closed, stale), Err(CaseError::Refused(m)) if m.contains("does not follow"))
    );
}

#[test]
fn the_city_has_no_upper_tier() {
    let case = raised("420500", "1", 0);
    let up = CaseMove {
        to: "420500".into(),
        ..mv(&case, "420500", "escalate")
    };
    assert!(matches!(step(&case, up), Err(CaseError::Refused(m)) if m.contains("no upper tier")));
}

#[test]
fn figures_count_results_against_their_deadlines() {
    let due = BASE + 2 * DAY;
    let report = |case: &Case, at: i64| {
        let dispatched = step(
            case,
            CaseMove {
                to: "420502001".into(),
                route: 1,
                ..mv(case, "420502001", "dispatch")
            },
        )
        .unwrap();
        step(
            &dispatched,
            CaseMove {
                note: "done".into(),
                at_micros: at,
                ..mv(&dispatched, "420502001", "report")
            },
        )
        .unwrap()
    };
    let on_time = report(&raised("420502001", "1", due), due - 1);
    let late = report(&raised("420502001", "1", due), due + 1);
    let waiting = raised("420502001", "3", due);
    let no_deadline = raised("420502001", "5", 0);
    let all = [on_time, late, waiting, no_deadline];
    let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    // Before the deadline the waiting case is neither; after it, overdue.
    let before = figures(&all, &[Dimension::Unit], &zone, due - 10);
    assert_eq!(
        (before[0].received, before[0].on_time, before[0].overdue),
        (4, 1, 1)
    );
    let after = figures(&all, &[Dimension::Unit], &zone, due + 10);
    assert_eq!((after[0].on_time, after[0].overdue), (1, 2));
    assert!((after[0].on_time_rate() - 1.0 / 3.0).abs() < 1e-9);
    let by_class = figures(&all, &[Dimension::Class], &zone, due + 10);
    let classes: Vec<&str> = by_class.iter().map(|r| r.group[0].as_str()).collect();
    assert_eq!(classes, ["1", "3", "5"]);
    let period = figures(&all, &[Dimension::Period, Dimension::Tier], &zone, due);
    assert_eq!(period[0].group, ["2026-12", "street"]);
}

#[test]
fn a_delivered_chain_is_held_to_the_same_bounds_and_dates() {
    let case = raised("420502001", "1", 0);
    let long = CaseMove {
        note: "x".repeat(4001),
        to: "420502".into(),
        ..mv(&case, "420502001", "escalate")
    };
    assert!(
        matches!(step(&case, long), Err(CaseError::Invalid(m)) if m.contains("longer than 4000"))
    );
    let backdated = CaseMove {
        to: "420502".into(),
        at_micros: BASE - 1,
        ..mv(&case, "420502001", "escalate")
    };
    assert!(
        matches!(step(&case, backdated), Err(CaseError::Refused(m)) if m.contains("dated before"))
    );
    let far = CaseMove {
        to: "420502001".into(),
        route: 1,
        due_micros: BASE + 500 * DAY,
        ..mv(&case, "420502001", "dispatch")
    };
    assert!(matches!(step(&case, far), Err(CaseError::Invalid(m)) if m.contains("400 days")));
    let many = CaseMove {
        records: vec![tierlink_proto::v1::RecordRef::default(); 101],
        sequence: 0,
        channel: "1".into(),
        class: "1".into(),
        subject: "s".into(),
        ..mv(&case, "420502001", "raise")
    };
    assert!(
        matches!(apply(None, &many), Err(CaseError::Invalid(m)) if m.contains("at most 100 records"))
    );
    let elsewhen = CaseMove {
        case_id: "420502001-19990101-00001".into(),
        sequence: 0,
        channel: "1".into(),
        class: "1".into(),
        subject: "s".into(),
        ..mv(&case, "420502001", "raise")
    };
    assert!(
        matches!(apply(None, &elsewhen), Err(CaseError::Invalid(m)) if m.contains("names 1999-01-01"))
    );
}

#[test]
fn whoever_reported_a_result_does_not_verify_it() {
    let case = raised("420502001", "1", 0);
    let dispatched = step(
        &case,
        CaseMove {
            to: "420502001".into(),
            to_department: "城管科".into(),
            route: 1,
            ..mv(&case, "420502001", "dispatch")
        },
    )
    .unwrap();
    let reported = step(
        &dispatched,
        CaseMove {
            note: "done".into(),
            principal: "chen@420502001".into(),
            department: "城管科".into(),
            ..mv(&dispatched, "420502001", "report")
        },
    )
    .unwrap();
    let by_reporter = CaseMove {
        passed: true,
        principal: "chen@420502001".into(),
        department: "综合服务中心".into(),
        ..mv(&reported, "420502001", "verify")
    };
    assert!(
        matches!(step(&reported, by_reporter), Err(CaseError::Refused(m)) if m.contains("another department verifies it"))
    );
    let same_department = CaseMove {
        passed: true,
        principal: "li@420502001".into(),
        department: "城管科".into(),
        ..mv(&reported, "420502001", "verify")
    };
    assert!(step(&reported, same_department).is_err());
    let hall = CaseMove {
        passed: true,
        principal: "wang@420502001".into(),
        department: "综合服务中心".into(),
        ..mv(&reported, "420502001", "verify")
    };
    assert_eq!(step(&reported, hall).unwrap().status, Status::Verified);
}
