//! Executable file mappings: `mmap` with `PROT_EXEC`.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, mmap_file, struct file *file,
//! unsigned long reqprot, unsigned long prot, unsigned long flags)`;
//! previous return value at index 4.
//!
//! Without this gate a process could ask the dynamic loader
//! (`ld.so /path/to/binary`) to map and run a binary exec would refuse.
//! What may be mapped is decided in `objects::mapping`; anonymous memory
//! (JIT compilers) is not a file and is not governed.

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::Kptr,
    objects::{self, PROT_EXEC},
};

#[lsm(hook = "mmap_file")]
pub(crate) fn mmap_gate(ctx: LsmContext) -> i32 {
    let file: Kptr = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    let prev: i32 = ctx.arg(4);
    if file.is_null() || prot & PROT_EXEC == 0 {
        return prev;
    }
    gate::run::<FileDecision>(prev, hook::MMAP_EXEC, |g, rec| {
        objects::mapping(g, rec, file, prot)
    })
}
