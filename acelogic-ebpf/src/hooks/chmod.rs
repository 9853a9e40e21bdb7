//! Changing a file's mode.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_chmod, const struct path *path, umode_t mode)`; previous
//! return value at index 2. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_chmod")]
pub(crate) fn chmod_gate(ctx: LsmContext) -> i32 {
    let path: Kptr = ctx.arg(0);
    gate::run::<FileDecision>(ctx.arg(2), hook::PATH_CHMOD, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(path).unwrap_or(core::ptr::null()),
            kobj::path_dentry(path)?,
        )
    })
}
