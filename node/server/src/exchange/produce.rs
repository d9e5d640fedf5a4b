//! The producing side of an answer: the one place a policy decision is carried out. Which items
//! a consumer gets and in what form, which rows, which records match, and how they are cut into
//! signed batches. `Query`, `History` and relays all come through here.

use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use tierlink_proto::v1::{BatchHeader, ItemRedaction, QueryRequest, SignedBatch};

use tierlink_core::catalog::Catalog;
use tierlink_core::policy::{Action, Asker, Decision, Redactor};
use tierlink_core::signed::BatchSigner;
use tierlink_store::{StoreError, StoredRecord};

/// Records per batch when the consumer does not say: one signature per thousand records keeps
/// signing and verifying a small part of a stream's cost.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// The most records one batch may hold, to bound memory on both sides.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// What a consumer gets of a catalog under a policy decision, and which records it asked for.
#[derive(Clone, Debug)]
pub struct Plan {
    /// For each catalog item, what is sent.
    actions: Vec<Action>,
    /// Codes of the items sent.
    column_codes: Vec<String>,
    /// Codes of the items withheld.
    withheld: Vec<String>,
    /// What was done to each item, and why.
    manifest: Vec<ItemRedaction>,
    /// The grant decided under.
    grant: String,
    /// Keys travel hashed: a primary-key item is not sent in clear.
    key_hashed: bool,
    /// Rows must hold a division code with this prefix in this item.
    rows: Option<(usize, String)>,
    /// The row scope as the header states it.
    row_scope: String,
    /// (item position, value) pairs every record must match.
    filters: Vec<(usize, String)>,
    since_micros: i64,
    redactor: Redactor,
}

/// A request the producer cannot serve as asked.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The request reaches for data it may not see.
    #[error("{0}")]
    NotShared(String),
    /// The request names something that does not exist.
    #[error("{0}")]
    BadRequest(String),
    /// The node cannot carry out the decision.
    #[error("{0}")]
    Unavailable(String),
}

impl Plan {
    /// The plan carrying out `decision` on `catalog`.
    pub fn new(
        catalog: &Catalog,
        decision: &Decision,
        redactor: Redactor,
    ) -> Result<Self, PlanError> {
        let actions: Vec<Action> = decision.items.iter().map(|d| d.action).collect();
        if let Some(d) = decision.items.iter().find(|d| !redactor.can(d.action)) {
            return Err(PlanError::Unavailable(format!(
                "item {} is to be hashed, but this node has no federation hash key: its administrator installs it (files.hash_key in node.toml)",
                d.item
            )));
        }
        let rows = match &decision.rows {
            Some(scope) => Some((
                catalog.item_index(&scope.item).ok_or_else(|| {
                    PlanError::Unavailable(format!(
                        "grant {} scopes rows by item {}, which catalog {} no longer has",
                        decision.grant, scope.item, catalog.code
                    ))
                })?,
                scope.within.clone(),
            )),
            None => None,
        };
        Ok(Self {
            column_codes: decision
                .items
                .iter()
                .filter(|d| d.action.is_sent())
                .map(|d| d.item.clone())
                .collect(),
            withheld: decision
                .items
                .iter()
                .filter(|d| !d.action.is_sent())
                .map(|d| d.item.clone())
                .collect(),
            manifest: decision
                .items
                .iter()
                .map(|d| ItemRedaction {
                    item: d.item.clone(),
                    action: d.action.to_string(),
                    rule: d.rule.as_str().to_owned(),
                })
                .collect(),
            grant: decision.grant.clone(),
            key_hashed: !decision.key_in_clear(catalog),
            row_scope: decision
                .rows
                .as_ref()
                .map(|r| format!("{} within {}", r.item, r.within))
                .unwrap_or_default(),
            rows,
            actions,
            filters: Vec::new(),
            since_micros: 0,
            redactor,
        })
    }

