//! Setting an extended attribute (setxattr, lsetxattr, fsetxattr):
//! `security.capability` on a binary, labels, `user.*` data.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, inode_setxattr, struct mnt_idmap
//! *idmap, struct dentry *dentry, const char *name, const void *value,
//! size_t size, int flags)` (a `user_namespace` before 6.3, same
//! position); previous return value at index 6. POSIX ACLs go through
//! `inode_set_acl` from Linux 6.2. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, objects};

#[lsm(hook = "inode_setxattr")]
pub(crate) fn setxattr_gate(ctx: LsmContext) -> i32 {
    let dentry: Kptr = ctx.arg(1);
    gate::run_layered::<FileDecision>(ctx.arg(6), hook::INODE_SETXATTR, |g, rec| {
        objects::write(g, rec, dentry)
    })
}
