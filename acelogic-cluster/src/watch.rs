//! Leases this node holds that end early: a holder deleted by an
//! administrator's release, by its lease, or by anyone else. The daemon
//! removes the kernel grant at once; a grant never outlives its lease.

use std::time::Duration;

use etcd_client::{EventType, WatchFilterType, WatchOptions};
use tokio::sync::mpsc;

use crate::{
    EtcdStore,
    keys::{self, Entry, Holder},
};

/// What the daemon hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// This node's holder of `key` (the claim with `token`) is gone.
    Holder {
        key: String,
        artifact: String,
        token: u64,
    },
    /// The watch was (re)established: events may have been missed while
    /// it was down, so every held key must be checked again.
    Resync,
}

/// Watches the store for holders of `node` that are deleted; runs until
/// the receiver is dropped. Reconnects after a failure and says
/// [`Lost::Resync`] each time it (re)starts.
#[must_use]
pub fn watch_lost(store: EtcdStore, node: String) -> mpsc::Receiver<Lost> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            if tx.is_closed() {
                return;
            }
            match run(&store, &node, &tx).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "the watch on held operation keys failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
    rx
}

/// One watch: `Ok` when the receiver is gone.
async fn run(store: &EtcdStore, node: &str, tx: &mpsc::Sender<Lost>) -> Result<(), crate::Error> {
    let mut client = store.client.watch_client();
    let prefix = store.layout.ops();
    let mut stream = store
        .bounded(async {
            Ok(client
                .watch(
                    prefix,
                    Some(
                        WatchOptions::new()
                            .with_prefix()
                            .with_prev_key()
                            .with_filters([WatchFilterType::NoPut])
                            .with_progress_notify(),
                    ),
                )
                .await?)
        })
        .await?;
    if tx.send(Lost::Resync).await.is_err() {
        return Ok(());
    }
    loop {
        let Some(resp) = stream.message().await? else {
            return Err(crate::Error::Refused("etcd ended the watch".to_owned()));
        };
        if resp.canceled() {
            return Err(crate::Error::Refused(format!(
                "etcd cancelled the watch: {}",
                resp.cancel_reason()
            )));
        }
        for ev in resp.events() {
            if ev.event_type() != EventType::Delete {
                continue;
            }
            let Some(prev) = ev.prev_kv() else {
                // Compacted before we saw it: check everything again.
                if tx.send(Lost::Resync).await.is_err() {
                    return Ok(());
                }
                continue;
            };
            let Some((key, Entry::Holder)) = store.layout.parse_op(prev.key()) else {
                continue;
            };
            let Ok(holder) = keys::decode::<Holder>(prev.key(), prev.value()) else {
                continue;
            };
            if holder.node != node {
                continue;
            }
            let lost = Lost::Holder {
                key,
                artifact: holder.artifact,
                token: u64::try_from(prev.create_revision()).unwrap_or(0),
            };
            if tx.send(lost).await.is_err() {
                return Ok(());
            }
        }
    }
}
