//! The exec gate.
//!
//! Kernel prototype (include/linux/lsm_hook_defs.h):
//! `LSM_HOOK(int, 0, bprm_check_security, struct linux_binprm *bprm)`.
//! BPF LSM programs also receive the previous LSM's return value as a last
//! argument (index 1 here); a non-zero value is kept, never overridden.
//!
//! The hook runs after the binary was resolved and opened, so the decision
//! is about the file the kernel will actually run, not a path string.

use acelogic_common::codes::counter;
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    maps::count,
    record, scope,
    verdict::{EPERM, Error, Reason, Verdict},
};

#[lsm(hook = "bprm_check_security")]
pub(crate) fn exec_gate(ctx: LsmContext) -> i32 {
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    match try_exec_gate() {
        Ok(verdict) => verdict.errno(),
        // Only governed tasks can reach an error: fail closed.
        Err(Error::RecordUnavailable) => EPERM,
    }
}

fn try_exec_gate() -> Result<Verdict, Error> {
    let (cgroup_id, Some(scope)) = scope::current() else {
        return Ok(Verdict::Allow);
    };
    // Governed. Baselines and grants arrive with the enforcement model
    // (issue 3); until then nothing allows an exec in a governed scope.
    let why = Reason::NoGrant;
    record::exec_denial(&scope, cgroup_id, why)?;
    count(counter::DENIED);
    Ok(Verdict::Deny(why))
}
