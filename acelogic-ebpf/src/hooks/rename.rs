//! Renaming. Both ends must be writable, so nothing moves across the
//! boundary of a writable directory in either direction.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)`; previous
//! return value at index 5.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, objects};

#[lsm(hook = "path_rename")]
pub(crate) fn rename_gate(ctx: LsmContext) -> i32 {
    let from: Kptr = ctx.arg(1);
    let to: Kptr = ctx.arg(3);
    gate::run::<FileDecision>(ctx.arg(5), hook::PATH_RENAME, |g, rec| {
        objects::write_pair(g, rec, from, to)
    })
}
