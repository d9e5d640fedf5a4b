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

#[test]
fn bounds_are_refused_naming_the_field_and_the_bound() {
    type Edit = fn(&mut serde_json::Value);
    fn long(n: usize) -> serde_json::Value {
        "长".repeat(n).into()
    }
    let cases: [(&str, &str, Edit); 11] = [
        ("name", "201 characters long, over the 200", |v| {
            v["name"] = long(201)
        }),
        ("summary", "over the 2,000", |v| v["summary"] = long(2001)),
        ("provider.code", "over the 64", |v| {
            v["provider"]["code"] = long(65)
        }),
        ("sharing.conditions", "over the 2,000", |v| {
            v["sharing"]["conditions"] = long(2001)
        }),
        ("related", "101 resources, over the 100", |v| {
            v["related"] = (0..101)
                .map(|n| format!("201001001/{n:06}"))
                .collect::<Vec<_>>()
                .into()
        }),
        ("items", "1,001 information items, over the 1,000", |v| {
            let item = v["items"][2].clone();
            let items = v["items"].as_array_mut().unwrap();
            items.extend((0..1001 - 31).map(|n| {
                let mut i = item.clone();
                i["code"] = format!("extra_{n}").into();
                i["name"] = format!("extra {n}").into();
                i
            }));
        }),
        ("items[2].name", "over the 200", |v| {
            v["items"][2]["name"] = long(201)
        }),
        (
            "items[2].length",
            "4,000,001 is over the longest an item may be, 4,000,000",
            |v| v["items"][2]["length"] = 4_000_001.into(),
        ),
        ("items[8].pattern", "over the 1,000", |v| {
            v["items"][8]["pattern"] = "a".repeat(1001).into()
        }),
        (
            "items[4].code_table",
            "10,001 codes, over the 10,000",
            |v| {
                v["items"][4]["code_table"] = (0..10_001)
                    .map(|n| serde_json::json!({ "code": n.to_string(), "label": "x" }))
                    .collect::<Vec<_>>()
                    .into()
            },
        ),
        ("items[4].code_table[1].label", "over the 200", |v| {
            v["items"][4]["code_table"][1]["label"] = long(201)
        }),
    ];
    for (field, expect, edit) in cases {
        let mut v = residents_json();
        edit(&mut v);
        let e = error_for(v);
        assert_eq!(e.field, field, "{e}");
        assert!(e.problem.contains(expect), "{e}");
    }
}

#[test]
fn a_catalog_whose_records_could_not_fit_in_a_message_is_refused() {
    let mut v = residents_json();
    // Two addresses of 3,000,000 characters: 24 MB of UTF-8 at most, over the 16 MiB of a record.
    for n in [9, 13] {
        v["items"][n]["length"] = 3_000_000.into();
    }
    let e = error_for(v);
    assert_eq!(e.field, "items", "{e}");
    assert!(
        e.problem
            .contains("a record of this catalog can take 24.0 MB")
            && e.problem.contains("over the 16 MiB a record may take"),
        "{e}"
    );

    // One such item fits.
    let mut v = residents_json();
    v["items"][9]["length"] = 3_000_000.into();
    let catalog = parse_catalogs(&v.to_string(), "ok.json").unwrap().remove(0);
    assert!(catalog.max_record_bytes() > 12_000_000);
    assert!(catalog.max_record_bytes() <= crate::limits::MAX_RECORD_BYTES);
}

#[test]
fn an_entry_too_large_to_travel_is_refused() {
    let mut v = residents_json();
    // Code tables within their bounds, but together over the 1 MiB an entry may take.
    for n in [4, 6, 10, 12] {
        v["items"][n]["code_table"] = (0..5_000)
            .map(|k| serde_json::json!({ "code": format!("{k:05}"), "label": "长".repeat(20) }))
            .collect::<Vec<_>>()
            .into();
    }
    let e = error_for(v);
    assert_eq!(e.field, "-", "{e}");
    assert!(
        e.problem
            .contains("as JSON, over the 1 MiB an entry may take"),
        "{e}"
    );
}

#[test]
fn the_item_code_pattern_states_its_bound() {
    let code = "a".repeat(bounds::ITEM_CODE_CHARS);
    assert!(ITEM_CODE.is_match(&code));
    assert!(!ITEM_CODE.is_match(&format!("{code}a")));
}

