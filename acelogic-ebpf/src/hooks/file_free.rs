//! A file is freed: forget the writes decided through it, so a new file at
//! the same address starts undecided.
//!
//! Kernel prototype: `LSM_HOOK(void, LSM_RET_VOID, file_free_security,
//! struct file *file)`. Not a gate: it decides nothing and returns 0.

use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{kobj::Kptr, objects};

#[lsm(hook = "file_free_security")]
pub(crate) fn file_free(ctx: LsmContext) -> i32 {
    let file: Kptr = ctx.arg(0);
    objects::forget_write(file);
    0
}
