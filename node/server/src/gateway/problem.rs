//! Errors as problem documents (RFC 9457, `application/problem+json`): a stable `type` per kind
//! of error, a `title` that names the kind, the HTTP `status`, a `detail` that says what to fix,
//! and the `instance`: the request id of a refused read, else the path asked for. Each type is
//! a path on the gateway itself, `/problems/SLUG`, that serves a short page about it, so a type
//! can be looked up on a network with no way out.

use std::borrow::Cow;

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{OriginalUri, Path};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tierlink_core::limits::{MAX_MESSAGE_CHARS, clip};
use tierlink_store::registry::RegistryError;
use utoipa::ToSchema;

use crate::read::{ReadError, ReadErrorKind};

/// Characters of a problem's `instance` kept: a path of catalog codes and a key fits well within.
const MAX_INSTANCE_CHARS: usize = 512;

/// Rejected records or rows an answer lists.
pub const LISTED: usize = 1000;

/// Where the problem types live on the gateway.
pub const PROBLEMS: &str = "/problems/";

macro_rules! kinds {
    ($($kind:ident = $slug:literal, $status:literal, $title:literal, $about:literal;)*) => {
        /// The kinds of error the gateway answers with, each with its stable problem type.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Kind {
            $(#[doc = $about] $kind,)*
        }

        impl Kind {
            /// Every kind, in the order of the reference.
            pub const ALL: &[Kind] = &[$(Kind::$kind),*];

            /// The last segment of its type, e.g. `token-expired`.
            pub fn slug(self) -> &'static str {
                match self { $(Kind::$kind => $slug,)* }
            }

            /// The HTTP status it is sent with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Kind::$kind => StatusCode::from_u16($status).expect("a valid status"),)*
                }
            }

            /// Its short title, the same for every occurrence (RFC 9457 §3.1.4).
            pub fn title(self) -> &'static str {
                match self { $(Kind::$kind => $title,)* }
            }

            /// What it means and what to do: the page served at its type.
            pub fn about(self) -> &'static str {
                match self { $(Kind::$kind => $about,)* }
            }
        }
    };
}

