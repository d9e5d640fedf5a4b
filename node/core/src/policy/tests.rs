use std::collections::BTreeMap;

use super::*;
use crate::catalog::{Catalog, SharingType, parse_catalogs};
use crate::identity::NodeCode;

fn code(c: &str) -> NodeCode {
    c.parse().unwrap()
}

fn residents() -> Catalog {
    parse_catalogs(
        include_str!("../../../../schema/examples/residents.json"),
        "r",
    )
    .unwrap()
    .remove(0)
}

/// A city 420500, district 420502 with street 420502001, and district 420503.
struct Ctx {
    published: Catalog,
}

impl PolicyContext for Ctx {
    fn published(&self, producer: &NodeCode, code: &str) -> Option<&Catalog> {
        (producer.as_str() == "420502001" && code == self.published.code).then_some(&self.published)
    }
    fn parent_of(&self, unit: &NodeCode) -> Option<&NodeCode> {
        static CITY: std::sync::LazyLock<NodeCode> = std::sync::LazyLock::new(|| code("420500"));
        static DISTRICT: std::sync::LazyLock<NodeCode> =
            std::sync::LazyLock::new(|| code("420502"));
        match unit.as_str() {
            "420502" | "420503" => Some(&CITY),
            "420502001" => Some(&DISTRICT),
            _ => None,
        }
    }
    fn is_active(&self, unit: &NodeCode) -> bool {
        ["420500", "420502", "420503", "420502001"].contains(&unit.as_str())
    }
}

fn ctx() -> Ctx {
    Ctx {
        published: residents().shared_view(),
    }
}

fn role(unit: &str, name: &str) -> PolicyCommand {
    PolicyCommand::DefineRole(Role {
        unit: code(unit),
        name: name.into(),
        department: "Civil Affairs".into(),
        post: "officer".into(),
    })
}

fn grant(id: &str, grantee: &str, items: &[(&str, &str)], others: Option<&str>) -> Grant {
    Grant {
        id: id.into(),
        producer: code("420502001"),
        catalog: "101001001/000001".into(),
        grantee: Grantee::Role(grantee.into()),
        purpose: "household survey".into(),
        expires: "2027-12-31".into(),
        items: items
            .iter()
            .map(|(i, a)| (i.to_string(), a.parse().unwrap()))
            .collect::<BTreeMap<_, _>>(),
        others: others.map(|a| a.parse().unwrap()),
        rows: None,
        delegated_from: None,
        access_request: None,
        issuer: None,
    }
}

fn request(id: &str, grantee: &str) -> PolicyCommand {
    PolicyCommand::RequestAccess(AccessRequest {
        id: id.into(),
        producer: code("420502001"),
        catalog: "101001001/000001".into(),
        grantee: Grantee::Role(grantee.into()),
        purpose: "household survey".into(),
        items: Vec::new(),
        requester: None,
        status: AccessStatus::Pending,
    })
}

/// Roles at the city and district, the district's request approved with `approved`.
fn policies(approved: Grant) -> Policies {
    let ctx = ctx();
    let mut p = Policies::default();
    p.apply(&code("420500"), &role("420500", "analyst"), &ctx)
        .unwrap();
    p.apply(&code("420502"), &role("420502", "civil-affairs"), &ctx)
        .unwrap();
    p.apply(&code("420502001"), &role("420502001", "grid-worker"), &ctx)
        .unwrap();
    p.apply(
        &code("420502"),
        &request("r1", "420502/civil-affairs"),
        &ctx,
    )
    .unwrap();
    let approved = Grant {
        access_request: Some("r1".into()),
        ..approved
    };
    p.apply(
        &code("420502001"),
        &PolicyCommand::ApproveAccess(approved),
        &ctx,
    )
    .unwrap();
    p
}

fn asker(node: &str, role: &str) -> Asker {
    Asker {
        node: code(node),
        principal: "li".into(),
        role: role.into(),
        purpose: "household survey".into(),
        grant: None,
    }
}

fn actions(d: &Decision) -> BTreeMap<String, String> {
    d.items
        .iter()
        .map(|i| (i.item.clone(), format!("{} {}", i.action, i.rule.as_str())))
        .collect()
}

