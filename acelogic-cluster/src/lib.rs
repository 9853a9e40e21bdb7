//! The cluster authorization store on etcd v3.
//!
//! One daemon per node; all of them share one store, so the promises
//! against duplicate execution hold across the cluster:
//!
//! - an artifact id is spent once in the whole cluster (a transaction
//!   that creates `spent/<id>` only if it is absent);
//! - an operation key is held by one live artifact at a time, under an
//!   etcd lease that ends at the artifact's expiry; the holder's creation
//!   revision is the **fencing token**, strictly increasing per key;
//! - a one-use holder leaves an *intent* until its node reports the use:
//!   used, the key is recorded `completed` (for the rule's retention); not
//!   used, the intent goes. A node that fails before reporting leaves the
//!   operation unsettled, and unsettled is refused, not free.
//!
//! The layout is in [`keys`]. Every call is bounded by the configured
//! timeout; no answer is [`ClusterAnswer::Unavailable`], never a guess.

pub mod keys;
mod ops;
mod watch;

use std::time::Duration;

pub use acelogic_authz::cluster::{ClusterAnswer, ClusterClaim, Settle};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use keys::{BadValue, Completed, Entry, Holder, Intent, Layout, SPENT_MARGIN_S, Spent};
pub use ops::{OpEntry, Operation};
pub use watch::{Lost, watch_lost};

/// Where the store is and how to reach it.
#[derive(Debug, Clone)]
pub struct Config {
    /// `http://host:port` or `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// Every key lives below it (default `/acelogic/`).
    pub prefix: String,
    /// PEM files: the CA that signed the members' certificates, and this
    /// node's client certificate and key.
    pub tls: Option<TlsFiles>,
    /// The longest any one call may take before the answer counts as
    /// unknown.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

pub const DEFAULT_PREFIX: &str = "/acelogic/";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The store failed, or did not answer in time.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("the store holds a value this daemon cannot read: {0}")]
    BadValue(#[from] BadValue),
    #[error("reading {path}: {source}")]
    Tls {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no etcd endpoints given")]
    NoEndpoints,
    #[error("{0}")]
    Refused(String),
}

/// A connection to the store; cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    layout: Layout,
    timeout: Duration,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.layout.prefix())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Tls {
        path: path.to_owned(),
        source,
    })
}

/// Seconds from `now` to `until`, rounded up, at least 1 (etcd's leases
/// count whole seconds; a lease never ends before `until`).
fn ttl(until: i64, now: i64) -> i64 {
    (until - now).max(0) + 1
}

