//! The daemon's own records (authorization outcomes, start, stop, policy
//! loads) into the journal, durably, before the outcome takes effect.

use std::{sync::Arc, time::SystemTime};

use acelogic_authz::{
    RecordSink,
    state::{Outcome, Record},
};
use acelogic_domain::PortError;
use acelogic_lineage::{
    chain,
    enrich::GrantDirectory,
    journal::Shared,
    pb::{self, record::Body},
};

/// The outcome an authorization record carries in lineage, or `None` for
/// the daemon's lifecycle records, which are about the daemon, not an
/// artifact. (The engine says "refused"; lineage says "rejected".)
#[must_use]
pub const fn authorization_outcome(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::DaemonStart
        | Outcome::DaemonStop
        | Outcome::PolicyLoaded
        | Outcome::PolicyRejected
        | Outcome::ClusterStore => None,
        Outcome::Refused => Some("rejected"),
        Outcome::Accepted
        | Outcome::Expired
        | Outcome::Consumed
        | Outcome::Revoked
        | Outcome::Failed
        | Outcome::Frozen
        | Outcome::Unfrozen
        | Outcome::OperationCompleted
        | Outcome::OperationReleased => Some(outcome.as_str()),
    }
}

/// Writes authorization and lifecycle records to the journal.
#[derive(Debug)]
pub struct JournalSink {
    journal: Arc<Shared>,
    node: String,
    epoch: u64,
    boot_id: [u8; 16],
    grants: GrantDirectory,
}

impl JournalSink {
    #[must_use]
    pub fn new(
        journal: Arc<Shared>,
        node: &str,
        epoch: u64,
        boot_id: [u8; 16],
        grants: GrantDirectory,
    ) -> Self {
        Self {
            journal,
            node: node.to_owned(),
            epoch,
            boot_id,
            grants,
        }
    }

    /// The lineage record of an authorization record.
    #[must_use]
    pub fn convert(&self, r: &Record<'_>) -> pb::Record {
        let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
        let body = if let Some(outcome) = authorization_outcome(r.outcome) {
            let peer_pid = r
                .peer
                .and_then(|p| p.pid)
                .and_then(|p| u32::try_from(p).ok());
            let peer_exec_id = peer_pid
                .and_then(|pid| {
                    acelogic_lineage::enrich::proc_stat(std::path::Path::new("/proc"), pid)
                        .map(|st| chain::exec_id(&self.boot_id, st.start_ticks, pid))
                })
                .unwrap_or_default();
            Body::Authorization(pb::Authorization {
                outcome: outcome.to_owned(),
                reason: r.reason.as_str().to_owned(),
                artifact_id: text(r.artifact_id),
                workload: text(r.workload),
                issuer: text(r.issuer),
                approvers: r.approvers.to_vec(),
                operation_key: text(r.operation_key),
                capabilities: r.capabilities.to_vec(),
                grant_ids: r.grant_id.into_iter().collect(),
                detail: r.detail.to_owned(),
                peer_pid: peer_pid.unwrap_or(0),
                peer_uid: r.peer.map_or(0, |p| p.uid),
                envelope_sha256: text(r.envelope_sha256),
                peer_exec_id,
            })
        } else {
            Body::Lifecycle(pb::Lifecycle {
                event: r.outcome.as_str().to_owned(),
                policy_sha256: text(r.policy_sha256),
                detail: r.detail.to_owned(),
            })
        };
        pb::Record {
            node: self.node.clone(),
            time_unix_nano: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            epoch: self.epoch,
            body: Some(body),
        }
    }
}

impl RecordSink for JournalSink {
    fn write(&mut self, r: &Record<'_>) -> Result<i64, PortError> {
        if r.outcome == Outcome::Accepted
            && let (Some(grant), Some(id)) = (r.grant_id, r.artifact_id)
        {
            self.grants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(grant, id.to_owned());
        }
        let range = self
            .journal
            .append(&[self.convert(r)])
            .map_err(PortError::new)?;
        let seq = range.map_or(0, |r| i64::try_from(*r.end()).unwrap_or(i64::MAX));
        // The daemon's log shows each journaled authorization record beside
        // the kernel's decision lines (the demo reads them there).
        println!("{}", acelogic_authz::render(seq, r));
        Ok(seq)
    }
}
