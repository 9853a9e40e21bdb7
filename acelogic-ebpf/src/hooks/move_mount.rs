//! Self-protection: `move_mount`, which attaches mounts made with the new
//! mount API (`fsopen`/`fsmount`/`open_tree`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, move_mount, const struct path
//! *from_path, const struct path *to_path)`; previous return value at
//! index 2.

use acelogic_common::{
    codes::{hook, reason},
    event::SystemDecision,
};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, verdict::Verdict};

#[lsm(hook = "move_mount")]
pub(crate) fn move_mount_gate(ctx: LsmContext) -> i32 {
    gate::run::<SystemDecision>(ctx.arg(2), hook::MOVE_MOUNT, |g, _rec| {
        g.open()?;
        Ok(Verdict::deny(reason::FORBIDDEN))
    })
}