    /// Adds a query's key range, field conditions and time bound. Conditions may only name items
    /// sent in clear, and a key range needs keys in clear: anything else would reveal hidden
    /// values one guess at a time.
    pub fn with_query(
        mut self,
        catalog: &Catalog,
        request: &QueryRequest,
    ) -> Result<Self, PlanError> {
        if self.key_hashed && !(request.key_from.is_empty() && request.key_to.is_empty()) {
            return Err(PlanError::NotShared(
                "keys are sent hashed under this grant, so a key range cannot be asked for".into(),
            ));
        }
        for condition in &request.r#where {
            let n = catalog.item_index(&condition.item).ok_or_else(|| {
                PlanError::BadRequest(format!(
                    "catalog {} has no item {:?} to filter on",
                    catalog.code, condition.item
                ))
            })?;
            if self.actions[n] != Action::Clear {
                return Err(PlanError::NotShared(format!(
                    "item {} is not sent in clear, so it cannot be filtered on",
                    condition.item
                )));
            }
            self.filters.push((n, condition.value.clone()));
        }
        self.since_micros = request.updated_since_micros;
        Ok(self)
    }

    /// Whether one record may be looked up by key: only when keys are sent in clear.
    pub fn check_key_lookup(&self) -> Result<(), PlanError> {
        if self.key_hashed {
            return Err(PlanError::NotShared(
                "keys are sent hashed under this grant, so a record cannot be looked up by key"
                    .into(),
            ));
        }
        Ok(())
    }

    fn passes(&self, item: usize, value: &[u8]) -> bool {
        self.filters
            .iter()
            .all(|(n, want)| *n != item || want.as_bytes() == value)
            && self
                .rows
                .as_ref()
                .is_none_or(|(n, within)| *n != item || value.starts_with(within.as_bytes()))
    }

    /// Appends a length-delimited field `tag` holding `value` as `action` makes it, redacting
    /// straight into `out` behind a one-byte length that grows only for a long result.
    fn append_field(&self, tag: u32, action: Action, value: &[u8], out: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, out);
        let at = out.len();
        out.push(0);
        self.redactor.apply(action, value, out);
        let len = out.len() - at - 1;
        if len < 0x80 {
            out[at] = len as u8;
        } else {
            let mut prefix = Vec::with_capacity(4);
            encode_varint(len as u64, &mut prefix);
            out.splice(at..=at, prefix);
        }
    }

    /// Appends a stored record, as the consumer may see it, to `list` (an encoded `RecordList`),
    /// working on the encoded bytes so that no value in clear is decoded or copied twice. Returns
    /// false, appending nothing, when the record does not match or is outside the row scope.
    /// `scratch` is reused between calls.
    pub fn append_visible(
        &self,
        stored: &[u8],
        list: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<bool, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("stored record: {what}"));
        let record = &mut scratch.record;
        record.clear();
        let mut buf = stored;
        let mut item = 0;
        let mut updated_at = 0;
        while !buf.is_empty() {
            let field = buf;
            let (tag, wire) = decode_key(&mut buf).map_err(|e| corrupt(e.to_string()))?;
            match (tag, wire) {
                (1 | 4, WireType::LengthDelimited) => {
                    let len = decode_varint(&mut buf).map_err(|e| corrupt(e.to_string()))? as usize;
                    let data = buf
                        .get(..len)
                        .ok_or_else(|| corrupt("a field runs past the end".into()))?;
                    buf = &buf[len..];
                    let raw = &field[..field.len() - buf.len()];
                    if tag == 1 {
                        if self.key_hashed {
                            self.append_field(1, Action::Hash, data, record);
                        } else {
                            record.extend_from_slice(raw);
                        }
                        continue;
                    }
                    if !self.passes(item, data) {
                        return Ok(false);
                    }
                    match self.actions.get(item) {
                        Some(Action::Clear) => record.extend_from_slice(raw),
                        Some(Action::Withhold) | None => {}
                        Some(&action) => self.append_field(4, action, data, record),
                    }
                    item += 1;
                }
                (2 | 3, WireType::Varint) => {
                    let v = decode_varint(&mut buf).map_err(|e| corrupt(e.to_string()))?;
                    if tag == 3 {
                        updated_at = v as i64;
                    }
                    record.extend_from_slice(&field[..field.len() - buf.len()]);
                }
                _ => return Err(corrupt(format!("unexpected field {tag}"))),
            }
        }
        if updated_at < self.since_micros {
            return Ok(false);
        }
        // Items appended to the catalog after this record was written have no value in it.
        for n in item..self.actions.len() {
            if !self.passes(n, b"") {
                return Ok(false);
            }
            if self.actions[n].is_sent() {
                encode_key(4, WireType::LengthDelimited, record);
                encode_varint(0, record);
            }
        }
        encode_key(1, WireType::LengthDelimited, list);
        encode_varint(record.len() as u64, list);
        list.extend_from_slice(record);
        Ok(true)
    }

    /// A header template for batches under this plan, asked for by `asker` (none when the node
    /// reads its own records).
    pub fn header(
        &self,
        consumer: &str,
        catalog: &str,
        kind: &str,
        request_id: &str,
        asker: Option<&Asker>,
    ) -> BatchHeader {
        BatchHeader {
            consumer: consumer.to_owned(),
            catalog: catalog.to_owned(),
            kind: kind.to_owned(),
            request_id: request_id.to_owned(),
            columns: self.column_codes.clone(),
            withheld: self.withheld.clone(),
            principal: asker.map(Asker::principal_id).unwrap_or_default(),
            role: asker.map(|a| a.role.clone()).unwrap_or_default(),
            purpose: asker.map(|a| a.purpose.clone()).unwrap_or_default(),
            grant: self.grant.clone(),
            manifest: self.manifest.clone(),
            row_scope: self.row_scope.clone(),
            key_hashed: self.key_hashed,
            ..Default::default()
        }
    }
}

