//! Commands that talk to the node daemon over its socket.

use std::path::Path;

use tonic::transport::Channel;

use super::{CtlError, CtlResult, Peer, from_status};
use acelogic_proto::{agent as pb, agent::agent_client::AgentClient, client};

/// Connects, mapping failure to exit code 3.
pub async fn connect(socket: &Path) -> CtlResult<AgentClient<Channel>> {
    client::connect(socket).await.map_err(|e| CtlError {
        exit: CtlError::UNREACHABLE,
        message: format!(
            "cannot reach the daemon at {}: {e} (is acelogic-agent running? --socket)",
            socket.display()
        ),
    })
}

fn when(unix: i64) -> String {
    u64::try_from(unix).map_or_else(
        |_| unix.to_string(),
        |s| {
            acelogic_domain::artifact::format_timestamp(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
        },
    )
}

pub async fn submit(socket: &Path, envelope: &Path, json: bool) -> CtlResult<String> {
    let bytes = std::fs::read(envelope)
        .map_err(|e| CtlError::input(format!("{}: {e}", envelope.display())))?;
    let mut c = connect(socket).await?;
    let r = c
        .submit_artifact(pb::SubmitArtifactRequest { envelope: bytes })
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner();
    if json {
        return Ok(serde_json::json!({
            "artifactId": r.artifact_id, "workload": r.workload, "grantId": r.grant_id,
            "expiresUnix": r.expires_unix, "capabilities": r.capabilities,
            "kernelEntries": r.kernel_entries, "approvers": r.approvers,
        })
        .to_string());
    }
    Ok(format!(
        "accepted artifact {} for workload {}: grant {} ({} kernel entries) until {}\n{}",
        r.artifact_id,
        r.workload,
        r.grant_id,
        r.kernel_entries,
        when(r.expires_unix),
        r.capabilities
            .iter()
            .map(|c| format!("  {c}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

pub async fn revoke(socket: &Path, id: &str, reason: &str) -> CtlResult<String> {
    let mut c = connect(socket).await?;
    let r = c
        .revoke_artifact(pb::RevokeArtifactRequest {
            artifact_id: id.to_owned(),
            reason: reason.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner();
    Ok(format!(
        "revoked artifact {id}: {} kernel entries removed",
        r.removed
    ))
}

pub async fn grants(socket: &Path, workload: &str, json: bool) -> CtlResult<String> {
    let mut c = connect(socket).await?;
    let r = c
        .list_grants(pb::ListGrantsRequest {
            workload: workload.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner();
    if json {
        let rows: Vec<_> = r
            .grants
            .iter()
            .map(|g| {
                serde_json::json!({
                    "artifactId": g.artifact_id, "workload": g.workload, "grantId": g.grant_id,
                    "capabilities": g.capabilities, "expiresUnix": g.expires_unix,
                    "usesLeft": g.uses_left, "operationKey": g.operation_key,
                    "issuer": g.issuer, "approvers": g.approvers,
                })
            })
            .collect();
        return Ok(serde_json::Value::Array(rows).to_string());
    }
    if r.grants.is_empty() {
        return Ok("no live grants".to_owned());
    }
    let mut s = String::new();
    for g in &r.grants {
        s.push_str(&format!(
            "{} workload={} grant={} until {} uses_left={} op={} issuer={} approvers=[{}]\n",
            g.artifact_id,
            g.workload,
            g.grant_id,
            when(g.expires_unix),
            g.uses_left
                .map_or("unlimited".to_owned(), |n| n.to_string()),
            if g.operation_key.is_empty() {
                "-"
            } else {
                &g.operation_key
            },
            g.issuer,
            g.approvers.join(",")
        ));
        for c in &g.capabilities {
            s.push_str(&format!("    {c}\n"));
        }
    }
    Ok(s.trim_end().to_owned())
}

pub async fn freeze(
    socket: &Path,
    workload: &str,
    reason: &str,
    frozen: bool,
) -> CtlResult<String> {
    let mut c = connect(socket).await?;
    let req = pb::FreezeRequest {
        workload: workload.to_owned(),
        reason: reason.to_owned(),
    };
    let r = if frozen {
        c.freeze(req).await
    } else {
        c.unfreeze(req).await
    };
    r.map_err(|s| from_status(&s, Peer::Daemon))?;
    Ok(format!(
        "workload {workload} {}",
        if frozen {
            "frozen: every action is denied"
        } else {
            "unfrozen"
        }
    ))
}

pub async fn status(socket: &Path) -> CtlResult<pb::StatusResponse> {
    let mut c = connect(socket).await?;
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
            "workload {} scope={:#010x} mode={}{} cgroups=[{}]\n",
            w.name,
            w.scope_id,
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
    for w in &s.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.trim_end().to_owned()
}
