//! `acelogicctl artifact ...`: sign, cosign and inspect envelopes
//! offline; submit one to the node daemon.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use clap::Subcommand;

use crate::{
    CtlError, CtlResult, connect,
    error::{Peer, from_status},
    output::when,
};
use acelogic_domain::artifact::{self, SecretKey, TrustStore};
use acelogic_proto::agent as pb;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a payload from a request file (YAML) and sign it.
    Sign {
        #[arg(long)]
        request: PathBuf,
        /// Secret key files: the issuer's first, then approvers'.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Add an approver's signature to an envelope.
    Cosign {
        envelope: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Decode and verify an envelope offline against a trust store.
    Inspect {
        envelope: PathBuf,
        #[arg(long)]
        trust: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Submit an envelope to the node daemon.
    Submit {
        envelope: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn exec(cmd: &Command, socket: &Path) -> CtlResult<String> {
    match cmd {
        Command::Sign { request, keys, out } => {
            let refs: Vec<&Path> = keys.iter().map(PathBuf::as_path).collect();
            let id = sign(request, &refs, out.as_deref())?;
            eprintln!("signed artifact {id}");
            Ok(String::new())
        }
        Command::Cosign { envelope, key, out } => {
            cosign(envelope, key, out.as_deref())?;
            Ok(String::new())
        }
        Command::Inspect {
            envelope,
            trust,
            json,
        } => inspect(envelope, trust, *json),
        Command::Submit { envelope, json } => connect::block(submit(socket, envelope, *json)),
    }
}

fn read(path: &Path) -> CtlResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| CtlError::input(format!("{}: {e}", path.display())))
}

fn write_out(out: Option<&Path>, bytes: &[u8]) -> CtlResult {
    match out {
        Some(p) => {
            std::fs::write(p, bytes).map_err(|e| CtlError::input(format!("{}: {e}", p.display())))
        }
        None => {
            use std::io::Write as _;
            let mut o = std::io::stdout().lock();
            o.write_all(bytes)
                .and_then(|()| o.write_all(b"\n"))
                .map_err(CtlError::internal)
        }
    }
}

/// Builds a payload from a request file and signs it with `keys` (the
/// issuer first, then any approvers).
pub fn sign(request: &Path, keys: &[&Path], out: Option<&Path>) -> CtlResult<String> {
    let artifact = artifact::build_payload_from_file(request, SystemTime::now())
        .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    let mut secrets = Vec::new();
    for k in keys {
        secrets
            .push(SecretKey::read(k).map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?);
    }
    let payload = artifact
        .to_json()
        .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    let refs: Vec<&SecretKey> = secrets.iter().collect();
    let envelope = artifact::sign(&payload, &refs);
    write_out(out, &envelope.to_json())?;
    Ok(artifact.id.to_string())
}

/// Adds one more signature (an approver's) to an envelope.
pub fn cosign(envelope: &Path, key: &Path, out: Option<&Path>) -> CtlResult {
    let bytes = read(envelope)?;
    let secret =
        SecretKey::read(key).map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    let signed = artifact::cosign(&bytes, &secret).map_err(|e| CtlError::refused(e.code(), e))?;
    write_out(out, &signed)
}

/// Verifies an envelope offline against a trust store; returns a report.
pub fn inspect(envelope: &Path, trust: &Path, json: bool) -> CtlResult<String> {
    let store = TrustStore::load(trust)
        .map_err(|e| CtlError::input(format!("{}: [{}] {e}", trust.display(), e.code())))?;
    let bytes = read(envelope)?;
    let v = artifact::verify(&bytes, &store).map_err(|e| CtlError::refused(e.code(), e))?;
    let a = &v.artifact;
    if json {
        let payload = a.to_json().map_err(CtlError::internal)?;
        let payload: serde_json::Value =
            serde_json::from_slice(&payload).map_err(CtlError::internal)?;
        let report = serde_json::json!({
            "verified": true,
            "envelopeSha256": hex::encode(v.envelope_sha256),
            "issuerKey": v.issuer_key.to_string(),
            "approvers": v.approvers.iter().map(|x| serde_json::json!({"name": x.name, "keyId": x.key_id.to_string()})).collect::<Vec<_>>(),
            "ignoredSignatures": v.ignored.iter().map(|x| serde_json::json!({"keyid": x.keyid, "reason": x.reason.code()})).collect::<Vec<_>>(),
            "payload": payload,
        });
        return serde_json::to_string_pretty(&report).map_err(CtlError::internal);
    }
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14} {v}\n"));
    line(
        "verified",
        "yes (signatures; time, audience and policy are checked by the node)".into(),
    );
    line("id", a.id.to_string());
    line("issuer", format!("{} (key {})", a.issuer, v.issuer_key));
    let approvers: Vec<String> = v
        .approvers
        .iter()
        .map(|x| format!("{} (key {})", x.name, x.key_id))
        .collect();
    line(
        "approvers",
        if approvers.is_empty() {
            "none".into()
        } else {
            approvers.join(", ")
        },
    );
    line("workload", a.subject.workload.to_string());
    line("audience", a.audience.to_string());
    line("not before", artifact::format_timestamp(a.not_before));
    line("expires", artifact::format_timestamp(a.expires));
    line(
        "max uses",
        a.max_uses.map_or("unlimited".into(), |n| n.to_string()),
    );
    line(
        "operation",
        a.operation_key.clone().unwrap_or_else(|| "-".into()),
    );
    line(
        "approval ref",
        a.approval_ref.clone().unwrap_or_else(|| "-".into()),
    );
    line("reason", a.reason.clone());
    for c in &a.capabilities {
        line("capability", c.to_string());
    }
    for i in &v.ignored {
        line("ignored sig", format!("{} [{}]", i.keyid, i.reason.code()));
    }
    line(
        "envelope",
        format!("sha256 {}", hex::encode(v.envelope_sha256)),
    );
    Ok(s)
}

/// Hands an envelope to the daemon, which decides and installs its grants.
pub async fn submit(socket: &Path, envelope: &Path, json: bool) -> CtlResult<String> {
    let bytes = read(envelope)?;
    let mut c = connect::daemon(socket).await?;
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
            "fencingToken": r.fencing_token,
        })
        .to_string());
    }
    Ok(format!(
        "accepted artifact {} for workload {}: grant {} ({} kernel entries) until {}{}\n{}",
        r.artifact_id,
        r.workload,
        r.grant_id,
        r.kernel_entries,
        when(r.expires_unix),
        r.fencing_token
            .map_or_else(String::new, |t| format!("; fencing token {t}")),
        r.capabilities
            .iter()
            .map(|c| format!("  {c}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}
