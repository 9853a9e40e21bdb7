//! The node side of shipping: stream the journal to the collector and
//! prune what it acknowledged.
//!
//! A session: connect, Hello (signed with the node key), read the
//! collector's resume point from Welcome, then keep up to `window` batches
//! in flight, sending new entries as the journal announces them. Each Ack
//! is an acknowledgement in the journal, which deletes the entries up to
//! it; nothing is deleted before the collector said it stored it. Welcome
//! itself acknowledges what the collector already holds (an Ack lost with
//! a dropped connection is recovered there). When the journal no longer
//! has the entries the collector asks for (it was pruned past them), the
//! session sends from the oldest entry it has and the collector records
//! the gap. Any error ends the session; the next starts after a backoff.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use acelogic_domain::artifact::{KeyFileError, Role, SecretKey};
use acelogic_proto::{
    collector::{self as pb, ingest_client::IngestClient, ship_request, ship_response},
    reason_of,
};

use crate::{
    journal::{JournalError, Shared},
    wire,
};

/// What the shipper runs with.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    /// CA certificate (PEM) that signed the collector's certificate; needed
    /// for `https://`.
    pub ca: Option<PathBuf>,
    /// The node key file (see [`load_or_create_key`]).
    pub key: PathBuf,
    /// Where the node keeps the newest head the collector acknowledged,
    /// signed with the node key ([`crate::note`]); `acked-head.note`
    /// beside the key by default.
    pub acked_head: PathBuf,
    /// Entries per batch.
    pub max_batch_entries: usize,
    /// About this many record bytes per batch.
    pub max_batch_bytes: usize,
    /// Batches sent and not yet acknowledged.
    pub window: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl ShipConfig {
    /// Defaults for everything but where to ship and the key.
    #[must_use]
    pub fn new(endpoint: impl Into<String>, key: impl Into<PathBuf>) -> Self {
        let key: PathBuf = key.into();
        Self {
            endpoint: endpoint.into(),
            ca: None,
            acked_head: key.with_file_name(ACKED_HEAD_FILE),
            key,
            max_batch_entries: 1024,
            max_batch_bytes: 1 << 20,
            window: 4,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// File name of the node's signed acknowledged head, beside its key.
pub const ACKED_HEAD_FILE: &str = "acked-head.note";

/// Writes `note` to `path` so a crash leaves the old note or the new one,
/// never a mix: a temporary file, fsync, rename, fsync of the directory.
pub fn write_note(path: &Path, note: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("note.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(note.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The head the node last had acknowledged, when its note is there and
/// signed by `key` for `journal_id`.
fn last_acked(path: &Path, key: &SecretKey, journal_id: &[u8]) -> Option<crate::note::Head> {
    let text = std::fs::read_to_string(path).ok()?;
    match crate::note::open(&text, &key.public()) {
        Ok(h) if h.journal_id.as_slice() == journal_id => Some(h),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable acknowledged-head note");
            None
        }
    }
}

/// Signs and keeps the head the collector acknowledged. The write and its
/// fsyncs run on a blocking thread (not the runtime's, which may also be
/// draining the kernel's ring) and are awaited, so notes land in order.
async fn keep_acked(
    config: &ShipConfig,
    key: &SecretKey,
    id: &crate::journal::Identity,
    seq: u64,
    hash: &[u8],
) {
    let Ok(hash) = <[u8; 32]>::try_from(hash) else {
        return;
    };
    let note = crate::note::Head {
        node: id.node.clone(),
        journal_id: id.journal_id,
        seq,
        hash,
        time_unix_nano: wire::now_unix_nano(),
        log: None,
    }
    .sign(key);
    let path = config.acked_head.clone();
    let written = tokio::task::spawn_blocking(move || write_note(&path, &note)).await;
    if let Err(e) = written
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
    {
        tracing::error!(path = %config.acked_head.display(), error = %e, "could not keep the acknowledged head");
    }
}

/// The shipper's state, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipStatus {
    /// A session is open (Welcome received).
    pub connected: bool,
    /// Highest seq the collector acknowledged.
    pub acked_seq: u64,
    /// The journal's head.
    pub head_seq: u64,
    /// Entries and record bytes journaled but not yet acknowledged.
    pub lag_entries: u64,
    pub lag_bytes: u64,
    /// Why the last session ended, and its reason code when the collector
    /// refused.
    pub last_error: Option<String>,
    pub last_reason: Option<String>,
    /// Sessions opened so far.
    pub sessions: u64,
}

/// Why the shipper cannot run at all.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("node key: {0}")]
    Key(#[from] KeyFileError),
    #[error("collector endpoint: {0}")]
    Endpoint(String),
}

/// The endpoint for `url` (`http://` or `https://`, the latter verified
/// against the CA in `ca`).
pub fn endpoint(url: &str, ca: Option<&Path>) -> Result<Endpoint, String> {
    let ep =
        Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let ep = match ep.uri().scheme_str() {
        Some("http") => ep,
        Some("https") => {
            let Some(ca) = ca else {
                return Err(format!(
                    "{url}: https needs the CA certificate that signed the server's (a CA file option)"
                ));
            };
            let pem = std::fs::read(ca).map_err(|e| format!("CA file {}: {e}", ca.display()))?;
            ep.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| format!("TLS: {e}"))?
        }
        _ => return Err(format!("{url}: the scheme must be http or https")),
    };
    Ok(ep
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20)))
}

