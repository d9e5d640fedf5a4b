//! Cross-checks (对比核查): comparing one unit's catalog with another's on a join item, so that
//! each side learns which of *its own* records match, which differ (in which items) and which the
//! other lacks, and nothing of the other side's records that do not match.
//!
//! # The construction
//! A Diffie–Hellman private set intersection, as in Meadows (1986, "A more efficient
//! cryptographic matchmaking protocol for use in the absence of a continuously available third
//! party"), Huberman, Franklin and Hogg (1999, "Enhancing privacy and trust in electronic
//! communities"), and the DH-PSI of Google's private-join-and-compute and the IETF's PSI
//! drafts, over the Ristretto group (RFC 9496) of curve25519-dalek:
//!
//! 1. Each side hashes each of its elements to the group: SHA-512 of a domain-separated encoding
//!    ([`Terms`]: the run id, both catalogs, the join item and, for an item element, the item
//!    code), then Ristretto's one-way map from 64 uniform bytes (RFC 9496 §4.3.4). It raises
//!    them to its secret scalar (`a`, `b`), shuffles them, and sends them.
//! 2. Each side raises what it received to its own scalar and sends it back in the order
//!    received: `H(x)^ab`. Each side then holds its own elements raised to `ab`, in its own order,
//!    and the other's raised to `ab`, in the other's shuffled order: equal values are matches.
//!
//! Elements come in tuples per record. Round one sends two per record: the join value alone
//! (the key element) and the join value with every compared item's value (the record element),
//! so a record is matched (both equal), differing (only the key equal) or unmatched. Round two
//! sends one element per compared item, only for the records that differ, so which items differ
//! costs extra only where records differ.
//!
//! # What each side learns
//! Under the decisional Diffie–Hellman assumption, with the hash to the group taken as a random
//! oracle, a side learns: how many records the other side compared, which of its own records
//! are matched and, of those that differ, which items differ; for each of the other side's
//! records, whether it is matched, differing or unmatched, tied only to the other side's opaque
//! reference (a keyed hash of its key under a secret that side keeps for the pair of catalogs, so
//! a later run of the same pair can tell a mismatch still stands). Nothing of the values of the
//! other side's unmatched records: a blinded element is a random-looking group element to
//! anyone without the scalar. The model is honest-but-curious: a side that lies about its
//! elements changes only what it is told.
//!
//! Costs, per record and side: two hashes to the group and four scalar multiplications in round
//! one (own two elements blinded, the other's two raised again); `2 × compared items` more per
//! differing record in round two.
//!
//! Everything here is pure: the node carries [`Party`]'s messages over the exchange.

use std::collections::{HashMap, HashSet};

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::catalog::{Catalog, ValueForm};

/// Bytes of one blinded element: a compressed Ristretto point.
pub const ELEMENT_BYTES: usize = 32;

/// Bytes of one opaque reference as sent.
pub const REFERENCE_BYTES: usize = 16;

/// Elements per record in round one: the key element and the record element.
pub const ROUND_ONE_WIDTH: usize = 2;

/// Prefix of every hashed element, so no other hash in the system can be taken for one.
const DOMAIN: &[u8] = b"tierlink.v1.CrossCheck\0";

/// A cross-check the protocol cannot carry out, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossCheckError {
    /// An item the run names is not in a catalog.
    #[error("catalog {catalog} has no item {item}: name items both catalogs hold")]
    NoSuchItem {
        /// The catalog's code.
        catalog: String,
        /// The item named.
        item: String,
    },
    /// The run compares no items, or names an item twice, or compares the join item.
    #[error("{0}")]
    Terms(String),
    /// The other side sent something of the wrong shape.
    #[error("the other side sent {0}: the run is abandoned; run it again")]
    Malformed(String),
    /// A step was taken out of order.
    #[error("cross-check step out of order: {0}")]
    OutOfOrder(&'static str),
    /// No randomness for the secret scalar or the shuffle.
    #[error("no randomness from the operating system ({0})")]
    Randomness(String),
}

