//! Removing an extended attribute (removexattr and its variants).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, inode_removexattr, struct
//! mnt_idmap *idmap, struct dentry *dentry, const char *name)` (a
//! `user_namespace` before 6.3, same position); previous return value at
//! index 3. Allowed when the object or a directory above it is writable
//! (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, objects};

#[lsm(hook = "inode_removexattr")]
pub(crate) fn rmxattr_gate(ctx: LsmContext) -> i32 {
    let dentry: Kptr = ctx.arg(1);
    gate::run_layered::<FileDecision>(ctx.arg(3), hook::INODE_REMOVEXATTR, |g, rec| {
        objects::write(g, rec, dentry)
    })
}
