//! A submission in two halves, so a round trip to the cluster store can
//! run between them without holding the node's state:
//!
//! - [`Authorizer::prepare`] verifies, checks and resolves (steps 1–3 of
//!   the crate's order) and says whether the cluster must be asked;
//! - [`Authorizer::commit`] takes the cluster's answer (or none, for an
//!   artifact that needs none), claims locally, installs and records.
//!
//! [`Authorizer::submit`] is both halves with no cluster store.

use std::time::{Duration, SystemTime};

use acelogic_domain::{
    Reason, Refusal,
    grant::{GrantSpec, boot_ns_now},
};

use crate::{
    About, Accepted, Authorizer, GrantTable, Inputs, check,
    check::Context,
    cluster::{
        COMPLETED_RETENTION_DEFAULT_S, COMPLETED_RETENTION_MAX_S, ClusterAnswer, ClusterClaim,
        Settle,
    },
    resolve,
    state::{ArtifactRow, Claim, Outcome, Peer, Record},
    state_failed, unix,
};

/// A submission that passed every check that needs no claim.
#[derive(Debug)]
pub struct Prepared {
    row: ArtifactRow,
    peer: Option<Peer>,
    objects: Vec<acelogic_domain::grant::GrantObject>,
    max_uses: Option<u32>,
    expires: SystemTime,
    keys: Vec<String>,
    /// What to ask the cluster store first; `None`: the local claim
    /// decides alone.
    pub cluster: Option<ClusterClaim>,
}

impl Prepared {
    #[must_use]
    pub fn artifact_id(&self) -> &str {
        &self.row.id
    }
}

/// The owned fields of a submission's records.
struct Base {
    peer: Option<Peer>,
    digest: String,
    id: Option<String>,
    workload: Option<String>,
    issuer: Option<String>,
}

impl Base {
    fn about(&self) -> About<'_> {
        About {
            peer: self.peer,
            envelope_sha256: Some(&self.digest),
            artifact_id: self.id.as_deref(),
            workload: self.workload.as_deref(),
            issuer: self.issuer.as_deref(),
        }
    }

    fn of(p: &Prepared) -> Self {
        Self {
            peer: p.peer,
            digest: p.row.envelope_sha256.clone(),
            id: Some(p.row.id.clone()),
            workload: Some(p.row.workload.clone()),
            issuer: Some(p.row.issuer.clone()),
        }
    }
}

impl Authorizer {
    /// Decides on one envelope with no cluster store; installs its grants
    /// when every check passes.
    pub fn submit(
        &mut self,
        envelope: &[u8],
        peer: Option<Peer>,
        inputs: &Inputs<'_>,
        grants: &mut dyn GrantTable,
    ) -> Result<Accepted, Refusal> {
        let p = self.prepare(envelope, peer, inputs)?;
        if let Some(claim) = &p.cluster {
            // A clustered engine driven without its store: nothing may be
            // accepted without the store's answer.
            let answer = ClusterAnswer::Unavailable {
                why: format!("no cluster store was asked about {}", claim.artifact_id),
            };
            return self.commit(p, Some(answer), grants, inputs.now);
        }
        self.commit(p, None, grants, inputs.now)
    }

