//! The `tierlink.v1.Cases` gRPC service: the node's principals act on cases through their own
//! node (`Act`, `List`, `Show`, `Figures`: the node itself only), and other units deliver
//! chains (`Deliver`: active members).

use std::sync::Arc;

use tierlink_core::cases::CaseError;
use tierlink_core::limits::MAX_MESSAGE_BYTES;
use tierlink_proto::v1::cases_server::{Cases as CasesApi, CasesServer};
use tierlink_proto::v1::{
    ActRequest, CaseDelivery, CaseList, CaseView, DeliveryReceipt, FiguresRequest, FiguresResponse,
    ListCasesRequest, ShowCaseRequest,
};
use tonic::{Request, Response, Status};

use super::{Cases, CasesError};
use crate::admission::Caller;

/// The cases service of one node.
pub struct CaseService {
    cases: Arc<Cases>,
}

impl CaseService {
    /// The service over `cases`, ready to serve; a delivery carries a whole chain.
    pub fn server(cases: Arc<Cases>) -> CasesServer<Self> {
        CasesServer::new(Self { cases })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

impl From<CasesError> for Status {
    fn from(e: CasesError) -> Self {
        let code = match &e {
            CasesError::Case(CaseError::Invalid(_)) => tonic::Code::InvalidArgument,
            CasesError::Case(CaseError::Refused(_)) => tonic::Code::FailedPrecondition,
            CasesError::Case(CaseError::Forged(_)) => tonic::Code::PermissionDenied,
            CasesError::Credential(r) => return Status::from(r.clone()),
            CasesError::NotFound(_) => tonic::Code::NotFound,
            CasesError::Store(_) => tonic::Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

#[tonic::async_trait]
impl CasesApi for CaseService {
    async fn act(&self, request: Request<ActRequest>) -> Result<Response<CaseView>, Status> {
        let request = request.into_inner();
        let credential = request.credential.unwrap_or_default();
        let mv = request
            .r#move
            .ok_or_else(|| Status::invalid_argument("the request names no move"))?;
        Ok(Response::new(
            self.cases.act(&credential, mv, &request.promised).await?,
        ))
    }

    async fn deliver(
        &self,
        request: Request<CaseDelivery>,
    ) -> Result<Response<DeliveryReceipt>, Status> {
        let caller = Caller::of(&request)?;
        Ok(Response::new(
            self.cases.receive(&caller, request.into_inner()).await?,
        ))
    }

    async fn list(&self, request: Request<ListCasesRequest>) -> Result<Response<CaseList>, Status> {
        Ok(Response::new(CaseList {
            cases: self.cases.list(request.get_ref())?,
        }))
    }

    async fn show(&self, request: Request<ShowCaseRequest>) -> Result<Response<CaseView>, Status> {
        Ok(Response::new(self.cases.view(&request.get_ref().case_id)?))
    }

    async fn figures(
        &self,
        request: Request<FiguresRequest>,
    ) -> Result<Response<FiguresResponse>, Status> {
        Ok(Response::new(self.cases.figures(request.get_ref())?))
    }
}
