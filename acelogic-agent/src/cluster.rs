//! The daemon's side of the cluster store (`--etcd-endpoints`): claims
//! are asked between the two halves of a submission, off the state
//! owner's thread; a task carries out the outbox of settlements, probes
//! the store and reports its health; another hears of leases this node
//! held that ended early and removes their kernel grants at once.
//!
//! Fail closed: while the store does not answer, artifacts that need it
//! are refused `cluster-store-unavailable` (the engine decides that from
//! the missing answer); grants already installed and baselines keep
//! working until their own expiry. The state is shown in `status`,
//! `/readyz`, the metrics and a lineage record at each change.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use acelogic_authz::state::{Outcome, Record};
use acelogic_cluster::{ClusterAnswer, ClusterClaim, EtcdStore, Lost};
use acelogic_domain::Reason;
use tokio::sync::Notify;

use crate::{metrics::Metrics, owner::NodeHandle};

/// How often the store is probed when nothing else spoke to it.
const PROBE: Duration = Duration::from_secs(2);

/// What the node knows of the store, shared by the API, the tasks and
/// the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Health {
    /// The last call answered (`None`: not tried yet).
    pub up: Option<bool>,
    /// Why the last call failed.
    pub last_error: String,
    /// Settlements waiting in the outbox.
    pub pending: u64,
    pub endpoints: Vec<String>,
    pub prefix: String,
}

/// The store and what the daemon keeps about it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub store: EtcdStore,
    health: Arc<Mutex<Health>>,
    kick: Arc<Notify>,
}

impl Cluster {
    #[must_use]
    pub fn new(store: EtcdStore, config: &acelogic_cluster::Config) -> Self {
        Self {
            store,
            health: Arc::new(Mutex::new(Health {
                endpoints: config.endpoints.clone(),
                prefix: config.prefix.clone(),
                ..Health::default()
            })),
            kick: Arc::new(Notify::new()),
        }
    }

    #[must_use]
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks the store for a claim; no answer makes the settlement task
    /// probe at once, so the change of health is recorded now.
    pub async fn claim(&self, c: &ClusterClaim) -> ClusterAnswer {
        let answer = self.store.claim(c).await;
        if matches!(answer, ClusterAnswer::Unavailable { .. }) {
            self.kick();
        }
        answer
    }

    /// The outbox has something new: send it now, not at the next probe.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Records a call's outcome; returns the health before, when it
    /// changed between up and down.
    fn saw(&self, r: Result<(), String>) -> Option<Option<bool>> {
        let mut h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let before = h.up;
        match r {
            Ok(()) => {
                h.up = Some(true);
                h.last_error.clear();
            }
            Err(e) => {
                h.up = Some(false);
                h.last_error = e;
            }
        }
        (before != h.up).then_some(before)
    }

