//! Making a file mapping executable after the fact: `mprotect` adding
//! `PROT_EXEC`.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, file_mprotect, struct
//! vm_area_struct *vma, unsigned long reqprot, unsigned long prot)`;
//! previous return value at index 3. Same rule as `mmap.rs`.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects::{self, PROT_EXEC},
};

#[lsm(hook = "file_mprotect")]
pub(crate) fn mprotect_gate(ctx: LsmContext) -> i32 {
    let vma: Kptr = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    let prev: i32 = ctx.arg(3);
    if prot & PROT_EXEC == 0 {
        return prev;
    }
    let file = match kobj::vma_file(vma) {
        Ok(f) if f.is_null() => return prev, // anonymous memory
        Ok(f) => f,
        // Unreadable: decide as a file we cannot identify (governed: deny).
        Err(_) => core::ptr::null(),
    };
    gate::run::<FileDecision>(prev, hook::MPROTECT_EXEC, |g, rec| {
        objects::mapping(g, rec, file, prot)
    })
}
