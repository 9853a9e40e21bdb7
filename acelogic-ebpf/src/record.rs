//! Building records in the ring buffer.
//!
//! A decision record is reserved *before* the hook returns its verdict: if
//! it cannot be reserved the action is denied and counted (no record, no
//! allow). Records are written in place to keep large bodies off the
//! 512-byte BPF stack.

use acelogic_common::{
    codes::{counter, hook, verdict},
    event::{self, Decision, EventHeader, ExecDecision, record_size},
    scope::ScopeEntry,
};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};

use crate::{
    maps::{EVENTS, count},
    verdict::{Error, Reason},
};

/// The header for a record of `kind` and `size` about the current task.
#[inline(always)]
pub(crate) fn header(kind: u16, size: u16, cgroup_id: u64) -> EventHeader {
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
    }
}

/// The current task's `comm`, or zeros when the helper fails (the record
/// still carries pid and cgroup; userspace enriches from procfs).
#[inline(always)]
pub(crate) fn comm() -> [u8; event::COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; event::COMM_LEN])
}

/// Emits the record of an exec denial. `Err` when the ring buffer is full;
/// the caller must then deny (it already does) and the loss is counted.
#[inline(always)]
pub(crate) fn exec_denial(scope: &ScopeEntry, cgroup_id: u64, why: Reason) -> Result<(), Error> {
    let Some(mut entry) = EVENTS.reserve::<ExecDecision>(0) else {
        count(counter::RECORD_UNAVAILABLE);
        return Err(Error::RecordUnavailable);
    };
    entry.write(ExecDecision {
        header: header(
            event::kind::EXEC_DECISION,
            record_size::<ExecDecision>(),
            cgroup_id,
        ),
        decision: Decision {
            scope_id: scope.scope_id,
            hook: hook::EXEC,
            verdict: verdict::DENY,
            reason: why.code(),
            _pad: [0; 6],
            grant_id: 0,
        },
        comm: comm(),
    });
    entry.submit(0);
    Ok(())
}
