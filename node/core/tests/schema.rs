//! `schema/catalog.schema.json` and the node's own catalog rules agree: every example passes both,
//! and structural mistakes are refused by both.

use serde_json::{Value, json};
use tierlink_core::catalog::{EXAMPLES, parse_catalogs};

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../../schema/catalog.schema.json");
    jsonschema::validator_for(&serde_json::from_str(text).unwrap())
        .expect("the schema is a valid JSON Schema")
}

#[test]
fn every_example_passes_the_schema_and_the_node() {
    let validator = schema();
    for (file, text) in EXAMPLES {
        let value: Value = serde_json::from_str(text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        parse_catalogs(text, file).unwrap();
    }
    // Every catalog in schema/examples/ is one of the examples the binary ships (the mapping
    // examples beside them are TOML, checked in the import's tests).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let mut shipped: Vec<String> = EXAMPLES.iter().map(|(f, _)| f.to_string()).collect();
    shipped.sort();
    assert_eq!(files, shipped);
    // A file may hold an array of entries.
    let all: Vec<Value> = EXAMPLES
        .iter()
        .map(|(_, t)| serde_json::from_str(t).unwrap())
        .collect();
    assert!(validator.is_valid(&Value::Array(all.clone())));
    parse_catalogs(&Value::Array(all).to_string(), "all").unwrap();
}

#[test]
fn structural_mistakes_are_refused_by_both() {
    let validator = schema();
    let base: Value = serde_json::from_str(EXAMPLES[0].1).unwrap();
    type Edit = fn(&mut Value);
    let edits: Vec<(&str, Edit)> = vec![
        ("unknown field", |v| v["colour"] = json!("red")),
        ("bad enum", |v| v["update_cycle"] = json!("dialy")),
        ("bad item type", |v| v["items"][0]["type"] = json!("text")),
        ("bad code", |v| v["code"] = json!("1A1/1")),
        ("bad item code", |v| {
            v["items"][0]["code"] = json!("Person ID")
        }),
        ("missing provider", |v| {
            drop(v.as_object_mut().unwrap().remove("provider"))
        }),
        ("no items", |v| v["items"] = json!([])),
        ("zero length", |v| v["items"][0]["length"] = json!(0)),
        ("bad grade", |v| v["items"][0]["grade"] = json!("secret")),
        ("bad check", |v| v["items"][1]["check"] = json!("luhn")),
        ("long name", |v| v["name"] = json!("长".repeat(201))),
        ("long summary", |v| v["summary"] = json!("长".repeat(2001))),
        ("long provider code", |v| {
            v["provider"]["code"] = json!("9".repeat(65))
        }),
        ("long item name", |v| {
            v["items"][2]["name"] = json!("长".repeat(201))
        }),
        ("too many items", |v| {
            let item = v["items"][2].clone();
            let items = v["items"].as_array_mut().unwrap();
            items.extend((0..1000).map(|n| {
                let mut i = item.clone();
                i["code"] = json!(format!("extra_{n}"));
                i["name"] = json!(format!("extra {n}"));
                i
            }));
        }),
        ("item too long", |v| {
            v["items"][2]["length"] = json!(4_000_001)
        }),
        ("long item code", |v| {
            v["items"][2]["code"] = json!("a".repeat(64))
        }),
        ("long pattern", |v| {
            v["items"][8]["pattern"] = json!("a".repeat(1001))
        }),
        ("long code-table label", |v| {
            v["items"][4]["code_table"][0]["label"] = json!("长".repeat(201))
        }),
    ];
    for (what, edit) in edits {
        let mut value = base.clone();
        edit(&mut value);
        assert!(!validator.is_valid(&value), "schema accepted: {what}");
        assert!(
            parse_catalogs(&value.to_string(), "edited").is_err(),
            "node accepted: {what}"
        );
    }
}
