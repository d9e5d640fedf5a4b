//! The property behind field-level secrecy, at the one enforcement point every read path goes
//! through (the producer's plan, then sealing): for random catalogs, grants and records, no
//! value the decision does not send in clear appears anywhere in the bytes the asking node reads
//! (the signed headers and the records it opens), keys included — and every value sent in clear
//! arrives unchanged. And through a running federation: the same reads over the REST gateway
//! give exactly what gRPC gives, refusals included, with nothing hidden in the HTTP body.

mod util;

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;
use serde_json::Value;
use tierlink_core::catalog::{Catalog, SensitivityGrade, SharingType, parse_catalogs};
use tierlink_core::identity::{
    EncryptionKeys, NodeCredentials, Tier, TrustedCa, Unit, generate_ca, issue_node_certificates,
};
use tierlink_core::limits::DEFAULT_BATCH_BYTES;
use tierlink_core::policy::{
    Action, Asker, Decision, Grant, Grantee, HashKey, Policies, Redactor, Refusal, Role,
};
use tierlink_core::signed::{BatchOpener, BatchSigner, BatchVerifier, Recipient};
use tierlink_node::exchange::produce::{Cut, Plan, Template, record_lists, seal_all};
use tierlink_proto::v1::{BatchHeader, QueryRequest, ReadScope, Record, RecordList};
use tierlink_store::StoredRecord;

/// One item of a generated catalog: its sharing type, grade, sensitivity and the grant's
/// action for it (`None`: not named in the grant).
#[derive(Clone, Debug)]
struct ItemSpec {
    sharing: SharingType,
    grade: SensitivityGrade,
    sensitive: bool,
    action: Option<Action>,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Clear),
        Just(Action::Hash),
        Just(Action::Withhold),
        (0u8..8, 0u8..8).prop_map(|(first, last)| Action::Mask { first, last }),
    ]
}

fn item() -> impl Strategy<Value = ItemSpec> {
    (
        prop_oneof![
            Just(SharingType::Unconditional),
            Just(SharingType::Conditional),
            Just(SharingType::NotShared)
        ],
        prop_oneof![
            Just(SensitivityGrade::General),
            Just(SensitivityGrade::Important),
            Just(SensitivityGrade::Core)
        ],
        any::<bool>(),
        proptest::option::of(action()),
    )
        .prop_map(|(sharing, grade, sensitive, action)| ItemSpec {
            sharing,
            grade,
            sensitive,
            action,
        })
}

/// A catalog `code` named `name` with these items (JSON), as the catalog rules admit it.
fn generated(code: &str, name: &str, items: Vec<serde_json::Value>) -> Catalog {
    let json = serde_json::json!({
        "code": code,
        "name": name,
        "provider": { "name": "p", "code": "p" },
        "summary": "generated for a property test",
        "kind": "base",
        "format": "database",
        "update_cycle": "daily",
        "sharing": { "type": "unconditional", "method": "interface" },
        "open_type": "not_open",
        "published": "2026-01-01",
        "items": items,
    });
    parse_catalogs(&json.to_string(), name).unwrap().remove(0)
}

/// A catalog with these items, adjusted to the catalog rules: the first is the primary key and
/// always shared; core and sensitive items are shared conditionally if at all.
fn catalog(code: &str, items: &mut [ItemSpec]) -> Catalog {
    if items[0].sharing == SharingType::NotShared {
        items[0].sharing = SharingType::Conditional;
    }
    for i in items.iter_mut() {
        let guarded = i.grade == SensitivityGrade::Core || i.sensitive;
        if guarded && i.sharing == SharingType::Unconditional {
            i.sharing = SharingType::Conditional;
        }
    }
    let items: Vec<serde_json::Value> = items
        .iter()
        .enumerate()
        .map(|(n, i)| {
            serde_json::json!({
                "code": format!("item_{n}"),
                "name": format!("item {n}"),
                "type": "string",
                "primary_key": n == 0,
                "required": n == 0,
                "sharing": i.sharing.as_str(),
                "grade": serde_json::to_value(i.grade).unwrap(),
                "sensitive_personal": i.sensitive,
            })
        })
        .collect();
    generated(code, "generated", items)
}

