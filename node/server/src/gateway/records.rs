//! Records: written all or none (`POST …/records`, as `PutRecords`), queried (`GET …/records`)
//! and one key's history (`GET …/records/{key}/history`). Every read goes to the read service
//! with the caller's credential, as the command line's `--as` does, and is answered in one of
//! three forms, by the Accept header:
//!
//! - `application/json` (the default): one page of records, opened and verified here, with the
//!   request id, the batches' signer, their count, the redaction manifest and the withheld
//!   items. A page holds at most `limit` records (1,000 unless asked, at most 10,000); when keys
//!   travel in clear, `next` is the cursor of the page after. When the grant hashes the primary
//!   key, records come in the order of their hashed keys and a key cannot bound a read (it
//!   would sort the hidden keys), so there is no cursor: `rest` says so, and the whole answer
//!   comes as NDJSON or signed batches.
//! - `application/x-ndjson`: every record, one JSON object a line, streamed as the batches
//!   arrive (one batch in memory at a time). The response headers carry what a JSON page says;
//!   a failure after the first line ends the stream with a `{"_problem": …}` line and cuts the
//!   response off.
//! - `application/x-tierlink-batches`: the signed batches themselves, still sealed to this
//!   node, in the batch file format ([`tierlink_core::signed::file`]): `tierlink verify --ca
//!   ca.crt FILE` checks a saved response with the CA certificate alone.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, OriginalUri, Path, RawQuery, Request, State as Shared};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use serde::Serialize;
use tierlink_core::import;
use tierlink_core::read::{Read, parse_since};
use tierlink_core::signed::file::MAGIC;
use tierlink_core::signed::{Expected, StreamCheck, VerifiedBatch};
use tierlink_proto::v1::{
    BatchHeader, FieldEquals, HistoryRequest, ItemRedaction, QueryRequest, ReadScope, SignedBatch,
};
use tierlink_store::{PutOutcome, Write};
use tokio_stream::StreamExt;
use utoipa::ToSchema;

use super::State;
use super::auth::Bearer;
use super::problem::{Kind, Problem, ProblemDocument};
use crate::read::BatchStream;

/// Records in a JSON page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u64 = 1000;
/// Most records in one JSON page: a page is held in memory whole; larger answers stream.
pub const MAX_PAGE: u64 = 10_000;

/// The media type of NDJSON answers.
pub const NDJSON: &str = "application/x-ndjson";
/// The media type of signed batches in the batch file format.
pub const BATCHES: &str = "application/x-tierlink-batches";

/// A catalog's resource code from its two path segments, `PREFIX/NNNNNN`.
pub fn catalog_code((prefix, number): &(String, String)) -> String {
    format!("{prefix}/{number}")
}

/// The form a read is answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Json,
    Ndjson,
    Batches,
}

impl Form {
    /// Every form, in the order preferred when Accept ranks several alike.
    const ALL: [Form; 3] = [Form::Json, Form::Ndjson, Form::Batches];

    /// The media types that name this form.
    fn media_types(self) -> &'static [&'static str] {
        match self {
            Form::Json => &["application/json"],
            Form::Ndjson => &[NDJSON, "application/jsonl"],
            Form::Batches => &[BATCHES],
        }
    }
}

/// One media range of an Accept header: how specific it is (3 a full type, 2 `type/*`, 1
/// `*/*`), its quality, and its position.
struct Range {
    specificity: u8,
    quality: f32,
    position: usize,
}

/// The media ranges of an Accept header, each with its quality (RFC 9110 §12.4.2: `q` is matched
/// without regard to case, 1 when absent; an unreadable or out-of-range weight counts as 0).
fn ranges(accept: &str) -> Vec<(String, f32)> {
    accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, q)| {
                    q.trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0)
                });
            Some((media, quality))
        })
        .collect()
}

/// The range of `accept` that decides for `form`: the most specific one matching it, the first
/// among equals (RFC 9110 §12.5.1).
fn deciding(accept: &[(String, f32)], form: Form) -> Option<Range> {
    let mut best: Option<Range> = None;
    for (position, (media, quality)) in accept.iter().enumerate() {
        let specificity = if form.media_types().contains(&media.as_str()) {
            3
        } else if media == "application/*" {
            2
        } else if media == "*/*" {
            1
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|b| specificity > b.specificity) {
            best = Some(Range {
                specificity,
                quality: *quality,
                position,
            });
        }
    }
    best
}

