//! The producing side of an answer: which items a consumer may see, which records match, and how
//! they are cut into signed batches. `Query` and `History` both come through here.

use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use tierlink_proto::v1::{BatchHeader, QueryRequest, SignedBatch};

use super::BatchSigner;
use crate::catalog::{Catalog, SharingType};
use crate::store::{StoreError, StoredRecord};

/// Records per batch when the consumer does not say: one signature per thousand records keeps
/// signing and verifying a small part of a stream's cost.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// The most records one batch may hold, to bound memory on both sides.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// What a consumer gets of a catalog, and which records it asked for.
#[derive(Clone, Debug)]
pub struct Plan {
    /// For each catalog item, whether it is sent.
    visible: Vec<bool>,
    /// Codes of the items sent.
    column_codes: Vec<String>,
    /// Codes of the items left out because they are not shared.
    withheld: Vec<String>,
    /// (item position, value) pairs every record must match.
    filters: Vec<(usize, String)>,
    since_micros: i64,
}

/// A request the producer cannot serve as asked.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The request reaches for data that is not shared.
    #[error("{0}")]
    NotShared(String),
    /// The request names something that does not exist.
    #[error("{0}")]
    BadRequest(String),
}

impl Plan {
    /// The view of `catalog` for a consumer: everything for the node itself, only shared items for
    /// anyone else.
    pub fn for_consumer(catalog: &Catalog, is_owner: bool) -> Result<Self, PlanError> {
        if !is_owner && catalog.sharing.kind == SharingType::NotShared {
            return Err(PlanError::NotShared(format!(
                "catalog {} is not shared: its records never leave the node",
                catalog.code
            )));
        }
        let visible: Vec<bool> = catalog
            .items
            .iter()
            .map(|i| is_owner || i.sharing != SharingType::NotShared)
            .collect();
        let (shown, withheld): (Vec<_>, Vec<_>) =
            catalog.items.iter().zip(&visible).partition(|(_, v)| **v);
        Ok(Self {
            column_codes: shown.into_iter().map(|(i, _)| i.code.clone()).collect(),
            withheld: withheld.into_iter().map(|(i, _)| i.code.clone()).collect(),
            visible,
            filters: Vec::new(),
            since_micros: 0,
        })
    }

    /// Adds a query's field conditions and time bound. Conditions may only name items the
    /// consumer sees: filtering on a withheld item would reveal its values one guess at a time.
    pub fn with_query(
        mut self,
        catalog: &Catalog,
        request: &QueryRequest,
    ) -> Result<Self, PlanError> {
        for condition in &request.r#where {
            let n = catalog.item_index(&condition.item).ok_or_else(|| {
                PlanError::BadRequest(format!(
                    "catalog {} has no item {:?} to filter on",
                    catalog.code, condition.item
                ))
            })?;
            if !self.visible[n] {
                return Err(PlanError::NotShared(format!(
                    "item {} is not shared, so it cannot be filtered on",
                    condition.item
                )));
            }
            self.filters.push((n, condition.value.clone()));
        }
        self.since_micros = request.updated_since_micros;
        Ok(self)
    }

    fn passes(&self, item: usize, value: &[u8]) -> bool {
        self.filters
            .iter()
            .all(|(n, want)| *n != item || want.as_bytes() == value)
    }

    /// Appends a stored record, as the consumer may see it, to `list` (an encoded `RecordList`),
    /// working on the encoded bytes so that no value is decoded or copied twice. Returns false,
    /// appending nothing, when the record does not match. `scratch` is reused between calls.
    pub fn append_visible(
        &self,
        stored: &[u8],
        list: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("stored record: {what}"));
        scratch.clear();
        let mut buf = stored;
        let mut item = 0;
        let mut updated_at = 0;
        while !buf.is_empty() {
            let field = buf;
            let (tag, wire) = decode_key(&mut buf).map_err(|e| corrupt(e.to_string()))?;
            match (tag, wire) {
                (1 | 4, WireType::LengthDelimited) => {
                    let len = decode_varint(&mut buf).map_err(|e| corrupt(e.to_string()))? as usize;
                    let value = buf
                        .get(..len)
                        .ok_or_else(|| corrupt("a field runs past the end".into()))?;
                    buf = &buf[len..];
                    let raw = &field[..field.len() - buf.len()];
                    if tag == 1 {
                        scratch.extend_from_slice(raw);
                        continue;
                    }
                    if !self.passes(item, value) {
                        return Ok(false);
                    }
                    if self.visible.get(item) == Some(&true) {
                        scratch.extend_from_slice(raw);
                    }
                    item += 1;
                }
                (2 | 3, WireType::Varint) => {
                    let v = decode_varint(&mut buf).map_err(|e| corrupt(e.to_string()))?;
                    if tag == 3 {
                        updated_at = v as i64;
                    }
                    scratch.extend_from_slice(&field[..field.len() - buf.len()]);
                }
                _ => return Err(corrupt(format!("unexpected field {tag}"))),
            }
        }
        if updated_at < self.since_micros {
            return Ok(false);
        }
        // Items appended to the catalog after this record was written have no value in it.
        for n in item..self.visible.len() {
            if !self.passes(n, b"") {
                return Ok(false);
            }
            if self.visible[n] {
                encode_key(4, WireType::LengthDelimited, scratch);
                encode_varint(0, scratch);
            }
        }
        encode_key(1, WireType::LengthDelimited, list);
        encode_varint(scratch.len() as u64, list);
        list.extend_from_slice(scratch);
        Ok(true)
    }

    /// A header template for batches under this plan.
    pub fn header(
        &self,
        consumer: &str,
        catalog: &str,
        kind: &str,
        request_id: &str,
    ) -> BatchHeader {
        BatchHeader {
            consumer: consumer.to_owned(),
            catalog: catalog.to_owned(),
            kind: kind.to_owned(),
            request_id: request_id.to_owned(),
            columns: self.column_codes.clone(),
            withheld: self.withheld.clone(),
            ..Default::default()
        }
    }
}

