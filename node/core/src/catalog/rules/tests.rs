use super::*;

fn residents_json() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../../../../../schema/examples/residents.json"
    ))
    .unwrap()
}

fn error_for(value: serde_json::Value) -> CatalogError {
    parse_catalogs(&value.to_string(), "bad.json").unwrap_err()
}

#[test]
fn schema_errors_name_file_entry_and_field() {
    let mut v = residents_json();
    v["items"][4]["type"] = "text".into();
    let e = error_for(v);
    assert_eq!(
        (e.file.as_str(), e.entry.as_str(), e.field.as_str()),
        ("bad.json", "101001001/000001", "items[4].type")
    );
    assert!(e.problem.contains("unknown variant"), "{e}");

    let mut v = residents_json();
    v["update_cycle"] = "dialy".into();
    assert_eq!(error_for(v).field, "update_cycle");

    let mut v = residents_json();
    v["colour"] = "red".into();
    assert!(error_for(v).problem.contains("unknown field"));

    let e = parse_catalogs("{ not json", "bad.json").unwrap_err();
    assert!(e.problem.contains("not valid JSON"));
}

#[test]
fn rule_errors_name_the_field() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 10] = [
        ("code", |v| v["code"] = "1A1/1".into()),
        ("kind", |v| v["kind"] = "theme".into()),
        ("sharing.conditions", |v| {
            v["sharing"]
                .as_object_mut()
                .unwrap()
                .retain(|k, _| k != "conditions")
        }),
        ("published", |v| v["published"] = "2026-13-01".into()),
        ("items[1].code", |v| {
            v["items"][1]["code"] = "person_id".into()
        }),
        ("items[3].sharing", |v| {
            v["items"][3]["sharing"] = "unconditional".into()
        }),
        ("items[1].sharing", |v| {
            v["sharing"]["type"] = "unconditional".into();
            for item in v["items"].as_array_mut().unwrap() {
                item["sharing"] = "unconditional".into();
            }
        }),
        ("items[0].primary_key", |v| {
            v["items"][0]["sharing"] = "not_shared".into()
        }),
        ("items[8].pattern", |v| {
            v["items"][8]["pattern"] = "(".into()
        }),
        ("items", |v| v["items"][0]["primary_key"] = false.into()),
    ];
    for (field, edit) in cases {
        let mut v = residents_json();
        edit(&mut v);
        let e = error_for(v);
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().starts_with("bad.json: entry "), "{e}");
    }
}

#[test]
fn an_array_names_the_entry_by_position_when_it_has_no_code() {
    let mut second = residents_json();
    second.as_object_mut().unwrap().remove("code");
    let e = error_for(serde_json::json!([residents_json(), second]));
    assert_eq!((e.entry.as_str(), e.field.as_str()), ("#1", "code"));
}

#[test]
fn replacing_keeps_stored_items_in_place() {
    let old: Catalog = serde_json::from_value(residents_json()).unwrap();
    let mut appended = old.clone();
    appended.items.push(InformationItem {
        code: "note".into(),
        name: "备注 note".into(),
        ..old.items[3].clone()
    });
    appended.check_replaces(&old).unwrap();

    let mut reordered = old.clone();
    reordered.items.swap(2, 3);
    assert_eq!(
        reordered.check_replaces(&old).unwrap_err().field,
        "items[2]"
    );
}