/// The form a read takes by the Accept header (RFC 9110 §12.5.1): each form is weighed by the
/// most specific range that matches it, so `application/json;q=0, */*` excludes JSON; the form
/// of highest quality wins, then the one named more exactly, then the one named first, then
/// JSON before NDJSON before batches. JSON when the header is absent or empty.
fn form(headers: &HeaderMap) -> Result<Form, Problem> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(Form::Json);
    };
    let accept = accept.to_str().unwrap_or_default();
    let ranges = ranges(accept);
    if ranges.is_empty() {
        return Ok(Form::Json);
    }
    let mut best: Option<(Range, Form)> = None;
    for form in Form::ALL {
        let Some(range) = deciding(&ranges, form).filter(|r| r.quality > 0.0) else {
            continue;
        };
        let better = best.as_ref().is_none_or(|(b, _)| {
            (
                range.quality,
                range.specificity,
                std::cmp::Reverse(range.position),
            ) > (b.quality, b.specificity, std::cmp::Reverse(b.position))
        });
        if better {
            best = Some((range, form));
        }
    }
    if let Some((_, form)) = best {
        return Ok(form);
    }
    Err(Problem::new(
        Kind::NotAcceptable,
        format!(
            "a read is answered as application/json, {NDJSON} or {BATCHES}, not {accept:?}: ask for one of them in Accept"
        ),
    ))
}

/// One line of the redaction manifest: what was done to an item, and why.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ManifestLine {
    /// The item code.
    pub item: String,
    /// `clear`, `mask:FIRST:LAST`, `hash`, `withhold`, or a generalisation (`year`,
    /// `year-month`, `prefix:N`, `band:W`).
    pub action: String,
    /// The rule that decided it.
    pub rule: String,
}

impl From<&ItemRedaction> for ManifestLine {
    fn from(m: &ItemRedaction) -> Self {
        Self {
            item: m.item.clone(),
            action: m.action.clone(),
            rule: m.rule.clone(),
        }
    }
}

/// What a read's signed batches say about it, as a JSON page or the headers of a stream give it.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct ReadFacts {
    /// The request id: in every signed header and in both ends' audit entries.
    pub request_id: String,
    /// The node that produced and signed the batches.
    pub producer: String,
    /// The node whose encryption key opens them: this node.
    pub sealed_to: String,
    /// The catalog.
    pub catalog: String,
    /// The principal, `NAME@UNIT`, as its node vouched.
    pub principal: String,
    /// The grant the producer decided under.
    pub grant: String,
    /// What was done to each item.
    pub manifest: Vec<ManifestLine>,
    /// Items left out: not shared, or withheld by the grant.
    pub withheld: Vec<String>,
    /// True when keys are keyed hashes, not the real keys.
    pub keys_hashed: bool,
}

impl From<&BatchHeader> for ReadFacts {
    fn from(h: &BatchHeader) -> Self {
        Self {
            request_id: h.request_id.clone(),
            producer: h.producer.clone(),
            sealed_to: h.sealed_to.clone(),
            catalog: h.catalog.clone(),
            principal: h.principal.clone(),
            grant: h.grant.clone(),
            manifest: h.manifest.iter().map(ManifestLine::from).collect(),
            withheld: h.withheld.clone(),
            keys_hashed: h.key_hashed,
        }
    }
}

