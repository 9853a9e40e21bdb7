//! The floor: one program per hook that returns at once, for the
//! benchmark's "programs that do nothing" configuration. Each LSM program
//! returns the previous verdict (its hook's last argument) and each
//! tracepoint returns 0, so what the benchmark measures with these
//! attached is the kernel's own cost of calling a BPF program on every
//! hook we use (the trampoline), which every BPF-LSM enforcer pays. Never
//! attached by the daemon: `acelogic_kernel::LoadOptions::floor` selects
//! them in place of the real programs. Names are `f_` and the gate's
//! name without `_gate` (`acelogic_common::names::floor`).
#![expect(
    clippy::needless_pass_by_value,
    reason = "aya's program macros pass each program its context by value"
)]

use aya_ebpf::{
    macros::{btf_tracepoint, lsm},
    programs::{BtfTracePointContext, LsmContext},
};

#[lsm(hook = "bprm_check_security")]
pub(crate) fn f_exec(ctx: LsmContext) -> i32 {
    ctx.arg(1)
}

#[lsm(hook = "mmap_file")]
pub(crate) fn f_mmap(ctx: LsmContext) -> i32 {
    ctx.arg(4)
}

#[lsm(hook = "file_mprotect")]
pub(crate) fn f_mprotect(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "file_open")]
pub(crate) fn f_open(ctx: LsmContext) -> i32 {
    ctx.arg(1)
}

#[lsm(hook = "path_unlink")]
pub(crate) fn f_unlink(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "path_mkdir")]
pub(crate) fn f_mkdir(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "path_rmdir")]
pub(crate) fn f_rmdir(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "path_mknod")]
pub(crate) fn f_mknod(ctx: LsmContext) -> i32 {
    ctx.arg(4)
}

#[lsm(hook = "path_truncate")]
pub(crate) fn f_truncate(ctx: LsmContext) -> i32 {
    ctx.arg(1)
}

#[lsm(hook = "path_symlink")]
pub(crate) fn f_symlink(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "path_link")]
pub(crate) fn f_link(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "path_rename")]
pub(crate) fn f_rename(ctx: LsmContext) -> i32 {
    ctx.arg(5)
}

#[lsm(hook = "path_rename")]
pub(crate) fn f_rename_4(ctx: LsmContext) -> i32 {
    ctx.arg(4)
}

#[lsm(hook = "path_chmod")]
pub(crate) fn f_chmod(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "path_chown")]
pub(crate) fn f_chown(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "file_permission")]
pub(crate) fn f_write(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "file_truncate")]
pub(crate) fn f_ftruncate(ctx: LsmContext) -> i32 {
    ctx.arg(1)
}

/// A void hook: there is no previous verdict to return.
#[lsm(hook = "file_free_security")]
pub(crate) fn f_file_free(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "inode_setattr")]
pub(crate) fn f_setattr(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "inode_setattr")]
pub(crate) fn f_setattr_2(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "inode_setxattr")]
pub(crate) fn f_setxattr(ctx: LsmContext) -> i32 {
    ctx.arg(6)
}

#[lsm(hook = "inode_removexattr")]
pub(crate) fn f_rmxattr(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "inode_set_acl")]
pub(crate) fn f_set_acl(ctx: LsmContext) -> i32 {
    ctx.arg(4)
}

#[lsm(hook = "inode_remove_acl")]
pub(crate) fn f_rm_acl(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "socket_connect")]
pub(crate) fn f_connect(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "socket_sendmsg")]
pub(crate) fn f_sendmsg(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "unix_stream_connect")]
pub(crate) fn f_unix_conn(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "unix_may_send")]
pub(crate) fn f_unix_send(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "bpf")]
pub(crate) fn f_bpf(ctx: LsmContext) -> i32 {
    ctx.arg(3)
}

#[lsm(hook = "bpf")]
pub(crate) fn f_bpf_k(ctx: LsmContext) -> i32 {
    ctx.arg(4)
}

#[lsm(hook = "task_kill")]
pub(crate) fn f_kill(ctx: LsmContext) -> i32 {
    ctx.arg(4)
}

#[lsm(hook = "ptrace_access_check")]
pub(crate) fn f_ptrace(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "sb_mount")]
pub(crate) fn f_mount(ctx: LsmContext) -> i32 {
    ctx.arg(5)
}

#[lsm(hook = "move_mount")]
pub(crate) fn f_move_mount(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "task_alloc")]
pub(crate) fn f_clone(ctx: LsmContext) -> i32 {
    ctx.arg(2)
}

#[lsm(hook = "uring_override_creds")]
pub(crate) fn f_uring(ctx: LsmContext) -> i32 {
    ctx.arg(1)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub(crate) fn f_proc_exec(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub(crate) fn f_proc_fork(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub(crate) fn f_proc_exit(_ctx: BtfTracePointContext) -> i32 {
    0
}
