//! Commands that need no daemon: keys, signing, offline inspection,
//! policy checks.

use std::{path::Path, time::SystemTime};

use super::{CtlError, CtlResult};
use acelogic_domain::{
    artifact::{self, Role, SecretKey, TrustStore},
    policy,
};

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

/// Writes a new key (mode 0600, never over an existing file) and prints
/// its trust-store entry.
pub fn keygen(name: &str, role: Role, out: &Path) -> CtlResult<String> {
    let key = SecretKey::generate(name, role)
        .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    key.write_new(out)
        .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    Ok(key.trust_entry_yaml())
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

/// Loads a policy directory and its trust store as the daemon would.
pub fn policy_check(dir: &Path, trust: Option<&Path>) -> CtlResult<String> {
    let trust = trust.map_or_else(|| dir.join("trust.yaml"), Path::to_path_buf);
    let (loaded, store) = policy::load_inputs(dir, &trust).map_err(|why| CtlError {
        exit: CtlError::REFUSED,
        message: format!("invalid policy; a daemon would keep its current one:\n{why}"),
    })?;
    let mut s = String::new();
    for w in &loaded.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    for w in loaded.set.workloads.values() {
        s.push_str(&format!(
            "workload {} (scope {:#010x}, {:?}) from {}: {} cgroup pattern(s), {} grantable rule(s)\n",
            w.name,
            w.scope_id,
            w.mode,
            w.source.display(),
            w.cgroups.len(),
            w.grantable.len()
        ));
    }
    s.push_str(&format!(
        "ok: {} workload(s) in {} file(s), {} trusted key(s); policy sha256 {}\n",
        loaded.set.workloads.len(),
        loaded.set.files.len(),
        store.keys().count(),
        hex::encode(loaded.set.sha256)
    ));
    Ok(s)
}
