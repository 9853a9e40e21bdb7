//! Connects to the daemon's Unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::agent::agent_client::AgentClient;

/// Opens a client on `socket`. The URI is a placeholder: every connection
/// goes to the socket.
pub async fn connect(socket: &Path) -> Result<AgentClient<Channel>, tonic::transport::Error> {
    let path: PathBuf = socket.to_path_buf();
    let channel = Endpoint::from_static("http://acelogic.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(AgentClient::new(channel))
}
