//! Creating a hard link. Both the linked file and the new name must be
//! writable: otherwise a file from outside a writable directory could be
//! linked into it and written through the new name.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)`; previous
//! return value at index 3.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_link")]
pub(crate) fn link_gate(ctx: LsmContext) -> i32 {
    let from: Kptr = ctx.arg(0);
    let dir: Kptr = ctx.arg(1);
    let to: Kptr = ctx.arg(2);
    gate::run::<FileDecision>(ctx.arg(3), hook::PATH_LINK, |g, rec| {
        objects::write_pair(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            from,
            to,
        )
    })
}
