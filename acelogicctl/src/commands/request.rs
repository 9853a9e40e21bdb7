//! `acelogicctl request`: ask the authority for capabilities through the
//! node daemon, which attests who is asking and relays the request. With
//! `--wait`, an issued artifact is installed before the command returns:
//! when it prints the grant, the grant is live.

use std::{path::PathBuf, time::Duration};

use sha2::{Digest as _, Sha256};

use crate::{
    CtlError, CtlResult, connect,
    error::{Peer, from_status},
    output::when,
};
use acelogic_domain::{Reason, capability::Capability};
use acelogic_proto::{agent as pb, authority as apb};

/// Evidence attached whole up to this size; larger files go by digest.
const ATTACH_LIMIT: u64 = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run this binary (repeatable).
    #[arg(long, value_name = "PATH")]
    exec: Vec<String>,
    /// Write this file or below this directory (repeatable).
    #[arg(long, value_name = "PATH")]
    write: Vec<String>,
    /// Connect to HOST:PORTS[/tcp|/udp] (repeatable; [v6]:443 for IPv6).
    #[arg(long, value_name = "HOST:PORTS")]
    connect: Vec<String>,
    /// A capability in the artifact's JSON form (repeatable).
    #[arg(long, value_name = "JSON")]
    capability: Vec<String>,
    /// Why (shown to approvers, kept in lineage).
    #[arg(long)]
    reason: String,
    #[arg(long, value_name = "KEY")]
    operation_key: Option<String>,
    /// How long the artifact should be valid [default: the longest the rules allow].
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    #[arg(long, value_name = "N")]
    max_uses: Option<u32>,
    /// A file the request is based on: attached when at most 64 KiB, else sent by digest (repeatable).
    #[arg(long, value_name = "FILE")]
    evidence: Vec<PathBuf>,
    /// Evidence kept elsewhere: NAME=SHA256@URI (repeatable).
    #[arg(long, value_name = "NAME=SHA256@URI")]
    evidence_ref: Vec<String>,
    /// The workload to ask for; only an ungoverned caller (an operator) names one.
    #[arg(long)]
    workload: Option<String>,
    /// An earlier artifact this one follows.
    #[arg(long, value_name = "ID")]
    parent: Option<String>,
    /// Wait until the request is issued, denied or expired (at most this long; default 10m).
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "10m", value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
    /// Also write the issued envelope here (it can be submitted again, on
    /// another node, or inspected).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// `HOST:PORTS[/PROTO]` as a connect capability.
