//! What one node daemon holds: the kernel, the engine, the policy and
//! trust store in force, and the governed cgroups. Applying a policy
//! defines each workload's scope, governs its cgroups and syncs its
//! baseline; a reload re-checks live artifacts against the new policy.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use acelogic_authz::{
    Authorizer, GrantTable, Inputs, Usage,
    state::{Outcome, Record},
};
use acelogic_common::rules::rights;
use acelogic_domain::{
    PortError, Reason, Refusal,
    artifact::TrustStore,
    capability::{Host, PathPattern},
    grant::{GrantSpec, NetTarget, kernel_dev},
    policy::{PolicySet, Workload},
};
use acelogic_kernel::{Kernel, baseline::Wanted};

/// The node's state behind the API.
#[derive(Debug)]
pub struct Node {
    pub kernel: Kernel,
    pub authz: Authorizer,
    pub policy: PolicySet,
    pub trust: TrustStore,
    pub frozen: BTreeSet<String>,
    /// Governed directories per workload, as last applied.
    pub cgroups: HashMap<String, Vec<PathBuf>>,
    pub cgroup_root: PathBuf,
    /// The daemon's socket: every workload's baseline may connect to it.
    pub socket: PathBuf,
    pub epoch: u64,
    pub policy_loaded: SystemTime,
    /// Why the last reload failed; empty after a good one.
    pub policy_error: String,
    /// Problems of the policy in force on this node (missing baseline
    /// paths, unresolvable names), shown by `Status`.
    pub warnings: Vec<String>,
    /// The lineage journal, for `Status`.
    pub journal: Option<std::sync::Arc<acelogic_lineage::journal::Shared>>,
    /// The collector endpoint and the shipper's state, for `Status`.
    pub shipping: Option<(
        String,
        tokio::sync::watch::Receiver<acelogic_lineage::ship::ShipStatus>,
    )>,
    /// The policy inputs as last read (see `daemon::fingerprint`).
    pub inputs_seen: crate::daemon::Fingerprint,
}

/// True when the cgroup `rel` (as `/proc/PID/cgroup` shows it) is at or
/// below one of `governed`. A path that climbs out with `..` is relative
/// to a cgroup namespace the daemon is not at the root of (a container's
/// private one): where it points cannot be told, so it counts as governed
/// (fail closed) rather than never matching.
fn governs<'a>(root: &Path, mut governed: impl Iterator<Item = &'a PathBuf>, rel: &str) -> bool {
    let rel = rel.trim().trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return true;
    }
    let path = root.join(rel);
    governed.any(|d| path.starts_with(d))
}

/// The workload a caller in cgroup `rel` (as `/proc/PID/cgroup` shows it)
/// asks as: its own when governed (`asked` must be empty or the same),
/// the one it names when not (an operator). A path that climbs out with
/// `..` is relative to a cgroup namespace the daemon is not at the root
/// of: [`governs`] counts it as governed by every workload (fail closed
/// for enforcement), so here it names none of them.
fn attested_workload(
    root: &Path,
    cgroups: &HashMap<String, Vec<PathBuf>>,
    rel: &str,
    asked: &str,
    defined: impl Fn(&str) -> bool,
    governed: impl Fn() -> bool,
) -> Result<String, Refusal> {
    let unknown = || {
        Refusal::new(
            Reason::IdentityMismatch,
            "the caller's process cannot be identified",
        )
    };
    if rel.trim().split('/').any(|c| c == "..") {
        return Err(unknown());
    }
    let own = cgroups
        .iter()
        .find(|(_, dirs)| governs(root, dirs.iter(), rel))
        .map(|(w, _)| w.clone());
    match (own, asked) {
        (Some(own), "") => Ok(own),
        (Some(own), asked) if own == asked => Ok(own),
        (Some(own), asked) => Err(Refusal::new(
            Reason::IdentityMismatch,
            format!("the caller runs as workload {own:?} and cannot ask on behalf of {asked:?}"),
        )),
        // Governed, but in a cgroup no workload's list names: refuse.
        (None, _) if governed() => Err(unknown()),
        (None, "") => Err(Refusal::new(
            Reason::BadRequest,
            "the caller is not governed: name the workload to ask for (--workload)",
        )),
        (None, asked) if !defined(asked) => Err(Refusal::new(
            Reason::UnknownWorkload,
            format!("no loaded policy defines workload {asked:?}"),
        )),
        (None, asked) => Ok(asked.to_owned()),
    }
}

