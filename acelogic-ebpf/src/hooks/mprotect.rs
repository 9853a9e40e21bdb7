//! Changing a file mapping after the fact: `mprotect` adding `PROT_EXEC`
//! (decided as `mmap.rs` decides it), or `PROT_WRITE` to a shared mapping
//! (a write through the file, `objects::content_gate`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, file_mprotect, struct
//! vm_area_struct *vma, unsigned long reqprot, unsigned long prot)`;
//! previous return value at index 3. Same rule as `mmap.rs`.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects::{self, PROT_EXEC, PROT_WRITE},
};

/// `VM_SHARED` in `vma->vm_flags`.
const VM_SHARED: u64 = 8;

#[lsm(hook = "file_mprotect")]
pub(crate) fn mprotect_gate(ctx: LsmContext) -> i32 {
    let vma: Kptr = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    let prev: i32 = ctx.arg(3);
    if prot & (PROT_EXEC | PROT_WRITE) == 0 {
        return prev;
    }
    let file = match kobj::vma_file(vma) {
        Ok(f) if f.is_null() => return prev, // anonymous memory
        Ok(f) => f,
        // Unreadable: a file we cannot identify (governed: deny).
        Err(e) => {
            let which = if prot & PROT_EXEC != 0 {
                hook::MPROTECT_EXEC
            } else {
                hook::MPROTECT_WRITE
            };
            return gate::run::<FileDecision>(prev, which, |_, _| Err(e));
        }
    };
    let mut ret = prev;
    if prot & PROT_EXEC != 0 {
        ret = gate::run::<FileDecision>(ret, hook::MPROTECT_EXEC, |g, rec| {
            objects::mapping(g, rec, file, prot)
        });
    }
    // Unreadable flags: decided as shared (governed: a write decision).
    let shared = kobj::vma_flags(vma).map_or(true, |f| f & VM_SHARED != 0);
    if prot & PROT_WRITE != 0 && shared {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "protection bits fit in u32"
        )]
        {
            ret = objects::content_gate::<{ hook::MPROTECT_WRITE }>(ret, file, prot as u32);
        }
    }
    ret
}