kinds! {
    TokenMissing = "token-missing", 401, "No API token",
        "The request carries no `Authorization: Bearer tlk_…` header. The node's administrator creates a token for a principal with `tierlink token create --principal NAME --expires DAY`; send it on every request.";
    TokenMalformed = "token-malformed", 401, "Not an API token",
        "The bearer token is not a Tierlink API token: tokens start with `tlk_` and end with a checksum, so a mistyped or truncated one is recognised without a look-up. Copy the whole token as `tierlink token create` printed it.";
    TokenUnknown = "token-unknown", 401, "Token not issued here",
        "No token of this node matches: it was never issued here, or it belongs to another node (a node accepts only its own tokens). Ask this node's administrator for a token.";
    TokenExpired = "token-expired", 401, "Token expired",
        "The token's expiry day has passed. Ask the node's administrator for a new token (`tierlink token create`).";
    TokenRevoked = "token-revoked", 401, "Token revoked",
        "The token was revoked by the node's administrator (`tierlink token revoke`). Ask for a new one.";
    TooManyGuesses = "too-many-guesses", 429, "Too many failed tokens",
        "Too many requests from this address presented a token that failed. Wait the seconds the Retry-After header gives, then send a valid token.";
    ScopeInsufficient = "scope-insufficient", 403, "Token scope too narrow",
        "The token does not allow this. A `read` token reads under its principal's grants; a `write` token also writes and imports records of the catalogs it names (`tierlink token create --scope write --catalog CODE`); an `admin` token is the node administrator's: the audit and writes to every catalog, but no record reads, which are made as a principal. Use a token made for the act.";
    RoleRequired = "role-required", 400, "Role needed",
        "The principal holds several roles: name the one it acts in with the `Tierlink-Role` header (the problem's `roles` lists them).";
    PurposeRequired = "purpose-required", 400, "Purpose needed",
        "A read states its purpose, as the grants it is decided under name it: send the `Tierlink-Purpose` header (UTF-8, percent-encoded where not ASCII).";
    Unauthenticated = "unauthenticated", 401, "Principal not authenticated",
        "The node did not accept the principal's credential for this read: the principal was removed, or the token is not its. Check the token.";
    PermissionDenied = "permission-denied", 403, "Not permitted",
        "The principal does not hold the role named in `Tierlink-Role`, or the directory's grants do not let it, in this role and for this purpose, read what was asked (or the producer refuses its node). The detail says which rule refused; `GET /v1/catalogs/{prefix}/{number}/explain` shows what a grant would give.";
    InvalidArgument = "invalid-argument", 400, "Invalid request",
        "A parameter is not valid: a malformed code, a filter on an item that is not sent, a key range where keys are hashed. The detail names it.";
    InvalidRecords = "invalid-records", 422, "Records refused",
        "Some records break the catalog's rules; nothing was stored. The problem's `errors` lists each record (`record`, its position from 1 among the records posted, or `line`, its line in an imported file), its key when known, the item and what is wrong; an import's `reject_file` holds the rejected rows to correct and post again.";
    NotFound = "not-found", 404, "Not found",
        "The catalog or record does not exist on the node asked, or no route leads to that node.";
    FailedPrecondition = "failed-precondition", 409, "Node cannot serve this",
        "The node cannot serve the request as it is configured (e.g. no federation hash key, no registered encryption key for a node). Its administrator fixes the configuration.";
    TooManyReads = "too-many-reads", 429, "Too many reads open",
        "The node has as many reads open as it allows: finish or cancel a read, then try again.";
    ReadStalled = "read-stalled", 504, "Read stalled",
        "The read made no progress within the node's stall limit and was ended: read a stream as it arrives, or ask for less at a time.";
    Unavailable = "unavailable", 503, "Temporarily unavailable",
        "A passing failure: another node could not be reached, or the audit cannot be written. Try again later.";
    Internal = "internal", 500, "Internal error",
        "The node failed (its store). The detail says how; its administrator finds more in its log.";
    UnreadableFile = "unreadable-file", 400, "File cannot be read",
        "An uploaded file cannot be read as its options say: not in the encoding given or detected, a JSON line that is not an object, a header that names no item, or a mapping that does not fit. The detail names the line and what to do.";
    MalformedJson = "malformed-json", 400, "Malformed JSON",
        "The body is not the JSON the operation takes. The detail gives the line and column, or the field, at fault.";
    UnsupportedMediaType = "unsupported-media-type", 415, "Unsupported content type",
        "The body's Content-Type is not one the operation takes: `application/json` for records, `text/csv` or `application/x-ndjson` for an import.";
    NotAcceptable = "not-acceptable", 406, "Not acceptable",
        "None of the types the Accept header names can be served: reads answer `application/json`, `application/x-ndjson` or `application/x-tierlink-batches`.";
    BodyStalled = "body-stalled", 408, "Body stalled",
        "The request body stopped arriving for longer than the node waits between two pieces (node.toml `[gateway] body_idle_ms`, 30 s by default); the connection was closed. Send the body without pauses.";
    RequestTimeout = "request-timeout", 408, "Request not done in time",
        "The request was not received and answered within the node's deadline (node.toml `[gateway] request_ms`, 5 minutes by default). Send it faster, or less at once.";
    TooManyWrites = "too-many-writes", 429, "Too many writes",
        "The node is reading and checking as many writes (records posted, files uploaded) as it takes at once (node.toml `[gateway] writes`). Wait the seconds Retry-After gives and send it again.";
    BodyTooLarge = "body-too-large", 413, "Body too large",
        "The body is larger than the node takes in one request (node.toml `[gateway] body_bytes`). Send fewer records per request.";
    RouteNotFound = "route-not-found", 404, "No such route",
        "No operation has this path. The operations are listed at /openapi.json and /docs/.";
    MethodNotAllowed = "method-not-allowed", 405, "Method not allowed",
        "The path exists but not with this method. The Allow header lists the methods it takes.";
}

/// A problem document (RFC 9457), as sent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProblemDocument {
    /// The kind of problem: a URI reference, `/problems/SLUG`, that serves a page about it.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind's short title.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong here, and what to do about it.
    pub detail: String,
    /// This occurrence: the request id of a refused read, else the path asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// With `role-required`: the roles the principal holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// With `invalid-records`: every problem found, by record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<RecordProblem>>,
    /// With `invalid-records` from an import: the reject file, the rejected rows as the file had
    /// them with a `_problems` column, to correct and post again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_file: Option<String>,
}

