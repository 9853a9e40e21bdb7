//! Removing a POSIX ACL (`removexattr` of `system.posix_acl_*`), Linux
//! 6.2+; before, `inode_removexattr` decides it.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, inode_remove_acl, struct mnt_idmap
//! *idmap, struct dentry *dentry, const char *acl_name)`; previous return
//! value at index 3. Allowed when the object or a directory above it is
//! writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, objects};

#[lsm(hook = "inode_remove_acl")]
pub(crate) fn rm_acl_gate(ctx: LsmContext) -> i32 {
    let dentry: Kptr = ctx.arg(1);
    gate::run_layered::<FileDecision>(ctx.arg(3), hook::INODE_REMOVE_ACL, |g, rec| {
        objects::write(g, rec, dentry)
    })
}
