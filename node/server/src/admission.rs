//! Admission: who is calling, resolved once per call before any service sees the request.
//!
//! Mutual TLS has already checked the client certificate against the federation CA; this layer
//! reads the node code it names, asks the directory once for that node's standing, refuses a
//! certificate other than the ones the directory registered for that node (so a certificate the
//! CA issued once, or one revoked since, does not act as the node), and applies
//! the method's rule ([`Access`]): some methods are open to any certified node (joining the
//! directory, raft between replicas), the exchange only to active members, and administration
//! only to the node itself (its administrator's command line, with the node's own certificate).
//! The admitted [`Caller`] travels in the request's extensions; handlers take it from there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tierlink_client::faults::{Blocked, FAULTS_ENV};
use tierlink_core::identity::{NodeCode, fingerprint, node_code_of};
use tierlink_core::members::Members;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The node a call comes from, as admitted.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The node its certificate names.
    pub node: NodeCode,
    /// Whether that node is the one called: its own administrator.
    pub is_self: bool,
    /// Whether it is the node itself or an active member (or the directory is still forming):
    /// only such callers send requests that carry data, up to a whole message.
    pub is_member: bool,
}

impl Caller {
    /// The admitted caller of `request`. Every request through [`AdmissionLayer`] carries one;
    /// a request without one was not admitted and is refused.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no client certificate: connect with a certificate issued by the federation CA",
                )
            })
    }
}

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Anyone who passed the TLS handshake: health and reflection, named.
    Open,
    /// Any node with a federation certificate, whatever its standing: joining the directory and
    /// learning its members and status (a node does so before it is registered), and raft (whose
    /// service admits voters only).
    Certified,
    /// Nodes the directory knows, whatever their status: what the directory publishes of its
    /// catalogs and policies is for members, not for any holder of a CA certificate.
    Registered,
    /// Active members of the federation, and the node itself: the exchange.
    Member,
    /// The node itself only; the text says what the call does, for the refusal.
    OwnNode(&'static str),
}

/// The rule for a gRPC method path (`/package.Service/Method`).
fn access(path: &str) -> Access {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    match (service, method) {
        ("tierlink.v1.Exchange", "PutCatalog") => Access::OwnNode("publish catalogs"),
        ("tierlink.v1.Exchange", "PutRecords") => Access::OwnNode("write records"),
        ("tierlink.v1.Exchange", "SourceOffset") => Access::OwnNode("read a source's offset"),
        ("tierlink.v1.Exchange", _) => Access::Member,
        ("tierlink.v1.Directory", "Found") => Access::OwnNode("found the directory"),
        ("tierlink.v1.Directory", "Propose") => Access::OwnNode("issue directory changes"),
        ("tierlink.v1.Directory", "Explain") => Access::OwnNode("explain decisions"),
        ("tierlink.v1.Directory", "Publish") => {
            Access::OwnNode("publish catalogs in the directory")
        }
        ("tierlink.v1.Directory", "Catalogs" | "Policies") => Access::Registered,
        ("tierlink.v1.Directory", "Follow") => Access::Member,
        ("tierlink.v1.Directory" | "tierlink.v1.Federation", _) => Access::Certified,
        ("tierlink.v1.Audit", _) => Access::OwnNode("read the audit"),
        ("tierlink.v1.Backup", _) => Access::OwnNode("take backups"),
        ("tierlink.v1.Webhooks", _) => Access::OwnNode("manage webhooks"),
        ("tierlink.v1.Cases", "Deliver") => Access::Member,
        ("tierlink.v1.Cases", _) => Access::OwnNode("act on cases"),
        ("tierlink.v1.CrossCheck", "Compare") => Access::Member,
        ("tierlink.v1.CrossCheck", _) => Access::OwnNode("run and read cross-checks"),
        (
            "grpc.health.v1.Health"
            | "grpc.reflection.v1.ServerReflection"
            | "grpc.reflection.v1alpha.ServerReflection",
            _,
        ) => Access::Open,
        // Default deny: a service added without a rule here serves only the node itself.
        _ => Access::OwnNode("call a method without an admission rule"),
    }
}

