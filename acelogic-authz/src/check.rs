//! The checks between a verified artifact and this node's policy: time,
//! audience, subject, frozen, grantable/never, TTL, uses, approvals,
//! operation key. No kernel, no store, no clock of its own, so each
//! refusal is unit-tested with a fixed `now`; the filesystem is read only
//! to check `never` on what paths lead to (symlinks, and the identity of
//! binaries: [`crate::never`]).

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    time::{Duration, SystemTime},
};

use acelogic_domain::{
    artifact::Artifact,
    capability::{Capability, Host},
    policy::{PolicySet, Terms, Workload},
};

use acelogic_domain::{Reason, Refusal};

use crate::never::Guard;

/// What this node checks artifacts against, besides the policy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The audience this node accepts (e.g. the cluster's name).
    pub audience: String,
    /// This node's name (an artifact may name one node).
    pub node: String,
    /// How far in the future `notBefore` may be and still count as
    /// started (clocks of signer and node differ). Expiry gets no grace:
    /// a kernel grant never outlives its artifact.
    pub clock_skew: Duration,
}

/// Addresses of the DNS names an artifact's capabilities use, looked up
/// once per decision so the policy check and the kernel entries agree.
pub type Resolved = HashMap<String, Vec<IpAddr>>;

/// Looks up every name in `caps` with the system resolver.
#[must_use]
pub fn resolve_names(caps: &[Capability]) -> Resolved {
    use std::net::ToSocketAddrs as _;
    let mut out = Resolved::new();
    for cap in caps {
        if let Capability::Connect(c) = cap
            && let Host::Name(name) = &c.host
            && !out.contains_key(name)
        {
            let mut addrs: Vec<IpAddr> = (name.as_str(), 0)
                .to_socket_addrs()
                .map(|it| it.map(|a| a.ip()).collect())
                .unwrap_or_default();
            addrs.sort_unstable();
            addrs.dedup();
            out.insert(name.clone(), addrs);
        }
    }
    out
}

/// Everything the checks need besides the artifact.
#[derive(Debug)]
pub struct Context<'a> {
    pub settings: &'a Settings,
    pub policy: &'a PolicySet,
    pub frozen: &'a BTreeSet<String>,
    pub now: SystemTime,
    pub resolved: &'a Resolved,
    /// Governed cgroup directories of each workload, for `subject.cgroup`.
    pub cgroups: &'a HashMap<String, Vec<std::path::PathBuf>>,
}

/// An artifact that passed every check.
#[derive(Debug)]
pub struct Admitted<'p> {
    pub workload: &'p Workload,
    pub terms: Terms,
    /// The workload's never binaries as listed for this decision: the
    /// grants are checked against them again on the opened descriptors.
    pub never: Guard,
}

