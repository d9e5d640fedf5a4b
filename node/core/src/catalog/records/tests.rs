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
    ("sex", "1"),
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
        ("name", &"长".repeat(51), "longer than"),
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
    assert!(gb11643_valid("11010519491231002x"));
    assert!(!gb11643_valid("110105194912310021"));
    assert!(!gb11643_valid("11010519491331002X"), "month 13");
    assert!(!gb11643_valid("1101051949123100"));
    let id = format!(
        "42050219900101123{}",
        gb11643_check_digit("42050219900101123").unwrap()
    );
    assert!(gb11643_valid(&id));
}
