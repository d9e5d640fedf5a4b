use base64::Engine;

use std::collections::HashMap;

use chrono::NaiveDate;

use super::*;
use crate::catalog::{EXAMPLES, parse_catalogs};

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
            deleted: true,
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

/// A citizen ID number from its first 17 digits, with its check character.
fn id(first17: &str) -> String {
    format!("{first17}{}", gb11643_check_digit(first17).unwrap())
}

/// Checks [`GOOD`] with `changes` (item, value) made to it, returning the stored values by item
/// code, or the problems as `item: problem`.
fn check_resident(changes: &[(&str, &str)]) -> Result<HashMap<String, String>, Vec<String>> {
    let catalog = residents();
    let schema = RecordSchema::new(&catalog).unwrap();
    let mut pairs: Vec<(&str, &str)> = GOOD
        .iter()
        .filter(|(k, _)| changes.iter().all(|(c, _)| c != k))
        .copied()
        .collect();
    pairs.extend_from_slice(changes);
    let (headers, vals) = values(&pairs);
    let columns = schema.columns(&headers).unwrap();
    match schema.rows(&columns, vec![vals]) {
        Ok(mut rows) => Ok(catalog
            .items
            .iter()
            .map(|i| i.code.clone())
            .zip(rows.remove(0).values)
            .collect()),
        Err(errors) => Err(errors
            .into_iter()
            .map(|e| format!("{}: {}", e.item, e.problem))
            .collect()),
    }
}

/// The one problem `changes` make, which must name `item` and contain each of `words`.
fn refused(changes: &[(&str, &str)], item: &str, words: &[&str]) {
    let problems = check_resident(changes).unwrap_err();
    assert_eq!(problems.len(), 1, "{changes:?}: {problems:?}");
    assert!(
        problems[0].starts_with(&format!("{item}: ")),
        "{changes:?}: {problems:?}"
    );
    for word in words {
        assert!(problems[0].contains(word), "{changes:?}: {}", problems[0]);
    }
}

#[test]
fn an_id_number_with_a_lowercase_x_is_stored_with_an_uppercase_x() {
    let stored = check_resident(&[("id_number", "11010519491231002x")]).unwrap();
    assert_eq!(stored["id_number"], "11010519491231002X");
    // Padding is trimmed too, and the stored form is its own form.
    let stored = check_resident(&[("id_number", " 11010519491231002x\t")]).unwrap();
    assert_eq!(stored["id_number"], "11010519491231002X");
    let again = check_resident(&[("id_number", &stored["id_number"])]).unwrap();
    assert_eq!(again, stored);
    // Only the check character: an x anywhere else is no digit.
    refused(
        &[("id_number", "1101051949123100x2")],
        "id_number",
        &["17 digits and a check character"],
    );
}

#[test]
fn an_id_number_that_cannot_be_real_is_refused_naming_the_part() {
    // Region: the first two digits are no province.
    refused(
        &[("id_number", &id("99010519491231002"))],
        "id_number",
        &["region (characters 1–6)", "\"99\"", "GB/T 2260"],
    );
    refused(
        &[("id_number", &id("00010519491231002"))],
        "id_number",
        &["region"],
    );
    // Birth date: no such day, with a check character that fits the digits.
    refused(
        &[("id_number", &id("11010519491331002"))],
        "id_number",
        &[
            "birth date (characters 7–14)",
            "\"19491331\"",
            "not a real date",
        ],
    );
    refused(
        &[("id_number", &id("11010519490229002"))],
        "id_number",
        &["\"19490229\"", "not a real date"],
    );
    // Check character.
    refused(
        &[("id_number", "110105194912310021")],
        "id_number",
        &["check character (character 18) is 1", "give X"],
    );
    // Shape.
    refused(
        &[("id_number", "11010519491231002")],
        "id_number",
        &["fixed-width code of 18 characters"],
    );
}

