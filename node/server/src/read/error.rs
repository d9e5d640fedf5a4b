//! Why a read was refused or stopped, in terms every transport can carry.

use tierlink_store::StoreError;
use tierlink_store::registry::RegistryError;

use crate::exchange::produce::PlanError;
use crate::limits::Exhausted;

/// The kind of a [`ReadError`]: gRPC maps each to the status code of the same name, a gateway to
/// an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadErrorKind {
    /// The principal's credential is wrong.
    Unauthenticated,
    /// Who asks may not read this (no grant, a refused requester, a suspended member).
    PermissionDenied,
    /// The request is malformed (a bad code, a filter on a hidden item, a batch too large).
    InvalidArgument,
    /// The catalog or record does not exist, or a relay has no address for the next node.
    NotFound,
    /// The node cannot serve it as configured (e.g. its principals file is unreadable).
    FailedPrecondition,
    /// Too many reads are open, for the caller or the node: finish or cancel one.
    ResourceExhausted,
    /// The read made no progress for the node's stall limit and was ended.
    DeadlineExceeded,
    /// A passing failure: a relay failed, the audit cannot be written. Try again.
    Unavailable,
    /// The node's store failed.
    Internal,
}

/// A read refused or stopped: its kind, and a message that says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// What kind of failure.
    pub kind: ReadErrorKind,
    /// What went wrong and what to do about it.
    pub message: String,
}

macro_rules! constructors {
    ($($name:ident => $kind:ident),* $(,)?) => {
        impl ReadError {
            $(
                #[doc = concat!("A [`ReadErrorKind::", stringify!($kind), "`] error.")]
                pub fn $name(message: impl Into<String>) -> Self {
                    Self { kind: ReadErrorKind::$kind, message: message.into() }
                }
            )*
        }
    };
}

constructors! {
    unauthenticated => Unauthenticated,
    permission_denied => PermissionDenied,
    invalid_argument => InvalidArgument,
    not_found => NotFound,
    failed_precondition => FailedPrecondition,
    resource_exhausted => ResourceExhausted,
    deadline_exceeded => DeadlineExceeded,
    unavailable => Unavailable,
    internal => Internal,
}

impl From<RegistryError> for ReadError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownCatalog(_) => ReadError::not_found(e.to_string()),
            RegistryError::Store(s) => s.into(),
            _ => ReadError::invalid_argument(e.to_string()),
        }
    }
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> Self {
        if let StoreError::MarkMoved { .. } | StoreError::Removed { .. } = e {
            return ReadError::failed_precondition(e.to_string());
        }
        tracing::error!(error = %e, "store failure");
        ReadError::internal(e.to_string())
    }
}

impl From<Exhausted> for ReadError {
    fn from(e: Exhausted) -> Self {
        ReadError::resource_exhausted(e.to_string())
    }
}

impl From<PlanError> for ReadError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::NotShared(m) => ReadError::permission_denied(m),
            PlanError::BadRequest(m) => ReadError::invalid_argument(m),
            PlanError::Unavailable(m) => ReadError::failed_precondition(m),
        }
    }
}

/// A relayed node's answer keeps its kind on the way back.
impl From<tonic::Status> for ReadError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let kind = match status.code() {
            Code::Unauthenticated => ReadErrorKind::Unauthenticated,
            Code::PermissionDenied => ReadErrorKind::PermissionDenied,
            Code::InvalidArgument => ReadErrorKind::InvalidArgument,
            Code::NotFound => ReadErrorKind::NotFound,
            Code::FailedPrecondition => ReadErrorKind::FailedPrecondition,
            Code::ResourceExhausted => ReadErrorKind::ResourceExhausted,
            Code::DeadlineExceeded => ReadErrorKind::DeadlineExceeded,
            Code::Internal => ReadErrorKind::Internal,
            _ => ReadErrorKind::Unavailable,
        };
        ReadError {
            kind,
            message: status.message().to_owned(),
        }
    }
}

impl From<ReadError> for tonic::Status {
    fn from(e: ReadError) -> Self {
        let code = match e.kind {
            ReadErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ReadErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ReadErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ReadErrorKind::NotFound => tonic::Code::NotFound,
            ReadErrorKind::FailedPrecondition => tonic::Code::FailedPrecondition,
            ReadErrorKind::ResourceExhausted => tonic::Code::ResourceExhausted,
            ReadErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ReadErrorKind::Unavailable => tonic::Code::Unavailable,
            ReadErrorKind::Internal => tonic::Code::Internal,
        };
        tonic::Status::new(code, e.message)
    }
}
