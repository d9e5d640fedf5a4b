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
    assert_eq!(
        leaks,
        [
            "id_number mask:6:4 hides the birth date, which birth_date sends in clear: withhold birth_date, or withhold id_number"
        ]
    );
    // No mask is enough beside the clear birth date and sex: mask:6:0 leaves the sequence
    // digits 15-17 with 17's parity given by the sex, 500, and hiding region digits too adds
    // nothing (the reader guesses the region from the unit).
    let r = reveal(
        &c,
        &[
            ("id_number", "withhold"),
            ("birth_date", "clear"),
            ("sex", "clear"),
        ],
        None,
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
}

/// The mask a message suggests (`mask more of ITEM (e.g. MASK)`), put in place of ITEM's
/// action beside `others`, meets the rule: the suggestion is searched with the same check.
fn assert_suggestion_passes(c: &Catalog, others: &[(&str, &str)], message: &str) {
    let (_, rest) = message
        .split_once("mask more of ")
        .unwrap_or_else(|| panic!("no mask suggested: {message}"));
    let (item, rest) = rest.split_once(" (e.g. ").unwrap();
    let (mask, _) = rest.split_once(')').unwrap();
    let mut named = others.to_vec();
    named.push((item, mask));
    let r = reveal(c, &named, None);
    assert_eq!(
        r.leaks(),
        Vec::<String>::new(),
        "{item} {mask} beside {others:?}"
    );
    assert!(!r.exposed(c.item_index(item).unwrap()));
}

