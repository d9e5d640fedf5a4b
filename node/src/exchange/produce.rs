//! The producing side of an answer: which items a consumer may see, which records match, and how
//! they are cut into signed batches. `Query` and `History` both come through here.

use prost::Message;
use tierlink_proto::v1::{BatchHeader, QueryRequest, Record, RecordList, SignedBatch};

use super::BatchSigner;
use crate::catalog::{Catalog, SharingType};
use crate::store::StoreError;

/// Records per batch when the consumer does not say.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// The most records one batch may hold, to bound memory on both sides.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// What a consumer gets of a catalog, and which records it asked for.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Positions of the items sent, in catalog order.
    columns: Vec<usize>,
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
        let (mut columns, mut column_codes, mut withheld) = (Vec::new(), Vec::new(), Vec::new());
        for (n, item) in catalog.items.iter().enumerate() {
            if is_owner || item.sharing != SharingType::NotShared {
                columns.push(n);
                column_codes.push(item.code.clone());
            } else {
                withheld.push(item.code.clone());
            }
        }
        Ok(Self {
            columns,
            column_codes,
            withheld,
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
            if !self.columns.contains(&n) {
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

    /// The record as the consumer may see it, or `None` when it does not match.
    pub fn apply(&self, record: Record) -> Option<Record> {
        if record.updated_at_micros < self.since_micros {
            return None;
        }
        let value = |n: usize| record.values.get(n).map(String::as_str).unwrap_or("");
        if !self.filters.iter().all(|(n, v)| value(*n) == v) {
            return None;
        }
        let values = self.columns.iter().map(|&n| value(n).to_owned()).collect();
        Some(Record { values, ..record })
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

/// Cuts records into encoded [`RecordList`]s of at most `batch_size`, each with its count.
/// Always yields at least one list, so an empty answer is still a signed answer.
pub fn record_lists(
    records: impl Iterator<Item = Result<Record, StoreError>>,
    batch_size: usize,
    limit: Option<u64>,
) -> impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>> {
    let mut records =
        records.take(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)));
    let mut done = false;
    let mut yielded = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut list = RecordList {
            records: Vec::with_capacity(batch_size),
        };
        for record in records.by_ref() {
            match record {
                Ok(r) => list.records.push(r),
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
            if list.records.len() == batch_size {
                break;
            }
        }
        if list.records.is_empty() && yielded {
            done = true;
            return None;
        }
        yielded = true;
        let count = list.records.len() as u64;
        Some(Ok((list.encode_to_vec(), count)))
    })
}

/// Seals record lists into a numbered stream of batches, marking the final one `last`.
pub fn seal_all(
    signer: &BatchSigner,
    template: BatchHeader,
    lists: impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>>,
) -> impl Iterator<Item = Result<SignedBatch, StoreError>> {
    let mut lists = lists.peekable();
    let mut sequence = 0u32;
    std::iter::from_fn(move || {
        let (records, count) = match lists.next()? {
            Ok(list) => list,
            Err(e) => return Some(Err(e)),
        };
        let header = BatchHeader {
            sequence,
            last: lists.peek().is_none(),
            created_at_micros: chrono::Utc::now().timestamp_micros(),
            record_count: count,
            ..template.clone()
        };
        sequence += 1;
        Some(Ok(signer.seal(header, records)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::parse_catalogs;
    use tierlink_proto::v1::FieldEquals;

    fn residents() -> Catalog {
        parse_catalogs(include_str!("../../../schema/examples/residents.json"), "r")
            .unwrap()
            .remove(0)
    }

    fn record(n: usize, width: usize) -> Record {
        Record {
            key: format!("{n:04}"),
            version: 1,
            updated_at_micros: n as i64,
            values: (0..width).map(|i| format!("{n}-{i}")).collect(),
        }
    }

    #[test]
    fn others_never_see_items_that_are_not_shared() {
        let catalog = residents();
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
        let width = catalog.items.len();
        let out = plan.apply(record(1, width)).unwrap();
        assert_eq!(out.values.len(), width - not_shared.len());
        for code in &not_shared {
            let n = catalog.item_index(code).unwrap();
            assert!(!out.values.contains(&format!("1-{n}")), "{code} leaked");
        }
        let own = Plan::for_consumer(&catalog, true).unwrap();
        assert_eq!(own.apply(record(1, width)).unwrap().values.len(), width);
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
        assert!(plan.apply(record(7, width)).is_some());
        assert!(plan.apply(record(8, width)).is_none(), "value differs");
        assert!(
            plan.apply(record(4, width)).is_none(),
            "older than updated_since"
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
    fn lists_are_cut_to_size_and_an_empty_answer_is_one_empty_list() {
        let counts = |n: usize, size: usize, limit: Option<u64>| -> Vec<u64> {
            record_lists((0..n).map(|i| Ok(record(i, 1))), size, limit)
                .map(|l| l.unwrap().1)
                .collect()
        };
        assert_eq!(counts(0, 500, None), [0]);
        assert_eq!(counts(1000, 500, None), [500, 500]);
        assert_eq!(counts(1001, 500, None), [500, 500, 1]);
        assert_eq!(counts(1001, 500, Some(600)), [500, 100]);
    }
}
