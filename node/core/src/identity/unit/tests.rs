use super::*;

fn unit(code: &str, tier: Tier, parent: Option<&str>) -> Unit {
    Unit {
        code: code.parse().unwrap(),
        tier,
        parent: parent.map(|p| p.parse().unwrap()),
        name: "x".into(),
    }
}

#[test]
fn codes_are_six_or_nine_digits() {
    assert!("420500".parse::<NodeCode>().is_ok());
    assert!("420502001".parse::<NodeCode>().is_ok());
    for bad in ["", "42050", "4205001", "42050a", "4205020011"] {
        assert!(
            matches!(bad.parse::<NodeCode>(), Err(UnitError::BadCode(_))),
            "{bad}"
        );
    }
}

#[test]
fn tiers_chain_by_prefix() {
    unit("420500", Tier::City, None).validate().unwrap();
    unit("420502", Tier::District, Some("420500"))
        .validate()
        .unwrap();
    unit("420502001", Tier::Street, Some("420502"))
        .validate()
        .unwrap();
    // Beijing: the municipality's districts sit under 11.
    unit("110107", Tier::District, Some("110000"))
        .validate()
        .unwrap();
}

#[test]
fn wrong_places_are_refused() {
    let cases = [
        unit("420502", Tier::City, None),
        unit("420500", Tier::District, Some("420500")),
        unit("420502001", Tier::Street, Some("420503")),
        unit("420502000", Tier::Street, Some("420502")),
        unit("420602", Tier::District, Some("420500")),
        unit("420500", Tier::City, Some("420000")),
        unit("420502", Tier::District, None),
        unit("420502001", Tier::Street, Some("420500")),
    ];
    for u in cases {
        assert!(u.validate().is_err(), "{u:?} should be refused");
    }
}
