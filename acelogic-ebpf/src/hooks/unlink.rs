//! Removing a file name (`unlink`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_unlink, const struct path *dir, struct dentry *dentry)`; previous
//! return value at index 2. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_unlink")]
pub(crate) fn unlink_gate(ctx: LsmContext) -> i32 {
    let dir: Kptr = ctx.arg(0);
    let dentry: Kptr = ctx.arg(1);
    gate::run::<FileDecision>(ctx.arg(2), hook::PATH_UNLINK, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            dentry,
        )
    })
}
