//! Opening a file for writing.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, file_open, struct file *file)`;
//! previous return value at index 1. Runs after path resolution, with
//! symlinks followed: a symlink inside a writable directory pointing
//! outside is decided by its target. Read-only opens are not governed.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects::{self, FMODE_WRITE},
    scope,
};

#[lsm(hook = "file_open")]
pub(crate) fn open_gate(ctx: LsmContext) -> i32 {
    let file: Kptr = ctx.arg(0);
    let prev: i32 = ctx.arg(1);
    if prev != 0 {
        return prev;
    }
    // The scope first: most opens on a node are ungoverned, and they pay
    // nothing else.
    let Some(g) = scope::current() else {
        return 0;
    };
    // An unreadable mode is treated as a write (governed: decided, and
    // `objects::write` fails closed on the same unreadable file).
    let mode = kobj::file_mode(file).unwrap_or(FMODE_WRITE);
    if mode & FMODE_WRITE == 0 {
        return 0;
    }
    gate::governed_layered::<FileDecision>(&g, hook::FILE_OPEN, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        unsafe { (*rec).detail = mode };
        let generation = objects::rules_generation();
        let verdict = objects::write_at(
            g,
            rec,
            kobj::file_mnt(file).unwrap_or(core::ptr::null()),
            kobj::file_dentry(file)?,
        )?;
        // Writes through this open file are decided here, not per write,
        // while the rules that allowed it stand (see `write_decided`).
        if verdict.allows() {
            objects::remember_write(file, g.scope_id, generation, verdict.until_boot_ns);
        } else if !g.enforcing() {
            objects::remember_write(file, g.scope_id, generation, u64::MAX);
        }
        Ok(verdict)
    })
}