fn refuse(code: Reason, why: impl Into<String>) -> Refusal {
    Refusal {
        code,
        why: why.into(),
    }
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Checks `artifact` (signed by its issuer and `approvals` distinct
/// approvers) against the node and its policy.
pub fn admit<'p>(
    artifact: &Artifact,
    approvals: usize,
    cx: &Context<'p>,
) -> Result<Admitted<'p>, Refusal> {
    if artifact.not_before > cx.now + cx.settings.clock_skew {
        let early = artifact
            .not_before
            .duration_since(cx.now)
            .unwrap_or_default();
        return Err(refuse(
            Reason::NotYetValid,
            format!(
                "notBefore is {} in the future (allowed clock skew {})",
                secs(early),
                secs(cx.settings.clock_skew)
            ),
        ));
    }
    if cx.now >= artifact.expires {
        let ago = cx.now.duration_since(artifact.expires).unwrap_or_default();
        return Err(refuse(
            Reason::Expired,
            format!("expired {} ago", secs(ago)),
        ));
    }
    if artifact.audience.as_str() != cx.settings.audience {
        return Err(refuse(
            Reason::WrongAudience,
            format!(
                "audience {:?} is not this node's {:?}",
                artifact.audience.as_str(),
                cx.settings.audience
            ),
        ));
    }
    if let Some(node) = &artifact.subject.node
        && node.as_str() != cx.settings.node
    {
        return Err(refuse(
            Reason::WrongNode,
            format!(
                "subject.node {:?} is not this node ({:?})",
                node.as_str(),
                cx.settings.node
            ),
        ));
    }
    let name = artifact.subject.workload.as_str();
    let Some(workload) = cx.policy.workloads.get(name) else {
        return Err(refuse(
            Reason::UnknownWorkload,
            format!("no loaded policy defines workload {name:?}"),
        ));
    };
    if let Some(cg) = &artifact.subject.cgroup {
        let dirs = cx.cgroups.get(name).map(Vec::as_slice).unwrap_or_default();
        let inside = dirs.iter().any(|d| cg.as_path().starts_with(d))
            || workload.cgroups.iter().any(|p| p.matches(cg.as_path()));
        if !inside {
            return Err(refuse(
                Reason::WrongCgroup,
                format!("subject.cgroup {cg} is not governed by workload {name:?}"),
            ));
        }
    }
    if cx.frozen.contains(name) {
        return Err(refuse(
            Reason::WorkloadFrozen,
            format!("workload {name:?} is frozen; unfreeze it before granting"),
        ));
    }
    let lookup = |h: &Host| match h {
        Host::Name(n) => cx.resolved.get(n).cloned().unwrap_or_default(),
        Host::Net(_) => Vec::new(),
    };
    let terms = workload
        .admit(artifact.issuer.as_str(), &artifact.capabilities, &lookup)
        .map_err(|r| Refusal {
            code: r.code,
            why: format!(
                "capabilities[{}] ({}): {}",
                r.index, artifact.capabilities[r.index], r.why
            ),
        })?;
    // Policies match paths; the kernel matches the object a path leads
    // to. An artifact naming a symlink (or a path through one) is also
    // checked as the path it resolves to, so `never` cannot be bypassed
    // with a link to a forbidden binary or directory.
    // Only `never` applies to the resolved form: grantable rules are
    // written with the paths people use (`/bin/ls` on a merged-/usr host).
    let resolved_caps = canonical(&artifact.capabilities);
    if resolved_caps != artifact.capabilities
        && let Err(r) = workload.admit(artifact.issuer.as_str(), &resolved_caps, &lookup)
        && r.code == "never"
    {
        return Err(Refusal {
            code: r.code,
            why: format!(
                "capabilities[{}] ({}, resolved through symlinks to {}): {}",
                r.index, artifact.capabilities[r.index], resolved_caps[r.index], r.why
            ),
        });
    }
    // A hard link to or a copy of a never binary, under any name, inside a
    // grantable directory: the kernel would match the never binary's inode
    // (or its content under another inode).
    let never = Guard::for_caps(workload, &artifact.capabilities);
    never.check_caps(&artifact.capabilities)?;
    check_terms(artifact, approvals, &terms, workload)?;
    Ok(Admitted {
        workload,
        terms,
        never,
    })
}

/// The capabilities with exec and write paths resolved through symlinks
/// (paths that do not exist, or do not resolve to a valid path, stay).
fn canonical(caps: &[Capability]) -> Vec<Capability> {
    let resolve = |p: &acelogic_domain::capability::AbsPath| {
        std::fs::canonicalize(p.as_path())
            .ok()
            .and_then(|c| c.to_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| p.clone())
    };
    caps.iter()
        .map(|c| match c {
            Capability::Exec(e) => Capability::Exec(acelogic_domain::capability::ExecCap {
                path: resolve(&e.path),
                sha256: e.sha256,
            }),
            Capability::Write(w) => Capability::Write(acelogic_domain::capability::WriteCap {
                path: resolve(&w.path),
            }),
            Capability::Connect(_) => c.clone(),
        })
        .collect()
}

/// TTL, uses, approvals and operation key against what the matched
/// grantable rules allow.
fn check_terms(
    artifact: &Artifact,
    approvals: usize,
    terms: &Terms,
    workload: &Workload,
) -> Result<(), Refusal> {
    let rules = terms.rules.join(", ");
    let window = artifact
        .expires
        .duration_since(artifact.not_before)
        .unwrap_or_default();
    if window > terms.max_ttl {
        return Err(refuse(
            Reason::TtlExceeded,
            format!(
                "valid for {} but rule(s) {rules} of workload {:?} allow at most {}",
                secs(window),
                workload.name,
                secs(terms.max_ttl)
            ),
        ));
    }
    if let Some(limit) = terms.max_uses {
        match artifact.max_uses {
            None => {
                return Err(refuse(
                    Reason::UsesUnbounded,
                    format!(
                        "rule(s) {rules} require maxUses (at most {limit}); the artifact sets none"
                    ),
                ));
            }
            Some(n) if n.get() > limit => {
                return Err(refuse(
                    Reason::UsesExceeded,
                    format!("maxUses {n} is over the limit {limit} of rule(s) {rules}"),
                ));
            }
            Some(_) => {}
        }
    }
    let required = usize::try_from(terms.approvals).unwrap_or(usize::MAX);
    if approvals < required {
        return Err(refuse(
            Reason::ApprovalMissing,
            format!(
                "rule(s) {rules} require {required} approver signature(s); the artifact has {approvals}"
            ),
        ));
    }
    if terms.operation_key_required && artifact.operation_key.is_none() {
        return Err(refuse(
            Reason::OperationKeyRequired,
            format!("rule(s) {rules} require an operationKey"),
        ));
    }
    Ok(())
}
