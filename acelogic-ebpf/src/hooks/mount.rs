//! Self-protection: mount(2), bind mounts included.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, sb_mount, const char *dev_name,
//! const struct path *path, const char *type, unsigned long flags, void
//! *data)`; previous return value at index 5. A bind mount could graft an
//! outside directory under a writable one, so governed processes may not
//! mount at all.

use acelogic_common::{
    codes::{hook, reason},
    event::SystemDecision,
};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, verdict::Verdict};

#[lsm(hook = "sb_mount")]
pub(crate) fn mount_gate(ctx: LsmContext) -> i32 {
    let flags: u64 = ctx.arg(3);
    gate::run::<SystemDecision>(ctx.arg(5), hook::SB_MOUNT, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        unsafe { (*rec).detail = flags };
        g.open()?;
        Ok(Verdict::deny(reason::FORBIDDEN))
    })
}