/// A buffer [`Plan::append_visible`] reuses from record to record.
#[derive(Default)]
pub struct Scratch {
    record: Vec<u8>,
}

/// Projects stored records under `plan` and cuts the matches into encoded `RecordList`s of at
/// most `batch_size`, each with its count, stopping after `limit` records. Always yields at least
/// one list, so an empty answer is still a signed answer. `on_match` sees each stored record
/// sent, before redaction (the audit keeps the keys).
pub fn record_lists(
    mut records: impl Iterator<Item = Result<StoredRecord, StoreError>>,
    plan: Plan,
    batch_size: usize,
    limit: Option<u64>,
    mut on_match: impl FnMut(&StoredRecord),
) -> impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>> {
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut scratch = Scratch::default();
    let (mut done, mut yielded) = (false, false);
    // Sized from the previous list, with room to spare: growing a list of a thousand records
    // copies it and faults in fresh pages.
    let mut capacity = batch_size.min(1024) * 512;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut list = Vec::with_capacity(capacity);
        let mut count = 0u64;
        while count < batch_size as u64 && remaining > 0 {
            let Some(record) = records.next() else {
                done = true;
                break;
            };
            let appended = record.and_then(|r| {
                let sent = plan.append_visible(r.bytes(), &mut list, &mut scratch)?;
                if sent {
                    on_match(&r);
                }
                Ok(sent)
            });
            match appended {
                Ok(true) => {
                    count += 1;
                    remaining -= 1;
                }
                Ok(false) => {}
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
        done |= remaining == 0;
        capacity = capacity.max(list.len() + list.len() / 8);
        if count == 0 && yielded {
            return None;
        }
        yielded = true;
        Some(Ok((list, count)))
    })
}

/// A sealed batch and the number of records in it.
pub struct Sealed {
    /// The batch.
    pub batch: SignedBatch,
    /// Records in it.
    pub record_count: u64,
}