#[test]
fn a_mask_beside_a_birth_month_or_year_leaves_a_few_candidates() {
    let c = residents();
    let id = c.item_index("id_number").unwrap();
    // The day's two digits, narrowed by the check digit: 31 / 11.
    let month = [("birth_date", "year-month"), ("sex", "clear")];
    let r = reveal(
        &c,
        &[&month[..], &[("id_number", "mask:6:4")]].concat(),
        None,
    );
    assert!(!r.whole(id));
    assert_eq!(r.candidates(id).map(f64::round), Some(3.0));
    let leaks = r.leaks();
    assert_eq!(
        leaks,
        [
            "id_number mask:6:4 hides the birth date, which birth_date sends as year-month, leaving about 3 candidates for id_number: withhold birth_date, or mask more of id_number (e.g. mask:6:1)"
        ]
    );
    assert_suggestion_passes(&c, &month, &leaks[0]);
    // Month and day: 12 × 31 / 11.
    let year = [("birth_date", "year"), ("sex", "clear")];
    let r = reveal(
        &c,
        &[&year[..], &[("id_number", "mask:6:4")]].concat(),
        None,
    );
    let leaks = r.leaks();
    assert_eq!(
        leaks,
        [
            "id_number mask:6:4 hides the birth date, which birth_date sends as year, leaving about 34 candidates for id_number: withhold birth_date, or mask more of id_number (e.g. mask:6:2)"
        ]
    );
    assert_suggestion_passes(&c, &year, &leaks[0]);
    // With the check digit hidden too, the day and three sequence digits, the last of them of a
    // parity the sex gives: 31 × 1,000 / 11 / 2.
    let r = reveal(
        &c,
        &[&month[..], &[("id_number", "mask:6:1")]].concat(),
        None,
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(r.candidates(id).map(f64::round), Some(1409.0));
    // The suggested generalisation passes too: mask:6:2 beside a clear birth date leaves 9,
    // beside its year 3,382.
    let clear = [("birth_date", "clear"), ("sex", "clear")];
    let r = reveal(
        &c,
        &[&clear[..], &[("id_number", "mask:6:2")]].concat(),
        None,
    );
    assert_eq!(
        r.leaks(),
        [
            "id_number mask:6:2 hides the birth date, which birth_date sends in clear, leaving about 9 candidates for id_number: withhold or generalise birth_date (year), or withhold id_number"
        ]
    );
    let r = reveal(
        &c,
        &[
            ("birth_date", "year"),
            ("sex", "clear"),
            ("id_number", "mask:6:2"),
        ],
        None,
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
}

#[test]
fn an_item_narrowed_by_another_or_by_the_row_scope_is_named_with_its_candidates() {
    let c = residents();
    // A withheld item is not sent: what other items give of it counts only when they give all
    // of it. The community gives a grid code's first 12 digits, leaving 100 cells.
    let r = reveal(&c, &[("community_code", "clear")], None);
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(
        describe(&r, "grid_code"),
        "reveals 1-12 of 14, about 100 candidates: community also from community_code"
    );
    let r = reveal(&c, &[("id_number", "mask:10:4"), ("sex", "clear")], None);
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(
        describe(&r, "birth_date"),
        "reveals 1-4 of 8 digits (YYYYMMDD), about 372 candidates: from id_number's birth date"
    );
    // A generalisation claims to hide the rest: the first nine digits of the community code
    // leave 1,000 communities, rows within ten of them only 100.
    let r = reveal(
        &c,
        &[("community_code", "prefix:9")],
        Some("community_code:4205020010"),
    );
    assert!(
        r.leaks().iter().any(|l| l.starts_with("community_code is sent as prefix:9, but the rows are limited to community_code within 4205020010, which narrows it, leaving about 100 candidates for it")),
        "{:?}",
        r.leaks()
    );
    let r = reveal(
        &c,
        &[("community_code", "prefix:9")],
        Some("community_code:420502001"),
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
    // A year-month on its own is not narrowed: its 31 days are its own.
    let r = reveal(&c, &[("birth_date", "year-month")], None);
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(
        describe(&r, "birth_date"),
        "reveals 1-6 of 8 digits (YYYYMMDD)"
    );
}

#[test]
fn a_partial_view_is_shown_but_is_not_a_leak() {
    let c = residents();
    let r = reveal(
        &c,
        &[("id_number", "mask:6:0"), ("birth_date", "clear")],
        None,
    );
    // The sequence digits 15-17; the check digit follows from them.
    assert_eq!(
        describe(&r, "id_number"),
        "reveals 1-14 of 18, about 1000 candidates: birth date also from birth_date"
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
    // With the sex in clear, digit 17's parity is known too: 500 are left, too few.
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
        r.candidates(c.item_index("id_number").unwrap()),
        Some(500.0)
    );
    assert_eq!(r.leaks().len(), 1);
    // The year and month of a date; the digits a generalisation keeps.
    let r = reveal(
        &c,
        &[
            ("id_number", "mask:6:1"),
            ("birth_date", "year-month"),
            ("sex", "clear"),
        ],
        None,
    );
    assert_eq!(r.leaks(), Vec::<String>::new());
    assert_eq!(
        describe(&r, "id_number"),
        "reveals 1-12, 18 of 18, about 1409 candidates: birth date also from birth_date"
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
        "reveals 1-9 of 12, about 1000 candidates: from grid_code's community"
    );
    // The row scope gives the scoped item's first characters.
    let r = reveal(
        &c,
        &[("community_code", "prefix:6")],
        Some("community_code:420502001"),
    );
    assert_eq!(
        describe(&r, "community_code"),
        "reveals 1-9 of 12, about 1000 candidates: the first 9 from the row scope"
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
    // Alone, with the sex it carries withheld: the region guessed, a century of birth dates and
    // the sequence are some 36.5 million values, hashed by a member in seconds.
    let r = reveal(&c, &[("id_number", "hash")], None);
    assert_eq!(
        r.leaks(),
        [
            "id_number is hashed, but it has only about 36.5 million possible values (a GB 11643 number: the region a reader guesses from the unit, a century of birth dates and 1,000 sequence numbers, the check digit following): every member holds the federation's hash key and can hash each one; withhold id_number or send it clear if the reader may see it"
        ]
    );
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

#[test]
fn positions_take_their_values_from_the_pattern_or_the_check() {
    let c = residents();
    let item = |code: &str| &c.items[c.item_index(code).unwrap()];
    let building = alphabet(item("building_code"), 18);
    assert_eq!(building[..12], [10.0; 12]);
    assert_eq!(building[12..14], [1.0, 1.0], "the literal -B");
    assert_eq!(building[14..], [10.0; 4]);
    // No pattern: digits, and GB 11643's check character 0-9 or X.
    let id = alphabet(item("id_number"), 18);
    assert_eq!(id[..17], [10.0; 17]);
    assert_eq!(id[17], 11.0);
    // A pattern of varying counts: its language size spread over the width.
    let mut odd = item("nationality").clone();
    odd.pattern = Some("[A-Z]{2,3}".into());
    let each = alphabet(&odd, 3)[0];
    assert!((each.powi(3) - (26f64.powi(2) + 26f64.powi(3))).abs() < 1.0);
}

#[test]
fn a_mask_that_hides_the_region_hides_nothing_the_unit_does_not_give() {
    let c = residents();
    let id = c.item_index("id_number").unwrap();
    // Region and birth date hidden, the birth date sent in clear: what is left is the region,
    // which a reader guesses from the unit the records come from.
    let clear = [("birth_date", "clear"), ("sex", "clear")];
    for hides_region in ["mask:0:4", "mask:3:4", "mask:0:10"] {
        let r = reveal(
            &c,
            &[&clear[..], &[("id_number", hides_region)]].concat(),
            None,
        );
        assert_eq!(r.candidates(id), Some(1.0), "{hides_region}");
        assert_eq!(
            r.leaks(),
            [format!(
                "id_number {hides_region} hides the birth date, which birth_date sends in clear, leaving only its region (characters 1-6), which a reader guesses from the unit the records come from: withhold birth_date, or withhold id_number"
            )]
        );
    }
    // Beside the year and month: the day, narrowed by the check digit.
    let month = [("birth_date", "year-month"), ("sex", "clear")];
    let r = reveal(
        &c,
        &[&month[..], &[("id_number", "mask:0:4")]].concat(),
        None,
    );
    assert_eq!(r.candidates(id).map(f64::round), Some(3.0));
    assert_eq!(r.leaks().len(), 1);
    // Alone, the birth date is what the mask hides: it stands.
    let r = reveal(&c, &[("sex", "clear"), ("id_number", "mask:0:4")], None);
    assert_eq!(r.leaks(), Vec::<String>::new());
    // The region and the sequence hidden beside a clear birth date, the sex withheld: the
    // three sequence digits are 1,000 candidates, as with the region shown.
    let r = reveal(
        &c,
        &[("birth_date", "clear"), ("id_number", "mask:0:0")],
        None,
    );
    assert_eq!(r.candidates(id), Some(1000.0));
    assert_eq!(r.leaks(), Vec::<String>::new());
}
