//! Process lineage: a governed task executed a new image.
//!
//! BTF tracepoint `sched_process_exec`, prototype `TP_PROTO(struct
//! task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`, fired after a
//! successful exec; the file name is `bprm->filename`, through the BTF
//! offset table.
//!
//! Not the classic tracepoint of the same name: the kernel skips a classic
//! tracepoint's program, silently for us, whenever any BPF program or BPF
//! map syscall holds the CPU's `bpf_prog_active`, and a map syscall holds
//! it with only migration disabled, so on a preemptible kernel (Debian's
//! from 6.18 on, `PREEMPT_LAZY`) an exec on the CPU of a preempted daemon
//! thread went unrecorded. A BTF tracepoint is guarded per program, and
//! runs with preemption disabled, so it is never skipped for that.
//!
//! The record names the parent exactly: `current->real_parent`'s tgid and
//! process start time, read here while both are certain (tracepoints run
//! under RCU, so the parent's `task_struct` cannot be freed under us).
//! Userspace derives the parent's exec id from these alone; procfs, read
//! later, may already show the parent's pid owned by someone else.
//!
//! It also carries the new image's identity, read in the exec itself, so
//! lineage needs no `CAP_SYS_PTRACE` and loses nothing to a process that
//! exits at once: the arguments (from the new memory's argument area,
//! bounded, never the environment after it), the executable's resolved
//! path (`mm->exe_file`) and the working directory (`fs->pwd`).

use acelogic_common::{
    codes::counter,
    event::{self, ARGV_LEN, ProcessExec, path_flag, record_size},
};
use aya_ebpf::{
    helpers::bpf_probe_read_user_buf, macros::btf_tracepoint, programs::BtfTracePointContext,
};

use crate::{
    kobj::{self, Kptr},
    kpath,
    maps::{EVENTS, count},
    record, scope,
};

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn proc_exec(ctx: BtfTracePointContext) -> i32 {
    if try_proc_exec(&ctx).is_err() {
        count(counter::LINEAGE_LOST);
    }
    0
}

fn try_proc_exec(ctx: &BtfTracePointContext) -> Result<(), ()> {
    let Some(governed) = scope::current() else {
        return Ok(());
    };
    let cgroup_id = governed.cgroup_id;
    // The parent, read before reserving so no ring space is held across
    // the reads. Unreadable is 0 (unknown), never a guess: a parent's pid
    // without its start time is what made procfs lookups link strangers.
    // (`unwrap_or` on each read, as the header does: no `Result` is kept
    // on the stack for older verifiers to find half-written.)
    let mut parent_tgid = 0;
    let mut parent_start_ns = 0;
    if let Ok(parent) = kobj::task_real_parent(scope::current_task()) {
        let tgid = kobj::task_tgid(parent).unwrap_or(0);
        let start = kobj::process_start_ns(parent).unwrap_or(0);
        // Both or neither: a pid alone cannot name a process.
        if tgid != 0 && start != 0 {
            parent_tgid = tgid;
            parent_start_ns = start;
        }
    }
    let mut entry = EVENTS.reserve::<ProcessExec>(0).ok_or(())?;
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points at a reserved, exclusively owned ring-buffer slot
    // of `size_of::<ProcessExec>()` bytes; every field is written below
    // before submit.
    unsafe {
        (*rec).header = record::header(
            event::kind::PROCESS_EXEC,
            record_size::<ProcessExec>(),
            cgroup_id,
        );
        (*rec).comm = record::comm();
        (*rec).parent_tgid = parent_tgid;
        (*rec).parent_start_ns = parent_start_ns;
        (*rec).filename_len = 0;
        (*rec).filename[0] = 0;
        (*rec)._pad = 0;
    }
    identity(rec, scope::current_task());
    let bprm: Kptr = ctx.arg(2);
    // SAFETY: same exclusive slot as above.
    unsafe {
        (*rec).filename_len = kobj::binprm_filename(bprm, &mut (*rec).filename);
    }
    entry.submit(0);
    Ok(())
}

/// The new image's arguments, executable and working directory.
#[inline(always)]
fn identity(rec: *mut ProcessExec, task: Kptr) {
    // `rec` is the caller's reserved, exclusively owned ring-buffer slot;
    // the raw field pointers below stay inside it.
    let (exe, cwd) = (
        // SAFETY: as above.
        unsafe { &raw mut (*rec).exe },
        // SAFETY: as above.
        unsafe { &raw mut (*rec).cwd },
    );
    match kobj::task_exe_path(task) {
        Ok((mnt, dentry)) => kpath::walk(exe, mnt, dentry),
        Err(_) => kpath::unreadable(exe),
    }
    match kobj::task_pwd(task) {
        Ok((mnt, dentry)) => kpath::walk(cwd, mnt, dentry),
        Err(_) => kpath::unreadable(cwd),
    }
    let (mut len, mut flags) = (0usize, 0u16);
    match kobj::task_args(task) {
        Ok((start, end)) if end > start => {
            let want = end - start;
            if want >= ARGV_LEN as u64 {
                flags |= path_flag::TRUNCATED;
            }
            // Masked so the verifier sees the copy inside the buffer; at
            // most ARGV_LEN - 1 bytes, never past `arg_end` (the
            // environment follows the arguments in memory).
            #[expect(clippy::cast_possible_truncation, reason = "masked below ARGV_LEN")]
            let n = kpath::bounded(want.min(ARGV_LEN as u64 - 1) as usize, ARGV_LEN - 1);
            if n > 0 {
                // SAFETY: the slice lies inside `argv`; the helper faults
                // safely on a bad user address.
                let read = unsafe {
                    let dst = core::slice::from_raw_parts_mut((*rec).argv.as_mut_ptr(), n);
                    bpf_probe_read_user_buf(start as *const u8, dst)
                };
                if read.is_ok() {
                    len = n;
                } else {
                    flags |= path_flag::UNREADABLE;
                }
            }
        }
        Ok(_) => {}
        Err(_) => flags |= path_flag::UNREADABLE,
    }
    // SAFETY: as above.
    unsafe {
        #[expect(clippy::cast_possible_truncation, reason = "len < ARGV_LEN")]
        {
            (*rec).argv_len = len as u16;
        }
        (*rec).argv_flags = flags;
    }
}
