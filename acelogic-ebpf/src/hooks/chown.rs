//! Changing a file's owner.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_chown, const struct path *path, kuid_t uid, kgid_t gid)`; previous
//! return value at index 3. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_chown")]
pub(crate) fn chown_gate(ctx: LsmContext) -> i32 {
    let path: Kptr = ctx.arg(0);
    gate::run::<FileDecision>(ctx.arg(3), hook::PATH_CHOWN, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(path).unwrap_or(core::ptr::null()),
            kobj::path_dentry(path)?,
        )
    })
}