/// The street's signer and a verifier trusting its CA.
fn signer() -> (BatchSigner, BatchVerifier) {
    let ca = generate_ca("property").unwrap();
    let unit = Unit {
        code: "420502001".parse().unwrap(),
        tier: Tier::Street,
        parent: Some("420502".parse().unwrap()),
        name: "street".into(),
    };
    let keys = NodeCredentials::generate().unwrap();
    let certs = issue_node_certificates(&ca, &unit, &[], &keys).unwrap();
    let trusted = TrustedCa::from_pem(&ca.cert_pem).unwrap();
    let signer = BatchSigner::new(&keys.signing_key_pem, &certs.signing_pem, &trusted).unwrap();
    (signer, BatchVerifier::new(trusted))
}

/// The city, which asks: where the batches are sealed to, and what opens them.
fn city() -> (Recipient, BatchOpener) {
    let keys = EncryptionKeys::generate().unwrap();
    let to = Recipient {
        node: "420500".parse().unwrap(),
        key: keys.current().public().clone(),
    };
    (to, BatchOpener::new("420500".parse().unwrap(), keys))
}

/// What a reader receives of `rows` (values in catalog order, the first the key) under
/// `decision`, through the one enforcement point: the producer's plan, then sealing to the city,
/// which opens them. The signed headers and opened records' bytes, the last header and the
/// records.
fn receive(
    catalog: &Catalog,
    decision: &Decision,
    asker: &Asker,
    rows: &[Vec<String>],
) -> (Vec<u8>, BatchHeader, Vec<Record>) {
    let plan = Plan::new(
        catalog,
        decision,
        Redactor::new(Some(HashKey::generate().unwrap())),
    )
    .unwrap();
    let stored: Vec<StoredRecord> = rows
        .iter()
        .map(|values| {
            Record {
                key: values[0].clone(),
                version: 1,
                updated_at_micros: 1,
                values: values.clone(),
                deleted: false,
            }
            .into()
        })
        .collect();
    let template = plan.header("420500", &catalog.code, "query", "r", Some(asker));
    let cut = Cut {
        records: 7,
        bytes: DEFAULT_BATCH_BYTES,
    };
    let lists = record_lists(stored.into_iter().map(Ok), plan, cut, None, |_| {});
    let mut bytes = Vec::new();
    let mut received = Vec::new();
    let (signer, verifier) = signer();
    let (to, opener) = city();
    let mut header = BatchHeader::default();
    for sealed in seal_all(
        &signer,
        Template {
            header: template,
            to,
        },
        lists,
    ) {
        let batch = sealed.unwrap().batch;
        let opened = opener.open(&verifier, &batch).unwrap();
        // What the asking node holds once it has opened the batch: on the wire the records
        // are ciphertext, and would hide everything trivially.
        bytes.extend_from_slice(&batch.header);
        bytes.extend_from_slice(
            &RecordList {
                records: opened.records.clone(),
            }
            .encode_to_vec(),
        );
        header = opened.header;
        received.extend(opened.records);
    }
    (bytes, header, received)
}

/// The directory's policies with one grant of `catalog` to a city analyst's role, and the
/// analyst asking under it.
fn analyst(
    catalog: &Catalog,
    items: std::collections::BTreeMap<String, Action>,
    others: Option<Action>,
) -> (Policies, Asker) {
    let role = Role {
        unit: "420500".parse().unwrap(),
        name: "analyst".into(),
        department: "d".into(),
        post: "p".into(),
    };
    let grant = Grant {
        items,
        others,
        ..Grant::new(
            "g",
            "420502001".parse().unwrap(),
            catalog.code.clone(),
            Grantee::Role(role.id()),
            "check",
            "2099-12-31",
        )
    };
    let asker = Asker {
        node: "420500".parse().unwrap(),
        principal: "p".into(),
        role: role.id(),
        purpose: "check".into(),
        grant: None,
    };
    let mut policies = Policies::default();
    policies.roles.insert(role.id(), role);
    policies.grants.insert("g".into(), grant);
    (policies, asker)
}

