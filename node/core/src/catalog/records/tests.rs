use base64::Engine;

use super::*;
use crate::catalog::parse_catalogs;

fn residents() -> Catalog {
    let text = include_str!("../../../../../schema/examples/residents.json");
    parse_catalogs(text, "residents.json").unwrap().remove(0)
}

fn values(pairs: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .unzip()
}

const GOOD: &[(&str, &str)] = &[
    ("person_id", "P000001"),
    ("id_number", "11010519491231002X"),
    ("name", "张三"),
    ("sex", "2"),
    ("birth_date", "1949-12-31"),
    ("current_address", "西陵一路 1 号"),
    ("community_code", "420502001001"),
    ("floating", "0"),
    ("registered_on", "2024-03-01"),
];

#[test]
fn a_good_record_is_normalised_and_keyed() {
    let schema = RecordSchema::new(&residents()).unwrap();
    let (headers, vals) = values(GOOD);
    let columns = schema.columns(&headers).unwrap();
    let row = schema.row(1, &columns, vals).unwrap();
    assert_eq!(row.key, "P000001");
    assert_eq!(row.values.len(), residents().items.len());
    let floating = residents().item_index("floating").unwrap();
    assert_eq!(row.values[floating], "false");
}

#[test]
fn each_bad_value_is_named() {
    let schema = RecordSchema::new(&residents()).unwrap();
    let cases = [
        ("id_number", "110105194912310021", "GB 11643"),
        ("sex", "7", "code table"),
        ("birth_date", "1949-02-30", "not a date"),
        ("phone", "12345", "pattern"),
        ("floating", "yes", "boolean"),
        (
            "name",
            &"长".repeat(51),
            "is 51 characters long, over the item's length of 50",
        ),
        ("person_id", "", "required"),
    ];
    for (item, bad, expect) in cases {
        let mut pairs: Vec<(&str, &str)> =
            GOOD.iter().filter(|(k, _)| *k != item).copied().collect();
        pairs.push((item, bad));
        let (headers, vals) = values(&pairs);
        let columns = schema.columns(&headers).unwrap();
        let errors = schema.row(4, &columns, vals).unwrap_err();
        assert_eq!(errors.len(), 1, "{item}: {errors:?}");
        assert_eq!(errors[0].item, item);
        assert_eq!(errors[0].record, 4);
        let key = (item != "person_id").then(|| "P000001".to_string());
        assert_eq!(
            errors[0].key, key,
            "{item}: the key is named when it is valid"
        );
        assert!(
            errors[0].problem.contains(expect),
            "{item}: {}",
            errors[0].problem
        );
    }
}

#[test]
fn headers_may_be_item_names_but_not_unknown_or_repeated() {
    let schema = RecordSchema::new(&residents()).unwrap();
    assert_eq!(
        schema.columns(&["公民身份号码 citizen ID number"]).unwrap(),
        vec![1]
    );
    assert!(
        schema
            .columns(&["salary"])
            .unwrap_err()
            .contains("not an item")
    );
    assert!(
        schema
            .columns(&["name", "姓名 name"])
            .unwrap_err()
            .contains("second time")
    );
}

#[test]
fn a_batch_with_a_repeated_key_or_a_bad_record_is_refused_whole() {
    let schema = RecordSchema::new(&residents()).unwrap();
    let (headers, vals) = values(GOOD);
    let columns = schema.columns(&headers).unwrap();
    let errors = schema
        .rows(&columns, vec![vals.clone(), vals.clone()])
        .unwrap_err();
    assert_eq!(errors[0].record, 2);
    assert!(errors[0].problem.contains("also appears in record 1"));

    let mut bad = vals.clone();
    bad[3] = "x".into();
    let errors = schema.rows(&columns, vec![vals, bad]).unwrap_err();
    assert_eq!(
        (errors.len(), errors[0].record, errors[0].item.as_str()),
        (1, 2, "sex")
    );
}

#[test]
fn gb11643_check_digits() {
    assert!(gb11643_valid("11010519491231002X"));
    assert!(
        !gb11643_valid("11010519491231002x"),
        "stored, the check character is an uppercase X"
    );
    assert!(!gb11643_valid("110105194912310021"));
    assert!(!gb11643_valid("11010519491331002X"), "month 13");
    assert!(!gb11643_valid("1101051949123100"));
    let id = format!(
        "42050219900101123{}",
        gb11643_check_digit("42050219900101123").unwrap()
    );
    assert!(gb11643_valid(&id));
}

