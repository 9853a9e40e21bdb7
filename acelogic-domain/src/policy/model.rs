//! The compiled policy: what the daemon installs (baselines, cgroups,
//! modes) and what admission consults (grantable rules, never).

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{CgroupPattern, Located};
use crate::capability::{AbsPath, ConnectCap, PathPattern};

/// Everything a policy directory defines, after every check passed.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub set: PolicySet,
    /// Problems that did not stop the load (see the module's code table).
    pub warnings: Vec<Located>,
    /// Files that are not policies and are loaded elsewhere (`kind:
    /// TrustStore`, `kind: IssuingPolicy`).
    pub skipped: Vec<PathBuf>,
}

/// All workloads of all policy files, by workload name.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub workloads: BTreeMap<String, Workload>,
    /// SHA-256 over the loaded policy files, sorted by file name: for each,
    /// the file name's length (u64 big-endian), the name, the contents'
    /// length (u64 big-endian) and the contents. Lineage records it as the
    /// policy hash, so a decision can be tied to the exact text in force.
    pub sha256: [u8; 32],
    /// The policy files loaded, sorted by file name.
    pub files: Vec<PathBuf>,
}

impl PolicySet {
    /// The workload that owns `cgroup` (relative to the cgroup2 mount,
    /// absolute form), if any pattern names it.
    #[must_use]
    pub fn owner_of(&self, cgroup: &std::path::Path) -> Option<&Workload> {
        self.workloads
            .values()
            .find(|w| w.cgroups.iter().any(|c| c.matches(cgroup)))
    }

    /// The workload with scope id `scope_id`.
    #[must_use]
    pub fn by_scope(&self, scope_id: u32) -> Option<&Workload> {
        self.workloads.values().find(|w| w.scope_id == scope_id)
    }
}

/// One governed workload with the rules of the policy that defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    /// The kernel's id for this workload, from [`scope_id`].
    pub scope_id: u32,
    /// `metadata.name` of the defining policy.
    pub policy: String,
    /// The file that defines it.
    pub source: PathBuf,
    pub cgroups: Vec<CgroupPattern>,
    pub mode: Mode,
    pub baseline: Baseline,
    pub grantable: Vec<GrantRule>,
    pub never: Never,
}

impl Workload {
    /// The existing cgroup directories (full paths below `cgroup2_mount`)
    /// its patterns name now, sorted, each once.
    #[must_use]
    pub fn cgroup_dirs(&self, cgroup2_mount: &std::path::Path) -> Vec<PathBuf> {
        let dirs: std::collections::BTreeSet<PathBuf> = self
            .cgroups
            .iter()
            .flat_map(|c| c.expand(cgroup2_mount))
            .collect();
        dirs.into_iter().collect()
    }
}

/// How a workload's scope treats actions nothing allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny them.
    #[default]
    Enforce,
    /// Record them (verdict `audit`) and let them through: for trying a
    /// policy on a live workload before enforcing it.
    Audit,
}

/// What a workload may do with no artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Exact binaries; the kernel matches each by (device, inode).
    pub exec: Vec<AbsPath>,
    /// Executable mappings (the dynamic loader, shared libraries).
    pub libraries: Vec<PathPattern>,
    pub write: Vec<PathPattern>,
    pub connect: Vec<ConnectCap>,
    /// Unix sockets it may connect to.
    pub unix_connect: Vec<AbsPath>,
}

/// What artifacts signed by `issuers` may grant, and on which terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRule {
    pub name: String,
    pub exec: Vec<PathPattern>,
    pub write: Vec<PathPattern>,
    pub connect: Vec<ConnectCap>,
    /// Trust-store issuer names allowed to sign artifacts under this rule.
    pub issuers: Vec<String>,
    /// Longest validity an artifact under this rule may have (≤ 24 h).
    pub max_ttl: Duration,
    /// Most uses an artifact may allow; `None`: no limit from this rule.
    pub max_uses: Option<u32>,
    /// Approver signatures required besides the issuer's.
    pub approvals: u32,
    /// The artifact must carry an operation key (one live artifact per
    /// key).
    pub operation_key_required: bool,
    /// How long the cluster store keeps an operation completed by a
    /// one-use artifact under this rule (`None`: the default, 24 h).
    pub completed_retention: Option<Duration>,
}

/// What no artifact can grant, however validly signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Never {
    pub exec: Vec<PathPattern>,
    pub write: Vec<PathPattern>,
    pub connect: Vec<ConnectCap>,
}

/// The scope id of workload `name`: the first 4 bytes (big-endian) of
/// SHA-256(`acelogic-scope:` + name) with the top bit set. It depends on
/// the name alone, so it is the same on every node, across restarts and
/// reloads, and lineage keeps meaning the same workload; the top bit keeps
/// it clear of 0 and of the small ids tests register by hand.
#[must_use]
pub fn scope_id(name: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(b"acelogic-scope:")
        .chain_update(name.as_bytes())
        .finalize();
    let first = [digest[0], digest[1], digest[2], digest[3]];
    u32::from_be_bytes(first) | 0x8000_0000
}

/// A scope id as every text output writes it: `0x` and 8 hex digits
/// (JSON keeps the number).
#[must_use]
pub fn scope_text(scope_id: u32) -> String {
    format!("{scope_id:#010x}")
}

/// The policy hash of a set of (file name, contents), already sorted.
pub(super) fn set_hash<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (name, text) in files {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_be_bytes());
        h.update(text);
    }
    h.finalize().into()
}
