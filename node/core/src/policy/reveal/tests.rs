use super::*;
use crate::catalog::parse_catalogs;

fn residents() -> Catalog {
    parse_catalogs(
        include_str!("../../../../../schema/examples/residents.json"),
        "residents.json",
    )
    .unwrap()
    .remove(0)
}

/// The reveal of `catalog` with the named items' actions and every other item withheld.
fn reveal<'a>(catalog: &'a Catalog, named: &[(&str, &str)], rows: Option<&str>) -> Reveal<'a> {
    let actions = catalog
        .items
        .iter()
        .map(|i| {
            named
                .iter()
                .find(|(code, _)| *code == i.code)
                .map_or(Action::Withhold, |(_, a)| a.parse().unwrap())
        })
        .collect();
    let rows: Option<RowScope> = rows.map(|r| r.parse().unwrap());
    Reveal::new(catalog, actions, rows.as_ref())
}

fn describe(r: &Reveal, code: &str) -> String {
    r.describe(r.catalog.item_index(code).unwrap())
}

#[test]
fn a_mask_and_a_clear_birth_date_rebuild_the_id_number() {
    let c = residents();
    let r = reveal(
        &c,
        &[
            ("id_number", "mask:6:4"),
            ("birth_date", "clear"),
            ("sex", "clear"),
        ],
        None,
    );
    assert_eq!(
        describe(&r, "id_number"),
        "reveals all of it: birth date also from birth_date"
    );
    let leaks = r.leaks();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert!(
        leaks[0].starts_with(
            "id_number mask:6:4 hides the birth date, which birth_date sends in clear"
        ),
        "{leaks:?}"
    );
}

