//! Userspace side of the shared types: `aya::Pod`, typed codes, decoding.

use core::{fmt, mem::size_of};

use crate::{
    codes::{hook, reason, verdict},
    event::{
        self, Decision, EventHeader, FileDecision, FileDecisionV1, FileId, KPath, NetDecision,
        ProcessExec, ProcessExecV1, ProcessExecV2, ProcessExit, ProcessFork, SystemDecision,
        TaskDecision, path_flag,
    },
    offsets::KernelOffsets,
    rules::{FileKey, FileRule, Grant, NetKey, NetRule, Writer},
    scope::{CachedScope, ScopeEntry, ScopeState},
};

// SAFETY (for every impl below): each type is `repr(C)`, `Copy`, made of
// integers and integer arrays only, with explicit padding fields, so every
// bit pattern is a valid value.
macro_rules! pod {
    ($($t:ty),+) => { $(
        // SAFETY: see above.
        unsafe impl aya::Pod for $t {}
    )+ };
}

pod!(
    ScopeEntry,
    ScopeState,
    CachedScope,
    FileKey,
    FileRule,
    Grant,
    NetKey,
    NetRule,
    Writer,
    KernelOffsets
);

/// A numeric code from the kernel that this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} code {code}")]
pub struct UnknownCode {
    pub what: &'static str,
    pub code: u16,
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($variant:ident = $value:path => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl TryFrom<u16> for $name {
            type Error = UnknownCode;
            fn try_from(code: u16) -> Result<Self, UnknownCode> {
                match code {
                    $($value => Ok(Self::$variant),)+
                    _ => Err(UnknownCode { what: $what, code }),
                }
            }
        }

        impl $name {
            /// The stable, lowercase name used in logs, JSON and queries.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum!(
    /// The hook that made a decision.
    Hook, "hook", {
        Exec = hook::EXEC => "exec",
        MmapExec = hook::MMAP_EXEC => "mmap-exec",
        MprotectExec = hook::MPROTECT_EXEC => "mprotect-exec",
        FileOpen = hook::FILE_OPEN => "file-open",
        PathUnlink = hook::PATH_UNLINK => "unlink",
        PathMkdir = hook::PATH_MKDIR => "mkdir",
        PathRmdir = hook::PATH_RMDIR => "rmdir",
        PathMknod = hook::PATH_MKNOD => "mknod",
        PathTruncate = hook::PATH_TRUNCATE => "truncate",
        PathSymlink = hook::PATH_SYMLINK => "symlink",
        PathLink = hook::PATH_LINK => "link",
        PathRename = hook::PATH_RENAME => "rename",
        PathChmod = hook::PATH_CHMOD => "chmod",
        PathChown = hook::PATH_CHOWN => "chown",
        FileWrite = hook::FILE_WRITE => "file-write",
        FileTruncate = hook::FILE_TRUNCATE => "file-truncate",
        MmapWrite = hook::MMAP_WRITE => "mmap-write",
        MprotectWrite = hook::MPROTECT_WRITE => "mprotect-write",
        InodeSetattrTimes = hook::INODE_SETATTR_TIMES => "times",
        InodeSetxattr = hook::INODE_SETXATTR => "setxattr",
        InodeRemovexattr = hook::INODE_REMOVEXATTR => "removexattr",
        InodeSetAcl = hook::INODE_SET_ACL => "set-acl",
        InodeRemoveAcl = hook::INODE_REMOVE_ACL => "remove-acl",
        SocketConnect = hook::SOCKET_CONNECT => "connect",
        SocketSendmsg = hook::SOCKET_SENDMSG => "sendmsg",
        UnixConnect = hook::UNIX_CONNECT => "unix-connect",
        UnixSend = hook::UNIX_SEND => "unix-send",
        Bpf = hook::BPF => "bpf",
        TaskKill = hook::TASK_KILL => "kill",
        Ptrace = hook::PTRACE => "ptrace",
        SbMount = hook::SB_MOUNT => "mount",
        MoveMount = hook::MOVE_MOUNT => "move-mount",
        CloneIntoCgroup = hook::CLONE_INTO_CGROUP => "clone-into-cgroup",
        UringPersonality = hook::URING_PERSONALITY => "uring-personality",
    }
);
code_enum!(
    /// Outcome of a decision.
    Verdict, "verdict", {
        Allow = verdict::ALLOW => "allow",
        Deny = verdict::DENY => "deny",
        Audit = verdict::AUDIT => "audit",
    }
);
code_enum!(
    /// Why a decision came out as it did.
    Reason, "reason", {
        Baseline = reason::BASELINE => "baseline",
        Grant = reason::GRANT => "grant",
        OwnExecutable = reason::OWN_EXECUTABLE => "own-executable",
        SameScope = reason::SAME_SCOPE => "same-scope",
        UnnamedPeer = reason::UNNAMED_PEER => "unnamed-peer",
        NoGrant = reason::NO_GRANT => "no-grant",
        Frozen = reason::FROZEN => "frozen",
        GrantExpired = reason::GRANT_EXPIRED => "grant-expired",
        GrantUsedUp = reason::GRANT_USED_UP => "grant-used-up",
        PathTooDeep = reason::PATH_TOO_DEEP => "path-too-deep",
        ReadFailed = reason::READ_FAILED => "read-failed",
        ScopeStateMissing = reason::SCOPE_STATE_MISSING => "scope-state-missing",
        OutsideScope = reason::OUTSIDE_SCOPE => "outside-scope",
        Forbidden = reason::FORBIDDEN => "forbidden",
        UnsupportedFamily = reason::UNSUPPORTED_FAMILY => "unsupported-family",
    }
);

/// A record read from the ring buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its header ({header} bytes)")]
    ShortHeader { len: usize, header: usize },
    #[error("unknown record kind {0:#06x}")]
    UnknownKind(u16),
    #[error("record kind {kind:#06x} needs {need} bytes, got {got}")]
    Size { kind: u16, need: usize, got: usize },
    #[error(transparent)]
    Code(#[from] UnknownCode),
}

/// A decoded record. The match in [`Event::decode`] is exhaustive over
/// kinds, so adding a kind does not compile until it is handled here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "no_std, no allocator: records are decoded by value, one at a time, and the large \
              variants (paths, arguments) are the common ones"
)]
pub enum Event {
    File(FileDecisionEvent),
    Net(NetDecisionEvent),
    Task(TaskDecisionEvent),
    System(SystemDecisionEvent),
    ProcessExec(ProcessExecEvent),
    ProcessFork(ProcessForkEvent),
    ProcessExit(ProcessExitEvent),
}