/// What item `coded_catalog`'s code item (a fixed-width string of digits) carries in a part.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Carried {
    /// A string of this many digits, as the same characters.
    Same(usize),
    /// A date, as YYYYMMDD.
    Date,
    /// A sex ("1" or "2") as the parity of one digit.
    Parity,
}

impl Carried {
    fn chars(self) -> usize {
        match self {
            Carried::Same(n) => n,
            Carried::Date => 8,
            Carried::Parity => 1,
        }
    }
}

/// Where the parts lie in the code item: `(first character, 0-based; what)`, the code's width,
/// and whether its last character is a check digit (the sum of the others mod 10).
#[derive(Clone, Debug)]
struct Layout {
    parts: Vec<(usize, Carried)>,
    width: usize,
    check: bool,
}

fn layout() -> impl Strategy<Value = Layout> {
    let carried = prop_oneof![
        (2usize..7).prop_map(Carried::Same),
        Just(Carried::Date),
        Just(Carried::Parity)
    ];
    (
        proptest::collection::vec((carried, 0usize..3), 1..4),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(parts, tail, check)| {
            let mut at = 0;
            let parts = parts
                .into_iter()
                .map(|(carried, gap)| {
                    at += gap;
                    let part = (at, carried);
                    at += carried.chars();
                    part
                })
                .collect();
            Layout {
                parts,
                width: at + tail + usize::from(check),
                check,
            }
        })
}

/// A catalog of a key item, the code item and one item per part it carries (`held_N`).
fn coded_catalog(layout: &Layout) -> Catalog {
    let mut embeds: Vec<serde_json::Value> = layout
        .parts
        .iter()
        .enumerate()
        .map(|(n, (at, carried))| {
            let how = match carried {
                Carried::Same(_) => "same",
                Carried::Date => "date",
                Carried::Parity => "parity",
            };
            serde_json::json!({
                "part": format!("part {n}"), "from": at + 1, "to": at + carried.chars(),
                "holds": format!("held_{n}"), "as": how,
            })
        })
        .collect();
    if layout.check {
        embeds.push(serde_json::json!({
            "part": "check", "from": layout.width, "to": layout.width, "as": "check",
        }));
    }
    let item = |code: String, extra: serde_json::Value| {
        let mut item = serde_json::json!({
            "code": code, "name": code, "type": "string", "required": true,
            "sharing": "unconditional", "grade": "general",
        });
        item.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        item
    };
    let mut items = vec![
        item("key".into(), serde_json::json!({ "primary_key": true })),
        item(
            "code".into(),
            serde_json::json!({
                "length": layout.width, "pattern": format!("[0-9]{{{}}}", layout.width),
                "embeds": embeds,
            }),
        ),
    ];
    for (n, (_, carried)) in layout.parts.iter().enumerate() {
        items.push(item(
            format!("held_{n}"),
            match carried {
                Carried::Same(len) => {
                    serde_json::json!({ "length": len, "pattern": format!("[0-9]{{{len}}}") })
                }
                Carried::Date => serde_json::json!({ "type": "date" }),
                Carried::Parity => serde_json::json!({
                    "length": 1,
                    "code_table": [{ "code": "1", "label": "odd" }, { "code": "2", "label": "even" }],
                }),
            },
        ));
    }
    generated("101001001/000008", "coded", items)
}

/// Records of `coded_catalog(layout)` from random numbers: the code item's digits agree with
/// the items its parts carry, and its check digit with the rest.
fn coded_rows(layout: &Layout, seeds: &[Vec<u32>]) -> Vec<Vec<String>> {
    seeds
        .iter()
        .enumerate()
        .map(|(r, seed)| {
            let digit = |k: usize| char::from(b'0' + (seed[k % seed.len()] % 10) as u8);
            let mut code: Vec<char> = (0..layout.width).map(|k| digit(k + 7)).collect();
            let mut held = Vec::new();
            for (n, (at, carried)) in layout.parts.iter().enumerate() {
                let s = seed[n % seed.len()];
                let (value, digits) = match carried {
                    Carried::Same(len) => {
                        let v: String = (0..*len).map(|k| digit(n * 5 + k)).collect();
                        (v.clone(), v)
                    }
                    Carried::Date => {
                        let (y, m, d) = (1900 + s % 200, 1 + s % 12, 1 + s % 28);
                        (
                            format!("{y:04}-{m:02}-{d:02}"),
                            format!("{y:04}{m:02}{d:02}"),
                        )
                    }
                    Carried::Parity => {
                        let odd = s % 2 == 1;
                        let d = (s / 2 % 5) * 2 + u32::from(odd);
                        ((if odd { "1" } else { "2" }).to_owned(), d.to_string())
                    }
                };
                for (k, c) in digits.chars().enumerate() {
                    code[at + k] = c;
                }
                held.push(value);
            }
            if layout.check {
                let sum: u32 = code[..layout.width - 1]
                    .iter()
                    .map(|c| c.to_digit(10).unwrap())
                    .sum();
                code[layout.width - 1] = char::from_digit(sum % 10, 10).unwrap();
            }
            let mut row = vec![format!("R{r}K{}", seed[0]), code.into_iter().collect()];
            row.extend(held);
            row
        })
        .collect()
}