/// Reads the node key, or creates it (mode 0600) on first start. Returns
/// the key and whether it is new; a new key's enrollment entry is logged.
pub fn load_or_create_key(path: &Path, node: &str) -> Result<(SecretKey, bool), KeyFileError> {
    match SecretKey::read(path) {
        Ok(k) => Ok((k, false)),
        Err(KeyFileError::Io { .. }) if !path.exists() => {
            let name = if node.parse::<acelogic_domain::artifact::Name>().is_ok() {
                node
            } else {
                "node"
            };
            let key = SecretKey::generate(name, Role::Lineage)?;
            key.write_new(path)?;
            tracing::warn!(
                path = %path.display(),
                entry = %wire::entry_yaml(node, &key.public()),
                "created the node key; enroll it with the collector (--nodes)"
            );
            Ok((key, true))
        }
        Err(e) => Err(e),
    }
}

/// Ships `journal` to the collector until the task is dropped. Returns
/// only when it cannot run at all (unreadable key, bad endpoint).
pub async fn run(
    config: ShipConfig,
    journal: Arc<Shared>,
    status: watch::Sender<ShipStatus>,
) -> Result<(), ShipError> {
    let key = SecretKey::read(&config.key)?;
    let endpoint = endpoint(&config.endpoint, config.ca.as_deref()).map_err(ShipError::Endpoint)?;
    let mut backoff = config.backoff_min;
    loop {
        let mut acked_any = false;
        let end = session(&config, &key, &journal, &status, &endpoint, &mut acked_any).await;
        let (why, reason) = match end {
            SessionEnd::Refused { reason, why } => (why, reason),
            SessionEnd::Failed(why) => (why, None),
        };
        tracing::warn!(reason = reason.as_deref().unwrap_or(""), why = %why, retry_in = ?backoff, "shipping session ended");
        status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(why);
            s.last_reason = reason;
        });
        if acked_any {
            backoff = config.backoff_min;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

enum SessionEnd {
    Refused { reason: Option<String>, why: String },
    Failed(String),
}

impl From<tonic::Status> for SessionEnd {
    fn from(s: tonic::Status) -> Self {
        Self::Refused {
            reason: reason_of(&s),
            why: s.message().to_owned(),
        }
    }
}

impl From<JournalError> for SessionEnd {
    fn from(e: JournalError) -> Self {
        Self::Failed(format!("journal: {e}"))
    }
}

async fn blocking<T: Send + 'static>(
    journal: &Arc<Shared>,
    f: impl FnOnce(&mut super::journal::Journal) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, SessionEnd> {
    let j = Arc::clone(journal);
    tokio::task::spawn_blocking(move || f(&mut j.lock()))
        .await
        .map_err(|e| SessionEnd::Failed(e.to_string()))?
        .map_err(SessionEnd::from)
}

fn refresh(journal: &Arc<Shared>, status: &watch::Sender<ShipStatus>) {
    let j = journal.lock();
    let (head, acked, bytes) = (j.head().0, j.acked(), j.pending_bytes());
    drop(j);
    status.send_modify(|s| {
        s.head_seq = head;
        s.acked_seq = acked;
        s.lag_entries = head.saturating_sub(acked);
        s.lag_bytes = bytes;
    });
}

async fn session(
    config: &ShipConfig,
    key: &SecretKey,
    journal: &Arc<Shared>,
    status: &watch::Sender<ShipStatus>,
    endpoint: &Endpoint,
    acked_any: &mut bool,
) -> SessionEnd {
    match session_inner(config, key, journal, status, endpoint, acked_any).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn session_inner(
    config: &ShipConfig,
    key: &SecretKey,
    journal: &Arc<Shared>,
    status: &watch::Sender<ShipStatus>,
    endpoint: &Endpoint,
    acked_any: &mut bool,
) -> Result<std::convert::Infallible, SessionEnd> {
    refresh(journal, status);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| SessionEnd::Failed(format!("connecting to {}: {e}", config.endpoint)))?;
    let mut client = IngestClient::new(channel);
    let id = journal.lock().identity().clone();
    let (tx, rx) = mpsc::channel(config.window + 2);
    let mut hello = wire::make_hello(key, &id.node, &id.journal_id, wire::now_unix_nano());
    let kept = last_acked(&config.acked_head, key, &id.journal_id);
    if let Some(k) = &kept {
        // The collector checks it still holds what it acknowledged.
        hello.acked_head = k.sign(key);
    }
    let closed = || SessionEnd::Failed("the session closed".into());
    tx.send(pb::ShipRequest {
        msg: Some(ship_request::Msg::Hello(hello)),
    })
    .await
    .map_err(|_| closed())?;
    let mut inbound = client.ship(ReceiverStream::new(rx)).await?.into_inner();
    let Some(pb::ShipResponse {
        msg: Some(ship_response::Msg::Welcome(welcome)),
    }) = inbound.message().await?
    else {
        return Err(SessionEnd::Failed(
            "the collector did not answer Hello with Welcome".into(),
        ));
    };
    let holds = welcome.next_seq.saturating_sub(1);
    if let Some(kept) = &kept
        && kept.seq > holds
    {
        // The collector acknowledged more than it now holds: its store
        // lost (or someone removed) acknowledged records. Say so loudly;
        // the signed head is the evidence `lineage verify --anchors` takes.
        tracing::error!(
            collector_holds = holds,
            acknowledged = kept.seq,
            note = %config.acked_head.display(),
            "the collector holds this journal only up to seq {holds} but acknowledged seq {}: \
             seq {}..={} were removed from its store after they were stored",
            kept.seq,
            holds + 1,
            kept.seq
        );
    }
    let (first, head) = {
        let j = journal.lock();
        (j.first_stored()?, j.head().0)
    };
    if holds > head {
        return Err(SessionEnd::Failed(format!(
            "the collector holds this journal up to seq {holds}, past its head {head}; \
             the journal was restored from an old copy"
        )));
    }
    if holds > 0 && holds >= first {
        let at = blocking(journal, move |j| j.read_after(holds - 1, 1, 1)).await?;
        if let Some(e) = at.first()
            && e.seq == holds
            && e.hash != welcome.head_hash
        {
            return Err(SessionEnd::Refused {
                reason: Some("diverged".into()),
                why: format!(
                    "the collector's seq {holds} differs from this journal's; not shipping"
                ),
            });
        }
    }
    // What the collector holds is stored: prune it here too.
    blocking(journal, move |j| j.acknowledge(holds)).await?;
    // Checked above against this journal's own entry; never moved back,
    // so a collector that lost acknowledged records cannot erase the
    // evidence by acknowledging less.
    if holds > 0 && holds >= first && kept.as_ref().is_none_or(|k| holds > k.seq) {
        keep_acked(config, key, &id, holds, &welcome.head_hash).await;
    }
    let mut sent = if first > holds + 1 {
        tracing::warn!(
            collector_holds = holds,
            oldest_here = first,
            "the journal no longer has seq {}..={}; the collector records a gap",
            holds + 1,
            first - 1
        );
        first - 1
    } else {
        holds
    };
    status.send_modify(|s| {
        s.connected = true;
        s.sessions += 1;
        s.last_error = None;
        s.last_reason = None;
    });
    refresh(journal, status);
    tracing::info!(node = %id.node, resume_after = sent, "shipping session open");

    let mut heads = journal.subscribe();
    // (last seq, its hash) of each batch in flight.
    let mut in_flight: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    loop {
        while in_flight.len() < config.window {
            let (max_e, max_b) = (config.max_batch_entries, config.max_batch_bytes);
            let after = sent;
            let entries = blocking(journal, move |j| j.read_after(after, max_e, max_b)).await?;
            let Some((last, last_hash)) = entries.last().map(|e| (e.seq, e.hash.clone())) else {
                break;
            };
            let signature = wire::sign_batch(key, &id.node, &id.journal_id, &entries);
            tx.send(pb::ShipRequest {
                msg: Some(ship_request::Msg::Batch(pb::Batch { entries, signature })),
            })
            .await
            .map_err(|_| closed())?;
            sent = last;
            in_flight.push_back((last, last_hash));
        }
        tokio::select! {
            msg = inbound.message() => {
                match msg? {
                    Some(pb::ShipResponse { msg: Some(ship_response::Msg::Ack(ack)) }) => {
                        let Some(hash) = in_flight.iter().find(|(s, _)| *s == ack.seq).map(|(_, h)| h.clone()) else {
                            return Err(SessionEnd::Failed(format!(
                                "the collector acknowledged seq {}, which ends no batch in flight",
                                ack.seq
                            )));
                        };
                        while in_flight.front().is_some_and(|(s, _)| *s <= ack.seq) {
                            in_flight.pop_front();
                        }
                        let seq = ack.seq;
                        blocking(journal, move |j| j.acknowledge(seq)).await?;
                        keep_acked(config, key, &id, seq, &hash).await;
                        *acked_any = true;
                        refresh(journal, status);
                    }
                    Some(_) => return Err(SessionEnd::Failed("unexpected message from the collector".into())),
                    None => return Err(SessionEnd::Failed("the collector ended the session".into())),
                }
            }
            changed = heads.changed(), if in_flight.len() < config.window => {
                if changed.is_err() {
                    return Err(SessionEnd::Failed("the journal was closed".into()));
                }
                refresh(journal, status);
            }
        }
    }
}