/// The checked common part of every decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionInfo {
    pub scope_id: u32,
    pub ppid: u32,
    pub hook: Hook,
    pub verdict: Verdict,
    pub reason: Reason,
    pub grant_id: u64,
    pub comm: [u8; event::COMM_LEN],
}

impl TryFrom<Decision> for DecisionInfo {
    type Error = UnknownCode;
    fn try_from(d: Decision) -> Result<Self, UnknownCode> {
        Ok(Self {
            scope_id: d.scope_id,
            ppid: d.ppid,
            hook: Hook::try_from(d.hook)?,
            verdict: Verdict::try_from(d.verdict)?,
            reason: Reason::try_from(d.reason)?,
            grant_id: d.grant_id,
            comm: d.comm,
        })
    }
}

/// A path the kernel walked ([`KPath`]), checked: its components, leaf
/// first, and what the walk says about itself.
#[derive(Clone, PartialEq, Eq)]
pub struct KernelPath {
    raw: KPath,
}

impl fmt::Debug for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelPath")
            .field("depth", &self.raw.depth)
            .field("flags", &self.raw.flags)
            .finish_non_exhaustive()
    }
}

impl KernelPath {
    /// `None` for a path the kernel did not walk.
    #[must_use]
    pub fn of(raw: KPath) -> Option<Self> {
        (raw.len != 0 || raw.flags != 0).then_some(Self { raw })
    }

    /// The components, leaf first (the innermost at most [`event::PATH_DEPTH`]).
    pub fn components_leaf_first(&self) -> impl Iterator<Item = &[u8]> {
        let used = usize::from(self.raw.len).min(event::PATH_LEN);
        self.raw.bytes[..used]
            .split(|b| *b == 0)
            .take(usize::from(self.raw.depth))
    }

    /// The walk stopped before the root: the leading components are missing.
    #[must_use]
    pub const fn truncated(&self) -> bool {
        self.raw.flags & (path_flag::TRUNCATED | path_flag::UNREADABLE | path_flag::UNLINKED) != 0
    }

