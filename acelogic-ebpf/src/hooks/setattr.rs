//! Changing a file's timestamps (utimes, utimensat, futimens, touch).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, inode_setattr, struct mnt_idmap
//! *idmap, struct dentry *dentry, struct iattr *attr)`; previous return
//! value at index 3. Older kernels (6.1 among them) have no `idmap`,
//! moving it to index 2: `setattr_gate_2` is the same gate for that
//! prototype, and the compatibility table attaches whichever matches.
//!
//! `notify_change` calls this hook for every attribute change; the others
//! are decided where they start (mode: `path_chmod`, owner: `path_chown`,
//! size: `path_truncate`/`file_truncate`), and the kernel's own clearing of
//! set-uid bits after a write is no change of the caller's. So this gate
//! decides only a change of times alone. Allowed when the object or a
//! directory above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

/// `ATTR_*` bits of `iattr::ia_valid` (include/linux/fs.h).
const ATTR_MODE: u32 = 1;
const ATTR_UID: u32 = 1 << 1;
const ATTR_GID: u32 = 1 << 2;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME: u32 = 1 << 4;
const ATTR_MTIME: u32 = 1 << 5;

/// `ia_valid`, the first member of `struct iattr` on every kernel, when
/// the change is to times alone; 0 for anything else (decided by the hook
/// where it starts, or not a change the caller asked for). An integer,
/// not an `Option` (see `Verdict` on undefined payloads).
#[inline(always)]
fn times_only(attr: Kptr) -> u32 {
    // An unreadable iattr is decided (fail closed) as a change of times.
    let valid: u32 = kobj::read_at(attr, 0).unwrap_or(ATTR_ATIME | ATTR_MTIME);
    let decided_elsewhere = ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_SIZE;
    if valid & decided_elsewhere == 0 && valid & (ATTR_ATIME | ATTR_MTIME) != 0 {
        valid
    } else {
        0
    }
}

// Each program has its own closure: one closure shared by two programs is
// outlined as a BPF subprogram, which the verifier refuses.
#[lsm(hook = "inode_setattr")]
pub(crate) fn setattr_gate(ctx: LsmContext) -> i32 {
    let (dentry, attr, prev): (Kptr, Kptr, i32) = (ctx.arg(1), ctx.arg(2), ctx.arg(3));
    let valid = times_only(attr);
    if valid == 0 {
        return prev;
    }
    gate::run_layered::<FileDecision>(prev, hook::INODE_SETATTR_TIMES, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        unsafe { (*rec).detail = valid };
        objects::write(g, rec, dentry)
    })
}

#[lsm(hook = "inode_setattr")]
pub(crate) fn setattr_gate_2(ctx: LsmContext) -> i32 {
    let (dentry, attr, prev): (Kptr, Kptr, i32) = (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    let valid = times_only(attr);
    if valid == 0 {
        return prev;
    }
    gate::run_layered::<FileDecision>(prev, hook::INODE_SETATTR_TIMES, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        unsafe { (*rec).detail = valid };
        objects::write(g, rec, dentry)
    })
}
