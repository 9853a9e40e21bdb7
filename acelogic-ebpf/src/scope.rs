//! Is a task governed, and by which scope?
//!
//! A cgroup is governed when it or an ancestor is registered in `SCOPES`
//! (deepest registration wins). The walk's answer is cached per cgroup id
//! and stamped with `SCOPE_GEN`, which the agent bumps after every change
//! to `SCOPES`: the ungoverned path costs one helper call and two lookups.

use acelogic_common::{
    codes::reason,
    scope::{CachedScope, LastUngoverned, MAX_SCOPE_LEVEL, flags},
};
use aya_ebpf::helpers::{
    bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_task,
};

use crate::{
    kobj::{self, Kptr},
    maps::{SCOPE_CACHE, SCOPE_GEN, SCOPE_LAST, SCOPE_STATE, SCOPES},
    verdict::Error,
};

/// The current task is governed.
#[derive(Clone, Copy)]
pub(crate) struct Governed {
    pub(crate) cgroup_id: u64,
    pub(crate) scope_id: u32,
    /// `ScopeState` flags, or [`NO_STATE`] when the scope has no state
    /// entry. Not an `Option`: a `None`'s payload is undefined, and
    /// verifiers before 6.3 reject LLVM's copy of it (`invalid read from
    /// stack`; see `Verdict`).
    flags: u32,
}

/// `Governed::flags` of a scope without a state entry: a bit userspace
/// never sets (`flags::ALL`).
const NO_STATE: u32 = 1 << 31;
const _: () = assert!(flags::ALL & NO_STATE == 0);

impl Governed {
    /// `Err` when the scope denies everything: frozen, or its state is
    /// missing (fail closed). Every rule check starts here, before any
    /// grant is consumed.
    #[inline(always)]
    pub(crate) fn open(&self) -> Result<(), Error> {
        if self.flags & NO_STATE != 0 {
            Err(Error::Blocked(reason::SCOPE_STATE_MISSING))
        } else if self.flags & flags::FROZEN != 0 {
            Err(Error::Blocked(reason::FROZEN))
        } else {
            Ok(())
        }
    }

    /// Denials take effect (otherwise the scope is in audit mode). A
    /// scope without state enforces.
    #[inline(always)]
    pub(crate) fn enforcing(&self) -> bool {
        self.flags & (NO_STATE | flags::ENFORCING) != 0
    }
}

#[inline(always)]
fn generation() -> u64 {
    SCOPE_GEN.get(0).copied().unwrap_or(0)
}

/// The scope governing the current task, or `None` when it is ungoverned.
#[inline(always)]
pub(crate) fn current() -> Option<Governed> {
    // SAFETY: plain BPF helper call with no arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let generation = generation();
    let last = SCOPE_LAST.get_ptr_mut(0);
    if let Some(last) = last {
        // SAFETY: a per-CPU slot, read word by word; a torn entry fails
        // its check (`LastUngoverned`).
        if unsafe { (*last).says_ungoverned(cgroup_id, generation) } {
            return None;
        }
    }
    // SAFETY: the value is copied out of the map entry immediately.
    let scope_id = match unsafe { SCOPE_CACHE.get(&cgroup_id) }.copied() {
        Some(c) if c.generation == generation => c.scope_id,
        _ => {
            let found = walk_current();
            let entry = CachedScope {
                generation,
                scope_id: found,
                governed: u32::from(found != 0),
            };
            // A failed insert only costs the next call another walk.
            let _ = SCOPE_CACHE.insert(&cgroup_id, &entry, 0);
            found
        }
    };
    if scope_id == 0 {
        if let Some(last) = last {
            // SAFETY: as above; the check word goes last.
            unsafe {
                (*last).cgroup_id = cgroup_id;
                (*last).generation = generation;
                (*last).check = LastUngoverned::check_of(cgroup_id, generation);
            }
        }
        return None;
    }
    // SAFETY: the value is copied out of the map entry immediately.
    let state = unsafe { SCOPE_STATE.get(&scope_id) }.map_or(NO_STATE, |s| s.flags & flags::ALL);
    Some(Governed {
        cgroup_id,
        scope_id,
        flags: state,
    })
}

