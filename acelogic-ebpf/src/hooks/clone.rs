//! Self-protection: `clone3(CLONE_INTO_CGROUP)`, which starts a child in
//! another cgroup without writing `cgroup.procs` (the write gate covers
//! that path).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, task_alloc, struct task_struct
//! *task, unsigned long clone_flags)`; previous return value at index 2.
//! Runs on every fork; anything without the flag returns before the scope
//! lookup.

use acelogic_common::{
    codes::{hook, reason},
    event::SystemDecision,
};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, verdict::Verdict};

/// `CLONE_INTO_CGROUP` (include/uapi/linux/sched.h).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[lsm(hook = "task_alloc")]
pub(crate) fn clone_gate(ctx: LsmContext) -> i32 {
    let flags: u64 = ctx.arg(1);
    let prev: i32 = ctx.arg(2);
    if flags & CLONE_INTO_CGROUP == 0 {
        return prev;
    }
    gate::run::<SystemDecision>(prev, hook::CLONE_INTO_CGROUP, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        unsafe { (*rec).detail = flags };
        g.open()?;
        Ok(Verdict::deny(reason::FORBIDDEN))
    })
}