#[test]
fn masks_keep_the_ends_and_hashes_are_keyed_and_stable() {
    let key = HashKey::generate().unwrap();
    let r = Redactor::new(Some(key.clone()));
    let mask = |f, l| Action::Mask { first: f, last: l };
    assert_eq!(
        r.apply_str(mask(6, 4), "110107199001011234"),
        "110107********1234"
    );
    assert_eq!(r.apply_str(mask(3, 4), "13812345678"), "138****5678");
    assert_eq!(r.apply_str(mask(1, 0), "张三丰"), "张**");
    assert_eq!(
        r.apply_str(mask(2, 2), "abc"),
        "***",
        "never the whole value"
    );
    assert_eq!(r.apply_str(mask(2, 2), ""), "");
    let h = r.apply_str(Action::Hash, "110107199001011234");
    assert_eq!(h.len(), 16);
    assert!(
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{h}"
    );
    assert!(!h.contains("1234"));
    assert_eq!(
        h,
        Redactor::new(Some(key.clone())).apply_str(Action::Hash, "110107199001011234")
    );
    let other = Redactor::new(Some(HashKey::generate().unwrap()));
    assert_ne!(h, other.apply_str(Action::Hash, "110107199001011234"));
    assert_eq!(
        HashKey::from_hex(&key.to_hex()).unwrap().to_hex(),
        key.to_hex()
    );
    assert!(!Redactor::new(None).can(Action::Hash));
    for text in ["clear", "hash", "withhold", "mask:6:4"] {
        assert_eq!(text.parse::<Action>().unwrap().to_string(), text);
    }
    assert!("mask:6".parse::<Action>().is_err());
    assert!(
        "show"
            .parse::<Action>()
            .unwrap_err()
            .contains("mask:FIRST:LAST")
    );
}

#[test]
fn what_reveals_less_is_within_what_reveals_more() {
    let mask = |f, l| Action::Mask { first: f, last: l };
    assert!(Action::Withhold.within(Action::Hash));
    assert!(mask(3, 4).within(mask(6, 4)));
    assert!(!mask(6, 4).within(mask(3, 4)));
    assert!(mask(6, 4).within(Action::Clear));
    assert!(!Action::Hash.within(mask(6, 4)));
    assert!(!mask(0, 0).within(Action::Hash));
    assert!(!Action::Clear.within(Action::Hash));
}

#[test]
fn default_deny_not_shared_and_core_items_need_naming() {
    let mut p = policies(grant(
        "g1",
        "420502/civil-affairs",
        &[("id_number", "mask:6:1"), ("birth_date", "year-month")],
        Some("clear"),
    ));
    let err = p
        .apply(
            &code("420502001"),
            &PolicyCommand::Grant(grant(
                "g9",
                "420502/civil-affairs",
                &[("religion", "clear")],
                None,
            )),
            &ctx(),
        )
        .unwrap_err();
    assert!(err.contains("no shared item religion"), "{err}");
    // An item graded not shared after the grant was made still never leaves.
    p.grants
        .get_mut("g1")
        .unwrap()
        .items
        .insert("religion".into(), Action::Clear);
    let d = p
        .decide(
            &code("420502001"),
            &residents(),
            &asker("420502", "420502/civil-affairs"),
            "2026-11-28",
        )
        .unwrap();
    let a = actions(&d);
    assert_eq!(d.grant, "g1");
    assert_eq!(a["id_number"], "mask:6:1 named-in-grant");
    assert_eq!(a["name"], "clear grant-others");
    assert_eq!(
        a["religion"], "withhold not-shared",
        "a grant cannot open a not-shared item"
    );
    assert_eq!(
        a["residence_permit"],
        "withhold core-or-sensitive-needs-named-grant"
    );
    assert!(d.key_in_clear(&residents()));

    let no_others = policies(grant(
        "g1",
        "420502/civil-affairs",
        &[("name", "hash")],
        None,
    ));
    let d = no_others
        .decide(
            &code("420502001"),
            &residents(),
            &asker("420502", "420502/civil-affairs"),
            "2026-11-28",
        )
        .unwrap();
    assert_eq!(actions(&d)["sex"], "withhold not-granted");
    assert_eq!(actions(&d)["name"], "hash named-in-grant");
}