#[test]
fn an_id_number_born_before_1900_or_after_today_is_refused() {
    let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    assert_eq!(gb11643_check(&id("11010519000101002"), today), Ok(()));
    assert_eq!(gb11643_check(&id("11010520261130002"), today), Ok(()));
    let born = |d: &str| NaiveDate::parse_from_str(d, "%Y%m%d").unwrap();
    assert_eq!(
        gb11643_check(&id("11010518991231002"), today),
        Err(IdNumberError::BirthOutOfRange(
            born("18991231"),
            "before 1900"
        ))
    );
    assert_eq!(
        gb11643_check(&id("11010520261201002"), today),
        Err(IdNumberError::BirthOutOfRange(
            born("20261201"),
            "after today"
        ))
    );
    // Through the record check, against the real today.
    refused(
        &[
            ("id_number", &id("11010529990101002")),
            ("birth_date", "2999-01-01"),
        ],
        "id_number",
        &["2999-01-01 is after today"],
    );
    // A Taiwan resident's residence permit (830000) follows GB 11643 and is accepted.
    assert_eq!(gb11643_check(&id("83000019800101002"), today), Ok(()));
}

#[test]
fn an_id_number_that_disagrees_with_the_birth_date_or_sex_is_refused_naming_both() {
    refused(
        &[("birth_date", "1949-12-30")],
        "id_number",
        &[
            "birth date (characters 7–14) \"19491231\"",
            "disagrees with birth_date \"1949-12-30\"",
        ],
    );
    // Digit 17 of 11010519491231002X is 2, even: a woman.
    refused(
        &[("sex", "1")],
        "id_number",
        &[
            "sex (character 17) \"2\" is even",
            "gives sex 2",
            "but sex is \"1\"",
        ],
    );
    let man = id("11010519491231001");
    assert!(check_resident(&[("id_number", &man), ("sex", "1")]).is_ok());
    refused(
        &[("id_number", &man)],
        "id_number",
        &["is odd", "gives sex 1"],
    );
    // Not known (0) and not stated (9) say nothing against the ID number.
    for sex in ["0", "9"] {
        assert!(check_resident(&[("sex", sex)]).is_ok(), "sex {sex}");
    }
    // An item that is itself wrong is named alone.
    refused(
        &[("birth_date", "1949-12-32")],
        "birth_date",
        &["not a date"],
    );
}

#[test]
fn a_code_that_holds_another_item_must_agree_with_it() {
    // residents: grid_code 1–12 and building_code 1–12 hold community_code.
    let stored = check_resident(&[
        ("grid_code", "42050200100107"),
        ("building_code", "420502001001-B0007"),
    ])
    .unwrap();
    assert_eq!(stored["grid_code"], "42050200100107");
    refused(
        &[("grid_code", "42050200100207")],
        "grid_code",
        &[
            "community (characters 1–12) \"420502001002\"",
            "disagrees with community_code \"420502001001\"",
        ],
    );
    refused(
        &[("building_code", "420502001003-B0007")],
        "building_code",
        &[
            "community (characters 1–12)",
            "community_code \"420502001001\"",
        ],
    );
    // Every catalog: a grid cell's code holds its street and community codes.
    let cells = EXAMPLES
        .iter()
        .find(|(f, _)| *f == "grid-cells.json")
        .map(|(f, t)| parse_catalogs(t, f).unwrap().remove(0))
        .unwrap();
    let schema = RecordSchema::new(&cells).unwrap();
    let columns = schema
        .columns(&["grid_code", "street_code", "community_code"])
        .unwrap();
    let row = |g: &str, s: &str, c: &str| vec![g.to_string(), s.to_string(), c.to_string()];
    assert!(
        schema
            .rows(
                &columns,
                vec![row("42050200100107", "420502001", "420502001001")]
            )
            .is_ok()
    );
    let errors = schema
        .rows(
            &columns,
            vec![row("42050200100107", "420502002", "420502001001")],
        )
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].item, "grid_code");
    assert!(errors[0].problem.contains("street_code \"420502002\""));
    assert_eq!(
        errors[0].key, None,
        "grid_code is the key, and it is at fault"
    );
}

