//! Creating a symbolic link. Where it points does not matter here: a
//! write through it is decided at `file_open` on the target.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name)`; previous
//! return value at index 3. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_symlink")]
pub(crate) fn symlink_gate(ctx: LsmContext) -> i32 {
    let dir: Kptr = ctx.arg(0);
    let dentry: Kptr = ctx.arg(1);
    gate::run::<FileDecision>(ctx.arg(3), hook::PATH_SYMLINK, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            dentry,
        )
    })
}