    fn set_pending(&self, n: usize) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending = u64::try_from(n).unwrap_or(u64::MAX);
    }

    /// Starts the settlement and watch tasks on the daemon's runtime.
    pub fn spawn(&self, node: NodeHandle, name: String, metrics: Arc<Metrics>) {
        let me = self.clone();
        let n = node.clone();
        tokio::spawn(async move { me.settle_loop(n, metrics).await });
        let me = self.clone();
        tokio::spawn(async move { me.watch_loop(node, name).await });
    }

    /// Sends the outbox (each settlement is idempotent), probes the store
    /// when the outbox is empty, and records each change of health.
    async fn settle_loop(self, node: NodeHandle, metrics: Arc<Metrics>) {
        loop {
            let outbox = match node.call(|n| n.authz.outbox()).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading the cluster outbox");
                    Vec::new()
                }
                Err(_) => return,
            };
            let mut left = outbox.len();
            let mut outcome = Ok(());
            for (seq, s) in outbox {
                match self.store.settle(&s).await {
                    Ok(()) => {
                        left -= 1;
                        let done = completion(&s);
                        let recorded = node.call(move |n| {
                            if let Some(detail) = done
                                && let Err(e) = n.authz.note(&Record {
                                    detail: &detail,
                                    ..Record::new(Outcome::OperationCompleted, Reason::Consumed)
                                })
                            {
                                tracing::error!(error = %e, "could not record a completion");
                            }
                            n.authz.settled(seq)
                        });
                        if recorded.await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        outcome = Err(e.to_string());
                        break;
                    }
                }
            }
            if left == 0 && outcome.is_ok() {
                outcome = self
                    .store
                    .ping()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
            }
            self.set_pending(left);
            // Recorded: every loss of the store, and every return after one
            // (not the first answer after start).
            if let Some(before) = self.saw(outcome) {
                let h = self.health();
                if h.up != Some(true) || before == Some(false) {
                    self.note_change(&node, before, &h).await;
                }
            }
            let h = self.health();
            metrics.update(|s| {
                s.cluster = Some(crate::metrics::ClusterState {
                    up: h.up == Some(true),
                    pending: h.pending,
                });
            });
            tokio::select! {
                () = self.kick.notified() => {}
                () = tokio::time::sleep(PROBE) => {}
            }
        }
    }

    /// A lineage record at each change between reachable and not.
    async fn note_change(&self, node: &NodeHandle, before: Option<bool>, h: &Health) {
        let (reason, detail) = if h.up == Some(true) {
            (
                Reason::ClusterStoreAvailable,
                format!("cluster store {} answers again", h.endpoints.join(",")),
            )
        } else {
            if before.is_none() {
                tracing::warn!(error = %h.last_error, "the cluster store does not answer");
            }
            (
                Reason::ClusterStoreUnavailable,
                format!(
                    "cluster store {} does not answer: {}; artifacts that need it are refused, \
                     installed grants and baselines keep working",
                    h.endpoints.join(","),
                    h.last_error
                ),
            )
        };
        tracing::warn!(%detail, "cluster store");
        let _ = node
            .call(move |n| {
                if let Err(e) = n.authz.note(&Record {
                    detail: &detail,
                    ..Record::new(Outcome::ClusterStore, reason)
                }) {
                    tracing::error!(error = %e, "could not record a cluster store change");
                }
            })
            .await;
    }

    /// Hears of this node's leases that ended early; after each (re)start
    /// of the watch, checks every lease it holds.
    async fn watch_loop(self, node: NodeHandle, name: String) {
        let mut lost = acelogic_cluster::watch_lost(self.store.clone(), name);
        while let Some(l) = lost.recv().await {
            match l {
                Lost::Holder {
                    key,
                    artifact,
                    token,
                } => {
                    tracing::warn!(%key, %artifact, token, "the lease of a held operation key ended");
                    if node
                        .call(move |n| n.lease_lost(&artifact, token))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Lost::Resync => {
                    if !self.reconcile(&node).await {
                        return;
                    }
                }
            }
        }
    }

    /// Checks each lease this node holds; a lease the store no longer has
    /// ends its artifact. `false` when the owner is gone.
    pub async fn reconcile(&self, node: &NodeHandle) -> bool {
        let Ok(held) = node.call(|n| n.held()).await else {
            return false;
        };
        for (artifact, key, token) in held {
            match self.store.holds(&key, token).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(%key, %artifact, token, "the store no longer holds this lease");
                    if node
                        .call(move |n| n.lease_lost(&artifact, token))
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                Err(e) => {
                    // The next (re)start of the watch checks again.
                    tracing::warn!(error = %e, "checking held leases; will retry");
                    break;
                }
            }
        }
        true
    }
}

/// The record of a completion the store confirmed.
fn completion(s: &acelogic_cluster::Settle) -> Option<String> {
    match s {
        acelogic_cluster::Settle::Complete {
            key,
            artifact,
            node,
            token,
            ..
        } => Some(format!(
            "operation key {key:?} completed by artifact {artifact} on node {node} (fencing token \
             {token}); a new artifact for it is refused unless it names {artifact} as its parent"
        )),
        _ => None,
    }
}
