//! Self-protection: signals to processes outside the scope.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, task_kill, struct task_struct *p,
//! struct kernel_siginfo *info, int sig, const struct cred *cred)`;
//! previous return value at index 4. Only user-initiated signals reach
//! this hook. A governed process may signal processes of its own scope
//! (its children, itself); anything else, the node daemon included, is
//! denied.

use acelogic_common::{codes::hook, event::TaskDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, objects};

#[lsm(hook = "task_kill")]
pub(crate) fn kill_gate(ctx: LsmContext) -> i32 {
    let target: Kptr = ctx.arg(0);
    let sig: i32 = ctx.arg(2);
    gate::run::<TaskDecision>(ctx.arg(4), hook::TASK_KILL, |g, rec| {
        #[expect(clippy::cast_sign_loss, reason = "the signal number as given")]
        objects::task(g, rec, target, sig as u32)
    })
}
