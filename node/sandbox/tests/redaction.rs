//! The property behind field-level secrecy, at the one enforcement point every read path goes
//! through (the producer's plan, then sealing): for random catalogs, grants and records, no
//! value the decision does not send in clear appears anywhere in the bytes the asking node reads
//! (the signed headers and the records it opens), keys included — and every value sent in clear
//! arrives unchanged.

use proptest::prelude::*;
use prost::Message;
use tierlink_core::catalog::{Catalog, SensitivityGrade, SharingType, parse_catalogs};
use tierlink_core::identity::{
    EncryptionKeys, NodeCredentials, Tier, TrustedCa, Unit, generate_ca, issue_node_certificates,
};
use tierlink_core::limits::DEFAULT_BATCH_BYTES;
use tierlink_core::policy::{Action, Asker, Grant, Grantee, HashKey, Policies, Redactor, Role};
use tierlink_core::signed::{BatchOpener, BatchSigner, BatchVerifier, Recipient};
use tierlink_node::exchange::produce::{Cut, Plan, Template, record_lists, seal_all};
use tierlink_proto::v1::{BatchHeader, Record, RecordList};
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

/// A catalog with these items, adjusted to the catalog rules: the first is the primary key and
/// always shared; core and sensitive items are shared conditionally if at all.
fn catalog(items: &mut [ItemSpec]) -> Catalog {
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
    let json = serde_json::json!({
        "code": "101001001/000009",
        "name": "generated",
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
    parse_catalogs(&json.to_string(), "generated")
        .unwrap()
        .remove(0)
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
        let catalog = catalog(&mut items);
        let role = Role {
            unit: "420500".parse().unwrap(),
            name: "analyst".into(),
            department: "d".into(),
            post: "p".into(),
        };
        let grant = Grant {
            id: "g".into(),
            producer: "420502001".parse().unwrap(),
            catalog: catalog.code.clone(),
            grantee: Grantee::Role(role.id()),
            purpose: "check".into(),
            expires: "2099-12-31".into(),
            items: items
                .iter()
                .enumerate()
                .filter_map(|(n, i)| i.action.map(|a| (format!("item_{n}"), a)))
                .collect(),
            others,
            rows: None,
            delegated_from: None,
            access_request: None,
            issuer: None,
        };
        let mut policies = Policies::default();
        policies.roles.insert(role.id(), role.clone());
        policies.grants.insert("g".into(), grant);
        let asker = Asker {
            node: "420500".parse().unwrap(),
            principal: "p".into(),
            role: role.id(),
            purpose: "check".into(),
            grant: None,
        };
        let decision = policies
            .decide(&"420502001".parse().unwrap(), &catalog, &asker, "2026-11-28")
            .unwrap();
        let plan = Plan::new(&catalog, &decision, Redactor::new(Some(HashKey::generate().unwrap()))).unwrap();
        let rows: Vec<Vec<String>> = values
            .iter()
            .enumerate()
            .map(|(r, row)| (0..items.len()).map(|n| format!("R{r}I{n}Z{}", row[n])).collect())
            .collect();
        let stored: Vec<StoredRecord> = rows
            .iter()
            .map(|values| Record {
                key: values[0].clone(),
                version: 1,
                updated_at_micros: 1,
                values: values.clone(),
            }
            .into())
            .collect();
        let template = plan.header("420500", &catalog.code, "query", "r", Some(&asker));
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
        for sealed in seal_all(&signer, Template { header: template, to }, lists) {
            let batch = sealed.unwrap().batch;
            let opened = opener.open(&verifier, &batch).unwrap();
            bytes.extend_from_slice(&batch.header);
            bytes.extend_from_slice(&RecordList { records: opened.records.clone() }.encode_to_vec());
            header = opened.header;
            received.extend(opened.records);
        }
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