/// A catalog with one item of every type, each at the length given (`None`: its default), and a
/// string key.
fn every_type(length: Option<u32>) -> Catalog {
    let types = [
        "string",
        "number",
        "date",
        "datetime",
        "timestamp",
        "boolean",
        "binary",
    ];
    let mut items = vec![serde_json::json!({
        "code": "key", "name": "key", "type": "string", "length": 40,
        "primary_key": true, "required": true, "sharing": "unconditional", "grade": "general",
    })];
    for t in types {
        let mut item = serde_json::json!({
            "code": format!("a_{t}"), "name": t, "type": t,
            "sharing": "unconditional", "grade": "general",
        });
        // The fixed formats keep their own lengths: a date is never a million characters.
        if let Some(l) = length.filter(|_| matches!(t, "string" | "number" | "binary")) {
            item["length"] = l.into();
        }
        items.push(item);
    }
    let json = serde_json::json!({
        "code": "103001001/000098", "name": "every type", "summary": "every type at its longest",
        "provider": { "name": "p", "code": "p" }, "kind": "base", "format": "database",
        "update_cycle": "daily", "sharing": { "type": "unconditional", "method": "interface" },
        "open_type": "not_open", "published": "2026-01-01", "items": items,
    });
    parse_catalogs(&json.to_string(), "every-type.json")
        .unwrap()
        .remove(0)
}

/// The largest value of `item` its checks admit, as bytes go: four-byte characters, a sign and a
/// point, the longest written forms.
fn longest(item: &crate::catalog::InformationItem) -> String {
    let l = item.max_length() as usize;
    match item.data_type {
        DataType::String => "𠮷".repeat(l),
        DataType::Number => format!("-9.{}", "9".repeat(l - 1)),
        DataType::Date => "2026-01-15".into(),
        DataType::Datetime => "2026-01-15T08:30:00.123456789+08:00".into(),
        DataType::Timestamp => i64::MIN.to_string(),
        DataType::Boolean => "false".into(),
        DataType::Binary => base64::engine::general_purpose::STANDARD.encode(vec![0xff; l]),
    }
}

#[test]
fn no_record_a_catalog_admits_is_larger_than_its_maximum_record_size() {
    use prost::Message;
    for catalog in [
        every_type(None),
        every_type(Some(3)),
        every_type(Some(20_000)),
    ] {
        let schema = RecordSchema::new(&catalog).unwrap();
        let codes: Vec<String> = catalog.items.iter().map(|i| i.code.clone()).collect();
        let columns = schema.columns(&codes).unwrap();
        let mut values: Vec<String> = catalog.items.iter().map(longest).collect();
        values[0] = "𠮷".repeat(40);
        let row = schema.row(1, &columns, values.clone()).unwrap();
        let stored = tierlink_proto::v1::Record {
            key: row.key,
            version: u64::MAX,
            updated_at_micros: i64::MIN,
            values: row.values,
        };
        let bound = catalog.max_record_bytes();
        let size = stored.encoded_len() as u64;
        assert!(size <= bound, "{size} > {bound}");
        // Hashing makes a short value longer: every value hashed is within the bound too.
        let hashed = tierlink_proto::v1::Record {
            key: "k".repeat(crate::policy::HASH_CHARS),
            values: vec!["h".repeat(crate::policy::HASH_CHARS); values.len()],
            ..stored.clone()
        };
        assert!(hashed.encoded_len() as u64 <= bound);
        // The bound is close: at lengths that matter, within a percent.
        if catalog.items[1].max_length() >= 4_000 {
            assert!(size as f64 > 0.99 * bound as f64, "{size} of {bound}");
        }
        // One character more than an item's length is refused, naming the length. (A date, a
        // date-time, a timestamp or a boolean in its one form is no longer than its default.)
        for n in 1..values.len() {
            let mut over = values.clone();
            let item = &catalog.items[n];
            over[n] =
                match item.data_type {
                    DataType::Date
                    | DataType::Datetime
                    | DataType::Timestamp
                    | DataType::Boolean => continue,
                    DataType::Binary => base64::engine::general_purpose::STANDARD
                        .encode(vec![0xff; item.max_length() as usize + 1]),
                    DataType::Number => format!("{}9", over[n]),
                    _ => format!("{}𠮷", over[n]),
                };
            let errors = schema.row(1, &columns, over).unwrap_err();
            let problem = &errors[0].problem;
            assert_eq!(errors[0].item, item.code, "{problem}");
            let max = crate::limits::thousands(item.max_length().into());
            assert!(
                problem.contains(&format!("over {max} "))
                    || problem.contains(&format!("length of {max} ")),
                "{problem}"
            );
            assert_eq!(
                problem.contains("declare its length"),
                item.length.is_none(),
                "{problem}"
            );
        }
    }
}

#[test]
fn a_fixed_width_code_must_be_exactly_its_length() {
    let schema = RecordSchema::new(&residents()).unwrap();
    let mut pairs = GOOD.to_vec();
    pairs.push(("grid_code", "4205020010010"));
    let (headers, vals) = values(&pairs);
    let errors = schema
        .row(1, &schema.columns(&headers).unwrap(), vals)
        .unwrap_err();
    assert_eq!(errors[0].item, "grid_code");
    assert!(
        errors[0].problem.contains(
            "is 13 characters long, but grid_code is a fixed-width code of 14 characters"
        ),
        "{}",
        errors[0].problem
    );
    // An item carried whole by another's part is fixed-width too.
    let catalog = residents();
    let community = &catalog.items[catalog.item_index("community_code").unwrap()];
    assert!(community.fixed_width(&catalog));
    let name = &catalog.items[catalog.item_index("name").unwrap()];
    assert!(!name.fixed_width(&catalog));
}
