//! io_uring personalities: a request that asks to run under credentials
//! the task registered earlier (`IORING_REGISTER_PERSONALITY`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, uring_override_creds, const struct
//! cred *new)`; previous return value at index 1. Called when a request
//! names a personality, before it runs. A governed task may not: it is
//! the one way a task picks the substituted credentials its own operation
//! runs under, and the file gates leave operations under substituted
//! credentials to the layer that decided them (`scope::on_layers`).

use acelogic_common::{
    codes::{hook, reason},
    event::SystemDecision,
};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, verdict::Verdict};

#[lsm(hook = "uring_override_creds")]
pub(crate) fn uring_gate(ctx: LsmContext) -> i32 {
    gate::run::<SystemDecision>(ctx.arg(1), hook::URING_PERSONALITY, |g, _| {
        g.open()?;
        Ok(Verdict::deny(reason::FORBIDDEN))
    })
}
