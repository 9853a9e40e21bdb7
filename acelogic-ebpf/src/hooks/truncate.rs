//! Truncating a file by name (`truncate`), and before Linux 6.2 also
//! `ftruncate` and `open(O_TRUNC)` (since, `ftruncate.rs`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_truncate, const struct path *path)`; previous
//! return value at index 1. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_truncate")]
pub(crate) fn truncate_gate(ctx: LsmContext) -> i32 {
    let path: Kptr = ctx.arg(0);
    let prev: i32 = ctx.arg(1);
    // Before Linux 6.2 ftruncate comes here too: a memfd has no name to
    // govern (`objects::governed_inode`). Unreadable: decided.
    if let Ok(dentry) = kobj::path_dentry(path)
        && let Ok(inode) = kobj::dentry_inode(dentry)
        && !inode.is_null()
        && !objects::governed_inode(inode)
    {
        return prev;
    }
    gate::run::<FileDecision>(prev, hook::PATH_TRUNCATE, |g, rec| {
        objects::write_at(
            g,
            rec,
            kobj::path_mnt(path).unwrap_or(core::ptr::null()),
            kobj::path_dentry(path)?,
        )
    })
}
