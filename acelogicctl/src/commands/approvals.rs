//! `acelogicctl approvals ...`: the authority's approval queue. An
//! approver reads a request with its evidence and the requesting
//! session's lineage (`show`), then signs the exact artifact payload with
//! their own key, here, and uploads only the signature (`approve`), or
//! refuses with a reason the requester sees (`deny`).

use std::{fmt::Write as _, path::PathBuf};

use clap::Subcommand;

use crate::{
    CtlError, CtlResult, connect,
    error::{Peer, from_status},
    output::when,
};
use acelogic_domain::{
    Reason,
    artifact::{self, Artifact, PAYLOAD_TYPE, Role, SecretKey},
};
use acelogic_proto::{authority as pb, relay};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The authority (http:// or https://).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:7500")]
    authority: String,
    /// CA certificate (PEM) of an https authority.
    #[arg(long, value_name = "FILE")]
    authority_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Requests in a state (pending by default), newest first.
    List {
        /// pending, issued, denied, expired, refused or all.
        #[arg(long, default_value = "pending")]
        state: String,
        #[arg(long)]
        json: bool,
    },
    /// A request, its evidence, the payload to sign and, with --collector,
    /// the requesting session's lineage so far.
    Show {
        id: String,
        /// The lineage collector (http:// or https://).
        #[arg(long, value_name = "URL")]
        collector: Option<String>,
        #[arg(long, value_name = "FILE", requires = "collector")]
        collector_ca: Option<PathBuf>,
        /// A client certificate (PEM) for a collector that requires one
        /// (`acelogicctl certs issue --role reader`), and its key.
        #[arg(long, value_name = "FILE", requires_all = ["collector", "collector_key"])]
        collector_cert: Option<PathBuf>,
        #[arg(long, value_name = "FILE", requires = "collector_cert")]
        collector_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Sign the request's exact payload with your approver key and upload the signature.
    Approve {
        id: String,
        /// Your approver key file (acelogicctl keygen --role approver).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Refuse a request; the requester sees the reason.
    Deny {
        id: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long)]
        reason: String,
    },
}

async fn client(
    a: &Args,
) -> CtlResult<pb::authority_client::AuthorityClient<tonic::transport::Channel>> {
    let ep = acelogic_lineage::ship::endpoint(&a.authority, a.authority_ca.as_deref())
        .map_err(CtlError::input)?;
    let channel = ep.connect().await.map_err(|e| CtlError {
        exit: CtlError::UNREACHABLE,
        message: format!(
            "cannot reach the authority at {}: {e} (is acelogic-authority running? --authority)",
            a.authority
        ),
    })?;
    Ok(pb::authority_client::AuthorityClient::new(channel))
}

fn approver_key(path: &std::path::Path) -> CtlResult<SecretKey> {
    let key = SecretKey::read(path).map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    if key.role() != Role::Approver {
        return Err(CtlError::input(format!(
            "{} is {}'s key of role {:?}; approvals are signed with an approver key",
            path.display(),
            key.name(),
            key.role()
        )));
    }
    Ok(key)
}

