//! The single writer: one thread owns the store's write connection and
//! takes requests from the async side over a bounded channel. Batches that
//! queue up while a transaction commits are stored together in the next
//! one (a refused batch writes nothing), so one fsync covers several batches
//! under load without delaying any batch when idle.

use acelogic_domain::Reason;
use std::thread::JoinHandle;

use ed25519_dalek::VerifyingKey;
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    audit_log::QueryRow,
    now_unix_nano, refusal,
    store::{self, Committed, Enrollment, Store, WriteError},
    verify::CheckedBatch,
};
use acelogic_domain::Refusal;
use acelogic_domain::artifact::SecretKey;
use acelogic_lineage::{
    chain::{GENESIS, Hash},
    note,
};

/// Most batches stored in one transaction.
const GROUP_BATCHES: usize = 32;
/// Most entries stored in one transaction.
const GROUP_ENTRIES: usize = 32 * 1024;

type Reply<T> = oneshot::Sender<T>;

enum Op {
    Identify {
        node: String,
        journal_id: [u8; 16],
        key: VerifyingKey,
        accept_new: bool,
        acked: Option<Box<note::Head>>,
        reply: Reply<Result<Welcome, Refusal>>,
    },
    Commit {
        batch: CheckedBatch,
        continues: bool,
        reply: Reply<Result<Committed, Refusal>>,
    },
    Checkpoint {
        reply: Reply<Result<usize, String>>,
    },
    SetMeta {
        key: &'static str,
        value: i64,
        reply: Reply<Result<(), String>>,
    },
    /// Audit rows of queries (`audit_log.rs`).
    Queries {
        rows: Vec<QueryRow>,
        reply: Reply<Result<(), String>>,
    },
    Shutdown,
}

/// The answer to a Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub enrollment: Enrollment,
    pub next_seq: u64,
    pub head_hash: Hash,
    /// The node had more acknowledged than the store holds (the alarm is
    /// stored): why.
    pub cut: Option<String>,
}

/// A handle on the writer thread.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
    stored: watch::Receiver<u64>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Identify { .. } => "Identify",
            Self::Commit { .. } => "Commit",
            Self::Checkpoint { .. } => "Checkpoint",
            Self::SetMeta { .. } => "SetMeta",
            Self::Queries { .. } => "Queries",
            Self::Shutdown => "Shutdown",
        })
    }
}

fn gone() -> Refusal {
    refusal(
        Reason::ShuttingDown,
        "the collector is stopping; reconnect later",
    )
}

fn store_failed(e: &rusqlite::Error) -> Refusal {
    tracing::error!(error = %e, "collector store write failed");
    refusal(
        Reason::StoreFailed,
        format!("the collector could not store the batch ({e}); nothing was stored"),
    )
}

impl Writer {
    /// Starts the writer thread over `store`; `key` signs checkpoints.
    pub fn spawn(store: Store, key: SecretKey) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(64);
        let (stored_tx, stored) = watch::channel(0);
        let thread = std::thread::Builder::new()
            .name("collector-writer".into())
            .spawn(move || run(store, &key, rx, &stored_tx))?;
        Ok((Self { tx, stored }, thread))
    }

    /// Changes after every commit that stored records.
    #[must_use]
    pub fn stored(&self) -> watch::Receiver<u64> {
        self.stored.clone()
    }

    /// Whether the writer thread still takes requests.
    #[must_use]
    pub fn alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Checks a node's key (enrolling it on first use when allowed) and
    /// returns where its chain resumes.
    pub async fn identify(
        &self,
        node: String,
        journal_id: [u8; 16],
        key: VerifyingKey,
        accept_new: bool,
        acked: Option<note::Head>,
    ) -> Result<Welcome, Refusal> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Identify {
                node,
                journal_id,
                key,
                accept_new,
                acked: acked.map(Box::new),
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Queues a verified batch; the answer arrives once it is stored (or
    /// refused). Batches of one session are stored in the order queued.
    pub async fn commit(
        &self,
        batch: CheckedBatch,
        continues: bool,
    ) -> Result<oneshot::Receiver<Result<Committed, Refusal>>, Refusal> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Commit {
                batch,
                continues,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        Ok(rx)
    }

    /// Signs checkpoints of every chain whose head moved.
    pub async fn checkpoint(&self) -> Result<usize, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Checkpoint { reply })
            .await
            .map_err(|_| "the writer has stopped".to_owned())?;
        rx.await.map_err(|_| "the writer has stopped".to_owned())?
    }

    pub async fn set_meta(&self, key: &'static str, value: i64) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::SetMeta { key, value, reply })
            .await
            .map_err(|_| "the writer has stopped".to_owned())?;
        rx.await.map_err(|_| "the writer has stopped".to_owned())?
    }

    /// Stores audit rows of queries; answers once they are committed.
    pub async fn record_queries(&self, rows: Vec<QueryRow>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Queries { rows, reply })
            .await
            .map_err(|_| "the writer has stopped".to_owned())?;
        rx.await.map_err(|_| "the writer has stopped".to_owned())?
    }

    /// Asks the thread to finish what is queued and stop.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Op::Shutdown).await;
    }
}

