//! Truncating an open file: `ftruncate`, and `open` with `O_TRUNC` (even
//! with `O_RDONLY`, which `file_open` sees as a read).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, file_truncate, struct file *file)`;
//! previous return value at index 1. Linux 6.2 added this hook and moved
//! these calls to it from `path_truncate`, which still decides
//! `truncate(2)` by name; on older kernels `truncate.rs` decides all three,
//! and the loader attaches this program only where the hook exists.

use acelogic_common::codes::hook;
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{kobj::Kptr, objects};

#[lsm(hook = "file_truncate")]
pub(crate) fn ftruncate_gate(ctx: LsmContext) -> i32 {
    let file: Kptr = ctx.arg(0);
    objects::content_gate::<{ hook::FILE_TRUNCATE }>(ctx.arg(1), file, 0)
}
