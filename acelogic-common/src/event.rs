//! The record envelope: every record starts with an [`EventHeader`]; the
//! header's `kind` says which typed body follows.
//!
//! Kinds are numbered in ranges so a reader can tell the family of a kind it
//! does not know: `0x01xx` decisions made by an LSM gate, `0x02xx` process
//! lifecycle observed by tracepoints.

use core::mem::size_of;

/// Record kinds.
pub mod kind {
    /// A decision about a file (exec, executable mapping, write or path
    /// change): [`super::FileDecision`].
    pub const FILE_DECISION: u16 = 0x0101;
    /// A decision about a network destination: [`super::NetDecision`].
    pub const NET_DECISION: u16 = 0x0102;
    /// A decision about another process (signal, ptrace):
    /// [`super::TaskDecision`].
    pub const TASK_DECISION: u16 = 0x0103;
    /// A decision about a system operation (bpf, mount, clone into a
    /// cgroup): [`super::SystemDecision`].
    pub const SYSTEM_DECISION: u16 = 0x0104;
    /// A process executed a new image: [`super::ProcessExec`].
    pub const PROCESS_EXEC: u16 = 0x0201;
    /// A process (not a thread) was created: [`super::ProcessFork`].
    pub const PROCESS_FORK: u16 = 0x0202;
    /// A thread-group leader exited: [`super::ProcessExit`].
    pub const PROCESS_EXIT: u16 = 0x0203;
}

/// Length of a task's `comm`, as in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes of an exec'd file name kept in a lifecycle record.
pub const FILENAME_LEN: usize = 256;
/// Bytes of the name kept in a file decision: the path given to exec, or
/// the last component of other files.
pub const NAME_LEN: usize = 128;

/// Bytes of a path walked in the kernel ([`KPath`]).
pub const PATH_LEN: usize = 512;
/// Most components a path walk records; deeper paths are truncated.
pub const PATH_DEPTH: u32 = 24;
/// Bytes of the argument vector kept in an exec record.
pub const ARGV_LEN: usize = 512;

/// [`KPath::flags`] and [`ProcessExec::argv_flags`].
pub mod path_flag {
    /// The walk stopped before the root (too deep or too long): the
    /// components recorded are the innermost ones.
    pub const TRUNCATED: u16 = 1;
    /// The hook gives a dentry without its mount: the path runs from the
    /// root of the file's own filesystem, not from `/`.
    pub const NO_MOUNT: u16 = 2;
    /// A kernel read failed during the walk; what was read is kept.
    pub const UNREADABLE: u16 = 4;
    /// The dentry was unlinked (`d_parent` is no longer its directory):
    /// the name is kept, the path above it is not known.
    pub const UNLINKED: u16 = 8;
}

/// A path as the kernel resolved it, walked from the object up through
/// its parents and the mounts they sit on. The components are stored
/// leaf first, each NUL-terminated (`depth` of them in `len` bytes), so
/// the kernel never needs to move a byte; userspace reverses them. Empty
/// (`len` 0) when not walked.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KPath {
    pub len: u16,
    pub depth: u16,
    /// [`path_flag`] bits.
    pub flags: u16,
    pub _pad: u16,
    pub bytes: [u8; PATH_LEN],
}

const _: () = assert!(size_of::<KPath>() == 520);

impl KPath {
    /// Not walked.
    pub const EMPTY: Self = Self {
        len: 0,
        depth: 0,
        flags: 0,
        _pad: 0,
        bytes: [0; PATH_LEN],
    };
}

/// First bytes of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// One of [`kind`].
    pub kind: u16,
    /// Size of the whole record, header included, in bytes.
    pub size: u16,
    /// Kernel thread id (`current->pid`).
    pub pid: u32,
    /// Kernel thread-group id (the userspace pid).
    pub tgid: u32,
    /// Real uid of the task.
    pub uid: u32,
    /// `bpf_ktime_get_boot_ns()` when the record was made.
    pub boot_ns: u64,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// Start time of the task's process: its thread-group leader's
    /// `start_boottime`, in ns since boot. `/proc/PID/stat` field 22
    /// (`starttime`) is this divided by `10^9 / USER_HZ`, so it names the
    /// process together with boot id and tgid even after the pid is reused.
    /// 0 when the kernel could not be read (userspace falls back to procfs).
    pub start_ns: u64,
}

const _: () = assert!(size_of::<EventHeader>() == 40);

/// Common part of every decision, after the header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Scope (workload) the deciding cgroup belongs to.
    pub scope_id: u32,
    /// Thread-group id of the task's parent; 0 when unreadable.
    pub ppid: u32,
    /// One of [`crate::codes::hook`].
    pub hook: u16,
    /// One of [`crate::codes::verdict`].
    pub verdict: u16,
    /// One of [`crate::codes::reason`].
    pub reason: u16,
    pub _pad: u16,
    /// Grant that allowed the action, 0 when none did.
    pub grant_id: u64,
    /// `comm` of the task.
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(size_of::<Decision>() == 40);

/// A file by identity. All zero when not applicable.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    /// Kernel `dev_t` (`MAJOR << 20 | MINOR`).
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

const _: () = assert!(size_of::<FileId>() == 16);

/// Record of [`kind::FILE_DECISION`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDecision {
    pub header: EventHeader,
    pub decision: Decision,
    /// The file decided on. For a new name (create, mkdir, symlink,
    /// mknod) it is the directory the name is created in.
    pub file: FileId,
    /// Second object: the new location's directory for link and rename.
    pub other: FileId,
    /// Hook detail: `f_mode` for open, `prot` for mappings, 0 otherwise.
    pub detail: u32,
    /// Bytes of `name` used.
    pub name_len: u32,
    /// Path passed to exec, or the last component of the file's name;
    /// NUL-terminated, truncated.
    pub name: [u8; NAME_LEN],
    /// The file's full path as the kernel resolved it (for exec: the
    /// binary, symlinks followed).
    pub path: KPath,
}

