//! Requests relayed to the authority (`--authority`): signed with the
//! node key, sent again unchanged while the caller waits (the authority
//! answers the same request id with its current state), retried while
//! the authority cannot be reached.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use tonic::transport::Endpoint;

use acelogic_domain::{Reason, Refusal, artifact::SecretKey};
use acelogic_proto::{
    authority::{ArtifactRequest, RequestState, authority_client::AuthorityClient},
    reason_of, relay,
};

/// The longest one call to the authority waits; a longer wait is several.
const CHUNK: Duration = Duration::from_secs(30);
/// Pause before a retry after the authority could not be reached.
const RETRY: Duration = Duration::from_millis(500);

/// Where requests go, and the key that vouches for them.
#[derive(Debug)]
pub struct Relay {
    pub url: String,
    endpoint: Endpoint,
    key: SecretKey,
    /// This node's name, as enrolled at the authority.
    pub node: String,
}

impl Relay {
    /// `url` (http:// or https:// with `ca`), the node key file.
    pub fn new(url: &str, ca: Option<&Path>, key: &Path, node: &str) -> anyhow::Result<Self> {
        let endpoint = acelogic_lineage::ship::endpoint(url, ca)
            .map_err(|e| anyhow::anyhow!("--authority: {e}"))?;
        let key = SecretKey::read(key)
            .map_err(|e| anyhow::anyhow!("the node key {}: {e}", key.display()))?;
        Ok(Self {
            url: url.to_owned(),
            endpoint,
            key,
            node: node.to_owned(),
        })
    }

    /// Sends `request` and waits up to `wait` for it to be settled.
    pub async fn ask(
        &self,
        request: &ArtifactRequest,
        wait: Duration,
    ) -> Result<RequestState, Refusal> {
        let deadline = Instant::now() + wait;
        let mut last_error = String::new();
        let mut tries = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = left.min(CHUNK);
            let signed = relay::sign_request(
                &self.key,
                request,
                u32::try_from(chunk.as_millis()).unwrap_or(relay::MAX_WAIT_MS),
            );
            tries += 1;
            let answer = match self.endpoint.connect().await {
                Ok(channel) => AuthorityClient::new(channel).request(signed).await,
                Err(e) => {
                    last_error = format!("cannot reach {}: {e}", self.url);
                    Err(tonic::Status::unavailable(last_error.clone()))
                }
            };
            match answer {
                Ok(r) => {
                    let state = r.into_inner();
                    if state.state != "pending" || Instant::now() >= deadline {
                        return Ok(state);
                    }
                }
                Err(s) => {
                    if let Some(code) = reason_of(&s) {
                        let reason = code.parse().unwrap_or(Reason::AuthorityUnavailable);
                        let why = s
                            .message()
                            .strip_prefix(&format!("{code}: "))
                            .unwrap_or(s.message());
                        return Err(Refusal::new(
                            reason,
                            format!("the authority refused: {why}"),
                        ));
                    }
                    if last_error.is_empty() || s.code() != tonic::Code::Unavailable {
                        last_error = format!("{}: {:?} {}", self.url, s.code(), s.message());
                    }
                    if Instant::now() + RETRY >= deadline && tries >= 2 {
                        return Err(Refusal::new(
                            Reason::AuthorityUnavailable,
                            format!("the authority did not answer: {last_error}"),
                        ));
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}
