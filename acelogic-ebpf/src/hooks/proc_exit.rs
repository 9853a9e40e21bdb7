//! Process lineage: a governed process ended.
//!
//! BTF tracepoint `sched_process_exit`, fired by `do_exit` in the exiting
//! task's context after `task->exit_code` is set. No argument is read
//! (6.16 added `group_dead`); the task comes from `bpf_get_current_task()`
//! and `exit_code` through the BTF offset table. A BTF tracepoint, not the
//! classic one, for the reason given in `proc_exec`: a classic
//! tracepoint's program is skipped while a preempted BPF map syscall holds
//! the CPU's `bpf_prog_active`.
//!
//! Only the thread-group leader is recorded: its exit code is the wait
//! status its parent sees whenever the process ends by `exit_group` or a
//! fatal signal. (A leader that leaves by `pthread_exit` before its other
//! threads is recorded then, with status 0.)

use acelogic_common::{
    codes::counter,
    event::{self, ProcessExit, record_size},
};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};

use crate::{
    kobj,
    maps::{EVENTS, count},
    record, scope,
};

#[btf_tracepoint(function = "sched_process_exit")]
pub(crate) fn proc_exit(_ctx: BtfTracePointContext) -> i32 {
    if try_proc_exit().is_err() {
        count(counter::LINEAGE_LOST);
    }
    0
}

fn try_proc_exit() -> Result<(), ()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if pid_tgid >> 32 != pid_tgid & 0xffff_ffff {
        return Ok(());
    }
    let Some(governed) = scope::current() else {
        return Ok(());
    };
    // An unreadable code cannot be told from a clean exit: the record is
    // lost (and counted) rather than written with a guess.
    let exit_code = kobj::task_exit_code(scope::current_task()).map_err(|_| ())?;
    let mut entry = EVENTS.reserve::<ProcessExit>(0).ok_or(())?;
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points at a reserved, exclusively owned ring-buffer slot
    // of `size_of::<ProcessExit>()` bytes; every field is written before
    // submit.
    unsafe {
        (*rec).header = record::header(
            event::kind::PROCESS_EXIT,
            record_size::<ProcessExit>(),
            governed.cgroup_id,
        );
        (*rec).exit_code = exit_code;
        (*rec)._pad = 0;
    }
    entry.submit(0);
    Ok(())
}