const _: () = assert!(size_of::<FileDecision>() == 768);

/// [`FileDecision`] as builds before kernel paths wrote it (248 bytes, no
/// `path`); it decodes with the path unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDecisionV1 {
    pub header: EventHeader,
    pub decision: Decision,
    pub file: FileId,
    pub other: FileId,
    pub detail: u32,
    pub name_len: u32,
    pub name: [u8; NAME_LEN],
}

const _: () = assert!(size_of::<FileDecisionV1>() == 248);

/// Record of [`kind::NET_DECISION`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetDecision {
    pub header: EventHeader,
    pub decision: Decision,
    /// `AF_*` of the destination.
    pub family: u16,
    /// `IPPROTO_*` of the socket (0 for AF_UNIX).
    pub protocol: u16,
    /// Destination port, host byte order.
    pub port: u16,
    pub _pad: u16,
    /// IPv4 in the first 4 bytes, or IPv6; zero for AF_UNIX.
    pub addr: [u8; 16],
    /// The bound socket file for AF_UNIX; zero otherwise.
    pub unix: FileId,
}

const _: () = assert!(size_of::<NetDecision>() == 120);

/// Record of [`kind::TASK_DECISION`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDecision {
    pub header: EventHeader,
    pub decision: Decision,
    /// Thread-group id of the target process.
    pub target_tgid: u32,
    /// Scope of the target, 0 when it is not governed.
    pub target_scope_id: u32,
    /// cgroup v2 id of the target.
    pub target_cgroup_id: u64,
    /// Signal number for `task_kill`, access mode for ptrace.
    pub detail: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<TaskDecision>() == 104);

/// Record of [`kind::SYSTEM_DECISION`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemDecision {
    pub header: EventHeader,
    pub decision: Decision,
    /// bpf command, mount flags or clone flags.
    pub detail: u64,
}

const _: () = assert!(size_of::<SystemDecision>() == 88);

/// Record of [`kind::PROCESS_EXEC`].
///
/// It names the process's parent as the kernel knew it at exec time
/// (`current->real_parent`): its tgid and its process start time, which
/// with the boot id identify the parent exactly, even after it exited and
/// its pid went to another process. Lineage takes parentage from here, not
/// from procfs after the fact.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessExec {
    pub header: EventHeader,
    /// Thread-group id of `current->real_parent`; 0 when unreadable.
    pub parent_tgid: u32,
    /// Bytes of `filename` used, without the NUL; 0 when unreadable.
    pub filename_len: u32,
    /// Start time of the parent's process (its thread-group leader's
    /// `start_boottime`, see [`EventHeader::start_ns`]); 0 when unreadable.
    pub parent_start_ns: u64,
    /// `comm` after exec.
    pub comm: [u8; COMM_LEN],
    /// The file name passed to exec, NUL-terminated, truncated.
    pub filename: [u8; FILENAME_LEN],
    /// Bytes of `argv` used: the new image's arguments, each
    /// NUL-terminated, as the process's memory holds them.
    pub argv_len: u16,
    /// [`path_flag::TRUNCATED`] when the arguments were longer than
    /// [`ARGV_LEN`], [`path_flag::UNREADABLE`] when they could not be read.
    pub argv_flags: u16,
    pub _pad: u32,
    pub argv: [u8; ARGV_LEN],
    /// The executable the process now runs (`mm->exe_file`), resolved.
    pub exe: KPath,
    /// The working directory (`fs->pwd`).
    pub cwd: KPath,
}

const _: () = assert!(size_of::<ProcessExec>() == 1888);

/// [`ProcessExec`] as builds before kernel-side identity wrote it (328
/// bytes: no argv, exe or cwd); it decodes with those unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessExecV2 {
    pub header: EventHeader,
    pub parent_tgid: u32,
    pub filename_len: u32,
    pub parent_start_ns: u64,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
}

const _: () = assert!(size_of::<ProcessExecV2>() == 328);

/// [`ProcessExec`] as builds before the parent fields wrote it (320 bytes:
/// a padding word where `parent_tgid` is, no `parent_start_ns`). A daemon
/// upgraded over still-pinned programs keeps receiving it until they are
/// replaced; it decodes with the parent unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessExecV1 {
    pub header: EventHeader,
    pub _pad: u32,
    pub filename_len: u32,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
}

const _: () = assert!(size_of::<ProcessExecV1>() == 320);

/// Record of [`kind::PROCESS_FORK`]: a governed task created a new process.
/// The header describes the parent (the task that called fork or clone);
/// threads are not recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessFork {
    pub header: EventHeader,
    /// Thread-group id (the userspace pid) of the new process.
    pub child_tgid: u32,
    pub _pad: u32,
    /// The new process's `start_boottime` (see [`EventHeader::start_ns`]);
    /// 0 when unreadable.
    pub child_start_ns: u64,
}

const _: () = assert!(size_of::<ProcessFork>() == 56);

/// Record of [`kind::PROCESS_EXIT`]: a governed thread-group leader exited.
/// The header describes the exiting task.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessExit {
    pub header: EventHeader,
    /// `task->exit_code` in wait-status form: `code << 8` after `exit(code)`,
    /// the signal number (with `0x80` for a core dump) when killed.
    pub exit_code: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<ProcessExit>() == 48);

#[expect(
    clippy::cast_possible_truncation,
    reason = "record sizes are asserted above to fit in u16"
)]
pub const fn record_size<T>() -> u16 {
    size_of::<T>() as u16
}