#[test]
fn a_date_is_stored_only_as_yyyy_mm_dd() {
    for (written, stored) in [
        ("2023-01-05", "2023-01-05"),
        (" 2023-01-05", "2023-01-05"),
        ("2023-01-05 ", "2023-01-05"),
        ("\t2023-01-05\r", "2023-01-05"),
        ("   ", ""),
    ] {
        let values = check_resident(&[("inflow_date", written)]).unwrap();
        assert_eq!(values["inflow_date"], stored, "{written:?}");
    }
    for (written, hint) in [
        ("2023-1-5", " (2023-01-05)"),
        ("2023/01/05", " (2023-01-05)"),
        ("2023.1.5", " (2023-01-05)"),
        ("20230105", " (2023-01-05)"),
        ("+2023-01-05", ""),
        ("02023-01-05", ""),
        ("44931", ""),
        ("2023-01-05T00:00:00", ""),
        ("2023-02-29", ""),
        ("2023-01-05x", ""),
        ("二〇二三年一月五日", ""),
    ] {
        refused(
            &[("inflow_date", written)],
            "inflow_date",
            &[&format!(
                "{written:?} is not a date: write YYYY-MM-DD{hint}"
            )],
        );
    }
}

#[test]
fn dates_times_and_timestamps_each_have_one_form() {
    let form = ValueForm::Datetime;
    for ok in [
        "2026-01-15 08:30:00",
        "2026-01-15T08:30:00+08:00",
        "2026-01-15T00:30:00Z",
        "2026-01-15T00:30:00.250Z",
        "2026-01-15T08:30:00.123456789-05:30",
    ] {
        assert_eq!(form.stored(ok).as_deref(), Ok(ok));
        assert_eq!(form.stored(&format!(" {ok} ")).as_deref(), Ok(ok));
    }
    for (written, canonical) in [
        ("2026-01-15t00:30:00z", "2026-01-15T00:30:00Z"),
        ("2026-01-15 00:30:00Z", "2026-01-15T00:30:00Z"),
        ("2026-01-15T00:30:00+00:00", "2026-01-15T00:30:00Z"),
        ("2026-01-15T00:30:00.25Z", "2026-01-15T00:30:00.250Z"),
        ("2026-01-15T08:30:00", "2026-01-15 08:30:00"),
        ("2026-1-15 08:30:00", "2026-01-15 08:30:00"),
    ] {
        assert_eq!(
            form.stored(written),
            Err(format!(
                "{written:?} is not a date and time in its one form: write {canonical}"
            ))
        );
        assert_eq!(form.condition(written).as_deref(), Ok(canonical));
    }
    for bad in [
        "2026-01-15 8:30:00",
        "2026-01-15",
        "2026-01-15 08:30",
        "1768437000",
    ] {
        let problem = form.stored(bad).unwrap_err();
        assert!(
            problem.contains("is not a date and time: write YYYY-MM-DD HH:MM:SS, or RFC 3339"),
            "{problem}"
        );
        assert!(form.condition(bad).is_err(), "{bad}");
    }

    let form = ValueForm::Timestamp;
    for (written, stored) in [("1768437000", "1768437000"), (" -5 ", "-5"), ("0", "0")] {
        assert_eq!(form.stored(written).as_deref(), Ok(stored));
    }
    for (written, canonical) in [("+5", "5"), ("007", "7"), ("-0", "0")] {
        assert_eq!(
            form.stored(written),
            Err(format!(
                "{written:?} is not a timestamp in its one form, without + or leading zeros: write {canonical}"
            ))
        );
        assert_eq!(form.condition(written).as_deref(), Ok(canonical));
    }
    assert!(
        form.stored("1.5")
            .unwrap_err()
            .contains("seconds since 1970-01-01 UTC")
    );
}

