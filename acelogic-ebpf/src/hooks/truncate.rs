//! Truncating a file by name (`truncate`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, path_truncate, const struct path *path)`; previous
//! return value at index 1. Allowed when the object or a directory
//! above it is writable (`objects::write`).

use acelogic_common::{codes::hook, event::FileDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    objects,
};

#[lsm(hook = "path_truncate")]
pub(crate) fn truncate_gate(ctx: LsmContext) -> i32 {
    let path: Kptr = ctx.arg(0);
    gate::run::<FileDecision>(ctx.arg(1), hook::PATH_TRUNCATE, |g, rec| {
        objects::write(g, rec, kobj::path_dentry(path)?)
    })
}
