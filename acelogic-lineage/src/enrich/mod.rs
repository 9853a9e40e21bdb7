//! Kernel records become lineage records: process identity (`exec_id`,
//! `parent_exec_id`), the workload a scope belongs to, the artifact behind
//! a grant, wall-clock time, and the paths and exec identity the kernel
//! recorded (for records of older builds, what procfs still knows).
//!
//! Identity never depends on procfs when the kernel supplied it: the
//! record carries the process start time, so `exec_id` is computed from
//! the record alone. procfs fills in what the kernel does not carry, and
//! is checked against the start time so a reused pid is never mistaken
//! for the process that had it before.
//!
//! Parentage likewise: a fork record names the child of a known parent,
//! and an exec record names the parent by pid *and* start time, so both
//! give the parent's `exec_id` exactly, and are remembered for the
//! process's later records. Only a record neither covers (its fork and
//! exec were consumed by an earlier daemon, or happened before any ran)
//! asks procfs, and procfs is believed only where it cannot name a
//! stranger (see [`Enricher::parent_by_pid`]). A link that cannot be
//! established stays empty: a lost link is honest, a wrong one is not.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use acelogic_common::{
    event::{EventHeader, FileId, path_flag},
    user::{
        DecisionInfo, Event, ExecIdentity, FileDecisionEvent, Hook, KernelPath, ProcessExecEvent,
        c_str_bytes, start_ticks,
    },
};

use super::{
    chain::{self, exec_id},
    pb::{self, record::Body},
};

/// Most processes whose parent is remembered; past this the oldest half is
/// forgotten (their children then fall back to procfs).
const MAX_PARENTS: usize = 1 << 20;

/// Kernel grant id -> the artifact that installed it; written when an
/// artifact is accepted, read when a decision names a grant.
pub type GrantDirectory = Arc<Mutex<HashMap<u64, String>>>;

/// What one `/proc/PID/stat` says about identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    pub start_ticks: u64,
}