    /// Steps 1–3: verify, check, resolve. Refusals are recorded here.
    pub fn prepare(
        &mut self,
        envelope: &[u8],
        peer: Option<Peer>,
        inputs: &Inputs<'_>,
    ) -> Result<Prepared, Refusal> {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(envelope));
        let mut base = Base {
            peer,
            digest: digest.clone(),
            id: None,
            workload: None,
            issuer: None,
        };
        let verified = match acelogic_domain::artifact::verify(envelope, inputs.trust) {
            Ok(v) => v,
            Err(e) => {
                let r = Refusal {
                    code: e.code(),
                    why: e.to_string(),
                };
                return Err(self.refused(r, base.about()));
            }
        };
        let a = &verified.artifact;
        let id = a.id.to_string();
        let approvers: Vec<String> = verified.approvers.iter().map(|x| x.name.clone()).collect();
        base.id = Some(id.clone());
        base.workload = Some(a.subject.workload.as_str().to_owned());
        base.issuer = Some(a.issuer.as_str().to_owned());
        let resolved = check::resolve_names(&a.capabilities);
        let settings = self.settings.clone();
        let cx = Context {
            settings: &settings,
            policy: inputs.policy,
            frozen: inputs.frozen,
            now: inputs.now,
            resolved: &resolved,
            cgroups: inputs.cgroups,
        };
        let admitted = match check::admit(a, approvers.len(), &cx) {
            Ok(ok) => ok,
            Err(r) => return Err(self.refused(r, base.about())),
        };
        let objects = match resolve::objects(&a.capabilities, &resolved, &admitted.never) {
            Ok(o) => o,
            Err(r) => return Err(self.refused(r, base.about())),
        };
        let workload = admitted.workload;
        let keys: Vec<String> = std::iter::once(format!("{} {}", a.issuer, verified.issuer_key))
            .chain(
                verified
                    .approvers
                    .iter()
                    .map(|x| format!("{} {}", x.name, x.key_id)),
            )
            .collect();
        let row = ArtifactRow {
            id: id.clone(),
            workload: workload.name.clone(),
            scope_id: workload.scope_id,
            issuer: a.issuer.as_str().to_owned(),
            approvers,
            operation_key: a.operation_key.clone(),
            grant_id: 0,
            capabilities: a.capabilities.iter().map(ToString::to_string).collect(),
            not_before: unix(a.not_before),
            expires: unix(a.expires),
            accepted_at: 0,
            state: String::new(),
            envelope_sha256: digest,
            payload: String::from_utf8(a.to_json().unwrap_or_default()).unwrap_or_default(),
            issuer_key: Some(verified.issuer_key.to_string()),
            approver_keys: Some(
                verified
                    .approvers
                    .iter()
                    .map(|x| x.key_id.to_string())
                    .collect(),
            ),
            cluster_token: None,
            completed_retention_s: admitted
                .terms
                .completed_retention
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(COMPLETED_RETENTION_MAX_S)),
        };
        // Only an artifact pinned to this node without an operation key
        // is nobody else's business.
        let local_only = a.subject.node.is_some() && a.operation_key.is_none();
        let cluster = (self.clustered && !local_only).then(|| ClusterClaim {
            artifact_id: id,
            node: settings.node.clone(),
            workload: row.workload.clone(),
            operation_key: a.operation_key.clone(),
            parent: a.parent.as_ref().map(ToString::to_string),
            expires_unix: row.expires,
            completes: a.operation_key.is_some() && a.max_uses.is_some(),
            completed_retention_s: row
                .completed_retention_s
                .unwrap_or(COMPLETED_RETENTION_DEFAULT_S),
            at_unix: unix(inputs.now),
            attempt: attempt(),
        });
        Ok(Prepared {
            row,
            peer,
            objects,
            max_uses: a.max_uses.map(std::num::NonZeroU32::get),
            expires: a.expires,
            keys,
            cluster,
        })
    }

    /// Steps 4–6 with the cluster's answer: claim locally, install every
    /// grant or none, record. `answer` must be `Some` when
    /// [`Prepared::cluster`] is.
    pub fn commit(
        &mut self,
        p: Prepared,
        answer: Option<ClusterAnswer>,
        grants: &mut dyn GrantTable,
        now_t: SystemTime,
    ) -> Result<Accepted, Refusal> {
        let base = Base::of(&p);
        let id = p.row.id.clone();
        let key = p.row.operation_key.clone().unwrap_or_default();
        let token = match (&p.cluster, answer) {
            (None, _) => None,
            (Some(_), Some(ClusterAnswer::Claimed { token })) => token,
            (Some(claim), other) => {
                let r = cluster_refusal(&id, &key, other);
                if r.code == Reason::ClusterStoreUnavailable {
                    // Its answer is unknown: undo the claim if it was made.
                    self.queue(&Settle::Cancel {
                        claim: claim.clone(),
                    });
                }
                return Err(self.refused(r, base.about()));
            }
        };
        let mut row = p.row;
        row.cluster_token = token;
        // Undoes the cluster's side if the node cannot go on.
        let release = |me: &mut Self| {
            if let Some(token) = token {
                me.queue(&Settle::Release {
                    key: key.clone(),
                    artifact: id.clone(),
                    token,
                });
            }
        };
        let now = unix(now_t);
        // What ended since `prepare` must not hold its key against this.
        self.retire(grants, now_t);
        let grant_id = match self.state.claim(&row, now) {
            Ok(Claim::Claimed { grant_id }) => grant_id,
            Ok(Claim::Replayed { accepted_at, state }) => {
                release(self);
                let r = Refusal {
                    code: Reason::Replayed,
                    why: format!(
                        "artifact {id} was already accepted at unix {accepted_at} (now {state}); \
                         artifact ids are single-use"
                    ),
                };
                return Err(self.refused(r, base.about()));
            }
            Ok(Claim::Conflict { holder, until }) => {
                release(self);
                let r = Refusal {
                    code: Reason::OperationConflict,
                    why: format!(
                        "operation key {key:?} is held by live artifact {holder} until unix \
                         {until}; wait for it to expire or revoke it"
                    ),
                };
                return Err(self.refused(r, base.about()));
            }
            Err(e) => {
                release(self);
                return Err(self.refused(state_failed(&e), base.about()));
            }
        };
        let left = p.expires.duration_since(now_t).unwrap_or(Duration::ZERO);
        let expires_boot_ns =
            boot_ns_now().saturating_add(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX));
        let specs: Vec<GrantSpec> = p
            .objects
            .into_iter()
            .map(|object| GrantSpec {
                grant_id,
                scope_id: row.scope_id,
                expires_boot_ns,
                max_uses: p.max_uses,
                object,
            })
            .collect();
        if let Err(why) = grants.install(&specs) {
            let _ = self.state.end(&id, "failed", &why.to_string(), now);
            release(self);
            let r = Refusal {
                code: Reason::InstallFailed,
                why: format!("the kernel refused the grants: {why}; nothing was granted"),
            };
            return Err(self.refused(r, base.about()));
        }
        let fencing = token.map_or_else(String::new, |t| format!("; fencing token {t}"));
        let detail = format!(
            "grant {grant_id}: {} for workload {} until unix {}; approvers [{}]; keys [{}]{fencing}",
            row.capabilities.join("; "),
            row.workload,
            row.expires,
            row.approvers.join(", "),
            p.keys.join(", ")
        );
        let persisted = self.state.mark_live(&id).and_then(|()| {
            self.note(&Record {
                detail: &detail,
                approvers: &row.approvers,
                operation_key: row.operation_key.as_deref(),
                capabilities: &row.capabilities,
                grant_id: Some(grant_id),
                ..base.about().record(Outcome::Accepted, Reason::Granted)
            })
        });
        if let Err(e) = persisted {
            // Fail closed: a grant nobody can account for must not stay.
            let _ = grants.remove(grant_id);
            let _ = self.state.end(&id, "failed", "record-failed", now);
            release(self);
            return Err(Refusal {
                code: Reason::RecordFailed,
                why: format!("{e}; the grants were removed again"),
            });
        }
        Ok(Accepted {
            artifact_id: id,
            workload: row.workload,
            grant_id,
            expires_unix: row.expires,
            capabilities: row.capabilities,
            kernel_entries: specs.len(),
            approvers: row.approvers,
            fencing_token: token,
        })
    }
}

