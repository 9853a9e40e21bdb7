//! Self-protection: the bpf(2) syscall.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, bpf, int cmd, union bpf_attr
//! *attr, unsigned int size)`; previous return value at index 3. Linux
//! 6.14 added `bool kernel`, moving it to index 4: `bpf_gate_k` is the
//! same gate for that prototype, and the loader's compatibility table
//! attaches whichever matches the running kernel's BTF. A governed process
//! may not load, attach, read or change any BPF object, ours included.

use acelogic_common::{
    codes::{hook, reason},
    event::SystemDecision,
};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, verdict::Verdict};

#[lsm(hook = "bpf")]
pub(crate) fn bpf_gate(ctx: LsmContext) -> i32 {
    decide(ctx.arg(0), ctx.arg(3))
}

#[lsm(hook = "bpf")]
pub(crate) fn bpf_gate_k(ctx: LsmContext) -> i32 {
    decide(ctx.arg(0), ctx.arg(4))
}

#[inline(always)]
fn decide(cmd: i32, prev: i32) -> i32 {
    gate::run::<SystemDecision>(prev, hook::BPF, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        #[expect(clippy::cast_sign_loss, reason = "the command number as given")]
        unsafe {
            (*rec).detail = cmd as u64;
        }
        g.open()?;
        Ok(Verdict::deny(reason::FORBIDDEN))
    })
}
