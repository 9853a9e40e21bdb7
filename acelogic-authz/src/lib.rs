//! The decision engine: a signed artifact in, kernel grants out, or a
//! refusal that names the check that failed.
//!
//! Order of a submission, and why:
//! 1. verify the envelope against the trust store ([`crate::artifact`]);
//! 2. check time, audience, subject, frozen, policy and terms ([`check`]);
//! 3. resolve objects (digest of binaries, inodes, addresses) ([`resolve`]);
//! 4. claim: spend the id and take the operation lease, durably
//!    ([`state`]), *before* anything reaches the kernel;
//! 5. install every grant or none; on failure the claim ends as `failed`;
//! 6. record the outcome.
//!
//! Every outcome, accepted or refused, is an authorization record with a
//! reason code ([`acelogic_domain::Reason`]; the full table is
//! `docs/reasons.md`). Which check gives which code:
//!
//! | code | check |
//! |---|---|
//! | (artifact codes) | envelope, payload and signatures: see [`acelogic_domain::artifact`] |
//! | `not-yet-valid`, `expired` | validity window (skew applies to `notBefore` only) |
//! | `wrong-audience`, `wrong-node`, `unknown-workload`, `wrong-cgroup` | subject and audience |
//! | `workload-frozen` | the workload is frozen |
//! | (policy codes) | `never`, `not-grantable`, `issuer-not-allowed`, `unresolvable`: see [`acelogic_domain::policy`] |
//! | `ttl-exceeded`, `uses-unbounded`, `uses-exceeded`, `approval-missing`, `operation-key-required` | terms of the matched grantable rules |
//! | `digest-mismatch`, `object-missing`, `object-changed`, `too-many-entries` | resolving to kernel objects |
//! | `replayed` | the id was accepted before (spent set) |
//! | `operation-conflict` | another live artifact holds the operation key |
//! | `install-failed`, `state-failed`, `record-failed` | the node could not apply or persist it (nothing granted) |
//! | `unknown-artifact`, `not-live`, `governed-caller` | revoke and administrative calls |
//!
//! `never` exec entries are matched by name and by identity: a hard link
//! to or a copy of a never binary is refused under any name, at admission
//! and again on the descriptor the grant is made from ([`never`]).
//!
//! A live artifact ends early when a reload ([`Authorizer::recheck`])
//! finds that the policy no longer permits it (`policy-narrowed`), or that
//! a key whose signature accepted it is no longer trusted
//! (`key-revoked`): the issuer's key removed, listed revoked or bound to
//! another name, or approver keys gone so the approvals left are fewer
//! than the policy requires.

pub mod check;
pub mod cluster;
pub mod digest;
pub mod never;
pub mod resolve;
pub mod state;
mod submit;
#[cfg(test)]
mod tests;

pub use submit::Prepared;

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use acelogic_domain::{
    PortError, Reason, Refusal,
    artifact::{Artifact, KeyId, Role, TrustStore},
    grant::GrantSpec,
    policy::PolicySet,
};
use check::{Context, Settings};
use state::{ArtifactRow, Outcome, Peer, Record, State, StateError};

/// Who and what a request's records are about, known before its outcome.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct About<'a> {
    pub(crate) artifact_id: Option<&'a str>,
    pub(crate) workload: Option<&'a str>,
    pub(crate) issuer: Option<&'a str>,
    pub(crate) peer: Option<Peer>,
    pub(crate) envelope_sha256: Option<&'a str>,
}

impl<'a> About<'a> {
    /// The record of `outcome` for `reason` about this.
    pub(crate) fn record(self, outcome: Outcome, reason: Reason) -> Record<'a> {
        Record {
            artifact_id: self.artifact_id,
            workload: self.workload,
            issuer: self.issuer,
            peer: self.peer,
            envelope_sha256: self.envelope_sha256,
            ..Record::new(outcome, reason)
        }
    }
}

fn state_failed(e: &StateError) -> Refusal {
    Refusal::new(Reason::StateFailed, format!("{e}; nothing was granted"))
}