#[test]
fn numbers_and_codes_take_no_stray_spaces_and_free_text_stays_as_written() {
    let buildings = EXAMPLES
        .iter()
        .find(|(f, _)| *f == "buildings.json")
        .map(|(f, t)| parse_catalogs(t, f).unwrap().remove(0))
        .unwrap();
    let schema = RecordSchema::new(&buildings).unwrap();
    let columns = schema
        .columns(&[
            "building_code",
            "community_code",
            "compound",
            "floors",
            "longitude",
            "building_name",
            "address",
        ])
        .unwrap();
    let check = |values: [&str; 5]| {
        let mut values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        values.extend(["1栋".to_string(), "西陵一路1号".to_string()]);
        schema
            .rows(&columns, vec![values])
            .map(|mut rows| rows.remove(0).values)
            .map_err(|e| {
                e.into_iter()
                    .map(|e| format!("{}: {}", e.item, e.problem))
                    .collect::<Vec<_>>()
            })
    };
    let stored = check([
        " 420502001001-B0007 ",
        "420502001001\t",
        "  夷陵 小区 ",
        " 12 ",
        "\u{3000}111.285\u{3000}",
    ])
    .unwrap();
    let at = |code: &str| buildings.item_index(code).unwrap();
    assert_eq!(stored[at("building_code")], "420502001001-B0007");
    assert_eq!(stored[at("community_code")], "420502001001");
    assert_eq!(
        stored[at("compound")],
        "  夷陵 小区 ",
        "free text is kept as written"
    );
    assert_eq!(stored[at("floors")], "12");
    assert_eq!(
        stored[at("longitude")],
        "111.285",
        "an ideographic space is whitespace too"
    );
    let good = ["420502001001-B0007", "420502001001", "x", "12", "111.285"];
    for (n, bad, problem) in [
        (
            3,
            "1 2",
            "floors: \"1 2\" is not a number: write digits, optionally signed and with a decimal point, and no spaces",
        ),
        (4, "111. 285", "longitude: \"111. 285\" is not a number"),
        (
            1,
            "420502 001001",
            "community_code: \"420502 001001\" has a space inside: community_code is a code, written without spaces",
        ),
        (
            0,
            "420502001001 B0007",
            "building_code: \"420502001001 B0007\" has a space inside",
        ),
    ] {
        let mut values = good;
        values[n] = bad;
        let problems = check(values).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(problem), "{problems:?}");
    }
    assert_eq!(
        ValueForm::of(&buildings.items[at("compound")], &buildings),
        ValueForm::Text
    );
    // A code whose pattern admits a space keeps it.
    let mut residents = residents();
    let n = residents.item_index("household_number").unwrap();
    residents.items[n].pattern = Some("[0-9]{3} [0-9]{3}".into());
    let schema = RecordSchema::new(&residents).unwrap();
    let (headers, mut vals) = values(GOOD);
    let mut headers = headers;
    headers.push("household_number".into());
    vals.push(" 123 456 ".into());
    let row = schema
        .row(1, &schema.columns(&headers).unwrap(), vals)
        .unwrap();
    assert_eq!(row.values[n], "123 456");
}

#[test]
fn conditions_compare_in_the_stored_form_however_typed() {
    let catalog = residents();
    let form =
        |code: &str| ValueForm::of(&catalog.items[catalog.item_index(code).unwrap()], &catalog);
    assert_eq!(form("id_number"), ValueForm::IdNumber);
    for typed in [
        "42050219881108109x",
        "42050219881108109X",
        " 42050219881108109x ",
    ] {
        assert_eq!(
            form("id_number").condition(typed).as_deref(),
            Ok("42050219881108109X")
        );
    }
    for typed in [
        "2023-01-05",
        "2023-1-5",
        " 2023-01-05",
        "2023/01/05",
        "2023/1/5",
        "2023.01.05",
        "20230105",
    ] {
        assert_eq!(
            form("birth_date").condition(typed).as_deref(),
            Ok("2023-01-05"),
            "{typed:?}"
        );
    }
    for typed in [
        "44931",
        "+2023-01-05",
        "05/01/2023",
        "2023-13-05",
        "2023-01-05T00:00:00",
    ] {
        assert_eq!(
            form("birth_date").condition(typed),
            Err(format!("{typed:?} is not a date: write YYYY-MM-DD")),
        );
    }
    assert_eq!(form("floating").condition("1").as_deref(), Ok("true"));
    assert_eq!(
        form("community_code")
            .condition(" 420502001001 ")
            .as_deref(),
        Ok("420502001001")
    );
    assert_eq!(form("name").condition(" 张三").as_deref(), Ok(" 张三"));
}

