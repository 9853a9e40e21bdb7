//! Reaching the node daemon and the collector over gRPC, and the
//! single-threaded runtime a command's calls run on. Failing to connect
//! is exit 3, whichever command asked.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::{CtlError, CtlResult};
use acelogic_lineage::ship;
use acelogic_proto::{
    agent::agent_client::AgentClient, client, collector::query_client::QueryClient,
};

/// Where the collector is.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// CA certificate for an `https://` collector.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) to present.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Default collector URL.
pub const DEFAULT_COLLECTOR: &str = "http://127.0.0.1:7400";

/// Connects to the daemon's API socket.
pub(crate) async fn daemon(socket: &Path) -> CtlResult<AgentClient<Channel>> {
    client::connect(socket).await.map_err(|e| CtlError {
        exit: CtlError::UNREACHABLE,
        message: format!(
            "cannot reach the daemon at {}: {e} (is acelogic-agent running? --socket)",
            socket.display()
        ),
    })
}

/// Connects to the collector's `Query` service.
pub(crate) async fn collector(t: &Target) -> CtlResult<QueryClient<Channel>> {
    let mut ep = ship::endpoint(&t.url, t.ca.as_deref()).map_err(CtlError::input)?;
    if let Some((cert, key)) = &t.identity {
        let (Some(ca), true) = (&t.ca, t.url.starts_with("https://")) else {
            return Err(CtlError::input(
                "--collector-cert needs an https:// --collector and its --collector-ca",
            ));
        };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| CtlError::input(format!("{}: {e}", p.display())))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(ca)?))
            .identity(Identity::from_pem(read(cert)?, read(key)?));
        ep = ep
            .tls_config(tls)
            .map_err(|e| CtlError::input(format!("client certificate: {e}")))?;
    }
    let channel = ep.connect().await.map_err(|e| CtlError {
        exit: CtlError::UNREACHABLE,
        message: format!(
            "cannot reach the collector at {}: {e} (is acelogic-collector running? --collector)",
            t.url
        ),
    })?;
    Ok(QueryClient::new(channel).max_decoding_message_size(256 << 20))
}

/// Runs one command's calls to completion on a current-thread runtime.
pub(crate) fn block<T>(f: impl Future<Output = CtlResult<T>>) -> CtlResult<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CtlError::internal)?
        .block_on(f)
}