    /// The hook gave no mount: the path is from the file's filesystem root.
    #[must_use]
    pub const fn without_mount(&self) -> bool {
        self.raw.flags & path_flag::NO_MOUNT != 0
    }

    /// The raw [`path_flag`] bits.
    #[must_use]
    pub const fn flags(&self) -> u16 {
        self.raw.flags
    }
}

/// A checked file decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDecisionEvent {
    pub header: EventHeader,
    pub decision: DecisionInfo,
    pub file: FileId,
    pub other: FileId,
    pub detail: u32,
    name: [u8; event::NAME_LEN],
    name_len: usize,
    /// The full path the kernel resolved; `None` from builds before it
    /// was recorded.
    pub path: Option<KernelPath>,
}

impl FileDecisionEvent {
    /// The exec path or the file's last name component (possibly
    /// truncated), as raw bytes.
    #[must_use]
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// A checked network decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDecisionEvent {
    pub header: EventHeader,
    pub decision: DecisionInfo,
    pub family: u16,
    pub protocol: u16,
    pub port: u16,
    pub addr: [u8; 16],
    pub unix: FileId,
}

impl NetDecisionEvent {
    /// The destination address, when the family has one.
    #[must_use]
    pub fn ip(&self) -> Option<core::net::IpAddr> {
        match self.family {
            2 => Some(core::net::IpAddr::from([
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            ])),
            10 => Some(core::net::IpAddr::from(self.addr)),
            _ => None,
        }
    }
}

/// A checked decision about another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDecisionEvent {
    pub header: EventHeader,
    pub decision: DecisionInfo,
    pub target_tgid: u32,
    pub target_scope_id: u32,
    pub target_cgroup_id: u64,
    pub detail: u32,
}

/// A checked decision about a system operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDecisionEvent {
    pub header: EventHeader,
    pub decision: DecisionInfo,
    pub detail: u64,
}

/// A checked process-exec lifecycle record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExecEvent {
    pub header: EventHeader,
    /// The parent's pid (`real_parent` at exec time); 0 when unknown.
    pub parent_tgid: u32,
    /// The parent's process start time in ns; 0 when unknown.
    pub parent_start_ns: u64,
    pub comm: [u8; event::COMM_LEN],
    filename: [u8; event::FILENAME_LEN],
    filename_len: usize,
    /// What the kernel recorded of the new image; `None` from builds
    /// before it did.
    pub identity: Option<ExecIdentity>,
}

/// A process's identity at exec, read by the kernel in the exec itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecIdentity {
    argv: [u8; event::ARGV_LEN],
    argv_len: usize,
    /// [`path_flag`] bits of the arguments.
    pub argv_flags: u16,
    /// The executable, resolved.
    pub exe: Option<KernelPath>,
    /// The working directory.
    pub cwd: Option<KernelPath>,
}

impl ExecIdentity {
    /// The arguments, each without its NUL.
    pub fn argv(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = &self.argv[..self.argv_len];
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        bytes.split(|b| *b == 0).filter(move |_| !bytes.is_empty())
    }

    /// The arguments were cut at [`event::ARGV_LEN`] bytes.
    #[must_use]
    pub const fn argv_truncated(&self) -> bool {
        self.argv_flags & path_flag::TRUNCATED != 0
    }

    /// The arguments could not be read.
    #[must_use]
    pub const fn argv_unreadable(&self) -> bool {
        self.argv_flags & path_flag::UNREADABLE != 0
    }
}

impl ProcessExecEvent {
    /// The parent as the kernel named it at exec time: its pid and its
    /// start time in clock ticks (as `/proc/PID/stat` field 22 reports
    /// it); `None` when the record does not carry both.
    #[must_use]
    pub const fn parent(&self) -> Option<(u32, u64)> {
        match start_ticks(self.parent_start_ns) {
            Some(ticks) if self.parent_tgid != 0 => Some((self.parent_tgid, ticks)),
            _ => None,
        }
    }

    /// The file name passed to exec (possibly truncated), as raw bytes.
    #[must_use]
    pub fn filename(&self) -> &[u8] {
        &self.filename[..self.filename_len]
    }
}

/// A process created by a governed task. The header is the parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessForkEvent {
    pub header: EventHeader,
    /// The new process's pid (thread-group id).
    pub child_tgid: u32,
    /// The new process's `start_boottime` in ns; 0 when the kernel could
    /// not read it.
    pub child_start_ns: u64,
}