#[test]
fn a_request_is_refused_without_a_grant_for_its_role_purpose_and_day() {
    let p = policies(grant("g1", "420502/civil-affairs", &[], Some("clear")));
    let producer = code("420502001");
    let catalog = residents();
    let refuse = |a: Asker, today: &str| p.decide(&producer, &catalog, &a, today).unwrap_err();

    let err = refuse(asker("420500", "420500/analyst"), "2026-11-28");
    assert!(matches!(err, Refusal::NoGrant { .. }), "{err}");
    let err = refuse(asker("420502001", "420502/civil-affairs"), "2026-11-28");
    assert!(
        matches!(err, Refusal::ForeignRole { .. }),
        "a street cannot claim a district role: {err}"
    );
    let err = refuse(asker("420502", "420502/unknown"), "2026-11-28");
    assert!(matches!(err, Refusal::UnknownRole(_)), "{err}");
    let mut other_purpose = asker("420502", "420502/civil-affairs");
    other_purpose.purpose = "marketing".into();
    let err = refuse(other_purpose, "2026-11-28");
    assert!(err.to_string().contains("household survey"), "{err}");
    let err = refuse(asker("420502", "420502/civil-affairs"), "2028-01-01");
    assert!(matches!(err, Refusal::Lapsed { .. }), "{err}");

    let mut hidden = catalog.clone();
    hidden.sharing.kind = SharingType::NotShared;
    let err = p
        .decide(
            &producer,
            &hidden,
            &asker("420502", "420502/civil-affairs"),
            "2026-11-28",
        )
        .unwrap_err();
    assert!(matches!(err, Refusal::NotShared(_)));
}

#[test]
fn a_principal_grant_comes_before_its_role_grant() {
    let ctx = ctx();
    let mut p = policies(grant(
        "g1",
        "420502/civil-affairs",
        &[("name", "hash")],
        Some("withhold"),
    ));
    p.apply(
        &code("420502"),
        &PolicyCommand::RequestAccess(AccessRequest {
            grantee: Grantee::Principal("li@420502".into()),
            ..match request("r2", "x") {
                PolicyCommand::RequestAccess(r) => r,
                _ => unreachable!(),
            }
        }),
        &ctx,
    )
    .unwrap();
    let mut personal = grant("g2", "x", &[], Some("clear"));
    personal.grantee = Grantee::Principal("li@420502".into());
    personal.access_request = Some("r2".into());
    p.apply(
        &code("420502001"),
        &PolicyCommand::ApproveAccess(personal),
        &ctx,
    )
    .unwrap();
    let d = p
        .decide(
            &code("420502001"),
            &residents(),
            &asker("420502", "420502/civil-affairs"),
            "2026-11-28",
        )
        .unwrap();
    assert_eq!(
        (d.grant.as_str(), actions(&d)["name"].as_str()),
        ("g2", "clear grant-others")
    );
    let mut wang = asker("420502", "420502/civil-affairs");
    wang.principal = "wang".into();
    let d = p
        .decide(&code("420502001"), &residents(), &wang, "2026-11-28")
        .unwrap();
    assert_eq!(d.grant, "g1");
}

#[test]
fn conditional_catalogs_are_granted_only_through_an_approved_request() {
    let ctx = ctx();
    let mut p = Policies::default();
    p.apply(&code("420502"), &role("420502", "civil-affairs"), &ctx)
        .unwrap();
    let direct = PolicyCommand::Grant(grant("g1", "420502/civil-affairs", &[], Some("clear")));
    let err = p.apply(&code("420502001"), &direct, &ctx).unwrap_err();
    assert!(err.contains("access request"), "{err}");

    p.apply(
        &code("420502"),
        &request("r1", "420502/civil-affairs"),
        &ctx,
    )
    .unwrap();
    let err = p
        .apply(
            &code("420502"),
            &request("r9", "420502001/grid-worker"),
            &ctx,
        )
        .unwrap_err();
    assert!(
        err.contains("not defined") || err.contains("own roles"),
        "{err}"
    );
    let mut approval = grant("g1", "420502/civil-affairs", &[], Some("clear"));
    approval.access_request = Some("r1".into());
    let err = p
        .apply(
            &code("420502"),
            &PolicyCommand::ApproveAccess(approval.clone()),
            &ctx,
        )
        .unwrap_err();
    assert!(err.contains("only 420502001 answers"), "{err}");
    let mut wrong = approval.clone();
    wrong.purpose = "other".into();
    assert!(
        p.apply(
            &code("420502001"),
            &PolicyCommand::ApproveAccess(wrong),
            &ctx
        )
        .is_err()
    );
    p.apply(
        &code("420502001"),
        &PolicyCommand::ApproveAccess(approval.clone()),
        &ctx,
    )
    .unwrap();
    assert_eq!(
        p.requests["r1"].status,
        AccessStatus::Approved { grant: "g1".into() }
    );
    let err = p
        .apply(
            &code("420502001"),
            &PolicyCommand::RejectAccess {
                request: "r1".into(),
                reason: "no".into(),
            },
            &ctx,
        )
        .unwrap_err();
    assert!(err.contains("already answered"), "{err}");
}

