//! The record envelope: every record starts with an [`EventHeader`]; the
//! header's `kind` says which typed body follows.
//!
//! Kinds are numbered in ranges so a reader can tell the family of a kind it
//! does not know: `0x01xx` decisions made by an LSM gate, `0x02xx` process
//! lifecycle observed by tracepoints.

use core::mem::size_of;

/// Record kinds.
pub mod kind {
    /// A decision of the exec gate: [`super::ExecDecision`].
    pub const EXEC_DECISION: u16 = 0x0101;
    /// A process executed a new image: [`super::ProcessExec`].
    pub const PROCESS_EXEC: u16 = 0x0201;
}

/// Length of a task's `comm`, as in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes of an exec'd file name kept in a lifecycle record.
pub const FILENAME_LEN: usize = 256;

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
}

const _: () = assert!(size_of::<EventHeader>() == 32);

/// Common part of every decision.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Scope (workload) the deciding cgroup belongs to.
    pub scope_id: u32,
    /// One of [`crate::codes::hook`].
    pub hook: u16,
    /// One of [`crate::codes::verdict`].
    pub verdict: u16,
    /// One of [`crate::codes::reason`].
    pub reason: u16,
    pub _pad: [u8; 6],
    /// Grant that allowed the action, 0 when none did.
    pub grant_id: u64,
}

const _: () = assert!(size_of::<Decision>() == 24);

/// Record of [`kind::EXEC_DECISION`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecDecision {
    pub header: EventHeader,
    pub decision: Decision,
    /// `comm` of the task asking to exec (the name before the new image).
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(size_of::<ExecDecision>() == 72);

/// Record of [`kind::PROCESS_EXEC`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessExec {
    pub header: EventHeader,
    pub _pad: u32,
    /// Bytes of `filename` used, without the NUL; 0 when unreadable.
    pub filename_len: u32,
    /// `comm` after exec.
    pub comm: [u8; COMM_LEN],
    /// The file name passed to exec, NUL-terminated, truncated.
    pub filename: [u8; FILENAME_LEN],
}

const _: () = assert!(size_of::<ProcessExec>() == 312);

#[expect(
    clippy::cast_possible_truncation,
    reason = "record sizes are asserted above to fit in u16"
)]
pub const fn record_size<T>() -> u16 {
    size_of::<T>() as u16
}