impl ProcessForkEvent {
    /// The parent's pid.
    #[must_use]
    pub const fn parent_tgid(&self) -> u32 {
        self.header.tgid
    }

    /// The new process's start time in clock ticks since boot, as
    /// `/proc/PID/stat` field 22 reports it; `None` when unknown.
    #[must_use]
    pub const fn child_start_ticks(&self) -> Option<u64> {
        start_ticks(self.child_start_ns)
    }
}

/// A governed process ended (its thread-group leader exited). The header
/// is the exiting process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExitEvent {
    pub header: EventHeader,
    /// Raw `task->exit_code`, in wait-status form.
    pub exit_code: u32,
}

impl ProcessExitEvent {
    /// The status passed to `exit`, when the process exited normally.
    #[must_use]
    pub const fn exited(&self) -> Option<u8> {
        if self.exit_code & 0x7f == 0 {
            Some((self.exit_code >> 8).to_le_bytes()[0])
        } else {
            None
        }
    }

    /// The signal that killed the process, when it was killed.
    #[must_use]
    pub const fn signal(&self) -> Option<u8> {
        match self.exit_code & 0x7f {
            0 | 0x7f => None,
            sig => Some(sig.to_le_bytes()[0]),
        }
    }

    /// Whether the process dumped core when killed.
    #[must_use]
    pub const fn core_dumped(&self) -> bool {
        self.signal().is_some() && self.exit_code & 0x80 != 0
    }
}

/// USER_HZ: the clock-tick unit of `/proc/PID/stat` times on every Linux
/// architecture this agent runs on.
pub const USER_HZ: u64 = 100;

/// A `start_boottime` in ns as `/proc/PID/stat` `starttime` ticks; `None`
/// for 0 (the kernel could not read it).
#[must_use]
pub const fn start_ticks(start_ns: u64) -> Option<u64> {
    if start_ns == 0 {
        None
    } else {
        Some(start_ns / (1_000_000_000 / USER_HZ))
    }
}

impl EventHeader {
    /// The process's start time in clock ticks since boot, as
    /// `/proc/PID/stat` field 22 reports it; `None` when unknown.
    #[must_use]
    pub const fn start_ticks(&self) -> Option<u64> {
        start_ticks(self.start_ns)
    }
}

/// The used part of a kernel string buffer: at most `len` bytes, cut at the
/// first NUL.
fn used(bytes: &[u8], len: u32) -> usize {
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
    c_str_bytes(&bytes[..len]).len()
}

/// The part of a NUL-padded kernel string before the first NUL.
#[must_use]
pub fn c_str_bytes(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Reads a `T` from the start of `bytes`.
///
/// Only instantiated with the `repr(C)` integer-and-array record types of
/// [`crate::event`], for which every bit pattern is valid.
fn read<T: Copy>(kind: u16, bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Size {
            kind,
            need,
            got: bytes.len(),
        });
    }
    // SAFETY: the length was checked above; `read_unaligned` has no alignment
    // requirement; callers only use plain-integer `repr(C)` types.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

