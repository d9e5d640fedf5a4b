//! The producing side of an answer: the one place a policy decision is carried out. Which items
//! a consumer gets and in what form, which rows, which records match, and how they are cut into
//! batches sealed to the node that asked and signed. `Query`, `History` and relays all come
//! through here.

use std::borrow::Borrow;
use std::sync::Arc;

use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use tierlink_core::catalog::{Catalog, ValueForm};
use tierlink_core::policy::{Action, Asker, Decision, HASH_CHARS, Redactor};
use tierlink_core::signed::{BatchSigner, Recipient};
use tierlink_proto::v1::{BatchHeader, ItemRedaction, QueryRequest, SignedBatch};
use tierlink_store::{RecordIter, Store, StoreError, StoredRecord};

/// Records per batch when the consumer does not say: one signature per thousand records keeps
/// signing and verifying a small part of a stream's cost.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// The most records one batch may hold, to bound memory on both sides.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// Where record lists are cut into batches: after `records` records, or before a record that
/// would take the list over `bytes` (encoded). A record larger than `bytes` goes alone; the
/// catalog's maximum record size keeps it within a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Most records in one batch.
    pub records: usize,
    /// Most bytes of encoded records in one batch (the node's `[exchange] batch_bytes`).
    pub bytes: usize,
}

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
    /// (item position, value in its one form) pairs every record must match.
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
            manifest: decision.items.iter().map(ItemRedaction::from).collect(),
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
    /// sent in clear, and a key range or a time bound needs keys in clear: anything else would
    /// reveal hidden values one guess at a time.
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
        // Write times follow the key (records are loaded in key order): asking for those written
        // since one time after another would sort the hashed keys by write time.
        if self.key_hashed && request.updated_since_micros != 0 {
            return Err(PlanError::NotShared(
                "keys are sent hashed under this grant, so records cannot be asked for by write time (updated_since): ask for all of them".into(),
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
            // Compared with the value's one form, however the integrator typed it.
            let value = ValueForm::of(&catalog.items[n], catalog)
                .condition(&condition.value)
                .map_err(|problem| {
                    PlanError::BadRequest(format!("where {}: {problem}", condition.item))
                })?;
            self.filters.push((n, value.into_owned()));
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
        let record = &mut scratch.record;
        record.clear();
        if self.walk(stored, Some(record))?.is_none() {
            return Ok(false);
        }
        encode_key(1, WireType::LengthDelimited, list);
        encode_varint(record.len() as u64, list);
        list.extend_from_slice(record);
        Ok(true)
    }

    /// Walks a stored record's fields: checks it against the row scope, the filters and the
    /// time bound and, when `record` is given, writes the record as the consumer may see it
    /// there. Returns the stored (real) key when the record matches, `None` when it does not.
    /// The one place that decides what matches, whether a record is sent or only ranked.
    fn walk<'s>(
        &self,
        stored: &'s [u8],
        mut record: Option<&mut Vec<u8>>,
    ) -> Result<Option<&'s [u8]>, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("stored record: {what}"));
        // Ranking a record that nothing can exclude needs only its key.
        let everything = self.filters.is_empty() && self.rows.is_none() && self.since_micros == 0;
        let mut buf = stored;
        let mut key: &[u8] = b"";
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
                        key = data;
                        match record.as_deref_mut() {
                            None if everything => return Ok(Some(key)),
                            Some(record) if self.key_hashed => {
                                self.append_field(1, Action::Hash, data, record)
                            }
                            Some(record) => record.extend_from_slice(raw),
                            None => {}
                        }
                        continue;
                    }
                    if !self.passes(item, data) {
                        return Ok(None);
                    }
                    if let Some(record) = record.as_deref_mut() {
                        match self.actions.get(item) {
                            Some(Action::Clear) => record.extend_from_slice(raw),
                            Some(Action::Withhold) | None => {}
                            Some(&action) => self.append_field(4, action, data, record),
                        }
                    }
                    item += 1;
                }
                (2 | 3, WireType::Varint) => {
                    let v = decode_varint(&mut buf).map_err(|e| corrupt(e.to_string()))?;
                    if tag == 3 {
                        updated_at = v as i64;
                    }
                    // A record's write history belongs to its key: records loaded in key order
                    // share write times with their neighbours, so with keys hashed neither the
                    // version nor the time travels.
                    if let Some(record) = record.as_deref_mut()
                        && !self.key_hashed
                    {
                        record.extend_from_slice(&field[..field.len() - buf.len()]);
                    }
                }
                (5, WireType::Varint) => {
                    decode_varint(&mut buf).map_err(|e| corrupt(e.to_string()))?;
                    // A deletion is sent as one whatever the grant: the reader must learn that
                    // the record it holds has ended, even when its key travels hashed.
                    if let Some(record) = record.as_deref_mut() {
                        record.extend_from_slice(&field[..field.len() - buf.len()]);
                    }
                }
                _ => return Err(corrupt(format!("unexpected field {tag}"))),
            }
        }
        if updated_at < self.since_micros {
            return Ok(None);
        }
        // Items appended to the catalog after this record was written have no value in it.
        for n in item..self.actions.len() {
            if !self.passes(n, b"") {
                return Ok(None);
            }
            if let Some(record) = record.as_deref_mut()
                && self.actions[n].is_sent()
            {
                encode_key(4, WireType::LengthDelimited, record);
                encode_varint(0, record);
            }
        }
        Ok(Some(key))
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