/// An action for an item of `kind` (0 code or held string, 1 date, 2 parity) of `width`
/// written characters, from random choices: every action that fits the type.
fn fitting(choice: u8, a: usize, b: usize, kind: u8, width: usize) -> Action {
    match choice % 5 {
        0 => Action::Clear,
        1 => Action::Hash,
        2 => Action::Withhold,
        3 => Action::Mask {
            first: (a % (width + 2)) as u8,
            last: (b % (width + 2)) as u8,
        },
        _ if kind == 1 => if a.is_multiple_of(2) {
            "year"
        } else {
            "year-month"
        }
        .parse()
        .unwrap(),
        _ => format!("prefix:{}", 1 + a % (width + 1)).parse().unwrap(),
    }
}

/// The reconstruction attacker: from what a reader received of one record (`None` for an item
/// not sent) and the manifest's actions, the characters it knows of each item but the key (a
/// date's as YYYYMMDD), by characters kept by masks, prefixes and generalisations, carried
/// between the code and the items its parts hold, a parity digit, and the check digit (from the
/// others, or, with all but one other, the missing one). Written apart from the policy, as a
/// reader would.
fn attack(
    layout: &Layout,
    actions: &[Action],
    received: &[Option<String>],
) -> Vec<Vec<Option<char>>> {
    let written = |n: usize| -> Vec<Option<char>> {
        let Some(value) = &received[n] else {
            return Vec::new();
        };
        let chars: Vec<char> = value.chars().collect();
        match actions[n] {
            Action::Clear => chars.into_iter().map(Some).collect(),
            Action::Mask { .. } => chars.into_iter().map(|c| (c != '*').then_some(c)).collect(),
            Action::Generalise(_) => chars.into_iter().map(Some).collect(),
            _ => Vec::new(),
        }
    };
    let fill = |v: Vec<Option<char>>, width: usize| {
        let mut out = vec![None; width];
        for (k, c) in v.into_iter().enumerate().take(width) {
            out[k] = c;
        }
        out
    };
    let mut code = fill(written(1), layout.width);
    let mut held: Vec<Vec<Option<char>>> = layout
        .parts
        .iter()
        .enumerate()
        .map(|(n, (_, carried))| {
            let mine = written(2 + n);
            match carried {
                Carried::Date => {
                    let w = fill(mine, 10);
                    [0, 1, 2, 3, 5, 6, 8, 9].iter().map(|&k| w[k]).collect()
                }
                _ => fill(mine, carried.chars()),
            }
        })
        .collect();
    loop {
        let before = (code.clone(), held.clone());
        for (n, (at, carried)) in layout.parts.iter().enumerate() {
            match carried {
                Carried::Parity => {
                    if let Some(d) = code[*at] {
                        let odd = d.to_digit(10).unwrap() % 2 == 1;
                        held[n][0] = Some(if odd { '1' } else { '2' });
                    }
                }
                _ => {
                    for k in 0..carried.chars() {
                        code[at + k] = code[at + k].or(held[n][k]);
                        held[n][k] = held[n][k].or(code[at + k]);
                    }
                }
            }
        }
        if layout.check {
            let last = layout.width - 1;
            let unknown: Vec<usize> = (0..last).filter(|&k| code[k].is_none()).collect();
            let sum: u32 = code[..last]
                .iter()
                .flatten()
                .map(|c| c.to_digit(10).unwrap())
                .sum();
            match (code[last], unknown.as_slice()) {
                (None, []) => code[last] = char::from_digit(sum % 10, 10),
                (Some(check), [k]) => {
                    let check = check.to_digit(10).unwrap();
                    code[*k] = char::from_digit((check + 10 - sum % 10) % 10, 10);
                }
                _ => {}
            }
        }
        if (code.clone(), held.clone()) == before {
            break;
        }
    }
    let mut out = vec![Vec::new(), code];
    out.extend(held);
    out
}

