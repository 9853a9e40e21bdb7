//! Every map of the BPF object. Names are role-first and match the
//! constants in `acelogic_common::names`.

use acelogic_common::{codes::counter, scope::ScopeEntry};
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};

/// Governed cgroups: cgroup v2 id -> scope. Written by the agent; a cgroup
/// absent from this map is not governed.
#[map]
pub(crate) static SCOPES: HashMap<u64, ScopeEntry> = HashMap::with_max_entries(4096, 0);

/// All records to userspace. Sized for bursts of several thousand records;
/// when it is full, governed decisions are denied (see `record.rs`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Per-CPU counters, indexed by `acelogic_common::codes::counter`.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Adds one to a counter. Per-CPU, so no atomic is needed.
#[inline(always)]
pub(crate) fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer comes from a successful per-CPU array lookup and
        // is only touched by this CPU while the program runs.
        unsafe { *slot += 1 };
    }
}