/// The kernel as the engine's [`GrantTable`] port.
#[derive(Debug)]
pub struct KernelGrants<'a>(pub &'a mut Kernel);

impl GrantTable for KernelGrants<'_> {
    fn install(&mut self, set: &[GrantSpec]) -> Result<(), PortError> {
        self.0.install_grants(set).map_err(PortError::new)
    }

    fn remove(&mut self, grant_id: u64) -> Result<usize, PortError> {
        self.0.remove_grant(grant_id).map_err(PortError::new)
    }

    fn usage(&mut self) -> Result<HashMap<u64, Usage>, PortError> {
        let mut out: HashMap<u64, Usage> = HashMap::new();
        for g in self.0.grants().map_err(PortError::new)? {
            let left = g.uses_left();
            let e = out.entry(g.grant.grant_id).or_insert(Usage {
                entries: 0,
                uses_left: left,
                used_up: true,
                scope_id: g.scope_id,
            });
            e.entries += 1;
            e.used_up &= left == Some(0);
            e.uses_left = match (e.uses_left, left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(out)
    }
}

/// A submission between its halves, with the policy inputs it was checked
/// against.
#[derive(Debug)]
pub struct Pending {
    pub prepared: acelogic_authz::Prepared,
    inputs: crate::daemon::Fingerprint,
}

impl Node {
    /// The first half of a submission: verify, check, resolve; says what
    /// to ask the cluster store, if anything.
    pub fn prepare(
        &mut self,
        envelope: &[u8],
        peer: Option<acelogic_authz::state::Peer>,
    ) -> Result<Pending, Refusal> {
        let now = SystemTime::now();
        self.retire(now);
        let inputs = self.inputs_seen.clone();
        let (authz, _, engine_inputs) = self.engine(now);
        let prepared = authz.prepare(envelope, peer, &engine_inputs)?;
        Ok(Pending { prepared, inputs })
    }

    /// The second half, with the cluster store's answer. A reload that
    /// came in between (while the store was asked) re-checks what this
    /// accepted against the policy and keys now in force.
    pub fn commit(
        &mut self,
        pending: Pending,
        answer: Option<acelogic_cluster::ClusterAnswer>,
    ) -> Result<acelogic_authz::Accepted, Refusal> {
        let now = SystemTime::now();
        let Pending { prepared, inputs } = pending;
        let accepted =
            self.authz
                .commit(prepared, answer, &mut KernelGrants(&mut self.kernel), now)?;
        if inputs != self.inputs_seen {
            self.recheck(now)?;
            let live = self
                .authz
                .state()
                .artifact(&accepted.artifact_id)
                .ok()
                .flatten()
                .is_some_and(|r| r.state == "live");
            if !live {
                return Err(Refusal::new(
                    Reason::PolicyNarrowed,
                    format!(
                        "the policy or trust store changed while artifact {} was being \
                         claimed, and the one now in force does not permit it; its grants \
                         were removed",
                        accepted.artifact_id
                    ),
                ));
            }
        }
        Ok(accepted)
    }

    /// Live artifacts holding a cluster lease: (id, key, token).
    pub fn held(&self) -> Vec<(String, String, u64)> {
        self.authz.held().unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading held leases");
            Vec::new()
        })
    }

    /// A lease this node held ended early: its grants go now.
    pub fn lease_lost(&mut self, artifact: &str, token: u64) {
        match self.authz.end_lease(
            artifact,
            token,
            &mut KernelGrants(&mut self.kernel),
            SystemTime::now(),
        ) {
            Ok(true) => tracing::warn!(%artifact, token, "revoked: its cluster lease ended early"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(%artifact, error = %e, "ending an artifact whose lease ended");
            }
        }
    }

    /// Retires expired and used-up artifacts: their grants leave the
    /// kernel and their operation keys are released (each tick, and
    /// before each submit).
    pub fn retire(&mut self, now: SystemTime) {
        self.authz.retire(&mut KernelGrants(&mut self.kernel), now);
    }

    /// The engine, the kernel, and the engine's inputs (policy, trust
    /// store, frozen workloads, governed cgroups) at `now`, borrowed apart.
    fn engine(&mut self, now: SystemTime) -> (&mut Authorizer, &mut Kernel, Inputs<'_>) {
        let Self {
            authz,
            kernel,
            policy,
            trust,
            frozen,
            cgroups,
            ..
        } = self;
        let inputs = Inputs {
            policy,
            trust,
            frozen,
            cgroups,
            now,
        };
        (authz, kernel, inputs)
    }

    /// Re-checks every live artifact against the policy and trust store in
    /// force and revokes those they no longer permit (`policy-narrowed`),
    /// and those a key no longer trusted signed (`key-revoked`); returns
    /// how many.
    pub fn recheck(&mut self, now: SystemTime) -> Result<usize, Refusal> {
        let (authz, kernel, inputs) = self.engine(now);
        let revoked = authz.recheck(&inputs, &mut KernelGrants(kernel))?;
        for (id, why) in &revoked {
            if why.code == Reason::KeyRevoked {
                tracing::warn!(artifact = %id, %why, "revoked: a key it was accepted with is no longer trusted");
            } else {
                tracing::warn!(artifact = %id, %why, "revoked: the policy in force no longer permits it");
            }
        }
        Ok(revoked.len())
    }

    /// True when `pid` runs in a cgroup this daemon governs.
    #[must_use]
    pub fn is_governed(&self, pid: i32) -> bool {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            // Unknown caller: treat as governed (fail closed).
            return true;
        };
        let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
            return true;
        };
        governs(&self.cgroup_root, self.cgroups.values().flatten(), rel)
    }

    /// Who is asking, attested from the caller's cgroup: its workload
    /// (`asked` must be it, or empty), its exec id and uid. An ungoverned
    /// caller (an operator) names the workload it asks for; a governed one
    /// can only ask as itself.
    pub fn attest(
        &self,
        peer: Option<acelogic_authz::state::Peer>,
        asked: &str,
    ) -> Result<(String, String, u32, u32), Refusal> {
        let unknown = || {
            Refusal::new(
                Reason::IdentityMismatch,
                "the caller's process cannot be identified",
            )
        };
        let peer = peer.ok_or_else(unknown)?;
        let pid = peer.pid.ok_or_else(unknown)?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| unknown())?;
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(unknown)?;
        let workload = attested_workload(
            &self.cgroup_root,
            &self.cgroups,
            rel,
            asked,
            |w| self.policy.workloads.contains_key(w),
            || self.is_governed(pid),
        )?;
        let pid_u = u32::try_from(pid).map_err(|_| unknown())?;
        let exec_id = acelogic_lineage::chain::boot_id()
            .ok()
            .zip(acelogic_lineage::enrich::proc_stat(
                Path::new("/proc"),
                pid_u,
            ))
            .map(|(boot, st)| acelogic_lineage::chain::exec_id(&boot, st.start_ticks, pid_u))
            .unwrap_or_default();
        Ok((workload, exec_id, pid_u, peer.uid))
    }

    /// Freezes or unfreezes a workload, durably.
    pub fn set_frozen(&mut self, workload: &str, frozen: bool, why: &str) -> Result<(), Refusal> {
        let Some(w) = self.policy.workloads.get(workload) else {
            return Err(Refusal {
                code: Reason::UnknownWorkload,
                why: format!("no loaded policy defines workload {workload:?}"),
            });
        };
        let fail = |e: String| Refusal {
            code: Reason::InstallFailed,
            why: e,
        };
        self.kernel
            .set_frozen(w.scope_id, frozen)
            .map_err(|e| fail(e.to_string()))?;
        self.authz
            .state()
            .set_frozen(workload, frozen, why)
            .map_err(|e| fail(e.to_string()))?;
        if frozen {
            self.frozen.insert(workload.to_owned());
        } else {
            self.frozen.remove(workload);
        }
        let (outcome, reason) = if frozen {
            (Outcome::Frozen, Reason::Frozen)
        } else {
            (Outcome::Unfrozen, Reason::Unfrozen)
        };
        self.authz
            .note(&Record {
                detail: why,
                workload: Some(workload),
                ..Record::new(outcome, reason)
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// Makes the kernel match `set`: scopes, cgroups, baselines. Workloads
    /// of the previous policy that `set` drops are released and emptied.
    /// Returns warnings (paths missing on this node and the like).
    pub fn apply(
        &mut self,
        set: &PolicySet,
        previous: Option<&PolicySet>,
    ) -> anyhow::Result<Vec<String>> {
        let mut warnings = Vec::new();
        let mut cgroups = HashMap::new();
        for w in set.workloads.values() {
            self.kernel.define_scope(w.scope_id, w.mode)?;
            let frozen = self.frozen.contains(&w.name);
            self.kernel.set_frozen(w.scope_id, frozen)?;
            let dirs = self.govern(w, &mut warnings);
            cgroups.insert(w.name.clone(), dirs);
            let wanted = self.wanted(w, &mut warnings);
            self.kernel.sync_baseline(w.scope_id, &wanted)?;
            // Never subtrees too large to match every binary by identity.
            warnings.extend(
                acelogic_authz::never::Guard::of(w)
                    .warnings
                    .into_iter()
                    .map(|m| format!("workload {}: {m}", w.name)),
            );
        }
        if let Some(old) = previous {
            for w in old.workloads.values() {
                if set.workloads.get(&w.name).map(|n| n.scope_id) == Some(w.scope_id) {
                    continue;
                }
                for (id, scope) in self.kernel.governed()? {
                    if scope == w.scope_id {
                        self.kernel.release(id)?;
                    }
                }
                self.kernel.sync_baseline(w.scope_id, &Wanted::default())?;
            }
        }
        self.cgroups = cgroups;
        Ok(warnings)
    }

    /// Governs the workload's cgroups: literal paths are created when
    /// missing; patterns govern the directories that match now (the reload
    /// tick picks up new ones).
    fn govern(&mut self, w: &Workload, warnings: &mut Vec<String>) -> Vec<PathBuf> {
        for c in &w.cgroups {
            if let Some(lit) = c.literal() {
                let dir = self.cgroup_root.join(lit.strip_prefix("/").unwrap_or(lit));
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    warnings.push(format!(
                        "workload {}: creating {}: {e}",
                        w.name,
                        dir.display()
                    ));
                }
            }
        }
        let dirs = w.cgroup_dirs(&self.cgroup_root);
        let mut governed = Vec::new();
        for dir in dirs {
            match self.kernel.govern(&dir, w.scope_id) {
                Ok(_) => governed.push(dir),
                Err(e) => warnings.push(format!(
                    "workload {}: governing {}: {e}",
                    w.name,
                    dir.display()
                )),
            }
        }
        governed
    }

    /// The workload's baseline resolved on this node.
    fn wanted(&self, w: &Workload, warnings: &mut Vec<String>) -> Wanted {
        let mut files: BTreeMap<(u32, u64), u32> = BTreeMap::new();
        let mut add =
            |path: &Path, r: u32, warnings: &mut Vec<String>| match std::fs::metadata(path) {
                Ok(m) => *files.entry((kernel_dev(m.dev()), m.ino())).or_default() |= r,
                Err(e) => warnings.push(format!(
                    "workload {}: baseline {}: {e} (skipped on this node)",
                    w.name,
                    path.display()
                )),
            };
        let b = &w.baseline;
        for p in &b.exec {
            add(p.as_path(), rights::EXEC, warnings);
        }
        for p in &b.libraries {
            add(pattern_base(p), rights::MAP, warnings);
        }
        for p in &b.write {
            add(pattern_base(p), rights::WRITE, warnings);
        }
        for p in &b.unix_connect {
            add(p.as_path(), rights::UNIX_CONNECT, warnings);
        }
        add(&self.socket, rights::UNIX_CONNECT, warnings);
        let mut nets = Vec::new();
        for c in &b.connect {
            let addrs: Vec<(std::net::IpAddr, u8)> = match &c.host {
                Host::Net(n) => vec![(n.network(), n.prefix_len())],
                Host::Name(name) => {
                    let found: Vec<_> = acelogic_authz::check::resolve_names(&[
                        acelogic_domain::capability::Capability::Connect(c.clone()),
                    ])
                    .remove(name)
                    .unwrap_or_default();
                    if found.is_empty() {
                        warnings.push(format!(
                            "workload {}: baseline connect {name}: resolves to no address (skipped)",
                            w.name
                        ));
                    }
                    found
                        .into_iter()
                        .map(|a| (a, if a.is_ipv4() { 32 } else { 128 }))
                        .collect()
                }
            };
            for (addr, prefix) in addrs {
                for port in c.ports.kernel_ports() {
                    nets.push(NetTarget {
                        protocol: c.protocol,
                        addr,
                        prefix,
                        port,
                    });
                }
            }
        }
        Wanted { files, nets }
    }
}

/// The directory or file a baseline pattern names: the kernel matches it
/// and everything below it (writes and libraries walk up from the object).
fn pattern_base(p: &PathPattern) -> &Path {
    p.base().as_path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_asks_as_its_own_workload_or_not_at_all() {
        let root = Path::new("/sys/fs/cgroup");
        let cgroups: HashMap<String, Vec<PathBuf>> = [
            ("a".to_owned(), vec![root.join("acelogic/a")]),
            ("b".to_owned(), vec![root.join("acelogic/b")]),
        ]
        .into_iter()
        .collect();
        let defined = |w: &str| w == "a" || w == "b";
        let ask = |rel: &str, asked: &str, governed: bool| {
            attested_workload(root, &cgroups, rel, asked, defined, || governed).map_err(|r| r.code)
        };
        assert_eq!(ask("/acelogic/a/run-1\n", "", true), Ok("a".to_owned()));
        assert_eq!(ask("/acelogic/a/run-1", "a", true), Ok("a".to_owned()));
        assert_eq!(
            ask("/acelogic/a/run-1", "b", true),
            Err(Reason::IdentityMismatch)
        );
        // From a private cgroup namespace: no workload, whatever it names.
        for asked in ["", "a", "b"] {
            assert_eq!(
                ask("/../../acelogic/a", asked, true),
                Err(Reason::IdentityMismatch)
            );
        }
        // Governed by a cgroup no workload lists now: refused.
        assert_eq!(ask("/elsewhere", "a", true), Err(Reason::IdentityMismatch));
        // An operator names the workload, which must exist.
        assert_eq!(ask("/system.slice/ssh", "b", false), Ok("b".to_owned()));
        assert_eq!(ask("/system.slice/ssh", "", false), Err(Reason::BadRequest));
        assert_eq!(
            ask("/system.slice/ssh", "c", false),
            Err(Reason::UnknownWorkload)
        );
    }

    #[test]
    fn a_caller_is_governed_below_a_governed_cgroup_or_when_its_path_escapes() {
        let root = Path::new("/host/sys/fs/cgroup");
        let governed = [root.join("acelogic/coding-agent")];
        assert!(governs(root, governed.iter(), "/acelogic/coding-agent\n"));
        assert!(governs(
            root,
            governed.iter(),
            "/acelogic/coding-agent/run-7"
        ));
        assert!(!governs(root, governed.iter(), "/acelogic/coding-agent-2"));
        assert!(!governs(
            root,
            governed.iter(),
            "/system.slice/sshd.service"
        ));
        assert!(!governs(root, governed.iter(), "/"));
        // Seen from a private cgroup namespace: cannot be placed.
        assert!(governs(
            root,
            governed.iter(),
            "/../../acelogic/coding-agent"
        ));
        assert!(governs(
            root,
            governed.iter(),
            "/../../../system.slice/x.service"
        ));
    }
}