impl Event {
    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < size_of::<EventHeader>() {
            return Err(DecodeError::ShortHeader {
                len: bytes.len(),
                header: size_of::<EventHeader>(),
            });
        }
        let header: EventHeader = read(0, bytes)?;
        match header.kind {
            event::kind::FILE_DECISION
                if bytes.len() < size_of::<FileDecision>()
                    && usize::from(header.size) == size_of::<FileDecisionV1>() =>
            {
                let r: FileDecisionV1 = read(header.kind, bytes)?;
                Ok(Self::File(FileDecisionEvent {
                    header,
                    decision: r.decision.try_into()?,
                    file: r.file,
                    other: r.other,
                    detail: r.detail,
                    name: r.name,
                    name_len: used(&r.name, r.name_len),
                    path: None,
                }))
            }
            event::kind::FILE_DECISION => {
                let r: FileDecision = read(header.kind, bytes)?;
                Ok(Self::File(FileDecisionEvent {
                    header,
                    decision: r.decision.try_into()?,
                    file: r.file,
                    other: r.other,
                    detail: r.detail,
                    name: r.name,
                    name_len: used(&r.name, r.name_len),
                    path: KernelPath::of(r.path),
                }))
            }
            event::kind::NET_DECISION => {
                let r: NetDecision = read(header.kind, bytes)?;
                Ok(Self::Net(NetDecisionEvent {
                    header,
                    decision: r.decision.try_into()?,
                    family: r.family,
                    protocol: r.protocol,
                    port: r.port,
                    addr: r.addr,
                    unix: r.unix,
                }))
            }
            event::kind::TASK_DECISION => {
                let r: TaskDecision = read(header.kind, bytes)?;
                Ok(Self::Task(TaskDecisionEvent {
                    header,
                    decision: r.decision.try_into()?,
                    target_tgid: r.target_tgid,
                    target_scope_id: r.target_scope_id,
                    target_cgroup_id: r.target_cgroup_id,
                    detail: r.detail,
                }))
            }
            event::kind::SYSTEM_DECISION => {
                let r: SystemDecision = read(header.kind, bytes)?;
                Ok(Self::System(SystemDecisionEvent {
                    header,
                    decision: r.decision.try_into()?,
                    detail: r.detail,
                }))
            }
            event::kind::PROCESS_EXEC
                if bytes.len() < size_of::<ProcessExec>()
                    && usize::from(header.size) == size_of::<ProcessExecV1>() =>
            {
                let r: ProcessExecV1 = read(header.kind, bytes)?;
                Ok(Self::ProcessExec(ProcessExecEvent {
                    header,
                    parent_tgid: 0,
                    parent_start_ns: 0,
                    comm: r.comm,
                    filename: r.filename,
                    filename_len: used(&r.filename, r.filename_len),
                    identity: None,
                }))
            }
            event::kind::PROCESS_EXEC
                if bytes.len() < size_of::<ProcessExec>()
                    && usize::from(header.size) == size_of::<ProcessExecV2>() =>
            {
                let r: ProcessExecV2 = read(header.kind, bytes)?;
                Ok(Self::ProcessExec(ProcessExecEvent {
                    header,
                    parent_tgid: r.parent_tgid,
                    parent_start_ns: r.parent_start_ns,
                    comm: r.comm,
                    filename: r.filename,
                    filename_len: used(&r.filename, r.filename_len),
                    identity: None,
                }))
            }
            event::kind::PROCESS_EXEC => {
                let r: ProcessExec = read(header.kind, bytes)?;
                Ok(Self::ProcessExec(ProcessExecEvent {
                    header,
                    parent_tgid: r.parent_tgid,
                    parent_start_ns: r.parent_start_ns,
                    comm: r.comm,
                    filename: r.filename,
                    filename_len: used(&r.filename, r.filename_len),
                    identity: Some(ExecIdentity {
                        argv: r.argv,
                        argv_len: usize::from(r.argv_len).min(event::ARGV_LEN),
                        argv_flags: r.argv_flags,
                        exe: KernelPath::of(r.exe),
                        cwd: KernelPath::of(r.cwd),
                    }),
                }))
            }
            event::kind::PROCESS_FORK => {
                let r: ProcessFork = read(header.kind, bytes)?;
                Ok(Self::ProcessFork(ProcessForkEvent {
                    header,
                    child_tgid: r.child_tgid,
                    child_start_ns: r.child_start_ns,
                }))
            }
            event::kind::PROCESS_EXIT => {
                let r: ProcessExit = read(header.kind, bytes)?;
                Ok(Self::ProcessExit(ProcessExitEvent {
                    header,
                    exit_code: r.exit_code,
                }))
            }
            other => Err(DecodeError::UnknownKind(other)),
        }
    }

    #[must_use]
    pub const fn header(&self) -> &EventHeader {
        match self {
            Self::File(e) => &e.header,
            Self::Net(e) => &e.header,
            Self::Task(e) => &e.header,
            Self::System(e) => &e.header,
            Self::ProcessExec(e) => &e.header,
            Self::ProcessFork(e) => &e.header,
            Self::ProcessExit(e) => &e.header,
        }
    }
}