/// What a run compares; every element is domain-separated by all of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The run's id, `cc_` and 16 hex digits: elements of one run are useless in another.
    pub run: String,
    /// The initiating side's catalog, `NODE:CODE`.
    pub initiator: String,
    /// The counterpart's catalog, `NODE:CODE`.
    pub counterpart: String,
    /// The item both catalogs join on.
    pub join: String,
    /// The items compared, in the order the run names them.
    pub compared: Vec<String>,
}

impl Terms {
    /// Checks that the terms make sense: at least one item compared, none twice, not the join
    /// item.
    pub fn check(&self) -> Result<(), CrossCheckError> {
        if self.compared.is_empty() {
            return Err(CrossCheckError::Terms(
                "a cross-check compares at least one item besides the join item: name them (--compare ITEM,ITEM)".into(),
            ));
        }
        let mut seen = HashSet::new();
        for item in &self.compared {
            if item == &self.join {
                return Err(CrossCheckError::Terms(format!(
                    "{item} is the join item: records are joined on it, so it is not compared as well"
                )));
            }
            if !seen.insert(item) {
                return Err(CrossCheckError::Terms(format!(
                    "{item} is named twice among the compared items"
                )));
            }
        }
        Ok(())
    }

    /// The hash input's common prefix: the domain, then every term, each length-prefixed.
    fn context(&self) -> Sha512 {
        let mut h = Sha512::new();
        h.update(DOMAIN);
        for part in [&self.run, &self.initiator, &self.counterpart, &self.join] {
            field(&mut h, part.as_bytes());
        }
        h.update((self.compared.len() as u64).to_be_bytes());
        for item in &self.compared {
            field(&mut h, item.as_bytes());
        }
        h
    }
}

/// Appends `bytes` with its length, so no two sequences of fields hash alike.
fn field(h: &mut Sha512, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// One record as it takes part: its primary key (kept on its own side), its join value and its
/// compared values, each in its item's one form ([`ValueForm::condition`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The record's primary key.
    pub key: String,
    /// The join item's value.
    pub join: String,
    /// The compared items' values, in [`Terms::compared`] order.
    pub values: Vec<String>,
}

/// One side's records, ready to compare.
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    /// Records taking part, each with a join value no other record of this side holds.
    pub entries: Vec<Entry>,
    /// Keys of records that do not take part: no join value, or one another record shares (a
    /// repeated value would match more than one record on the other side).
    pub not_compared: Vec<String>,
}

/// Where the join item and the compared items sit in `catalog`, or the first one missing.
pub fn positions(catalog: &Catalog, terms: &Terms) -> Result<Vec<usize>, CrossCheckError> {
    std::iter::once(&terms.join)
        .chain(&terms.compared)
        .map(|item| {
            catalog
                .item_index(item)
                .ok_or_else(|| CrossCheckError::NoSuchItem {
                    catalog: catalog.code.clone(),
                    item: item.clone(),
                })
        })
        .collect()
}

/// Prepares `records` (primary key, values in `catalog`'s item order) for a run under `terms`:
/// the join and compared values put in their items' one form, records without a join value or
/// sharing one set aside.
pub fn prepare(
    catalog: &Catalog,
    terms: &Terms,
    records: impl IntoIterator<Item = (String, Vec<String>)>,
) -> Result<Prepared, CrossCheckError> {
    let at = positions(catalog, terms)?;
    let forms: Vec<ValueForm> = at
        .iter()
        .map(|&i| ValueForm::of(&catalog.items[i], catalog))
        .collect();
    let normal = |n: usize, values: &[String]| -> String {
        let value = values.get(at[n]).map(String::as_str).unwrap_or_default();
        // A value stored before values had one form is compared as it is.
        forms[n]
            .condition(value)
            .map_or_else(|_| value.to_owned(), |v| v.into_owned())
    };
    let mut entries = Vec::new();
    let mut not_compared = Vec::new();
    for (key, values) in records {
        let join = normal(0, &values);
        if join.is_empty() {
            not_compared.push(key);
            continue;
        }
        let values = (1..at.len()).map(|n| normal(n, &values)).collect();
        entries.push(Entry { key, join, values });
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in &entries {
        *count.entry(e.join.as_str()).or_default() += 1;
    }
    let repeated: HashSet<String> = count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(j, _)| j.to_owned())
        .collect();
    let (entries, set_aside): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| !repeated.contains(&e.join));
    not_compared.extend(set_aside.into_iter().map(|e| e.key));
    Ok(Prepared {
        entries,
        not_compared,
    })
}

