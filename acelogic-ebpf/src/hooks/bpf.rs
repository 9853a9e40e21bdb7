//! Self-protection: the bpf(2) syscall.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, bpf, int cmd, union bpf_attr
//! *attr, unsigned int size)`; previous return value at index 3 (the
//! loader checks the count against the running kernel's BTF). A governed
//! process may not load, attach, read or change any BPF object, ours
//! included.

use acelogic_common::{
    codes::{hook, reason},
    event::SystemDecision,
};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, verdict::Verdict};

#[lsm(hook = "bpf")]
pub(crate) fn bpf_gate(ctx: LsmContext) -> i32 {
    let cmd: i32 = ctx.arg(0);
    gate::run::<SystemDecision>(ctx.arg(3), hook::BPF, |g, rec| {
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        #[expect(clippy::cast_sign_loss, reason = "the command number as given")]
        unsafe {
            (*rec).detail = cmd as u64;
        }
        g.open()?;
        Ok(Verdict::Deny(reason::FORBIDDEN))
    })
}
