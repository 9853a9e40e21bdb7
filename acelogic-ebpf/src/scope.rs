//! Is the current task governed, and by which scope?

use acelogic_common::scope::ScopeEntry;
use aya_ebpf::helpers::bpf_get_current_cgroup_id;

use crate::maps::SCOPES;

/// The scope governing the current task's cgroup, or `None` when the task
/// is not governed. The ungoverned path is one helper call and one hash
/// lookup.
#[inline(always)]
pub(crate) fn current() -> (u64, Option<ScopeEntry>) {
    // SAFETY: plain BPF helper call with no arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out of the map entry immediately.
    let entry = unsafe { SCOPES.get(&cgroup_id) }.copied();
    (cgroup_id, entry)
}
