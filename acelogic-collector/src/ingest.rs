//! The `Ingest` service: one task per shipping session.
//!
//! Hello (checked, node identified, resume point answered), then batches:
//! each is checked on a blocking thread (decode, hashes, signature) while
//! the writer stores the previous ones, and acknowledged in order once its
//! transaction committed. The first refusal ends the session with
//! `"<code>: <why>"` and the `acelogic-reason` metadata; batches queued
//! behind a refused one are refused by the writer too (they no longer
//! continue the stored chain), so nothing after a refusal is stored.

use acelogic_domain::Reason;
use std::{pin::Pin, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use super::{
    metrics::Metrics,
    now_unix_nano,
    pb::{self, ship_request::Msg, ship_response},
    refusal, status_of,
    store::{Committed, Enrollment},
    verify::{self, Limits},
    writer::Writer,
};
use acelogic_domain::Refusal;

/// How long a new session may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches of one session verified or queued but not yet acknowledged.
const IN_FLIGHT: usize = 8;

/// What the service needs.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub accept_new_nodes: bool,
    /// How far a Hello's time may be from the collector's.
    pub clock_skew: Duration,
    /// Turns true when the collector stops: sessions end.
    pub shutdown: watch::Receiver<bool>,
}

type Out = mpsc::Sender<Result<pb::ShipResponse, Status>>;

impl Ingest {
    /// The generated server, with the decoding limit set so a message
    /// larger than a full batch is refused before it is read.
    #[must_use]
    pub fn server(self) -> pb::ingest_server::IngestServer<Self> {
        let max = self.limits.max_message_bytes();
        pb::ingest_server::IngestServer::new(self).max_decoding_message_size(max)
    }
}

/// A message from the node; transport errors become refusals where the
/// node is still there to hear them.
async fn next(inbound: &mut Streaming<pb::ShipRequest>) -> Result<Option<Msg>, Refusal> {
    match inbound.message().await {
        Ok(Some(pb::ShipRequest { msg: Some(m) })) => Ok(Some(m)),
        Ok(Some(pb::ShipRequest { msg: None })) => Err(refusal(
            Reason::BadRequest,
            "a ShipRequest holds a Hello or a Batch",
        )),
        Ok(None) => Ok(None),
        Err(s) if s.code() == tonic::Code::OutOfRange => {
            Err(refusal(Reason::Oversized, s.message()))
        }
        Err(s) if s.code() == tonic::Code::Internal && s.message().contains("decode") => {
            Err(refusal(
                Reason::Undecodable,
                format!("the message is not a ShipRequest: {}", s.message()),
            ))
        }
        Err(s) => Err(refusal(
            Reason::BadRequest,
            format!("stream error: {}", s.message()),
        )),
    }
}

impl Ingest {
    async fn session(self, mut inbound: Streaming<pb::ShipRequest>, out: Out) {
        self.metrics.session_opened();
        let mut node = String::new();
        let result = self.run(&mut inbound, &out, &mut node).await;
        self.metrics.session_closed();
        if let Err(r) = result {
            self.metrics.rejected(r.code.as_str());
            tracing::warn!(node = %node, reason = %r.code, why = %r.why, "shipping session refused");
            let _ = out.send(Err(status_of(&r))).await;
        }
    }