/// Registered scope of the current cgroup or its nearest registered
/// ancestor, 0 for none (scope ids start at 1). Level 0 (the root) is
/// never registered. A plain integer, not an `Option`: the verifier
/// rejects the uninitialised payload LLVM may read from a `None`.
#[inline(always)]
fn walk_current() -> u32 {
    let mut found = 0;
    let mut level = 1;
    while level <= MAX_SCOPE_LEVEL {
        #[expect(clippy::cast_possible_wrap, reason = "level <= MAX_SCOPE_LEVEL")]
        // SAFETY: plain BPF helper call; an out-of-range level returns 0.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
        if id == 0 {
            break;
        }
        // SAFETY: the value is copied out of the map entry immediately.
        if let Some(e) = unsafe { SCOPES.get(&id) } {
            found = e.scope_id;
        }
        level += 1;
    }
    found
}

/// Levels walked up from another task's cgroup.
const TASK_WALK: u32 = 32;

/// Another task's cgroup id and governing scope (`None`: not governed, or
/// deeper than the walk reaches, which callers treat as outside).
#[inline(always)]
pub(crate) fn of_task(task: Kptr) -> Result<(u64, Option<u32>), Error> {
    let mut kn = kobj::task_cgroup_kn(task)?;
    let cgroup_id = kobj::kernfs_id(kn)?;
    // SAFETY: the value is copied out of the map entry immediately.
    if let Some(c) = unsafe { SCOPE_CACHE.get(&cgroup_id) }.copied()
        && c.generation == generation()
    {
        return Ok((cgroup_id, (c.governed != 0).then_some(c.scope_id)));
    }
    let mut i = 0;
    while i < TASK_WALK {
        let id = kobj::kernfs_id(kn)?;
        // SAFETY: the value is copied out of the map entry immediately.
        if let Some(e) = unsafe { SCOPES.get(&id) } {
            return Ok((cgroup_id, Some(e.scope_id)));
        }
        kn = kobj::kernfs_parent(kn)?;
        if kn.is_null() {
            return Ok((cgroup_id, None));
        }
        i += 1;
    }
    Ok((cgroup_id, None))
}

/// `PF_IO_WORKER`: an io_uring worker (io-wq or SQPOLL thread).
const PF_IO_WORKER: u32 = 0x10;
/// `PF_DUMPCORE`: the task is dumping core.
const PF_DUMPCORE: u32 = 0x200;

/// The kernel is doing a stacking filesystem's own work on its layers for
/// the current task: it substituted credentials (`override_creds`), as
/// overlayfs does with its mounter's for every operation on its upper and
/// lower layers (copy-up included) and FUSE passthrough does on its backing
/// files. The operation the task asked for was decided on the file it
/// named; the layers' operations are not decided again.
///
/// Not exempt, because the task chose what runs under the substituted
/// credentials: io_uring workers (`PF_IO_WORKER`: io-wq and SQPOLL run a
/// request under its submitter's credentials) and a core dump
/// (`PF_DUMPCORE`: the core file is opened under substituted
/// credentials). The one way a task picks the credentials of its own
/// inline operation, an io_uring personality, is refused to governed tasks
/// (`uring_gate`). An unreadable task is not exempt.
#[inline(always)]
pub(crate) fn on_layers() -> bool {
    match kobj::task_creds_and_flags(current_task()) {
        Ok((cred, real, flags)) => cred != real && flags & (PF_IO_WORKER | PF_DUMPCORE) == 0,
        Err(_) => false,
    }
}

/// The current task as a kernel pointer.
#[inline(always)]
pub(crate) fn current_task() -> Kptr {
    // SAFETY: plain BPF helper call with no arguments.
    unsafe { bpf_get_current_task() as Kptr }
}
