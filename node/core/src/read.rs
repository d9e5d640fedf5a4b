//! What a read of records asks, whatever carries it: the same shape from the command line, over
//! gRPC or a gateway, through relays, down to the producer.
//!
//! Every read names a [`ReadScope`] (the catalog, whose records, the route, the request id and who
//! asks) and selects records one way: a query (key range, conditions, limit) or one key's
//! history. [`Read`] holds either, so code that routes, vouches for, relays or audits a read is
//! written once.

use tierlink_proto::v1::{HistoryRequest, QueryRequest, ReadScope, SubscribeRequest};

/// A time as a read's `since` bound takes it, in microseconds since the Unix epoch: RFC 3339
/// (`2026-11-28T08:00:00Z`), or a date (`2026-11-28`) for its midnight UTC. The error says how
/// to write one.
pub fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_micros()
        })
        .map_err(|_| {
            format!(
                "{s:?} is not a time: write RFC 3339 (2026-11-28T08:00:00Z) or a date (2026-11-28)"
            )
        })
}

/// A read of records: `Query`, `History` or `Subscribe`, each carrying its [`ReadScope`].
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// Current records in a key range, filtered.
    Query(QueryRequest),
    /// Every stored version of one record.
    History(HistoryRequest),
    /// Every new version, from a resume token on: a change feed.
    Subscribe(SubscribeRequest),
}

impl Read {
    /// "query", "history" or "feed", as signed headers and the audit name the read.
    pub fn kind(&self) -> &'static str {
        match self {
            Read::Query(_) => "query",
            Read::History(_) => "history",
            Read::Subscribe(_) => "feed",
        }
    }

    /// What every read names, empty when the request left it out.
    pub fn scope(&self) -> &ReadScope {
        const EMPTY: &ReadScope = &ReadScope {
            catalog: String::new(),
            target: String::new(),
            via: String::new(),
            request_id: String::new(),
            credential: None,
            requester: None,
        };
        match self {
            Read::Query(q) => q.scope.as_ref(),
            Read::History(h) => h.scope.as_ref(),
            Read::Subscribe(s) => s.scope.as_ref(),
        }
        .unwrap_or(EMPTY)
    }

    /// The scope, to fill in on the way (route, request id, the node's signed requester).
    pub fn scope_mut(&mut self) -> &mut ReadScope {
        match self {
            Read::Query(q) => q.scope.get_or_insert_default(),
            Read::History(h) => h.scope.get_or_insert_default(),
            Read::Subscribe(s) => s.scope.get_or_insert_default(),
        }
    }

    /// What the read asked for, in words, as the audit keeps it when the keys sent are too many.
    pub fn bounds(&self) -> String {
        match self {
            Read::Query(q) => {
                let mut parts = Vec::new();
                if !q.key_from.is_empty() || !q.key_to.is_empty() {
                    parts.push(format!("keys from {:?} to {:?}", q.key_from, q.key_to));
                }
                parts.extend(q.r#where.iter().map(|w| format!("{}={}", w.item, w.value)));
                if q.updated_since_micros > 0 {
                    parts.push(format!("written since {} µs", q.updated_since_micros));
                }
                if q.limit > 0 {
                    parts.push(format!("at most {}", q.limit));
                }
                if parts.is_empty() {
                    "every record".to_owned()
                } else {
                    parts.join(", ")
                }
            }
            Read::History(h) => format!("key {:?}", h.key),
            Read::Subscribe(s) if s.resume_token.is_empty() => "versions written from now".into(),
            Read::Subscribe(s) => format!("versions written after {}", s.resume_token),
        }
    }
}

impl From<QueryRequest> for Read {
    fn from(q: QueryRequest) -> Self {
        Read::Query(q)
    }
}

impl From<HistoryRequest> for Read {
    fn from(h: HistoryRequest) -> Self {
        Read::History(h)
    }
}

impl From<SubscribeRequest> for Read {
    fn from(s: SubscribeRequest) -> Self {
        Read::Subscribe(s)
    }
}
