//! Creating a file: `mknod`, and also `open(O_CREAT)` of a name that does
//! not exist yet (the kernel asks this hook before creating it).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev)`; previous
//! return value at index 4. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_mknod")]
pub(crate) fn mknod_gate(ctx: LsmContext) -> i32 {
    let dir: Kptr = ctx.arg(0);
    let dentry: Kptr = ctx.arg(1);
    gate::run::<FileDecision>(ctx.arg(4), hook::PATH_MKNOD, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(dir).unwrap_or(core::ptr::null()),
            dentry,
        )
    })
}