impl Event {
    /// The decision part, for decision records.
    #[must_use]
    pub const fn decision(&self) -> Option<&DecisionInfo> {
        match self {
            Self::File(e) => Some(&e.decision),
            Self::Net(e) => Some(&e.decision),
            Self::Task(e) => Some(&e.decision),
            Self::System(e) => Some(&e.decision),
            Self::ProcessExec(_) | Self::ProcessFork(_) | Self::ProcessExit(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a plain-integer repr(C) value as bytes.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn header(size: usize) -> EventHeader {
        EventHeader {
            kind: event::kind::PROCESS_EXEC,
            size: u16::try_from(size).unwrap(),
            pid: 9,
            tgid: 9,
            uid: 0,
            boot_ns: 1,
            cgroup_id: 2,
            start_ns: 30_000_000,
        }
    }

    #[test]
    fn an_exec_record_names_its_parent_and_the_old_layout_still_decodes() {
        let mut filename = [0; event::FILENAME_LEN];
        filename[..4].copy_from_slice(b"/x/y");
        let empty = KPath {
            len: 0,
            depth: 0,
            flags: 0,
            _pad: 0,
            bytes: [0; event::PATH_LEN],
        };
        let rec = ProcessExec {
            header: header(size_of::<ProcessExec>()),
            parent_tgid: 7,
            filename_len: 4,
            parent_start_ns: 12_345_678_901,
            comm: [b'a'; event::COMM_LEN],
            filename,
            argv_len: 0,
            argv_flags: 0,
            _pad: 0,
            argv: [0; event::ARGV_LEN],
            exe: empty,
            cwd: empty,
        };
        let Ok(Event::ProcessExec(e)) = Event::decode(&bytes_of(&rec)) else {
            panic!("not an exec");
        };
        assert_eq!(e.parent(), Some((7, 1_234)));
        assert_eq!((e.filename(), e.comm), (&b"/x/y"[..], rec.comm));
        let unknown = ProcessExec {
            parent_start_ns: 0,
            ..rec
        };
        let Ok(Event::ProcessExec(e)) = Event::decode(&bytes_of(&unknown)) else {
            panic!("not an exec");
        };
        assert_eq!(e.parent(), None, "a pid without a start time names nobody");

        let old = ProcessExecV1 {
            header: header(size_of::<ProcessExecV1>()),
            _pad: 0,
            filename_len: 4,
            comm: [b'b'; event::COMM_LEN],
            filename,
        };
        let Ok(Event::ProcessExec(e)) = Event::decode(&bytes_of(&old)) else {
            panic!("not an exec");
        };
        assert_eq!((e.parent(), e.filename()), (None, &b"/x/y"[..]));
        assert_eq!(e.comm, old.comm);

        // A new-layout header on too few bytes is short, not the old layout.
        let mut short = bytes_of(&rec);
        short.truncate(size_of::<ProcessExecV1>());
        assert!(matches!(
            Event::decode(&short),
            Err(DecodeError::Size { need: 1888, .. })
        ));

        let v2 = ProcessExecV2 {
            header: header(size_of::<ProcessExecV2>()),
            parent_tgid: 7,
            filename_len: 4,
            parent_start_ns: 12_345_678_901,
            comm: [b'c'; event::COMM_LEN],
            filename,
        };
        let Ok(Event::ProcessExec(e)) = Event::decode(&bytes_of(&v2)) else {
            panic!("not an exec");
        };
        assert_eq!((e.parent(), e.filename()), (Some((7, 1_234)), &b"/x/y"[..]));
        assert!(e.identity.is_none(), "the old layout carries no identity");
    }

    #[test]
    fn kernel_paths_and_arguments_decode() {
        let mut bytes = [0; event::PATH_LEN];
        bytes[..11].copy_from_slice(b"file\0c\0srv\0");
        let path = KPath {
            len: 11,
            depth: 3,
            flags: path_flag::TRUNCATED,
            _pad: 0,
            bytes,
        };
        let p = KernelPath::of(path).unwrap();
        let parts: Vec<&[u8]> = p.components_leaf_first().collect();
        assert_eq!(parts, [&b"file"[..], b"c", b"srv"]);
        assert!(p.truncated() && !p.without_mount());
        let none = KPath {
            len: 0,
            depth: 0,
            flags: 0,
            ..path
        };
        assert!(KernelPath::of(none).is_none(), "not walked");

        let mut argv = [0; event::ARGV_LEN];
        argv[..12].copy_from_slice(b"ls\0-l\0/tmp\0\0");
        let id = ExecIdentity {
            argv,
            argv_len: 11,
            argv_flags: 0,
            exe: None,
            cwd: None,
        };
        let args: Vec<&[u8]> = id.argv().collect();
        assert_eq!(args, [&b"ls"[..], b"-l", b"/tmp"]);
        let empty = ExecIdentity { argv_len: 0, ..id };
        assert_eq!(empty.argv().count(), 0);
    }
}