/// Projects stored records under `plan` and cuts the matches into encoded `RecordList`s of at
/// most `batch_size`, each with its count, stopping after `limit` records. Always yields at least
/// one list, so an empty answer is still a signed answer.
pub fn record_lists(
    mut records: impl Iterator<Item = Result<StoredRecord, StoreError>>,
    plan: Plan,
    batch_size: usize,
    limit: Option<u64>,
) -> impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>> {
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut scratch = Vec::new();
    let (mut done, mut yielded) = (false, false);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut list = Vec::with_capacity(batch_size.min(1024) * 512);
        let mut count = 0u64;
        while count < batch_size as u64 && remaining > 0 {
            let Some(record) = records.next() else {
                done = true;
                break;
            };
            match record.and_then(|r| plan.append_visible(r.bytes(), &mut list, &mut scratch)) {
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
    use crate::catalog::parse_catalogs;
    use prost::Message;
    use tierlink_proto::v1::{FieldEquals, Record, RecordList};

    fn residents() -> Catalog {
        parse_catalogs(include_str!("../../../schema/examples/residents.json"), "r")
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

    /// Runs `plan` over `records` and decodes what a consumer would get.
    fn apply(plan: &Plan, records: &[StoredRecord]) -> Vec<Record> {
        let (mut list, mut scratch) = (Vec::new(), Vec::new());
        for r in records {
            plan.append_visible(r.bytes(), &mut list, &mut scratch)
                .unwrap();
        }
        RecordList::decode(list.as_slice()).unwrap().records
    }

    #[test]
    fn others_never_see_items_that_are_not_shared() {
        let catalog = residents();
        let width = catalog.items.len();
        let plan = Plan::for_consumer(&catalog, false).unwrap();
        let not_shared: Vec<&str> = catalog
            .items
            .iter()
            .filter(|i| i.sharing == SharingType::NotShared)
            .map(|i| i.code.as_str())
            .collect();
        assert_eq!(plan.withheld, not_shared);
        assert!(
            plan.column_codes
                .iter()
                .all(|c| !not_shared.contains(&c.as_str()))
        );
        let out = apply(&plan, &[record(1, width)]);
        let expected: Vec<String> = catalog
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.sharing != SharingType::NotShared)
            .map(|(n, _)| format!("1-{n}"))
            .collect();
        assert_eq!(out[0].values, expected);
        assert_eq!(
            (
                out[0].key.as_str(),
                out[0].version,
                out[0].updated_at_micros
            ),
            ("0001", 2, 1)
        );

        let own = Plan::for_consumer(&catalog, true).unwrap();
        assert_eq!(
            apply(&own, &[record(1, width)])[0],
            record(1, width).decode().unwrap()
        );
    }

    #[test]
    fn records_older_than_the_catalog_get_empty_values_for_new_items() {
        let catalog = residents();
        let plan = Plan::for_consumer(&catalog, true).unwrap();
        let out = apply(&plan, &[record(5, 3)]);
        assert_eq!(out[0].values.len(), catalog.items.len());
        assert_eq!(out[0].values[2], "5-2");
        assert!(out[0].values[3..].iter().all(String::is_empty));
    }

    #[test]
    fn filters_apply_and_may_not_probe_withheld_items() {
        let catalog = residents();
        let query = |item: &str, value: &str| QueryRequest {
            r#where: vec![FieldEquals {
                item: item.into(),
                value: value.into(),
            }],
            updated_since_micros: 5,
            ..Default::default()
        };
        let plan = Plan::for_consumer(&catalog, false)
            .unwrap()
            .with_query(&catalog, &query("sex", "7-4"))
            .unwrap();
        let width = catalog.items.len();
        let out = apply(
            &plan,
            &[record(7, width), record(8, width), record(4, width)],
        );
        assert_eq!(
            out.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["0007"]
        );
        let err = Plan::for_consumer(&catalog, false)
            .unwrap()
            .with_query(&catalog, &query("religion", "x"))
            .unwrap_err();
        assert!(matches!(err, PlanError::NotShared(_)), "{err}");
        assert!(
            Plan::for_consumer(&catalog, false)
                .unwrap()
                .with_query(&catalog, &query("salary", "1"))
                .is_err()
        );
    }

    #[test]
    fn damaged_bytes_are_reported_not_passed_on() {
        let plan = Plan::for_consumer(&residents(), true).unwrap();
        let good = record(1, 4);
        let cut = &good.bytes()[..good.bytes().len() - 2];
        let err = plan
            .append_visible(cut, &mut Vec::new(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn lists_are_cut_to_size_and_an_empty_answer_is_one_empty_list() {
        let plan = Plan::for_consumer(&residents(), true).unwrap();
        let counts = |n: usize, size: usize, limit: Option<u64>| -> Vec<u64> {
            record_lists((0..n).map(|i| Ok(record(i, 1))), plan.clone(), size, limit)
                .map(|l| l.unwrap().1)
                .collect()
        };
        assert_eq!(counts(0, 500, None), [0]);
        assert_eq!(counts(1000, 500, None), [500, 500]);
        assert_eq!(counts(1001, 500, None), [500, 500, 1]);
        assert_eq!(counts(1001, 500, Some(600)), [500, 100]);
    }
}