impl EtcdStore {
    /// Connects lazily: a store that is down now is not an error here;
    /// each call reports it.
    pub async fn connect(config: &Config) -> Result<Self, Error> {
        if config.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.timeout)
            .with_timeout(config.timeout)
            .with_require_leader(true)
            .with_keep_alive(Duration::from_secs(5), config.timeout);
        if let Some(tls) = &config.tls {
            let ca = Certificate::from_pem(read(&tls.ca)?);
            let id = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
            options = options.with_tls(TlsOptions::new().ca_certificate(ca).identity(id));
        }
        let client = tokio::time::timeout(
            config.timeout,
            Client::connect(&config.endpoints, Some(options)),
        )
        .await
        .map_err(|_| Error::Timeout(config.timeout))??;
        Ok(Self {
            client,
            layout: Layout::new(&config.prefix),
            timeout: config.timeout,
        })
    }

    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `f` within the timeout.
    async fn bounded<T>(&self, f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| Error::Timeout(self.timeout))?
    }

    /// One round trip to the store (for health).
    pub async fn ping(&self) -> Result<i64, Error> {
        let mut kv = self.client.kv_client();
        let key = self.layout.prefix().to_owned();
        self.bounded(async move {
            let r = kv
                .get(key, Some(GetOptions::new().with_count_only()))
                .await?;
            Ok(r.header().map_or(0, etcd_client::ResponseHeader::revision))
        })
        .await
    }

    /// Asks the store for `c`; never an error: what it cannot learn is
    /// [`ClusterAnswer::Unavailable`].
    pub async fn claim(&self, c: &ClusterClaim) -> ClusterAnswer {
        match self.bounded(self.try_claim(c)).await {
            Ok(a) => a,
            Err(e) => ClusterAnswer::Unavailable { why: e.to_string() },
        }
    }

    async fn try_claim(&self, c: &ClusterClaim) -> Result<ClusterAnswer, Error> {
        let mut kv = self.client.kv_client();
        let mut lease = self.client.lease_client();
        let spent_key = self.layout.spent(&c.artifact_id);
        let spent_lease = lease
            .grant(ttl(c.expires_unix + SPENT_MARGIN_S, c.at_unix), None)
            .await?
            .id();
        // Not undone already (an undo that overtook this claim: see
        // `Settle::Cancel`), and the id unspent.
        let mut when = vec![
            Compare::create_revision(
                self.layout.cancelled(&c.artifact_id, c.attempt),
                CompareOp::Equal,
                0,
            ),
            Compare::create_revision(spent_key.clone(), CompareOp::Equal, 0),
        ];
        let mut then = vec![TxnOp::put(
            spent_key.clone(),
            keys::encode(&spent_of(c)),
            Some(PutOptions::new().with_lease(spent_lease)),
        )];
        let mut explain = vec![TxnOp::get(spent_key, None)];
        let mut leases = vec![spent_lease];
        if let Some(key) = &c.operation_key {
            let holder = self.layout.op(key, Entry::Holder);
            let intent = self.layout.op(key, Entry::Intent);
            let completed = self.layout.op(key, Entry::Completed);
            let hold_lease = lease
                .grant(ttl(c.expires_unix, c.at_unix), None)
                .await?
                .id();
            leases.push(hold_lease);
            when.push(Compare::create_revision(
                holder.clone(),
                CompareOp::Equal,
                0,
            ));
            when.push(Compare::create_revision(
                intent.clone(),
                CompareOp::Equal,
                0,
            ));
            // A continuation may follow the completion it names; anything
            // else needs the key never completed (or its record expired).
            let completed_rev = match &c.parent {
                Some(parent) => {
                    let r = kv.get(completed.clone(), None).await?;
                    match r.kvs().first() {
                        Some(kv) => {
                            let done: Completed = keys::decode(kv.key(), kv.value())?;
                            if done.artifact == *parent {
                                kv.mod_revision()
                            } else {
                                0
                            }
                        }
                        None => 0,
                    }
                }
                None => 0,
            };
            when.push(Compare::mod_revision(
                completed.clone(),
                CompareOp::Equal,
                completed_rev,
            ));
            then.push(TxnOp::put(
                holder.clone(),
                keys::encode(&holder_of(c)),
                Some(PutOptions::new().with_lease(hold_lease)),
            ));
            if c.completes {
                then.push(TxnOp::put(
                    intent.clone(),
                    keys::encode(&intent_of(c)),
                    None,
                ));
            }
            explain.extend([
                TxnOp::get(holder, None),
                TxnOp::get(intent, None),
                TxnOp::get(completed, None),
            ]);
        }
        let r = kv
            .txn(Txn::new().when(when).and_then(then).or_else(explain))
            .await?;
        if r.succeeded() {
            let revision = r.header().map_or(0, etcd_client::ResponseHeader::revision);
            let token = c
                .operation_key
                .as_ref()
                .map(|_| u64::try_from(revision).unwrap_or(0));
            return Ok(ClusterAnswer::Claimed { token });
        }
        // Refused: the leases granted for it are not needed.
        for id in leases {
            let mut lease = self.client.lease_client();
            tokio::spawn(async move {
                let _ = lease.revoke(id).await;
            });
        }
        explain_refusal(c, &r.op_responses())
    }

    /// Carries out one settlement. Idempotent: each compares the token
    /// (or the exact bytes of a cancelled claim), so sending it again, or
    /// after an administrator released the key, changes nothing.
    pub async fn settle(&self, s: &Settle) -> Result<(), Error> {
        self.bounded(self.try_settle(s)).await
    }

    async fn try_settle(&self, s: &Settle) -> Result<(), Error> {
        let mut kv = self.client.kv_client();
        match s {
            Settle::Release { key, token, .. } => {
                let token = i64::try_from(*token).unwrap_or(i64::MAX);
                let holder = self.layout.op(key, Entry::Holder);
                let intent = self.layout.op(key, Entry::Intent);
                // Holder and intent go together: no other node may see the
                // intent alone (unsettled) while this release is under way.
                // While this holder lives no other claim has an intent.
                let r = kv
                    .txn(
                        Txn::new()
                            .when([Compare::create_revision(
                                holder.clone(),
                                CompareOp::Equal,
                                token,
                            )])
                            .and_then([
                                TxnOp::delete(holder, None),
                                TxnOp::delete(intent.clone(), None),
                            ]),
                    )
                    .await?;
                if !r.succeeded() {
                    // The lease ended first; the intent is left.
                    kv.txn(
                        Txn::new()
                            .when([Compare::create_revision(
                                intent.clone(),
                                CompareOp::Equal,
                                token,
                            )])
                            .and_then([TxnOp::delete(intent, None)]),
                    )
                    .await?;
                }
            }
            Settle::Complete {
                key,
                artifact,
                node,
                token,
                at_unix,
                retention_s,
            } => {
                let rev = i64::try_from(*token).unwrap_or(i64::MAX);
                let intent = self.layout.op(key, Entry::Intent);
                let holder = self.layout.op(key, Entry::Holder);
                let lease = self
                    .client
                    .lease_client()
                    .grant((*retention_s).max(1), None)
                    .await?
                    .id();
                let done = Completed {
                    artifact: artifact.clone(),
                    node: node.clone(),
                    at: *at_unix,
                    token: *token,
                };
                let r = kv
                    .txn(
                        Txn::new()
                            .when([Compare::create_revision(
                                intent.clone(),
                                CompareOp::Equal,
                                rev,
                            )])
                            .and_then([
                                TxnOp::put(
                                    self.layout.op(key, Entry::Completed),
                                    keys::encode(&done),
                                    Some(PutOptions::new().with_lease(lease)),
                                ),
                                TxnOp::delete(intent, None),
                                TxnOp::delete(holder, None),
                            ]),
                    )
                    .await?;
                if !r.succeeded() {
                    let _ = self.client.lease_client().revoke(lease).await;
                }
            }
            Settle::Cancel { claim } => {
                // First the tombstone: the claim, if still on its way (a
                // paused member answers requests in any order when it
                // resumes), can no longer apply. Then undo it if it did.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let tomb_lease = self
                    .client
                    .lease_client()
                    .grant(ttl(claim.expires_unix + SPENT_MARGIN_S, now), None)
                    .await?
                    .id();
                kv.put(
                    self.layout.cancelled(&claim.artifact_id, claim.attempt),
                    keys::encode(&keys::Cancelled { at: now }),
                    Some(PutOptions::new().with_lease(tomb_lease)),
                )
                .await?;
                let spent = self.layout.spent(&claim.artifact_id);
                let mut when = vec![Compare::value(
                    spent.clone(),
                    CompareOp::Equal,
                    keys::encode(&spent_of(claim)),
                )];
                let mut then = vec![TxnOp::delete(spent, None)];
                if let Some(key) = &claim.operation_key {
                    let holder = self.layout.op(key, Entry::Holder);
                    when.push(Compare::value(
                        holder.clone(),
                        CompareOp::Equal,
                        keys::encode(&holder_of(claim)),
                    ));
                    then.push(TxnOp::delete(holder, None));
                    if claim.completes {
                        then.push(TxnOp::delete(self.layout.op(key, Entry::Intent), None));
                    }
                }
                kv.txn(Txn::new().when(when).and_then(then)).await?;
            }
        }
        Ok(())
    }

    /// Who spent `artifact` in the cluster, if anyone (and the spent
    /// record has not outlived its lease).
    pub async fn spent(&self, artifact: &str) -> Result<Option<Spent>, Error> {
        let mut kv = self.client.kv_client();
        let k = self.layout.spent(artifact);
        self.bounded(async move {
            let r = kv.get(k, None).await?;
            match r.kvs().first() {
                Some(kv) => Ok(Some(keys::decode(kv.key(), kv.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Whether the holder of `key` is still the claim with `token`.
    pub async fn holds(&self, key: &str, token: u64) -> Result<bool, Error> {
        let mut kv = self.client.kv_client();
        let k = self.layout.op(key, Entry::Holder);
        self.bounded(async move {
            let r = kv.get(k, None).await?;
            Ok(r.kvs()
                .first()
                .is_some_and(|kv| u64::try_from(kv.create_revision()).ok() == Some(token)))
        })
        .await
    }
}

fn spent_of(c: &ClusterClaim) -> Spent {
    Spent {
        node: c.node.clone(),
        workload: c.workload.clone(),
        at: c.at_unix,
        attempt: c.attempt,
    }
}

fn holder_of(c: &ClusterClaim) -> Holder {
    Holder {
        artifact: c.artifact_id.clone(),
        node: c.node.clone(),
        workload: c.workload.clone(),
        until: c.expires_unix,
        at: c.at_unix,
        attempt: c.attempt,
    }
}

fn intent_of(c: &ClusterClaim) -> Intent {
    Intent {
        artifact: c.artifact_id.clone(),
        node: c.node.clone(),
        since: c.at_unix,
    }
}

/// The first entry of a refused claim's reads that is present.
fn first(responses: &[TxnOpResponse], i: usize) -> Option<etcd_client::KeyValue> {
    match responses.get(i) {
        Some(TxnOpResponse::Get(g)) => g.kvs().first().cloned(),
        _ => None,
    }
}

/// Why a claim's transaction was refused, from what it read instead, in
/// order: spent, held, unsettled, completed.
fn explain_refusal(c: &ClusterClaim, r: &[TxnOpResponse]) -> Result<ClusterAnswer, Error> {
    if let Some(kv) = first(r, 0) {
        let s: Spent = keys::decode(kv.key(), kv.value())?;
        return Ok(ClusterAnswer::Replayed {
            node: s.node,
            at_unix: s.at,
        });
    }
    if let Some(kv) = first(r, 1) {
        let h: Holder = keys::decode(kv.key(), kv.value())?;
        return Ok(ClusterAnswer::Conflict {
            node: h.node,
            artifact: h.artifact,
            until_unix: h.until,
        });
    }
    if let Some(kv) = first(r, 2) {
        let i: Intent = keys::decode(kv.key(), kv.value())?;
        return Ok(ClusterAnswer::Unsettled {
            node: i.node,
            artifact: i.artifact,
            since_unix: i.since,
            token: u64::try_from(kv.create_revision()).unwrap_or(0),
        });
    }
    if let Some(kv) = first(r, 3) {
        let d: Completed = keys::decode(kv.key(), kv.value())?;
        return Ok(ClusterAnswer::Completed {
            node: d.node,
            artifact: d.artifact,
            at_unix: d.at,
            token: d.token,
        });
    }
    // Nothing in the way by the time it was read: the completion this
    // continuation named changed between the read and the transaction.
    Err(Error::Refused(format!(
        "the claim of {} was refused but nothing holds it now; submit it again",
        c.artifact_id
    )))
}

#[cfg(test)]
mod tests {
    use super::ttl;

    /// A lease never ends before the time it must cover: the kernel grant
    /// (which expires at `until`) never outlives it.
    #[test]
    fn a_lease_covers_every_second_it_is_for() {
        for (until, now) in [(100, 40), (100, 99), (100, 100), (100, 250), (0, 0)] {
            let t = ttl(until, now);
            assert!(t >= 1, "etcd needs a positive TTL: {t}");
            assert!(
                now + t > until,
                "lease of {t} s from {now} ends before {until}"
            );
        }
    }
}
