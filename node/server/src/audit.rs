//! The `tierlink.v1.Audit` gRPC service: the node's administrator queries and verifies its log.

use std::sync::Arc;

use tierlink_proto::v1::audit_server::Audit;
use tierlink_proto::v1::{
    AuditAnchorRequest, AuditAnchorResponse, AuditEntries, AuditQuery, AuditVerdict,
    AuditVerifyRequest,
};
use tierlink_store::audit::{AnchorBoard, anchor_head};
use tierlink_store::audit::{AuditFilter, AuditLog};
use tonic::{Request, Response, Status};

/// Entries an audit query returns when it gives no limit.
const DEFAULT_LIMIT: usize = 1000;

/// The audit service of one node.
pub struct AuditService {
    log: Arc<AuditLog>,
    board: Arc<dyn AnchorBoard>,
}

impl AuditService {
    /// A service over `log`, anchored on `board`.
    pub fn new(log: Arc<AuditLog>, board: Arc<dyn AnchorBoard>) -> Self {
        Self { log, board }
    }
}

fn blank(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn entries(
        &self,
        request: Request<AuditQuery>,
    ) -> Result<Response<AuditEntries>, Status> {
        let q = request.into_inner();
        let filter = AuditFilter {
            catalog: blank(q.catalog),
            principal: blank(q.principal),
            item: blank(q.item),
            key: blank(q.key),
            since_micros: (q.since_micros > 0).then_some(q.since_micros),
            refused_only: q.refused_only,
        };
        let limit = if q.limit == 0 {
            DEFAULT_LIMIT
        } else {
            q.limit as usize
        };
        let log = self.log.clone();
        let entries = tokio::task::spawn_blocking(move || log.query(&filter, limit))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(AuditEntries {
            entries_json: entries
                .iter()
                .map(|e| serde_json::to_string(e).expect("audit entries serialize"))
                .collect(),
        }))
    }

    async fn verify(
        &self,
        _request: Request<AuditVerifyRequest>,
    ) -> Result<Response<AuditVerdict>, Status> {
        let anchored = self.board.anchored();
        let log = self.log.clone();
        let anchor = anchored.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            log.verify(anchor.as_ref().map(|(s, h, _)| (*s, h.as_str())))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
        let (anchored_sequence, anchored_revision) = anchored.map_or((0, 0), |(s, _, r)| (s, r));
        Ok(Response::new(match verdict {
            Ok(entries) => AuditVerdict {
                entries,
                intact: true,
                anchored_sequence,
                anchored_revision,
                ..Default::default()
            },
            Err(broken) => AuditVerdict {
                entries: broken.sequence.saturating_sub(1),
                intact: false,
                first_bad: broken.sequence,
                problem: broken.problem,
                anchored_sequence,
                anchored_revision,
            },
        }))
    }

    async fn anchor(
        &self,
        _request: Request<AuditAnchorRequest>,
    ) -> Result<Response<AuditAnchorResponse>, Status> {
        let sequence = anchor_head(&self.log, self.board.as_ref())
            .await
            .map_err(Status::unavailable)?;
        Ok(Response::new(AuditAnchorResponse {
            sequence: sequence.unwrap_or(0),
        }))
    }
}