/// Below this many candidates a hidden value is as good as rebuilt: a reader checks each
/// against one more fact it holds.
const FEW: f64 = 1_000.0;

/// The values item `n` can still take given the characters the attacker knows of it, counted
/// as a reader would: 10 for each unknown digit, but 12 for a date's month and 31 for its day
/// when both their digits are unknown, an unknown check digit (the others' sum mod 10) not at
/// all, since the others fix it, half for a digit whose parity a known item gives, and a tenth
/// of that when the check digit is known and some other digit is not. `None` for the key and
/// the parity items, which have no characters to count. `known` holds every item's characters.
fn candidates(layout: &Layout, n: usize, known: &[Vec<Option<char>>]) -> Option<f64> {
    let chars = &known[n];
    let dates: Vec<usize> = match n {
        0 => return None,
        1 => layout
            .parts
            .iter()
            .filter(|(_, carried)| *carried == Carried::Date)
            .map(|(at, _)| *at)
            .collect(),
        _ => match layout.parts[n - 2].1 {
            Carried::Parity => return None,
            Carried::Date => vec![0],
            Carried::Same(_) => Vec::new(),
        },
    };
    let unknown = |k: usize| chars[k].is_none();
    let mut count = 1.0_f64;
    let mut counted = vec![false; chars.len()];
    for at in dates {
        for (k, values) in [(at + 4, 12.0), (at + 6, 31.0)] {
            if unknown(k) && unknown(k + 1) {
                count *= values;
                counted[k] = true;
                counted[k + 1] = true;
            }
        }
    }
    let check = (n == 1 && layout.check).then_some(layout.width - 1);
    for (k, counted) in counted.iter().enumerate() {
        if unknown(k) && !counted && Some(k) != check {
            count *= 10.0;
        }
    }
    if n == 1 {
        for (i, (at, carried)) in layout.parts.iter().enumerate() {
            if *carried == Carried::Parity
                && unknown(*at)
                && known[i + 2].iter().all(Option::is_some)
            {
                count /= 2.0;
            }
        }
    }
    if check.is_some_and(|c| !unknown(c)) && (0..chars.len()).any(unknown) {
        count /= 10.0;
    }
    Some(count.max(1.0))
}

/// The items the attacker rebuilds whole, as they were stored (`None` for the rest).
fn rebuilt(layout: &Layout, known: &[Vec<Option<char>>]) -> Vec<Option<String>> {
    known
        .iter()
        .enumerate()
        .map(|(n, chars)| {
            let whole: Option<String> = chars.iter().copied().collect();
            let date = n >= 2 && layout.parts[n - 2].1 == Carried::Date;
            whole.filter(|_| n > 0).map(|v| {
                if date {
                    format!("{}-{}-{}", &v[..4], &v[4..6], &v[6..])
                } else {
                    v
                }
            })
        })
        .collect()
}

