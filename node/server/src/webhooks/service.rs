//! The `tierlink.v1.Webhooks` gRPC service: the node's administrator adds, lists and removes
//! webhooks, and lists and replays dead letters. Admission lets only the node itself call it.

use std::sync::Arc;

use tierlink_proto::v1::webhooks_server::{Webhooks as WebhooksApi, WebhooksServer};
use tierlink_proto::v1::{
    AddWebhookRequest, AddWebhookResponse, DeadLetter, DeadLetterList, DeadLettersRequest,
    ListWebhooksRequest, RemoveWebhookRequest, RemoveWebhookResponse, ReplayRequest,
    ReplayResponse, ResumeWebhookRequest, ResumeWebhookResponse, Webhook, WebhookList,
};
use tonic::{Request, Response, Status};

use super::{WebhookError, Webhooks};

/// The webhooks service of one node.
pub struct WebhookService {
    webhooks: Arc<Webhooks>,
}

impl WebhookService {
    /// The service over `webhooks`, ready to serve.
    pub fn server(webhooks: Arc<Webhooks>) -> WebhooksServer<Self> {
        WebhooksServer::new(Self { webhooks })
    }
}

impl From<WebhookError> for Status {
    fn from(e: WebhookError) -> Self {
        let code = match &e {
            WebhookError::Invalid(_) => tonic::Code::InvalidArgument,
            WebhookError::NotFound(_) => tonic::Code::NotFound,
            WebhookError::Refused(r) => Status::from(r.clone()).code(),
            WebhookError::Store(_) => tonic::Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

fn blank(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl WebhooksApi for WebhookService {
    async fn add(
        &self,
        request: Request<AddWebhookRequest>,
    ) -> Result<Response<AddWebhookResponse>, Status> {
        Ok(Response::new(
            self.webhooks.add(request.into_inner()).await?,
        ))
    }

    async fn list(
        &self,
        _request: Request<ListWebhooksRequest>,
    ) -> Result<Response<WebhookList>, Status> {
        let webhooks = self
            .webhooks
            .list()
            .map_err(WebhookError::from)?
            .into_iter()
            .map(|(hook, resume_token, pending, dead)| Webhook {
                principal: format!("{}@{}", hook.principal, self.webhooks.shared.reads.me()),
                id: hook.id,
                catalog: hook.catalog,
                target: hook.target,
                role: hook.role,
                purpose: hook.purpose,
                grant: hook.grant,
                url: hook.url,
                hmac: hook.secret.is_some(),
                resume_token,
                pending,
                dead,
                stopped: hook.stopped,
                created_at_micros: hook.created_at_micros,
            })
            .collect();
        Ok(Response::new(WebhookList { webhooks }))
    }

    async fn remove(
        &self,
        request: Request<RemoveWebhookRequest>,
    ) -> Result<Response<RemoveWebhookResponse>, Status> {
        let dropped = self.webhooks.remove(&request.into_inner().id).await?;
        Ok(Response::new(RemoveWebhookResponse { dropped }))
    }

    async fn dead_letters(
        &self,
        request: Request<DeadLettersRequest>,
    ) -> Result<Response<DeadLetterList>, Status> {
        let request = request.into_inner();
        let letters = self
            .webhooks
            .dead(blank(&request.webhook))?
            .into_iter()
            .map(|(webhook, d)| DeadLetter {
                webhook,
                id: d.id,
                attempts: d.attempts,
                last_error: d.last_error,
                dead_at_micros: d.dead_at_micros,
                records: d.records,
                resume_token: d.resume_token,
            })
            .collect();
        Ok(Response::new(DeadLetterList { letters }))
    }

    async fn replay(
        &self,
        request: Request<ReplayRequest>,
    ) -> Result<Response<ReplayResponse>, Status> {
        let request = request.into_inner();
        let replayed = self
            .webhooks
            .replay(&request.webhook, blank(&request.delivery))
            .await?;
        Ok(Response::new(ReplayResponse { replayed }))
    }

    async fn resume(
        &self,
        request: Request<ResumeWebhookRequest>,
    ) -> Result<Response<ResumeWebhookResponse>, Status> {
        let request = request.into_inner();
        let (stopped, pending) = self
            .webhooks
            .resume(&request.webhook, blank(&request.token))
            .await?;
        Ok(Response::new(ResumeWebhookResponse { stopped, pending }))
    }
}
