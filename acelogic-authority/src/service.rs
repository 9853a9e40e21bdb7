//! The `Authority` gRPC service over the engine. Each call runs on a
//! blocking thread with the engine (SQLite commits and journal fsyncs
//! happen there), one at a time; a node's call that asked to wait sleeps
//! on the change notifier, not on the engine.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::watch;
use tonic::{Request, Response, Status};

use acelogic_domain::{Reason, Refusal};
use acelogic_proto::{
    authority::{self as pb, authority_server::AuthorityServer},
    relay::MAX_WAIT_MS,
    status_of,
};

use crate::engine::Engine;

/// The service: the engine and a counter bumped on every change, which
/// waiting calls watch.
#[derive(Debug, Clone)]
pub struct Service {
    engine: Arc<Mutex<Engine>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Service {
    #[must_use]
    pub fn new(engine: Arc<Mutex<Engine>>, changed: Arc<watch::Sender<u64>>) -> Self {
        Self { engine, changed }
    }

    #[must_use]
    pub fn server(self) -> AuthorityServer<Self> {
        AuthorityServer::new(self)
            .max_decoding_message_size(crate::request::MAX_REQUEST_BYTES + 4096)
    }

    /// Runs `f` with the engine on a blocking thread; `bump`: it may have
    /// changed something waiters care about.
    async fn with<T: Send + 'static>(
        &self,
        bump: bool,
        f: impl FnOnce(&mut Engine) -> Result<T, Refusal> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = Arc::clone(&self.engine);
        let out = tokio::task::spawn_blocking(move || {
            let mut e = engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut e)
        })
        .await
        .map_err(|e| Status::internal(format!("the authority's worker failed: {e}")))?;
        if bump {
            self.changed.send_modify(|n| *n += 1);
        }
        out.map_err(|r| status_of(&r))
    }

    /// Waits until `state` is settled or `wait` has passed. `rx` was
    /// subscribed before `state` was read, so a settlement in between is
    /// seen as a change rather than missed until the wait runs out.
    async fn settled(
        &self,
        mut state: pb::RequestState,
        wait: Duration,
        mut rx: watch::Receiver<u64>,
    ) -> Result<pb::RequestState, Status> {
        let deadline = Instant::now() + wait;
        while state.state == "pending" {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                break;
            }
            let id = state.request_id.clone();
            state = self.with(false, move |e| e.show(&id)).await?;
        }
        Ok(state)
    }
}

#[tonic::async_trait]
impl pb::authority_server::Authority for Service {
    async fn request(
        &self,
        req: Request<pb::NodeRequest>,
    ) -> Result<Response<pb::RequestState>, Status> {
        let nr = req.into_inner();
        let wait = Duration::from_millis(u64::from(nr.wait_ms.min(MAX_WAIT_MS)));
        // Subscribed before the call, so a settlement in between is seen.
        let rx = self.changed.subscribe();
        let state = self
            .with(true, move |e| e.request(&nr, SystemTime::now()))
            .await?;
        let state = self.settled(state, wait, rx).await?;
        if state.state == "issued" {
            let id = state.request_id.clone();
            self.with(false, move |e| e.delivered(&id, SystemTime::now()))
                .await?;
        }
        Ok(Response::new(state))
    }

    async fn list_requests(
        &self,
        req: Request<pb::ListRequestsRequest>,
    ) -> Result<Response<pb::ListRequestsResponse>, Status> {
        let r = req.into_inner();
        let requests = self.with(false, move |e| e.list(&r.state, r.limit)).await?;
        Ok(Response::new(pb::ListRequestsResponse { requests }))
    }

    async fn show_request(
        &self,
        req: Request<pb::ShowRequestRequest>,
    ) -> Result<Response<pb::RequestState>, Status> {
        let id = req.into_inner().request_id;
        if !crate::request::is_hex(&id, 32) {
            return Err(status_of(&Refusal::new(
                Reason::BadRequest,
                "request_id is not 32 lowercase hex digits",
            )));
        }
        Ok(Response::new(self.with(false, move |e| e.show(&id)).await?))
    }

    async fn approve(
        &self,
        req: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::RequestState>, Status> {
        let a = req.into_inner();
        Ok(Response::new(
            self.with(true, move |e| e.approve(&a, SystemTime::now()))
                .await?,
        ))
    }

    async fn deny(
        &self,
        req: Request<pb::DenyRequest>,
    ) -> Result<Response<pb::RequestState>, Status> {
        let d = req.into_inner();
        Ok(Response::new(
            self.with(true, move |e| e.deny(&d, SystemTime::now()))
                .await?,
        ))
    }
}
