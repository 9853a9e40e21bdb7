//! Every map of the BPF object. Names are role-first and match the
//! constants in `acelogic_common::names`; types come from
//! `acelogic_common` so both sides agree on layouts.

use acelogic_common::{
    codes::counter,
    rules::{FileKey, FileRule, Grant, NetKey, NetRule, Writer},
    scope::{CachedScope, LastUngoverned, ScopeEntry, ScopeState},
};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};

/// Registered cgroups: cgroup v2 id -> scope. A cgroup is governed when it
/// or an ancestor is in this map. Written by the agent.
#[map]
pub(crate) static SCOPES: HashMap<u64, ScopeEntry> = HashMap::with_max_entries(4096, 0);

/// Per-scope flags (enforcing, frozen), keyed by scope id. A governed
/// cgroup whose scope has no entry here is denied everything.
#[map]
pub(crate) static SCOPE_STATE: HashMap<u32, ScopeState> = HashMap::with_max_entries(1024, 0);

/// cgroup id -> result of the ancestor walk, so the common case (an
/// ungoverned process) costs one helper call and two lookups. Stale
/// entries are recognised by their generation.
#[map]
pub(crate) static SCOPE_CACHE: LruHashMap<u64, CachedScope> =
    LruHashMap::with_max_entries(16384, 0);

/// Per CPU, slot 0: the last cgroup this CPU found ungoverned (see
/// `LastUngoverned`), checked before `SCOPE_CACHE`.
#[map]
pub(crate) static SCOPE_LAST: PerCpuArray<LastUngoverned> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0: generation of `SCOPES`, bumped by the agent after each change.
#[map]
pub(crate) static SCOPE_GEN: Array<u64> = Array::with_max_entries(1, 0);

/// Files each scope may use with no artifact (exec, map, write, unix
/// connect), by (scope, device, inode).
#[map]
pub(crate) static FILE_BASELINE: HashMap<FileKey, FileRule> = HashMap::with_max_entries(65536, 0);

/// Files granted by verified artifacts, with expiry and uses.
#[map]
pub(crate) static FILE_GRANTS: HashMap<FileKey, Grant> = HashMap::with_max_entries(16384, 0);

/// Network destinations each scope may reach with no artifact.
#[map]
pub(crate) static NET_BASELINE: LpmTrie<NetKey, NetRule> = LpmTrie::with_max_entries(16384, 0);

/// Network destinations granted by verified artifacts.
#[map]
pub(crate) static NET_GRANTS: LpmTrie<NetKey, Grant> = LpmTrie::with_max_entries(16384, 0);

/// All records to userspace. Sized for bursts of several thousand records
/// (a file decision with its kernel path is 768 bytes, an exec record
/// with arguments, executable and working directory 1888: 4 MiB holds
/// about a thousand execs with their decisions, what 1 MiB held before
/// records carried paths); when it is full, governed decisions are
/// denied (see `gate.rs`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Open files whose write a scope's decision allowed (at open, or at the
/// first write through a descriptor that came from elsewhere): file
/// address -> scope id. Later writes through the same open file are not
/// decided again. Entries go when the file is freed (`file_free`). Not an
/// LRU: an entry leaves only by that delete, so `WRITERS_HELD` counts
/// them exactly; when the map is full a write is simply decided again.
#[map]
pub(crate) static WRITERS: HashMap<u64, Writer> = HashMap::with_max_entries(16384, 0);

/// Slot 0: how many entries `WRITERS` holds, added to after an insert of
/// a new key and taken from after a delete, atomically. Every file freed
/// on the node passes `file_free`; while this is 0 (no governed process
/// holds a decided write open, which is most of the time on most nodes)
/// it reads nothing else.
#[map]
pub(crate) static WRITERS_HELD: Array<u64> = Array::with_max_entries(1, 0);

/// Slot 0: generation of the file rules, bumped by the agent after every
/// change to `FILE_BASELINE` or `FILE_GRANTS`; `WRITERS` entries of an
/// older generation are decided again.
#[map]
pub(crate) static RULES_GEN: Array<u64> = Array::with_max_entries(1, 0);

/// The cursor of a path walk (`kpath.rs`), one per CPU. Kept in a map, not
/// in registers, so the verifier sees the same state at the top of every
/// iteration whichever way the last one went, and prunes, instead of
/// following each combination of names and mount crossings.
#[map]
pub(crate) static PATH_WALK: PerCpuArray<crate::kpath::Cursor> =
    PerCpuArray::with_max_entries(1, 0);

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