#[test]
fn delegation_never_widens_and_revocation_cascades() {
    let ctx = ctx();
    let mut p = policies({
        let mut g = grant(
            "g1",
            "420502/civil-affairs",
            &[("id_number", "mask:6:1"), ("birth_date", "year-month")],
            Some("clear"),
        );
        g.rows = Some(RowScope {
            item: "community_code".into(),
            within: "420502".into(),
        });
        g
    });
    let delegate = |items: &[(&str, &str)], others: Option<&str>, within: &str| {
        let mut g = grant("g2", "420502001/grid-worker", items, others);
        g.delegated_from = Some("g1".into());
        g.rows = Some(RowScope {
            item: "community_code".into(),
            within: within.into(),
        });
        PolicyCommand::Grant(g)
    };
    let district = code("420502");
    for (command, expect) in [
        (
            delegate(&[("id_number", "clear")], None, "420502001"),
            "reveals more",
        ),
        (
            delegate(&[("id_number", "hash")], None, "420502001"),
            "reveals more",
        ),
        (delegate(&[], Some("withhold"), "4205"), "limited to rows"),
    ] {
        let before = p.clone();
        let err = p.apply(&district, &command, &ctx).unwrap_err();
        assert!(err.contains(expect), "{err}");
        assert_eq!(p, before);
    }
    let err = p
        .apply(
            &code("420500"),
            &delegate(&[], Some("clear"), "420502001"),
            &ctx,
        )
        .unwrap_err();
    assert!(err.contains("not held by 420500"), "{err}");
    p.apply(
        &district,
        &delegate(
            &[("id_number", "mask:3:1"), ("name", "hash")],
            Some("withhold"),
            "420502001",
        ),
        &ctx,
    )
    .unwrap();
    assert_eq!(p.grants["g2"].issuer, Some(district.clone()));

    let street = asker("420502001", "420502001/grid-worker");
    let d = p
        .decide(&code("420502001"), &residents(), &street, "2026-11-28")
        .unwrap();
    assert_eq!(actions(&d)["id_number"], "mask:3:1 named-in-grant");
    assert_eq!(d.rows.unwrap().within, "420502001");

    let err = p.apply(
        &code("420502001"),
        &PolicyCommand::Revoke("g1".into()),
        &ctx,
    );
    assert!(err.is_ok(), "the producer may revoke: {err:?}");
    assert!(
        p.grants.is_empty(),
        "the delegation goes with the grant it came from"
    );
    let err = p
        .decide(&code("420502001"), &residents(), &street, "2026-11-28")
        .unwrap_err();
    assert!(matches!(err, Refusal::NoGrant { .. }), "{err}");
}