/// Where grants live. The daemon uses the kernel; the engine's unit tests
/// use a table in memory so each refusal path runs without BPF.
pub trait GrantTable {
    /// Installs every grant of `set` or none.
    fn install(&mut self, set: &[GrantSpec]) -> Result<(), PortError>;
    /// Removes every entry of `grant_id`; returns how many.
    fn remove(&mut self, grant_id: u64) -> Result<usize, PortError>;
    /// What the table holds per grant id.
    fn usage(&mut self) -> Result<HashMap<u64, Usage>, PortError>;
}

/// A grant id's kernel entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub entries: usize,
    /// Fewest uses left among the entries; `None` when unlimited.
    pub uses_left: Option<u64>,
    /// Every entry is limited and has no use left.
    pub used_up: bool,
    pub scope_id: u32,
}

/// What the policy side holds while deciding.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub policy: &'a PolicySet,
    pub trust: &'a TrustStore,
    pub frozen: &'a BTreeSet<String>,
    /// Governed directories per workload.
    pub cgroups: &'a HashMap<String, Vec<PathBuf>>,
    pub now: SystemTime,
}

/// An accepted artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub artifact_id: String,
    pub workload: String,
    pub grant_id: u64,
    pub expires_unix: i64,
    pub capabilities: Vec<String>,
    pub kernel_entries: usize,
    pub approvers: Vec<String>,
    /// The fencing token of the operation key's lease in the cluster
    /// store (strictly increasing per key); `None` without one.
    pub fencing_token: Option<u64>,
}

/// A live artifact with its kernel usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    pub row: ArtifactRow,
    pub entries: usize,
    pub uses_left: Option<u64>,
}

