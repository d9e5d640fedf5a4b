//! Writing records to a node in batches. Each `PutRecords` request is written all or none; the
//! requests are cut by bytes as well as by records, so that each fits in a message. Two requests
//! are in flight at a time: the node checks one while it stores the one before.

use std::ops::Range;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use prost::Message;
use tierlink_core::limits::{DEFAULT_BATCH_BYTES, MAX_MESSAGE_BYTES, human_bytes, thousands};
use tierlink_proto::v1::PutRecordsRequest;

use crate::{ClientError, NodeClient};

/// How rows are cut into requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// At most this many rows a request, and at most [`DEFAULT_BATCH_BYTES`] (4 MiB) of request;
    /// a row larger than that goes alone.
    Cut(usize),
    /// Exactly this many rows a request (the last holds the rest), as the writer asked. Refused
    /// before anything is sent when one such request would not fit in a message.
    Exactly(usize),
}

impl Default for Batching {
    /// Up to 5,000 rows and 4 MiB a request: a few megabytes per flush on the node.
    fn default() -> Self {
        Batching::Cut(5000)
    }
}

/// Requests of the size asked for would not fit in a message; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "records {}–{} make a request of {} ({} bytes), over the {} a message may carry: {}",
    .records.start + 1,
    .records.end,
    human_bytes(*.bytes as u64),
    thousands(*.bytes as u64),
    human_bytes(MAX_MESSAGE_BYTES as u64),
    advice(*.fits)
)]
pub struct Oversized {
    /// The first request over the limit, as positions of rows from 0.
    pub records: Range<usize>,
    /// Its encoded size.
    pub bytes: usize,
    /// A number of rows a request can hold, every request of that many fitting (0 when the
    /// largest row does not fit on its own).
    pub fits: usize,
}

fn advice(fits: usize) -> String {
    match fits {
        0 => "one record is too large to send on its own".into(),
        n => format!("write at most {n} records a batch"),
    }
}

/// What was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows written, from the first: rows `0..records` are stored.
    pub records: usize,
    /// Of those, records with a key not stored before.
    pub created: u64,
    /// Of those, new versions of stored records.
    pub updated: u64,
    /// Of those, records equal to their stored current version: nothing new was stored.
    pub unchanged: u64,
}

/// A write in batches that did not finish.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Nothing was sent.
    #[error(transparent)]
    Oversized(#[from] Oversized),
    /// A request failed. The requests before it are stored.
    #[error(
        "writing records {}–{} failed{}: {source}",
        .failed.start + 1,
        .failed.end,
        if *.maybe_stored { ", and the node may have stored some or all of them" } else { " and none of them is stored" }
    )]
    Stopped {
        /// What the requests before it wrote.
        written: Written,
        /// The rows of the failed request and of the request sent after it while it was in
        /// flight, if any, as positions from 0: the rows not known to be stored.
        failed: Range<usize>,
        /// True when the node may have stored any of them (a call failed in flight, or the
        /// request after the failed one was not refused); false when it is known to have stored
        /// none (it refused them, or they were never sent).
        maybe_stored: bool,
        /// Why the request failed.
        source: ClientError,
    },
}

/// Bytes a row of `values` adds to a `PutRecordsRequest`, encoded.
fn row_bytes(values: &[String]) -> usize {
    let row = prost::encoding::string::encoded_len_repeated(1, values);
    prost::encoding::key_len(3) + prost::encoding::encoded_len_varint(row as u64) + row
}

/// Cuts `rows` into requests under `batching`, as ranges of row positions; `overhead` is what a
/// request takes without rows (its catalog and columns).
fn cut(
    rows: &[Vec<String>],
    overhead: usize,
    batching: Batching,
) -> Result<Vec<Range<usize>>, Oversized> {
    let sizes: Vec<usize> = rows.iter().map(|r| row_bytes(r)).collect();
    let (most_rows, most_bytes) = match batching {
        Batching::Cut(n) => (n.max(1), DEFAULT_BATCH_BYTES),
        Batching::Exactly(n) => (n.max(1), usize::MAX),
    };
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, overhead);
    for (n, size) in sizes.iter().enumerate() {
        let count = n - start;
        if count == most_rows || (count > 0 && bytes + size > most_bytes) {
            batches.push(start..n);
            (start, bytes) = (n, overhead);
        }
        bytes += size;
    }
    if start < rows.len() {
        batches.push(start..rows.len());
    }
    let request = |r: &Range<usize>| overhead + sizes[r.clone()].iter().sum::<usize>();
    if let Some(over) = batches.iter().find(|r| request(r) > MAX_MESSAGE_BYTES) {
        let largest = sizes.iter().max().copied().unwrap_or(1);
        return Err(Oversized {
            records: over.clone(),
            bytes: request(over),
            fits: MAX_MESSAGE_BYTES.saturating_sub(overhead) / largest,
        });
    }
    Ok(batches)
}

/// Requests in flight at a time: while the node stores one, the next is encoded, sent and
/// checked. More would only queue behind the store's one writer.
const IN_FLIGHT: usize = 2;

impl NodeClient {
    /// Writes rows of values under `columns` to a catalog of this node in the requests
    /// `batching` cuts them into, each all or none, [`IN_FLIGHT`] at a time; `progress` sees the
    /// number of rows written after each request, in order. Nothing is sent when a request would
    /// not fit in a message. When a request fails, the one sent after it is awaited (not
    /// abandoned in flight) and nothing more is sent.
    pub async fn write_records(
        &self,
        catalog: &str,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        batching: Batching,
        mut progress: impl FnMut(usize),
    ) -> Result<Written, WriteError> {
        let overhead = PutRecordsRequest {
            catalog: catalog.to_owned(),
            columns: columns.clone(),
            ..PutRecordsRequest::default()
        }
        .encoded_len();
        let mut batches = cut(&rows, overhead, batching)?.into_iter();
        let mut rows = rows.into_iter();
        let mut in_flight = FuturesOrdered::new();
        let mut written = Written::default();
        loop {
            while in_flight.len() < IN_FLIGHT {
                let Some(range) = batches.next() else { break };
                let batch = rows.by_ref().take(range.len()).collect();
                let call = self.put_records(catalog, columns.clone(), batch);
                in_flight.push_back(async move { (range, call.await) });
            }
            let Some((range, answer)) = in_flight.next().await else {
                return Ok(written);
            };
            match answer {
                Ok(done) => {
                    written.records = range.end;
                    written.created += done.created;
                    written.updated += done.updated;
                    written.unchanged += done.unchanged;
                    progress(written.records);
                }
                Err(source) => {
                    let (mut failed, mut maybe_stored) = (range, !source.not_carried_out());
                    while let Some((later, answer)) = in_flight.next().await {
                        failed.end = later.end;
                        maybe_stored |= !matches!(answer, Err(e) if e.not_carried_out());
                    }
                    return Err(WriteError::Stopped {
                        written,
                        failed,
                        maybe_stored,
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
