use tierlink_core::catalog::{RecordSchema, parse_catalogs};

use super::*;

#[test]
fn generated_records_pass_their_catalogs() {
    for (file, columns, rows) in [
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
