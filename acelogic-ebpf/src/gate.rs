//! The one decision flow every LSM gate goes through.
//!
//! Ungoverned task: allow, having touched only the scope cache. Governed
//! task: reserve the record first (no room: deny and count, no record no
//! allow), let the hook decide, turn any error into a deny, write the
//! verdict into the record, submit, count. A scope that is not enforcing
//! records would-be denials as `audit` and lets them through.

use acelogic_common::{
    codes::{counter, verdict},
    event::{Decision, record_size},
};

use crate::{
    kobj,
    maps::{EVENTS, count},
    record::{self, Body, Prefix},
    scope::{self, Governed},
    verdict::{EPERM, Error, Verdict},
};

/// Runs a gate. `prev` is the previous BPF LSM program's return value on
/// this hook, kept when non-zero. `decide` fills the object part of the
/// record (it starts zeroed) and returns the verdict.
#[inline(always)]
pub(crate) fn run<B: Body + 'static>(
    prev: i32,
    hook: u16,
    decide: impl FnOnce(&Governed, *mut B) -> Result<Verdict, Error>,
) -> i32 {
    run_with::<B, false>(prev, hook, decide)
}

/// [`run`] for the file hooks a stacking filesystem calls again on its
/// layers (`file_open`, the inode attribute hooks): a governed task's
/// operation is decided where the task named the file, not again when the
/// kernel carries it out on the layers ([`scope::on_layers`]).
#[inline(always)]
pub(crate) fn run_layered<B: Body + 'static>(
    prev: i32,
    hook: u16,
    decide: impl FnOnce(&Governed, *mut B) -> Result<Verdict, Error>,
) -> i32 {
    run_with::<B, true>(prev, hook, decide)
}

#[inline(always)]
fn run_with<B: Body + 'static, const LAYERED: bool>(
    prev: i32,
    hook: u16,
    decide: impl FnOnce(&Governed, *mut B) -> Result<Verdict, Error>,
) -> i32 {
    if prev != 0 {
        return prev;
    }
    let Some(g) = scope::current() else {
        return 0;
    };
    governed_with::<B, LAYERED>(&g, hook, decide)
}

/// The part of [`run`] after the scope check, for a hook that found its
/// task governed itself (with the previous verdict 0) so that the reads
/// only a governed task needs come after the scope check: the ungoverned
/// path then costs the scope lookup alone.
#[inline(always)]
pub(crate) fn governed<B: Body + 'static>(
    g: &Governed,
    hook: u16,
    decide: impl FnOnce(&Governed, *mut B) -> Result<Verdict, Error>,
) -> i32 {
    governed_with::<B, false>(g, hook, decide)
}

/// [`governed`] for the hooks a stacking filesystem calls again on its
/// layers ([`run_layered`]).
#[inline(always)]
pub(crate) fn governed_layered<B: Body + 'static>(
    g: &Governed,
    hook: u16,
    decide: impl FnOnce(&Governed, *mut B) -> Result<Verdict, Error>,
) -> i32 {
    governed_with::<B, true>(g, hook, decide)
}

#[inline(always)]
fn governed_with<B: Body + 'static, const LAYERED: bool>(
    g: &Governed,
    hook: u16,
    decide: impl FnOnce(&Governed, *mut B) -> Result<Verdict, Error>,
) -> i32 {
    let g = *g;
    if LAYERED && scope::on_layers() {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<B>(0) else {
        count(counter::RECORD_UNAVAILABLE);
        return EPERM;
    };
    let rec = entry.as_mut_ptr();
    record::zero(rec);
    let decided = decide(&g, rec).unwrap_or_else(|e| Verdict::deny(e.reason()));
    let Verdict {
        reason, grant_id, ..
    } = decided;
    let (code, ret, which) = if decided.allows() {
        (verdict::ALLOW, 0, counter::ALLOWED)
    } else if g.enforcing() {
        (verdict::DENY, EPERM, counter::DENIED)
    } else {
        (verdict::AUDIT, 0, counter::AUDITED)
    };
    let prefix = rec.cast::<Prefix>();
    // SAFETY: every body starts with the header and the decision (`Prefix`
    // is their layout); same exclusive slot as above.
    unsafe {
        (*prefix).header = record::header(B::KIND, record_size::<B>(), g.cgroup_id);
        (*prefix).decision = Decision {
            scope_id: g.scope_id,
            ppid: kobj::task_ppid(scope::current_task()).unwrap_or(0),
            hook,
            verdict: code,
            reason,
            _pad: 0,
            grant_id,
            comm: record::comm(),
        };
    }
    entry.submit(0);
    count(which);
    ret
}
