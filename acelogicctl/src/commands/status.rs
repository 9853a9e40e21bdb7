//! `acelogicctl status`: the daemon's state (policy, workloads, the
//! journal's backlog, warnings), readable or as JSON.

use std::path::Path;

use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
    output::when,
};
use acelogic_proto::agent as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub fn exec(args: &Args, socket: &Path) -> CtlResult<String> {
    let s = connect::block(fetch(socket))?;
    if args.json {
        Ok(serde_json::json!({
            "version": s.version, "node": s.node, "audience": s.audience, "epoch": s.epoch,
            "policySha256": s.policy_sha256, "policyLoadedUnix": s.policy_loaded_unix,
            "policyError": s.policy_error, "liveArtifacts": s.live_artifacts,
            "trustedKeys": s.trusted_keys, "warnings": s.warnings, "cgroupRoot": s.cgroup_root,
            "workloads": s.workloads.iter().map(|w| serde_json::json!({
                "name": w.name, "scopeId": w.scope_id, "mode": w.mode, "frozen": w.frozen,
                "cgroups": w.cgroups, "policy": w.policy})).collect::<Vec<_>>(),
            "lineage": s.lineage.as_ref().map(|l| serde_json::json!({
                "headSeq": l.head_seq, "ackedSeq": l.acked_seq,
                "pendingBytes": l.pending_bytes, "capBytes": l.cap_bytes,
                "collector": l.collector, "connected": l.connected,
                "lastError": l.last_error})),
            "cluster": s.cluster.as_ref().map(|c| serde_json::json!({
                "endpoints": c.endpoints, "prefix": c.prefix, "connected": c.connected,
                "lastError": c.last_error, "pendingSettlements": c.pending_settlements})),
        })
        .to_string())
    } else {
        Ok(render_status(&s))
    }
}

/// Asks the daemon for its state (`run` needs it too).
pub async fn fetch(socket: &Path) -> CtlResult<pb::StatusResponse> {
    let mut c = connect::daemon(socket).await?;
    Ok(c.status(pb::StatusRequest {})
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner())
}

/// Status as text.
#[must_use]
pub fn render_status(s: &pb::StatusResponse) -> String {
    let mut out = format!(
        "acelogic-agent {} on node {} (audience {}), epoch {}\npolicy sha256 {} loaded {}\n",
        s.version,
        s.node,
        s.audience,
        s.epoch,
        s.policy_sha256,
        when(s.policy_loaded_unix)
    );
    if !s.policy_error.is_empty() {
        out.push_str(&format!(
            "LAST RELOAD FAILED (old policy in force): {}\n",
            s.policy_error
        ));
    }
    out.push_str(&format!(
        "{} live artifact(s), {} trusted key(s)\n",
        s.live_artifacts, s.trusted_keys
    ));
    for w in &s.workloads {
        out.push_str(&format!(
            "workload {} scope={} mode={}{} cgroups=[{}]\n",
            w.name,
            acelogic_domain::policy::scope_text(w.scope_id),
            w.mode,
            if w.frozen { " FROZEN" } else { "" },
            w.cgroups.join(", ")
        ));
    }
    if let Some(l) = &s.lineage {
        out.push_str(&format!(
            "journal seq {} acknowledged {}; {} of {} byte(s) await the collector{}\n",
            l.head_seq,
            l.acked_seq,
            l.pending_bytes,
            l.cap_bytes,
            if l.pending_bytes >= l.cap_bytes {
                " (FULL: governed actions are denied)"
            } else {
                ""
            }
        ));
        if l.collector.is_empty() {
            out.push_str("collector: none configured; records stay in the journal\n");
        } else {
            out.push_str(&format!(
                "collector {} {}{}\n",
                l.collector,
                if l.connected {
                    "connected"
                } else {
                    "NOT connected"
                },
                if l.last_error.is_empty() {
                    String::new()
                } else {
                    format!(" (last error: {})", l.last_error)
                }
            ));
        }
    }
    match &s.cluster {
        None => out.push_str(
            "cluster store: none (single use and operation keys hold on this node only)\n",
        ),
        Some(c) => out.push_str(&format!(
            "cluster store {} (prefix {}) {}{}; {} settlement(s) pending\n",
            c.endpoints.join(","),
            c.prefix,
            if c.connected {
                "answering"
            } else {
                "NOT answering (artifacts that need it are refused)"
            },
            if c.last_error.is_empty() {
                String::new()
            } else {
                format!(" (last error: {})", c.last_error)
            },
            c.pending_settlements
        )),
    }
    for w in &s.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.trim_end().to_owned()
}