/// An error the gateway answers with: its kind, what to do, and the occurrence; sent as a
/// [`ProblemDocument`].
#[derive(Clone, Debug)]
pub struct Problem {
    /// The kind.
    pub kind: Kind,
    /// What went wrong here, and what to do about it.
    pub detail: String,
    /// This occurrence.
    pub instance: Option<String>,
    /// What some kinds carry besides.
    extra: Option<Box<Extra>>,
}

/// What some kinds of problem carry besides the standard members.
#[derive(Clone, Debug, Default)]
struct Extra {
    roles: Option<Vec<String>>,
    errors: Option<Vec<RecordProblem>>,
    reject_file: Option<String>,
    retry_after: Option<u64>,
}

/// One record that breaks its catalog's rules: by its position in the records posted, or by its
/// line in an imported file (as the import's report names it).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordProblem {
    /// Its position in the records posted, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<usize>,
    /// The line it starts on in an imported file, as a text editor numbers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Its primary key, when its key items hold valid values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The item at fault.
    pub item: String,
    /// What is wrong.
    pub problem: String,
}

impl Problem {
    /// A problem of `kind` with `detail`, clipped to [`MAX_MESSAGE_CHARS`] when it repeats
    /// too much of what was sent.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            kind,
            detail: match clip(&detail, MAX_MESSAGE_CHARS) {
                Cow::Borrowed(_) => detail,
                Cow::Owned(clipped) => clipped,
            },
            instance: None,
            extra: None,
        }
    }

    /// The same problem naming its occurrence: a path or request id, its first
    /// [`MAX_INSTANCE_CHARS`] characters (an answer about a 60,000-character path need not repeat
    /// it), cut before any percent-escape it would split so that it stays a URI reference.
    pub fn at(mut self, instance: impl Into<String>) -> Self {
        let mut instance = instance.into();
        if let Some((at, _)) = instance.char_indices().nth(MAX_INSTANCE_CHARS) {
            let escape = instance[..at].rfind('%').filter(|p| at - p < 3);
            instance.truncate(escape.unwrap_or(at));
        }
        self.instance = Some(instance);
        self
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_default()
    }

    /// The same problem listing the roles to choose from.
    pub fn with_roles(mut self, roles: Vec<String>) -> Self {
        self.extra().roles = Some(roles);
        self
    }

    /// The same problem listing every record at fault.
    pub fn with_errors(mut self, errors: Vec<RecordProblem>) -> Self {
        self.extra().errors = Some(errors);
        self
    }

    /// The same problem carrying an import's reject file.
    pub fn with_reject_file(mut self, file: String) -> Self {
        self.extra().reject_file = Some(file);
        self
    }

    /// The same problem telling the client to wait `seconds` (the Retry-After header).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.extra().retry_after = Some(seconds);
        self
    }

    /// The document sent.
    pub fn document(&self) -> ProblemDocument {
        let extra = self.extra.as_deref().cloned().unwrap_or_default();
        ProblemDocument {
            kind: format!("{PROBLEMS}{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            instance: self.instance.clone(),
            roles: extra.roles,
            errors: extra.errors,
            reject_file: extra.reject_file,
        }
    }
}

impl From<ReadError> for Problem {
    fn from(e: ReadError) -> Self {
        let kind = match e.kind {
            ReadErrorKind::Unauthenticated => Kind::Unauthenticated,
            ReadErrorKind::PermissionDenied => Kind::PermissionDenied,
            ReadErrorKind::InvalidArgument => Kind::InvalidArgument,
            ReadErrorKind::NotFound => Kind::NotFound,
            ReadErrorKind::FailedPrecondition => Kind::FailedPrecondition,
            ReadErrorKind::ResourceExhausted => Kind::TooManyReads,
            ReadErrorKind::DeadlineExceeded => Kind::ReadStalled,
            ReadErrorKind::Unavailable => Kind::Unavailable,
            ReadErrorKind::Internal => Kind::Internal,
        };
        Problem::new(kind, e.message)
    }
}