#[test]
fn generalisations_parse_print_and_coarsen_values() {
    for text in ["year", "year-month", "prefix:6", "band:10"] {
        let action: Action = text.parse().unwrap();
        assert_eq!(action.to_string(), text);
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
    }
    for bad in ["prefix:0", "band:0", "band:x", "prefix:", "year-day"] {
        assert!(
            bad.parse::<Action>().unwrap_err().contains("band:W"),
            "{bad}"
        );
    }
    let r = Redactor::new(None);
    let g = |text: &str, value: &str| r.apply_str(text.parse().unwrap(), value);
    assert_eq!(g("year", "1993-08-23"), "1993");
    assert_eq!(g("year-month", "1993-08-23"), "1993-08");
    assert_eq!(g("year-month", "1993-08-23T10:00:00+08:00"), "1993-08");
    assert_eq!(
        g("year", "not a date"),
        "",
        "a value of the wrong form: nothing"
    );
    assert_eq!(g("prefix:6", "420502001001"), "420502");
    assert_eq!(g("prefix:2", "张三丰"), "张三");
    assert_eq!(g("prefix:6", "4205"), "4205");
    assert_eq!(g("band:10", "34"), "30-39");
    assert_eq!(g("band:10", "34.5"), "30-39");
    assert_eq!(g("band:10", "40"), "40-49");
    assert_eq!(g("band:10", "-5"), "-10--1");
    assert_eq!(g("band:10", "-0.5"), "-10--1");
    assert_eq!(g("band:1000", "0"), "0-999");
    assert_eq!(g("band:10", "12a"), "");
    assert!(r.can("band:10".parse().unwrap()));

    let a = |text: &str| text.parse::<Action>().unwrap();
    assert!(a("year").within(a("year-month")));
    assert!(!a("year-month").within(a("year")));
    assert!(a("prefix:4").within(a("prefix:6")));
    assert!(!a("prefix:6").within(a("prefix:4")));
    assert!(a("band:20").within(a("band:10")));
    assert!(!a("band:10").within(a("band:20")));
    assert!(!a("band:15").within(a("band:10")));
    assert!(a("year").within(Action::Clear));
    assert!(!a("year").within(Action::Hash));
    assert!(!a("prefix:4").within(a("mask:4:0")));
    assert!(Action::Withhold.within(a("band:10")));
}

#[test]
fn a_generalised_value_never_exceeds_the_catalogs_record_size() {
    let catalog = residents();
    let r = Redactor::new(None);
    for item in &catalog.items {
        let widest = match item.data_type {
            crate::catalog::DataType::Number => {
                format!("-{}", "9".repeat(item.max_length().min(38) as usize))
            }
            _ => continue,
        };
        let banded = r.apply_str(Action::Generalise(Generalisation::Band(u64::MAX)), &widest);
        assert!(banded.len() as u64 <= item.max_sent_bytes(), "{banded}");
    }
    let number = crate::catalog::InformationItem {
        data_type: crate::catalog::DataType::Number,
        length: Some(38),
        ..catalog.items[2].clone()
    };
    let widest = format!("-{}.5", "9".repeat(38));
    let banded = r.apply_str(Action::Generalise(Generalisation::Band(u64::MAX)), &widest);
    assert!(
        !banded.is_empty() && banded.len() as u64 <= number.max_sent_bytes(),
        "{banded}"
    );
}

#[test]
fn a_generalisation_must_fit_the_items_type() {
    let ctx = ctx();
    let mut p = Policies::default();
    p.apply(&code("420502"), &role("420502", "civil-affairs"), &ctx)
        .unwrap();
    p.apply(
        &code("420502"),
        &request("r1", "420502/civil-affairs"),
        &ctx,
    )
    .unwrap();
    for (items, expect) in [
        (
            &[("name", "year")][..],
            "item name is a string item: year applies to date and date-time items",
        ),
        (
            &[("birth_date", "prefix:4")][..],
            "item birth_date is a date item: prefix:4 applies to string items",
        ),
        (
            &[("community_code", "band:10")][..],
            "item community_code is a string item: band:10 applies to number items",
        ),
    ] {
        let mut g = grant("g1", "420502/civil-affairs", items, None);
        g.access_request = Some("r1".into());
        let before = p.clone();
        let err = p
            .apply(&code("420502001"), &PolicyCommand::ApproveAccess(g), &ctx)
            .unwrap_err();
        assert!(err.contains(expect), "{err}");
        assert_eq!(p, before);
    }
    let mut g = grant(
        "g1",
        "420502/civil-affairs",
        &[("birth_date", "year"), ("community_code", "prefix:6")],
        None,
    );
    g.access_request = Some("r1".into());
    p.apply(&code("420502001"), &PolicyCommand::ApproveAccess(g), &ctx)
        .unwrap();
}