/// Admits calls to a node: [`Caller`] resolution and the method's [`Access`] rule, for every
/// service served behind it.
#[derive(Clone)]
pub struct AdmissionLayer {
    me: NodeCode,
    own_tls: String,
    members: Arc<dyn Members>,
    blocked: Blocked,
}

impl AdmissionLayer {
    /// Admission to node `me`, whose own TLS certificate has fingerprint `own_tls`, judging
    /// other nodes by `members` (the node's directory replica).
    pub fn new(me: NodeCode, own_tls: String, members: Arc<dyn Members>) -> Self {
        Self {
            me,
            own_tls,
            members,
            blocked: Blocked::default(),
        }
    }

    /// The same admission, answering `UNAVAILABLE` to the nodes `blocked` lists, as if their
    /// calls never arrived (the partition fault hook).
    pub fn with_blocked(self, blocked: Blocked) -> Self {
        Self { blocked, ..self }
    }

    /// The caller of a request with these extensions, admitted to `path`; `None` for open methods.
    fn admit(&self, path: &str, extensions: &http::Extensions) -> Result<Option<Caller>, Status> {
        let access = access(path);
        if access == Access::Open {
            return Ok(None);
        }
        let certificate = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| certs.first().cloned())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no client certificate: connect with a certificate issued by the federation CA",
                )
            })?;
        let node =
            node_code_of(&certificate).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if self.blocked.blocks(&node) {
            return Err(Status::unavailable(format!(
                "{node} is blocked by this node's fault hook ({FAULTS_ENV})"
            )));
        }
        let is_self = node == self.me;
        let standing = self.members.standing(&node);
        // The certificate must be one the directory registered for the node it names: the CA
        // issuing it is not enough, or any certificate the CA ever issued would act as the node.
        let presented = fingerprint(&certificate);
        match &standing {
            Some(standing) => standing
                .presents(&node, &presented)
                .map_err(Status::permission_denied)?,
            // Before the directory knows the node, its own certificate is the only one it knows.
            None if is_self && presented != self.own_tls => {
                return Err(Status::permission_denied(format!(
                    "this certificate ({presented}) is not node {node}'s own: its administrator uses the certificate in its node directory"
                )));
            }
            None => {}
        }
        match access {
            Access::OwnNode(what) if !is_self => {
                return Err(Status::permission_denied(format!(
                    "{node} may not {what} on node {}: only the node itself may; run the command on that node, as its administrator",
                    self.me
                )));
            }
            Access::Member if !is_self => match &standing {
                Some(standing) => standing.admit(&node).map_err(Status::permission_denied)?,
                // A node the directory does not know is judged by its certificate alone only
                // while the directory is still forming.
                None if self.members.is_formed() => {
                    return Err(Status::permission_denied(format!(
                        "{node} is not a member of the federation directory: it joins with `tierlink directory join` and its parent approves it"
                    )));
                }
                None => {}
            },
            Access::Registered if standing.is_none() && !is_self && self.members.is_formed() => {
                return Err(Status::permission_denied(format!(
                    "{node} is not a member of the federation directory: it joins with `tierlink directory join` before it reads the directory"
                )));
            }
            _ => {}
        }
        let is_member = is_self
            || match &standing {
                Some(standing) => standing.admit(&node).is_ok(),
                None => !self.members.is_formed(),
            };
        Ok(Some(Caller {
            node,
            is_self,
            is_member,
        }))
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`AdmissionLayer`] wraps around a node's services.
#[derive(Clone)]
pub struct Admission<S> {
    layer: AdmissionLayer,
    inner: S,
}

type Respond<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Respond<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.layer.admit(request.uri().path(), request.extensions()) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests;
