//! The exec gate.
//!
//! Kernel prototype (include/linux/lsm_hook_defs.h):
//! `LSM_HOOK(int, 0, bprm_check_security, struct linux_binprm *bprm)`.
//! BPF LSM programs also receive the previous program's return value as a
//! last argument (index 1 here); a non-zero value is kept.
//!
//! The hook runs after the binary was resolved and opened, so the decision
//! is about the file the kernel will actually run (its device and inode),
//! not a path string. For a script it runs again for the interpreter.
//! A matching grant's use is taken here.

use acelogic_common::{codes::hook, event::FileDecision, rules::rights};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    kpath,
    rules::{self, Use},
};

#[lsm(hook = "bprm_check_security")]
pub(crate) fn exec_gate(ctx: LsmContext) -> i32 {
    let bprm: Kptr = ctx.arg(0);
    gate::run::<FileDecision>(ctx.arg(1), hook::EXEC, |g, rec| {
        let file = kobj::binprm_file(bprm)?;
        let id = kobj::inode_id(kobj::file_inode(file)?)?;
        // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
        unsafe {
            (*rec).file = id;
            // The name it was called by, and the binary's resolved path.
            (*rec).name_len = kobj::binprm_filename(bprm, &mut (*rec).name);
            kpath::walk(
                &raw mut (*rec).path,
                kobj::file_mnt(file).unwrap_or(core::ptr::null()),
                kobj::file_dentry(file).unwrap_or(core::ptr::null()),
            );
        }
        rules::file(g, id, rights::EXEC, Use::Consume)
    })
}
