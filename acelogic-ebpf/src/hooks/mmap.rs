//! File mappings: `mmap` with `PROT_EXEC`, and shared writable ones.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, mmap_file, struct file *file,
//! unsigned long reqprot, unsigned long prot, unsigned long flags)`;
//! previous return value at index 4.
//!
//! Without this gate a process could ask the dynamic loader
//! (`ld.so /path/to/binary`) to map and run a binary exec would refuse.
//! What may be mapped is decided in `objects::mapping`; anonymous memory
//! (JIT compilers) is not a file and is not governed.
//!
//! A `MAP_SHARED` mapping with `PROT_WRITE` changes the file through
//! memory, where no write system call (and so no `write.rs`) sees it: it
//! is decided as a write through the open file (`objects::content_gate`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::Kptr,
    objects::{self, PROT_EXEC, PROT_WRITE},
};

/// `MAP_SHARED` (and `MAP_SHARED_VALIDATE`, which includes it).
const MAP_SHARED: u64 = 1;

#[lsm(hook = "mmap_file")]
pub(crate) fn mmap_gate(ctx: LsmContext) -> i32 {
    let file: Kptr = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    let flags: u64 = ctx.arg(3);
    let prev: i32 = ctx.arg(4);
    if file.is_null() {
        return prev;
    }
    let mut ret = prev;
    if prot & PROT_EXEC != 0 {
        ret = gate::run::<FileDecision>(ret, hook::MMAP_EXEC, |g, rec| {
            objects::mapping(g, rec, file, prot)
        });
    }
    if prot & PROT_WRITE != 0 && flags & MAP_SHARED != 0 {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "protection bits fit in u32"
        )]
        {
            ret = objects::content_gate::<{ hook::MMAP_WRITE }>(ret, file, prot as u32);
        }
    }
    ret
}