fn connect_json(s: &str) -> CtlResult<serde_json::Value> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, p)) if matches!(p, "tcp" | "udp") => (r, p),
        _ => (s, "tcp"),
    };
    let (host, ports) = rest.rsplit_once(':').ok_or_else(|| {
        CtlError::input(format!(
            "--connect {s:?}: write HOST:PORTS, e.g. 10.0.0.5:443/tcp"
        ))
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(serde_json::json!({"connect": {"host": host, "ports": ports, "protocol": protocol}}))
}

/// Every capability asked for, checked here so a typo fails before the
/// daemon is asked.
fn capabilities(a: &Args) -> CtlResult<Vec<String>> {
    let mut values: Vec<serde_json::Value> = Vec::new();
    values.extend(
        a.exec
            .iter()
            .map(|p| serde_json::json!({"exec": {"path": p}})),
    );
    values.extend(
        a.write
            .iter()
            .map(|p| serde_json::json!({"write": {"path": p}})),
    );
    for c in &a.connect {
        values.push(connect_json(c)?);
    }
    for c in &a.capability {
        values.push(
            serde_json::from_str(c)
                .map_err(|e| CtlError::input(format!("--capability {c:?}: {e}")))?,
        );
    }
    if values.is_empty() {
        return Err(CtlError::input(
            "ask for at least one capability (--exec, --write, --connect or --capability)",
        ));
    }
    values
        .into_iter()
        .map(|v| {
            serde_json::from_value::<Capability>(v.clone())
                .map_err(|e| CtlError::input(format!("capability {v}: {e}")))?;
            Ok(v.to_string())
        })
        .collect()
}

fn evidence(a: &Args) -> CtlResult<Vec<apb::Evidence>> {
    let mut out = Vec::new();
    for path in &a.evidence {
        let bytes = std::fs::read(path)
            .map_err(|e| CtlError::input(format!("--evidence {}: {e}", path.display())))?;
        let size = bytes.len() as u64;
        out.push(apb::Evidence {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            sha256: hex::encode(Sha256::digest(&bytes)),
            uri: format!("file://{}", path.display()),
            size,
            content: if size <= ATTACH_LIMIT {
                bytes
            } else {
                Vec::new()
            },
        });
    }
    for r in &a.evidence_ref {
        let parsed = r
            .split_once('=')
            .and_then(|(name, rest)| rest.split_once('@').map(|(sha, uri)| (name, sha, uri)));
        let Some((name, sha, uri)) = parsed else {
            return Err(CtlError::input(format!(
                "--evidence-ref {r:?}: write NAME=SHA256@URI"
            )));
        };
        out.push(apb::Evidence {
            name: name.to_owned(),
            sha256: sha.to_ascii_lowercase(),
            uri: uri.to_owned(),
            ..apb::Evidence::default()
        });
    }
    Ok(out)
}

pub fn exec(a: &Args, socket: &std::path::Path) -> CtlResult<String> {
    let req = pb::RequestArtifactRequest {
        capabilities: capabilities(a)?,
        operation_key: a.operation_key.clone().unwrap_or_default(),
        reason: a.reason.clone(),
        ttl_seconds: a.ttl.map_or(0, |t| t.as_secs()),
        max_uses: a.max_uses.unwrap_or(0),
        evidence: evidence(a)?,
        workload: a.workload.clone().unwrap_or_default(),
        wait_seconds: a
            .wait
            .map_or(0, |w| u32::try_from(w.as_secs().max(1)).unwrap_or(u32::MAX)),
        parent: a.parent.clone().unwrap_or_default(),
    };
    let json = a.json;
    let waited = a.wait.is_some();
    let out = a.out.clone();
    connect::block(async move {
        let mut c = connect::daemon(socket).await?;
        let r = c
            .request_artifact(req)
            .await
            .map_err(|s| from_status(&s, Peer::Daemon))?
            .into_inner();
        if let (Some(path), Some(s)) = (&out, &r.request)
            && !s.envelope.is_empty()
        {
            std::fs::write(path, &s.envelope)
                .map_err(|e| CtlError::input(format!("--out {}: {e}", path.display())))?;
        }
        report(&r, json, waited)
    })
}

/// What the requester is told; settled-but-not-issued is a refusal.
fn report(r: &pb::RequestArtifactResponse, json: bool, waited: bool) -> CtlResult<String> {
    let s = r.request.clone().unwrap_or_default();
    if json {
        let out = serde_json::json!({
            "requestId": s.request_id, "state": s.state, "tier": s.tier, "rule": s.rule,
            "code": s.code, "detail": s.detail, "artifactId": s.artifact_id,
            "approvals": s.approvals.iter().map(|a| &a.approver).collect::<Vec<_>>(),
            "approvalsNeeded": s.approvals_needed, "expiresUnix": s.expires_unix,
            "grantId": r.grant.as_ref().map(|g| g.grant_id),
            "fencingToken": r.grant.as_ref().and_then(|g| g.fencing_token),
            "installError": r.install_error,
        });
        if matches!(s.state.as_str(), "pending" | "issued") && r.install_error.is_empty() {
            return Ok(out.to_string());
        }
        println!("{out}");
    }
    let head = format!(
        "request {} ({} tier, rule {})",
        s.request_id, s.tier, s.rule
    );
    match s.state.as_str() {
        "issued" if r.install_error.is_empty() => {
            let g = r.grant.clone().unwrap_or_default();
            Ok(format!(
                "{head}: issued artifact {}{}\ngrant {} live until {} ({} kernel entries){}\n{}",
                s.artifact_id,
                if s.approvals.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", approved by {}",
                        s.approvals
                            .iter()
                            .map(|a| a.approver.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                g.grant_id,
                when(g.expires_unix),
                g.kernel_entries,
                g.fencing_token
                    .map_or_else(String::new, |t| format!("; fencing token {t}")),
                g.capabilities
                    .iter()
                    .map(|c| format!("  {c}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        }
        "issued" => Err(CtlError::refused_remote(
            r.install_error
                .split_once(": ")
                .map_or("install-failed", |x| x.0),
            &format!(
                "{head}: artifact {} was issued but this node refused it: {}",
                s.artifact_id, r.install_error
            ),
        )),
        "pending" => {
            let line = format!(
                "{head}: pending, {} of {} approval(s) from {}{}; expires at {}",
                s.approvals.len(),
                s.approvals_needed,
                s.approver_groups.join(", "),
                if s.distinct_groups {
                    " (each from a different group)"
                } else {
                    ""
                },
                when(s.expires_unix)
            );
            if waited {
                Err(CtlError::refused(
                    Reason::NotPending,
                    format!("{line}; still waiting when --wait ran out"),
                ))
            } else {
                Ok(line)
            }
        }
        _ => Err(CtlError::refused_remote(
            &s.code,
            &format!(
                "{head}: {}{}: {}",
                s.state,
                if s.denied_by.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", s.denied_by)
                },
                s.detail
            ),
        )),
    }
}
