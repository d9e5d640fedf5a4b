use tierlink_core::catalog::{RecordSchema, parse_catalogs};

use super::*;

#[test]
fn generated_records_pass_their_catalogs() {
    let people = residents("420502001", 2000, 5);
    for (file, columns, rows) in [
        (
            include_str!("../../../../schema/examples/household-register.json"),
            HOUSEHOLD_COLUMNS,
            household_register(&people, 40, 6).rows,
        ),
        (
            include_str!("../../../../schema/examples/social-insured.json"),
            INSURED_COLUMNS,
            insured_persons(&people, 7),
        ),
        (
            include_str!("../../../../schema/examples/residents.json"),
            RESIDENT_COLUMNS,
            residents("420502001", 2000, 1),
        ),
        (
            include_str!("../../../../schema/examples/buildings.json"),
            BUILDING_COLUMNS,
            buildings("420502001", 500, 2),
        ),
    ] {
        let catalog = parse_catalogs(file, "example").unwrap().remove(0);
        let schema = RecordSchema::new(&catalog).unwrap();
        let columns = schema.columns(columns).unwrap();
        let rows = schema.rows(&columns, rows).unwrap();
        assert!(!rows.is_empty());
    }
    assert_eq!(residents("420502001", 5, 9), residents("420502001", 5, 9));
}

/// The generated values agree with what the catalogs say their codes embed: an ID number's
/// birth date and sex, a grid or building code's community.
#[test]
fn generated_codes_carry_what_their_parts_declare() {
    use tierlink_core::catalog::PartAs;
    for (file, columns, rows) in [
        (
            include_str!("../../../../schema/examples/residents.json"),
            RESIDENT_COLUMNS,
            residents("420502001", 2000, 3),
        ),
        (
            include_str!("../../../../schema/examples/buildings.json"),
            BUILDING_COLUMNS,
            buildings("420502001", 1210, 4),
        ),
    ] {
        let catalog = parse_catalogs(file, "example").unwrap().remove(0);
        let at = |code: &str| columns.iter().position(|c| *c == code);
        let mut checked = 0;
        for item in catalog.items.iter().filter(|i| !i.embeds.is_empty()) {
            let Some(e) = at(&item.code) else { continue };
            for part in &item.embeds {
                let Some(h) = part.holds.as_deref().and_then(at) else {
                    continue;
                };
                for row in &rows {
                    let chars = &row[e][part.from as usize - 1..part.to as usize];
                    let held = &row[h];
                    let agrees = match part.carries {
                        PartAs::Same => chars == held,
                        PartAs::Date => chars == held.replace('-', ""),
                        PartAs::Parity => {
                            let odd = chars.parse::<u32>().unwrap() % 2 == 1;
                            held == if odd { "1" } else { "2" }
                        }
                        PartAs::Check => true,
                    };
                    assert!(
                        agrees,
                        "{} {:?}: {} vs {held}",
                        item.code, part.part, row[e]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 1210, "{checked}");
    }
}

/// The register's differences from the residents, found by comparing the two on the ID number.
fn differences(residents: &[Vec<String>], register: &[Vec<String>]) -> Vec<Mismatch> {
    use std::collections::BTreeMap;
    let by_id = |rows: &[Vec<String>], at: [usize; 3]| -> BTreeMap<String, (String, String)> {
        rows.iter()
            .map(|r| (r[at[0]].clone(), (r[at[1]].clone(), r[at[2]].clone())))
            .collect()
    };
    let column = |columns: &[&str], code: &str| columns.iter().position(|c| *c == code).unwrap();
    let collected = by_id(
        residents,
        ["id_number", "name", "household_address"].map(|c| column(RESIDENT_COLUMNS, c)),
    );
    let registered = by_id(
        register,
        ["id_number", "name", "registered_address"].map(|c| column(HOUSEHOLD_COLUMNS, c)),
    );
    assert_eq!(registered.len(), register.len(), "one row per ID number");
    let mut found = Vec::new();
    for (id, (name, address)) in &collected {
        match registered.get(id) {
            None => found.push(Mismatch::NotRegistered(id.clone())),
            Some((n, _)) if n != name => found.push(Mismatch::Name(id.clone())),
            Some((_, a)) if a != address => found.push(Mismatch::Address(id.clone())),
            Some(_) => {}
        }
    }
    found.extend(
        registered
            .keys()
            .filter(|id| !collected.contains_key(*id))
            .map(|id| Mismatch::NotCollected(id.clone())),
    );
    found
}

#[test]
fn the_register_differs_from_the_residents_exactly_where_it_says() {
    let people = residents("420502001", 500, 8);
    let ids: std::collections::BTreeSet<&String> = people.iter().map(|p| &p[1]).collect();
    assert_eq!(
        ids.len(),
        people.len(),
        "a seed giving no repeated ID number"
    );
    let register = household_register(&people, 10, 9);
    let mut said = register.mismatches.clone();
    let mut found = differences(&people, &register.rows);
    said.sort();
    found.sort();
    assert_eq!(found, said);
    let kinds = |pick: fn(&Mismatch) -> bool| said.iter().filter(|m| pick(m)).count();
    assert_eq!(
        [
            kinds(|m| matches!(m, Mismatch::Address(_))),
            kinds(|m| matches!(m, Mismatch::Name(_))),
            kinds(|m| matches!(m, Mismatch::NotRegistered(_))),
            kinds(|m| matches!(m, Mismatch::NotCollected(_))),
        ],
        [3, 3, 2, 2]
    );
    // 500 residents, 2 left out, 2 added.
    assert_eq!(register.rows.len(), 500);
    assert_eq!(household_register(&people, 10, 9).rows, register.rows);

    let exact = household_register(&people, 0, 9);
    assert!(exact.mismatches.is_empty());
    assert!(differences(&people, &exact.rows).is_empty());
    assert_eq!(household_register(&people[..3], 10, 9).mismatches.len(), 3);
}

#[test]
fn insured_persons_are_most_of_the_residents_as_collected() {
    let people = residents("420502001", 1000, 10);
    let insured = insured_persons(&people, 11);
    assert!((700..=900).contains(&insured.len()), "{}", insured.len());
    let column = |code: &str| INSURED_COLUMNS.iter().position(|c| *c == code).unwrap();
    let resident = |id: &str| {
        people
            .iter()
            .find(|p| p[1] == id)
            .expect("every insured person is a resident")
    };
    for row in &insured {
        let person = resident(&row[column("id_number")]);
        assert_eq!(row[column("name")], person[2]);
        let born: u32 = row[column("birth_date")][..4].parse().unwrap();
        assert_eq!(
            row[column("pension_status")] == "3",
            born <= 1966,
            "{row:?}"
        );
    }
    let ids: std::collections::BTreeSet<&String> =
        insured.iter().map(|r| &r[column("insured_id")]).collect();
    assert_eq!(ids.len(), insured.len());
    assert_eq!(insured_persons(&people, 11), insured);
}