/// A gRPC service's answer, called in process, keeps its kind.
impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        ReadError::from(status).into()
    }
}

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Records { catalog, errors } => {
                let listed = if errors.len() > LISTED {
                    format!(" (`errors` lists the first {LISTED})")
                } else {
                    String::new()
                };
                let problem = Problem::new(
                    Kind::InvalidRecords,
                    format!(
                        "catalog {catalog}: {} found{listed} and nothing was stored; fix the records listed in `errors` and send them all again",
                        if errors.len() == 1 {
                            "1 problem".to_owned()
                        } else {
                            format!("{} problems", errors.len())
                        }
                    ),
                );
                problem.with_errors(
                    errors
                        .into_iter()
                        .take(LISTED)
                        .map(|e| RecordProblem {
                            record: Some(e.record),
                            line: None,
                            key: e.key,
                            item: e.item,
                            problem: clip(&e.problem, MAX_MESSAGE_CHARS).into_owned(),
                        })
                        .collect(),
                )
            }
            RegistryError::Columns { .. } | RegistryError::Catalog(_) => {
                Problem::new(Kind::InvalidRecords, e.to_string())
            }
            other => ReadError::from(other).into(),
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                Kind::UnsupportedMediaType,
                "send the body as JSON, with Content-Type: application/json",
            ),
            JsonRejection::JsonDataError(e) => Problem::new(
                Kind::MalformedJson,
                format!(
                    "the JSON does not have the shape this operation takes: {}",
                    e.body_text()
                ),
            ),
            JsonRejection::JsonSyntaxError(e) => Problem::new(
                Kind::MalformedJson,
                format!("the body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::BytesRejection(e) => e.into(),
            other => Problem::new(Kind::MalformedJson, other.body_text()),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::new(
            Kind::InvalidArgument,
            format!(
                "the query string does not fit this operation: {}",
                rejection.body_text()
            ),
        )
    }
}

impl From<BytesRejection> for Problem {
    fn from(rejection: BytesRejection) -> Self {
        let mut cause: Option<&dyn std::error::Error> = Some(&rejection);
        while let Some(e) = cause {
            if e.is::<tower_http::timeout::TimeoutError>() {
                return Problem::new(
                    Kind::BodyStalled,
                    "the body stopped arriving for longer than this node waits ([gateway] body_idle_ms in its node.toml): send it again without pauses",
                );
            }
            cause = e.source();
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Problem::new(
                Kind::BodyTooLarge,
                "the body is larger than this node takes in one request ([gateway] body_bytes in its node.toml): send fewer records at a time",
            );
        }
        Problem::new(
            Kind::MalformedJson,
            format!("the body could not be read: {}", rejection.body_text()),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.document()).expect("problems serialize");
        let mut response = (
            self.kind.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response();
        if let Some(seconds) = self.extra.and_then(|e| e.retry_after) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Any path no route takes: a `route-not-found` problem.
pub async fn no_route(OriginalUri(uri): OriginalUri) -> Problem {
    Problem::new(
        Kind::RouteNotFound,
        format!(
            "no operation has the path {}: the operations are listed at /openapi.json and /docs/",
            uri.path()
        ),
    )
    .at(uri.path().to_owned())
}

/// The page about one problem type.
#[utoipa::path(
    get,
    path = "/problems/{slug}",
    tag = "reference",
    params(("slug" = String, Path, description = "The last segment of a problem type, e.g. `token-expired`.")),
    responses(
        (status = 200, description = "A short page about the problem type.", content_type = "text/html", body = String),
        (status = 404, description = "No such problem type.", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn page(Path(slug): Path<String>) -> Result<Html<String>, Problem> {
    let kind = Kind::ALL.iter().find(|k| k.slug() == slug).ok_or_else(|| {
        Problem::new(
            Kind::RouteNotFound,
            format!("there is no problem type {slug:?}"),
        )
    })?;
    Ok(Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1>\n<p>HTTP status {status}. Type <code>{PROBLEMS}{slug}</code>.</p>\n<p>{about}</p>\n<p><a href=\"/docs/\">API reference</a></p></body></html>\n",
        title = kind.title(),
        status = kind.status().as_u16(),
        slug = kind.slug(),
        about = kind.about(),
    )))
}