impl ReadFacts {
    /// The facts as response headers, `Tierlink-…`: what a stream's body cannot carry first.
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let manifest: Vec<String> = self
            .manifest
            .iter()
            .map(|m| format!("{}={}", m.item, m.action))
            .collect();
        [
            ("tierlink-request-id", self.request_id.clone()),
            ("tierlink-producer", self.producer.clone()),
            ("tierlink-sealed-to", self.sealed_to.clone()),
            ("tierlink-principal", self.principal.clone()),
            ("tierlink-grant", self.grant.clone()),
            ("tierlink-manifest", manifest.join(",")),
            ("tierlink-withheld", self.withheld.join(",")),
            ("tierlink-keys-hashed", self.keys_hashed.to_string()),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect()
    }
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsPage {
    /// What the signed batches say about the read.
    #[serde(flatten)]
    pub facts: ReadFacts,
    /// Signed batches the page came in.
    pub batches: u32,
    /// Records in the page.
    pub count: u64,
    /// The records: `_key`, `_version` and `_updated_at` (not sent with hashed keys),
    /// `_deleted: true` for a deletion (in a history), then each item sent by code; empty values
    /// are left out.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The cursor of the next page (pass it as `cursor`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// When the page is full but no cursor can follow it: how to get the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest: Option<String>,
}

/// A read's parameters from the query string; `where` may repeat.
#[derive(Default)]
struct Params {
    limit: Option<u64>,
    cursor: Option<String>,
    conditions: Vec<FieldEquals>,
    since: Option<i64>,
    target: String,
    via: String,
    grant: Option<String>,
    batch_size: u32,
}

fn invalid(detail: String) -> Problem {
    Problem::new(Kind::InvalidArgument, detail)
}

impl Params {
    /// Parses `query`, taking only the parameters in `allowed`.
    fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, Problem> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| invalid(format!("the query string is not form-encoded: {e}")))?;
        let mut p = Params::default();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "unknown parameter {name:?}: this operation takes {}",
                    allowed.join(", ")
                )));
            }
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| invalid(format!("{what} must be a whole number, not {value:?}")))
            };
            match name.as_str() {
                "limit" => p.limit = Some(number("limit")?),
                "batch_size" => {
                    p.batch_size = u32::try_from(number("batch_size")?)
                        .map_err(|_| invalid("batch_size is too large".into()))?
                }
                "cursor" => p.cursor = Some(value),
                "where" => {
                    let (item, v) = value.split_once('=').ok_or_else(|| {
                        invalid(format!(
                            "write a condition as where=ITEM=VALUE, e.g. where=sex=2 (got {value:?})"
                        ))
                    })?;
                    p.conditions.push(FieldEquals {
                        item: item.trim().to_owned(),
                        value: v.to_owned(),
                    });
                }
                "since" => p.since = Some(parse_since(&value).map_err(invalid)?),
                "target" => p.target = value,
                "via" => p.via = value,
                "grant" => p.grant = Some(value),
                _ => unreachable!("only allowed names reach here"),
            }
        }
        Ok(p)
    }

    fn scope(&self, catalog: String, credential: tierlink_proto::v1::Credential) -> ReadScope {
        ReadScope {
            catalog,
            target: self.target.clone(),
            via: self.via.clone(),
            credential: Some(credential),
            ..Default::default()
        }
    }
}

/// The key a cursor resumes at.
fn from_cursor(cursor: &str) -> Result<String, Problem> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            invalid(format!(
                "cursor {cursor:?} is not one this gateway gave: pass the `next` of the page before, unchanged"
            ))
        })
}

/// The cursor of the page after one ending with `key`: the least key greater than it.
fn cursor_after(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}\u{0}"))
}

/// Reads with the read service, then answers in the form asked for. `page` is the limit of a
/// JSON page and whether a cursor can follow it (a query; a history has none).
async fn answer(
    state: &State,
    form: Form,
    read: Read,
    page: Option<u64>,
    instance: &str,
) -> Result<Response, Problem> {
    let catalog = read.scope().catalog.clone();
    let target = state
        .reads
        .target(&read.scope().target)
        .map_err(Problem::from)?;
    let mut stream = state
        .reads
        .read(&state.as_node(), read)
        .await
        .map_err(|e| Problem::from(e).at(instance.to_owned()))?;
    let expected = Expected {
        producer: Some(target.to_string()),
        catalog: Some(catalog),
        request_id: None,
    };
    // The first batch settles the status: a refusal found while producing it is still a problem
    // document, not a cut-off stream.
    let first = match stream.next().await {
        Some(Ok(batch)) => batch,
        Some(Err(e)) => return Err(Problem::from(e).at(instance.to_owned())),
        None => {
            return Err(Problem::new(
                Kind::Unavailable,
                "the read ended before its first batch: ask again",
            ));
        }
    };
    let mut check = StreamCheck::new(expected);
    match form {
        Form::Json => json_page(state, check, first, stream, page).await,
        Form::Ndjson => {
            let opened = open(state, &mut check, &first)?;
            let facts = ReadFacts::from(&opened.header);
            let body = spawn_body(
                state.clone(),
                check,
                Some(opened),
                first,
                stream,
                Form::Ndjson,
            );
            Ok(streamed(NDJSON, &facts, body))
        }
        Form::Batches => {
            let header = check
                .verify(&state.verifier, &first)
                .map_err(|e| verify_problem(0, e))?;
            let facts = ReadFacts::from(&header);
            let body = spawn_body(state.clone(), check, None, first, stream, Form::Batches);
            Ok(streamed(BATCHES, &facts, body))
        }
    }
}

