//! Self-protection: ptrace of processes outside the scope.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, ptrace_access_check, struct
//! task_struct *child, unsigned int mode)`; previous return value at index
//! 2. The kernel also asks this for `/proc/PID` files that expose another
//! process (`mem`, `environ`, ...): those are denied for processes outside
//! the scope too.

use acelogic_common::{codes::hook, event::TaskDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, objects};

#[lsm(hook = "ptrace_access_check")]
pub(crate) fn ptrace_gate(ctx: LsmContext) -> i32 {
    let target: Kptr = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    gate::run::<TaskDecision>(ctx.arg(2), hook::PTRACE, |g, rec| {
        objects::task(g, rec, target, mode)
    })
}