/// The 64 uniform bytes a key element is mapped from.
fn key_input(context: &Sha512, join: &str) -> [u8; 64] {
    let mut h = context.clone();
    h.update(b"k");
    field(&mut h, join.as_bytes());
    h.finalize().into()
}

/// The 64 uniform bytes a record element is mapped from.
fn record_input(context: &Sha512, entry: &Entry) -> [u8; 64] {
    let mut h = context.clone();
    h.update(b"r");
    field(&mut h, entry.join.as_bytes());
    for value in &entry.values {
        field(&mut h, value.as_bytes());
    }
    h.finalize().into()
}

/// The 64 uniform bytes the element of compared item `item` of a record is mapped from.
fn item_input(context: &Sha512, item: &str, entry: &Entry, value: &str) -> [u8; 64] {
    let mut h = context.clone();
    h.update(b"i");
    field(&mut h, item.as_bytes());
    field(&mut h, entry.join.as_bytes());
    field(&mut h, value.as_bytes());
    h.finalize().into()
}

/// Runs `f` over `input`'s items of `size` bytes on every core, writing `out` bytes each, in
/// order; the first error wins.
fn parallel<const IN: usize>(
    input: &[u8],
    out: usize,
    f: impl Fn(&[u8; IN], &mut [u8]) -> Result<(), String> + Sync,
) -> Result<Vec<u8>, String> {
    let n = input.len() / IN;
    let mut output = vec![0u8; n * out];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per = n.div_ceil(threads).max(1024);
    std::thread::scope(|scope| {
        let jobs: Vec<_> = input
            .chunks(per * IN)
            .zip(output.chunks_mut(per * out))
            .map(|(i, o)| {
                let f = &f;
                scope.spawn(move || {
                    for (x, y) in i.chunks_exact(IN).zip(o.chunks_exact_mut(out)) {
                        f(x.try_into().expect("chunks of IN bytes"), y)?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        jobs.into_iter()
            .try_for_each(|j| j.join().unwrap_or_else(|_| Err("a worker panicked".into())))
    })?;
    Ok(output)
}

/// A side's secret scalar for one run.
struct Secret(Scalar);

impl Secret {
    fn new() -> Result<Self, CrossCheckError> {
        let mut wide = [0u8; 64];
        getrandom::fill(&mut wide).map_err(|e| CrossCheckError::Randomness(e.to_string()))?;
        Ok(Self(Scalar::from_bytes_mod_order_wide(&wide)))
    }

    /// Maps each 64-byte input to the group and raises it to the secret: `H(x)^s`, compressed.
    fn blind(&self, inputs: &[[u8; 64]]) -> Vec<u8> {
        parallel::<64>(inputs.as_flattened(), ELEMENT_BYTES, |x, y| {
            let point = RistrettoPoint::from_uniform_bytes(x) * self.0;
            y.copy_from_slice(point.compress().as_bytes());
            Ok(())
        })
        .expect("blinding cannot fail")
    }

    /// Raises the other side's blinded elements to the secret, in the order received.
    fn reblind(&self, theirs: &[u8]) -> Result<Vec<u8>, CrossCheckError> {
        if !theirs.len().is_multiple_of(ELEMENT_BYTES) {
            return Err(CrossCheckError::Malformed(format!(
                "{} bytes of elements, not a multiple of {ELEMENT_BYTES}",
                theirs.len()
            )));
        }
        parallel::<ELEMENT_BYTES>(theirs, ELEMENT_BYTES, |x, y| {
            let point = CompressedRistretto(*x)
                .decompress()
                .ok_or("an element that is not a Ristretto point")?;
            y.copy_from_slice((point * self.0).compress().as_bytes());
            Ok(())
        })
        .map_err(CrossCheckError::Malformed)
    }
}

/// A uniformly random permutation of `0..n` (Fisher–Yates), drawn from the operating system's
/// generator through a BLAKE3 keystream.
fn shuffled(n: usize) -> Result<Vec<u32>, CrossCheckError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| CrossCheckError::Randomness(e.to_string()))?;
    let mut stream = blake3::Hasher::new_keyed(&seed).finalize_xof();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut word = [0u8; 8];
    for i in (1..n).rev() {
        stream.fill(&mut word);
        // Lemire's multiply-shift: a bias below 2^-40 for any n a node holds.
        let j = ((u64::from_le_bytes(word) as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    Ok(order)
}

/// Per tuple, whether each of its components matched.
type Matched = Vec<Vec<bool>>;

/// One round's tuples as this side sent them: `order[p]` is the own record at position `p`.
struct Round {
    width: usize,
    order: Vec<u32>,
}

impl Round {
    /// Blinds `width` inputs per record (records in own order), shuffled by record.
    fn start(
        secret: &Secret,
        width: usize,
        inputs: Vec<[u8; 64]>,
    ) -> Result<(Self, Vec<u8>), CrossCheckError> {
        let records = inputs.len() / width;
        let order = shuffled(records)?;
        let mut sent = Vec::with_capacity(inputs.len());
        for &r in &order {
            let r = r as usize;
            sent.extend_from_slice(&inputs[r * width..(r + 1) * width]);
        }
        Ok((Self { width, order }, secret.blind(&sent)))
    }

    /// Which components match, for each own record (own order) and each of the other side's
    /// tuples (their order), from own elements raised to both secrets (`own`, in the order sent)
    /// and theirs (`theirs`, in their order).
    fn settle(&self, own: &[u8], theirs: &[u8]) -> Result<(Matched, Matched), CrossCheckError> {
        let w = self.width;
        let tuple = w * ELEMENT_BYTES;
        if own.len() != self.order.len() * tuple {
            return Err(CrossCheckError::Malformed(format!(
                "{} bytes of this side's elements back, where {} were sent",
                own.len(),
                self.order.len() * tuple
            )));
        }
        if !theirs.len().is_multiple_of(tuple) {
            return Err(CrossCheckError::Malformed(format!(
                "{} bytes of elements, not whole tuples of {w}",
                theirs.len()
            )));
        }
        let component = |bytes: &[u8], j: usize| -> HashSet<[u8; ELEMENT_BYTES]> {
            bytes.chunks_exact(tuple).map(|t| element(t, j)).collect()
        };
        let mut own_matched = vec![vec![false; w]; self.order.len()];
        let mut their_matched = vec![vec![false; w]; theirs.len() / tuple];
        for j in 0..w {
            let their_set = component(theirs, j);
            let own_set = component(own, j);
            for (p, t) in own.chunks_exact(tuple).enumerate() {
                own_matched[self.order[p] as usize][j] = their_set.contains(&element(t, j));
            }
            for (p, t) in theirs.chunks_exact(tuple).enumerate() {
                their_matched[p][j] = own_set.contains(&element(t, j));
            }
        }
        Ok((own_matched, their_matched))
    }
}

/// Component `j` of a tuple.
fn element(tuple: &[u8], j: usize) -> [u8; ELEMENT_BYTES] {
    tuple[j * ELEMENT_BYTES..(j + 1) * ELEMENT_BYTES]
        .try_into()
        .expect("a whole element")
}

/// How one record came out of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// Both sides hold the join value with equal compared items.
    Matched,
    /// Both sides hold the join value; these compared items differ.
    Differing {
        /// Codes of the differing items, in [`Terms::compared`] order.
        items: Vec<String>,
    },
    /// The other side holds no record with this join value.
    Unmatched,
    /// The record did not take part: no join value, or one another record of its side shares.
    NotCompared,
}

/// One of this side's records in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnRecord {
    /// Its primary key.
    pub key: String,
    /// Its reference as the other side knows it (32 hex digits); empty when not compared.
    pub reference: String,
    /// How it came out.
    #[serde(flatten)]
    pub status: Status,
}

/// One of the other side's records that did not match, as this side knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TheirRecord {
    /// The other side's opaque reference (32 hex digits).
    pub reference: String,
    /// This side's key for the same join value, for a differing record; none for an unmatched one.
    pub key: Option<String>,
    /// Differing (with the items) or unmatched.
    #[serde(flatten)]
    pub status: Status,
}

/// The counts of a run, as one side sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records of this side that took part.
    pub here: u64,
    /// Records of the other side that took part.
    pub there: u64,
    /// Records matched.
    pub matched: u64,
    /// Records whose join value both hold but some compared item differs.
    pub differing: u64,
    /// Records only this side holds.
    pub only_here: u64,
    /// Records only the other side holds.
    pub only_there: u64,
    /// This side's records that did not take part.
    pub not_compared: u64,
}

/// What one side knows at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Its own records, compared ones first in the order prepared, then those not compared.
    pub own: Vec<OwnRecord>,
    /// The other side's records that differ or are unmatched.
    pub theirs: Vec<TheirRecord>,
    /// The counts.
    pub counts: Counts,
}

/// Round one's message from a side: its blinded (key, record) pairs, shuffled, each with its
/// opaque reference.
#[derive(Clone, Debug, Default)]
pub struct Offer {
    /// [`ROUND_ONE_WIDTH`] elements of [`ELEMENT_BYTES`] per record.
    pub elements: Vec<u8>,
    /// [`REFERENCE_BYTES`] per record, in the same order.
    pub references: Vec<u8>,
}

/// The opaque reference of `key` under a side's `reference_key` for a pair of catalogs: BLAKE3
/// keyed, the first [`REFERENCE_BYTES`]. Stable across that pair's runs, useless without the key.
pub fn reference(reference_key: &[u8; 32], key: &str) -> [u8; REFERENCE_BYTES] {
    let hash = blake3::keyed_hash(reference_key, key.as_bytes());
    hash.as_bytes()[..REFERENCE_BYTES]
        .try_into()
        .expect("16 bytes")
}

/// One side of a run, step by step. Both sides call, in order: [`Party::offer`],
/// [`Party::answer`] on the other's offer, [`Party::settle_records`] with both answers; then,
/// when [`Party::differing`] is not zero, [`Party::offer_items`], [`Party::answer`] on the other's,
/// [`Party::settle_items`]; last [`Party::outcome`].
pub struct Party {
    terms: Terms,
    context: Sha512,
    secret: Secret,
    prepared: Prepared,
    references: Vec<[u8; REFERENCE_BYTES]>,
    round_one: Option<Round>,
    round_two: Option<Round>,
    /// Per own record, once settled.
    statuses: Vec<Status>,
    /// Own records that differ, in own order.
    differing: Vec<usize>,
    theirs: Vec<TheirRecord>,
    there: u64,
}

impl Party {
    /// A side with `prepared` records under `terms`, its references keyed by `reference_key`.
    pub fn new(
        terms: Terms,
        prepared: Prepared,
        reference_key: &[u8; 32],
    ) -> Result<Self, CrossCheckError> {
        terms.check()?;
        let references = prepared
            .entries
            .iter()
            .map(|e| reference(reference_key, &e.key))
            .collect();
        Ok(Self {
            context: terms.context(),
            terms,
            secret: Secret::new()?,
            prepared,
            references,
            round_one: None,
            round_two: None,
            statuses: Vec::new(),
            differing: Vec::new(),
            theirs: Vec::new(),
            there: 0,
        })
    }

    /// The run's terms.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// Records of this side taking part.
    pub fn records(&self) -> usize {
        self.prepared.entries.len()
    }

    /// Round one: this side's blinded (key, record) pairs with their references, shuffled.
    pub fn offer(&mut self) -> Result<Offer, CrossCheckError> {
        let inputs = self
            .prepared
            .entries
            .iter()
            .flat_map(|e| {
                [
                    key_input(&self.context, &e.join),
                    record_input(&self.context, e),
                ]
            })
            .collect();
        let (round, elements) = Round::start(&self.secret, ROUND_ONE_WIDTH, inputs)?;
        let references = round
            .order
            .iter()
            .flat_map(|&r| self.references[r as usize])
            .collect();
        self.round_one = Some(round);
        Ok(Offer {
            elements,
            references,
        })
    }

    /// The other side's blinded elements (any round) raised to this side's secret, in the order
    /// received.
    pub fn answer(&self, theirs: &[u8]) -> Result<Vec<u8>, CrossCheckError> {
        self.secret.reblind(theirs)
    }

    /// Ends round one: `own` is this side's offer as the other side answered it, `theirs` the
    /// other's offer as this side answered it, `references` the other's references as offered.
    /// Returns how many records differ (the same number on both sides).
    pub fn settle_records(
        &mut self,
        own: &[u8],
        theirs: &[u8],
        references: &[u8],
    ) -> Result<usize, CrossCheckError> {
        let round = self
            .round_one
            .as_ref()
            .ok_or(CrossCheckError::OutOfOrder("round one was not offered"))?;
        let (own_matched, their_matched) = round.settle(own, theirs)?;
        if references.len() != their_matched.len() * REFERENCE_BYTES {
            return Err(CrossCheckError::Malformed(format!(
                "{} bytes of references for {} records",
                references.len(),
                their_matched.len()
            )));
        }
        // Own key of each key element raised to both secrets, to name the other's differing records.
        let tuple = ROUND_ONE_WIDTH * ELEMENT_BYTES;
        let own_keys: HashMap<[u8; ELEMENT_BYTES], usize> = own
            .chunks_exact(tuple)
            .zip(&round.order)
            .map(|(t, &r)| (element(t, 0), r as usize))
            .collect();
        self.statuses = own_matched
            .iter()
            .map(|m| match (m[0], m[1]) {
                (true, true) => Status::Matched,
                (true, false) => Status::Differing { items: Vec::new() },
                _ => Status::Unmatched,
            })
            .collect();
        self.differing = (0..self.statuses.len())
            .filter(|&r| matches!(self.statuses[r], Status::Differing { .. }))
            .collect();
        self.there = their_matched.len() as u64;
        self.theirs = their_matched
            .iter()
            .zip(theirs.chunks_exact(tuple))
            .zip(references.chunks_exact(REFERENCE_BYTES))
            .filter(|((m, _), _)| !m[1])
            .map(|((m, t), r)| TheirRecord {
                reference: hex::encode(r),
                key: m[0]
                    .then(|| own_keys.get(&element(t, 0)))
                    .flatten()
                    .map(|&i| self.prepared.entries[i].key.clone()),
                status: if m[0] {
                    Status::Differing { items: Vec::new() }
                } else {
                    Status::Unmatched
                },
            })
            .collect();
        Ok(self.differing.len())
    }

    /// Records that differ, once round one is settled.
    pub fn differing(&self) -> usize {
        self.differing.len()
    }

    /// Round two: one blinded element per compared item of each differing record, shuffled by
    /// record.
    pub fn offer_items(&mut self) -> Result<Vec<u8>, CrossCheckError> {
        if self.round_one.is_none() || (self.statuses.is_empty() && self.records() > 0) {
            return Err(CrossCheckError::OutOfOrder("round one is not settled"));
        }
        let inputs = self
            .differing
            .iter()
            .flat_map(|&r| {
                let e = &self.prepared.entries[r];
                self.terms
                    .compared
                    .iter()
                    .zip(&e.values)
                    .map(|(item, value)| item_input(&self.context, item, e, value))
            })
            .collect();
        let (round, elements) = Round::start(&self.secret, self.terms.compared.len(), inputs)?;
        self.round_two = Some(round);
        Ok(elements)
    }

    /// Ends round two as [`Party::settle_records`] ends round one: which items differ.
    pub fn settle_items(&mut self, own: &[u8], theirs: &[u8]) -> Result<(), CrossCheckError> {
        let round = self
            .round_two
            .as_ref()
            .ok_or(CrossCheckError::OutOfOrder("round two was not offered"))?;
        let (own_matched, their_matched) = round.settle(own, theirs)?;
        if their_matched.len() != self.differing.len() {
            return Err(CrossCheckError::Malformed(format!(
                "items of {} differing records, where {} differ",
                their_matched.len(),
                self.differing.len()
            )));
        }
        let mut by_key = HashMap::new();
        for (n, &r) in self.differing.iter().enumerate() {
            let items: Vec<String> = self
                .terms
                .compared
                .iter()
                .zip(&own_matched[n])
                .filter(|(_, m)| !**m)
                .map(|(item, _)| item.clone())
                .collect();
            by_key.insert(self.prepared.entries[r].key.clone(), items.clone());
            self.statuses[r] = Status::Differing { items };
        }
        // The other side's record with the same join value differs in the same items.
        for t in &mut self.theirs {
            if let (Some(key), Status::Differing { items }) = (&t.key, &mut t.status) {
                items.clone_from(&by_key[key]);
            }
        }
        Ok(())
    }

    /// What this side knows at the end.
    pub fn outcome(self) -> Outcome {
        let mut counts = Counts {
            here: self.prepared.entries.len() as u64,
            there: self.there,
            not_compared: self.prepared.not_compared.len() as u64,
            ..Counts::default()
        };
        for s in &self.statuses {
            match s {
                Status::Matched => counts.matched += 1,
                Status::Differing { .. } => counts.differing += 1,
                Status::Unmatched => counts.only_here += 1,
                Status::NotCompared => {}
            }
        }
        counts.only_there = self
            .theirs
            .iter()
            .filter(|t| t.status == Status::Unmatched)
            .count() as u64;
        let compared = self
            .prepared
            .entries
            .into_iter()
            .zip(self.references)
            .zip(self.statuses)
            .map(|((e, r), status)| OwnRecord {
                key: e.key,
                reference: hex::encode(r),
                status,
            });
        let not_compared = self.prepared.not_compared.into_iter().map(|key| OwnRecord {
            key,
            reference: String::new(),
            status: Status::NotCompared,
        });
        Outcome {
            own: compared.chain(not_compared).collect(),
            theirs: self.theirs,
            counts,
        }
    }
}

/// Runs both sides in one process, as the exchange does between two nodes: for tests, and the
/// baseline of the benchmark.
pub fn in_process(
    initiator: Party,
    counterpart: Party,
) -> Result<(Outcome, Outcome), CrossCheckError> {
    let (mut a, mut b) = (initiator, counterpart);
    let (offer_a, offer_b) = (a.offer()?, b.offer()?);
    let (a_ab, b_ab) = (b.answer(&offer_a.elements)?, a.answer(&offer_b.elements)?);
    a.settle_records(&a_ab, &b_ab, &offer_b.references)?;
    b.settle_records(&b_ab, &a_ab, &offer_a.references)?;
    if a.differing() > 0 {
        let (items_a, items_b) = (a.offer_items()?, b.offer_items()?);
        let (a_ab, b_ab) = (b.answer(&items_a)?, a.answer(&items_b)?);
        a.settle_items(&a_ab, &b_ab)?;
        b.settle_items(&b_ab, &a_ab)?;
    }
    Ok((a.outcome(), b.outcome()))
}

/// Which side of a run holds the collected catalog and which the register it is checked
/// against: a mismatch goes back to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// This side collected its records (a street's grid inspectors).
    Collector,
    /// This side holds the register (a department's).
    Holder,
}