type Pending = (CheckedBatch, bool, Reply<Result<Committed, Refusal>>);

fn run(mut store: Store, key: &SecretKey, mut rx: mpsc::Receiver<Op>, stored: &watch::Sender<u64>) {
    let mut held: Option<Op> = None;
    let mut total: u64 = 0;
    loop {
        let Some(op) = held.take().or_else(|| rx.blocking_recv()) else {
            return;
        };
        match op {
            Op::Commit {
                batch,
                continues,
                reply,
            } => {
                let mut entries = batch.entries.len();
                let mut group: Vec<Pending> = vec![(batch, continues, reply)];
                while group.len() < GROUP_BATCHES && entries < GROUP_ENTRIES {
                    match rx.try_recv() {
                        Ok(Op::Commit {
                            batch,
                            continues,
                            reply,
                        }) => {
                            entries += batch.entries.len();
                            group.push((batch, continues, reply));
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let refs: Vec<(&CheckedBatch, bool)> =
                    group.iter().map(|(b, c, _)| (b, *c)).collect();
                match store.commit_group(&refs, now_unix_nano()) {
                    Ok(results) => {
                        let n: u64 = results
                            .iter()
                            .filter_map(|r| r.as_ref().ok())
                            .map(|c| c.stored)
                            .sum();
                        for ((_, _, reply), result) in group.into_iter().zip(results) {
                            let _ = reply.send(result);
                        }
                        if n > 0 {
                            total += n;
                            stored.send_replace(total);
                        }
                    }
                    Err(e) => {
                        let r = store_failed(&e);
                        for (_, _, reply) in group {
                            let _ = reply.send(Err(r.clone()));
                        }
                    }
                }
            }
            Op::Identify {
                node,
                journal_id,
                key: node_key,
                accept_new,
                acked,
                reply,
            } => {
                let result = store
                    .identify(&node, &node_key, accept_new, now_unix_nano())
                    .and_then(|enrollment| {
                        let head = store::chain_head(store.conn(), &node, &journal_id)?;
                        let cut = match &acked {
                            Some(a) => store.check_acked(a, head, now_unix_nano())?,
                            None => None,
                        };
                        Ok(Welcome {
                            enrollment,
                            next_seq: head.map_or(1, |h| h.head_seq + 1),
                            head_hash: head.map_or(GENESIS, |h| h.head_hash),
                            cut,
                        })
                    })
                    .map_err(|e| match e {
                        WriteError::Refused(r) => r,
                        WriteError::Storage(e) => store_failed(&e),
                    });
                let _ = reply.send(result);
            }
            Op::Checkpoint { reply } => {
                let _ = reply.send(
                    store
                        .checkpoint(key, now_unix_nano())
                        .map_err(|e| e.to_string()),
                );
            }
            Op::SetMeta {
                key: k,
                value,
                reply,
            } => {
                let _ = reply.send(store.set_meta(k, value).map_err(|e| e.to_string()));
            }
            Op::Queries { rows, reply } => {
                // Rows queued behind these go in the same transaction.
                let mut rows = rows;
                let mut replies = vec![reply];
                while replies.len() < GROUP_BATCHES {
                    match rx.try_recv() {
                        Ok(Op::Queries { rows: more, reply }) => {
                            rows.extend(more);
                            replies.push(reply);
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let result = store.record_queries(&rows).map_err(|e| e.to_string());
                for reply in replies {
                    let _ = reply.send(result.clone());
                }
            }
            Op::Shutdown => {
                rx.close();
                // Batches still queued are refused, not stored: they were
                // never acknowledged, so their nodes send them again.
                while let Ok(op) = rx.try_recv() {
                    match op {
                        Op::Commit { reply, .. } => {
                            let _ = reply.send(Err(gone()));
                        }
                        Op::Queries { rows, reply } => {
                            // Audit rows are still stored: the queries were answered.
                            let _ =
                                reply.send(store.record_queries(&rows).map_err(|e| e.to_string()));
                        }
                        Op::Identify { .. }
                        | Op::Checkpoint { .. }
                        | Op::SetMeta { .. }
                        | Op::Shutdown => {}
                    }
                }
                return;
            }
        }
    }
}
