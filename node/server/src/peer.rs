//! Who is calling: the node named by the client certificate that mutual TLS verified.

use tonic::{Request, Status};

use tierlink_core::identity::{NodeCode, node_code_of};

/// The calling node, from the certificate it presented in the TLS handshake.
pub fn caller<T>(request: &Request<T>) -> Result<NodeCode, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated(
            "no client certificate: connect with a certificate issued by the federation CA",
        )
    })?;
    let first = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
    node_code_of(first).map_err(|e| Status::unauthenticated(e.to_string()))
}

/// Refuses a call that only the node itself (its administrator's CLI, with the node's own
/// certificate) may make.
pub fn require_self(caller: &NodeCode, me: &NodeCode, what: &str) -> Result<(), Status> {
    if caller == me {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "{caller} may not {what} on node {me}: only the node itself may; run the command on that node, as its administrator"
    )))
}