/// The engine and its durable state.
/// Where authorization records go when not into the state database: the
/// daemon sends them to the lineage journal.
pub trait RecordSink: std::fmt::Debug + Send {
    /// Stores `r` durably; returns its sequence number.
    fn write(&mut self, r: &Record<'_>) -> Result<i64, PortError>;
}

#[derive(Debug)]
pub struct Authorizer {
    state: State,
    settings: Settings,
    /// Replaces the state database's `authz_records` when set.
    sink: Option<Box<dyn RecordSink>>,
    /// A cluster store is configured: submissions are claimed there first
    /// ([`Authorizer::prepare`]), and ends are settled there ([`cluster`]).
    clustered: bool,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl Authorizer {
    pub fn new(state: State, settings: Settings) -> Self {
        Self {
            state,
            settings,
            sink: None,
            clustered: false,
        }
    }

    /// Claims in a cluster store from now on: [`Authorizer::prepare`] asks
    /// for its answer, and every end of a leased artifact queues its
    /// settlement in the outbox ([`Authorizer::outbox`]).
    pub fn set_clustered(&mut self) {
        self.clustered = true;
    }

    #[must_use]
    pub fn clustered(&self) -> bool {
        self.clustered
    }

    /// Queues `s` durably for the cluster store. A settlement that cannot
    /// be queued is logged: its lease still ends with the artifact, and an
    /// unreported one-use holder stays unsettled (refused, not free).
    fn queue(&mut self, s: &cluster::Settle) {
        if let Err(e) = self.state.queue_settle(s) {
            tracing::error!(error = %e, subject = s.subject(), "could not queue a cluster settlement");
        }
    }

    /// Settlements the cluster store has not confirmed yet, oldest first.
    pub fn outbox(&self) -> Result<Vec<(i64, cluster::Settle)>, StateError> {
        self.state.outbox()
    }

    /// The cluster store confirmed settlement `seq`.
    pub fn settled(&mut self, seq: i64) -> Result<(), StateError> {
        self.state.settled(seq)
    }

    /// What ending `row` must tell the cluster store, if it holds a lease.
    fn settle_end(&mut self, row: &ArtifactRow, ending: Ending, now: i64) {
        let (Some(key), Some(token)) = (&row.operation_key, row.cluster_token) else {
            return;
        };
        let s = if ending == Ending::Unknown {
            // Its intent stays (unsettled); the lease ends with the artifact.
            tracing::warn!(artifact = %row.id, key = %key, "whether it was used is unknown: the operation stays unsettled in the cluster store");
            return;
        } else if ending == Ending::Used {
            cluster::Settle::Complete {
                key: key.clone(),
                artifact: row.id.clone(),
                node: self.settings.node.clone(),
                token,
                at_unix: now,
                retention_s: row
                    .completed_retention_s
                    .unwrap_or(cluster::COMPLETED_RETENTION_DEFAULT_S),
            }
        } else {
            cluster::Settle::Release {
                key: key.clone(),
                artifact: row.id.clone(),
                token,
            }
        };
        self.queue(&s);
    }

    /// Sends every record to `sink` (durably, before the outcome takes
    /// effect) instead of the state database's `authz_records`.
    pub fn set_sink(&mut self, sink: Box<dyn RecordSink>) {
        self.sink = Some(sink);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn state(&mut self) -> &mut State {
        &mut self.state
    }

    /// Hands an authorization record to the sink (or, with none, the
    /// state store); the engine writes records nowhere else.
    pub fn note(&mut self, r: &Record<'_>) -> Result<i64, StateError> {
        match &mut self.sink {
            Some(sink) => sink.write(r).map_err(StateError::Journal),
            None => Ok(self.state.record(r)?),
        }
    }

    fn refused(&mut self, r: Refusal, about: About<'_>) -> Refusal {
        let rec = Record {
            detail: &r.why,
            ..about.record(Outcome::Refused, r.code)
        };
        if let Err(e) = self.note(&rec) {
            tracing::error!(error = %e, code = r.code.as_str(), "could not record a refusal");
        }
        r
    }

    /// The cluster store no longer holds the lease of `id`'s operation key
    /// (`token`): released by an administrator, or lost. Its grants are
    /// removed now and it ends `revoked` with `lease-ended`; a grant never
    /// outlives its lease. `false` when it is not live with that token
    /// (ended already, or a later claim).
    pub fn end_lease(
        &mut self,
        id: &str,
        token: u64,
        grants: &mut dyn GrantTable,
        now: SystemTime,
    ) -> Result<bool, Refusal> {
        let row = match self.state.artifact(id).map_err(|e| state_failed(&e))? {
            Some(r)
                if (r.state == "live" || r.state == "installing")
                    && r.cluster_token == Some(token) =>
            {
                r
            }
            _ => return Ok(false),
        };
        let ending = ending(&row, grants);
        if let Err(e) = grants.remove(row.grant_id) {
            tracing::error!(grant = row.grant_id, error = %e, "removing the grant of an ended lease");
        }
        self.settle_end(&row, ending, unix(now));
        let why = format!(
            "the cluster lease of operation key {:?} (fencing token {token}) ended early: released \
             by an administrator or lost",
            row.operation_key.as_deref().unwrap_or_default()
        );
        self.end(
            &row,
            End::Revoked,
            Reason::LeaseEnded,
            &why,
            None,
            unix(now),
        )?;
        Ok(true)
    }

    /// Live artifacts holding a cluster lease: (id, operation key, token).
    pub fn held(&self) -> Result<Vec<(String, String, u64)>, StateError> {
        Ok(self
            .state
            .active()?
            .into_iter()
            .filter_map(|r| Some((r.id, r.operation_key?, r.cluster_token?)))
            .collect())
    }

    /// Removes a live artifact's grants and releases its operation key.
    pub fn revoke(
        &mut self,
        id: &str,
        why: &str,
        peer: Option<Peer>,
        grants: &mut dyn GrantTable,
        now: SystemTime,
    ) -> Result<usize, Refusal> {
        let base = About {
            artifact_id: Some(id),
            peer,
            ..About::default()
        };
        let row = match self.state.artifact(id) {
            Ok(Some(row)) => row,
            Ok(None) => {
                let r = Refusal {
                    code: Reason::UnknownArtifact,
                    why: format!("no artifact {id} was ever accepted on this node"),
                };
                return Err(self.refused(r, base));
            }
            Err(e) => return Err(self.refused(state_failed(&e), base)),
        };
        if row.state != "live" && row.state != "installing" {
            let r = Refusal {
                code: Reason::NotLive,
                why: format!("artifact {id} is already {}", row.state),
            };
            return Err(self.refused(r, base));
        }
        let ending = ending(&row, grants);
        let removed = grants.remove(row.grant_id).map_err(|e| Refusal {
            code: Reason::InstallFailed,
            why: format!("removing grant {}: {e}", row.grant_id),
        })?;
        self.settle_end(&row, ending, unix(now));
        self.end(&row, End::Revoked, Reason::Revoked, why, peer, unix(now))?;
        Ok(removed)
    }

    /// Ends `row` as `end` says and records why.
    fn end(
        &mut self,
        row: &ArtifactRow,
        end: End,
        reason: Reason,
        why: &str,
        peer: Option<Peer>,
        now: i64,
    ) -> Result<(), Refusal> {
        self.state
            .end(&row.id, end.state(), why, now)
            .map_err(|e| state_failed(&e))?;
        let detail = format!("grant {}: {why}", row.grant_id);
        self.note(&Record {
            detail: &detail,
            artifact_id: Some(&row.id),
            workload: Some(&row.workload),
            issuer: Some(&row.issuer),
            peer,
            envelope_sha256: Some(&row.envelope_sha256),
            grant_id: Some(row.grant_id),
            ..Record::new(end.outcome(), reason)
        })
        .map_err(|e| state_failed(&e))?;
        Ok(())
    }

    /// Retires used-up artifacts, then expired ones: their grants leave
    /// the kernel and their operation keys are released. Used up first, so
    /// an artifact whose last use came just before its expiry is settled
    /// as used (its operation completed), not as unused.
    pub fn retire(&mut self, grants: &mut dyn GrantTable, now: SystemTime) {
        if let Err(r) = self.consume(grants, now) {
            tracing::error!(error = %r, "retiring used-up artifacts");
        }
        if let Err(e) = self.expire(grants, now) {
            tracing::error!(error = %e, "retiring expired artifacts");
        }
    }

    /// Ends artifacts whose time is up: the kernel already refuses their
    /// grants; this removes the dead entries, frees the operation keys and
    /// records the expiry.
    pub fn expire(
        &mut self,
        grants: &mut dyn GrantTable,
        now: SystemTime,
    ) -> Result<usize, StateError> {
        let rows = self.state.expire(unix(now))?;
        for row in &rows {
            let ending = ending(row, grants);
            self.settle_end(row, ending, unix(now));
            if let Err(e) = grants.remove(row.grant_id) {
                tracing::warn!(grant = row.grant_id, error = %e, "removing an expired grant");
            }
            let detail = format!("grant {} expired at unix {}", row.grant_id, row.expires);
            self.note(&Record {
                detail: &detail,
                artifact_id: Some(&row.id),
                workload: Some(&row.workload),
                issuer: Some(&row.issuer),
                peer: None,
                envelope_sha256: Some(&row.envelope_sha256),
                grant_id: Some(row.grant_id),
                ..Record::new(Outcome::Expired, Reason::Expired)
            })?;
        }
        Ok(rows.len())
    }

    /// Ends live artifacts whose every kernel entry has used its last use:
    /// records `consumed`, removes the spent entries and frees the
    /// operation key. The id stays spent, so presenting the artifact again
    /// is refused `replayed`. (The state table has no `consumed` state; the
    /// row ends `expired` with the reason `consumed`.)
    pub fn consume(
        &mut self,
        grants: &mut dyn GrantTable,
        now: SystemTime,
    ) -> Result<usize, Refusal> {
        let usage = grants.usage().map_err(|e| Refusal {
            code: Reason::InstallFailed,
            why: format!("reading kernel grants: {e}"),
        })?;
        // Every submit retires first: without a used-up grant there is
        // nothing to end, and reading every live row (a cost that grows
        // with the live artifacts) is skipped.
        if !usage.values().any(|u| u.used_up) {
            return Ok(0);
        }
        let mut n = 0;
        for row in self.state.active().map_err(|e| state_failed(&e))? {
            if !usage.get(&row.grant_id).is_some_and(|u| u.used_up) {
                continue;
            }
            if let Err(e) = grants.remove(row.grant_id) {
                tracing::warn!(grant = row.grant_id, error = %e, "removing a used-up grant");
            }
            self.settle_end(&row, Ending::Used, unix(now));
            self.end(
                &row,
                End::Consumed,
                Reason::Consumed,
                "every use was consumed",
                None,
                unix(now),
            )?;
            n += 1;
        }
        Ok(n)
    }

    /// After a start: artifacts a crash left `installing` become live if
    /// their grants reached the kernel, else failed; live artifacts whose
    /// kernel entries are gone (pinned state removed) end as failed; and
    /// kernel grants in `scopes` (this policy's workloads) that no live
    /// artifact accounts for (the state was lost) are removed: a grant
    /// nobody can account for must not stay.
    pub fn settle(
        &mut self,
        grants: &mut dyn GrantTable,
        scopes: &std::collections::HashSet<u32>,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        let usage = grants.usage().map_err(|e| Refusal {
            code: Reason::InstallFailed,
            why: format!("reading kernel grants: {e}"),
        })?;
        let active = self.state.active().map_err(|e| state_failed(&e))?;
        for row in &active {
            let present = usage.contains_key(&row.grant_id);
            if present && row.state == "installing" {
                self.state
                    .mark_live(&row.id)
                    .map_err(|e| state_failed(&e))?;
            } else if !present {
                let why = if row.state == "installing" {
                    "the daemon stopped before the grants were installed"
                } else {
                    "the kernel holds no entries for this grant (pinned state was removed)"
                };
                // Never installed: unused. Installed and gone: nobody can
                // tell whether it was used, so it stays unsettled.
                let ending = if row.state == "installing" {
                    Ending::Unused
                } else {
                    Ending::Unknown
                };
                self.settle_end(row, ending, unix(now));
                self.end(
                    row,
                    End::Failed,
                    Reason::KernelStateLost,
                    why,
                    None,
                    unix(now),
                )?;
            }
        }
        let known: std::collections::HashSet<u64> = active.iter().map(|r| r.grant_id).collect();
        for (grant_id, u) in &usage {
            if scopes.contains(&u.scope_id) && !known.contains(grant_id) {
                let removed = grants.remove(*grant_id).map_err(|e| Refusal {
                    code: Reason::InstallFailed,
                    why: format!("removing orphan grant {grant_id}: {e}"),
                })?;
                let detail = format!(
                    "grant {grant_id} in scope {}: {removed} kernel entries no artifact in the \
                     state accounts for were removed",
                    acelogic_domain::policy::scope_text(u.scope_id)
                );
                self.note(&Record {
                    detail: &detail,
                    ..Record::new(Outcome::Revoked, Reason::OrphanGrant)
                })
                .map_err(|e| state_failed(&e))?;
            }
        }
        Ok(())
    }

    /// Re-checks every live artifact against a newly loaded policy and
    /// trust store; those they no longer permit are revoked (their grants
    /// removed now). The policy and keys in force decide, not the ones an
    /// artifact was accepted under:
    ///
    /// - the key that signed for its issuer is no longer trusted for that
    ///   issuer (removed, listed in `revokedKeyIds`, or now another name's
    ///   or role's): `key-revoked`;
    /// - approver keys it was accepted with are no longer trusted and the
    ///   approvals left are fewer than the policy requires: `key-revoked`
    ///   (enough left: it stays);
    /// - rows accepted before the state recorded keys (schema 1) cannot be
    ///   told apart, so they are revoked `key-revoked` (fail closed: a
    ///   grant whose signing keys are unknown must not outlive a removal of
    ///   those keys; artifacts live at most 24 h, so this ends at most one
    ///   day of grants once, at the upgrade);
    /// - the policy no longer admits it (`never`, not grantable, terms):
    ///   `policy-narrowed`.
    ///
    /// Returns each revoked artifact with why (the refusal's code is the
    /// cause: `key-revoked`, or the policy's code).
    pub fn recheck(
        &mut self,
        inputs: &Inputs<'_>,
        grants: &mut dyn GrantTable,
    ) -> Result<Vec<(String, Refusal)>, Refusal> {
        let mut revoked = Vec::new();
        for row in self.state.active().map_err(|e| state_failed(&e))? {
            let (approvals, lost) = match signing_keys(&row, inputs.trust) {
                Keys::Kept { approvals, lost } => (approvals, lost),
                Keys::Revoked(why) => {
                    let r = Refusal::new(Reason::KeyRevoked, why);
                    self.revoke_for(&row, &r, grants, inputs.now)?;
                    revoked.push((row.id.clone(), r));
                    continue;
                }
            };
            let refusal = match Artifact::from_json(row.payload.as_bytes()) {
                Err(e) => Some(Refusal {
                    code: e.code(),
                    why: e.to_string(),
                }),
                Ok(a) => {
                    let resolved = check::resolve_names(&a.capabilities);
                    let none = BTreeSet::new();
                    let settings = self.settings.clone();
                    let cx = Context {
                        settings: &settings,
                        policy: inputs.policy,
                        frozen: &none,
                        // Judge the terms, not the clock: expiry has its own path.
                        now: a
                            .not_before
                            .max(inputs.now.min(a.expires - Duration::from_secs(1))),
                        resolved: &resolved,
                        cgroups: inputs.cgroups,
                    };
                    check::admit(&a, approvals, &cx).err()
                }
            };
            let Some(mut r) = refusal else { continue };
            if r.code == Reason::ApprovalMissing && !lost.is_empty() {
                r = Refusal::new(
                    Reason::KeyRevoked,
                    format!("{}; {}", lost.join("; "), r.why),
                );
            }
            self.revoke_for(&row, &r, grants, inputs.now)?;
            revoked.push((row.id.clone(), r));
        }
        Ok(revoked)
    }

    /// Removes `row`'s grants and ends it `revoked` with the reload's
    /// reason: `key-revoked` for a key, else `policy-narrowed`.
    fn revoke_for(
        &mut self,
        row: &ArtifactRow,
        r: &Refusal,
        grants: &mut dyn GrantTable,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        let ending = ending(row, grants);
        if let Err(e) = grants.remove(row.grant_id) {
            tracing::error!(grant = row.grant_id, error = %e, "removing a revoked grant");
        }
        let (reason, why) = if r.code == Reason::KeyRevoked {
            (
                Reason::KeyRevoked,
                format!(
                    "the trust store no longer trusts a key it was accepted with: {}",
                    r.why
                ),
            )
        } else {
            (
                Reason::PolicyNarrowed,
                format!("the new policy no longer permits it: {r}"),
            )
        };
        self.settle_end(row, ending, unix(now));
        self.end(row, End::Revoked, reason, &why, None, unix(now))
    }

    /// Live artifacts with what the kernel says of their uses.
    pub fn live(&mut self, grants: &mut dyn GrantTable) -> Result<Vec<LiveGrant>, Refusal> {
        let usage = grants.usage().map_err(|e| Refusal {
            code: Reason::InstallFailed,
            why: format!("reading kernel grants: {e}"),
        })?;
        Ok(self
            .state
            .active()
            .map_err(|e| state_failed(&e))?
            .into_iter()
            .map(|row| {
                let u = usage.get(&row.grant_id);
                LiveGrant {
                    entries: u.map_or(0, |u| u.entries),
                    uses_left: u.map_or(Some(0), |u| u.uses_left),
                    row,
                }
            })
            .collect())
    }
}

/// How a live artifact ends: the state its row is left in and the
/// outcome its record says. (A used-up artifact's row ends `expired`; its
/// record says `consumed`.)
#[derive(Debug, Clone, Copy)]
enum End {
    Revoked,
    Consumed,
    Failed,
}

impl End {
    const fn state(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Consumed => "expired",
            Self::Failed => "failed",
        }
    }

    const fn outcome(self) -> Outcome {
        match self {
            Self::Revoked => Outcome::Revoked,
            Self::Consumed => Outcome::Consumed,
            Self::Failed => Outcome::Failed,
        }
    }
}

/// Whether an ending artifact used its grants, for the cluster store: a
/// one-use operation that ran is completed, one that did not is freed,
/// and one nobody can tell stays unsettled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Used,
    Unused,
    Unknown,
}

/// Reads `row`'s kernel usage (before its entries are removed).
fn ending(row: &ArtifactRow, grants: &mut dyn GrantTable) -> Ending {
    if row.cluster_token.is_none() {
        return Ending::Unused;
    }
    let Some(max) = Artifact::from_json(row.payload.as_bytes())
        .ok()
        .and_then(|a| a.max_uses)
    else {
        // Without maxUses nothing completes: it only holds a lease.
        return Ending::Unused;
    };
    match grants.usage() {
        Ok(usage) => match usage.get(&row.grant_id) {
            Some(u) if !u.used_up && u.uses_left == Some(u64::from(max.get())) => Ending::Unused,
            Some(_) => Ending::Used,
            None => Ending::Unknown,
        },
        Err(_) => Ending::Unknown,
    }
}

/// What the trust store in force says of the keys an artifact was
/// accepted with.
enum Keys {
    /// The issuer's key still counts; `approvals` approver keys still
    /// count, `lost` says which no longer do and why.
    Kept { approvals: usize, lost: Vec<String> },
    /// The artifact cannot stand: why.
    Revoked(String),
}

/// Why key `id` no longer counts as `role` for `name` under `trust`, or
/// `None` when it still does.
fn untrusted(trust: &TrustStore, id: &str, role: Role, name: &str) -> Option<String> {
    let Ok(key) = id.parse::<KeyId>() else {
        return Some(format!("{id} is not a key id"));
    };
    if trust.is_revoked(&key) {
        return Some("is listed in revokedKeyIds".to_owned());
    }
    match trust.key(&key) {
        None => Some("was removed from the trust store".to_owned()),
        Some(k) if k.role != role || k.name.as_str() != name => Some(format!(
            "now signs as {} {} in the trust store, not as {role} {name}",
            k.role, k.name
        )),
        Some(_) => None,
    }
}

fn signing_keys(row: &ArtifactRow, trust: &TrustStore) -> Keys {
    let (Some(issuer_key), Some(approver_keys)) = (&row.issuer_key, &row.approver_keys) else {
        return Keys::Revoked(
            "it was accepted before this node recorded signing keys (state schema 1): whether \
             a key since removed or revoked signed it cannot be told, so it is not kept (fail \
             closed); sign and submit a new artifact"
                .to_owned(),
        );
    };
    if let Some(why) = untrusted(trust, issuer_key, Role::Issuer, &row.issuer) {
        return Keys::Revoked(format!("issuer key {issuer_key} ({}) {why}", row.issuer));
    }
    let lost: Vec<String> = row
        .approvers
        .iter()
        .zip(approver_keys)
        .filter_map(|(name, id)| {
            untrusted(trust, id, Role::Approver, name)
                .map(|why| format!("approver key {id} ({name}) {why}"))
        })
        .collect();
    // Keys recorded for fewer names than approvers (a damaged row) count
    // only as far as they go.
    let counted = row.approvers.len().min(approver_keys.len());
    Keys::Kept {
        approvals: counted - lost.len(),
        lost,
    }
}

/// One line per authorization record, beside the kernel's decision lines.
#[must_use]
pub fn render(seq: i64, r: &Record<'_>) -> String {
    let mut line = format!("authz #{seq} {} [{}]", r.outcome, r.reason);
    if let Some(id) = r.artifact_id {
        line.push_str(&format!(" artifact={id}"));
    }
    if let Some(w) = r.workload {
        line.push_str(&format!(" workload={w}"));
    }
    if let Some(i) = r.issuer {
        line.push_str(&format!(" issuer={i}"));
    }
    if let Some(p) = r.peer {
        line.push_str(&format!(" peer=uid:{}", p.uid));
        if let Some(pid) = p.pid {
            line.push_str(&format!(",pid:{pid}"));
        }
    }
    if !r.detail.is_empty() {
        line.push_str(": ");
        line.push_str(r.detail);
    }
    line
}