#[test]
fn a_number_has_one_spelling_whatever_zeros_it_was_written_with() {
    for (written, form) in [
        ("5000", "5000"),
        ("05000.0", "5000"),
        ("5000.00", "5000"),
        (" 5000. 0", ""),
        ("-0.50", "-0.5"),
        ("-0", "0"),
        ("-0.000", "0"),
        ("000", "0"),
        ("0.0500", "0.05"),
        ("-012.50", "-12.5"),
        ("1e3", ""),
        ("1.", ""),
        (".5", ""),
        ("--1", ""),
    ] {
        let got = ValueForm::Number.stored(written);
        if form.is_empty() {
            let err = got.unwrap_err();
            assert!(err.contains("is not a number"), "{written:?}: {err}");
        } else {
            assert_eq!(got.as_deref(), Ok(form), "{written:?}");
            assert_eq!(ValueForm::Number.condition(written).as_deref(), Ok(form));
        }
    }
}

#[test]
fn every_stored_value_is_its_own_form() {
    let cases = [
        (ValueForm::IdNumber, " 11010519491231002x"),
        (ValueForm::Code, " 420502001001 "),
        (ValueForm::Text, " 张三 "),
        (ValueForm::Number, " -12.5 "),
        (ValueForm::Number, "-0012.500"),
        (ValueForm::Date, " 2023-01-05 "),
        (ValueForm::Datetime, " 2026-01-15 08:30:00"),
        (ValueForm::Datetime, "2026-01-15T08:30:00.5+08:00\n"),
        (ValueForm::Timestamp, " 17 "),
        (ValueForm::Boolean, " 1 "),
        (ValueForm::Binary, " AAEC "),
    ];
    for (form, written) in cases {
        let once = form.condition(written).unwrap().into_owned();
        assert_eq!(
            form.stored(&once).as_deref(),
            Ok(once.as_str()),
            "{form:?} {written:?}"
        );
        assert_eq!(form.condition(&once).as_deref(), Ok(once.as_str()));
    }
}

/// A case is numbered by the unit that received it, a district (6 digits) or a street (9).
#[test]
fn a_case_number_takes_a_district_or_a_street_code() {
    let cases = EXAMPLES
        .iter()
        .find(|(f, _)| *f == "cases.json")
        .map(|(f, t)| parse_catalogs(t, f).unwrap().remove(0))
        .unwrap();
    let schema = RecordSchema::new(&cases).unwrap();
    let columns = schema
        .columns(&[
            "case_number",
            "channel",
            "case_class",
            "route",
            "subject",
            "received_at",
            "deadline",
            "state",
        ])
        .unwrap();
    let case = |number: &str| {
        [
            number,
            "5",
            "4",
            "3",
            "楼道堆物",
            "2026-02-13T10:00:00+08:00",
            "2026-02-25",
            "1",
        ]
        .map(String::from)
        .to_vec()
    };
    for number in ["420502-20260213-00001", "420502001-20260213-00001"] {
        schema.rows(&columns, vec![case(number)]).unwrap();
    }
    for number in [
        "42050-20260213-00001",
        "4205020011-20260213-00001",
        "420502001-2026021-00001",
    ] {
        let errors = schema.rows(&columns, vec![case(number)]).unwrap_err();
        assert_eq!(errors[0].item, "case_number", "{number}: {errors:?}");
    }
}

/// The social-security catalogs grade as a human-resources and social-security bureau would:
/// the ID number core and only conditionally shared, amounts important, bank accounts never
/// leave the node.
#[test]
fn social_security_grades_identity_core_and_amounts_important() {
    use crate::catalog::{SensitivityGrade, SharingType};
    let catalogs: Vec<_> = EXAMPLES
        .iter()
        .filter(|(f, _)| f.starts_with("social-") || *f == "household-register.json")
        .flat_map(|(f, t)| parse_catalogs(t, f).unwrap())
        .collect();
    assert_eq!(catalogs.len(), 4);
    let mut amounts = 0;
    for catalog in &catalogs {
        for item in &catalog.items {
            if item.code == "id_number" {
                assert_eq!(item.grade, SensitivityGrade::Core, "{}", catalog.code);
                assert_eq!(item.sharing, SharingType::Conditional);
                assert!(item.sensitive_personal);
            }
            if item.data_type == crate::catalog::DataType::Number {
                assert_eq!(item.grade, SensitivityGrade::Important, "{}", item.code);
                amounts += 1;
            }
            if item.code == "bank_account" {
                assert_eq!(item.sharing, SharingType::NotShared);
            }
        }
    }
    assert_eq!(amounts, 4);
}
