//! Declarative policy fixtures: each file in `tests/policy/` holds a catalog, the policy changes
//! applied to the directory (and those it must refuse), and requests with the action expected
//! for each item. One test runs them all.

use std::collections::BTreeMap;

use serde::Deserialize;
use tierlink_core::catalog::{Catalog, EXAMPLES, parse_catalogs};
use tierlink_core::identity::NodeCode;
use tierlink_core::policy::{Asker, Policies, PolicyCommand, PolicyContext};

#[derive(Deserialize)]
struct Fixture {
    producer: NodeCode,
    catalog: String,
    units: BTreeMap<NodeCode, Option<NodeCode>>,
    commands: Vec<Issued>,
    #[serde(default)]
    refused: Vec<Refused>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Issued {
    issuer: NodeCode,
    command: PolicyCommand,
}

#[derive(Deserialize)]
struct Refused {
    issuer: NodeCode,
    command: PolicyCommand,
    because: String,
}

#[derive(Deserialize)]
struct Case {
    about: String,
    asker: AskerSpec,
    today: String,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    rows: Option<String>,
    #[serde(default)]
    expect: BTreeMap<String, String>,
    #[serde(default)]
    others: Option<String>,
    #[serde(default)]
    refused: Option<String>,
}

#[derive(Deserialize)]
struct AskerSpec {
    node: NodeCode,
    principal: String,
    role: String,
    purpose: String,
}

struct Context<'a> {
    fixture: &'a Fixture,
    published: Catalog,
}

impl PolicyContext for Context<'_> {
    fn published(&self, producer: &NodeCode, code: &str) -> Option<&Catalog> {
        (producer == &self.fixture.producer && code == self.published.code)
            .then_some(&self.published)
    }
    fn parent_of(&self, unit: &NodeCode) -> Option<&NodeCode> {
        self.fixture.units.get(unit)?.as_ref()
    }
    fn is_active(&self, unit: &NodeCode) -> bool {
        self.fixture.units.contains_key(unit)
    }
}

fn run(name: &str, text: &str) -> usize {
    let fixture: Fixture =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: not a fixture: {e}"));
    let (_, catalog_json) = EXAMPLES
        .iter()
        .find(|(file, _)| *file == fixture.catalog)
        .unwrap_or_else(|| panic!("{name}: no example catalog {}", fixture.catalog));
    let catalog = parse_catalogs(catalog_json, &fixture.catalog)
        .unwrap()
        .remove(0);
    let ctx = Context {
        fixture: &fixture,
        published: catalog.shared_view(),
    };
    let mut policies = Policies::default();
    for (n, c) in fixture.commands.iter().enumerate() {
        policies
            .apply(&c.issuer, &c.command, &ctx)
            .unwrap_or_else(|e| panic!("{name}: command {n} ({}) refused: {e}", c.command));
    }
    for r in &fixture.refused {
        let before = policies.clone();
        let err = policies
            .apply(&r.issuer, &r.command, &ctx)
            .expect_err(&format!(
                "{name}: {} by {} was applied",
                r.command, r.issuer
            ));
        assert!(err.contains(&r.because), "{name}: {}: {err}", r.command);
        assert_eq!(
            policies, before,
            "{name}: a refused {} changed the policies",
            r.command
        );
    }
    for case in &fixture.cases {
        let what = format!("{name}: {}", case.about);
        let asker = Asker {
            node: case.asker.node.clone(),
            principal: case.asker.principal.clone(),
            role: case.asker.role.clone(),
            purpose: case.asker.purpose.clone(),
            grant: None,
        };
        let decision = policies.decide(&fixture.producer, &catalog, &asker, &case.today);
        if let Some(reason) = &case.refused {
            let err = decision.expect_err(&format!("{what}: was served"));
            assert!(err.to_string().contains(reason), "{what}: {err}");
            continue;
        }
        let decision = decision.unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        if let Some(grant) = &case.grant {
            assert_eq!(&decision.grant, grant, "{what}");
        }
        let rows = decision
            .rows
            .map(|r| format!("{} within {}", r.item, r.within));
        assert_eq!(rows, case.rows, "{what}: row scope");
        for item in &decision.items {
            let expected = case.expect.get(&item.item).or(case.others.as_ref());
            if let Some(expected) = expected {
                assert_eq!(
                    &item.action.to_string(),
                    expected,
                    "{what}: item {}",
                    item.item
                );
            }
        }
        for item in case.expect.keys() {
            assert!(catalog.item_index(item).is_some(), "{what}: no item {item}");
        }
    }
    fixture.cases.len() + fixture.refused.len()
}

#[test]
fn every_policy_fixture_holds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy");
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        checked += run(&name, &std::fs::read_to_string(path).unwrap());
    }
    assert!(
        checked >= 10,
        "only {checked} cases found in {}",
        dir.display()
    );
}
