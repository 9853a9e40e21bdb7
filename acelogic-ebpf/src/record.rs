//! Record bodies and their common parts.
//!
//! Decision records are reserved in the ring buffer *before* the decision
//! (see `gate.rs`) and written in place, which keeps the large bodies off
//! the 512-byte BPF stack.

use acelogic_common::event::{
    self, COMM_LEN, Decision, EventHeader, FileDecision, NetDecision, SystemDecision, TaskDecision,
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

/// A decision record body: its kind. A reserved record starts as ring
/// memory from earlier records, so the gate clears it first ([`zero`]).
pub(crate) trait Body: Sized {
    const KIND: u16;
    /// Bytes [`zero`] clears: the whole body, or for a body that ends in
    /// a path buffer, everything before the buffer (its used length is
    /// cleared, so stale bytes past it are never read).
    const CLEAR: usize = size_of::<Self>();
}

/// Clears a reserved record, word by word. Not `rec.write(B::EMPTY)`:
/// LLVM turns that into a call to an outlined `memset`, a global function
/// taking a ring-buffer pointer, which verifiers before Linux 6.2 (and
/// some 6.1 builds) refuse ("reg type unsupported for arg#0 function
/// memset"). Volatile stores are never merged into a `memset`.
#[inline(always)]
pub(crate) fn zero<B: Body>(rec: *mut B) {
    const {
        assert!(
            B::CLEAR.is_multiple_of(8) && B::CLEAR <= size_of::<B>(),
            "whole words"
        );
    };
    let words = rec.cast::<u64>();
    let mut i = 0;
    while i < B::CLEAR / 8 {
        // SAFETY: `rec` is an exclusively owned, reserved ring-buffer slot
        // of `size_of::<B>()` bytes, 8-aligned.
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
}

impl Body for FileDecision {
    const KIND: u16 = event::kind::FILE_DECISION;
    const CLEAR: usize = size_of::<FileDecision>() - event::PATH_LEN;
}

impl Body for NetDecision {
    const KIND: u16 = event::kind::NET_DECISION;
}

impl Body for TaskDecision {
    const KIND: u16 = event::kind::TASK_DECISION;
}

impl Body for SystemDecision {
    const KIND: u16 = event::kind::SYSTEM_DECISION;
}
