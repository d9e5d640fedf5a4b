//! The `tierlink.v1.Directory` client side, over the same mutual TLS as every other call.

use tierlink_core::config::Credentials;
use tierlink_proto::v1::directory_client::DirectoryClient;
use tonic::transport::Channel;

use crate::{ClientError, MAX_MESSAGE_BYTES, channel};

/// A directory client of the node at `endpoint`, with the given node credentials.
pub async fn connect(
    credentials: &Credentials,
    endpoint: &str,
) -> Result<DirectoryClient<Channel>, ClientError> {
    Ok(DirectoryClient::new(channel(credentials, endpoint).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}