pub fn exec(a: &Args) -> CtlResult<String> {
    connect::block(async {
        let mut c = client(a).await?;
        let peer = |s: tonic::Status| from_status(&s, Peer::Authority);
        match &a.command {
            Command::List { state, json } => {
                let r = c
                    .list_requests(pb::ListRequestsRequest {
                        state: state.clone(),
                        limit: 0,
                    })
                    .await
                    .map_err(peer)?
                    .into_inner();
                if *json {
                    return Ok(serde_json::Value::Array(
                        r.requests.iter().map(state_json).collect(),
                    )
                    .to_string());
                }
                if r.requests.is_empty() {
                    return Ok(if state == "all" {
                        "no requests".to_owned()
                    } else {
                        format!("no {state} requests")
                    });
                }
                Ok(r.requests
                    .iter()
                    .map(summary)
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            Command::Show {
                id,
                collector,
                collector_ca,
                collector_cert,
                collector_key,
                json,
            } => {
                let s = c
                    .show_request(pb::ShowRequestRequest {
                        request_id: id.clone(),
                    })
                    .await
                    .map_err(peer)?
                    .into_inner();
                let exec_id = s
                    .request
                    .as_ref()
                    .map(|r| r.exec_id.clone())
                    .unwrap_or_default();
                let lineage = match collector {
                    Some(url) if !exec_id.is_empty() => {
                        let t = connect::Target {
                            url: url.clone(),
                            ca: collector_ca.clone(),
                            identity: collector_cert.clone().zip(collector_key.clone()),
                        };
                        Some(
                            super::lineage::tree::tree(&t, &exec_id, *json)
                                .await
                                .unwrap_or_else(|e| format!("(lineage unavailable: {e})")),
                        )
                    }
                    _ => None,
                };
                if *json {
                    let mut v = state_json(&s);
                    v["lineage"] = lineage.map_or(serde_json::Value::Null, |l| {
                        serde_json::from_str(&l).unwrap_or(serde_json::Value::String(l))
                    });
                    return Ok(v.to_string());
                }
                let mut out = show(&s);
                if let Some(l) = lineage {
                    let _ = writeln!(out, "lineage of the requesting session ({exec_id}):");
                    for line in l.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
                Ok(out)
            }
            Command::Approve { id, key } => {
                let key = approver_key(key)?;
                let s = c
                    .show_request(pb::ShowRequestRequest {
                        request_id: id.clone(),
                    })
                    .await
                    .map_err(peer)?
                    .into_inner();
                if s.state != "pending" {
                    return Err(CtlError::refused(
                        Reason::NotPending,
                        format!("request {id} is {}", s.state),
                    ));
                }
                // Sign only what parses as the artifact the request shows.
                let payload = Artifact::from_json(&s.payload).map_err(|e| {
                    CtlError::refused(e.code(), format!("the payload to sign: {e}"))
                })?;
                if payload.id.to_string() != s.artifact_id || s.payload_type != PAYLOAD_TYPE {
                    return Err(CtlError::internal(
                        "the authority's payload does not match the request it shows; not signing",
                    ));
                }
                let signature = key
                    .sign_bytes(&artifact::pae(PAYLOAD_TYPE, &s.payload))
                    .to_vec();
                let r = c
                    .approve(pb::ApproveRequest {
                        request_id: id.clone(),
                        keyid: key.key_id().to_string(),
                        signature,
                    })
                    .await
                    .map_err(peer)?
                    .into_inner();
                Ok(match r.state.as_str() {
                    "issued" => format!(
                        "approved request {id} as {}: issued artifact {} ({} of {} approvals)",
                        key.name(),
                        r.artifact_id,
                        r.approvals.len(),
                        r.approvals_needed
                    ),
                    other => format!(
                        "approved request {id} as {}: {other}, {} of {} approvals",
                        key.name(),
                        r.approvals.len(),
                        r.approvals_needed
                    ),
                })
            }
            Command::Deny { id, key, reason } => {
                let key = approver_key(key)?;
                let signature = key.sign_bytes(&relay::deny_message(id, reason)).to_vec();
                let r = c
                    .deny(pb::DenyRequest {
                        request_id: id.clone(),
                        keyid: key.key_id().to_string(),
                        reason: reason.clone(),
                        signature,
                    })
                    .await
                    .map_err(peer)?
                    .into_inner();
                Ok(format!(
                    "denied request {id} as {}: {}",
                    r.denied_by, r.detail
                ))
            }
        }
    })
}

fn summary(s: &pb::RequestState) -> String {
    let r = s.request.clone().unwrap_or_default();
    format!(
        "{} {:<8} {:<7} {} on {}: {} ({} of {} approvals){}",
        s.request_id,
        s.state,
        s.tier,
        r.workload,
        r.node,
        r.reason.lines().next().unwrap_or_default(),
        s.approvals.len(),
        s.approvals_needed,
        if s.code.is_empty() {
            String::new()
        } else {
            format!(" [{}]", s.code)
        }
    )
}

fn show(s: &pb::RequestState) -> String {
    let r = s.request.clone().unwrap_or_default();
    let mut out = format!(
        "request {}: {} ({} tier, rule {})\n",
        s.request_id, s.state, s.tier, s.rule
    );
    let _ = writeln!(
        out,
        "  asked by workload {} on node {} (exec {}, pid {}, uid {})",
        r.workload, r.node, r.exec_id, r.pid, r.uid
    );
    let _ = writeln!(
        out,
        "  at {}; {} at {}",
        when(s.created_unix),
        if s.state == "pending" {
            "expires"
        } else {
            "valid until"
        },
        when(s.expires_unix)
    );
    let _ = writeln!(out, "  reason: {:?}", r.reason);
    if !r.operation_key.is_empty() {
        let _ = writeln!(out, "  operation key: {}", r.operation_key);
    }
    for c in &r.capabilities {
        let shown = serde_json::from_str::<acelogic_domain::capability::Capability>(c)
            .map_or_else(|_| c.clone(), |c| c.to_string());
        let _ = writeln!(out, "  capability: {shown}");
    }
    for e in &r.evidence {
        let _ = writeln!(
            out,
            "  evidence: {} sha256:{} ({} bytes{}) {}",
            e.name,
            e.sha256,
            e.size,
            if e.content.is_empty() {
                ""
            } else {
                ", attached"
            },
            e.uri
        );
    }
    let _ = writeln!(
        out,
        "  approvals: {} of {} from {}{}",
        s.approvals.len(),
        s.approvals_needed,
        s.approver_groups.join(", "),
        if s.distinct_groups {
            " (each from a different group)"
        } else {
            ""
        }
    );
    for a in &s.approvals {
        let _ = writeln!(
            out,
            "    {} ({}) at {}",
            a.approver,
            a.groups.join(", "),
            when(a.at_unix)
        );
    }
    if let Ok(p) = Artifact::from_json(&s.payload) {
        let _ = writeln!(
            out,
            "  artifact {}: {} for {} on {}, valid {} to {}, max uses {}",
            p.id,
            p.issuer,
            p.subject.workload,
            p.subject
                .node
                .map_or_else(|| "any node".to_owned(), |n| n.to_string()),
            artifact::format_timestamp(p.not_before),
            artifact::format_timestamp(p.expires),
            p.max_uses.map_or("unlimited".to_owned(), |n| n.to_string())
        );
    }
    if !s.code.is_empty() {
        let _ = writeln!(
            out,
            "  [{}] {}{}",
            s.code,
            s.detail,
            if s.denied_by.is_empty() {
                String::new()
            } else {
                format!(" (by {})", s.denied_by)
            }
        );
    }
    out
}

fn state_json(s: &pb::RequestState) -> serde_json::Value {
    let r = s.request.clone().unwrap_or_default();
    serde_json::json!({
        "requestId": s.request_id, "state": s.state, "tier": s.tier, "rule": s.rule,
        "code": s.code, "detail": s.detail, "artifactId": s.artifact_id,
        "workload": r.workload, "node": r.node, "execId": r.exec_id, "pid": r.pid,
        "reason": r.reason, "operationKey": r.operation_key, "capabilities": r.capabilities,
        "evidence": r.evidence.iter().map(|e| serde_json::json!({
            "name": e.name, "sha256": e.sha256, "uri": e.uri, "size": e.size,
            "attached": !e.content.is_empty()})).collect::<Vec<_>>(),
        "approvals": s.approvals.iter().map(|a| serde_json::json!({
            "approver": a.approver, "keyid": a.keyid, "groups": a.groups, "atUnix": a.at_unix})).collect::<Vec<_>>(),
        "approvalsNeeded": s.approvals_needed, "approverGroups": s.approver_groups,
        "distinctGroups": s.distinct_groups, "createdUnix": s.created_unix,
        "expiresUnix": s.expires_unix, "deniedBy": s.denied_by,
        "payloadSha256": if s.payload.is_empty() { String::new() } else {
            use sha2::Digest as _; hex::encode(sha2::Sha256::digest(&s.payload)) },
    })
}