fn verify_problem(batch: u32, e: tierlink_core::signed::VerifyError) -> Problem {
    Problem::new(
        Kind::Unavailable,
        format!(
            "batch {batch} of the answer failed its check, so nothing after it is passed on: {e}"
        ),
    )
}

/// Verifies and opens the next batch of a stream.
fn open(
    state: &State,
    check: &mut StreamCheck,
    batch: &SignedBatch,
) -> Result<VerifiedBatch, Problem> {
    let n = check.batches();
    check
        .open(&state.verifier, &state.opener, batch)
        .map_err(|e| verify_problem(n, e))
}

async fn json_page(
    state: &State,
    mut check: StreamCheck,
    first: SignedBatch,
    mut stream: BatchStream,
    page: Option<u64>,
) -> Result<Response, Problem> {
    let opened = open(state, &mut check, &first)?;
    let facts = ReadFacts::from(&opened.header);
    let mut records: Vec<_> = opened.json_records().collect();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Problem::from)?;
        records.extend(open(state, &mut check, &batch)?.json_records());
    }
    let summary = check.finish().map_err(|e| verify_problem(u32::MAX, e))?;
    let full = page.is_some_and(|limit| records.len() as u64 >= limit);
    let (next, rest) = match (full, facts.keys_hashed) {
        (false, _) => (None, None),
        (true, false) => (
            records
                .last()
                .and_then(|r| r.get("_key"))
                .and_then(|k| k.as_str())
                .map(cursor_after),
            None,
        ),
        (true, true) => (
            None,
            Some(format!(
                "keys are hashed under grant {}, so no cursor can follow this page (a bound on keys would sort the hidden keys): ask for every record at once with Accept: {NDJSON} (streamed) or {BATCHES}",
                facts.grant
            )),
        ),
    };
    Ok(Json(RecordsPage {
        facts,
        batches: summary.batches,
        count: summary.records,
        records,
        next,
        rest,
    })
    .into_response())
}

/// A streamed answer of `media` whose headers carry `facts`.
fn streamed(media: &'static str, facts: &ReadFacts, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.extend(facts.headers());
    response
}

/// Chunks of a streamed answer in flight: with batches of up to a few MiB, two bound the
/// memory a stream holds however large the answer.
const CHUNKS_IN_FLIGHT: usize = 2;

