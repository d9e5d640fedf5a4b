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
