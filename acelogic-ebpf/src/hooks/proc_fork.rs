//! Process lineage: a governed task created a new process.
//!
//! BTF tracepoint `sched_process_fork`, prototype
//! `TP_PROTO(struct task_struct *parent, struct task_struct *child)`, fired
//! by `kernel_clone` in the parent's context after `copy_process`
//! succeeded and before the child can run. A classic tracepoint would hand
//! us only pids and comms; the BTF one gives the child's `task_struct`, so
//! a thread (`CLONE_THREAD`: `child->pid != child->tgid`) is told apart
//! from a process and skipped, and the child's start time is read at the
//! source.

use acelogic_common::{
    codes::counter,
    event::{self, ProcessFork, record_size},
};
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::{
    kobj::{self, Kptr},
    maps::{EVENTS, count},
    record, scope,
};

#[btf_tracepoint(function = "sched_process_fork")]
pub(crate) fn proc_fork(ctx: BtfTracePointContext) -> i32 {
    if try_proc_fork(&ctx).is_err() {
        count(counter::LINEAGE_LOST);
    }
    0
}

fn try_proc_fork(ctx: &BtfTracePointContext) -> Result<(), ()> {
    let Some(governed) = scope::current() else {
        return Ok(());
    };
    let child: Kptr = ctx.arg(1);
    // An unreadable child is a lost record, not a guess.
    let child_tgid = kobj::task_tgid(child).map_err(|_| ())?;
    let child_pid = kobj::task_pid(child).map_err(|_| ())?;
    if child_pid != child_tgid {
        return Ok(());
    }
    let mut entry = EVENTS.reserve::<ProcessFork>(0).ok_or(())?;
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points at a reserved, exclusively owned ring-buffer slot
    // of `size_of::<ProcessFork>()` bytes; every field is written before
    // submit.
    unsafe {
        (*rec).header = record::header(
            event::kind::PROCESS_FORK,
            record_size::<ProcessFork>(),
            governed.cgroup_id,
        );
        (*rec).child_tgid = child_tgid;
        (*rec)._pad = 0;
        (*rec).child_start_ns = kobj::task_start_ns(child).unwrap_or(0);
    }
    entry.submit(0);
    Ok(())
}
