//! Governed scopes: which cgroups ACELOGIC enforces on, and how.
//!
//! A cgroup is governed when it or any ancestor is registered in `SCOPES`,
//! so a child cgroup created after registration is governed from its first
//! instruction. The answer for each cgroup is cached in `SCOPE_CACHE`,
//! stamped with the generation in `SCOPE_GEN`; userspace bumps the
//! generation after every change to `SCOPES`, which invalidates the cache.

use core::mem::size_of;

/// Deepest cgroup level (root = 0) that may be registered. The kernel side
/// walks ancestors up to this level; userspace refuses to register a
/// deeper cgroup, so the walk is always complete.
pub const MAX_SCOPE_LEVEL: u32 = 16;

/// Value of the `SCOPES` map, keyed by cgroup v2 id (the inode number of
/// the cgroup directory).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeEntry {
    /// Identifier of the scope (the workload) this cgroup belongs to; it is
    /// copied into every decision record so lineage names the workload.
    pub scope_id: u32,
    /// Reserved; must be zero.
    pub _reserved: u32,
}

const _: () = assert!(size_of::<ScopeEntry>() == 8);

impl ScopeEntry {
    #[must_use]
    pub const fn new(scope_id: u32) -> Self {
        Self {
            scope_id,
            _reserved: 0,
        }
    }
}

/// Bits of [`ScopeState::flags`].
pub mod flags {
    /// Denials take effect. Without it the scope is in audit mode: would-be
    /// denials are recorded with verdict `audit` and the action proceeds.
    pub const ENFORCING: u32 = 1;
    /// Kill switch: deny everything, baseline and grants included.
    pub const FROZEN: u32 = 2;
    /// Every defined bit.
    pub const ALL: u32 = ENFORCING | FROZEN;
}

/// Value of the `SCOPE_STATE` map, keyed by scope id. A governed cgroup
/// whose scope has no state entry is denied everything (fail closed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeState {
    /// [`flags`] bits.
    pub flags: u32,
    pub _reserved: u32,
}

const _: () = assert!(size_of::<ScopeState>() == 8);

impl ScopeState {
    #[must_use]
    pub const fn new(flags: u32) -> Self {
        Self {
            flags,
            _reserved: 0,
        }
    }
}

/// Value of the `SCOPE_CACHE` LRU map, keyed by cgroup id: the result of
/// the ancestor walk for that cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedScope {
    /// `SCOPE_GEN` when the walk was made; a different current generation
    /// means the entry is stale.
    pub generation: u64,
    /// Governing scope, meaningful when `governed` is 1.
    pub scope_id: u32,
    /// 1 when governed, 0 when not.
    pub governed: u32,
}

const _: () = assert!(size_of::<CachedScope>() == 16);

/// Value of the per-CPU `SCOPE_LAST` map: the last cgroup this CPU found
/// ungoverned, and at which `SCOPE_GEN`. The ungoverned path checks it
/// before `SCOPE_CACHE`: a per-CPU array slot costs no hashing, and a
/// CPU mostly runs the same tasks one after another. Never written by
/// userspace (zero never matches: cgroup ids start at 1).
///
/// Programs on one CPU can interleave (a preempted program, migration
/// disabled but preemption not), so an entry may be half written by one
/// and half by another. `check` makes a torn entry fail: it must equal
/// [`LastUngoverned::check_of`] of the other two words, and a mix of two
/// writers' words only does when the writers wrote the same entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastUngoverned {
    pub cgroup_id: u64,
    pub generation: u64,
    pub check: u64,
}

const _: () = assert!(size_of::<LastUngoverned>() == 24);

impl LastUngoverned {
    /// The check word of an entry for `cgroup_id` at `generation`.
    #[must_use]
    pub const fn check_of(cgroup_id: u64, generation: u64) -> u64 {
        cgroup_id ^ generation.rotate_left(32) ^ 0x5a5a_1ce1_0a1c_3e55
    }

    /// Whether this entry says `cgroup_id` is ungoverned at `generation`.
    #[must_use]
    pub const fn says_ungoverned(&self, cgroup_id: u64, generation: u64) -> bool {
        self.cgroup_id == cgroup_id
            && self.generation == generation
            && self.check == Self::check_of(cgroup_id, generation)
    }
}

#[cfg(test)]
mod tests {
    use super::LastUngoverned;

    fn entry(cgroup_id: u64, generation: u64) -> LastUngoverned {
        LastUngoverned {
            cgroup_id,
            generation,
            check: LastUngoverned::check_of(cgroup_id, generation),
        }
    }

    #[test]
    fn a_torn_entry_never_answers() {
        let (a, b) = (entry(0x1_0000_0101, 7), entry(0x1_0000_0202, 7));
        assert!(a.says_ungoverned(a.cgroup_id, 7));
        assert!(!a.says_ungoverned(a.cgroup_id, 8), "another generation");
        assert!(!a.says_ungoverned(b.cgroup_id, 7), "another cgroup");
        // Every mix of two writers' words, for every pair of generations.
        for (ga, gb) in [(7, 7), (7, 8), (0, u64::MAX), (1 << 32, 1)] {
            let (a, b) = (entry(a.cgroup_id, ga), entry(b.cgroup_id, gb));
            for mask in 0..8u8 {
                let pick = |bit: u8, x: u64, y: u64| if mask & bit == 0 { x } else { y };
                let torn = LastUngoverned {
                    cgroup_id: pick(1, a.cgroup_id, b.cgroup_id),
                    generation: pick(2, a.generation, b.generation),
                    check: pick(4, a.check, b.check),
                };
                let whole = torn == a || torn == b;
                for (c, g) in [(a.cgroup_id, ga), (b.cgroup_id, gb)] {
                    if torn.says_ungoverned(c, g) {
                        assert!(whole, "a torn entry answered: {torn:?}");
                    }
                }
            }
        }
        // Zeroed (never written) answers for no cgroup.
        let zero = LastUngoverned {
            cgroup_id: 0,
            generation: 0,
            check: 0,
        };
        assert!(!zero.says_ungoverned(0, 0));
    }
}