/// Each catalog item's value in `record` as received, `None` when not sent.
fn as_received(catalog: &Catalog, header: &BatchHeader, record: &Record) -> Vec<Option<String>> {
    catalog
        .items
        .iter()
        .map(|i| {
            header
                .columns
                .iter()
                .position(|c| *c == i.code)
                .map(|at| record.values[at].clone())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn nothing_but_clear_values_leaves_in_the_signed_bytes(
        mut items in proptest::collection::vec(item(), 1..12),
        others in proptest::option::of(action()),
        // Distinct values: a tag no other value contains, then random text of either script.
        values in proptest::collection::vec(
            proptest::collection::vec("[a-z0-9]{6,14}|[\u{4e00}-\u{4e80}]{4,9}", 12),
            1..30,
        ),
    ) {
        let catalog = catalog("101001001/000009", &mut items);
        let (policies, asker) = analyst(
            &catalog,
            items
                .iter()
                .enumerate()
                .filter_map(|(n, i)| i.action.map(|a| (format!("item_{n}"), a)))
                .collect(),
            others,
        );
        let decision = policies
            .decide(&"420502001".parse().unwrap(), &catalog, &asker, "2026-11-28")
            .unwrap();
        let rows: Vec<Vec<String>> = values
            .iter()
            .enumerate()
            .map(|(r, row)| (0..items.len()).map(|n| format!("R{r}I{n}Z{}", row[n])).collect())
            .collect();
        let (bytes, header, received) = receive(&catalog, &decision, &asker, &rows);
        let text = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(received.len(), rows.len());
        for (d, spec) in decision.items.iter().zip(&items) {
            // The rules hold: not-shared never leaves; core or sensitive only when named.
            if spec.sharing == SharingType::NotShared {
                prop_assert_eq!(d.action, Action::Withhold);
            }
            if (spec.grade == SensitivityGrade::Core || spec.sensitive) && spec.action.is_none() {
                prop_assert_eq!(d.action, Action::Withhold);
            }
        }
        for (r, row) in rows.iter().enumerate() {
            for (n, value) in row.iter().enumerate() {
                let action = decision.items[n].action;
                if action != Action::Clear {
                    prop_assert!(!text.contains(value.as_str()), "item_{} ({}) leaked {:?}", n, action, value);
                } else {
                    let at = header.columns.iter().position(|c| c == &format!("item_{n}")).unwrap();
                    prop_assert_eq!(&received[r].values[at], value);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// For random codes embedding other items and random grants: whatever the policy accepts,
    /// the attacker rebuilds nothing from the bytes received that was not sent in clear, nor
    /// narrows an item sent masked or generalised to fewer than 1,000 candidates (unless the
    /// item's own action alone leaves that few: a year-month's 31 days); whatever it refuses, the attacker does rebuild
    /// or narrow something, or an item is sent hashed that can be guessed (few values, or some
    /// of its characters known): the rule is not stricter than what a reader can do.
    #[test]
    fn no_accepted_grant_lets_a_reader_rebuild_a_hidden_value(
        layout in layout(),
        choices in proptest::collection::vec((any::<u8>(), 0usize..30, 0usize..30), 6),
        seeds in proptest::collection::vec(proptest::collection::vec(any::<u32>(), 4), 1..12),
    ) {
        let catalog = coded_catalog(&layout);
        let rows = coded_rows(&layout, &seeds);
        let schema = tierlink_core::catalog::RecordSchema::new(&catalog).unwrap();
        let codes: Vec<&str> = catalog.items.iter().map(|i| i.code.as_str()).collect();
        schema.rows(&schema.columns(&codes).unwrap(), rows.clone()).unwrap();
        let items = catalog
            .items
            .iter()
            .enumerate()
            .skip(1)
            .map(|(n, item)| {
                let (choice, a, b) = choices[n - 1];
                let (kind, width) = match item.data_type {
                    tierlink_core::catalog::DataType::Date => (1, 10),
                    _ => (u8::from(item.code_table.is_some()) * 2, item.max_length() as usize),
                };
                (item.code.clone(), fitting(choice, a, b, kind, width))
            })
            .collect();
        let (policies, asker) = analyst(&catalog, items, Some(Action::Clear));
        let decided = policies.decide(&"420502001".parse().unwrap(), &catalog, &asker, "2026-11-28");
        let (accepted, decision) = match decided {
            Ok(decision) => (true, decision),
            Err(Refusal::Leaks(leaks)) => (false, leaks.decision),
            Err(other) => panic!("refused for another reason: {other}"),
        };
        let actions: Vec<Action> = decision.items.iter().map(|d| d.action).collect();
        let (_, header, received) = receive(&catalog, &decision, &asker, &rows);
        prop_assert_eq!(received.len(), rows.len());
        let mut rebuilt_any = false;
        let mut narrowed_any = false;
        let mut partly = vec![false; actions.len()];
        for (record, row) in received.iter().zip(&rows) {
            let values = as_received(&catalog, &header, record);
            let known = attack(&layout, &actions, &values);
            for (n, chars) in known.iter().enumerate() {
                partly[n] |= chars.iter().any(Option::is_some);
                // Narrowing counts for an item sent masked or generalised; a withheld one
                // counts only when rebuilt whole (below), and a hashed one is the hash rule's.
                if !matches!(actions[n], Action::Mask { .. } | Action::Generalise(_)) {
                    continue;
                }
                let Some(left) = candidates(&layout, n, &known) else { continue };
                // What the item's own value, received alone, leaves.
                let mut own = vec![None; values.len()];
                own[n] = values[n].clone();
                let alone = candidates(&layout, n, &attack(&layout, &actions, &own)).unwrap();
                if left < FEW && left < alone {
                    prop_assert!(
                        !accepted,
                        "{} ({}) narrowed to {} candidates (alone {}) under an accepted grant: {:?} on {:?}",
                        catalog.items[n].code, actions[n], left, alone, actions, layout
                    );
                    narrowed_any = true;
                }
            }
            for (n, value) in rebuilt(&layout, &known).into_iter().enumerate() {
                let Some(value) = value else { continue };
                prop_assert_eq!(&value, &row[n], "the attacker rebuilt a wrong value");
                if actions[n] != Action::Clear {
                    prop_assert!(
                        !accepted,
                        "{} ({}) rebuilt as {:?} under an accepted grant: {:?}",
                        catalog.items[n].code, actions[n], value, actions
                    );
                    rebuilt_any = true;
                }
            }
        }
        if !accepted {
            // Or a hashed item a member can guess: few values (a date, a code table, digits
            // under 2^32), or some characters known from what else is sent.
            let guessable = catalog.items.iter().enumerate().skip(1).any(|(n, item)| {
                let few = item.data_type == tierlink_core::catalog::DataType::Date
                    || item.code_table.is_some()
                    || 10f64.powi(item.max_length() as i32) < 4_294_967_296.0;
                actions[n] == Action::Hash && (few || partly[n])
            });
            prop_assert!(
                rebuilt_any || narrowed_any || guessable,
                "refused, but nothing can be rebuilt, narrowed or guessed: {:?} on {:?}",
                actions, layout
            );
        }
    }
}

/// The analyst of the city, reading through a running federation: its personal token (gRPC) and
/// an API token (the city's REST gateway).
struct Analyst {
    personal: String,
    api: String,
}

/// What a read of catalog `code` gave over gRPC and over the gateway: the records as JSON, and
/// the manifest; or the refusal, as the HTTP status each path maps it to.
async fn both_paths(
    f: &util::Fixture,
    analyst: &Analyst,
    code: &str,
) -> Result<(Vec<Value>, Vec<Value>, Vec<u8>, BTreeMap<String, String>), (u16, u16)> {
    let request = QueryRequest {
        scope: Some(ReadScope {
            catalog: code.into(),
            target: "420502001".into(),
            credential: util::credential("analyst", &analyst.personal, "420500/analyst", "check"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut grpc = Vec::new();
    let mut manifest = BTreeMap::new();
    let read = f.clients[util::CITY]
        .read(None, request, |_, batch| {
            manifest.extend(
                batch
                    .header
                    .manifest
                    .iter()
                    .map(|m| (m.item.clone(), m.action.clone())),
            );
            grpc.extend(batch.json_records().map(Value::Object));
            Ok(())
        })
        .await;
    let gateway = util::http::Gateway::of(f, util::CITY);
    let path = format!("/v1/catalogs/{code}/records");
    let response = util::http::reader(gateway.get(&path), &analyst.api, "check")
        .query(&[("target", "420502001")])
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap().to_vec();
    match read {
        Ok(_) => {
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let http = String::from_utf8(body.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            Ok((grpc, http, body, manifest))
        }
        Err(tierlink_client::ClientError::Status(s)) => {
            let expected = match s.code() {
                tonic::Code::PermissionDenied => 403,
                tonic::Code::InvalidArgument => 400,
                tonic::Code::NotFound => 404,
                other => panic!("gRPC refused with {other:?}: {}", s.message()),
            };
            Err((expected, status))
        }
        Err(other) => panic!("{other}"),
    }
}

/// For random catalogs, grants and records published and read in a running federation, the
/// city's analyst reads the same records over its node's REST gateway as over gRPC (or is
/// refused alike), and no value sent other than in clear is in the HTTP body.
#[test]
fn the_gateway_gives_what_grpc_gives_and_nothing_hidden() {
    use proptest::test_runner::{Config, TestRunner};
    use tierlink_core::identity::tokens::Scope;
    use tierlink_core::policy::PolicyCommand;
    use tierlink_node::directory::DirectoryCommand::Policy;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = runtime.block_on(util::federation(0));
    let (city, street) = (
        f.clients[util::CITY].code().clone(),
        f.clients[util::STREET].code().clone(),
    );
    let role = Role {
        unit: city.clone(),
        name: "analyst".into(),
        department: "d".into(),
        post: "p".into(),
    };
    runtime
        .block_on(
            f.federation
                .issue(&city, vec![Policy(PolicyCommand::DefineRole(role.clone()))]),
        )
        .unwrap();
    let personal = f
        .federation
        .add_principal(&city, "analyst", &[role.id().as_str()])
        .unwrap();
    let analyst = Analyst {
        personal,
        api: util::http::token(&f, util::CITY, "analyst", Scope::Read),
    };
    let case = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config::with_cases(32));
    let strategy = (
        proptest::collection::vec(item(), 1..8),
        proptest::option::of(action()),
        proptest::collection::vec(
            proptest::collection::vec("[a-z0-9]{6,14}|[\u{4e00}-\u{4e80}]{4,9}", 8),
            1..12,
        ),
    );
    runner
        .run(&strategy, |(mut items, others, values)| {
            case.set(case.get() + 1);
            let code = format!("101001001/{:06}", 100 + case.get());
            let catalog = catalog(&code, &mut items);
            let grant = Grant {
                items: items
                    .iter()
                    .enumerate()
                    // The directory holds the shared view: a grant names shared items only.
                    .filter(|(_, i)| i.sharing != SharingType::NotShared)
                    .filter_map(|(n, i)| i.action.map(|a| (format!("item_{n}"), a)))
                    .collect(),
                others,
                ..Grant::new(
                    format!("g{}", case.get()),
                    street.clone(),
                    code.clone(),
                    Grantee::Role(role.id()),
                    "check",
                    "2099-12-31",
                )
            };
            let rows: Vec<Vec<String>> = values
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    (0..items.len())
                        .map(|n| format!("R{r}I{n}Z{}", row[n]))
                        .collect()
                })
                .collect();
            let got = runtime.block_on(async {
                let producer = &f.clients[util::STREET];
                producer
                    .put_catalog(serde_json::to_string(&catalog).unwrap())
                    .await
                    .unwrap();
                let revision = producer.publish(&[code.as_str()]).await.unwrap();
                f.federation.wait_for_revision(revision).await.unwrap();
                f.federation
                    .issue(&street, vec![Policy(PolicyCommand::Grant(grant))])
                    .await
                    .unwrap();
                let columns = (0..items.len()).map(|n| format!("item_{n}")).collect();
                producer
                    .put_records(&code, columns, rows.clone())
                    .await
                    .unwrap();
                both_paths(&f, &analyst, &code).await
            });
            let (grpc, http, body, manifest) = match got {
                Ok(read) => read,
                Err((expected, status)) => {
                    prop_assert_eq!(expected, status);
                    return Ok(());
                }
            };
            prop_assert_eq!(&http, &grpc);
            prop_assert_eq!(http.len(), rows.len());
            let text = String::from_utf8_lossy(&body);
            for row in &rows {
                for (n, value) in row.iter().enumerate() {
                    let action = manifest
                        .get(&format!("item_{n}"))
                        .map_or("withhold", String::as_str);
                    if action != "clear" {
                        prop_assert!(
                            !text.contains(value.as_str()),
                            "item_{} ({}) leaked {:?}",
                            n,
                            action,
                            value
                        );
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    runtime.block_on(f.federation.stop()).unwrap();
}
