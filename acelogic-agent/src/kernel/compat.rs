//! The kernel compatibility table: every program of the BPF object, how it
//! attaches, and what the running kernel must offer for it. Decisions about
//! which hook runs where live here, not in scattered `if`s.

use acelogic_common::names;

/// What a program needs from the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// BPF LSM active (`bpf` in `/sys/kernel/security/lsm`) and BPF
    /// trampolines usable; Linux 5.7 or newer with `CONFIG_BPF_LSM=y`.
    BpfLsm,
    /// Tracepoints and tracefs (to read record layouts).
    Tracepoints,
}

/// How a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Lsm {
        hook: &'static str,
    },
    TracePoint {
        category: &'static str,
        name: &'static str,
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramSpec {
    /// Program name in the object (`acelogic_common::names`).
    pub name: &'static str,
    pub attach: Attach,
    pub needs: Requirement,
    /// Required for enforcement: the agent refuses to enforce without it.
    pub enforcing: bool,
}

/// The exec gate.
pub const EXEC_GATE: ProgramSpec = ProgramSpec {
    name: names::PROG_EXEC_GATE,
    attach: Attach::Lsm {
        hook: names::HOOK_EXEC_GATE,
    },
    needs: Requirement::BpfLsm,
    enforcing: true,
};

/// Process lineage (exec of a governed task).
pub const PROCESS_LINEAGE: ProgramSpec = ProgramSpec {
    name: names::PROG_PROC_EXEC,
    attach: Attach::TracePoint {
        category: names::TP_PROC_EXEC.0,
        name: names::TP_PROC_EXEC.1,
    },
    needs: Requirement::Tracepoints,
    enforcing: false,
};

/// Every program, in attach order: recorders before gates, so a gate never
/// decides while its lineage is not yet being recorded.
pub const PROGRAMS: [ProgramSpec; 2] = [PROCESS_LINEAGE, EXEC_GATE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_every_program_of_the_object() {
        let mut in_table: Vec<_> = PROGRAMS.iter().map(|p| p.name).collect();
        let mut named: Vec<_> = names::ALL_PROGRAMS.to_vec();
        in_table.sort_unstable();
        named.sort_unstable();
        assert_eq!(in_table, named);
    }
}