#[test]
fn a_partial_view_is_shown_but_is_not_a_leak() {
    let c = residents();
    let r = reveal(
        &c,
        &[
            ("id_number", "mask:6:0"),
            ("birth_date", "clear"),
            ("sex", "clear"),
        ],
        None,
    );
    assert_eq!(
        describe(&r, "id_number"),
        "reveals 1-14 of 18: birth date also from birth_date"
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
    // The year and month of a date; the digits a generalisation keeps.
    let r = reveal(
        &c,
        &[
            ("id_number", "mask:6:4"),
            ("birth_date", "year-month"),
            ("sex", "clear"),
        ],
        None,
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(
        describe(&r, "id_number"),
        "reveals 1-12, 15-18 of 18: birth date also from birth_date"
    );
    assert_eq!(
        describe(&r, "birth_date"),
        "reveals 1-6 of 8 digits (YYYYMMDD)"
    );
    assert_eq!(describe(&r, "name"), "reveals nothing");
}

#[test]
fn a_check_character_with_all_but_one_other_gives_the_missing_one() {
    let c = residents();
    // mask:6:3 hides only the 15th character beside the birth date: the check digit gives it.
    let r = reveal(
        &c,
        &[
            ("id_number", "mask:6:3"),
            ("birth_date", "clear"),
            ("sex", "clear"),
        ],
        None,
    );
    assert!(r.whole(c.item_index("id_number").unwrap()));
    // Two unknown characters stay unknown.
    let r = reveal(
        &c,
        &[
            ("id_number", "mask:6:2"),
            ("birth_date", "clear"),
            ("sex", "clear"),
        ],
        None,
    );
    assert!(!r.whole(c.item_index("id_number").unwrap()));
}

#[test]
fn parity_gives_the_sex_and_parts_give_the_community() {
    let c = residents();
    let r = reveal(
        &c,
        &[("id_number", "mask:0:2"), ("birth_date", "year")],
        None,
    );
    assert_eq!(
        describe(&r, "sex"),
        "reveals all of it: from id_number's sex"
    );
    let leaks = r.leaks();
    assert!(
        leaks.iter().any(|l| l.starts_with(
            "sex is withheld, but id_number mask:0:2 sends its 17th character, whose parity gives the sex: send sex, or mask id_number's 17th character (e.g. mask:0:1)"
        )),
        "{leaks:?}"
    );
    for embedder in ["grid_code", "building_code"] {
        let r = reveal(&c, &[(embedder, "clear")], None);
        let leaks = r.leaks();
        assert!(
            leaks[0].starts_with(&format!("community_code is withheld, but {embedder} sends its characters 1-12 (community), which hold community_code")),
            "{leaks:?}"
        );
        assert_eq!(
            describe(&r, "community_code"),
            format!("reveals all of it: from {embedder}'s community")
        );
    }
    // A prefix of the grid code gives the street but not the community: no leak.
    let r = reveal(&c, &[("grid_code", "prefix:9")], None);
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(
        describe(&r, "community_code"),
        "reveals 1-9 of 12: from grid_code's community"
    );
    // The row scope gives the scoped item's first characters.
    let r = reveal(
        &c,
        &[("community_code", "prefix:6")],
        Some("community_code:420502001"),
    );
    assert_eq!(
        describe(&r, "community_code"),
        "reveals 1-9 of 12: the first 9 from the row scope"
    );
}

#[test]
fn hashes_of_few_values_or_of_half_known_items_are_refused() {
    let c = residents();
    for (item, why) in [
        ("birth_date", "(a date)"),
        ("sex", "(a code table of 4 codes)"),
        ("floating", "(true or false)"),
        ("nationality", "(its pattern [A-Z]{3} allows no more)"),
        ("community_code", "(the catalog marks it guessable)"),
        ("registered_on", "(a date)"),
    ] {
        let r = reveal(&c, &[(item, "hash")], None);
        let leaks = r.leaks();
        assert_eq!(leaks.len(), 1, "{item}: {leaks:?}");
        assert!(
            leaks[0].starts_with(&format!("{item} is hashed, but it has"))
                && leaks[0].contains(why),
            "{leaks:?}"
        );
    }
    for item in ["name", "phone", "person_id", "current_address"] {
        assert_eq!(
            reveal(&c, &[(item, "hash")], None).leaks(),
            Vec::<String>::new(),
            "{item}"
        );
    }
    let r = reveal(&c, &[("id_number", "hash"), ("birth_date", "clear")], None);
    assert!(r.leaks()[0].starts_with("id_number is hashed, but birth_date gives its characters 7-14 (birth date), so the hash only hides the rest"), "{:?}", r.leaks());
    // A number of few digits, and a key that travels hashed.
    let mut c = residents();
    c.items[0].pattern = Some("P[0-9]{5}".into());
    let wage = crate::catalog::InformationItem {
        code: "wage".into(),
        name: "wage".into(),
        data_type: DataType::Number,
        length: Some(5),
        ..c.items[2].clone()
    };
    c.items.push(wage);
    let r = reveal(&c, &[("wage", "hash"), ("name", "clear")], None);
    let leaks = r.leaks();
    assert!(leaks.iter().any(|l| l.starts_with("wage is hashed, but it has only about 100 thousand possible values (numbers of at most 5 digits)")), "{leaks:?}");
    assert!(
        leaks.iter().any(|l| l.starts_with("record keys travel hashed (person_id is not sent in clear), but person_id has only about 100 thousand possible values")),
        "{leaks:?}"
    );
}

#[test]
fn pattern_languages_are_counted() {
    let count = |p: &str| language(&regex_syntax::Parser::new().parse(p).unwrap());
    assert_eq!(count("[0-9]{12}"), 1e12);
    assert_eq!(count("1[3-9][0-9]{9}"), 7e9);
    assert_eq!(count("[0-9]{6}|[0-9]{9}"), 1e6 + 1e9);
    assert_eq!(count("[A-Z]{2,3}"), 26f64.powi(2) + 26f64.powi(3));
    assert_eq!(count("a-b"), 1.0);
    assert!(count("[0-9]+").is_infinite());
    assert!(count("1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8}") > GUESSABLE_BELOW);
}