/// Seals record lists into a numbered stream of batches, marking the final one `last`.
pub fn seal_all(
    signer: &BatchSigner,
    template: BatchHeader,
    lists: impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>>,
) -> impl Iterator<Item = Result<Sealed, StoreError>> {
    let mut lists = lists.peekable();
    let mut sequence = 0u32;
    std::iter::from_fn(move || {
        let (records, record_count) = match lists.next()? {
            Ok(list) => list,
            Err(e) => return Some(Err(e)),
        };
        let header = BatchHeader {
            sequence,
            last: lists.peek().is_none(),
            created_at_micros: chrono::Utc::now().timestamp_micros(),
            record_count,
            ..template.clone()
        };
        sequence += 1;
        Some(Ok(Sealed {
            batch: signer.seal(header, records),
            record_count,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tierlink_core::catalog::{SharingType, parse_catalogs};
    use tierlink_core::policy::{HashKey, ItemDecision, RowScope, Rule};
    use tierlink_proto::v1::{FieldEquals, Record, RecordList};

    fn residents() -> Catalog {
        parse_catalogs(
            include_str!("../../../../schema/examples/residents.json"),
            "r",
        )
        .unwrap()
        .remove(0)
    }

    fn record(n: usize, width: usize) -> StoredRecord {
        let values = (0..width).map(|i| format!("{n}-{i}")).collect();
        Record {
            key: format!("{n:04}"),
            version: 1 + n as u64 % 3,
            updated_at_micros: n as i64,
            values,
        }
        .into()
    }

    /// A decision giving each item `action(item)`, as a grant would.
    fn decision(catalog: &Catalog, action: impl Fn(&str) -> Action) -> Decision {
        Decision {
            grant: "g1".into(),
            items: catalog
                .items
                .iter()
                .map(|i| ItemDecision {
                    item: i.code.clone(),
                    action: if i.sharing == SharingType::NotShared {
                        Action::Withhold
                    } else {
                        action(&i.code)
                    },
                    rule: Rule::Named,
                })
                .collect(),
            rows: None,
        }
    }

    fn redactor() -> Redactor {
        Redactor::new(Some(HashKey::generate().unwrap()))
    }

    fn plan(catalog: &Catalog, action: impl Fn(&str) -> Action) -> Plan {
        Plan::new(catalog, &decision(catalog, action), redactor()).unwrap()
    }

    /// Runs `plan` over `records` and decodes what a consumer would get.
    fn apply(plan: &Plan, records: &[StoredRecord]) -> Vec<Record> {
        let (mut list, mut scratch) = (Vec::new(), Scratch::default());
        for r in records {
            plan.append_visible(r.bytes(), &mut list, &mut scratch)
                .unwrap();
        }
        RecordList::decode(list.as_slice()).unwrap().records
    }

    #[test]
    fn each_item_is_sent_as_decided_and_the_manifest_says_so() {
        let catalog = residents();
        let width = catalog.items.len();
        let plan = plan(&catalog, |code| match code {
            "id_number" => Action::Mask { first: 2, last: 1 },
            "name" => Action::Hash,
            "phone" => Action::Withhold,
            _ => Action::Clear,
        });
        let out = apply(&plan, &[record(1, width)]);
        let header = plan.header("420500", &catalog.code, "query", "r", None);
        assert!(!header.columns.contains(&"phone".to_string()));
        assert!(header.withheld.contains(&"religion".to_string()));
        let sent: Vec<&str> = header.columns.iter().map(String::as_str).collect();
        let value = |item: &str| &out[0].values[sent.iter().position(|c| *c == item).unwrap()];
        let n = |item: &str| catalog.item_index(item).unwrap();
        let mask = Action::Mask { first: 2, last: 1 };
        let id = format!("1-{}", n("id_number"));
        assert_eq!(
            value("id_number"),
            &Redactor::new(None).apply_str(mask, &id)
        );
        assert_ne!(value("id_number"), &id);
        assert_eq!(value("name").len(), 16);
        assert_eq!(value("sex"), &format!("1-{}", n("sex")));
        assert!(!out[0].values.contains(&format!("1-{}", n("phone"))));
        assert!(!out[0].values.contains(&format!("1-{}", n("religion"))));
        let manifest: Vec<String> = header
            .manifest
            .iter()
            .map(|m| format!("{} {}", m.item, m.action))
            .collect();
        assert!(manifest.contains(&"phone withhold".to_string()));
        assert!(manifest.contains(&"id_number mask:2:1".to_string()));
        assert_eq!(
            (
                out[0].key.as_str(),
                out[0].version,
                out[0].updated_at_micros
            ),
            ("0001", 2, 1)
        );
        assert!(!header.key_hashed);
    }

    #[test]
    fn a_long_redacted_value_gets_a_longer_length_prefix() {
        let catalog = residents();
        let plan = plan(&catalog, |_| Action::Mask { first: 1, last: 1 });
        let long = "地".repeat(100);
        let mut stored = record(3, catalog.items.len()).decode().unwrap();
        stored.values[2] = long.clone();
        let out = apply(&plan, &[stored.into()]);
        let name = &out[0].values[2];
        assert_eq!(name.chars().count(), 100);
        assert!(name.starts_with('地') && name.ends_with('地') && name.contains("**"));
    }

    #[test]
    fn the_owner_gets_every_item_as_stored() {
        let catalog = residents();
        let width = catalog.items.len();
        let own = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
        assert_eq!(
            apply(&own, &[record(1, width)])[0],
            record(1, width).decode().unwrap()
        );
    }

    #[test]
    fn a_hidden_primary_key_travels_hashed_and_cannot_be_ranged() {
        let catalog = residents();
        let plan = plan(&catalog, |code| {
            if code == "person_id" {
                Action::Mask { first: 0, last: 2 }
            } else {
                Action::Clear
            }
        });
        let out = apply(&plan, &[record(7, catalog.items.len())]);
        assert_eq!(out[0].key.len(), 16);
        assert_ne!(out[0].key, "0007");
        assert!(plan.header("c", "x", "query", "r", None).key_hashed);
        assert!(plan.check_key_lookup().is_err());
        let ranged = QueryRequest {
            key_from: "0001".into(),
            ..Default::default()
        };
        assert!(matches!(
            plan.with_query(&catalog, &ranged),
            Err(PlanError::NotShared(_))
        ));
    }

    #[test]
    fn rows_outside_the_scope_are_not_sent() {
        let catalog = residents();
        let mut d = decision(&catalog, |_| Action::Clear);
        let n = catalog.item_index("community_code").unwrap();
        d.rows = Some(RowScope {
            item: "community_code".into(),
            within: format!("7-{n}"),
        });
        let plan = Plan::new(&catalog, &d, redactor()).unwrap();
        let width = catalog.items.len();
        let out = apply(
            &plan,
            &[record(7, width), record(8, width), record(70, width)],
        );
        assert_eq!(
            out.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["0007"]
        );
        assert_eq!(
            plan.header("c", "x", "query", "r", None).row_scope,
            "community_code within 7-14"
        );
    }

    #[test]
    fn hashing_needs_the_federation_key() {
        let catalog = residents();
        let d = decision(&catalog, |_| Action::Hash);
        assert!(matches!(
            Plan::new(&catalog, &d, Redactor::new(None)),
            Err(PlanError::Unavailable(_))
        ));
    }

    #[test]
    fn records_older_than_the_catalog_get_empty_values_for_new_items() {
        let catalog = residents();
        let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
        let out = apply(&plan, &[record(5, 3)]);
        assert_eq!(out[0].values.len(), catalog.items.len());
        assert_eq!(out[0].values[2], "5-2");
        assert!(out[0].values[3..].iter().all(String::is_empty));
    }

    #[test]
    fn filters_apply_and_may_only_name_items_sent_in_clear() {
        let catalog = residents();
        let query = |item: &str, value: &str| QueryRequest {
            r#where: vec![FieldEquals {
                item: item.into(),
                value: value.into(),
            }],
            updated_since_micros: 5,
            ..Default::default()
        };
        let masked = |code: &str| {
            if code == "phone" {
                Action::Mask { first: 3, last: 4 }
            } else {
                Action::Clear
            }
        };
        let n = catalog.item_index("sex").unwrap();
        let filtered = plan(&catalog, masked)
            .with_query(&catalog, &query("sex", &format!("7-{n}")))
            .unwrap();
        let width = catalog.items.len();
        let out = apply(
            &filtered,
            &[record(7, width), record(8, width), record(4, width)],
        );
        assert_eq!(
            out.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["0007"]
        );
        for item in ["religion", "phone"] {
            let err = plan(&catalog, masked)
                .with_query(&catalog, &query(item, "x"))
                .unwrap_err();
            assert!(matches!(err, PlanError::NotShared(_)), "{err}");
        }
        assert!(matches!(
            plan(&catalog, masked).with_query(&catalog, &query("salary", "1")),
            Err(PlanError::BadRequest(_))
        ));
    }

    #[test]
    fn damaged_bytes_are_reported_not_passed_on() {
        let catalog = residents();
        let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
        let good = record(1, 4);
        let cut = &good.bytes()[..good.bytes().len() - 2];
        let err = plan
            .append_visible(cut, &mut Vec::new(), &mut Scratch::default())
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn lists_are_cut_to_size_and_an_empty_answer_is_one_empty_list() {
        let catalog = residents();
        let plan = Plan::new(&catalog, &Decision::owner(&catalog), Redactor::new(None)).unwrap();
        let counts = |n: usize, size: usize, limit: Option<u64>| -> Vec<u64> {
            record_lists(
                (0..n).map(|i| Ok(record(i, 1))),
                plan.clone(),
                size,
                limit,
                |_| {},
            )
            .map(|l| l.unwrap().1)
            .collect()
        };
        assert_eq!(counts(0, 500, None), [0]);
        assert_eq!(counts(1000, 500, None), [500, 500]);
        assert_eq!(counts(1001, 500, None), [500, 500, 1]);
        assert_eq!(counts(1001, 500, Some(600)), [500, 100]);
    }
}
