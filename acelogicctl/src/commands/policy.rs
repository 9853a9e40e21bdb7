//! `acelogicctl policy check`: load a policy directory as the daemon
//! would, so a broken one is found before a reload keeps the old, and
//! the issuing policies in it as the authority would.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::{CtlError, CtlResult};
use acelogic_domain::{
    Reason,
    artifact::{Role, TrustStore},
    issuing, policy,
};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a policy directory as the daemon would; exit 1 with
    /// file:line:column errors when it is invalid.
    Check {
        dir: PathBuf,
        /// [default: DIR/trust.yaml]
        #[arg(long)]
        trust: Option<PathBuf>,
    },
}

pub fn exec(cmd: &Command) -> CtlResult<String> {
    match cmd {
        Command::Check { dir, trust } => policy_check(dir, trust.as_deref()),
    }
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
    for path in loaded.skipped.iter().filter(|p| **p != trust) {
        s.push_str(&issuing_check(path, &loaded.set, &store)?);
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

/// An issuing policy among the skipped files, checked as the authority
/// loads it, and against the workloads and keys beside it (warnings:
/// the authority may run with other inputs). A file of another kind
/// (a trust store) says nothing.
fn issuing_check(path: &Path, set: &policy::PolicySet, trust: &TrustStore) -> CtlResult<String> {
    let p = match issuing::load_file(path) {
        Ok(p) => p,
        Err(e) if e.0.iter().all(|l| l.code() == Reason::WrongKind) => return Ok(String::new()),
        Err(e) => {
            return Err(CtlError {
                exit: CtlError::REFUSED,
                message: format!(
                    "invalid issuing policy; an authority would keep its current one:\n{e}"
                ),
            });
        }
    };
    let mut s = String::new();
    let named = |name: &str, role: Role| {
        trust
            .keys()
            .any(|k| k.name.as_str() == name && k.role == role)
    };
    if !named(&p.issuer, Role::Issuer) {
        s.push_str(&format!(
            "warning: {}: issuer {:?} has no issuer key in the trust store; nodes would refuse what it issues\n",
            path.display(),
            p.issuer
        ));
    }
    for (group, members) in &p.groups {
        for m in members.iter().filter(|m| !named(m, Role::Approver)) {
            s.push_str(&format!(
                "warning: {}: approver {m:?} of group {group} has no approver key in the trust store\n",
                path.display()
            ));
        }
    }
    for rule in &p.rules {
        for w in rule
            .workloads
            .iter()
            .filter(|w| *w != issuing::ANY_WORKLOAD && !set.workloads.contains_key(*w))
        {
            s.push_str(&format!(
                "warning: {}: rule {} names workload {w:?}, which no capability policy here defines\n",
                path.display(),
                rule.name
            ));
        }
    }
    s.push_str(&format!(
        "issuing policy {} from {}: {} rule(s), issues as {} for audience {}\n",
        p.name,
        path.display(),
        p.rules.len(),
        p.issuer,
        p.audience
    ));
    Ok(s)
}