    async fn run(
        &self,
        inbound: &mut Streaming<pb::ShipRequest>,
        out: &Out,
        node: &mut String,
    ) -> Result<(), Refusal> {
        let first = tokio::time::timeout(HELLO_TIMEOUT, next(inbound))
            .await
            .map_err(|_| refusal(Reason::BadRequest, "no Hello within 30 s"))??;
        let Some(Msg::Hello(h)) = first else {
            return Err(refusal(
                Reason::BadRequest,
                "the first message of a session must be Hello",
            ));
        };
        let hello = verify::check_hello(&h, now_unix_nano(), self.clock_skew)?;
        node.clone_from(&hello.node);
        let acked = verify::check_acked_head(&h.acked_head, &hello)?;
        let welcome = self
            .writer
            .identify(
                hello.node.clone(),
                hello.journal_id,
                hello.key,
                self.accept_new_nodes,
                acked,
            )
            .await?;
        if let Some(why) = &welcome.cut {
            self.metrics.alarm("tail-cut");
            tracing::error!(node = %hello.node, journal = %hex::encode(hello.journal_id), "{why}");
        }
        if welcome.enrollment == Enrollment::New {
            self.metrics.alarm("node-enrolled");
            tracing::warn!(
                node = %hello.node,
                key = %hex::encode(hello.key.as_bytes()),
                "enrolled a new node on first use (--accept-new-nodes)"
            );
        }
        tracing::info!(
            node = %hello.node,
            journal = %hex::encode(hello.journal_id),
            next_seq = welcome.next_seq,
            "shipping session open"
        );
        send(
            out,
            ship_response::Msg::Welcome(pb::Welcome {
                next_seq: welcome.next_seq,
                head_hash: welcome.head_hash.to_vec(),
            }),
        )
        .await?;

        let (acks_tx, acks_rx) = mpsc::channel(IN_FLIGHT);
        let mut forwarder = tokio::spawn(forward_acks(
            acks_rx,
            out.clone(),
            Arc::clone(&self.metrics),
            hello.node.clone(),
        ));
        let mut shutdown = self.shutdown.clone();
        let mut last: Option<u64> = None;
        let hello = Arc::new(hello);
        let ended = loop {
            let msg = tokio::select! {
                done = &mut forwarder => {
                    return done.unwrap_or_else(|e| Err(refusal(Reason::StoreFailed, e.to_string())));
                }
                _ = shutdown.wait_for(|stop| *stop) => {
                    break Err(refusal(Reason::ShuttingDown, "the collector is stopping; reconnect later"));
                }
                msg = next(inbound) => msg,
            };
            let batch = match msg {
                Err(r) => break Err(r),
                Ok(None) => break Ok(()),
                Ok(Some(Msg::Hello(_))) => {
                    break Err(refusal(Reason::BadRequest, "Hello comes once, first"));
                }
                Ok(Some(Msg::Batch(b))) => b,
            };
            let h = Arc::clone(&hello);
            let limits = self.limits;
            let checked =
                tokio::task::spawn_blocking(move || verify::check_batch(&h, batch, limits))
                    .await
                    .map_err(|e| refusal(Reason::StoreFailed, e.to_string()))?;
            let checked = match checked {
                Ok(c) => c,
                Err(r) => break Err(r),
            };
            if let Some(l) = last
                && checked.first_seq() != l + 1
            {
                break Err(refusal(
                    Reason::BrokenChain,
                    format!(
                        "the batch starts at seq {} but the previous one ended at seq {l}",
                        checked.first_seq()
                    ),
                ));
            }
            let continues = last.is_some();
            last = Some(checked.last_seq());
            let rx = self.writer.commit(checked, continues).await?;
            if acks_tx.send(rx).await.is_err() {
                break Ok(());
            }
        };
        drop(acks_tx);
        // Acknowledge what was stored before the end, then report the end.
        let forwarded = forwarder
            .await
            .unwrap_or_else(|e| Err(refusal(Reason::StoreFailed, e.to_string())));
        ended.and(forwarded)
    }
}

async fn send(out: &Out, msg: ship_response::Msg) -> Result<(), Refusal> {
    out.send(Ok(pb::ShipResponse { msg: Some(msg) }))
        .await
        .map_err(|_| refusal(Reason::BadRequest, "the node closed the session"))
}

async fn forward_acks(
    mut acks: mpsc::Receiver<oneshot::Receiver<Result<Committed, Refusal>>>,
    out: Out,
    metrics: Arc<Metrics>,
    node: String,
) -> Result<(), Refusal> {
    while let Some(rx) = acks.recv().await {
        let c = rx
            .await
            .map_err(|_| refusal(Reason::ShuttingDown, "the collector is stopping"))??;
        metrics.committed(&node, c.stored, c.skipped, c.newest_unix_nano);
        if let Some((from, to)) = c.gap {
            metrics.gap(&node, from, to);
            tracing::warn!(node = %node, from, to, "gap: the node no longer had these records");
        }
        if c.journal_reset {
            metrics.alarm("journal-reset");
            tracing::warn!(node = %node, "journal reset: the node started a new chain");
        }
        send(&out, ship_response::Msg::Ack(pb::Ack { seq: c.last_seq })).await?;
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for Ingest {
    type ShipStream = Pin<Box<dyn Stream<Item = Result<pb::ShipResponse, Status>> + Send>>;

    async fn ship(
        &self,
        req: Request<Streaming<pb::ShipRequest>>,
    ) -> Result<Response<Self::ShipStream>, Status> {
        let (tx, rx) = mpsc::channel(IN_FLIGHT + 2);
        tokio::spawn(self.clone().session(req.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