/// Reads `ppid` and `starttime` from `<proc>/<pid>/stat`.
#[must_use]
pub fn proc_stat(proc: &Path, pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after
    // the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, starttime field 22.
    Some(ProcStat {
        ppid: fields.get(1)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// A remembered parent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    /// The parent's exec_id.
    exec_id: String,
    /// The parent's pid.
    pid: u32,
    /// From a kernel record that names the parent by start time (fork or
    /// exec), rather than through a pid looked up in procfs.
    exact: bool,
}

/// Turns kernel records into lineage records.
#[derive(Debug)]
pub struct Enricher {
    node: String,
    epoch: u64,
    boot_id: [u8; 16],
    /// Unix time in ns minus boot time in ns, measured at start.
    boot_to_unix_ns: i128,
    proc: PathBuf,
    workloads: HashMap<u32, String>,
    artifacts: GrantDirectory,
    /// exec_id -> its parent, learned from fork and exec records and
    /// (checked) procfs; forgotten at exit.
    parents: HashMap<String, Link>,
    /// cgroup id -> scope id, learned from decisions and registrations.
    cgroup_scopes: HashMap<u64, u32>,
}

fn boot_ns() -> u64 {
    acelogic_domain::grant::boot_ns_now()
}

fn unix_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A kernel path as text: `/a/b/c`, or `.../b/c` when its leading
/// components are missing; and what to know about it (see the proto's
/// `path_note`).
#[must_use]
pub fn path_text(p: &KernelPath) -> (String, bool, &'static str) {
    let mut parts: Vec<String> = p.components_leaf_first().map(lossy).collect();
    parts.reverse();
    let truncated = p.truncated();
    let mut text = if truncated {
        "...".to_owned()
    } else {
        String::new()
    };
    for part in &parts {
        text.push('/');
        text.push_str(part);
    }
    if text.is_empty() {
        text.push('/');
    }
    let note = if p.flags() & path_flag::UNREADABLE != 0 {
        "unreadable"
    } else if p.flags() & path_flag::UNLINKED != 0 {
        "unlinked"
    } else if p.without_mount() {
        "filesystem-relative"
    } else {
        ""
    };
    (text, truncated, note)
}

fn file_obj(e: &FileDecisionEvent, other: Option<&FileId>) -> pb::FileObject {
    let (path, path_truncated, note) = e
        .path
        .as_ref()
        .map_or((String::new(), false, ""), path_text);
    pb::FileObject {
        dev: e.file.dev,
        ino: e.file.ino,
        name: lossy(e.name()),
        other_dev: other.map_or(0, |o| o.dev),
        other_ino: other.map_or(0, |o| o.ino),
        path,
        path_truncated,
        path_note: note.to_owned(),
    }
}

/// An exec record from what the kernel read in the exec: nothing from
/// procfs. What is missing says why.
fn exec_from_kernel(
    process: pb::Process,
    e: &ProcessExecEvent,
    id: &ExecIdentity,
) -> pb::ProcessExec {
    let mut missing = Vec::new();
    let mut path = |p: Option<&KernelPath>, what: &str| match p {
        Some(p)
            if p.flags() & path_flag::UNREADABLE == 0
                || p.components_leaf_first().next().is_some() =>
        {
            let (text, truncated, _) = path_text(p);
            (text, truncated)
        }
        _ => {
            missing.push(format!("{what}-unreadable"));
            (String::new(), false)
        }
    };
    let (exe, exe_truncated) = path(id.exe.as_ref(), "exe");
    let (cwd, cwd_truncated) = path(id.cwd.as_ref(), "cwd");
    if id.argv_unreadable() {
        missing.push("argv-unreadable".to_owned());
    }
    pb::ProcessExec {
        process: Some(process),
        filename: lossy(e.filename()),
        argv: id.argv().map(lossy).collect(),
        exe,
        cwd,
        enrichment: missing.join(","),
        argv_truncated: id.argv_truncated(),
        exe_truncated,
        cwd_truncated,
    }
}

fn protocol_name(p: u16) -> String {
    match i32::from(p) {
        libc::IPPROTO_TCP => "tcp".into(),
        libc::IPPROTO_UDP => "udp".into(),
        other => format!("proto {other}"),
    }
}

impl Enricher {
    /// An enricher for records of `node` written by daemon `epoch`.
    pub fn new(node: &str, epoch: u64) -> std::io::Result<Self> {
        Ok(Self::with_proc(
            node,
            epoch,
            chain::boot_id()?,
            PathBuf::from("/proc"),
        ))
    }

    /// As [`Self::new`] with a given boot id and procfs root (tests).
    #[must_use]
    pub fn with_proc(node: &str, epoch: u64, boot_id: [u8; 16], proc: PathBuf) -> Self {
        Self {
            node: node.to_owned(),
            epoch,
            boot_id,
            boot_to_unix_ns: unix_ns(SystemTime::now()) - i128::from(boot_ns()),
            proc,
            workloads: HashMap::new(),
            artifacts: GrantDirectory::default(),
            parents: HashMap::new(),
            cgroup_scopes: HashMap::new(),
        }
    }

    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The boot id exec ids are derived from.
    #[must_use]
    pub fn boot_id(&self) -> [u8; 16] {
        self.boot_id
    }

    /// Scope id -> workload name, replaced on every policy load.
    pub fn set_workloads(&mut self, workloads: impl IntoIterator<Item = (u32, String)>) {
        self.workloads = workloads.into_iter().collect();
    }

    /// The grant -> artifact directory decisions are enriched from; the
    /// daemon's authorization records fill it.
    #[must_use]
    pub fn grant_directory(&self) -> GrantDirectory {
        Arc::clone(&self.artifacts)
    }

    /// A record of this node and epoch, now.
    #[must_use]
    pub fn now(&self, body: Body) -> pb::Record {
        pb::Record {
            node: self.node.clone(),
            time_unix_nano: u64::try_from(unix_ns(SystemTime::now())).unwrap_or(0),
            epoch: self.epoch,
            body: Some(body),
        }
    }

    fn at(&self, boot_ns: u64, body: Body) -> pb::Record {
        let t = i128::from(boot_ns) + self.boot_to_unix_ns;
        pb::Record {
            node: self.node.clone(),
            time_unix_nano: u64::try_from(t).unwrap_or(0),
            epoch: self.epoch,
            body: Some(body),
        }
    }

    /// The exec_id of process `pid` as procfs shows it now, but only if it
    /// could be the parent of a process started at `child_ticks`: it must
    /// have started no later than the child.
    ///
    /// A pid the kernel gave as the parent names the parent for as long as
    /// the parent lives. Once the parent exits its pid may go to a new
    /// process, and that process was necessarily created after the parent
    /// exited, so after the child was created (the parent was alive to
    /// fork it, or was the reaper the child was handed to while alive):
    /// a later start time is proof of reuse, and such a process is never
    /// linked. This is the check, rather than carrying the parent's start
    /// time in every decision record, because decisions are made on hot
    /// paths by every gate; the exec record, which every process that
    /// runs anything has, carries it instead and wins when it is seen.
    /// One case remains undecidable: a parent that exited and whose pid
    /// was reused within the same clock tick (10 ms) as the child's start;
    /// procfs start times have no finer grain.
    fn parent_by_pid(&self, pid: u32, child_ticks: u64) -> Option<String> {
        if pid == 0 || child_ticks == 0 {
            return None;
        }
        let st = proc_stat(&self.proc, pid)?;
        (st.start_ticks <= child_ticks).then(|| exec_id(&self.boot_id, st.start_ticks, pid))
    }

    /// Parent of the process `id` (pid `tgid`, started at `ticks`): from a
    /// fork or exec record seen earlier, else from procfs (see
    /// [`Self::parent_by_pid`]). `ppid` is the kernel's, when the record
    /// had one; without it, the pid's parent as procfs shows it now, when
    /// the pid still names that process.
    fn parent(&mut self, id: &str, tgid: u32, ticks: u64, ppid: u32) -> (String, u32) {
        if let Some(p) = self.parents.get(id) {
            return (p.exec_id.clone(), p.pid);
        }
        let ppid = if ppid != 0 {
            ppid
        } else {
            match proc_stat(&self.proc, tgid) {
                Some(st) if ticks != 0 && st.start_ticks == ticks => st.ppid,
                _ => return (String::new(), 0),
            }
        };
        let Some(parent) = self.parent_by_pid(ppid, ticks) else {
            return (String::new(), ppid);
        };
        self.remember(
            id.to_owned(),
            Link {
                exec_id: parent.clone(),
                pid: ppid,
                exact: false,
            },
        );
        (parent, ppid)
    }

    fn remember(&mut self, child: String, parent: Link) {
        if self.parents.len() >= MAX_PARENTS {
            // Crude but bounded: forget everything; lookups fall back to
            // procfs. Reached only with a million live governed processes.
            self.parents.clear();
        }
        self.parents.insert(child, parent);
    }

    /// An exec record names its parent exactly; it is remembered for the
    /// process's later records unless a fork record already named one (the
    /// creator, which the kernel's `real_parent` stops being when the
    /// creator exits before the exec).
    fn learn_exec_parent(&mut self, h: &EventHeader, e: &ProcessExecEvent) {
        let (Some((pid, ticks)), Some(child_ticks)) = (e.parent(), h.start_ticks()) else {
            return;
        };
        let child = exec_id(&self.boot_id, child_ticks, h.tgid);
        if self.parents.get(&child).is_some_and(|l| l.exact) {
            return;
        }
        let parent = Link {
            exec_id: exec_id(&self.boot_id, ticks, pid),
            pid,
            exact: true,
        };
        self.remember(child, parent);
    }

    /// The start time of the record's process in ticks: from the kernel
    /// when it gave one, else from procfs.
    fn ticks(&self, h: &EventHeader) -> u64 {
        h.start_ticks()
            .or_else(|| proc_stat(&self.proc, h.tgid).map(|s| s.start_ticks))
            .unwrap_or(0)
    }

    fn process(&mut self, h: &EventHeader, ppid: u32, scope_id: u32, comm: &[u8]) -> pb::Process {
        let ticks = self.ticks(h);
        let id = exec_id(&self.boot_id, ticks, h.tgid);
        let (parent, ppid) = self.parent(&id, h.tgid, ticks, ppid);
        pb::Process {
            exec_id: id,
            parent_exec_id: parent,
            pid: h.tgid,
            tid: h.pid,
            ppid,
            uid: h.uid,
            cgroup_id: h.cgroup_id,
            scope_id,
            workload: self.workloads.get(&scope_id).cloned().unwrap_or_default(),
            comm: lossy(c_str_bytes(comm)),
            start_ticks: ticks,
        }
    }

    fn decision(&mut self, h: &EventHeader, d: &DecisionInfo) -> pb::Decision {
        if d.scope_id != 0 {
            self.cgroup_scopes.insert(h.cgroup_id, d.scope_id);
        }
        pb::Decision {
            process: Some(self.process(h, d.ppid, d.scope_id, &d.comm)),
            hook: d.hook.to_string(),
            verdict: d.verdict.to_string(),
            reason: d.reason.to_string(),
            grant_id: d.grant_id,
            artifact_id: if d.grant_id == 0 {
                String::new()
            } else {
                self.artifacts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&d.grant_id)
                    .cloned()
                    .unwrap_or_default()
            },
            ..pb::Decision::default()
        }
    }

    /// Reads what procfs knows about an exec'd process. Empty fields and a
    /// reason when the process is gone or the pid is someone else's now.
    fn exec_details(&self, pid: u32, ticks: u64) -> (Vec<String>, String, String, String) {
        let dir = self.proc.join(pid.to_string());
        match proc_stat(&self.proc, pid) {
            None => {
                return (
                    Vec::new(),
                    String::new(),
                    String::new(),
                    "process-exited".into(),
                );
            }
            Some(st) if st.start_ticks != ticks => {
                return (
                    Vec::new(),
                    String::new(),
                    String::new(),
                    "pid-reused".into(),
                );
            }
            Some(_) => {}
        }
        let argv = std::fs::read(dir.join("cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(lossy)
                    .collect()
            })
            .unwrap_or_default();
        let link = |n: &str| {
            std::fs::read_link(dir.join(n))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let (exe, cwd) = (link("exe"), link("cwd"));
        let why = if exe.is_empty() || cwd.is_empty() {
            "procfs-unreadable".into()
        } else {
            String::new()
        };
        (argv, exe, cwd, why)
    }

    /// The lineage record of one kernel record.
    pub fn record(&mut self, event: &Event) -> pb::Record {
        let h = *event.header();
        let body = match event {
            Event::File(e) => {
                let mut d = self.decision(&h, &e.decision);
                let other = (e.other.ino != 0).then_some(&e.other);
                let file = file_obj(e, other);
                // The resolved path when the kernel recorded one; for an
                // exec also the name it was called by, when that differs.
                let shown = if file.path.is_empty() {
                    file.name.clone()
                } else if e.decision.hook == Hook::Exec && file.name != file.path {
                    format!("{} (as {})", file.path, file.name)
                } else {
                    file.path.clone()
                };
                d.object = format!(
                    "{shown} ({}:{}:{})",
                    e.file.dev >> 20,
                    e.file.dev & 0xfffff,
                    e.file.ino
                );
                d.file = Some(file);
                d.detail = u64::from(e.detail);
                Body::Decision(d)
            }
            Event::Net(e) => {
                let mut d = self.decision(&h, &e.decision);
                let addr = e.ip();
                d.object = match addr {
                    Some(IpAddr::V6(ip)) => {
                        format!("[{ip}]:{}/{}", e.port, protocol_name(e.protocol))
                    }
                    Some(ip) => format!("{ip}:{}/{}", e.port, protocol_name(e.protocol)),
                    None => format!(
                        "unix socket {}:{}:{}",
                        e.unix.dev >> 20,
                        e.unix.dev & 0xfffff,
                        e.unix.ino
                    ),
                };
                d.net = Some(pb::NetObject {
                    family: u32::from(e.family),
                    protocol: u32::from(e.protocol),
                    addr: addr.map(|a| a.to_string()).unwrap_or_default(),
                    port: u32::from(e.port),
                    unix_dev: e.unix.dev,
                    unix_ino: e.unix.ino,
                });
                Body::Decision(d)
            }
            Event::Task(e) => {
                let mut d = self.decision(&h, &e.decision);
                d.object = format!("pid {}", e.target_tgid);
                d.task = Some(pb::TaskObject {
                    target_pid: e.target_tgid,
                    target_scope_id: e.target_scope_id,
                    target_cgroup_id: e.target_cgroup_id,
                });
                d.detail = u64::from(e.detail);
                Body::Decision(d)
            }
            Event::System(e) => {
                let mut d = self.decision(&h, &e.decision);
                d.object = format!("{} {:#x}", e.decision.hook, e.detail);
                d.detail = e.detail;
                Body::Decision(d)
            }
            Event::ProcessExec(e) => {
                let scope = self.scope_of(&h);
                self.learn_exec_parent(&h, e);
                let process = self.process(&h, 0, scope, &e.comm);
                match &e.identity {
                    Some(id) => Body::Exec(exec_from_kernel(process, e, id)),
                    None => {
                        let (argv, exe, cwd, enrichment) =
                            self.exec_details(h.tgid, process.start_ticks);
                        Body::Exec(pb::ProcessExec {
                            process: Some(process),
                            filename: lossy(e.filename()),
                            argv,
                            exe,
                            cwd,
                            enrichment,
                            ..pb::ProcessExec::default()
                        })
                    }
                }
            }
            Event::ProcessFork(e) => {
                let scope = self.scope_of(&h);
                let parent = self.process(&h, 0, scope, &[]);
                let ticks = start_ticks(e.child_start_ns)
                    .or_else(|| proc_stat(&self.proc, e.child_tgid).map(|s| s.start_ticks))
                    .unwrap_or(0);
                let child_id = exec_id(&self.boot_id, ticks, e.child_tgid);
                self.remember(
                    child_id.clone(),
                    Link {
                        exec_id: parent.exec_id.clone(),
                        pid: h.tgid,
                        exact: true,
                    },
                );
                Body::Fork(pb::ProcessFork {
                    process: Some(pb::Process {
                        exec_id: child_id,
                        parent_exec_id: parent.exec_id,
                        pid: e.child_tgid,
                        tid: e.child_tgid,
                        ppid: h.tgid,
                        start_ticks: ticks,
                        ..parent
                    }),
                })
            }
            Event::ProcessExit(e) => {
                let scope = self.scope_of(&h);
                let process = self.process(&h, 0, scope, &[]);
                self.parents.remove(&process.exec_id);
                Body::Exit(pb::ProcessExit {
                    process: Some(process),
                    exit_code: e.exit_code,
                })
            }
        };
        self.at(h.boot_ns, body)
    }

    /// Lifecycle records carry no scope id: it is the one the last
    /// decision in the same cgroup carried (an exec is always preceded by
    /// its exec decision), or the one the daemon registered for the
    /// cgroup; 0 when neither is known.
    fn scope_of(&self, h: &EventHeader) -> u32 {
        self.cgroup_scopes.get(&h.cgroup_id).copied().unwrap_or(0)
    }

    /// The scope of a governed cgroup, as registered by the daemon.
    pub fn set_cgroup_scope(&mut self, cgroup_id: u64, scope_id: u32) {
        if self.cgroup_scopes.len() >= MAX_PARENTS {
            self.cgroup_scopes.clear();
        }
        self.cgroup_scopes.insert(cgroup_id, scope_id);
    }
}

#[cfg(test)]
mod tests;
