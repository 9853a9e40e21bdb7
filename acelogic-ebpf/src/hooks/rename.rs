//! Renaming. Both ends must be writable, so nothing moves across the
//! boundary of a writable directory in either direction.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)`; previous
//! return value at index 5. Before Linux 5.19 the hook had no `flags`
//! (an exchange called it once each way), moving it to index 4:
//! `rename_gate_4` is the same gate for that prototype, and the loader's
//! compatibility table attaches whichever matches the running kernel.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

// Each program has its own closure: one closure shared by two programs is
// outlined as a BPF subprogram, which the verifier refuses here.
#[lsm(hook = "path_rename")]
pub(crate) fn rename_gate(ctx: LsmContext) -> i32 {
    let (dir, from, to): (Kptr, Kptr, Kptr) = (ctx.arg(0), ctx.arg(1), ctx.arg(3));
    gate::run::<FileDecision>(ctx.arg(5), hook::PATH_RENAME, |g, rec| {
        objects::write_pair(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            from,
            to,
        )
    })
}

#[lsm(hook = "path_rename")]
pub(crate) fn rename_gate_4(ctx: LsmContext) -> i32 {
    let (dir, from, to): (Kptr, Kptr, Kptr) = (ctx.arg(0), ctx.arg(1), ctx.arg(3));
    gate::run::<FileDecision>(ctx.arg(4), hook::PATH_RENAME, |g, rec| {
        objects::write_pair(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            from,
            to,
        )
    })
}
