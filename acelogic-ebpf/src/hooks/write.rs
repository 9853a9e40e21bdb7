//! Writes through a descriptor: `write`, `pwrite`, `writev`, `fallocate`,
//! and the write side of `copy_file_range`, `splice`, `sendfile` and
//! io_uring, all of which check `rw_verify_area` or `vfs_fallocate`.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, file_permission, struct file *file,
//! int mask)`; previous return value at index 2. Runs on every read and
//! write on the node: a read returns at the first test, an ungoverned write
//! after the scope lookup.
//!
//! `file_open` decides the files a governed process opens itself; this
//! gate decides the ones it got elsewhere (inherited across exec or
//! fork, passed over SCM_RIGHTS, taken with `pidfd_getfd`, or opened
//! before its cgroup was governed). Once a write through an open file is
//! allowed, later writes through it are not decided again (`WRITERS`).

use acelogic_common::codes::hook;
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{kobj::Kptr, objects};

/// `MAY_WRITE` and `MAY_APPEND` in the mask.
const MAY_WRITE: i32 = 2;
const MAY_APPEND: i32 = 8;

#[lsm(hook = "file_permission")]
pub(crate) fn write_gate(ctx: LsmContext) -> i32 {
    let file: Kptr = ctx.arg(0);
    let mask: i32 = ctx.arg(1);
    let prev: i32 = ctx.arg(2);
    if mask & (MAY_WRITE | MAY_APPEND) == 0 {
        return prev;
    }
    #[expect(clippy::cast_sign_loss, reason = "a bit mask")]
    objects::content_gate::<{ hook::FILE_WRITE }>(prev, file, mask as u32)
}