impl Role {
    /// The other side's role.
    pub fn other(self) -> Role {
        match self {
            Role::Collector => Role::Holder,
            Role::Holder => Role::Collector,
        }
    }
}

/// What a mismatch is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MismatchKind {
    /// Both hold the join value; these compared items differ.
    Differing {
        /// Codes of the differing items.
        items: Vec<String>,
    },
    /// Only the collector holds a record with this join value.
    OnlyAtCollector,
    /// Only the holder does.
    OnlyAtHolder,
}

/// One mismatch of a run, as one side describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The run, `cc_…`.
    pub run: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: MismatchKind,
    /// The describing side's own key for the record, when it holds one with this join value.
    pub key: Option<String>,
    /// The reference of the record on the side that is not describing it by key: the other
    /// side's, which only that side can resolve to its key; for a record only this side holds,
    /// its own reference as the other side would name it.
    pub reference: String,
}

impl Outcome {
    /// The mismatches of run `run`, this side having role `role`: differing records and this
    /// side's unmatched ones by key, the other side's unmatched ones by reference.
    pub fn mismatches(&self, run: &str, role: Role) -> Vec<Mismatch> {
        let only = |side: Role| match side {
            Role::Collector => MismatchKind::OnlyAtCollector,
            Role::Holder => MismatchKind::OnlyAtHolder,
        };
        let theirs: HashMap<&str, &str> = self
            .theirs
            .iter()
            .filter_map(|t| Some((t.key.as_deref()?, t.reference.as_str())))
            .collect();
        let own = self.own.iter().filter_map(|r| {
            let kind = match &r.status {
                Status::Differing { items } => MismatchKind::Differing {
                    items: items.clone(),
                },
                Status::Unmatched => only(role),
                Status::Matched | Status::NotCompared => return None,
            };
            let reference = match kind {
                MismatchKind::Differing { .. } => theirs.get(r.key.as_str()).copied(),
                _ => None,
            };
            Some(Mismatch {
                run: run.to_owned(),
                kind,
                key: Some(r.key.clone()),
                reference: reference.unwrap_or(&r.reference).to_owned(),
            })
        });
        let other = self
            .theirs
            .iter()
            .filter(|t| t.status == Status::Unmatched)
            .map(|t| Mismatch {
                run: run.to_owned(),
                kind: only(role.other()),
                key: None,
                reference: t.reference.clone(),
            });
        own.chain(other).collect()
    }
}

impl Outcome {
    /// Whether mismatch `m`, of an earlier run of the same pair of catalogs as this side
    /// described it, still stands in this run: the same record (by key, or by the other side's
    /// reference) is mismatched the same way (a differing record in any item).
    pub fn still_stands(&self, m: &Mismatch) -> bool {
        match (&m.key, &m.kind) {
            (Some(key), kind) => self.own.iter().any(|r| {
                &r.key == key
                    && match kind {
                        MismatchKind::Differing { .. } => {
                            matches!(r.status, Status::Differing { .. })
                        }
                        _ => r.status == Status::Unmatched,
                    }
            }),
            (None, _) => self
                .theirs
                .iter()
                .any(|t| t.reference == m.reference && t.status == Status::Unmatched),
        }
    }
}

#[cfg(test)]
mod tests;