/// Projects stored records under `plan` and cuts the matches into encoded `RecordList`s as
/// `cut` says, each with its count, stopping after `limit` records. Always yields at least one
/// list, so an empty answer is still a signed answer. `on_match` sees each stored record sent,
/// before redaction (the audit keeps the keys).
pub fn record_lists(
    mut records: impl Iterator<Item = Result<StoredRecord, StoreError>>,
    plan: Plan,
    cut: Cut,
    limit: Option<u64>,
    mut on_match: impl FnMut(&StoredRecord),
) -> impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>> {
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut scratch = Scratch::default();
    let (mut done, mut yielded) = (false, false);
    // A record that would have taken the previous list over its bytes: it opens the next one.
    let mut carried = Vec::new();
    // Sized from the previous list, with room to spare: growing a list of a thousand records
    // copies it and faults in fresh pages.
    let most = cut.bytes.saturating_add(cut.bytes / 8);
    let mut capacity = (cut.records.min(1024) * 512).min(most);
    std::iter::from_fn(move || {
        if done && carried.is_empty() {
            return None;
        }
        let mut list = Vec::with_capacity(capacity);
        let mut count = 0u64;
        if !carried.is_empty() {
            list.append(&mut carried);
            count = 1;
        }
        while !done && count < cut.records as u64 && remaining > 0 && list.len() < cut.bytes {
            let Some(record) = records.next() else {
                done = true;
                break;
            };
            let at = list.len();
            let appended = record.and_then(|r| {
                let sent = plan.append_visible(r.bytes(), &mut list, &mut scratch)?;
                if sent {
                    on_match(&r);
                }
                Ok(sent)
            });
            match appended {
                Ok(true) => {
                    remaining -= 1;
                    if count > 0 && list.len() > cut.bytes {
                        carried = list.split_off(at);
                        break;
                    }
                    count += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
        done |= remaining == 0;
        capacity = capacity.max(list.len() + list.len() / 8).min(most);
        if count == 0 && yielded {
            return None;
        }
        yielded = true;
        Some(Ok((list, count)))
    })
}

/// The stored records a query reads, in the order they are sent.
///
/// Keys in clear: the store's scan of `key_from..key_to`, in key order; with `updated_since`, the
/// store's [`Store::scan_since`], which finds the records written since from its change log when
/// that is the shorter way.
///
/// Keys hashed: in the byte order of the hashed key, the very bytes sent as the key (a keyed
/// hash of the real key, see [`Redactor`]), so that a record's position carries nothing about
/// its real key or any hidden value; `limit` takes the first records in that order. A first pass
/// over the scan ranks the records that match (row scope, filters, `updated_since`) by hashed key,
/// keeping each one's real key; only the `2 × limit` first (at least 1,024) are kept at any time
/// when there is a limit. The records are then looked up one by one in that order, each checked
/// again as it is sent: one changed between the passes goes as it now stands if it still matches,
/// one gone is skipped, so the answer then holds fewer. Memory while ranking: 32 bytes plus the
/// key's length per record ranked (49 bytes for a 17-character person id: 49 MB for a street of
/// a million). The ranking runs on the first record asked for, on a batch worker.
///
/// What the shape of an answer with hashed keys reveals: the number of records that match, and
/// the records as sent. Batches are cut in the order sent by count and by the bytes of the records
/// as sent, so their number, `sequence`, `record_count`s and sizes follow from those; the header
/// is fixed by the grant and the request; the consumer's audit entry keeps what arrived. A
/// record's `version` and `updated_at_micros` are not sent (records loaded in key order over
/// several writes share write times with their neighbours). Not hidden: the time an answer takes
/// grows with the records the producer scans, scoped out or not.
pub fn query_records(
    store: Arc<dyn Store>,
    catalog: &str,
    plan: &Plan,
    request: &QueryRequest,
) -> RecordIter {
    if !plan.key_hashed {
        let to = (!request.key_to.is_empty()).then_some(request.key_to.as_str());
        return match request.updated_since_micros {
            0 => store.scan(catalog, &request.key_from, to),
            since => store.scan_since(catalog, &request.key_from, to, since),
        };
    }
    Box::new(HashedOrder {
        store,
        catalog: catalog.to_owned(),
        first_pass: Some((plan.clone(), request.limit)),
        keys: String::new(),
        ranked: Vec::new().into_iter(),
    })
}

/// A record ranked by its hashed key: the hash as sent, and where its real key sits in the
/// ranking's key text.
struct Ranked {
    hash: [u8; HASH_CHARS],
    start: usize,
    len: usize,
}

/// Records in hashed-key order, ranked on the first call to `next`.
struct HashedOrder {
    store: Arc<dyn Store>,
    catalog: String,
    /// The plan and limit (0: none) of the first pass, until it has run.
    first_pass: Option<(Plan, u64)>,
    /// The real keys of the records ranked, back to back.
    keys: String,
    ranked: std::vec::IntoIter<Ranked>,
}

impl HashedOrder {
    /// Ranks the records of the catalog that `plan` sends by hashed key, the first `limit`
    /// (0: all).
    fn rank(&mut self, plan: &Plan, limit: u64) -> Result<(), StoreError> {
        let most = match usize::try_from(limit) {
            Ok(0) | Err(_) => usize::MAX,
            Ok(n) => n,
        };
        let trim_at = most.saturating_mul(2).max(1024);
        let mut ranked = Vec::new();
        let expected = self.store.record_count(&self.catalog)?;
        ranked.reserve_exact(usize::try_from(expected).unwrap_or(usize::MAX).min(trim_at));
        let mut hash = Vec::with_capacity(HASH_CHARS);
        for record in self.store.scan(&self.catalog, "", None) {
            let record = record?;
            let Some(key) = plan.walk(record.bytes(), None)? else {
                continue;
            };
            let key = std::str::from_utf8(key)
                .map_err(|e| StoreError::Corrupt(format!("stored record key: {e}")))?;
            hash.clear();
            plan.redactor.apply(Action::Hash, key.as_bytes(), &mut hash);
            let mut bytes = [0u8; HASH_CHARS];
            bytes[..hash.len()].copy_from_slice(&hash);
            ranked.push(Ranked {
                hash: bytes,
                start: self.keys.len(),
                len: key.len(),
            });
            self.keys.push_str(key);
            if ranked.len() >= trim_at {
                self.keep_first(&mut ranked, most);
            }
        }
        self.keep_first(&mut ranked, most);
        let keys = &self.keys;
        ranked.sort_unstable_by(|a, b| order(keys, a, b));
        self.ranked = ranked.into_iter();
        Ok(())
    }

    /// Keeps the first `most` of `ranked` (in no particular order) and the keys they name.
    fn keep_first(&mut self, ranked: &mut Vec<Ranked>, most: usize) {
        if ranked.len() <= most {
            return;
        }
        let keys = &self.keys;
        ranked.select_nth_unstable_by(most, |a, b| order(keys, a, b));
        ranked.truncate(most);
        let mut kept = String::with_capacity(ranked.iter().map(|r| r.len).sum());
        for r in ranked.iter_mut() {
            let start = kept.len();
            kept.push_str(&self.keys[r.start..r.start + r.len]);
            r.start = start;
        }
        self.keys = kept;
    }
}

/// The order records are sent in when keys travel hashed: by hashed key, then (should two ever
/// hash alike) by real key, so that a limited answer is the start of the whole one.
fn order(keys: &str, a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    a.hash
        .cmp(&b.hash)
        .then_with(|| keys[a.start..a.start + a.len].cmp(&keys[b.start..b.start + b.len]))
}

impl Iterator for HashedOrder {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((plan, limit)) = self.first_pass.take()
            && let Err(e) = self.rank(&plan, limit)
        {
            self.ranked = Vec::new().into_iter();
            return Some(Err(e));
        }
        for r in self.ranked.by_ref() {
            let key = &self.keys[r.start..r.start + r.len];
            match self.store.get(&self.catalog, key) {
                Ok(Some(record)) => return Some(Ok(record)),
                Ok(None) => {}
                Err(e) => {
                    self.ranked = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// A sealed batch and the number of records in it.
pub struct Sealed {
    /// The batch.
    pub batch: SignedBatch,
    /// Records in it.
    pub record_count: u64,
}

/// What every batch of one answer shares: its header's fields, and who its records are sealed
/// to.
#[derive(Clone, Debug)]
pub struct Template {
    /// The header fields every batch carries.
    pub header: BatchHeader,
    /// The node that asked, with its registered encryption key.
    pub to: Recipient,
}

/// Seals record lists to `template.to` and signs them into a numbered stream of batches, marking
/// the final one `last`. The signer is borrowed or owned (an `Arc`), so that the stream can
/// outlive the caller's frame.
pub fn seal_all(
    signer: impl Borrow<BatchSigner>,
    template: Template,
    lists: impl Iterator<Item = Result<(Vec<u8>, u64), StoreError>>,
) -> impl Iterator<Item = Result<Sealed, StoreError>> {
    let Template {
        header: template,
        to,
    } = template;
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
            batch: signer.borrow().seal(header, records, &to),
            record_count,
        }))
    })
}

#[cfg(test)]
mod tests;
