//! The cluster side of a claim: what the engine asks a cluster-wide store
//! before a grant reaches the kernel, and what it asks it to settle
//! afterwards. The engine never talks to the store itself; the daemon
//! takes a [`ClusterClaim`] from [`crate::Prepared`], asks the store off
//! the state owner's thread, and hands the [`ClusterAnswer`] back to
//! [`crate::Authorizer::commit`]. Settlements ([`Settle`]) queue in the
//! engine and are sent the same way. `acelogic-cluster` implements the
//! store on etcd.
//!
//! Which artifacts need the cluster's answer: every one, except an
//! artifact pinned to this node (`subject.node`) without an operation
//! key, which no other node would accept anyway. Without an answer
//! (store unreachable, too slow, or an answer that cannot be read) those
//! artifacts are refused `cluster-store-unavailable`; nothing is accepted
//! while the store's answer is unknown.

use serde::{Deserialize, Serialize};

/// What the engine asks the cluster before accepting an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterClaim {
    pub artifact_id: String,
    /// The node asking (this daemon's node name).
    pub node: String,
    pub workload: String,
    pub operation_key: Option<String>,
    /// The artifact's `parent`: a continuation of that artifact may take
    /// an operation key it completed.
    pub parent: Option<String>,
    /// Unix seconds; the lease behind the operation key ends no earlier.
    pub expires_unix: i64,
    /// Using the artifact up completes its operation (it has an operation
    /// key and `maxUses`): the store keeps an intent until the node
    /// reports the use, so a node that fails before reporting leaves the
    /// operation *unsettled*, not free.
    pub completes: bool,
    /// How long a completion is kept, in seconds.
    pub completed_retention_s: i64,
    pub at_unix: i64,
    /// Random per claim attempt. The store's records of this attempt carry
    /// it, so undoing an attempt whose answer never came cannot undo
    /// another attempt of the same artifact by the same node in the same
    /// second (which a resubmission after `cluster-store-unavailable`
    /// is). 0 in settlements queued before it existed.
    #[serde(default)]
    pub attempt: u64,
}

/// The cluster's answer to a [`ClusterClaim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAnswer {
    /// The id is spent cluster-wide and, with an operation key, leased to
    /// this node; `token` is the fencing token (the holder key's
    /// revision: strictly increasing per operation key).
    Claimed { token: Option<u64> },
    /// Another claim spent this id.
    Replayed { node: String, at_unix: i64 },
    /// Another live artifact holds the operation key.
    Conflict {
        node: String,
        artifact: String,
        until_unix: i64,
    },
    /// The operation key was completed and this artifact is not its
    /// continuation.
    Completed {
        node: String,
        artifact: String,
        at_unix: i64,
        token: u64,
    },
    /// A node held the key for a one-use artifact, its lease ended, and it
    /// never reported whether the use happened: the operation may have
    /// run, so it is not run again until an administrator releases it.
    Unsettled {
        node: String,
        artifact: String,
        since_unix: i64,
        token: u64,
    },
    /// The store did not answer in time, or its answer was unreadable.
    Unavailable { why: String },
}

/// What the engine asks the cluster store to do after a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "settle", rename_all = "kebab-case")]
pub enum Settle {
    /// The artifact ended without completing its operation (expired
    /// unused, revoked, failed to install): its lease and intent go.
    Release {
        key: String,
        artifact: String,
        token: u64,
    },
    /// Its last use was consumed: the key is recorded as completed.
    Complete {
        key: String,
        artifact: String,
        node: String,
        token: u64,
        at_unix: i64,
        retention_s: i64,
    },
    /// A claim whose answer never arrived: undo it if it was made (it
    /// matches what this node wrote, byte for byte).
    Cancel { claim: ClusterClaim },
}

impl Settle {
    /// The operation key (or artifact id, for a cancel) it concerns.
    #[must_use]
    pub fn subject(&self) -> &str {
        match self {
            Self::Release { key, .. } | Self::Complete { key, .. } => key,
            Self::Cancel { claim } => &claim.artifact_id,
        }
    }
}

/// How long a completed operation stays completed when the matched rule
/// says nothing, and the most it may say.
pub const COMPLETED_RETENTION_DEFAULT_S: i64 = 24 * 3600;
pub const COMPLETED_RETENTION_MAX_S: i64 = 30 * 24 * 3600;
