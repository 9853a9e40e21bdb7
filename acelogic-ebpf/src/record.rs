//! Record bodies and their common parts.
//!
//! Decision records are reserved in the ring buffer *before* the decision
//! (see `gate.rs`) and written in place, which keeps the large bodies off
//! the 512-byte BPF stack.

use acelogic_common::event::{
    self, COMM_LEN, Decision, EventHeader, FileDecision, FileId, NAME_LEN, NetDecision,
    SystemDecision, TaskDecision,
};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};

use crate::{kobj, scope};

/// The header for a record of `kind` and `size` about the current task.
/// A start time that cannot be read is 0, never an error: no decision
/// depends on it, and userspace falls back to procfs.
#[inline(always)]
pub(crate) fn header(kind: u16, size: u16, cgroup_id: u64) -> EventHeader {
    let start_ns = kobj::process_start_ns(scope::current_task()).unwrap_or(0);
    let pid_tgid = bpf_get_current_pid_tgid();
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the helpers pack two u32 values into one u64"
    )]
    EventHeader {
        kind,
        size,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        uid: bpf_get_current_uid_gid() as u32,
        // SAFETY: plain BPF helper call with no arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id,
        start_ns,
    }
}

/// The current task's `comm`, or zeros when the helper fails (the record
/// still carries pid and cgroup; userspace enriches from procfs).
#[inline(always)]
pub(crate) fn comm() -> [u8; COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; COMM_LEN])
}

/// The part every decision record starts with.
#[repr(C)]
pub(crate) struct Prefix {
    pub(crate) header: EventHeader,
    pub(crate) decision: Decision,
}

/// A decision record body: its kind and an all-zero value to start from
/// (ring-buffer memory is not cleared between records).
pub(crate) trait Body: Sized {
    const KIND: u16;
    const EMPTY: Self;
}

const HEADER: EventHeader = EventHeader {
    kind: 0,
    size: 0,
    pid: 0,
    tgid: 0,
    uid: 0,
    boot_ns: 0,
    cgroup_id: 0,
    start_ns: 0,
};

const DECISION: Decision = Decision {
    scope_id: 0,
    ppid: 0,
    hook: 0,
    verdict: 0,
    reason: 0,
    _pad: 0,
    grant_id: 0,
    comm: [0; COMM_LEN],
};

const NO_FILE: FileId = FileId {
    dev: 0,
    _pad: 0,
    ino: 0,
};

impl Body for FileDecision {
    const KIND: u16 = event::kind::FILE_DECISION;
    const EMPTY: Self = Self {
        header: HEADER,
        decision: DECISION,
        file: NO_FILE,
        other: NO_FILE,
        detail: 0,
        name_len: 0,
        name: [0; NAME_LEN],
    };
}

impl Body for NetDecision {
    const KIND: u16 = event::kind::NET_DECISION;
    const EMPTY: Self = Self {
        header: HEADER,
        decision: DECISION,
        family: 0,
        protocol: 0,
        port: 0,
        _pad: 0,
        addr: [0; 16],
        unix: NO_FILE,
    };
}

impl Body for TaskDecision {
    const KIND: u16 = event::kind::TASK_DECISION;
    const EMPTY: Self = Self {
        header: HEADER,
        decision: DECISION,
        target_tgid: 0,
        target_scope_id: 0,
        target_cgroup_id: 0,
        detail: 0,
        _pad: 0,
    };
}

impl Body for SystemDecision {
    const KIND: u16 = event::kind::SYSTEM_DECISION;
    const EMPTY: Self = Self {
        header: HEADER,
        decision: DECISION,
        detail: 0,
    };
}