/// The body of a streamed answer: a task takes the batches as the client takes the chunks, and
/// stops, dropping the read (whose producer then ends it), when the client goes away.
fn spawn_body(
    state: State,
    mut check: StreamCheck,
    opened: Option<VerifiedBatch>,
    first: SignedBatch,
    mut stream: BatchStream,
    form: Form,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::spawn(async move {
        let chunk = |batch: Option<VerifiedBatch>, signed: &SignedBatch| -> Bytes {
            match batch {
                Some(b) => ndjson(&b),
                None => Bytes::from(signed.encode_length_delimited_to_vec()),
            }
        };
        let mut head = Vec::new();
        if form == Form::Batches {
            head.extend_from_slice(MAGIC);
        }
        head.extend_from_slice(&chunk(opened, &first));
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        let failed = loop {
            let Some(batch) = stream.next().await else {
                break check.finish().err().map(|e| verify_problem(u32::MAX, e));
            };
            let next = batch.map_err(Problem::from).and_then(|batch| {
                let opened = match form {
                    Form::Batches => {
                        let n = check.batches();
                        check
                            .verify(&state.verifier, &batch)
                            .map_err(|e| verify_problem(n, e))?;
                        None
                    }
                    _ => Some(open(&state, &mut check, &batch)?),
                };
                Ok(chunk(opened, &batch))
            });
            match next {
                Ok(bytes) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                }
                Err(problem) => break Some(problem),
            }
        };
        if let Some(problem) = failed {
            if form == Form::Ndjson {
                let line = serde_json::json!({ "_problem": problem.document() });
                let _ = tx.send(Ok(Bytes::from(format!("{line}\n")))).await;
            }
            // An error ends the body without its proper end: the client sees the answer cut.
            let _ = tx.send(Err(std::io::Error::other(problem.detail))).await;
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A batch's records as NDJSON lines.
fn ndjson(batch: &VerifiedBatch) -> Bytes {
    let mut out = Vec::new();
    for object in batch.json_records() {
        serde_json::to_writer(&mut out, &object).expect("records serialize");
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// Query records of a catalog, as the caller's principal.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{prefix}/{number}/records",
    tag = "records",
    params(
        ("prefix" = String, Path, description = "The catalog's resource code before the slash, e.g. `101001001`."),
        ("number" = String, Path, description = "The catalog's resource code after the slash, e.g. `000001`."),
        ("limit" = Option<u64>, Query, description = "Most records: a JSON page's size (default 1,000, at most 10,000); for NDJSON and batches, of the whole answer (default: all)."),
        ("cursor" = Option<String>, Query, description = "Where the page starts: the `next` of the page before. Not with hashed keys."),
        ("where" = Option<Vec<String>>, Query, explode = true, description = "A condition `ITEM=VALUE`; repeat for several, all must hold. Only items sent in clear."),
        ("since" = Option<String>, Query, description = "Only records written at or after this time: RFC 3339, or a date for its midnight UTC. Not with hashed keys."),
        ("target" = Option<String>, Query, description = "The node whose records to read (its division code); default this node."),
        ("via" = Option<String>, Query, description = "A node to relay through on the way to the target."),
        ("grant" = Option<String>, Query, description = "The grant to be decided under; default the producer's choice."),
        ("batch_size" = Option<u32>, Query, description = "Records per signed batch (default the producer's, 1,000; at most 10,000)."),
        ("Tierlink-Role" = Option<String>, Header, description = "The role the principal acts in, `UNIT/NAME`; needed when it holds several."),
        ("Tierlink-Purpose" = String, Header, description = "The read's purpose, as grants name it (UTF-8, percent-encoded)."),
    ),
    responses(
        (status = 200, description = "The records. `application/json`: a page. `application/x-ndjson`: one record a line, streamed; the `Tierlink-Request-Id`, `Tierlink-Producer`, `Tierlink-Sealed-To`, `Tierlink-Principal`, `Tierlink-Grant`, `Tierlink-Manifest` (ITEM=ACTION,…), `Tierlink-Withheld` and `Tierlink-Keys-Hashed` headers say what a page's fields say. `application/x-tierlink-batches`: the signed batches, sealed to this node, as a batch file: the 16 bytes `TIERLINK-BATCH1\\n`, then each `tierlink.v1.SignedBatch` length-delimited (a protobuf varint of its length, then its bytes); check it with `tierlink verify --ca ca.crt FILE`, or by hand: each batch's Ed25519 signature over `tierlink.v1.BatchHeader\\0` + the header bytes, by the producer's signing certificate from the CA, the BLAKE3 of the sealed records equal to the header's digest, sequences from 0 to the one marked last.",
            content(
                (RecordsPage = "application/json"),
                (String = "application/x-ndjson"),
                (Vec<u8> = "application/x-tierlink-batches"),
            ),
        ),
        (status = 400, description = "A bad parameter, a missing purpose, or a role to choose.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted by the grants, or an administrator's token (which reads no records).", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such catalog or node.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 406, description = "None of the forms asked for in Accept.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address, or too many reads open.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Another node could not be reached; try again.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn query(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path(code): Path<(String, String)>,
    RawQuery(query): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let form = form(&headers)?;
    let p = Params::parse(
        query.as_deref(),
        &[
            "limit",
            "cursor",
            "where",
            "since",
            "target",
            "via",
            "grant",
            "batch_size",
        ],
    )?;
    let page = (form == Form::Json).then(|| p.limit.unwrap_or(DEFAULT_PAGE));
    if let Some(limit) = page
        && !(1..=MAX_PAGE).contains(&limit)
    {
        return Err(invalid(format!(
            "a JSON page holds 1 to {MAX_PAGE} records, not {limit}: page with `cursor`, or ask for Accept: {NDJSON} to stream every record"
        )));
    }
    let credential = bearer.credential(&state, &headers, p.grant.clone())?;
    let request = QueryRequest {
        scope: Some(p.scope(catalog_code(&code), credential)),
        key_from: p
            .cursor
            .as_deref()
            .map(from_cursor)
            .transpose()?
            .unwrap_or_default(),
        key_to: String::new(),
        r#where: p.conditions.clone(),
        updated_since_micros: p.since.unwrap_or(0),
        batch_size: p.batch_size,
        limit: page.or(p.limit).unwrap_or(0),
    };
    answer(&state, form, request.into(), page, uri.path()).await
}

/// Every stored version of one record, as the caller's principal.
#[utoipa::path(
    get,
    path = "/v1/catalogs/{prefix}/{number}/records/{key}/history",
    tag = "records",
    params(
        ("prefix" = String, Path, description = "The catalog's resource code before the slash."),
        ("number" = String, Path, description = "The catalog's resource code after the slash."),
        ("key" = String, Path, description = "The record's primary key (percent-encoded)."),
        ("target" = Option<String>, Query, description = "The node whose records to read; default this node."),
        ("via" = Option<String>, Query, description = "A node to relay through."),
        ("grant" = Option<String>, Query, description = "The grant to be decided under."),
        ("Tierlink-Role" = Option<String>, Header, description = "The role the principal acts in."),
        ("Tierlink-Purpose" = String, Header, description = "The read's purpose."),
    ),
    responses(
        (status = 200, description = "The versions, oldest first, in the form Accept asks for (as for a query).",
            content(
                (RecordsPage = "application/json"),
                (String = "application/x-ndjson"),
                (Vec<u8> = "application/x-tierlink-batches"),
            ),
        ),
        (status = 400, description = "A bad parameter; a key lookup where keys are hashed.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted by the grants, or an administrator's token (which reads no records).", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such catalog or record.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 406, description = "None of the forms asked for in Accept.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens, or too many reads open.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn history(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path((prefix, number, key)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let form = form(&headers)?;
    let p = Params::parse(query.as_deref(), &["target", "via", "grant"])?;
    let credential = bearer.credential(&state, &headers, p.grant.clone())?;
    let request = HistoryRequest {
        scope: Some(p.scope(catalog_code(&(prefix, number)), credential)),
        key,
    };
    answer(&state, form, request.into(), None, uri.path()).await
}

/// What a write did: an idempotent upsert by primary key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Written {
    /// Records written: created, updated and unchanged together.
    pub written: u64,
    /// With a key not stored before.
    pub created: u64,
    /// New versions of a stored key.
    pub updated: u64,
    /// Equal to the stored current version: nothing stored for them.
    pub unchanged: u64,
}

impl From<PutOutcome> for Written {
    fn from(o: PutOutcome) -> Self {
        Self {
            written: o.created + o.updated + o.unchanged,
            created: o.created,
            updated: o.updated,
            unchanged: o.unchanged,
        }
    }
}

/// Write records, all or none: each a JSON object keyed by item code.
#[utoipa::path(
    post,
    path = "/v1/catalogs/{prefix}/{number}/records",
    tag = "records",
    params(
        ("prefix" = String, Path, description = "The catalog's resource code before the slash."),
        ("number" = String, Path, description = "The catalog's resource code after the slash."),
    ),
    request_body(content = Vec<Object>, content_type = "application/json", description = "Records: JSON objects keyed by item code; values are strings, numbers, booleans or null. Written as an idempotent upsert by primary key: a record whose key is stored gets a new version unless its values are unchanged."),
    responses(
        (status = 200, description = "Every record was stored.", body = Written),
        (status = 400, description = "The body is not a JSON array of objects.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that does not work.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token does not write this catalog: a read token, or a write token naming other catalogs.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such catalog here.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 408, description = "The body paused longer than the node waits.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the node takes.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Records break the catalog's rules: nothing was stored.", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed tokens from this address.", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("token" = []))
)]
pub async fn put(
    Shared(state): Shared<State>,
    bearer: Bearer,
    Path(code): Path<(String, String)>,
    request: Request,
) -> Result<Json<Written>, Problem> {
    let catalog = catalog_code(&code);
    let writer = bearer.writer(&state, &catalog).await?;
    let sent = async {
        let place = state.write_place()?;
        let Json(objects): Json<Vec<serde_json::Map<String, serde_json::Value>>> =
            Json::from_request(request, &state).await?;
        if objects.is_empty() {
            return Err(invalid("send at least one record".into()));
        }
        let numbered = objects.into_iter().enumerate().map(|(n, o)| Ok((n + 1, o)));
        let table = import::json_objects(numbered).map_err(|e| match e {
            import::ImportError::Json { line, problem } => {
                Problem::new(Kind::MalformedJson, format!("record {line}: {problem}"))
            }
            other => Problem::new(Kind::MalformedJson, other.to_string()),
        })?;
        Ok((place, table))
    };
    let (_place, table) = match sent.await {
        Ok(sent) => sent,
        Err(problem) => return Err(state.refused_write(&writer, &catalog, problem).await),
    };
    let written = state
        .exchange
        .write_records(
            &writer,
            catalog,
            table.columns,
            table.rows,
            Write::default(),
        )
        .await?;
    Ok(Json(written.into()))
}

#[cfg(test)]
mod tests;
