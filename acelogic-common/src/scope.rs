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
