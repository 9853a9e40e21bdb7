//! Names of maps and programs in the BPF object.
//!
//! The kernel truncates object names to 15 bytes silently, so every name is
//! checked against that bound at compile time. BPF statics must carry the
//! same identifiers (the `#[map]`/`#[lsm]` macros name objects after the
//! static or function); a userspace test parses the built object and checks
//! that each name below is present.

/// Governed cgroups: `cgroup id -> ScopeEntry`.
pub const MAP_SCOPES: &str = "SCOPES";
/// Ring buffer carrying every record (decisions and lifecycle) to userspace.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU counters indexed by [`crate::codes::counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";

/// LSM program on `bprm_check_security`: the exec gate.
pub const PROG_EXEC_GATE: &str = "exec_gate";
/// The LSM hook the exec gate attaches to.
pub const HOOK_EXEC_GATE: &str = "bprm_check_security";
/// Tracepoint program on `sched/sched_process_exec`: process lineage.
pub const PROG_PROC_EXEC: &str = "proc_exec";
/// Tracepoint category and name of [`PROG_PROC_EXEC`].
pub const TP_PROC_EXEC: (&str, &str) = ("sched", "sched_process_exec");

/// Global set at load time: byte offset of the `filename` `__data_loc`
/// field in the `sched_process_exec` tracepoint record, read from tracefs.
pub const GLOBAL_TP_EXEC_FILENAME_OFF: &str = "TP_EXEC_FILENAME_OFF";

/// Every map name, for checks that walk them all.
pub const ALL_MAPS: [&str; 3] = [MAP_SCOPES, MAP_EVENTS, MAP_COUNTERS];
/// Every program name.
pub const ALL_PROGRAMS: [&str; 2] = [PROG_EXEC_GATE, PROG_PROC_EXEC];

/// The kernel keeps 15 bytes of an object name plus the terminating NUL.
pub const MAX_OBJ_NAME: usize = 15;

const _: () = {
    let mut i = 0;
    while i < ALL_MAPS.len() {
        assert!(ALL_MAPS[i].len() <= MAX_OBJ_NAME);
        i += 1;
    }
    let mut i = 0;
    while i < ALL_PROGRAMS.len() {
        assert!(ALL_PROGRAMS[i].len() <= MAX_OBJ_NAME);
        i += 1;
    }
};
