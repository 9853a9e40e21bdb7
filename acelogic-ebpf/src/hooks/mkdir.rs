//! Creating a directory. The new name's dentry is negative, so it is
//! decided by the directory it is created in.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode)`; previous
//! return value at index 3. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_mkdir")]
pub(crate) fn mkdir_gate(ctx: LsmContext) -> i32 {
    let dir: Kptr = ctx.arg(0);
    let dentry: Kptr = ctx.arg(1);
    gate::run::<FileDecision>(ctx.arg(3), hook::PATH_MKDIR, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            dentry,
        )
    })
}