#[test]
fn embedded_parts_are_checked_against_length_held_item_and_sharing() {
    type Edit = fn(&mut serde_json::Value);
    // items[1] id_number (18, GB 11643), items[5] birth_date, items[14] community_code (12),
    // items[15] grid_code (14), items[16] building_code (18), items[26] religion (not shared).
    let cases: [(&str, &str, Edit); 11] = [
        (
            "items[15].embeds[4].from",
            "lie within grid_code's length of 14",
            |v| v["items"][15]["embeds"][4]["to"] = 15.into(),
        ),
        (
            "items[15].embeds[3].holds",
            "\"nothing\" is not another item",
            |v| v["items"][15]["embeds"][3]["holds"] = "nothing".into(),
        ),
        ("items[15].embeds[3].holds", "is not another item", |v| {
            v["items"][15]["embeds"][3]["holds"] = "grid_code".into()
        }),
        (
            "items[15].embeds[3].holds",
            "must be a string item of length 12",
            |v| v["items"][14]["length"] = 13.into(),
        ),
        (
            "items[1].embeds[1].to",
            "a date, YYYYMMDD: 8 characters",
            |v| v["items"][1]["embeds"][1]["to"] = 13.into(),
        ),
        (
            "items[1].embeds[1].holds",
            "but sex is not a date item",
            |v| v["items"][1]["embeds"][1]["holds"] = "sex".into(),
        ),
        ("items[1].embeds[3].to", "it is one character", |v| {
            v["items"][1]["embeds"][3]["from"] = 16.into()
        }),
        (
            "items[1].embeds[4].holds",
            "a check character: it holds no item",
            |v| v["items"][1]["embeds"][4]["holds"] = "sex".into(),
        ),
        ("items[16].embeds", "declare its length", |v| {
            v["items"][16].as_object_mut().unwrap().remove("length");
        }),
        (
            "items[16].embeds[1].holds",
            "religion is not shared, but building_code carries it",
            |v| {
                v["items"][16]["embeds"][1]["holds"] = "religion".into();
                v["items"][26]["length"] = 5.into();
            },
        ),
        (
            "items[1].embeds",
            "declare length 18 and its parts in \"embeds\": {\"part\": \"region\"",
            |v| {
                v["items"][1]["embeds"].as_array_mut().unwrap().remove(3);
            },
        ),
    ];
    for (field, expect, edit) in cases {
        let mut v = residents_json();
        edit(&mut v);
        let e = error_for(v);
        assert_eq!(e.field, field, "{e}");
        assert!(e.problem.contains(expect), "{e}");
    }
    // A citizen ID number with no parts at all is told what to add.
    let mut v = residents_json();
    v["items"][1].as_object_mut().unwrap().remove("embeds");
    let e = error_for(v);
    assert!(e.problem.contains("\"as\": \"parity\""), "{e}");
}

#[test]
fn the_examples_declare_their_parts_and_guessable_codes() {
    let catalogs: Vec<Catalog> = crate::catalog::EXAMPLES
        .iter()
        .flat_map(|(file, text)| parse_catalogs(text, file).unwrap())
        .collect();
    let item = |catalog: &str, code: &str| {
        let c = catalogs.iter().find(|c| c.code == catalog).unwrap();
        c.items[c.item_index(code).unwrap()].clone()
    };
    let id = item("101001001/000001", "id_number");
    let held: Vec<(&str, Option<&str>)> = id
        .embeds
        .iter()
        .map(|p| (p.part.as_str(), p.holds.as_deref()))
        .collect();
    assert!(held.contains(&("birth date", Some("birth_date"))));
    assert!(held.contains(&("sex", Some("sex"))));
    assert!(item("301001001/000001", "id_number").embeds.len() == 5);
    for (catalog, code) in [
        ("101001001/000001", "grid_code"),
        ("101001001/000001", "community_code"),
        ("103002001/000001", "street_code"),
        ("103001001/000001", "grid_code"),
    ] {
        assert!(item(catalog, code).guessable, "{catalog} {code}");
    }
    let grid = item("103002001/000001", "grid_code");
    assert!(
        grid.embeds
            .iter()
            .any(|p| p.holds.as_deref() == Some("street_code"))
    );
    let building = item("103001001/000001", "building_code");
    assert_eq!(building.length, Some(18));
    assert_eq!(building.embeds[0].holds.as_deref(), Some("community_code"));
}
