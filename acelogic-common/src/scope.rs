//! Governed scopes: which cgroups ACELOGIC enforces on.

use core::mem::size_of;

/// Value of the `SCOPES` map, keyed by cgroup v2 id (the inode number of
/// the cgroup directory).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeEntry {
    /// Identifier of the scope (the workload) this cgroup belongs to; it is
    /// copied into every decision record so lineage names the workload.
    pub scope_id: u32,
    /// Reserved for scope flags; must be zero.
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