#[test]
fn a_grant_that_leaks_under_a_republished_catalog_is_refused_at_read_time() {
    // Published without the building code's parts: sending it clear beside a withheld
    // community code looked harmless.
    let mut before = residents();
    let n = before.item_index("building_code").unwrap();
    before.items[n].embeds.clear();
    before.validate().unwrap();
    let ctx = Ctx {
        published: before.shared_view(),
    };
    let mut p = Policies::default();
    p.apply(&code("420502"), &role("420502", "civil-affairs"), &ctx)
        .unwrap();
    p.apply(
        &code("420502"),
        &request("r1", "420502/civil-affairs"),
        &ctx,
    )
    .unwrap();
    let mut g = grant(
        "g1",
        "420502/civil-affairs",
        &[("building_code", "clear"), ("name", "clear")],
        Some("withhold"),
    );
    g.access_request = Some("r1".into());
    p.apply(&code("420502001"), &PolicyCommand::ApproveAccess(g), &ctx)
        .unwrap();
    let li = asker("420502", "420502/civil-affairs");
    let producer = code("420502001");
    p.decide(&producer, &before, &li, "2026-11-28").unwrap();
    // Republished with the parts: the next read is refused, saying why and what to change.
    let err = p
        .decide(&producer, &residents(), &li, "2026-11-28")
        .unwrap_err();
    let Refusal::Leaks(leaks) = &err else {
        panic!("{err}")
    };
    assert_eq!(leaks.decision.grant, "g1");
    assert!(
        err.to_string().contains(
            "grant g1 lets its reader rebuild what it hides: community_code is withheld, but building_code sends its characters 1-12 (community), which hold community_code"
        ),
        "{err}"
    );
}

#[test]
fn two_grants_to_one_reader_are_checked_together() {
    // One approval masks the ID number; a second, for another purpose, would send the birth
    // date: each alone hides the ID number, the two joined on the key rebuild it.
    let masked = grant(
        "g1",
        "420502/civil-affairs",
        &[("id_number", "mask:6:4"), ("sex", "clear")],
        Some("withhold"),
    );
    let mut p = policies(masked);
    let ctx = ctx();
    let second = |id: &str, items: &[(&str, &str)]| {
        let mut g = grant(id, "420502/civil-affairs", items, Some("withhold"));
        g.purpose = "age statistics".into();
        g.access_request = Some("r2".into());
        PolicyCommand::ApproveAccess(g)
    };
    let mut asking = request("r2", "420502/civil-affairs");
    if let PolicyCommand::RequestAccess(r) = &mut asking {
        r.purpose = "age statistics".into();
    }
    p.apply(&code("420502"), &asking, &ctx).unwrap();
    let err = p
        .apply(
            &code("420502001"),
            &second("g2", &[("birth_date", "clear")]),
            &ctx,
        )
        .unwrap_err();
    assert!(
        err.contains("grant g1, taken with grant g2, which the same reader holds, lets its reader rebuild what it hides: id_number mask:6:4 hides the birth date, which birth_date sends in clear under another grant the same reader holds"),
        "{err}"
    );
    // The birth year leaves the month and day, which the check digit g1 sends narrows to about
    // 34: refused too, seen from g1.
    let err = p
        .apply(
            &code("420502001"),
            &second("g2", &[("birth_date", "year")]),
            &ctx,
        )
        .unwrap_err();
    assert!(
        err.contains("grant g1, taken with grant g2, which the same reader holds, lets its reader rebuild what it hides: id_number mask:6:4 hides the birth date, which birth_date sends as year under another grant the same reader holds, leaving about 34 candidates"),
        "{err}"
    );
    // Names beside the masked ID number: allowed.
    p.apply(
        &code("420502001"),
        &second("g2", &[("name", "clear")]),
        &ctx,
    )
    .unwrap();

    // Two grants that were each accepted alone (made before the rule, say) are refused at
    // read time, under either purpose.
    let mut both = p.clone();
    both.grants.get_mut("g2").unwrap().items = [("birth_date".to_string(), Action::Clear)].into();
    let li = asker("420502", "420502/civil-affairs");
    let err = both
        .decide(&code("420502001"), &residents(), &li, "2026-11-28")
        .unwrap_err();
    assert!(
        matches!(&err, Refusal::Leaks(l) if l.alongside == ["g2"]),
        "{err}"
    );
    let by_age = Asker {
        purpose: "age statistics".into(),
        ..li.clone()
    };
    assert!(matches!(
        both.decide(&code("420502001"), &residents(), &by_age, "2026-11-28"),
        Err(Refusal::Leaks(_))
    ));
    p.decide(&code("420502001"), &residents(), &li, "2026-11-28")
        .unwrap();
}