/// The refusal for a cluster answer other than `Claimed`.
fn cluster_refusal(id: &str, key: &str, answer: Option<ClusterAnswer>) -> Refusal {
    let (code, why) = match answer {
        Some(ClusterAnswer::Replayed { node, at_unix }) => (
            Reason::Replayed,
            format!(
                "artifact {id} was already accepted on node {node} at unix {at_unix}; artifact \
                 ids are single-use across the cluster"
            ),
        ),
        Some(ClusterAnswer::Conflict {
            node,
            artifact,
            until_unix,
        }) => (
            Reason::OperationConflict,
            format!(
                "operation key {key:?} is held by artifact {artifact} on node {node} until unix \
                 {until_unix}; wait for it to end, or revoke it there"
            ),
        ),
        Some(ClusterAnswer::Completed {
            node,
            artifact,
            at_unix,
            token,
        }) => (
            Reason::OperationCompleted,
            format!(
                "operation key {key:?} was completed by artifact {artifact} on node {node} at unix \
                 {at_unix} (fencing token {token}); a continuation names {artifact} as its \
                 parent, or an administrator releases the key"
            ),
        ),
        Some(ClusterAnswer::Unsettled {
            node,
            artifact,
            since_unix,
            token,
        }) => (
            Reason::OperationUnsettled,
            format!(
                "operation key {key:?} was held by one-use artifact {artifact} on node {node} \
                 since unix {since_unix} (fencing token {token}), and that node never reported \
                 whether it was used: it may have run; an administrator who knows releases the key"
            ),
        ),
        Some(ClusterAnswer::Unavailable { why }) => (
            Reason::ClusterStoreUnavailable,
            format!(
                "the cluster store gave no answer for artifact {id}: {why}; nothing was granted"
            ),
        ),
        Some(ClusterAnswer::Claimed { .. }) | None => (
            Reason::ClusterStoreUnavailable,
            format!("no cluster answer was given for artifact {id}; nothing was granted"),
        ),
    };
    Refusal { code, why }
}

/// A number for one claim attempt: random, or, should the kernel's random
/// source ever fail, the clock's nanoseconds and a counter (still unique
/// within this process).
fn attempt() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    getrandom::u64().unwrap_or_else(|_| {
        let ns = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        ns.wrapping_add(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    })
}
